//! Sealed objects: repository objects a storage host must not forge or alter (the config,
//! snapshots, drill, check and gate records), authenticated over the exact bytes stored.
//!
//! A sealed object is the envelope `{"mac":"<hex>","body":<JSON>}`. The MAC is a keyed BLAKE3
//! of the body's bytes exactly as they appear in the stored object, keyed by a key derived
//! from the chunk key with a context per kind. Verifying never re-serializes: floats, field
//! order and fields a newer vtool added all survive, because the bytes are what is checked.
//!
//! Format 1 objects carried a `mac` field computed over a re-serialization of the parsed
//! struct. They are still read: parsed with exact float round-tripping (serde_json's
//! `float_roundtrip`), which reproduces the bytes vtool 1 hashed.

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use vtool_transfer::{Backend, BackendError};

use crate::keys::ChunkKey;
use crate::{Error, FileType, Id, Result};

/// What a sealed object is; each kind has its own MAC context, so one can never pass for
/// another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    Config,
    Snapshot,
    DrillRecord,
    Trash,
    Waiting,
    CheckRecord,
    Report,
}

impl SealedKind {
    fn context(self) -> &'static str {
        match self {
            SealedKind::Config => "vtool 2026-12 sealed config",
            SealedKind::Snapshot => "vtool 2026-12 sealed snapshot",
            SealedKind::DrillRecord => "vtool 2026-12 sealed drill record",
            SealedKind::Trash => "vtool 2026-12 sealed trash record",
            SealedKind::Waiting => "vtool 2026-12 sealed waiting record",
            SealedKind::CheckRecord => "vtool 2026-12 sealed check record",
            SealedKind::Report => "vtool 2026-12 sealed gate report",
        }
    }

    /// The context of format 1's in-struct `mac` field (format 1 configs had none).
    fn legacy_context(self) -> Option<&'static str> {
        match self {
            SealedKind::Config
            | SealedKind::Trash
            | SealedKind::Waiting
            | SealedKind::CheckRecord
            | SealedKind::Report => None,
            SealedKind::Snapshot => Some("vtool 2026-11 snapshot authentication"),
            SealedKind::DrillRecord => Some("vtool 2026-11 drill record authentication"),
        }
    }

    /// What to call it in messages.
    pub fn noun(self) -> &'static str {
        match self {
            SealedKind::Config => "config",
            SealedKind::Snapshot => "snapshot",
            SealedKind::DrillRecord => "drill record",
            SealedKind::Trash => "trash record",
            SealedKind::Waiting => "waiting record",
            SealedKind::CheckRecord => "check record",
            SealedKind::Report => "gate report",
        }
    }
}

/// The framing `seal` writes around the MAC and the body, and parse insists on.
const OPEN: &[u8] = b"{\"mac\":\"";
const MIDDLE: &[u8] = b"\",\"body\":";
const CLOSE: &[u8] = b"}\n";

/// Serialize `value` as the body of a sealed object and return the stored bytes.
pub fn seal<T: Serialize>(kind: SealedKind, value: &T, key: &ChunkKey) -> Result<Vec<u8>> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    let mac = key.mac(kind.context(), &body);
    Ok(envelope(&mac, &body))
}

/// The stored form of a sealed object: `body` framed with its MAC exactly as readers expect.
/// Written by hand so the body's bytes are stored exactly as they were MACed.
pub fn envelope(mac: &str, body: &[u8]) -> Vec<u8> {
    [OPEN, mac.as_bytes(), MIDDLE, body, CLOSE].concat()
}

/// How an object read from the repository is authenticated.
#[derive(Debug, Clone)]
enum Seal {
    /// Format 2: the MAC covers these exact body bytes.
    Body { mac: String, body: Vec<u8> },
    /// Format 1: the MAC covers the compact re-serialization with an empty `mac` field.
    Legacy { mac: String },
    /// A format 1 config: never authenticated.
    Unsealed,
}

