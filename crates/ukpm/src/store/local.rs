//! The default store: an OCI image layout on the local disk ([`ukpm_store::LocalStore`]), with
//! every optional capability: resumable downloads, mount hints and fsck.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ukpm_store::{FsckReport, GcReport, LocalStore, RefEntry, StoreError};
use ukpm_types::{Descriptor, Digest};

use super::{
    BlobRead, BoxFuture, ContentStore, Expect, ImageStore, Maintenance, MountHints, RangedWrite, RefStore,
    ResumableWrites, StoreLease,
};
use crate::error::{Error, Result};

/// Where the local store keeps derived facts ukpm may rebuild at any time (the listing
/// cache): beside `blobs/`, which other tools' readers of the layout ignore.
const CACHE_DIR: &str = "cache";

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
        super::on_blocking(self, f)
    }
}

impl ContentStore for LocalImageStore {
    fn describe(&self) -> String {
        format!("local store {}", self.root.display())
    }

    fn lease(&self) -> BoxFuture<'_, Result<StoreLease>> {
        self.blocking(|s| Ok(Box::new(s.writable()?.lease()?) as StoreLease))
    }

    fn read_lease(&self) -> BoxFuture<'_, Result<StoreLease>> {
        self.blocking(|s| match s.readable()? {
            Some(store) => Ok(Box::new(store.lease()?) as StoreLease),
            None => Ok(Box::new(()) as StoreLease),
        })
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
            ukpm_store::copy_large(&mut content, &mut ingest).map_err(Error::from_store_io)?;
            Ok(ingest.commit(expected)?)
        })
    }

    fn put_bytes(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Digest>> {
        self.blocking(move |s| Ok(s.writable()?.put_bytes(&bytes)?))
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

    fn has_blobs(&self, digests: Vec<Digest>) -> BoxFuture<'_, Result<Vec<bool>>> {
        self.blocking(move |s| {
            let Some(store) = s.readable()? else {
                return Ok(vec![false; digests.len()]);
            };
            Ok(digests.iter().map(|d| store.blob_size(d).is_some()).collect())
        })
    }

    fn read_cache(&self, name: &'static str) -> BoxFuture<'_, Option<Vec<u8>>> {
        let path = self.root.join(CACHE_DIR).join(name);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || fs_err::read(path).ok())
                .await
                .ok()
                .flatten()
        })
    }

    fn write_cache(&self, name: &'static str, bytes: Vec<u8>) -> BoxFuture<'_, ()> {
        let root = self.root.clone();
        Box::pin(async move {
            let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                // Never create a store to cache what it does not hold.
                if !root.join("oci-layout").is_file() {
                    return Ok(());
                }
                let dir = root.join(CACHE_DIR);
                fs_err::create_dir_all(&dir)?;
                // Group-shared like every file of the store (the umask decides), not 0600.
                let mut tmp = tempfile::Builder::new()
                    .permissions(ukpm_store::shared_mode())
                    .tempfile_in(&dir)?;
                std::io::Write::write_all(&mut tmp, &bytes)?;
                tmp.persist(dir.join(name)).map_err(|e| e.error)?;
                Ok(())
            })
            .await;
            if let Ok(Err(err)) = written {
                tracing::debug!(%err, "cannot write the store's {name} cache");
            }
        })
    }

    fn open_blob_range(&self, digest: Digest, offset: u64, len: u64) -> BoxFuture<'_, Result<BlobRead>> {
        self.blocking(move |s| {
            use std::io::{Seek, SeekFrom};
            let Some(store) = s.readable()? else {
                return Err(StoreError::BlobNotFound { digest }.into());
            };
            // A symlink or a fifo under the name is damage, never opened (a fifo would block).
            if store.stat_blob(&digest)?.is_none() {
                return Err(StoreError::BlobNotFound { digest }.into());
            }
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
}

impl RefStore for LocalImageStore {
    fn refs(&self) -> BoxFuture<'_, Result<Vec<RefEntry>>> {
        self.blocking(|s| match s.readable()? {
            Some(store) => Ok(store.refs()?.entries()),
            None => Ok(Vec::new()),
        })
    }

    fn set_ref(&self, name: String, descriptor: Descriptor, expect: Expect) -> BoxFuture<'_, Result<bool>> {
        self.blocking(move |s| {
            s.writable()?.update_refs(|refs| {
                let ok = expect.holds(refs.get(&name).map(|d| d.digest));
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

    fn keeps_ref_annotations(&self) -> bool {
        true
    }
}

/// How long a pull waits for another process's download of the same blob that writes nothing:
/// past it that process may be hung, and the pull fetches the blob on its own.
const DOWNLOAD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

impl ResumableWrites for LocalImageStore {
    fn wait_turn(&self, digest: Digest) -> BoxFuture<'_, Result<bool>> {
        self.blocking(move |s| match s.readable()? {
            Some(store) => Ok(store.wait_for_download(&digest, DOWNLOAD_PATIENCE)?),
            None => Ok(false),
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
                    ukpm_store::copy_large(&mut content, &mut partial).map_err(Error::from_store_io)?;
                    Ok(partial.commit()?)
                }
                // Fewer bytes were left than the caller resumes from: it must start over.
                Some(_) => Err(StoreError::Busy { digest }.into()),
                // Another process is downloading the same blob: download to a temp file.
                None if offset == 0 => {
                    let mut ingest = store.ingest()?;
                    ukpm_store::copy_large(&mut content, &mut ingest).map_err(Error::from_store_io)?;
                    Ok(ingest.commit(Some(expected))?)
                }
                None => Err(StoreError::Busy { digest }.into()),
            }
        })
    }

    fn ranged(&self, digest: Digest, size: u64) -> BoxFuture<'_, Result<Option<Arc<dyn RangedWrite>>>> {
        self.blocking(move |s| {
            Ok(s.writable()?
                .ranged(digest, size)?
                .map(|r| Arc::new(LocalRanged(std::sync::RwLock::new(Some(r)))) as Arc<dyn RangedWrite>))
        })
    }
}

impl MountHints for LocalImageStore {
    fn sources(&self, digest: Digest) -> BoxFuture<'_, Result<Vec<String>>> {
        self.blocking(move |s| {
            Ok(s.readable()?
                .map(|store| store.blob_sources(&digest))
                .unwrap_or_default())
        })
    }

    fn remember(&self, seen: Vec<(Digest, String)>) -> BoxFuture<'_, Result<()>> {
        self.blocking(move |s| match s.readable()? {
            Some(store) => Ok(store.remember_sources(&seen)?),
            None => Ok(()),
        })
    }
}

impl Maintenance for LocalImageStore {
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

impl ImageStore for LocalImageStore {
    fn gc(&self) -> BoxFuture<'_, Result<GcReport>> {
        self.blocking(|s| match s.readable()? {
            Some(store) => Ok(store.gc()?),
            None => Ok(GcReport::default()),
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        // Nothing runs in the background: every write is finished when its call returns.
        Box::pin(async { Ok(()) })
    }

    fn resumable_writes(&self) -> Option<&dyn ResumableWrites> {
        Some(self)
    }

    fn mount_hints(&self) -> Option<&dyn MountHints> {
        Some(self)
    }

    fn maintenance(&self) -> Option<&dyn Maintenance> {
        Some(self)
    }
}
