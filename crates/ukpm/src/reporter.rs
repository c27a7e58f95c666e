//! Progress reporting: the library never prints; it tells a [`Reporter`] what it is doing and
//! the binary decides how (or whether) to show it.

/// Receives progress from long operations. Every method has a do-nothing default, so a
/// reporter implements only what it shows.
pub trait Reporter: Send + Sync {
    /// A step has begun (`packing unikraft.org/nginx:latest (qemu/x86_64)`).
    fn step(&self, message: &str) {
        let _ = message;
    }

    /// A blob transfer or write has begun; `id` identifies it in later calls.
    fn blob_started(&self, id: u64, label: &str, total: Option<u64>) {
        let _ = (id, label, total);
    }

    /// More bytes of a blob have been handled (the running total).
    fn blob_progress(&self, id: u64, done: u64) {
        let _ = (id, done);
    }

    /// A blob is done.
    fn blob_finished(&self, id: u64) {
        let _ = id;
    }

    /// A blob needed no transfer (`already in the store`, `mounted`, `already in the registry`).
    fn blob_skipped(&self, label: &str, reason: &str) {
        let _ = (label, reason);
    }

    /// Something the user should know that is not an error (a skipped device node).
    fn warn(&self, message: &str) {
        let _ = message;
    }
}

/// A reporter that shows nothing, for library users who do not want progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {}

/// A process-wide unique id for [`Reporter::blob_started`].
pub(crate) fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
