//! `inspect`: the documents behind a stored reference, as they are stored.

use ukpm_types::{Descriptor, Manifest, Reference, limits};

use crate::catalog::{LocalName, check_cap, parse};
use crate::error::Result;
use crate::manager::PackageManager;
use crate::package::Package;

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

impl PackageManager {
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
