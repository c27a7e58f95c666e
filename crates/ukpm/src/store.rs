//! The [`ImageStore`] trait: where packages live, local layout or (later) containerd.
//!
//! Operations are written against this trait so that a second store slots in without reshaping
//! them. Its methods return boxed futures so the trait can be used as `dyn ImageStore`; the local
//! store runs its synchronous work on tokio's blocking pool.

use std::any::Any;
use std::future::Future;
use std::io::{self, Read};

use bytes::Bytes;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use ukpm_store::{FsckReport, GcReport, LocalStore, RefEntry, StoreError, unwrap_store_error};
use ukpm_types::{Descriptor, Digest};

use crate::error::{Error, Result};

/// A boxed, `Send` future, as the object-safe [`ImageStore`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A blocking reader of blob content that verifies the digest when it reaches the end.
pub type BlobRead = Box<dyn Read + Send>;

/// A hold on the store that keeps garbage collection from taking blobs not yet referenced.
pub type StoreLease = Box<dyn Any + Send>;

/// A blob being written in ranges, in place, from several downloads at once, resumable: what
/// landed is recorded, so an interrupted download fetches only what is missing.
pub trait RangedWrite: Send + Sync {
    /// The byte ranges (inclusive) still to fetch.
    fn missing(&self) -> Vec<(u64, u64)>;

    /// Writes bytes at an offset (a blocking call: page-cache writes of one network chunk).
    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()>;

    /// Records that bytes `start..=end` are written.
    fn landed(&self, start: u64, end: u64) -> std::io::Result<()>;

    /// Verifies the whole blob and makes it visible (blocking: it reads the blob once).
    fn commit(&self) -> Result<(Digest, u64)>;

    /// Gives up ranges; returns how long a prefix a sequential download may resume from.
    fn give_up_ranges(&self) -> Result<u64>;
}

/// The local store's ranged download, shared by the tasks fetching its ranges.
struct LocalRanged(std::sync::RwLock<Option<ukpm_store::Ranged>>);

impl LocalRanged {
    fn gone() -> std::io::Error {
        std::io::Error::other("the ranged download is already finished")
    }

    fn take(&self) -> std::io::Result<ukpm_store::Ranged> {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(Self::gone)
    }
}

impl RangedWrite for LocalRanged {
    fn missing(&self) -> Vec<(u64, u64)> {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .map(ukpm_store::Ranged::missing)
            .unwrap_or_default()
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().ok_or_else(Self::gone)?.write_at(offset, bytes)
    }

    fn landed(&self, start: u64, end: u64) -> std::io::Result<()> {
        let guard = self.0.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().ok_or_else(Self::gone)?.landed(start, end)
    }

    fn commit(&self) -> Result<(Digest, u64)> {
        Ok(self.take()?.commit()?)
    }

    fn give_up_ranges(&self) -> Result<u64> {
        Ok(self.take()?.into_sequential()?)
    }
}

/// What a ref must point at for [`ImageStore::set_ref`] to go ahead: a compare-and-swap, so
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

