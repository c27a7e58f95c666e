//! ukpm's local store: an OCI image layout on disk that never shows unverified content.
//!
//! The layout is the standard one (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), so skopeo's
//! and umoci's `oci:` transports read it. ukpm adds three things beside it:
//!
//! - `ingest/`: every blob is written to a temp file there, hashed as it is written, checked
//!   against the size and digest it was announced with, synced, and only then renamed into
//!   `blobs/` ([`Ingest`]). A crash leaves at most a temp file, which [`LocalStore::gc`] removes.
//! - `ukpm.lock`: `index.json` is rewritten under this exclusive advisory lock, by temp file,
//!   sync and rename ([`LocalStore::update_refs`]), so concurrent ukpm processes never lose each
//!   other's refs and readers always see a whole file.
//! - `ukpm-gc.lock`: writers hold it shared for the length of an operation ([`LocalStore::lease`]);
//!   garbage collection holds it exclusively, so it never deletes blobs a pack in flight has
//!   written but not yet referenced.
//!
//! Reads verify too: [`BlobReader`] hashes what it yields and fails at the end if the bytes do
//! not match their name.
//!
//! This crate is synchronous and must not depend on tokio, reqwest or clap.

mod blob;
mod error;
mod fsck;
mod gc;
mod partial;
mod refs;
mod sources;

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ukpm_types::{Descriptor, Digest, Index, Manifest, limits, media_type, to_go_json};

pub use blob::{BlobReader, Ingest, VerifyingReader, unwrap_store_error};
pub use error::{Result, StoreError};
pub use fsck::{FsckReport, Problem};
pub use gc::{GcReport, PARTIAL_GRACE};
pub use partial::{Partial, Ranged};
pub use refs::{RefEntry, RefTable};

const OCI_LAYOUT: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";
const INDEX_JSON: &str = "index.json";
const INDEX_LOCK: &str = "ukpm.lock";
const GC_LOCK: &str = "ukpm-gc.lock";
/// What a layout being created holds before its `oci-layout` file appears.
const OWN_NAMES: &[&str] = &[
    "blobs",
    "ingest",
    OCI_LAYOUT,
    INDEX_JSON,
    INDEX_LOCK,
    GC_LOCK,
    "ukpm-sources.json",
];

/// A local OCI image layout; cheap to clone, safe to share between threads and processes.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// A shared hold on the store that keeps garbage collection out while it lives.
///
/// Take one before writing blobs that no ref points at yet, and keep it until the ref is set.
#[derive(Debug)]
pub struct Lease {
    _file: Option<fs_err::File>,
}

impl LocalStore {
    /// Opens the layout at `root`, creating it when `root` is missing or an empty folder.
    ///
    /// A folder holding anything but a layout is refused: ukpm never writes into a folder it
    /// does not own.
    pub fn open_or_create(root: impl Into<PathBuf>) -> Result<LocalStore> {
        let root = root.into();
        match Self::check_layout(&root) {
            Ok(()) => Ok(LocalStore { root }),
            Err(LayoutState::Missing) => Self::create(root),
            Err(LayoutState::Empty) => Self::create(root),
            Err(LayoutState::Invalid(reason)) => Err(StoreError::NotALayout { path: root, reason }),
        }
    }

