//! Packages across an air gap: `ukpm save` writes packages as an OCI image layout in a tar
//! (what `skopeo copy oci-archive:FILE.tar:NAME` and `docker load` read), and `ukpm load`
//! reads such a tar back, verified, into the store.
//!
//! The archive is deterministic: entries sorted (`blobs/`, `blobs/sha256/`, every blob by
//! digest, `index.json`, `oci-layout`), mtime 0, uid and gid 0, modes 0755 and 0644, ustar
//! headers; saving the same packages twice gives the same bytes. Blobs stream from the store
//! into the tar, verified as they are read, never whole in memory.
//!
//! Loading streams the tar once. Every blob is written through a verified ingest (its digest is
//! its name, its size the tar header's) into a **staging layout** in the temp folder
//! (`TMPDIR`), so that a hostile or damaged archive (a `../` name, a link, a blob that does not
//! match its name, a missing blob, conflicting duplicates, a truncated tar) leaves the store
//! exactly as it was. Only once the whole archive is read and every package's tree checked
//! (every descriptor's size, every manifest's config and layers present) are the blobs copied
//! into the store, each through the store's own verified ingest, and each name set after all
//! of its package's blobs. The cost is writing each new blob twice; the temp folder needs room
//! for the archive's blobs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};
use std::path::Path;

use ukpm_store::{LocalStore, RefEntry, StoreError};
use ukpm_types::{Descriptor, Digest, Index, Manifest, annotation, limits, media_type, to_go_json};

use crate::catalog::{Catalog, parse};
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::store::{BlobRead, Expect};

/// What `oci-layout` says in an archive ukpm writes.
const OCI_LAYOUT: &[u8] = b"{\"imageLayoutVersion\":\"1.0.0\"}";
/// How deep indexes may nest (an index of indexes of manifests is already unusual).
const MAX_DEPTH: usize = 4;

/// One package written into an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// Its name in the store and in the archive's `index.json`.
    pub name: String,
    /// What the name points at.
    pub descriptor: Descriptor,
    /// Manifests of its index the store does not hold (a pull of one platform), which the
    /// archive does not hold either.
    pub manifests_absent: usize,
}

/// What [`PackageManager::save`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveReport {
    /// The packages, sorted by name.
    pub saved: Vec<Saved>,
    /// Blobs in the archive (each once, however many packages share it).
    pub blobs: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// One package loaded into the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Its name, as the archive's `index.json` gives it (a full reference, or a bare tag kept
    /// as written, as for any other tool's layout).
    pub name: String,
    /// What the name now points at.
    pub descriptor: Descriptor,
    /// Blobs written into the store (those it already had are not counted).
    pub blobs_written: usize,
    /// Bytes written into the store.
    pub bytes_written: u64,
    /// Manifests of its index the archive does not hold.
    pub manifests_absent: usize,
}

/// What [`PackageManager::load`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The packages loaded, in the archive's `index.json` order.
    pub loaded: Vec<Loaded>,
    /// Entries of the archive's `index.json` without a name, which were not loaded.
    pub unnamed: usize,
    /// Blobs read from the archive (each verified).
    pub blobs_read: usize,
    /// Their bytes.
    pub bytes_read: u64,
}

/// A blob to put into an archive: a document already read, or stored content of a known size.
enum Content {
    Document(Vec<u8>),
    Stored(u64),
}

