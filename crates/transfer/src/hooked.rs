//! A backend seen through hooks: check or refuse puts (fault injection: a link that drops, a
//! disk that fills up) and hide objects from listings (copy only chosen snapshots).
//! Everything else goes straight through.
//!
//! ```
//! use vtool_transfer::{Backend, BackendError, Hooked, LocalBackend};
//! # let dir = tempfile::tempdir().unwrap();
//! let local = LocalBackend::create(dir.path()).unwrap();
//! let read_only = Hooked::new(&local as &dyn Backend)
//!     .before_put(|name, _| Err(BackendError::PermissionDenied(name.into())));
//! assert!(read_only.put("config", b"{}").is_err());
//! ```

use std::ops::Deref;

use crate::{Backend, BackendError, LockSupport, ObjectInfo, TempFile};

type PutHook = Box<dyn Fn(&str, &[u8]) -> Result<(), BackendError> + Send + Sync>;
type ListFilter = Box<dyn Fn(&ObjectInfo) -> bool + Send + Sync>;

/// Forwards to the backend `P` points at (`&dyn Backend`, `Box<LocalBackend>`, …).
pub struct Hooked<P> {
    inner: P,
    before_put: Option<PutHook>,
    keep_listed: Option<ListFilter>,
}

impl<P> Hooked<P>
where
    P: Deref + Send + Sync,
    P::Target: Backend,
{
    pub fn new(inner: P) -> Self {
        Hooked {
            inner,
            before_put: None,
            keep_listed: None,
        }
    }

    /// Run before every put; an error fails the put without reaching the backend.
    pub fn before_put(
        mut self,
        hook: impl Fn(&str, &[u8]) -> Result<(), BackendError> + Send + Sync + 'static,
    ) -> Self {
        self.before_put = Some(Box::new(hook));
        self
    }

    /// List only the objects `keep` accepts.
    pub fn keep_listed(
        mut self,
        keep: impl Fn(&ObjectInfo) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.keep_listed = Some(Box::new(keep));
        self
    }
}

impl<P> Backend for Hooked<P>
where
    P: Deref + Send + Sync,
    P::Target: Backend,
{
    fn location(&self) -> String {
        self.inner.location()
    }
    fn put(&self, name: &str, data: &[u8]) -> Result<(), BackendError> {
        if let Some(hook) = &self.before_put {
            hook(name, data)?;
        }
        self.inner.put(name, data)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        self.inner.get(name)
    }
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, BackendError> {
        self.inner.get_range(name, offset, len)
    }
    fn stat(&self, name: &str) -> Result<Option<u64>, BackendError> {
        self.inner.stat(name)
    }
    fn list(&self, dir: &str) -> Result<Vec<ObjectInfo>, BackendError> {
        let mut all = self.inner.list(dir)?;
        if let Some(keep) = &self.keep_listed {
            all.retain(|o| keep(o));
        }
        Ok(all)
    }
    fn delete(&self, name: &str) -> Result<(), BackendError> {
        self.inner.delete(name)
    }
    fn delete_many(&self, names: &[String]) -> Result<(), BackendError> {
        self.inner.delete_many(names)
    }
    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }
    fn can_rename(&self) -> bool {
        self.inner.can_rename()
    }
    fn probe_conditional_put(&self) -> Result<Option<bool>, BackendError> {
        self.inner.probe_conditional_put()
    }
    fn probe_object_lock(&self) -> Result<Option<LockSupport>, BackendError> {
        self.inner.probe_object_lock()
    }
    fn retention_days(&self) -> Option<u32> {
        self.inner.retention_days()
    }
    fn enable_retention(&self, days: u32) -> Result<(), BackendError> {
        self.inner.enable_retention(days)
    }
    fn retain(&self, names: &[String]) -> Result<(), BackendError> {
        self.inner.retain(names)
    }
    fn rename(&self, from: &str, to: &str) -> Result<(), BackendError> {
        self.inner.rename(from, to)
    }
    fn list_temp(&self) -> Result<Vec<TempFile>, BackendError> {
        self.inner.list_temp()
    }
    fn remove_temp(&self, name: &str) -> Result<(), BackendError> {
        self.inner.remove_temp(name)
    }
}
