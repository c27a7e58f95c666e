//! Where packages live: the store traits, split by capability, and the two stores.
//!
//! Every store has [`ContentStore`] (verified blobs) and [`RefStore`] (named refs with a
//! compare-and-swap); [`ImageStore`] joins them with garbage collection and says which optional
//! capabilities the store has: [`ResumableWrites`] (downloads that survive a kill),
//! [`MountHints`] (where a blob was last seen, so a push can mount instead of upload) and
//! [`Maintenance`] (fsck and repair). A store that lacks one returns `None`, and the operation
//! that needs it says so or takes the plain path; nothing silently does nothing.
//!
//! Methods return boxed futures so the traits can be used as `dyn`; the local store runs its
//! synchronous work on tokio's blocking pool.

#[cfg(feature = "containerd")]
mod containerd;
mod kraftkit;
mod local;

use std::any::Any;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;

use ukpm_store::{FsckReport, GcReport, RefEntry};
use ukpm_types::{Descriptor, Digest};

use crate::error::Result;

#[cfg(feature = "containerd")]
pub use containerd::ContainerdImageStore;
pub use kraftkit::{KraftKitStore, default_runtime_dir as kraftkit_runtime_dir};
pub use local::LocalImageStore;

/// A boxed, `Send` future, as the object-safe store methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A blocking reader of blob content that verifies the digest when it reaches the end.
pub type BlobRead = Box<dyn Read + Send>;

/// A hold on the store that keeps garbage collection from taking blobs not yet referenced.
pub type StoreLease = Box<dyn Any + Send>;

/// Verified, content-addressed blobs: what every store has.
///
/// Implementations verify every blob's size and digest before it becomes visible.
pub trait ContentStore: Send + Sync {
    /// A short description for messages (`local store /path`).
    fn describe(&self) -> String;

    /// Takes a lease that keeps garbage collection out while blobs are written.
    fn lease(&self) -> BoxFuture<'_, Result<StoreLease>>;

    /// A lease for reading several documents as one view (a listing): garbage collection
    /// cannot take a blob away between reading a ref and reading what it names. Never creates
    /// a store; a store whose own garbage collection never races a reader (containerd keeps
    /// what its refs reach) needs none.
    fn read_lease(&self) -> BoxFuture<'_, Result<StoreLease>> {
        Box::pin(async { Ok(Box::new(()) as StoreLease) })
    }

    /// Whether the blob is present (with the given size, when given).
    fn has_blob(&self, digest: Digest, size: Option<u64>) -> BoxFuture<'_, Result<bool>>;

    /// Streams `content` into the store; it becomes visible only if it matches `expected`
    /// (digest and size) when given. Returns the digest and size of what was stored.
    fn write_blob(
        &self,
        content: BlobRead,
        expected: Option<(Digest, u64)>,
    ) -> BoxFuture<'_, Result<(Digest, u64)>>;

    /// Stores a small document already in memory.
    fn put_bytes(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Digest>>;

    /// Reads a whole small blob, checked against the descriptor's size and digest.
    fn read_bytes(&self, descriptor: Descriptor) -> BoxFuture<'_, Result<Vec<u8>>>;

    /// Reads many small blobs at once (a listing's indexes and manifests), each checked like
    /// [`ContentStore::read_bytes`]; a missing or damaged one is an error in its own slot.
    fn read_many(&self, descriptors: Vec<Descriptor>) -> BoxFuture<'_, Result<Vec<Result<Vec<u8>>>>>;

    /// Opens a blob for a blocking, verifying read (use it on a blocking thread).
    fn open_blob(&self, digest: Digest) -> BoxFuture<'_, Result<BlobRead>>;

    /// Opens `len` bytes of a blob from `offset`, without verifying them: for uploads, where
    /// the store verified the blob when it came in and the registry verifies it again.
    fn open_blob_range(&self, digest: Digest, offset: u64, len: u64) -> BoxFuture<'_, Result<BlobRead>>;

    /// Which of these blobs are present (any size), in one call: a listing's check that the
    /// manifests it knows from its cache are still there.
    fn has_blobs(&self, digests: Vec<Digest>) -> BoxFuture<'_, Result<Vec<bool>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(digests.len());
            for digest in digests {
                out.push(self.has_blob(digest, None).await?);
            }
            Ok(out)
        })
    }

    /// A file of derived facts the store keeps for ukpm beside its content (the listing
    /// cache, in the catalog): `None` when there is none, it cannot be read, or the store
    /// keeps none.
    fn read_cache(&self, _name: &'static str) -> BoxFuture<'_, Option<Vec<u8>>> {
        Box::pin(async { None })
    }

    /// Replaces a cache file, atomically, in a store that exists and that this user may write;
    /// anything else is left alone (a cache is never worth an error, nor creating a store).
    fn write_cache(&self, _name: &'static str, _bytes: Vec<u8>) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// What a ref must point at for [`RefStore::set_ref`] to go ahead: a compare-and-swap, so
/// two processes merging into the same index never lose each other's manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Set it whatever it points at.
    Any,
    /// Only if the ref does not exist yet.
    Absent,
    /// Only if it still points at this digest.
    Digest(Digest),
}

impl Expect {
    /// Whether a ref currently pointing at `current` satisfies the precondition.
    pub fn holds(self, current: Option<Digest>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => current.is_none(),
            Expect::Digest(d) => current == Some(d),
        }
    }
}