/// A parsed object with what is needed to authenticate it.
#[derive(Debug, Clone)]
pub struct Sealed<T> {
    value: T,
    seal: Seal,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    mac: String,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// A format 1 object: its fields, then `mac` (the order vtool 1 serialized them in).
#[derive(Serialize, Deserialize)]
struct Legacy<T> {
    #[serde(flatten)]
    value: T,
    mac: String,
}

impl<T: Serialize + DeserializeOwned> Sealed<T> {
    /// Parse a stored object of any format. Says why when it is not one.
    pub fn parse(kind: SealedKind, data: &[u8]) -> std::result::Result<Self, String> {
        if let Ok(env) = serde_json::from_slice::<Envelope>(data) {
            let body = env.body.get().as_bytes();
            // Only the body is MACed, so the framing around it must be exactly what `seal`
            // writes: otherwise a changed byte there (a space for the final newline) would
            // go unnoticed in the one sealed object not named by its hash, the config.
            if data != envelope(&env.mac, body) {
                return Err(format!(
                    "the {} is not in the form vtool writes around a sealed body",
                    kind.noun()
                ));
            }
            let value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
            return Ok(Sealed {
                value,
                seal: Seal::Body {
                    mac: env.mac,
                    body: body.to_vec(),
                },
            });
        }
        if kind.legacy_context().is_some() {
            let legacy: Legacy<T> = serde_json::from_slice(data).map_err(|e| e.to_string())?;
            return Ok(Sealed {
                value: legacy.value,
                seal: Seal::Legacy { mac: legacy.mac },
            });
        }
        let value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        Ok(Sealed {
            value,
            seal: Seal::Unsealed,
        })
    }

    /// Whether a holder of `key` wrote it. An unsealed (format 1) config never verifies.
    pub fn verify(&self, kind: SealedKind, key: &ChunkKey) -> bool {
        match &self.seal {
            Seal::Body { mac, body } => key.mac_matches(kind.context(), body, mac),
            Seal::Legacy { mac } => {
                let Some(context) = kind.legacy_context() else {
                    return false;
                };
                let unsigned = Legacy {
                    value: &self.value,
                    mac: String::new(),
                };
                serde_json::to_vec(&unsigned)
                    .is_ok_and(|bytes| key.mac_matches(context, &bytes, mac))
            }
            Seal::Unsealed => false,
        }
    }

    /// A format 1 object without any MAC (only configs).
    pub fn is_unsealed(&self) -> bool {
        matches!(self.seal, Seal::Unsealed)
    }

    pub fn into_value(self) -> T {
        self.value
    }
}

impl<T> std::ops::Deref for Sealed<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

/// An object that could not be read as what its directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedObject {
    pub object: String,
    pub reason: String,
}

/// Every readable object of a directory, and the damaged ones named one by one, so one
/// planted or flipped object never hides the others.
#[derive(Debug, Clone)]
pub struct SealedListing<T> {
    /// Content id and object, in listing order.
    pub objects: Vec<(Id, Sealed<T>)>,
    pub damaged: Vec<DamagedObject>,
}

