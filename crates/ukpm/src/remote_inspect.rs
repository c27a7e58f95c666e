//! What a registry holds under a reference, without touching the store: `inspect --remote`
//! (the documents as the registry stores them), `digest` (what a tag resolves to, from a HEAD
//! where the registry says) and `delete` (a manifest removed from the registry).

use ukpm_registry::{Client, DeleteOutcome, MANIFEST_LIMIT};
use ukpm_types::{Descriptor, Digest, Index, Manifest, Platform, Reference};

use crate::error::{Error, ErrorKind, Result};
use crate::inspect::{InspectedManifest, Inspection, Source};
use crate::manager::PackageManager;
use crate::package::{Package, Query};
use crate::pull::{describe_entry, digest_reference, fetch_manifest, parse_remote};

/// What `delete` removed.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The reference as given (a tag or a digest).
    pub reference: Reference,
    /// The manifest or index digest deleted (the tag's target, for a tag).
    pub digest: Digest,
}

impl PackageManager {
    /// The index, manifests and configs `reference` names on its registry, read from the
    /// registry only (nothing is stored). The digests are those of the registry's exact bytes.
    pub async fn inspect_remote(&self, reference: &Reference) -> Result<Inspection> {
        let client = self.client()?;
        let fetched = client.get_manifest(reference).await?;
        let top = fetched.descriptor();
        let mut manifests = Vec::new();
        let index = if top.is_index() {
            let index: Index = parse_remote(reference, &top, &fetched.bytes, "image index")?;
            for entry in index.manifests.iter().filter(|d| d.is_manifest()) {
                let bytes = fetch_manifest(&client, reference, entry).await?;
                manifests.push(inspect_manifest(&client, reference, Some(&top), entry, &bytes).await?);
            }
            Some(parse_remote(reference, &top, &fetched.bytes, "image index")?)
        } else if top.is_manifest() {
            manifests.push(inspect_manifest(&client, reference, None, &top, &fetched.bytes).await?);
            None
        } else {
            return Err(Error::NotAnImage {
                reference: reference.clone(),
                media_type: top.media_type.clone(),
            });
        };
        Ok(Inspection {
            reference: reference.clone(),
            name: reference.to_string(),
            descriptor: top,
            index,
            manifests,
            source: Source::Remote,
        })
    }

    /// [`PackageManager::inspect_remote`] for a name as typed: a short name is tried against
    /// each configured registry in order, as `pull` does.
    pub async fn inspect_remote_name(&self, name: &str) -> Result<Inspection> {
        let candidates = self.candidates(name)?;
        let last = candidates.len().saturating_sub(1);
        for (i, reference) in candidates.into_iter().enumerate() {
            match self.inspect_remote(&reference).await {
                Err(err) if i < last && err.kind() == ErrorKind::NotFound => {}
                other => return other,
            }
        }
        Err(Error::InvalidInput(format!("`{name}` names no registry to try")))
    }

