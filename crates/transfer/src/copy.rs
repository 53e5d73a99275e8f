//! Copy a repository's objects from one backend to another (`vtool copy`, off-site sync).
//!
//! Objects are immutable and named, so a copy only sends what the destination lacks: an
//! object present at the destination with the same name and size is skipped. A re-run after
//! an interruption therefore sends only the rest. An object present with a *different* size
//! is a conflict and stops the copy: nothing is ever overwritten.
//!
//! Phases run in the order given (e.g. packs before the index that refers to them, snapshots
//! last), so an interrupted copy never leaves a destination whose snapshots point at missing
//! data. Within a phase objects are copied in parallel.
//!
//! ```
//! use vtool_transfer::{copy_objects, Backend, CopyOptions, CopyPhase, LocalBackend, NoProgress};
//! let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
//! let (src, dst) = (LocalBackend::create(a.path()).unwrap(), LocalBackend::create(b.path()).unwrap());
//! let data = b"pack bytes";
//! let name = blake3::hash(data).to_hex().to_string();
//! src.put(&format!("packs/{}/{name}", &name[..2]), data).unwrap();
//! src.put("snapshots/s1", b"snapshot").unwrap();
//! let phases = [CopyPhase::content_addressed("packs"), CopyPhase::new("snapshots")];
//! let report = copy_objects(&src, &dst, &phases, &CopyOptions::default(), &NoProgress).unwrap();
//! assert_eq!(report.total.copied_objects, 2);
//! let again = copy_objects(&src, &dst, &phases, &CopyOptions::default(), &NoProgress).unwrap();
//! assert_eq!((again.total.copied_objects, again.total.skipped_objects), (0, 2));
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use crate::progress::Progress;

use rayon::prelude::*;

use crate::{Backend, BackendError, ObjectInfo};

/// One directory of the repository, copied completely before the next phase starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyPhase {
    /// Directory below the repository root, e.g. `packs`.
    pub dir: String,
    /// The file name of every object is the lowercase hex BLAKE3 of its bytes: check it
    /// before sending, so a damaged source object is reported instead of propagated.
    pub verify_blake3_name: bool,
}

impl CopyPhase {
    pub fn new(dir: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            verify_blake3_name: false,
        }
    }

    /// A phase whose object names are the BLAKE3 of their content (packs).
    pub fn content_addressed(dir: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            verify_blake3_name: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Objects transferred at the same time.
    pub parallel: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self { parallel: 4 }
    }
}

/// Counts of objects and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub copied_objects: u64,
    pub copied_bytes: u64,
    /// Already at the destination with the same size.
    pub skipped_objects: u64,
    pub skipped_bytes: u64,
}

impl CopyStats {
    fn add(&mut self, other: &CopyStats) {
        self.copied_objects += other.copied_objects;
        self.copied_bytes += other.copied_bytes;
        self.skipped_objects += other.skipped_objects;
        self.skipped_bytes += other.skipped_bytes;
    }
}

#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    pub total: CopyStats,
    /// Per phase, in the order run.
    pub phases: Vec<(String, CopyStats)>,
    /// Stale temporary files of interrupted copies, removed at the destination first.
    pub temp_cleanup: crate::TempCleanup,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("copy of {phase}: {source}")]
    Backend {
        phase: String,
        #[source]
        source: BackendError,
    },
    #[error("{name} exists at the destination with {dest_size} bytes but has {source_size} bytes at the source; objects are never overwritten, so the copy stops (is the destination another repository?)")]
    SizeConflict {
        name: String,
        source_size: u64,
        dest_size: u64,
    },
    #[error("{name} at the source is damaged: its content hashes to {actual}, not to its name; it was not copied (run `vtool check --read-data` on the source to see what else is damaged)")]
    CorruptSource { name: String, actual: String },
    #[error("{name} was written to the destination but is {actual:?} bytes there instead of {expected}; the destination is unreliable")]
    DestinationMismatch {
        name: String,
        expected: u64,
        actual: Option<u64>,
    },
}