/// A content-addressed store of OCI images with named refs.
///
/// Implementations verify every blob's size and digest before it becomes visible, never let a
/// ref point at a missing blob, and make ref updates atomic.
pub trait ImageStore: Send + Sync + 'static {
    /// A short description for messages (`local store /path`).
    fn describe(&self) -> String;

    /// Takes a lease that keeps garbage collection out while blobs are written.
    fn lease(&self) -> BoxFuture<'_, Result<StoreLease>>;

    /// Whether the blob is present (with the given size, when given).
    fn has_blob(&self, digest: Digest, size: Option<u64>) -> BoxFuture<'_, Result<bool>>;

    /// Streams `content` into the store; it becomes visible only if it matches `expected`
    /// (digest and size) when given. Returns the digest and size of what was stored.
    fn write_blob(
        &self,
        content: BlobRead,
        expected: Option<(Digest, u64)>,
    ) -> BoxFuture<'_, Result<(Digest, u64)>>;

    /// How many bytes of `digest` an interrupted download left, to resume from (0: start over).
    fn resumable(&self, digest: Digest) -> BoxFuture<'_, Result<u64>> {
        let _ = digest;
        Box::pin(async { Ok(0) })
    }

    /// Writes the rest of a download whose first `offset` bytes an earlier attempt left; the
    /// whole blob is verified against `expected` before it becomes visible, and an interruption
    /// keeps what arrived for the next attempt.
    fn write_blob_from(
        &self,
        content: BlobRead,
        expected: (Digest, u64),
        offset: u64,
    ) -> BoxFuture<'_, Result<(Digest, u64)>> {
        if offset == 0 {
            return self.write_blob(content, Some(expected));
        }
        Box::pin(async move { Err(Error::Store(StoreError::Busy { digest: expected.0 })) })
    }

    /// Starts a download written in parallel ranges, verified whole at the end; `None` when this
    /// store cannot write in place (the caller downloads sequentially instead).
    fn ranged(&self, digest: Digest, size: u64) -> BoxFuture<'_, Result<Option<Arc<dyn RangedWrite>>>> {
        let _ = (digest, size);
        Box::pin(async { Ok(None) })
    }

    /// Stores a small document already in memory.
    fn put_bytes(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Digest>>;

    /// Reads a whole small blob, checked against the descriptor's size and digest.
    fn read_bytes(&self, descriptor: Descriptor) -> BoxFuture<'_, Result<Vec<u8>>>;

    /// Reads many small blobs at once (a listing's indexes and manifests), each checked like
    /// [`ImageStore::read_bytes`]; a missing or damaged one is an error in its own slot.
    fn read_many(&self, descriptors: Vec<Descriptor>) -> BoxFuture<'_, Result<Vec<Result<Vec<u8>>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(descriptors.len());
            for descriptor in descriptors {
                out.push(self.read_bytes(descriptor).await);
            }
            Ok(out)
        })
    }

    /// Opens a blob for a blocking, verifying read (use it on a blocking thread).
    fn open_blob(&self, digest: Digest) -> BoxFuture<'_, Result<BlobRead>>;

    /// Opens `len` bytes of a blob from `offset`, without verifying them: for uploads, where
    /// the store verified the blob when it came in and the registry verifies it again.
    fn open_blob_range(&self, digest: Digest, offset: u64, len: u64) -> BoxFuture<'_, Result<BlobRead>> {
        Box::pin(async move {
            let mut blob = self.open_blob(digest).await?;
            tokio::task::spawn_blocking(move || {
                std::io::copy(&mut (&mut blob).take(offset), &mut std::io::sink())?;
                Ok(Box::new(blob.take(len)) as BlobRead)
            })
            .await?
        })
    }

    /// Records that a blob came from `reference`'s repository (containerd's
    /// `distribution.source` label, which later pushes use to mount instead of upload).
    fn note_source(&self, digest: Digest, reference: &ukpm_types::Reference) -> BoxFuture<'_, Result<()>> {
        let _ = (digest, reference);
        Box::pin(async { Ok(()) })
    }

    /// The `registry/repository` names where a blob was last pushed or pulled: candidates to
    /// mount it from instead of uploading it again.
    fn blob_sources(&self, digest: Digest) -> BoxFuture<'_, Result<Vec<String>>> {
        let _ = digest;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Records where blobs are now known to be.
    fn remember_sources(&self, seen: Vec<(Digest, String)>) -> BoxFuture<'_, Result<()>> {
        let _ = seen;
        Box::pin(async { Ok(()) })
    }

    /// Every named ref.
    fn refs(&self) -> BoxFuture<'_, Result<Vec<RefEntry>>>;

    /// Points `name` at `descriptor` if the ref is as `expect` says; `Ok(false)` when it is not
    /// (someone else changed it first), so the caller can re-read and retry.
    fn set_ref(&self, name: String, descriptor: Descriptor, expect: Expect) -> BoxFuture<'_, Result<bool>>;

    /// Removes refs; returns those that existed.
    fn remove_refs(&self, names: Vec<String>) -> BoxFuture<'_, Result<Vec<RefEntry>>>;

    /// Deletes blobs no ref reaches.
    fn gc(&self) -> BoxFuture<'_, Result<GcReport>>;

    /// Finishes background work (giving back leases) before the process exits.
    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Checks every blob against its name and every ref against what it reaches.
    fn fsck(&self) -> BoxFuture<'_, Result<FsckReport>> {
        let store = self.describe();
        Box::pin(async move {
            Err(Error::InvalidInput(format!(
                "{store} checks its own content; fsck works on the local store"
            )))
        })
    }

    /// Takes a damaged blob out of the store so that a good copy can replace it.
    fn discard_blob(&self, digest: Digest) -> BoxFuture<'_, Result<()>> {
        let store = self.describe();
        Box::pin(async move {
            Err(Error::InvalidInput(format!(
                "{store} cannot discard blob {digest}"
            )))
        })
    }
}

