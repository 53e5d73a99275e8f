//! Storage backends for vtool repositories.
//!
//! A repository is a set of named, immutable objects (`config`, `keys/…`, `packs/ab/…`,
//! `index/…`, `snapshots/…`). Every backend implements [`Backend`]; nothing above this crate
//! knows whether the objects live on a local disk, a shipped drive or an SFTP server.
//!
//! ```
//! use vtool_transfer::{Backend, LocalBackend};
//! let dir = tempfile::tempdir().unwrap();
//! let repo = LocalBackend::create(dir.path()).unwrap();
//! repo.put("snapshots/abc", b"hello").unwrap();
//! assert_eq!(repo.get("snapshots/abc").unwrap(), b"hello");
//! assert_eq!(repo.list("snapshots").unwrap()[0].name, "snapshots/abc");
//! ```
//!
//! Every backend must pass [`conformance::run_all`], the one test suite that pins down the
//! semantics (never overwrite, ranges, listing, refused names).
//!
//! Backends: [`LocalBackend`] (a directory) and [`SftpBackend`] (`sftp://user@host[:port]/path`
//! on any OpenSSH server; keys and host-key checking are configured through the `VTOOL_SSH_*`
//! environment variables described on [`SftpConfig`]) and [`S3Backend`] (`s3://bucket/prefix` on
//! S3-compatible object stores, configured as described on [`s3`]). [`url::open`] picks one from `--repo`.
//! [`copy_objects`] copies what one repository lacks from another, resumably.
//! [`temp`] finds and removes the temporary files interrupted writers leave.

mod atomic;
pub mod conformance;
pub mod copy;
mod error;
mod hooked;
mod local;
mod name;
pub mod page_cache;
mod private_file;
mod progress;
pub mod s3;
pub mod sftp;
pub mod temp;
pub mod url;

use std::sync::Arc;

pub use atomic::write_atomic;
pub use copy::{copy_objects, CopyError, CopyOptions, CopyPhase, CopyReport, CopyStats};
pub use error::BackendError;
pub use hooked::Hooked;
pub use local::LocalBackend;
pub use name::validate_name;
pub use private_file::{check_private_file, ExposedSecret};
pub use progress::{NoProgress, Progress};
pub use s3::{LockSupport, S3Backend, S3Config};
pub use sftp::{SftpBackend, SftpConfig};
pub use temp::{
    clean_stale_temp, remove_stale_temp, survey_temp, TempCleanup, TempFile, TempSurvey,
    STALE_TEMP_AGE,
};

/// An object stored in a backend, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full object name, e.g. `packs/ab/ab12…`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
}

/// Named, immutable objects. Names are `/`-separated relative paths checked by
/// [`validate_name`]; an object, once written, is never overwritten.
pub trait Backend: Send + Sync {
    /// Human-readable location, used in messages.
    fn location(&self) -> String;

    /// Store `data` under `name`, atomically: readers see the whole object or nothing.
    /// Fails with [`BackendError::AlreadyExists`] if `name` exists; the old object stays.
    fn put(&self, name: &str, data: &[u8]) -> Result<(), BackendError>;

    /// [`Backend::put`] of data the caller gives up (a finished pack): an object store sends
    /// it without a copy.
    fn put_owned(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
        self.put(name, &data)
    }

    /// Read a whole object.
    fn get(&self, name: &str) -> Result<Vec<u8>, BackendError>;

    /// Read `len` bytes at `offset`. Reading past the end is an error, not a short read.
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError>;

    /// Size of an object, or `None` if it does not exist.
    fn stat(&self, name: &str) -> Result<Option<u64>, BackendError>;

    /// All objects below the directory `dir` (recursively), in no particular order.
    /// A missing directory lists as empty.
    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, BackendError>;

    /// Remove an object. Removing a missing object is [`BackendError::NotFound`].
    fn delete(&self, name: &str) -> Result<(), BackendError>;

    /// Remove many objects in as few requests as the store allows (S3: DeleteObjects, up to
    /// 1,000 names a request). Missing objects are not an error. On failure some of the
    /// names may be gone.
    fn delete_many(&self, names: &[String]) -> Result<(), BackendError> {
        delete_each(self, names)
    }

    /// How many whole-object transfers are worth running at once besides the CPU's work: a
    /// network object store, where each request mostly waits, gains from several; a disk
    /// or one SSH channel does not.
    fn concurrency(&self) -> usize {
        1
    }

    /// Whether [`Backend::rename`] works. Object stores have no rename (copy and delete is
    /// not atomic), so no write path may depend on it: objects are written once, whole,
    /// under their final name.
    fn can_rename(&self) -> bool {
        true
    }