impl PackageManager {
    /// Writes the packages `names` (every one when empty; names resolve as local commands
    /// resolve them) with every blob they reach, all platforms the store holds, into `writer`
    /// as a deterministic OCI-layout tar. Returns the report and the writer, flushed.
    ///
    /// A damaged blob fails the save; what was written to `writer` is then incomplete, so
    /// write to a temp file and keep it only on success ([`PackageManager::save_to_file`]).
    pub async fn save<W: Write + Send + 'static>(
        &self,
        names: &[String],
        writer: W,
    ) -> Result<(SaveReport, W)> {
        let catalog = self.catalog();
        let entries: Vec<RefEntry> = if names.is_empty() {
            self.store().refs().await?
        } else {
            let mut entries = Vec::with_capacity(names.len());
            for name in names {
                let entry = catalog.resolve(self.local_name(name)?).await?.entry;
                if !entries.contains(&entry) {
                    entries.push(entry);
                }
            }
            entries
        };
        let _lease = self.store().lease().await?;
        let mut blobs: BTreeMap<String, (Digest, Content)> = BTreeMap::new();
        let mut report = SaveReport::default();
        let mut index = Index::new();
        index.media_type = media_type::IMAGE_INDEX.to_string();
        for entry in entries {
            let mut top = entry.descriptor.clone();
            if top.media_type.is_empty() {
                top.media_type = media_type::IMAGE_INDEX.to_string();
            }
            let mut absent = 0;
            collect(&catalog, &top, &mut blobs, &mut absent, 0).await?;
            index.manifests.push(top.clone());
            report.saved.push(Saved {
                name: entry.name,
                descriptor: top,
                manifests_absent: absent,
            });
        }
        report.saved.sort_by(|a, b| a.name.cmp(&b.name));
        index
            .manifests
            .sort_by(|a, b| ref_name(a).cmp(&ref_name(b)).then(a.digest.cmp(&b.digest)));

        let mut tar = tar::Builder::new(writer);
        tar = blocking(move || {
            append_dir(&mut tar, "blobs/")?;
            append_dir(&mut tar, "blobs/sha256/")?;
            Ok(tar)
        })
        .await?;
        for (hex, (digest, content)) in blobs {
            let path = format!("blobs/sha256/{hex}");
            let (reader, size): (BlobRead, u64) = match content {
                Content::Document(bytes) => {
                    let size = bytes.len() as u64;
                    (Box::new(io::Cursor::new(bytes)), size)
                }
                Content::Stored(size) => (self.store().open_blob(digest).await?, size),
            };
            report.blobs += 1;
            report.bytes += size;
            tar = blocking(move || {
                append_file(&mut tar, &path, size, Exact::new(reader, size, digest))?;
                Ok(tar)
            })
            .await?;
        }
        let index_bytes = to_go_json(&index);
        let writer = blocking(move || {
            append_file(&mut tar, "index.json", index_bytes.len() as u64, &index_bytes[..])?;
            append_file(&mut tar, "oci-layout", OCI_LAYOUT.len() as u64, OCI_LAYOUT)?;
            let mut writer = tar.into_inner().map_err(Error::from_io)?;
            writer.flush().map_err(Error::from_io)?;
            Ok(writer)
        })
        .await?;
        Ok((report, writer))
    }

    /// [`PackageManager::save`] into the file `path`: written to a temp file beside it, synced
    /// and renamed over `path` only when complete, so a failure leaves no half archive.
    ///
    /// A path that is not a regular file (`/dev/stdout`, a fifo, a device) is written
    /// directly, since a rename would replace the device with a file; a symlink is followed,
    /// so its target is replaced.
    pub async fn save_to_file(&self, names: &[String], path: &Path) -> Result<SaveReport> {
        let path = match fs_err::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => fs_err::canonicalize(path)?,
            _ => path.to_path_buf(),
        };
        let path = path.as_path();
        if fs_err::metadata(path).is_ok_and(|meta| !meta.is_file()) {
            if path.is_dir() {
                return Err(Error::InvalidInput(format!(
                    "{} is a folder; give the archive's file name",
                    path.display()
                )));
            }
            let file = fs_err::OpenOptions::new().write(true).open(path)?;
            let (report, writer) = self.save(names, io::BufWriter::new(file)).await?;
            writer.into_inner().map_err(|e| e.into_error())?;
            return Ok(report);
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| Error::InvalidInput(format!("{} names no file", path.display())))?
            .to_string_lossy()
            .into_owned();
        let tmp = {
            use std::os::unix::fs::PermissionsExt;
            tempfile::Builder::new()
                .prefix(&format!(".{file_name}."))
                .permissions(std::fs::Permissions::from_mode(0o666))
                .tempfile_in(&dir)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("failed to create a temp file in {}: {e}", dir.display()),
                    )
                })?
        };
        let (report, tmp) = self.save(names, io::BufWriter::new(tmp)).await?;
        let target = path.to_path_buf();
        blocking(move || {
            let tmp = tmp.into_inner().map_err(|e| e.into_error())?;
            tmp.as_file().sync_all()?;
            tmp.persist(&target).map_err(|e| {
                io::Error::new(
                    e.error.kind(),
                    format!(
                        "failed to rename the archive to {}: {}",
                        target.display(),
                        e.error
                    ),
                )
            })?;
            Ok(())
        })
        .await?;
        Ok(report)
    }

    /// Loads an OCI-layout tar (one `ukpm save`, `skopeo copy ... oci-archive:`, or `docker
    /// save` wrote) into the store: every blob verified against its name and size, every
    /// package's tree checked, and only then the blobs copied in and each name set. Any
    /// problem with the archive fails the load with the store unchanged.
    ///
    /// A name is the entry's `org.opencontainers.image.ref.name` (a full reference, or a bare
    /// tag kept as written); where `io.containerd.image.name` gives a full reference (docker's
    /// archives, whose ref name is a bare tag), that is used. Unnamed entries are skipped.
    pub async fn load<R: Read + Send + 'static>(&self, reader: R) -> Result<LoadReport> {
        let staging = tempfile::Builder::new()
            .prefix("ukpm-load-")
            .tempdir()
            .map_err(|e| io::Error::new(e.kind(), format!("failed to create a staging folder: {e}")))?;
        let root = staging.path().join("layout");
        let read = blocking(move || read_archive(reader, &root)).await?;
        let stage = read.store.clone();
        let mut report = LoadReport {
            blobs_read: read.blobs,
            bytes_read: read.bytes,
            ..LoadReport::default()
        };

        // Check every package before anything enters the store.
        let mut packages = Vec::new();
        for descriptor in &read.index.manifests {
            let Some(name) = load_name(descriptor) else {
                report.unnamed += 1;
                continue;
            };
            self.local_name(&name).map_err(|_| {
                Error::InvalidInput(format!(
                    "the archive names a package `{}`, which is no reference or ref name",
                    name.escape_debug()
                ))
            })?;
            let mut top = descriptor.clone();
            top.annotations.remove(annotation::OCI_REF_NAME);
            if top.media_type.is_empty() {
                top.media_type = media_type::IMAGE_INDEX.to_string();
            }
            let stage = stage.clone();
            let check = top.clone();
            let (order, absent) = blocking(move || {
                let mut order = Vec::new();
                let mut absent = 0;
                check_tree(&stage, &check, &mut order, &mut absent, 0)?;
                Ok((order, absent))
            })
            .await?;
            packages.push((name, top, order, absent));
        }

        let _lease = self.store().lease().await?;
        for (name, top, order, absent) in packages {
            let mut loaded = Loaded {
                name,
                descriptor: top,
                blobs_written: 0,
                bytes_written: 0,
                manifests_absent: absent,
            };
            for (digest, size) in order {
                if self.store().has_blob(digest, Some(size)).await? {
                    continue;
                }
                let stage = stage.clone();
                let content: BlobRead =
                    blocking(move || Ok(Box::new(stage.open_blob(&digest)?) as BlobRead)).await?;
                self.store().write_blob(content, Some((digest, size))).await?;
                loaded.blobs_written += 1;
                loaded.bytes_written += size;
            }
            if !self
                .store()
                .set_ref(loaded.name.clone(), loaded.descriptor.clone(), Expect::Any)
                .await?
            {
                return Err(Error::InvalidInput(format!(
                    "{} changed while it was being loaded",
                    loaded.name
                )));
            }
            report.loaded.push(loaded);
        }
        drop(staging);
        Ok(report)
    }
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.get(annotation::OCI_REF_NAME).map(String::as_str)
}