/// The default store: an OCI image layout on the local disk.
#[derive(Debug, Clone)]
pub struct LocalImageStore {
    root: PathBuf,
    store: Arc<std::sync::OnceLock<LocalStore>>,
}

impl LocalImageStore {
    /// A store at `root`; nothing is created until the first write, so reading a store that was
    /// never written shows it empty instead of creating folders.
    pub fn new(root: impl Into<PathBuf>) -> LocalImageStore {
        LocalImageStore {
            root: root.into(),
            store: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// The layout's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The layout, created on first use.
    fn writable(&self) -> Result<LocalStore> {
        if let Some(store) = self.store.get() {
            return Ok(store.clone());
        }
        let store = LocalStore::open_or_create(&self.root)?;
        Ok(self.store.get_or_init(|| store).clone())
    }

    /// The layout if it exists; `None` for a store never written to.
    fn readable(&self) -> Result<Option<LocalStore>> {
        if let Some(store) = self.store.get() {
            return Ok(Some(store.clone()));
        }
        Ok(LocalStore::open_existing(&self.root)?)
    }

    fn blocking<T, F>(&self, f: F) -> BoxFuture<'_, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(LocalImageStore) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        Box::pin(async move { tokio::task::spawn_blocking(move || f(this)).await? })
    }
}

impl ImageStore for LocalImageStore {
    fn describe(&self) -> String {
        format!("local store {}", self.root.display())
    }

    fn lease(&self) -> BoxFuture<'_, Result<StoreLease>> {
        self.blocking(|s| Ok(Box::new(s.writable()?.lease()?) as StoreLease))
    }

    fn has_blob(&self, digest: Digest, size: Option<u64>) -> BoxFuture<'_, Result<bool>> {
        self.blocking(move |s| {
            let Some(store) = s.readable()? else {
                return Ok(false);
            };
            Ok(match (store.blob_size(&digest), size) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
        })
    }