    /// Opens an existing layout without creating anything; `Ok(None)` when `root` does not exist,
    /// so listing a store that was never written to shows nothing instead of failing.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Option<LocalStore>> {
        let root = root.into();
        match Self::check_layout(&root) {
            Ok(()) => Ok(Some(LocalStore { root })),
            Err(LayoutState::Missing | LayoutState::Empty) => Ok(None),
            Err(LayoutState::Invalid(reason)) => Err(StoreError::NotALayout { path: root, reason }),
        }
    }

    fn create(root: PathBuf) -> Result<LocalStore> {
        fs_err::create_dir_all(root.join("blobs").join("sha256"))?;
        let store = LocalStore { root };
        if !store.root.join(OCI_LAYOUT).exists() {
            write_atomic(&store.root, OCI_LAYOUT, OCI_LAYOUT_CONTENT.as_bytes())?;
        }
        let _lock = store.lock_index()?;
        if !store.root.join(INDEX_JSON).exists() {
            write_atomic(&store.root, INDEX_JSON, &to_go_json(&Index::new()))?;
        }
        Ok(store)
    }

    fn check_layout(root: &Path) -> std::result::Result<(), LayoutState> {
        let meta = match fs_err::metadata(root) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LayoutState::Missing),
            Err(e) => return Err(LayoutState::Invalid(e.to_string())),
        };
        if !meta.is_dir() {
            return Err(LayoutState::Invalid("it is not a folder".into()));
        }
        let layout = root.join(OCI_LAYOUT);
        let text = match fs_err::read_to_string(&layout) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A folder holding nothing, or only what a ukpm process creating the layout at
                // this very moment has made so far, may be (finished being) made a layout.
                let mut entries = fs_err::read_dir(root).map_err(|e| LayoutState::Invalid(e.to_string()))?;
                let empty = entries.all(|entry| {
                    entry.is_ok_and(|entry| {
                        let name = entry.file_name();
                        let name = name.to_string_lossy();
                        OWN_NAMES.contains(&name.as_ref())
                            || name.starts_with(".oci-layout.")
                            || name.starts_with(".index.json.")
                    })
                });
                return Err(if empty {
                    LayoutState::Empty
                } else {
                    LayoutState::Invalid("it has no `oci-layout` file and is not empty".into())
                });
            }
            Err(e) => return Err(LayoutState::Invalid(e.to_string())),
        };
        let version = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_string));
        match version {
            Some(v) if v.starts_with("1.") => Ok(()),
            Some(v) => Err(LayoutState::Invalid(format!(
                "unsupported imageLayoutVersion `{v}`"
            ))),
            None => Err(LayoutState::Invalid(
                "`oci-layout` has no imageLayoutVersion".into(),
            )),
        }
    }

    /// The layout's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Where a blob lives; safe to join because a [`Digest`] is always 64 hex characters.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// The size of a stored blob, or `None` when absent, or when its name holds anything but a
    /// regular file (which a write then replaces).
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        self.stat_blob(digest).ok().flatten()
    }

    /// The size of a stored blob, `Ok(None)` when absent, and [`StoreError::NotAFile`] when its
    /// name holds a symlink, a fifo or anything else but a regular file: looked at without
    /// following links, so such a blob is reported as damage and never opened (a read of a fifo
    /// would block forever).
    pub fn stat_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        match fs_err::symlink_metadata(self.blob_path(digest)) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(meta) => Err(StoreError::NotAFile {
                digest: *digest,
                kind: file_kind(&meta.file_type()),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts writing a blob.
    pub fn ingest(&self) -> Result<Ingest<'_>> {
        Ingest::new(self)
    }

    /// Stores a small in-memory document (a manifest, an index, a config) and returns its digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if self.blob_size(&digest) == Some(bytes.len() as u64) {
            return Ok(digest);
        }
        let mut ingest = self.ingest()?;
        ingest.write_all(bytes)?;
        Ok(ingest.commit(Some((digest, bytes.len() as u64)))?.0)
    }

    /// Opens a blob for a verifying read.
    ///
    /// Only a regular file is opened: a symlink or a fifo under a blob's name is
    /// [`StoreError::NotAFile`].
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        if self.stat_blob(digest)?.is_none() {
            return Err(StoreError::BlobNotFound { digest: *digest });
        }
        match open_regular(&self.blob_path(digest)) {
            Ok(file) => {
                // Swapped between the look and the open: still refuse what is not a file.
                let meta = file.metadata()?;
                if !meta.is_file() {
                    return Err(StoreError::NotAFile {
                        digest: *digest,
                        kind: file_kind(&meta.file_type()),
                    });
                }
                Ok(VerifyingReader::new(file, *digest))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound { digest: *digest })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole document (manifest, index, config) of at most `limit` bytes, checking its
    /// size against `descriptor` and its digest; a larger one is [`StoreError::TooLarge`],
    /// refused before anything is read.
    pub fn read_capped(&self, descriptor: &Descriptor, what: &'static str, limit: u64) -> Result<Vec<u8>> {
        let digest = descriptor.digest;
        let actual = self
            .stat_blob(&digest)?
            .ok_or(StoreError::BlobNotFound { digest })?;
        for size in [descriptor.size, actual] {
            if size > limit {
                return Err(StoreError::TooLarge {
                    digest,
                    what,
                    size,
                    limit,
                });
            }
        }
        self.read_blob(descriptor)
    }

    /// Reads a whole (small) blob, checking its size against `descriptor` and its digest.
    pub fn read_blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let digest = descriptor.digest;
        let actual = self
            .stat_blob(&digest)?
            .ok_or(StoreError::BlobNotFound { digest })?;
        if actual != descriptor.size {
            return Err(StoreError::StoredSizeMismatch {
                digest,
                expected: descriptor.size,
                actual,
            });
        }
        let mut bytes = Vec::with_capacity(actual as usize);
        self.open_blob(&digest)?
            .read_to_end(&mut bytes)
            .map_err(unwrap_store_error)?;
        Ok(bytes)
    }

    /// Reads and parses a stored manifest.
    pub fn read_manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        let bytes = self.read_capped(descriptor, "image manifest", limits::MANIFEST_LIMIT)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::BadDocument {
            digest: descriptor.digest,
            what: "image manifest",
            source,
        })
    }

    /// Reads and parses a stored index.
    pub fn read_index(&self, descriptor: &Descriptor) -> Result<Index> {
        let bytes = self.read_capped(descriptor, "image index", limits::MANIFEST_LIMIT)?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::BadDocument {
            digest: descriptor.digest,
            what: "image index",
            source,
        })
    }

    /// The current refs; a consistent snapshot without taking the lock, since `index.json` is
    /// only ever replaced whole.
    pub fn refs(&self) -> Result<RefTable> {
        let path = self.root.join(INDEX_JSON);
        let bytes = match fs_err::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RefTable::default()),
            Err(e) => return Err(e.into()),
        };
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::BadIndex { path, source })?;
        Ok(RefTable::from_index(index))
    }

    /// Runs `f` on the refs under the exclusive lock and, if it succeeds, writes them back
    /// atomically. Every ref `f` leaves must point at a stored blob.
    pub fn update_refs<T, E>(
        &self,
        f: impl FnOnce(&mut RefTable) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E>
    where
        E: From<StoreError>,
    {
        let _lock = self.lock_index()?;
        let mut table = self.refs()?;
        let before = table.entries();
        let out = f(&mut table)?;
        for entry in table.entries() {
            if !before.contains(&entry) && self.blob_size(&entry.descriptor.digest).is_none() {
                return Err(StoreError::DanglingRef {
                    name: entry.name,
                    digest: entry.descriptor.digest,
                }
                .into());
            }
        }
        let mut index = table.into_index();
        if index.media_type.is_empty() {
            index.media_type = media_type::IMAGE_INDEX.to_string();
        }
        write_atomic(&self.root, INDEX_JSON, &to_go_json(&index))?;
        Ok(out)
    }

    /// Takes a shared lease that keeps [`LocalStore::gc`] out until dropped.
    ///
    /// In a store this user cannot write (a shared read-only store), the lease is taken on the
    /// lock file opened for reading, or is empty when there is none: reading (`ls`, `inspect`,
    /// `unpack`) must work there, and whoever can run gc can write the lock file first.
    pub fn lease(&self) -> Result<Lease> {
        let file = match self.lock_file(GC_LOCK) {
            Ok(file) => Some(file),
            Err(StoreError::Io(e)) if read_only(&e) => match fs_err::File::open(self.root.join(GC_LOCK)) {
                Ok(file) => Some(file),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e),
        };
        if let Some(file) = &file {
            file.file().lock_shared()?;
        }
        Ok(Lease { _file: file })
    }

    fn lock_index(&self) -> Result<fs_err::File> {
        let file = self.lock_file(INDEX_LOCK)?;
        file.file().lock()?;
        Ok(file)
    }

    fn lock_file(&self, name: &str) -> Result<fs_err::File> {
        Ok(fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(name))?)
    }
}

