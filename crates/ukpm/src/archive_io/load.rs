//! `ukpm load`: an OCI-layout tar staged blob by blob through verified ingest, checked whole,
//! then copied into the store.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::Path;

use ukpm_store::{LocalStore, StoreError};
use ukpm_types::{Descriptor, Digest, Index, annotation, limits, media_type};

use super::{LoadReport, Loaded, MAX_DEPTH, blocking};
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::store::{BlobRead, Expect};

impl PackageManager {
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
            let parsed = self.local_name(&name).map_err(|_| {
                Error::InvalidInput(format!(
                    "the archive names a package `{}`, which is no reference or ref name",
                    name.escape_debug()
                ))
            })?;
            if parsed.reference().is_some_and(|r| r.digest().is_some()) {
                return Err(Error::InvalidInput(format!(
                    "the archive names a package `{}` by digest; a name must be a tag",
                    name.escape_debug()
                )));
            }
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

/// Reads the tar (gzip-compressed too, as `docker save | gzip` leaves it), staging every blob
/// through a verified ingest, keeping `index.json`.
fn read_archive<R: Read>(reader: R, root: &Path) -> Result<ReadArchive> {
    use std::io::BufRead;
    let mut buffered = io::BufReader::with_capacity(1 << 16, reader);
    let head = buffered.fill_buf().map_err(Error::from_io)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        read_tar(flate2::read::MultiGzDecoder::new(buffered), root)
    } else {
        read_tar(buffered, root)
    }
}

fn read_tar<R: Read>(reader: R, root: &Path) -> Result<ReadArchive> {
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
            Some(size) => Err(hostile(format!(
                "its blob {} is {size} bytes where its descriptor says {}",
                d.digest, d.size
            ))),
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