/// The name an archive's `index.json` entry is loaded under.
fn load_name(d: &Descriptor) -> Option<String> {
    let containerd = d
        .annotations
        .get(annotation::CONTAINERD_IMAGE_NAME)
        .filter(|n| n.parse::<ukpm_types::Reference>().is_ok());
    containerd
        .or_else(|| d.annotations.get(annotation::OCI_REF_NAME))
        .filter(|n| !n.is_empty())
        .cloned()
}

/// Runs blocking work (tar, file I/O) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Gathers a stored document and everything it reaches for an archive.
fn collect<'a>(
    catalog: &'a Catalog,
    descriptor: &'a Descriptor,
    blobs: &'a mut BTreeMap<String, (Digest, Content)>,
    absent: &'a mut usize,
    depth: usize,
) -> crate::store::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(Error::InvalidInput(format!(
                "{} nests indexes too deeply to save",
                descriptor.digest
            )));
        }
        let bytes = catalog.read_by_digest(descriptor).await?;
        if descriptor.is_index() {
            let index: Index = parse(descriptor, &bytes, "image index")?;
            for child in &index.manifests {
                if !catalog.store().has_blob(child.digest, None).await? {
                    *absent += 1;
                    continue;
                }
                collect(catalog, child, blobs, absent, depth + 1).await?;
            }
        } else if descriptor.is_manifest() {
            let manifest: Manifest = parse(descriptor, &bytes, "image manifest")?;
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                blobs
                    .entry(blob.digest.hex())
                    .or_insert((blob.digest, Content::Stored(blob.size)));
            }
        } else {
            return Err(Error::InvalidInput(format!(
                "{} is a `{}`, neither an image index nor a manifest; it is not saved",
                descriptor.digest, descriptor.media_type
            )));
        }
        blobs.insert(
            descriptor.digest.hex(),
            (descriptor.digest, Content::Document(bytes)),
        );
        Ok(())
    })
}

