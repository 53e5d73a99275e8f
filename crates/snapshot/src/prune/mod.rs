//! `prune`: delete what no snapshot needs, with the backup key alone, never blocking a
//! backup. Two phases, each run by every prune (see `doc/FORMAT.md`, "Forget and prune"):
//!
//! 1. **Purge** ([`purge`]): trash records whose grace period is over and whose waiting
//!    writers have all ended are carried out: their snapshots, then index files, then
//!    packs are deleted, except packs holding a blob that some snapshot (or a backup that
//!    ended without its snapshot) still needs and that has no other copy.
//! 2. **Condemn** ([`condemn`]): packs no snapshot needs, and packs mostly unused, are
//!    put in a new trash record; the used blobs of the latter are first copied, still
//!    sealed, into new packs, and the index files that listed them replaced.

mod condemn;
mod purge;
mod retain;
mod state;

use serde::Serialize;
use time::Duration;

use crate::keys::ChunkKey;
use crate::pack::PackLayout;
use crate::{trash, Error, Id, Progress, Repository, Result};
use state::State;

/// How much unused space may stay in packs that are partly used.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MaxUnused {
    /// Percent of the used bytes.
    Percent(f64),
    Bytes(u64),
    Unlimited,
}

/// What `prune` should do.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack partly used packs until at most this much unused space remains.
    pub max_unused: MaxUnused,
    /// Copy at most this many bytes into new packs per run.
    pub max_repack: Option<u64>,
    /// Trash is deleted only this long after it was marked (undo window).
    pub grace: Duration,
    /// A backup silent this long (no end since it started) is declared stale.
    pub writer_timeout: Duration,
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused: MaxUnused::Percent(5.0),
            max_repack: None,
            grace: Duration::hours(24),
            writer_timeout: Duration::hours(24),
            dry_run: false,
        }
    }
}

/// A trash record carried out (or, on a dry run, that would be).
#[derive(Debug, Clone, Serialize)]
pub struct Purged {
    pub trash: Id,
    pub snapshots: usize,
    pub indexes: usize,
    pub packs: usize,
    pub bytes: u64,
    /// Condemned packs kept after all: something still needs a blob only they hold.
    pub kept_packs: usize,
}

/// A trash record not yet due, with why.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub trash: Id,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub purged: Vec<Purged>,
    pub pending: Vec<Pending>,
    /// Writers a prune gave up waiting for.
    pub writers_declared_stale: usize,
    pub writers_removed: usize,
    pub packs: usize,
    pub pack_bytes: u64,
    pub used_bytes: u64,
    pub unused_bytes: u64,
    /// Packs no snapshot needs, now in the trash.
    pub condemned_packs: usize,
    pub condemned_bytes: u64,
    /// Partly used packs whose used blobs were copied into new packs.
    pub repacked_packs: usize,
    pub repacked_bytes: u64,
    pub new_packs: usize,
    pub written_bytes: u64,
    /// Unused bytes left in packs that stay.
    pub unused_after: u64,
    /// The trash record of this run's condemnation.
    pub trash: Option<Id>,
    /// Deletions the storage refused (an append-only account or Object Lock): nothing
    /// further was deleted.
    pub refused: Vec<String>,
    /// Object Lock: objects whose retention this run extended (would, in a dry run).
    pub retained: usize,
    /// Until when they are now retained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<String>,
    pub notes: Vec<String>,
}

/// Prune `repo` holding only the chunk key (from the backup key or the identity).
pub fn prune(
    repo: &Repository,
    key: &ChunkKey,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    if repo.pack_layout() != PackLayout::SealedBlobs {
        return Err(Error::Usage(format!(
            "prune needs a format 3 repository (this one is format {}): its packs are one age stream each, which only the identity could repack. Start a new repository with `vtool init` and back up into it",
            repo.config().version
        )));
    }
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    progress.stage("reading snapshots, trash and index", 0, 0);
    let mut state = State::load(repo, key)?;
    if !opts.dry_run {
        report.writers_removed = purge::remove_ended_writers(repo.backend(), &state)?;
        for t in state
            .trash
            .pending
            .iter_mut()
            .filter(|t| t.waiting.is_none())
        {
            // Its writer was killed between the two records: complete it now (any writer
            // listed later read the trash record first, so waiting for it is only safer).
            t.waiting = Some(trash::put_waiting(repo.backend(), key, &t.id)?);
        }
    }
    // Before anything is condemned: see `retain` for why that order matters.
    retain::extend(repo, &state, opts, &mut report, progress)?;
    purge::purge(repo, &mut state, opts, &mut report, progress)?;
    if report.refused.is_empty() && !report.purged.is_empty() && !opts.dry_run {
        report.notes.append(&mut state.notes);
        drop(state);
        state = State::load(repo, key)?;
    }
    condemn::condemn(repo, key, &mut state, opts, &mut report, progress)?;
    report.notes.append(&mut state.notes);
    drop(state);
    if report.trash.is_some() && opts.grace.is_zero() && report.refused.is_empty() {
        // No grace period: what was just marked is due at once, if no backup that
        // started before it is still running.
        let mut state = State::load(repo, key)?;
        report.pending.clear();
        purge::purge(repo, &mut state, opts, &mut report, progress)?;
        report.notes.append(&mut state.notes);
    }
    Ok(report)
}

/// What `prune --undo` took back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UndoReport {
    pub dry_run: bool,
    pub trash: Vec<Id>,
    pub snapshots: usize,
    pub packs: usize,
}

/// Take back every pending trash record: forgotten snapshots reappear and condemned packs
/// are used again. Run it while no prune runs.
pub fn undo(repo: &Repository, key: &ChunkKey, dry_run: bool) -> Result<UndoReport> {
    let pending = trash::Trash::load(repo.backend(), key)?;
    let mut report = UndoReport {
        dry_run,
        ..Default::default()
    };
    for t in &pending.pending {
        if !dry_run {
            trash::remove(repo.backend(), &t.id)?;
        }
        report.trash.push(t.id);
        report.snapshots += t.record.snapshots.len();
        report.packs += t.record.packs.len();
    }
    Ok(report)
}
