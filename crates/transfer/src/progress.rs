//! One progress interface for every long operation (backup, restore, repair, check, copy,
//! drill), with one sink that ignores everything. It lives in the lowest crate so every
//! library reports through it and the CLI shows all of them with one progress bar.

/// Receives progress of a long operation. Called from one thread at a time.
pub trait Progress: Sync {
    /// A stage begins (`restoring`, `packs`, ...): the items (files, objects) and bytes it
    /// covers, 0 when unknown.
    fn stage(&self, _name: &str, _items: u64, _bytes: u64) {}
    /// `bytes` more of the current stage are done.
    fn advance(&self, _bytes: u64) {}
    /// A step finished, with its outcome (`boot 1: passed (0.12 s)`).
    fn finished(&self, _what: &str) {}
    /// Something the user should know about, without stopping: `what` (a path, an object)
    /// and the message.
    fn warn(&self, _what: &str, _message: &str) {}
}

/// Progress sink that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {}