/// A header as every entry of a saved archive has it: ustar, mtime 0, owner 0.
fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path).map_err(Error::from_io)?;
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    Ok(header)
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let header = header(path, tar::EntryType::Directory, 0o755, 0)?;
    tar.append(&header, io::empty()).map_err(Error::from_io)
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, size: u64, data: impl Read) -> Result<()> {
    let header = header(path, tar::EntryType::Regular, 0o644, size)?;
    tar.append(&header, data).map_err(Error::from_io)
}

/// Yields exactly `size` bytes of a blob and reads it to its end (where the store's reader
/// checks the digest), failing if the blob is shorter or longer, so a tar entry can never
/// disagree with its header.
struct Exact {
    inner: BlobRead,
    left: u64,
    digest: Digest,
}

impl Exact {
    fn new(inner: BlobRead, size: u64, digest: Digest) -> Exact {
        Exact {
            inner,
            left: size,
            digest,
        }
    }

    fn wrong_size(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("blob {} is not the size its manifest gives", self.digest),
        )
    }
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // The end: one more read lets the verifying reader check the digest.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(self.wrong_size()),
            };
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(self.wrong_size());
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What reading an archive left: the staging layout with every blob, and the index.
struct ReadArchive {
    store: LocalStore,
    index: Index,
    blobs: usize,
    bytes: u64,
}

/// What a path in an archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Dir,
    Blob,
    File(Vec<u8>),
    Other,
}

fn hostile(message: String) -> Error {
    Error::InvalidInput(format!("the archive is not a usable OCI layout: {message}"))
}

/// The path of an entry with `./` and empty components removed; an absolute path or a `..`
/// component is refused.
fn entry_path(raw: &[u8]) -> Result<String> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        hostile(format!(
            "the entry `{}` is not UTF-8",
            String::from_utf8_lossy(raw).escape_debug()
        ))
    })?;
    if text.starts_with('/') {
        return Err(hostile(format!(
            "the entry `{}` has an absolute path",
            text.escape_debug()
        )));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(hostile(format!(
                    "the entry `{}` escapes the archive's folder",
                    text.escape_debug()
                )));
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join("/"))
}