    /// The digest `reference` resolves to on its registry (a tag's index or manifest), from a
    /// `HEAD` when the registry sends `Docker-Content-Digest`, else from the body of a `GET`.
    /// With `platform`, the digest of the one manifest for that platform instead (the index is
    /// then read); several matching manifests are [`Error::Ambiguous`].
    pub async fn remote_digest(&self, reference: &Reference, platform: Option<&Query>) -> Result<Digest> {
        let client = self.client()?;
        let Some(query) = platform else {
            if let Some(descriptor) = client.head_manifest(reference).await? {
                return Ok(descriptor.digest);
            }
            return Ok(client.get_manifest(reference).await?.digest);
        };
        let fetched = client.get_manifest(reference).await?;
        let top = fetched.descriptor();
        if top.is_index() {
            let index: Index = parse_remote(reference, &top, &fetched.bytes, "image index")?;
            let matching: Vec<&Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.is_manifest())
                .filter(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| query.matches_platform(&normalized(p)))
                })
                .collect();
            return match matching.as_slice() {
                [one] => Ok(one.digest),
                [] => Err(Error::NoPlatform {
                    reference: reference.clone(),
                    query: query.describe(),
                    available: index.manifests.iter().map(describe_entry).collect(),
                }),
                many => Err(Error::Ambiguous {
                    reference: reference.clone(),
                    candidates: many
                        .iter()
                        .map(|d| format!("{} {}", describe_entry(d), d.digest))
                        .collect(),
                }),
            };
        }
        if !top.is_manifest() {
            return Err(Error::NotAnImage {
                reference: reference.clone(),
                media_type: top.media_type.clone(),
            });
        }
        // A single manifest: its config says which platform it is for.
        let manifest: Manifest = parse_remote(reference, &top, &fetched.bytes, "image manifest")?;
        let config = fetch_config(&client, reference, &manifest.config).await?;
        let platform: Platform = parse_remote(reference, &manifest.config, &config, "image config")?;
        if query.matches_platform(&normalized(&platform)) {
            Ok(top.digest)
        } else {
            Err(Error::NoPlatform {
                reference: reference.clone(),
                query: query.describe(),
                available: vec![normalized(&platform).short()],
            })
        }
    }

    /// Deletes what `reference` names from its registry: the manifest or index by digest, or
    /// by the digest a tag resolves to (the distribution API deletes by digest only; the tag
    /// goes with its target, and so does every other tag pointing at it). Blobs stay until the
    /// registry's own garbage collection.
    pub async fn delete_remote(&self, reference: &Reference) -> Result<Deleted> {
        let digest = match reference.digest() {
            Some(digest) => digest,
            None => self.remote_digest(reference, None).await?,
        };
        let target = digest_reference(reference, digest)?;
        match self.client()?.delete_manifest(&target, digest).await? {
            DeleteOutcome::Deleted => Ok(Deleted {
                reference: reference.clone(),
                digest,
            }),
            _ => Err(Error::Unsupported {
                store: format!("the registry {}", reference.registry()),
                what: "deleting manifests (docker-registry: storage.delete.enabled)",
            }),
        }
    }
}

/// One manifest of a remote inspection, with its config read from the registry.
async fn inspect_manifest(
    client: &Client,
    reference: &Reference,
    index: Option<&Descriptor>,
    entry: &Descriptor,
    bytes: &[u8],
) -> Result<InspectedManifest> {
    let manifest: Manifest = parse_remote(reference, entry, bytes, "image manifest")?;
    let config = fetch_config(client, reference, &manifest.config).await?;
    let config_value: serde_json::Value = parse_remote(reference, &manifest.config, &config, "image config")?;
    let mut descriptor = Descriptor::new(&entry.media_type, entry.digest, bytes.len() as u64);
    descriptor.platform = match &entry.platform {
        Some(p) => Some(p.clone()),
        // A single manifest: the config says which platform it is.
        None => serde_json::from_slice::<Platform>(&config).ok(),
    };
    descriptor.annotations = entry.annotations.clone();
    Ok(InspectedManifest {
        package: Package::new(reference.clone(), index.cloned(), descriptor, &manifest, None),
        manifest: parse_remote(reference, entry, bytes, "image manifest")?,
        config: config_value,
    })
}

/// A config blob, whole (held to [`MANIFEST_LIMIT`] and to its digest).
async fn fetch_config(client: &Client, reference: &Reference, config: &Descriptor) -> Result<Vec<u8>> {
    if config.size > MANIFEST_LIMIT {
        return Err(Error::RegistryProtocol {
            reference: reference.clone(),
            message: format!(
                "config {} is {} bytes, over the {MANIFEST_LIMIT}-byte limit for documents",
                config.digest, config.size
            ),
        });
    }
    let mut download = client.get_blob(reference, config, 0).await?;
    let mut bytes = Vec::with_capacity(config.size as usize);
    while let Some(chunk) = download.chunk().await? {
        bytes.extend_from_slice(&chunk);
    }
    let actual = Digest::of(&bytes);
    if actual != config.digest {
        return Err(Error::Registry(ukpm_registry::RegistryError::DigestMismatch {
            registry: reference.registry().to_string(),
            expected: config.digest,
            actual,
        }));
    }
    Ok(bytes)
}

fn normalized(platform: &Platform) -> Platform {
    let mut p = platform.clone();
    p.architecture = ukpm_types::normalize_architecture(&p.architecture);
    p.os = ukpm_types::normalize_plat(&p.os);
    p
}