/// Named refs to stored content. A ref never points at a missing blob, and updates are atomic
/// compare-and-swaps.
pub trait RefStore: Send + Sync {
    /// Every named ref.
    fn refs(&self) -> BoxFuture<'_, Result<Vec<RefEntry>>>;

    /// Points `name` at `descriptor` if the ref is as `expect` says; `Ok(false)` when it is not
    /// (someone else changed it first), so the caller can re-read and retry.
    fn set_ref(&self, name: String, descriptor: Descriptor, expect: Expect) -> BoxFuture<'_, Result<bool>>;

    /// Removes refs; returns those that existed.
    fn remove_refs(&self, names: Vec<String>) -> BoxFuture<'_, Result<Vec<RefEntry>>>;

    /// Whether a ref keeps the annotations `set_ref` was given (the local store's `index.json`
    /// does), so that `ls` can tell a pulled package ([`crate::PULLED_ANNOTATION`]) from one
    /// that never was; containerd and KraftKit's tag links keep only the target.
    fn keeps_ref_annotations(&self) -> bool {
        false
    }
}

/// A blob being written in ranges, in place, from several downloads at once, resumable: what
/// landed is recorded, so an interrupted download fetches only what is missing. Every method
/// blocks (page-cache writes, a final hash): call them on a blocking thread.
pub trait RangedWrite: Send + Sync {
    /// The byte ranges (inclusive) still to fetch.
    fn missing(&self) -> Vec<(u64, u64)>;

    /// Writes bytes at an offset.
    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()>;

    /// Records that bytes `start..=end` are written.
    fn landed(&self, start: u64, end: u64) -> std::io::Result<()>;

    /// Verifies the whole blob and makes it visible.
    fn commit(&self) -> Result<(Digest, u64)>;

    /// Gives up ranges; returns how long a prefix a sequential download may resume from.
    fn give_up_ranges(&self) -> Result<u64>;
}

/// Downloads that survive an interruption: what arrived is kept (unverified, invisible) and
/// the next attempt continues from it.
pub trait ResumableWrites: Send + Sync {
    /// How many bytes of `digest` an interrupted download left, to resume from (0: start over).
    fn resumable(&self, digest: Digest) -> BoxFuture<'_, Result<u64>>;

    /// Writes the rest of a download whose first `offset` bytes an earlier attempt left; the
    /// whole blob is verified against `expected` before it becomes visible, and an interruption
    /// keeps what arrived for the next attempt.
    fn write_blob_from(
        &self,
        content: BlobRead,
        expected: (Digest, u64),
        offset: u64,
    ) -> BoxFuture<'_, Result<(Digest, u64)>>;

    /// Starts a download written in parallel ranges, verified whole at the end; `None` when
    /// another process is downloading the same blob (the caller downloads sequentially).
    fn ranged(&self, digest: Digest, size: u64) -> BoxFuture<'_, Result<Option<Arc<dyn RangedWrite>>>>;

    /// Waits while another process downloads `digest` into this store, so that a blob two
    /// pulls need at once is fetched once (the waiter then finds it stored, or takes over
    /// what a process that died left). Whether it waited.
    fn wait_turn(&self, digest: Digest) -> BoxFuture<'_, Result<bool>>;
}

/// Where blobs were last seen (`registry/repository`), so that a push mounts a blob from
/// another repository of the same registry instead of uploading it again.
pub trait MountHints: Send + Sync {
    /// The `registry/repository` names where a blob was last pushed or pulled.
    fn sources(&self, digest: Digest) -> BoxFuture<'_, Result<Vec<String>>>;

    /// Records where blobs are now known to be (`registry/repository` per digest).
    fn remember(&self, seen: Vec<(Digest, String)>) -> BoxFuture<'_, Result<()>>;
}

/// Checking and repairing the store's own content (`ukpm fsck`), for stores that do not
/// verify it themselves.
pub trait Maintenance: Send + Sync {
    /// Checks every blob against its name and every ref against what it reaches.
    fn fsck(&self) -> BoxFuture<'_, Result<FsckReport>>;

    /// Takes a damaged blob out of the store so that a good copy can replace it.
    fn discard_blob(&self, digest: Digest) -> BoxFuture<'_, Result<()>>;
}

/// A store of OCI images with named refs: content plus refs, garbage collection, and the
/// optional capabilities it has.
pub trait ImageStore: ContentStore + RefStore + 'static {
    /// Deletes blobs no ref reaches.
    fn gc(&self) -> BoxFuture<'_, Result<GcReport>>;

    /// Finishes background work (giving back leases) before the process exits.
    fn close(&self) -> BoxFuture<'_, Result<()>>;

    /// Resumable downloads, if this store keeps partial content.
    fn resumable_writes(&self) -> Option<&dyn ResumableWrites>;

    /// Where blobs were last seen, if this store remembers it.
    fn mount_hints(&self) -> Option<&dyn MountHints>;

    /// fsck and repair, if this store leaves checking its content to ukpm.
    fn maintenance(&self) -> Option<&dyn Maintenance>;
}

/// Runs a store's synchronous work on tokio's blocking pool with its own clone of the store
/// (the local and KraftKit stores are file-system code behind an async trait).
pub(crate) fn on_blocking<S, T, F>(store: &S, f: F) -> BoxFuture<'static, Result<T>>
where
    S: Clone + Send + 'static,
    T: Send + 'static,
    F: FnOnce(S) -> Result<T> + Send + 'static,
{
    let this = store.clone();
    Box::pin(async move { tokio::task::spawn_blocking(move || f(this)).await? })
}