/// Whether an error opening a file for writing means the store is not this user's to write.
fn read_only(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// What a file that should be a regular one is instead, for [`StoreError::NotAFile`].
pub(crate) fn file_kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_file() {
        "file"
    } else if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "folder"
    } else if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "device"
    }
}

enum LayoutState {
    Missing,
    Empty,
    Invalid(String),
}

/// Replaces `dir/name` with `bytes` by temp file, sync and rename, then syncs the folder, so a
/// crash leaves either the old file or the new one.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let target = dir.join(name);
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .permissions(shared_mode())
        .tempfile_in(dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("failed to create a temp file in {}: {e}", dir.display()),
            )
        })?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(&target).map_err(|e| {
        io::Error::new(
            e.error.kind(),
            format!("failed to replace {}: {}", target.display(), e.error),
        )
    })?;
    sync_dir(dir)
}

/// The mode every file of the store is created with, before the umask: 0666, as `open(2)` and
/// every other tool creates data files. A temp file would otherwise be 0600 whatever the
/// umask, and a store another user of the group writes to (`umask 002`, a set-group-ID folder
/// such as `/var/lib/ukpm`) could not be shared. The umask still applies: under 022 blobs are
/// 0644, under 002 0664.
pub fn shared_mode() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs_err::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests;

