//! Every kind of object a repository holds: where it lives, how it is protected, and the
//! rule that names it. Every crate forms and checks object names through [`FileType`].

use vtool_transfer::{Backend, BackendError};

use crate::sealed::SealedKind;
use crate::Id;

/// A kind of repository object (see `doc/FORMAT.md`, "Objects and layout").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// `config`: the one object not named by its hash; sealed.
    Config,
    /// `keys/<id>`: the chunk key, encrypted to the recipients.
    Key,
    /// `snapshots/<id>`: sealed.
    Snapshot,
    /// `index/<id>`: encrypted.
    Index,
    /// `packs/<2 hex>/<id>`: encrypted blobs.
    Pack,
    /// `drills/<id>`: sealed.
    DrillRecord,
    /// `check/<id>`: which `--subset` slice ran last; neither encrypted nor sealed.
    CheckState,
    /// `refs/<id>`: every blob a snapshot needs; authenticated through the snapshot.
    Refs,
    /// `writers/<random id>`: a running (or ended) backup.
    Writer,
    /// `ends/<writer id>`: how a writer ended; created once.
    WriterEnd,
    /// `trash/<id>`: what forget and prune marked for deletion; sealed.
    Trash,
    /// `waiting/<trash id>`: the writers a trash record waits for; sealed.
    Waiting,
    /// `checks/<id>`: the outcome of a `vtool check` run at this location; sealed.
    CheckRecord,
    /// `reports/<id>`: a gate's verdict with its evidence, or a restore's override; sealed.
    Report,
}

impl FileType {
    /// Whether a location with Object Lock retains objects of this kind (the S3 backend's
    /// [`vtool_transfer::s3::RETAINED`]): what a restore needs.
    pub fn is_retained(self) -> bool {
        vtool_transfer::s3::RETAINED.contains(&self.dir())
    }

    /// Every kind of object.
    pub const ALL: [FileType; 14] = [
        FileType::Key,
        FileType::Config,
        FileType::Pack,
        FileType::Index,
        FileType::Refs,
        FileType::Snapshot,
        FileType::DrillRecord,
        FileType::CheckState,
        FileType::Writer,
        FileType::WriterEnd,
        FileType::Trash,
        FileType::Waiting,
        FileType::CheckRecord,
        FileType::Report,
    ];

    /// The directory its objects are listed under (`config` is the file itself).
    pub fn dir(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "keys",
            FileType::Snapshot => "snapshots",
            FileType::Index => "index",
            FileType::Pack => "packs",
            FileType::DrillRecord => "drills",
            FileType::CheckState => "check",
            FileType::Refs => "refs",
            FileType::Writer => "writers",
            FileType::WriterEnd => "ends",
            FileType::Trash => "trash",
            FileType::Waiting => "waiting",
            FileType::CheckRecord => "checks",
            FileType::Report => "reports",
        }
    }

    /// Encrypted to the recipients (readable only with the identity).
    pub fn is_encrypted(self) -> bool {
        matches!(self, FileType::Key | FileType::Index | FileType::Pack)
    }

    /// Carries a MAC over its body (see [`crate::sealed`]).
    pub fn sealed(self) -> Option<SealedKind> {
        match self {
            FileType::Config => Some(SealedKind::Config),
            FileType::Snapshot => Some(SealedKind::Snapshot),
            FileType::DrillRecord => Some(SealedKind::DrillRecord),
            FileType::Trash => Some(SealedKind::Trash),
            FileType::Waiting => Some(SealedKind::Waiting),
            FileType::CheckRecord => Some(SealedKind::CheckRecord),
            FileType::Report => Some(SealedKind::Report),
            _ => None,
        }
    }

    /// Named by the BLAKE3 of its stored bytes (the others by a fixed name, a random id or
    /// the id of the object they belong to).
    pub fn is_content_addressed(self) -> bool {
        !matches!(
            self,
            FileType::Config | FileType::Writer | FileType::WriterEnd | FileType::Waiting
        )
    }

    /// The object name of the one with this id (`config` ignores it).
    pub fn name(self, id: &Id) -> String {
        match self {
            FileType::Config => "config".into(),
            FileType::Pack => {
                let hex = id.to_hex();
                format!("packs/{}/{hex}", &hex[..2])
            }
            _ => format!("{}/{id}", self.dir()),
        }
    }

    /// The name `data` is stored under: its content hash.
    pub fn name_of(self, data: &[u8]) -> (Id, String) {
        let id = Id::hash(data);
        (id, self.name(&id))
    }

    /// The id in a well-formed name of this kind (the inverse of [`FileType::name`]).
    pub fn id_of(self, name: &str) -> Option<Id> {
        let hex = match self {
            FileType::Config => return None,
            FileType::Pack => {
                let (dir, hex) = name.strip_prefix("packs/")?.split_once('/')?;
                (hex.get(..2) == Some(dir)).then_some(hex)?
            }
            _ => name.strip_prefix(self.dir())?.strip_prefix('/')?,
        };
        let id = Id::from_hex(hex)?;
        (hex == id.to_hex()).then_some(id)
    }

    /// Store `data` under its content hash; returns the id.
    pub fn store(self, backend: &dyn Backend, data: &[u8]) -> Result<Id, BackendError> {
        let (id, name) = self.name_of(data);
        backend.put(&name, data)?;
        Ok(id)
    }

    /// The content-address rule: `data` is what `name` says it is. Always true for the
    /// config, which only its seal can vouch for.
    pub fn named_right(self, name: &str, data: &[u8]) -> bool {
        !self.is_content_addressed() || name == self.name(&Id::hash(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bind_the_content() {
        let data = b"object bytes";
        for t in FileType::ALL {
            let (id, name) = t.name_of(data);
            if t == FileType::Config {
                assert_eq!(name, "config");
                assert_eq!(t.id_of(&name), None);
                continue;
            }
            assert!(name.starts_with(&format!("{}/", t.dir())), "{name}");
            assert_eq!(t.id_of(&name), Some(id), "{name}");
            assert!(t.named_right(&name, data));
            assert_eq!(
                !t.named_right(&name, b"other bytes"),
                t.is_content_addressed()
            );
            assert_eq!(t.id_of(&name.to_uppercase()), None);
        }
        let hex = Id::hash(data).to_hex();
        assert_eq!(
            FileType::Pack.id_of(&format!("packs/{}/{hex}", &hex[..2])),
            Some(Id::hash(data))
        );
        assert_eq!(FileType::Pack.id_of(&format!("packs/zz/{hex}")), None);
        assert_eq!(FileType::Pack.id_of("packs/ab/short"), None);
        assert_eq!(FileType::Snapshot.id_of(&format!("index/{hex}")), None);
    }
}
