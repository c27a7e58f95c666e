//! The catalog: every operation's one way to find packages in a store. It resolves references
//! (by tag, or by the digest of an index or of one of its manifests), lists packages with
//! filters (KraftKit's `Catalog`), and reads stored documents, tolerating the quirks of
//! KraftKit's indexes (a wrong manifest size) while still checking every digest.

use std::sync::Arc;

use ukpm_store::RefEntry;
use ukpm_types::{Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Reference, annotation};

use crate::error::{Error, Result};
use crate::package::{Package, Query};
use crate::store::ImageStore;

/// Finds and reads packages in one store; cheap to clone. [`crate::PackageManager::catalog`]
/// gives the manager's.
#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn ImageStore>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("store", &self.store.describe())
            .finish()
    }
}

/// A stored ref a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The ref: its full name and what it points at.
    pub entry: RefEntry,
    /// The manifest the reference named by digest inside the ref's index, if it did.
    pub manifest: Option<Digest>,
}

impl Resolved {
    /// The stored name as a reference (the ref's own name; `fallback` if it does not parse).
    pub fn reference_or(&self, fallback: &Reference) -> Reference {
        self.entry.name.parse().unwrap_or_else(|_| fallback.clone())
    }
}

impl Catalog {
    /// The catalog of `store`.
    pub fn new(store: Arc<dyn ImageStore>) -> Catalog {
        Catalog { store }
    }

    /// The store it reads.
    pub fn store(&self) -> &dyn ImageStore {
        self.store.as_ref()
    }

    /// Reads a stored image index.
    pub async fn read_index(&self, descriptor: &Descriptor) -> Result<Index> {
        let bytes = self.store.read_bytes(descriptor.clone()).await?;
        parse(descriptor, &bytes, "image index")
    }

    /// Lists the stored packages matching `query`, one per manifest, in store order.
    pub async fn list(&self, query: &Query) -> Result<Vec<Package>> {
        let store = self.store.as_ref();
        let mut refs = Vec::new();
        for entry in store.refs().await? {
            let Ok(reference) = entry.name.parse::<Reference>() else {
                tracing::debug!(name = %entry.name, "skipping a ref whose name is not a reference");
                continue;
            };
            if query.matches_name(&reference) {
                refs.push((reference, entry.descriptor));
            }
        }
        // Read every index at once, then every manifest at once: a store of a thousand
        // packages lists in two batches, not two thousand round trips.
        let tops = store
            .read_many(refs.iter().map(|(_, d)| d.clone()).collect())
            .await?;
        let mut wanted: Vec<(usize, Descriptor)> = Vec::new();
        for (i, ((reference, top), bytes)) in refs.iter().zip(tops).enumerate() {
            if top.is_index() {
                let index: Index = parse(top, &bytes?, "image index")?;
                wanted.extend(
                    index
                        .manifests
                        .into_iter()
                        .filter(Descriptor::is_manifest)
                        .map(|m| (i, m)),
                );
            } else if top.is_manifest() {
                bytes?;
                wanted.push((i, top.clone()));
            } else {
                return Err(Error::NotAnImage {
                    reference: reference.clone(),
                    media_type: top.media_type.clone(),
                });
            }
        }
        let manifests = store
            .read_many(wanted.iter().map(|(_, d)| d.clone()).collect())
            .await?;
        let mut out = Vec::new();
        for ((i, entry), bytes) in wanted.into_iter().zip(manifests) {
            let (reference, top) = &refs[i];
            let bytes = match bytes {
                Ok(bytes) => bytes,
                // A pull keeps the registry's whole index but only the platforms asked for.
                Err(err) if top.is_index() && err.is_missing_blob() => continue,
                // KraftKit's `size: 32` entries: read by digest alone.
                Err(err) if err.stored_size().is_some() => self.read_by_digest(&entry).await?,
                Err(err) => return Err(err),
            };
            let manifest: Manifest = parse(&entry, &bytes, "image manifest")?;
            let entry = self.with_platform(entry, &manifest).await?;
            let index = top.is_index().then(|| top.clone());
            let created = top.annotations.get(annotation::OCI_CREATED).cloned();
            let package = Package::new(reference.clone(), index, entry, &manifest, created);
            if query.matches_platform(&package.platform) {
                out.push(package);
            }
        }
        Ok(out)
    }

