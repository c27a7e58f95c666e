//! `inspect`: the documents behind a stored reference, as they are stored, and the summary
//! people read first (what each manifest holds: kernel, initrd, command, annotations).

use ukpm_types::{Annotations, Descriptor, Digest, ImageConfig, Manifest, Reference, annotation, limits};

use crate::catalog::{LocalName, check_cap, parse};
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::package::{Package, Query};
use crate::pull::describe_entry;
use crate::reporter::BlobKind;

/// The documents behind a reference, for `inspect`.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The reference inspected, as stored.
    pub reference: Reference,
    /// The ref name exactly as the store has it (`v1` for another tool's bare tag).
    pub name: String,
    /// What the reference points at.
    pub descriptor: Descriptor,
    /// The index, when the reference points at one.
    pub index: Option<serde_json::Value>,
    /// Each manifest with its config.
    pub manifests: Vec<InspectedManifest>,
    /// Where the documents were read: the store, or the registry (`inspect --remote`).
    pub source: Source,
}

/// Where an [`Inspection`]'s documents come from, so local and remote inspect share one shape
/// and a reader can tell which it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The local store.
    Local,
    /// The registry, read without storing anything.
    Remote,
}

impl Source {
    /// `local` or `remote`, as `--json` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Remote => "remote",
        }
    }
}

/// One manifest of an [`Inspection`].
#[derive(Debug, Clone)]
pub struct InspectedManifest {
    /// The package it is.
    pub package: Package,
    /// The manifest document.
    pub manifest: serde_json::Value,
    /// The config document.
    pub config: serde_json::Value,
}

impl Inspection {
    /// Keeps only the manifests for the platforms `query` asks for (`inspect --plat`); the
    /// index, if any, stays whole. No match is [`Error::NoPlatform`], naming what there is.
    pub fn select(&mut self, query: &Query) -> Result<()> {
        if query.architecture.is_none() && query.platform.is_none() && query.kconfig.is_empty() {
            return Ok(());
        }
        let available: Vec<String> = self
            .manifests
            .iter()
            .map(|m| describe_entry(&m.package.manifest))
            .collect();
        self.manifests
            .retain(|m| query.matches_platform(&m.package.platform));
        if self.manifests.is_empty() {
            return Err(Error::NoPlatform {
                reference: self.reference.clone(),
                query: query.describe(),
                available,
            });
        }
        Ok(())
    }
}

/// What a manifest holds, for `inspect`'s summary: read from its documents, so the same for
/// a stored package and one on a registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestSummary {
    /// The layers in order, each with what it carries.
    pub layers: Vec<LayerSummary>,
    /// The command the unikernel runs with (the config's `Cmd`).
    pub cmd: Vec<String>,
    /// Its environment (`K=V`).
    pub env: Vec<String>,
    /// The manifest's annotations.
    pub annotations: Annotations,
    /// The config's labels.
    pub labels: Annotations,
}

/// One layer of a [`ManifestSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// What it carries: kernel, initrd, debug kernel, or another layer.
    pub kind: BlobKind,
    /// The path inside the image its annotations name, if they name one.
    pub path: Option<String>,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes (of the layer: a tar of one file is that file plus 1 to 2 KiB).
    pub size: u64,
    /// Its media type.
    pub media_type: String,
}

impl InspectedManifest {
    /// The summary of this manifest; `None` when its documents do not read as a manifest and
    /// a config (they were checked when stored or fetched, so only a foreign shape).
    pub fn summary(&self) -> Option<ManifestSummary> {
        let manifest: Manifest = serde_json::from_value(self.manifest.clone()).ok()?;
        let config: ImageConfig = serde_json::from_value(self.config.clone()).ok()?;
        let layers = manifest
            .layers
            .iter()
            .map(|layer| LayerSummary {
                kind: BlobKind::of(layer),
                path: [
                    annotation::KERNEL_PATH,
                    annotation::KERNEL_INITRD_PATH,
                    annotation::KERNEL_DBG_PATH,
                ]
                .iter()
                .find_map(|key| layer.annotations.get(*key).cloned()),
                digest: layer.digest,
                size: layer.size,
                media_type: layer.media_type.clone(),
            })
            .collect();
        Some(ManifestSummary {
            layers,
            cmd: config.config.cmd.clone(),
            env: config.config.env.clone(),
            annotations: manifest.annotations.clone(),
            labels: config.config.labels.clone(),
        })
    }
}

impl PackageManager {
    /// The size of the file a single-file tar layer carries (the kernel, the initrd), from the
    /// tar headers at the start of the stored layer: what `inspect` shows beside the layer's
    /// own size. `None` for a compressed layer, one not in the store, or one whose first entry
    /// is not a regular file. Only headers are read (at most 64 KiB), never the file.
    pub async fn layer_file_size(&self, layer: &Descriptor) -> Option<u64> {
        if !layer.media_type.ends_with(".tar") {
            return None;
        }
        let head = self
            .store()
            .open_blob_range(layer.digest, 0, layer.size.min(64 * 1024))
            .await
            .ok()?;
        tokio::task::spawn_blocking(move || {
            let mut archive = tar::Archive::new(head);
            let entry = archive.entries().ok()?.next()?.ok()?;
            entry.header().entry_type().is_file().then(|| entry.size())
        })
        .await
        .ok()
        .flatten()
    }

    /// The index, manifests and configs `name` names (a reference, or a ref name as written).
    pub async fn inspect(&self, name: impl Into<LocalName>) -> Result<Inspection> {
        let name = name.into();
        let catalog = self.catalog();
        let resolved = catalog.resolve(&name).await?;
        let stored = catalog.stored_reference(&resolved, &name)?;
        let top = resolved.entry.descriptor.clone();
        let store = self.store();
        let index = if top.is_index() {
            let index = catalog.read_by_digest(&top).await?;
            Some(parse::<serde_json::Value>(&top, &index, "image index")?)
        } else {
            None
        };
        let mut manifests = Vec::new();
        for package in catalog.packages_of_resolved(&resolved, &name).await? {
            let manifest_bytes = catalog.read_by_digest(&package.manifest).await?;
            let manifest: Manifest = parse(&package.manifest, &manifest_bytes, "image manifest")?;
            check_cap(&manifest.config, "image config", limits::CONFIG_LIMIT)?;
            let config_bytes = store.read_bytes(manifest.config.clone()).await?;
            manifests.push(InspectedManifest {
                manifest: parse(&package.manifest, &manifest_bytes, "image manifest")?,
                config: parse(&manifest.config, &config_bytes, "image config")?,
                package,
            });
        }
        Ok(Inspection {
            reference: stored,
            name: resolved.entry.name,
            descriptor: top,
            index,
            manifests,
            source: Source::Local,
        })
    }
}