/// Opens a file for reading without following a symlink at its name and without blocking on a
/// fifo (`O_NOFOLLOW | O_NONBLOCK`; reads of a regular file are unaffected by the latter), so a
/// blob swapped for either between a look and the open can neither redirect nor hang the read.
/// The caller still checks that what it opened is a regular file.
pub(crate) fn open_regular(path: &std::path::Path) -> io::Result<fs_err::File> {
    use fs_err::os::unix::fs::OpenOptionsExt;
    fs_err::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Copies `reader` into `writer` through one 1 MiB buffer: a blob of gigabytes moved with
/// `io::copy`'s 8 KiB steps costs a read, a hash update and a write per 8 KiB, which shows
/// beside `cp` at 10 GiB. Interrupted reads are retried, as `io::copy` does.
pub fn copy_large(reader: &mut dyn io::Read, writer: &mut dyn io::Write) -> io::Result<u64> {
    let mut buffer = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        writer.write_all(&buffer[..n])?;
        total += n as u64;
    }
}

/// Every this many bytes a blob being written asks the kernel to start writing them to disk
/// ([`writeback_past`]).
const WRITEBACK_STEP: u64 = 32 << 20;

/// For a blob of which `[0, written)` is written and `[0, kicked)` was already handed to the
/// kernel's writeback: hands over the rest once it is [`WRITEBACK_STEP`] or more, and returns
/// how far that now reaches.
///
/// The kernel starts writing the range to disk at once, without waiting, so that the `fsync`
/// before a blob's rename finds little left to write: a 10 GiB blob otherwise sits in the page
/// cache until that `fsync`, which then writes all of it while nothing else happens.
/// `POSIX_FADV_DONTNEED` is the safe call that does it on Linux: it queues the range's dirty
/// pages for writeback (and drops only pages already clean, which these are not yet). Only a
/// hint: durability still comes from the `fsync`, and a failure here changes nothing.
pub(crate) fn writeback_past(file: &std::fs::File, kicked: u64, written: u64) -> u64 {
    let Some(len) = std::num::NonZeroU64::new(written.saturating_sub(kicked)) else {
        return kicked;
    };
    if len.get() < WRITEBACK_STEP {
        return kicked;
    }
    let _ = rustix::fs::fadvise(file, kicked, Some(len), rustix::fs::Advice::DontNeed);
    written
}