/// Read every object of a content-addressed, sealed `file_type`: each must match its content
/// hash, fit in `max_size` and parse as `T`. Authentication is left to the caller, who may
/// not hold a key.
pub fn list_sealed<T: Serialize + DeserializeOwned + Send>(
    backend: &dyn Backend,
    file_type: FileType,
    max_size: u64,
) -> Result<SealedListing<T>> {
    let kind = file_type
        .sealed()
        .ok_or_else(|| Error::Internal(format!("{file_type:?} objects are not sealed")))?;
    let objects = backend.list(file_type.dir())?;
    let read = objects
        .par_iter()
        .map(
            |obj| -> Result<std::result::Result<(Id, Sealed<T>), DamagedObject>> {
                let damaged = |reason: String| {
                    Ok(Err(DamagedObject {
                        object: obj.name.clone(),
                        reason,
                    }))
                };
                if obj.size > max_size {
                    return damaged(format!(
                        "{} bytes is too large for a {}",
                        obj.size,
                        kind.noun()
                    ));
                }
                let data = match backend.get(&obj.name) {
                    Ok(d) => d,
                    Err(BackendError::NotFound(_)) => {
                        return damaged("vanished while listing".into())
                    }
                    Err(e) => return Err(e.into()),
                };
                let id = Id::hash(&data);
                if !file_type.named_right(&obj.name, &data) {
                    return damaged("it does not match its content hash".into());
                }
                match Sealed::parse(kind, &data) {
                    Ok(s) => Ok(Ok((id, s))),
                    Err(e) => damaged(format!("malformed: {e}")),
                }
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let mut listing = SealedListing {
        objects: Vec::new(),
        damaged: Vec::new(),
    };
    for r in read {
        match r {
            Ok(o) => listing.objects.push(o),
            Err(d) => listing.damaged.push(d),
        }
    }
    listing.damaged.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::repofile::{Snapshot, SnapshotSummary};

    fn snapshot(duration_secs: f64, summary: SnapshotSummary) -> Snapshot {
        Snapshot {
            version: 2,
            time: time::macros::datetime!(2026-12-03 04:05:06.123456789 UTC),
            hostname: "node-1".into(),
            username: "vtool".into(),
            paths: vec!["/var/lib/node".into()],
            tags: vec!["nightly".into()],
            tree: Id([7; 32]),
            fingerprint: Id([9; 32]),
            summary: SnapshotSummary {
                duration_secs,
                ..summary
            },
            labels: BTreeMap::from([("profile".into(), "lighthouse".into())]),
            refs: None,
            holds: Vec::new(),
        }
    }

    /// What format 1 wrote: the pretty struct with `mac` last, MACed over the compact form
    /// with an empty `mac`.
    fn legacy_bytes(snap: &Snapshot, key: &ChunkKey) -> Vec<u8> {
        let unsigned = serde_json::to_vec(&Legacy {
            value: snap,
            mac: String::new(),
        })
        .expect("json");
        let mac = key.mac("vtool 2026-11 snapshot authentication", &unsigned);
        serde_json::to_vec_pretty(&Legacy { value: snap, mac }).expect("json")
    }

    fn summary() -> impl Strategy<Value = SnapshotSummary> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            0u64..1000,
        )
            .prop_map(
                |(files, dirs, bytes, bytes_read, bytes_added_stored, warnings)| SnapshotSummary {
                    files,
                    dirs,
                    bytes,
                    bytes_read,
                    bytes_added_stored,
                    warnings,
                    duration_secs: 0.0,
                },
            )
    }

    /// Durations as `Duration::as_secs_f64` makes them, from nanoseconds to a day: the
    /// 1-16 s range is where serde_json's default float parser is most often one ULP off.
    fn duration() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u64..16_000_000_000).prop_map(|n| Duration::from_nanos(n).as_secs_f64()),
            (0u64..86_400_000_000_000).prop_map(|n| Duration::from_nanos(n).as_secs_f64()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        #[test]
        fn sealed_snapshots_always_authenticate(d in duration(), s in summary()) {
            let key = ChunkKey::generate();
            let snap = snapshot(d, s);
            let bytes = seal(SealedKind::Snapshot, &snap, &key).expect("seal");
            let read = Sealed::<Snapshot>::parse(SealedKind::Snapshot, &bytes).expect("parse");
            prop_assert!(read.verify(SealedKind::Snapshot, &key));
            prop_assert_eq!(read.summary.duration_secs.to_bits(), d.to_bits());
            prop_assert_eq!(&*read, &snap);
            // The MAC binds the kind and the key.
            prop_assert!(!read.verify(SealedKind::DrillRecord, &key));
            prop_assert!(!read.verify(SealedKind::Snapshot, &ChunkKey::generate()));
        }

        #[test]
        fn format_1_snapshots_authenticate(d in duration(), s in summary()) {
            let key = ChunkKey::generate();
            let snap = snapshot(d, s);
            let bytes = legacy_bytes(&snap, &key);
            let read = Sealed::<Snapshot>::parse(SealedKind::Snapshot, &bytes).expect("parse");
            prop_assert!(read.verify(SealedKind::Snapshot, &key));
            prop_assert_eq!(&*read, &snap);
        }

        #[test]
        fn any_changed_byte_fails(d in duration(), at in any::<prop::sample::Index>(), mask in 1u8..=255) {
            let key = ChunkKey::generate();
            let mut bytes = seal(SealedKind::Snapshot, &snapshot(d, SnapshotSummary::default()), &key).expect("seal");
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
            // A change inside the body changes the MACed bytes; one outside it (even the final
            // newline turned into a space) breaks the framing parse insists on.
            if let Ok(read) = Sealed::<Snapshot>::parse(SealedKind::Snapshot, &bytes) {
                prop_assert!(!read.verify(SealedKind::Snapshot, &key), "flip at {} went unnoticed", i);
            }
        }
    }

    #[test]
    fn every_changed_byte_of_a_sealed_object_fails() {
        let key = ChunkKey::generate();
        let snap = snapshot(3.6432756790000003, SnapshotSummary::default());
        let bytes = seal(SealedKind::Snapshot, &snap, &key).expect("seal");
        for i in 0..bytes.len() {
            for mask in 1..=255u8 {
                let mut changed = bytes.clone();
                changed[i] ^= mask;
                if let Ok(read) = Sealed::<Snapshot>::parse(SealedKind::Snapshot, &changed) {
                    assert!(
                        !read.verify(SealedKind::Snapshot, &key),
                        "byte {i} ^ {mask:#04x} went unnoticed"
                    );
                }
            }
        }
    }

    #[test]
    fn the_float_the_old_code_refused_authenticates() {
        let key = ChunkKey::generate();
        let snap = snapshot(3.6432756790000003, SnapshotSummary::default());
        for bytes in [
            seal(SealedKind::Snapshot, &snap, &key).expect("seal"),
            legacy_bytes(&snap, &key),
        ] {
            let read = Sealed::<Snapshot>::parse(SealedKind::Snapshot, &bytes).expect("parse");
            assert!(read.verify(SealedKind::Snapshot, &key));
            assert_eq!(read.summary.duration_secs, 3.6432756790000003);
        }
    }

    #[test]
    fn fields_from_a_newer_vtool_keep_authenticating() {
        let key = ChunkKey::generate();
        let mut body =
            serde_json::to_value(snapshot(1.5, SnapshotSummary::default())).expect("json");
        body["added_later"] = serde_json::json!({"x": 1.000000000000001, "y": [1, 2]});
        // An unknown field first, spacing of its own: nothing about it is re-created.
        let json = serde_json::to_string(&body).expect("json");
        let text = format!("{{ \"zeta\" : 1 ,{}", &json[1..]);
        let body_bytes = text.as_bytes();
        let mac = key.mac(SealedKind::Snapshot.context(), body_bytes);
        let stored = format!("{{\"mac\":\"{mac}\",\"body\":{text}}}\n");
        let read =
            Sealed::<Snapshot>::parse(SealedKind::Snapshot, stored.as_bytes()).expect("parse");
        assert!(read.verify(SealedKind::Snapshot, &key));
        assert_eq!(read.summary.duration_secs, 1.5);
    }

    #[test]
    fn an_unsealed_config_never_verifies() {
        let key = ChunkKey::generate();
        let read = Sealed::<SnapshotSummary>::parse(SealedKind::Config, b"{\"files\":1,\"dirs\":0,\"bytes\":0,\"bytes_read\":0,\"bytes_added_stored\":0,\"warnings\":0,\"duration_secs\":0.0}").expect("parse");
        assert!(read.is_unsealed());
        assert!(!read.verify(SealedKind::Config, &key));
    }
}
