//! Secrets on disk must be private to their owner, as ssh insists for private keys.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A secret file other users can read or write: readable, it leaks; writable, someone else
/// can swap it (a backup key with their own recipient, say).
#[derive(Debug, thiserror::Error)]
#[error("{} is accessible by other users (mode {mode:04o}); refusing to use it. Run `chmod 600 {}`", path.display(), path.display())]
pub struct ExposedSecret {
    pub path: PathBuf,
    pub mode: u32,
}

/// Refuse a regular file with any group or other permission bit. Pipes and devices
/// (`--identity /dev/stdin`, `<(pass show …)`) have no such meaning and pass, as does a file
/// that cannot be stat'ed (reading it reports why).
pub fn check_private_file(path: &Path) -> Result<(), ExposedSecret> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o077 != 0 => {
            Err(ExposedSecret {
                path: path.to_path_buf(),
                mode: meta.permissions().mode() & 0o7777,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owner_only_files_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secret");
        std::fs::write(&p, "x").expect("write");
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o620, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let r = check_private_file(&p);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}");
            if let Err(e) = r {
                assert!(
                    e.to_string()
                        .contains(&format!("chmod 600 {}", p.display())),
                    "{e}"
                );
            }
        }
        assert!(check_private_file(&dir.path().join("missing")).is_ok());
    }
}