/// Copy every object of `phases` that `to` lacks from `from`, phase by phase.
///
/// `progress` is called from worker threads, one call at a time, and should be quick.
/// On error the objects copied so far stay (they are complete and valid): re-run to finish.
pub fn copy_objects(
    from: &dyn Backend,
    to: &dyn Backend,
    phases: &[CopyPhase],
    options: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport, CopyError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.parallel.max(1))
        .thread_name(|i| format!("vtool-copy-{i}"))
        .build()
        .map_err(|e| CopyError::Backend {
            phase: String::new(),
            source: BackendError::Other(format!("cannot start copy threads: {e}")),
        })?;
    let mut report = CopyReport {
        // Housekeeping, best effort: a copy never fails over another run's leftovers.
        temp_cleanup: crate::clean_stale_temp(to),
        ..Default::default()
    };
    for phase in phases {
        let stats = pool.install(|| copy_phase(from, to, phase, progress))?;
        report.total.add(&stats);
        report.phases.push((phase.dir.clone(), stats));
    }
    Ok(report)
}

fn copy_phase(
    from: &dyn Backend,
    to: &dyn Backend,
    phase: &CopyPhase,
    progress: &dyn Progress,
) -> Result<CopyStats, CopyError> {
    let backend_err = |source| CopyError::Backend {
        phase: phase.dir.clone(),
        source,
    };
    let mut source = from.list(&phase.dir).map_err(backend_err)?;
    source.sort_by(|a, b| a.name.cmp(&b.name));
    let present: HashMap<String, u64> = to
        .list(&phase.dir)
        .map_err(backend_err)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();

    let mut done = CopyStats::default();
    let (mut objects_to_copy, mut bytes_to_copy) = (0, 0);
    let mut missing = Vec::new();
    // Conflicts are found before anything is sent: a copy onto the wrong repository stops
    // without adding to it.
    for obj in source {
        match present.get(&obj.name) {
            Some(&size) if size == obj.size => {
                done.skipped_objects += 1;
                done.skipped_bytes += size;
            }
            Some(&size) => {
                return Err(CopyError::SizeConflict {
                    name: obj.name,
                    source_size: obj.size,
                    dest_size: size,
                })
            }
            None => {
                objects_to_copy += 1;
                bytes_to_copy += obj.size;
                missing.push(obj);
            }
        }
    }
    progress.stage(&phase.dir, objects_to_copy, bytes_to_copy);
    let done = Mutex::new(done);

    missing.par_iter().try_for_each(|obj| {
        let outcome = copy_one(from, to, phase, obj)?;
        let mut d = done.lock().unwrap_or_else(|p| p.into_inner());
        let n = match outcome {
            Outcome::Copied(n) => {
                d.copied_objects += 1;
                d.copied_bytes += n;
                n
            }
            Outcome::AlreadyThere(n) => {
                d.skipped_objects += 1;
                d.skipped_bytes += n;
                n
            }
        };
        drop(d);
        progress.advance(n);
        Ok(())
    })?;
    Ok(done.into_inner().unwrap_or_else(|p| p.into_inner()))
}

enum Outcome {
    Copied(u64),
    /// Appeared at the destination since it was listed (another copy running), same size.
    AlreadyThere(u64),
}

