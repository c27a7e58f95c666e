//! `inspect`: the documents behind a stored reference, as they are stored.

use ukpm_types::{Descriptor, Manifest, Reference};

use crate::catalog::parse;
use crate::error::Result;
use crate::manager::PackageManager;
use crate::package::Package;

/// The documents behind a reference, for `inspect`.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The reference inspected, as stored.
    pub reference: Reference,
    /// What the reference points at.
    pub descriptor: Descriptor,
    /// The index, when the reference points at one.
    pub index: Option<serde_json::Value>,
    /// Each manifest with its config.
    pub manifests: Vec<InspectedManifest>,
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
    /// The index, manifests and configs `reference` names.
    pub async fn inspect(&self, reference: &Reference) -> Result<Inspection> {
        let catalog = self.catalog();
        let resolved = catalog.resolve(reference).await?;
        let stored = resolved.reference_or(reference);
        let top = resolved.entry.descriptor;
        let store = self.store();
        let index = if top.is_index() {
            let bytes = store.read_bytes(top.clone()).await?;
            Some(parse::<serde_json::Value>(&top, &bytes, "image index")?)
        } else {
            None
        };
        let mut manifests = Vec::new();
        for package in catalog.packages_of(&stored, &top).await? {
            let manifest_bytes = catalog.read_by_digest(&package.manifest).await?;
            let manifest: Manifest = parse(&package.manifest, &manifest_bytes, "image manifest")?;
            let config_bytes = store.read_bytes(manifest.config.clone()).await?;
            manifests.push(InspectedManifest {
                manifest: parse(&package.manifest, &manifest_bytes, "image manifest")?,
                config: parse(&manifest.config, &config_bytes, "image config")?,
                package,
            });
        }
        Ok(Inspection {
            reference: stored,
            descriptor: top,
            index,
            manifests,
        })
    }
}