/// Reads the tar, staging every blob through a verified ingest, keeping `index.json`.
fn read_archive<R: Read>(reader: R, root: &Path) -> Result<ReadArchive> {
    let store = LocalStore::open_or_create(root)?;
    let mut archive = tar::Archive::new(reader);
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let (mut blobs, mut bytes) = (0usize, 0u64);
    let bad_tar = |e: io::Error| hostile(format!("it is not a complete tar: {e}"));
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let path = entry_path(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        let size = entry.header().size().map_err(bad_tar)?;
        let this = if kind.is_dir() {
            Seen::Dir
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            if path == "index.json" || path == "oci-layout" {
                let mut bytes = Vec::new();
                (&mut entry)
                    .take(limits::MANIFEST_LIMIT + 1)
                    .read_to_end(&mut bytes)
                    .map_err(bad_tar)?;
                if bytes.len() as u64 > limits::MANIFEST_LIMIT || bytes.len() as u64 != size {
                    return Err(hostile(format!("its {path} is truncated or too large")));
                }
                Seen::File(bytes)
            } else if let Some(rest) = path.strip_prefix("blobs/") {
                let Some(hex) = rest.strip_prefix("sha256/") else {
                    return Err(hostile(format!(
                        "the blob `{}` uses a digest algorithm ukpm does not support",
                        path.escape_debug()
                    )));
                };
                let digest: Digest = format!("sha256:{hex}").parse().map_err(|_| {
                    hostile(format!(
                        "the blob `{}` is not named by a digest",
                        path.escape_debug()
                    ))
                })?;
                if !matches!(seen.get(&path), Some(Seen::Blob)) {
                    let mut ingest = store.ingest()?;
                    io::copy(&mut entry, &mut ingest).map_err(bad_tar)?;
                    ingest.commit(Some((digest, size))).map_err(|e| match e {
                        StoreError::DigestMismatch { actual, .. } => hostile(format!(
                            "its blob {digest} is damaged or truncated: its content hashes to {actual}"
                        )),
                        other => Error::Store(other),
                    })?;
                    blobs += 1;
                    bytes += size;
                }
                Seen::Blob
            } else {
                // Other tools' extras (docker's `manifest.json`, `repositories`): not used.
                Seen::Other
            }
        } else {
            return Err(hostile(format!(
                "the entry `{}` is a {:?}; an OCI layout holds only files and folders",
                path.escape_debug(),
                kind
            )));
        };
        match seen.get(&path) {
            Some(before) if *before != this && this != Seen::Other => {
                return Err(hostile(format!(
                    "it holds `{}` twice, with different content",
                    path.escape_debug()
                )));
            }
            _ => {
                seen.insert(path, this);
            }
        }
    }
    if let Some(Seen::File(layout)) = seen.get("oci-layout") {
        let version = serde_json::from_slice::<serde_json::Value>(layout)
            .ok()
            .and_then(|v| v.get("imageLayoutVersion")?.as_str().map(str::to_string));
        if !version.as_deref().is_some_and(|v| v.starts_with("1.")) {
            return Err(hostile(
                "its `oci-layout` names no supported imageLayoutVersion".into(),
            ));
        }
    }
    let Some(Seen::File(index)) = seen.get("index.json") else {
        return Err(hostile("it has no index.json".into()));
    };
    let index: Index =
        serde_json::from_slice(index).map_err(|e| hostile(format!("its index.json is malformed: {e}")))?;
    Ok(ReadArchive {
        store,
        index,
        blobs,
        bytes,
    })
}

/// Checks a staged document and what it reaches (every size as its descriptor says; every
/// config and layer present) and lists the blobs children first, as they are to be copied.
fn check_tree(
    stage: &LocalStore,
    descriptor: &Descriptor,
    order: &mut Vec<(Digest, u64)>,
    absent: &mut usize,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(hostile(format!("{} nests indexes too deeply", descriptor.digest)));
    }
    let present = |d: &Descriptor| -> Result<()> {
        match stage.blob_size(&d.digest) {
            Some(size) if size == d.size => Ok(()),
            Some(size) => Err(Error::Store(StoreError::StoredSizeMismatch {
                digest: d.digest,
                expected: d.size,
                actual: size,
            })),
            None => Err(hostile(format!("it lacks the blob {}", d.digest))),
        }
    };
    present(descriptor)?;
    if descriptor.is_index() {
        let index = stage.read_index(descriptor)?;
        for child in &index.manifests {
            if stage.blob_size(&child.digest).is_none() {
                *absent += 1;
                continue;
            }
            check_tree(stage, child, order, absent, depth + 1)?;
        }
    } else if descriptor.is_manifest() {
        let manifest = stage.read_manifest(descriptor)?;
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            present(blob)?;
            order.push((blob.digest, blob.size));
        }
    } else {
        return Err(hostile(format!(
            "{} is a `{}`, neither an image index nor a manifest",
            descriptor.digest, descriptor.media_type
        )));
    }
    order.push((descriptor.digest, descriptor.size));
    let mut seen = BTreeSet::new();
    order.retain(|(d, _)| seen.insert(*d));
    Ok(())
}