fn copy_one(
    from: &dyn Backend,
    to: &dyn Backend,
    phase: &CopyPhase,
    obj: &ObjectInfo,
) -> Result<Outcome, CopyError> {
    let backend_err = |source| CopyError::Backend {
        phase: phase.dir.clone(),
        source,
    };
    let data = from.get(&obj.name).map_err(backend_err)?;
    if phase.verify_blake3_name {
        let actual = blake3::hash(&data).to_hex();
        let expected = obj.name.rsplit('/').next().unwrap_or_default();
        if actual.as_str() != expected {
            return Err(CopyError::CorruptSource {
                name: obj.name.clone(),
                actual: actual.to_string(),
            });
        }
    }
    let size = data.len() as u64;
    let outcome = match to.put(&obj.name, &data) {
        Ok(()) => Outcome::Copied(size),
        Err(BackendError::AlreadyExists(_)) => Outcome::AlreadyThere(size),
        Err(e) => return Err(backend_err(e)),
    };
    // Read the size back: a destination that lost or truncated the object is caught now,
    // not at restore time.
    match to.stat(&obj.name).map_err(backend_err)? {
        Some(n) if n == size => Ok(outcome),
        Some(n) if matches!(outcome, Outcome::AlreadyThere(_)) => Err(CopyError::SizeConflict {
            name: obj.name.clone(),
            source_size: size,
            dest_size: n,
        }),
        actual => Err(CopyError::DestinationMismatch {
            name: obj.name.clone(),
            expected: size,
            actual,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use super::*;
    use crate::{Hooked, LocalBackend, NoProgress};

    /// Sums what a copy reports.
    #[derive(Default)]
    struct Counted {
        announced: AtomicU64,
        advanced: AtomicU64,
    }

    impl Progress for Counted {
        fn stage(&self, _name: &str, _items: u64, bytes: u64) {
            self.announced.fetch_add(bytes, Ordering::SeqCst);
        }
        fn advance(&self, bytes: u64) {
            self.advanced.fetch_add(bytes, Ordering::SeqCst);
        }
    }

    fn pack_name(data: &[u8]) -> String {
        let h = blake3::hash(data).to_hex().to_string();
        format!("packs/{}/{h}", &h[..2])
    }

    fn phases() -> Vec<CopyPhase> {
        vec![
            CopyPhase::content_addressed("packs"),
            CopyPhase::new("index"),
            CopyPhase::new("snapshots"),
        ]
    }

    fn fill(src: &dyn Backend) -> u64 {
        let mut bytes = 0;
        for i in 0..20u32 {
            let data: Vec<u8> = (0..(1000 + i * 997)).map(|j| (j ^ i) as u8).collect();
            src.put(&pack_name(&data), &data).expect("put pack");
            bytes += data.len() as u64;
        }
        src.put("index/i1", b"index").expect("put index");
        src.put("snapshots/s1", b"snap").expect("put snapshot");
        bytes + 9
    }

    #[test]
    fn copies_missing_and_resumes_after_interruption() {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let src = LocalBackend::create(a.path()).expect("src");
        let dst = LocalBackend::create(b.path()).expect("dst");
        let bytes = fill(&src);

        // Every put after the first 7 fails, like a link that drops mid-copy.
        let puts = AtomicUsize::new(0);
        let flaky = Hooked::new(&dst as &dyn Backend).before_put(move |_, _| {
            if puts.fetch_add(1, Ordering::SeqCst) >= 7 {
                return Err(BackendError::Other("link down".into()));
            }
            Ok(())
        });
        let opts = CopyOptions { parallel: 3 };
        let err =
            copy_objects(&src, &flaky, &phases(), &opts, &NoProgress).expect_err("interrupted");
        assert!(err.to_string().contains("link down"), "{err}");
        assert_eq!(dst.list("packs").expect("list").len(), 7);
        assert!(
            dst.list("snapshots").expect("list").is_empty(),
            "phase order violated"
        );

        let counted = Counted::default();
        let report = copy_objects(&src, &dst, &phases(), &opts, &counted).expect("resume");
        assert_eq!(report.total.copied_objects, 22 - 7);
        assert_eq!(report.total.skipped_objects, 7);
        assert_eq!(
            report.total.copied_bytes + report.total.skipped_bytes,
            bytes
        );
        // Progress saw every byte sent, and each phase announced what it had to send.
        assert_eq!(
            counted.advanced.load(Ordering::SeqCst),
            report.total.copied_bytes
        );
        assert_eq!(
            counted.announced.load(Ordering::SeqCst),
            report.total.copied_bytes
        );
        for o in src.list("packs").expect("list") {
            assert_eq!(
                dst.get(&o.name).expect("get"),
                src.get(&o.name).expect("get")
            );
        }

        let again = copy_objects(&src, &dst, &phases(), &opts, &NoProgress).expect("again");
        assert_eq!(again.total.copied_objects, 0);
        assert_eq!(again.total.skipped_objects, 22);
    }

    #[test]
    fn refuses_size_conflicts_and_damaged_sources() {
        let (a, b) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let src = LocalBackend::create(a.path()).expect("src");
        let dst = LocalBackend::create(b.path()).expect("dst");
        src.put("snapshots/s1", b"snapshot").expect("put");
        dst.put("snapshots/s1", b"other").expect("put");
        let err = copy_objects(&src, &dst, &phases(), &CopyOptions::default(), &NoProgress)
            .expect_err("conflict");
        assert!(matches!(err, CopyError::SizeConflict { .. }), "{err}");
        assert_eq!(dst.get("snapshots/s1").expect("get"), b"other");

        let name = pack_name(b"real content");
        src.put(&name, b"tampered content").expect("put");
        let err = copy_objects(&src, &dst, &phases(), &CopyOptions::default(), &NoProgress)
            .expect_err("damaged");
        assert!(matches!(err, CopyError::CorruptSource { .. }), "{err}");
        assert_eq!(
            dst.stat(&name).expect("stat"),
            None,
            "damaged object was copied"
        );
    }
}
