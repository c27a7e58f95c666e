//! Copying packages between stores, byte for byte: `ukpm import` (KraftKit's store into
//! ukpm's) and `ukpm export --to-kraftkit` (the other way), so both tools see one set of
//! packages during a migration.
//!
//! Every blob is read verified from the source and written through the destination's own
//! checked ingest, so digests are kept exactly and damaged content is refused. A package's
//! name is set only once every blob it reaches is in the destination: a package whose copy
//! fails is not half there, it is not there.

use std::io::Cursor;
use std::sync::Arc;

use ukpm_store::RefEntry;
use ukpm_types::{Descriptor, Manifest, Reference, media_type};

use crate::catalog::{Catalog, LocalName, parse};
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::store::{BlobRead, Expect, ImageStore, KraftKitStore};

/// One package copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// Its name in the source store, as stored.
    pub source: String,
    /// Its name in the destination store.
    pub target: String,
    /// What the name points at (the same digest on both sides).
    pub descriptor: Descriptor,
    /// Blobs written to the destination (those it already had are not counted).
    pub blobs_written: usize,
    /// Bytes written to the destination.
    pub bytes_written: u64,
    /// Manifests of the index that the source does not hold (a pull of one platform) and
    /// that therefore were not copied either.
    pub manifests_absent: usize,
}

/// A package that could not be copied; the destination's name for it was left as it was.
#[derive(Debug)]
pub struct CopyFailure {
    /// Its name in the source store.
    pub source: String,
    /// Why.
    pub error: Error,
}

/// What a copy did, package by package.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// The packages copied.
    pub copied: Vec<Copied>,
    /// The packages that were not, and why.
    pub failed: Vec<CopyFailure>,
}

#[derive(Default)]
struct Tally {
    blobs: usize,
    bytes: u64,
    absent: usize,
}

impl PackageManager {
    /// Copies KraftKit's packages (`names`, or every one when empty) into this manager's
    /// store, keeping their digests. Names are stored in their full form
    /// (`helloworld:latest` → `unikraft.org/helloworld:latest`, which is what KraftKit's short
    /// names stand for). A name not in `from` is an error before anything is copied.
    pub async fn import_from_kraftkit(&self, from: &KraftKitStore, names: &[String]) -> Result<CopyReport> {
        // A missing folder is a wrong path far more often than an empty store: say so.
        if !from.root().join("indexes").is_dir() && !from.root().join("digests").is_dir() {
            return Err(Error::InvalidInput(format!(
                "there is no KraftKit store at {} (no digests/ or indexes/ folder)",
                from.root().display()
            )));
        }
        let source: Arc<dyn ImageStore> = Arc::new(from.clone());
        copy_between(self, source, self.store_arc(), names).await
    }

    /// Copies this manager's packages (`names`, or every one when empty) into KraftKit's
    /// store, in the layout `kraft run` and `kraft pkg ls` read: blobs under
    /// `digests/sha256/`, a tag link per name under `indexes/`, each written atomically.
    pub async fn export_to_kraftkit(&self, to: &KraftKitStore, names: &[String]) -> Result<CopyReport> {
        let target: Arc<dyn ImageStore> = Arc::new(to.clone());
        copy_between(self, self.store_arc(), target, names).await
    }
}

/// Copies the packages `names` (every one when empty; names are resolved as local commands
/// resolve them, against the manager's first registry) from one store to another.
///
/// Each package is copied whole or not at all: its blobs first (verified on both sides), its
/// name last. One package failing does not stop the others; the report says which failed.
pub async fn copy_between(
    manager: &PackageManager,
    from: Arc<dyn ImageStore>,
    to: Arc<dyn ImageStore>,
    names: &[String],
) -> Result<CopyReport> {
    let catalog = Catalog::new(from.clone());
    let entries: Vec<RefEntry> = if names.is_empty() {
        from.refs().await?
    } else {
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let name: LocalName = manager.local_name(name)?;
            let entry = catalog.resolve(&name).await?.entry;
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        entries
    };
    let _lease = to.lease().await?;
    let mut report = CopyReport::default();
    for entry in entries {
        match copy_one(&catalog, to.as_ref(), &entry).await {
            Ok(copied) => report.copied.push(copied),
            Err(error) => report.failed.push(CopyFailure {
                source: entry.name,
                error,
            }),
        }
    }
    Ok(report)
}

/// The name a package gets in the destination: its full reference when its name is one (or
/// stands for one), else the name as it was.
fn target_name(name: &str) -> Result<String> {
    let reference: Reference = name
        .parse()
        .or_else(|_| name.to_ascii_lowercase().parse())
        .map_err(|_| Error::InvalidInput(format!("`{name}` names no package reference; it is not copied")))?;
    if reference.digest().is_some() {
        return Err(Error::InvalidInput(format!(
            "`{name}` names a digest, not a tag; it is not copied"
        )));
    }
    Ok(reference.to_string())
}

async fn copy_one(catalog: &Catalog, to: &dyn ImageStore, entry: &RefEntry) -> Result<Copied> {
    let target = target_name(&entry.name)?;
    let mut top = Descriptor::new(
        &entry.descriptor.media_type,
        entry.descriptor.digest,
        entry.descriptor.size,
    );
    if top.media_type.is_empty() {
        top.media_type = media_type::IMAGE_INDEX.to_string();
    }
    let mut tally = Tally::default();
    copy_tree(catalog, to, &top, &mut tally, 0).await?;
    if !to.set_ref(target.clone(), top.clone(), Expect::Any).await? {
        return Err(Error::InvalidInput(format!(
            "{target} changed while it was being copied"
        )));
    }
    Ok(Copied {
        source: entry.name.clone(),
        target,
        descriptor: top,
        blobs_written: tally.blobs,
        bytes_written: tally.bytes,
        manifests_absent: tally.absent,
    })
}

/// Copies a document and everything it reaches, children first, so the destination never
/// holds a document whose content is missing.
fn copy_tree<'a>(
    catalog: &'a Catalog,
    to: &'a dyn ImageStore,
    descriptor: &'a Descriptor,
    tally: &'a mut Tally,
    depth: usize,
) -> crate::store::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if depth > 4 {
            return Err(Error::InvalidInput(format!(
                "{} nests indexes too deeply to copy",
                descriptor.digest
            )));
        }
        let bytes = catalog.read_by_digest(descriptor).await?;
        if descriptor.is_index() {
            let index: ukpm_types::Index = parse(descriptor, &bytes, "image index")?;
            for child in &index.manifests {
                if !catalog.store().has_blob(child.digest, None).await? {
                    tally.absent += 1;
                    continue;
                }
                copy_tree(catalog, to, child, tally, depth + 1).await?;
            }
        } else if descriptor.is_manifest() {
            let manifest: Manifest = parse(descriptor, &bytes, "image manifest")?;
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                if to.has_blob(blob.digest, Some(blob.size)).await? {
                    continue;
                }
                let content: BlobRead = catalog.store().open_blob(blob.digest).await?;
                to.write_blob(content, Some((blob.digest, blob.size))).await?;
                tally.blobs += 1;
                tally.bytes += blob.size;
            }
        } else {
            return Err(Error::InvalidInput(format!(
                "{} is a `{}`, neither an image index nor a manifest; it is not copied",
                descriptor.digest, descriptor.media_type
            )));
        }
        let size = bytes.len() as u64;
        if !to.has_blob(descriptor.digest, Some(size)).await? {
            to.write_blob(Box::new(Cursor::new(bytes)), Some((descriptor.digest, size)))
                .await?;
            tally.blobs += 1;
            tally.bytes += size;
        }
        Ok(())
    })
}