    fn write_blob(
        &self,
        mut content: BlobRead,
        expected: Option<(Digest, u64)>,
    ) -> BoxFuture<'_, Result<(Digest, u64)>> {
        self.blocking(move |s| {
            let store = s.writable()?;
            let mut ingest = store.ingest()?;
            std::io::copy(&mut content, &mut ingest).map_err(|e| Error::Store(unwrap_store_error(e)))?;
            Ok(ingest.commit(expected)?)
        })
    }

    fn put_bytes(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Digest>> {
        self.blocking(move |s| Ok(s.writable()?.put_bytes(&bytes)?))
    }

    fn ranged(&self, digest: Digest, size: u64) -> BoxFuture<'_, Result<Option<Arc<dyn RangedWrite>>>> {
        self.blocking(move |s| {
            Ok(s.writable()?
                .ranged(digest, size)?
                .map(|r| Arc::new(LocalRanged(std::sync::RwLock::new(Some(r)))) as Arc<dyn RangedWrite>))
        })
    }

    fn resumable(&self, digest: Digest) -> BoxFuture<'_, Result<u64>> {
        self.blocking(move |s| Ok(s.readable()?.map_or(0, |store| store.partial_len(&digest))))
    }

    fn write_blob_from(
        &self,
        mut content: BlobRead,
        expected: (Digest, u64),
        offset: u64,
    ) -> BoxFuture<'_, Result<(Digest, u64)>> {
        self.blocking(move |s| {
            let store = s.writable()?;
            let (digest, size) = expected;
            match store.partial(digest, size, offset)? {
                Some(mut partial) if partial.offset() == offset => {
                    std::io::copy(&mut content, &mut partial)
                        .map_err(|e| Error::Store(unwrap_store_error(e)))?;
                    Ok(partial.commit()?)
                }
                // Fewer bytes were left than the caller resumes from: it must start over.
                Some(_) => Err(StoreError::Busy { digest }.into()),
                // Another process is downloading the same blob: download to a temp file.
                None if offset == 0 => {
                    let mut ingest = store.ingest()?;
                    std::io::copy(&mut content, &mut ingest)
                        .map_err(|e| Error::Store(unwrap_store_error(e)))?;
                    Ok(ingest.commit(Some(expected))?)
                }
                None => Err(StoreError::Busy { digest }.into()),
            }
        })
    }

    fn read_bytes(&self, descriptor: Descriptor) -> BoxFuture<'_, Result<Vec<u8>>> {
        self.blocking(move |s| match s.readable()? {
            Some(store) => Ok(store.read_blob(&descriptor)?),
            None => Err(StoreError::BlobNotFound {
                digest: descriptor.digest,
            }
            .into()),
        })
    }

    fn read_many(&self, descriptors: Vec<Descriptor>) -> BoxFuture<'_, Result<Vec<Result<Vec<u8>>>>> {
        // One blocking task for the lot: a listing of a thousand packages is two of these.
        self.blocking(move |s| {
            let Some(store) = s.readable()? else {
                return Ok(descriptors
                    .iter()
                    .map(|d| Err(StoreError::BlobNotFound { digest: d.digest }.into()))
                    .collect());
            };
            Ok(descriptors
                .iter()
                .map(|d| store.read_blob(d).map_err(Error::from))
                .collect())
        })
    }

    fn open_blob(&self, digest: Digest) -> BoxFuture<'_, Result<BlobRead>> {
        self.blocking(move |s| match s.readable()? {
            Some(store) => Ok(Box::new(store.open_blob(&digest)?) as BlobRead),
            None => Err(StoreError::BlobNotFound { digest }.into()),
        })
    }

    fn open_blob_range(&self, digest: Digest, offset: u64, len: u64) -> BoxFuture<'_, Result<BlobRead>> {
        self.blocking(move |s| {
            use std::io::{Seek, SeekFrom};
            let Some(store) = s.readable()? else {
                return Err(StoreError::BlobNotFound { digest }.into());
            };
            let path = store.blob_path(&digest);
            let mut file = match fs_err::File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StoreError::BlobNotFound { digest }.into());
                }
                Err(e) => return Err(e.into()),
            };
            file.seek(SeekFrom::Start(offset))?;
            Ok(Box::new(file.take(len)) as BlobRead)
        })
    }

    fn blob_sources(&self, digest: Digest) -> BoxFuture<'_, Result<Vec<String>>> {
        self.blocking(move |s| {
            Ok(s.readable()?
                .map(|store| store.blob_sources(&digest))
                .unwrap_or_default())
        })
    }

    fn remember_sources(&self, seen: Vec<(Digest, String)>) -> BoxFuture<'_, Result<()>> {
        self.blocking(move |s| match s.readable()? {
            Some(store) => Ok(store.remember_sources(&seen)?),
            None => Ok(()),
        })
    }

    fn refs(&self) -> BoxFuture<'_, Result<Vec<RefEntry>>> {
        self.blocking(|s| match s.readable()? {
            Some(store) => Ok(store.refs()?.entries()),
            None => Ok(Vec::new()),
        })
    }

    fn set_ref(&self, name: String, descriptor: Descriptor, expect: Expect) -> BoxFuture<'_, Result<bool>> {
        self.blocking(move |s| {
            s.writable()?.update_refs(|refs| {
                let current = refs.get(&name).map(|d| d.digest);
                let ok = match expect {
                    Expect::Any => true,
                    Expect::Absent => current.is_none(),
                    Expect::Digest(d) => current == Some(d),
                };
                if ok {
                    refs.set(&name, descriptor);
                }
                Ok::<_, Error>(ok)
            })
        })
    }

    fn remove_refs(&self, names: Vec<String>) -> BoxFuture<'_, Result<Vec<RefEntry>>> {
        self.blocking(move |s| {
            let Some(store) = s.readable()? else {
                return Ok(Vec::new());
            };
            store.update_refs(|refs| {
                Ok::<_, Error>(
                    names
                        .iter()
                        .filter_map(|name| {
                            refs.remove(name).map(|descriptor| RefEntry {
                                name: name.clone(),
                                descriptor,
                            })
                        })
                        .collect(),
                )
            })
        })
    }

    fn gc(&self) -> BoxFuture<'_, Result<GcReport>> {
        self.blocking(|s| match s.readable()? {
            Some(store) => Ok(store.gc()?),
            None => Ok(GcReport::default()),
        })
    }

    fn fsck(&self) -> BoxFuture<'_, Result<FsckReport>> {
        self.blocking(|s| match s.readable()? {
            Some(store) => Ok(store.fsck()?),
            None => Ok(FsckReport::default()),
        })
    }

    fn discard_blob(&self, digest: Digest) -> BoxFuture<'_, Result<()>> {
        self.blocking(move |s| match s.readable()? {
            Some(store) => Ok(store.quarantine(&digest)?),
            None => Ok(()),
        })
    }
}

/// A blocking `Read` over chunks that an async task sends, so the synchronous store can ingest
/// a download as it arrives.
pub(crate) struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(err)) => return Err(err),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