    /// Whether a second conditional PUT (`If-None-Match: *`) of one name is refused, tried
    /// once with a probe object that is removed again; `None` for stores whose puts never
    /// overwrite without it (a file system, SFTP). `init` records the answer in the config.
    fn probe_conditional_put(&self) -> Result<Option<bool>, BackendError> {
        Ok(None)
    }

    /// Whether the store can refuse deletes until a date (S3 Object Lock on the bucket);
    /// `None` where the notion does not apply (on SFTP, an account that cannot delete does
    /// that job).
    fn probe_object_lock(&self) -> Result<Option<LockSupport>, BackendError> {
        Ok(None)
    }

    /// Days this location keeps each repository object it stores from deletion, counted
    /// from its write or its last [`Backend::retain`]; `None`: it keeps nothing.
    fn retention_days(&self) -> Option<u32> {
        None
    }

    /// Retain, from now on, every repository object written here for `days` (recorded in
    /// the location, so later runs keep doing it); refused where the store cannot.
    fn enable_retention(&self, days: u32) -> Result<(), BackendError> {
        let _ = days;
        Err(BackendError::Unsupported {
            op: "Object Lock (it needs an s3:// repository on a bucket with Object Lock; on SFTP use an account that cannot delete)",
            location: self.location(),
        })
    }

    /// Extend the retention of `names` to [`Backend::retention_days`] from now.
    fn retain(&self, names: &[String]) -> Result<(), BackendError> {
        let _ = names;
        Err(BackendError::Unsupported {
            op: "retention",
            location: self.location(),
        })
    }

    /// Rename `from` to `to`; fails with [`BackendError::AlreadyExists`] if `to` exists, and
    /// with [`BackendError::Unsupported`] where [`Backend::can_rename`] is false.
    fn rename(&self, from: &str, to: &str) -> Result<(), BackendError>;

    /// Every temporary file of an unfinished put (`.tmp-…` beside the objects, anywhere in
    /// the repository), which [`Backend::list`] never shows; see [`temp`] for what is stale.
    fn list_temp(&self) -> Result<Vec<TempFile>, BackendError>;

    /// Remove one temporary file named by [`Backend::list_temp`]; refuses any other name
    /// ([`temp::validate_temp_name`]). A missing file is [`BackendError::NotFound`].
    fn remove_temp(&self, name: &str) -> Result<(), BackendError>;
}

/// [`Backend::delete_many`] one object at a time, in order, stopping at the first failure.
pub fn delete_each<B: Backend + ?Sized>(b: &B, names: &[String]) -> Result<(), BackendError> {
    for name in names {
        match b.delete(name) {
            Ok(()) | Err(BackendError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A smart pointer to a backend is a backend: a `Box<dyn Backend>` can be passed on, and an
/// `Arc<dyn Backend>` shared with an owner such as a `Repository` while still used directly.
macro_rules! forward_backend {
    ($($ptr:ident),*) => {$(
        impl<B: Backend + ?Sized> Backend for $ptr<B> {
            fn location(&self) -> String {
                (**self).location()
            }
            fn put(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
                (**self).put(name, data)
            }
            fn put_owned(&self, name: &str, data: Vec<u8>) -> Result<(), BackendError> {
                (**self).put_owned(name, data)
            }
            fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
                (**self).get(name)
            }
            fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
                (**self).get_range(name, offset, len)
            }
            fn stat(&self, name: &str) -> Result<Option<u64>, BackendError> {
                (**self).stat(name)
            }
            fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, BackendError> {
                (**self).list(dir)
            }
            fn delete(&self, name: &str) -> Result<(), BackendError> {
                (**self).delete(name)
            }
            fn delete_many(&self, names: &[String]) -> Result<(), BackendError> {
                (**self).delete_many(names)
            }
            fn concurrency(&self) -> usize {
                (**self).concurrency()
            }
            fn can_rename(&self) -> bool {
                (**self).can_rename()
            }
            fn probe_conditional_put(&self) -> Result<Option<bool>, BackendError> {
                (**self).probe_conditional_put()
            }
            fn probe_object_lock(&self) -> Result<Option<LockSupport>, BackendError> {
                (**self).probe_object_lock()
            }
            fn retention_days(&self) -> Option<u32> {
                (**self).retention_days()
            }
            fn enable_retention(&self, days: u32) -> Result<(), BackendError> {
                (**self).enable_retention(days)
            }
            fn retain(&self, names: &[String]) -> Result<(), BackendError> {
                (**self).retain(names)
            }
            fn rename(&self, from: &str, to: &str) -> Result<(), BackendError> {
                (**self).rename(from, to)
            }
            fn list_temp(&self) -> Result<Vec<TempFile>, BackendError> {
                (**self).list_temp()
            }
            fn remove_temp(&self, name: &str) -> Result<(), BackendError> {
                (**self).remove_temp(name)
            }
        }
    )*};
}

forward_backend!(Box, Arc);