    /// The packages (manifests) a stored ref target holds.
    pub async fn packages_of(&self, reference: &Reference, target: &Descriptor) -> Result<Vec<Package>> {
        let store = self.store.as_ref();
        let created = target.annotations.get(annotation::OCI_CREATED).cloned();
        if target.is_index() {
            let index = self.read_index(target).await?;
            let mut out = Vec::with_capacity(index.manifests.len());
            for entry in index.manifests.into_iter().filter(Descriptor::is_manifest) {
                // A pull keeps the registry's whole index but only the platforms asked for.
                if !store.has_blob(entry.digest, None).await? {
                    continue;
                }
                let manifest = self.read_manifest(&entry).await?;
                let entry = self.with_platform(entry, &manifest).await?;
                out.push(Package::new(
                    reference.clone(),
                    Some(target.clone()),
                    entry,
                    &manifest,
                    created.clone(),
                ));
            }
            Ok(out)
        } else if target.is_manifest() {
            let manifest = self.read_manifest(target).await?;
            let entry = self.with_platform(target.clone(), &manifest).await?;
            Ok(vec![Package::new(
                reference.clone(),
                None,
                entry,
                &manifest,
                created,
            )])
        } else {
            Err(Error::NotAnImage {
                reference: reference.clone(),
                media_type: target.media_type.clone(),
            })
        }
    }

    /// Reads a stored manifest by its descriptor, tolerating a wrong size where KraftKit
    /// wrote one (the digest is still checked).
    pub async fn read_manifest(&self, descriptor: &Descriptor) -> Result<Manifest> {
        // KraftKit writes `size: 32` for merged index entries; a wrong size is tolerated there
        // and the digest, which is what matters, is still checked.
        let bytes = self.read_by_digest(descriptor).await?;
        parse(descriptor, &bytes, "image manifest")
    }

    /// Reads the config a manifest names.
    pub async fn read_config(&self, manifest: &Manifest) -> Result<ImageConfig> {
        let bytes = self.store.read_bytes(manifest.config.clone()).await?;
        parse(&manifest.config, &bytes, "image config")
    }

    /// Reads a stored blob by digest when its descriptor's size may be wrong (KraftKit's
    /// merged index entries say `size: 32`); the digest decides.
    pub async fn read_by_digest(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let store = self.store.as_ref();
        match store.read_bytes(descriptor.clone()).await {
            Err(err) if err.stored_size().is_some() => {
                let actual = err.stored_size().unwrap_or(descriptor.size);
                tracing::warn!(digest = %descriptor.digest, declared = descriptor.size, actual, "descriptor size is wrong");
                let mut fixed = descriptor.clone();
                fixed.size = actual;
                store.read_bytes(fixed).await
            }
            other => other,
        }
    }

    /// Fills in a descriptor's platform from the config descriptor or the config itself, for
    /// third-party images whose index entries or manifests lack one.
    async fn with_platform(&self, mut entry: Descriptor, manifest: &Manifest) -> Result<Descriptor> {
        if entry.platform.is_none() {
            entry.platform = match &manifest.config.platform {
                Some(p) => Some(p.clone()),
                None => {
                    let config = self.read_config(manifest).await?;
                    Some(Platform {
                        architecture: config.architecture,
                        os: config.os,
                        os_version: config.os_version,
                        os_features: ukpm_types::compact_sorted(&config.os_features),
                        variant: config.variant,
                    })
                }
            };
        }
        Ok(entry)
    }

    /// The stored ref for `reference`: by tag, or by digest (of the index or of one of its
    /// manifests) among the refs of the same repository.
    pub async fn resolve(&self, reference: &Reference) -> Result<Resolved> {
        let refs = self.store.refs().await?;
        let not_found = || Error::NotFound {
            reference: reference.clone(),
        };
        let Some(digest) = reference.digest() else {
            let key = reference.to_string();
            return refs
                .into_iter()
                .find(|e| e.name == key)
                .map(|entry| Resolved {
                    entry,
                    manifest: None,
                })
                .ok_or_else(not_found);
        };
        for entry in refs {
            let Ok(r) = entry.name.parse::<Reference>() else {
                continue;
            };
            if r.name() != reference.name() || reference.tag().is_some_and(|t| r.tag() != Some(t)) {
                continue;
            }
            if entry.descriptor.digest == digest {
                return Ok(Resolved {
                    entry,
                    manifest: None,
                });
            }
            if entry.descriptor.is_index()
                && self
                    .read_index(&entry.descriptor)
                    .await?
                    .manifests
                    .iter()
                    .any(|m| m.digest == digest)
            {
                return Ok(Resolved {
                    entry,
                    manifest: Some(digest),
                });
            }
        }
        Err(not_found())
    }

    /// The stored packages `reference` names that match `query`.
    pub async fn find(&self, reference: &Reference, query: &Query) -> Result<Vec<Package>> {
        let resolved = self.resolve(reference).await?;
        let stored = resolved.reference_or(reference);
        let packages = self.packages_of(&stored, &resolved.entry.descriptor).await?;
        Ok(packages
            .into_iter()
            .filter(|p| resolved.manifest.is_none_or(|d| p.manifest.digest == d))
            .filter(|p| query.matches_platform(&p.platform))
            .collect())
    }
}

/// Parses a stored document; a failure is damaged store content, named by its digest.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    descriptor: &Descriptor,
    bytes: &[u8],
    what: &'static str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| {
        Error::Store(ukpm_store::StoreError::BadDocument {
            digest: descriptor.digest,
            what,
            source,
        })
    })
}
