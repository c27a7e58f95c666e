//! `ukpm save`: packages written as a deterministic OCI-layout tar, blobs streamed.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

use ukpm_store::RefEntry;
use ukpm_types::{Descriptor, Digest, Index, Manifest, media_type, to_go_json};

use super::{MAX_DEPTH, OCI_LAYOUT, SaveReport, Saved, blocking, ref_name};
use crate::catalog::{Catalog, parse};
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::store::BlobRead;

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
        // What the path names, following links: `/dev/stdout` is a link to a pipe, which has
        // no canonical path, so this is decided before any link is resolved.
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
        let path = match fs_err::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => fs_err::canonicalize(path)?,
            _ => path.to_path_buf(),
        };
        let path = path.as_path();
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
