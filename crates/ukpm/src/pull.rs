//! Pulling packages from a registry (KraftKit's `NewPackageFromRemoteOCIRef` and `Pull`).
//!
//! Pulls keep the registry's bytes exactly (the store then holds the registry's digests), write
//! blobs before the manifests that name them and manifests before the index, and set the ref
//! last, so an interrupted pull leaves nothing half-visible. Documents are parsed before they
//! are stored: a malformed one is the registry's fault and never reaches the store, and none
//! (index, manifest, config) may be larger than [`MANIFEST_LIMIT`].
//!
//! An index of thousands of manifests is pulled in time and memory linear in its size: its
//! manifests go through the manager's transfer slots like blobs (never more requests in flight
//! than [`PackageManager`]'s concurrency), selection and de-duplication use sets, and where
//! blobs were seen is recorded once for the whole pull.

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use ukpm_registry::{Client, MANIFEST_LIMIT};
use ukpm_types::{
    Descriptor, Digest, Index, Manifest, Reference, annotation, normalize_architecture, normalize_plat,
};

use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::package::{Package, Query};
use crate::reporter::{Direction, Plan, Step};
use crate::store::Expect;
use crate::time;
use crate::transfer::Transfer;

/// What to pull from an index.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Which platforms: every manifest matching the query is pulled.
    pub query: Query,
    /// Pull every platform, whatever the query says.
    pub all_platforms: bool,
}

impl PackageManager {
    /// The references a name may mean: itself if it names a registry, else one per configured
    /// registry, in order.
    pub fn candidates(&self, name: &str) -> Result<Vec<Reference>> {
        if ukpm_types::has_registry(name) {
            return Ok(vec![name.parse()?]);
        }
        self.registries()
            .iter()
            .map(|r| Reference::parse_with_registry(name, r).map_err(Error::from))
            .collect()
    }

    /// Pulls `name` (trying each configured registry for a short name) into the store.
    pub async fn pull_name(&self, name: &str, options: &PullOptions) -> Result<Vec<Package>> {
        let candidates = self.candidates(name)?;
        let last = candidates.len().saturating_sub(1);
        for (i, reference) in candidates.into_iter().enumerate() {
            match self.pull(&reference, options).await {
                Err(err) if i < last && err.kind() == crate::ErrorKind::NotFound => {
                    tracing::debug!(%reference, "not found; trying the next registry");
                }
                other => return other,
            }
        }
        Err(Error::InvalidInput(format!("`{name}` names no registry to try")))
    }

    /// Pulls `reference` (a tag or a digest; an index or a single manifest) into the store and
    /// returns the packages now local.
    pub async fn pull(&self, reference: &Reference, options: &PullOptions) -> Result<Vec<Package>> {
        let transfer = self.transfer()?;
        let store = self.store();
        let _lease = store.lease().await?;
        self.reporter().on_step(&Step::Pull {
            reference: reference.clone(),
        });
        let fetched = transfer.client.get_manifest(reference).await?;
        let top = fetched.descriptor();
        let mut pulled = HashSet::new();
        let mut seen = Vec::new();
        if top.is_index() {
            let index: Index = parse_remote(reference, &top, &fetched.bytes, "image index")?;
            // Each manifest once, however often the index names it.
            let mut unique = HashSet::new();
            let selected: Vec<&Descriptor> = index
                .manifests
                .iter()
                .filter(|d| d.is_manifest())
                .filter(|d| {
                    options.all_platforms
                        || match &d.platform {
                            Some(platform) => options.query.matches_platform(&normalized(platform)),
                            None => options.query == Query::default(),
                        }
                })
                .filter(|d| unique.insert(d.digest))
                .collect();
            if selected.is_empty() {
                return Err(Error::NoPlatform {
                    reference: reference.clone(),
                    query: options.query.describe(),
                    available: index.manifests.iter().map(describe_entry).collect(),
                });
            }
            // Manifests in parallel, but never more at once than the transfer slots: an index
            // of ten thousand entries must not open ten thousand connections.
            let blobs = Blobs::default();
            let per_manifest: Vec<Vec<(Digest, String)>> = futures_util::stream::iter(&selected)
                .map(|entry| self.pull_manifest(&transfer, reference, entry, &blobs))
                .buffer_unordered(self.concurrency())
                .try_collect()
                .await?;
            seen.extend(per_manifest.into_iter().flatten());
            pulled.extend(selected.iter().map(|entry| entry.digest));
        } else if top.is_manifest() {
            seen = self
                .pull_manifest(&transfer, reference, &top, &Blobs::default())
                .await?;
            pulled.insert(top.digest);
        } else {
            return Err(Error::NotAnImage {
                reference: reference.clone(),
                media_type: top.media_type.clone(),
            });
        }
        store.put_bytes(fetched.bytes.to_vec()).await?;
        seen.push((top.digest, reference.name()));
        self.remember(seen).await?;
        let name = stored_name(reference);
        let mut entry = top.clone();
        let now = time::rfc3339(time::now_or_epoch()?);
        entry
            .annotations
            .insert(annotation::OCI_CREATED.into(), now.clone());
        // What `ls` shows as PULLED (a store that keeps ref annotations keeps it).
        entry
            .annotations
            .insert(crate::package::PULLED_ANNOTATION.into(), now);
        store
            .set_ref(name.to_string(), entry.clone(), Expect::Any)
            .await?;
        let packages = self.catalog().packages_of(&name, &entry).await?;
        Ok(packages
            .into_iter()
            .filter(|p| pulled.contains(&p.manifest.digest))
            .collect())
    }

    /// Fetches one manifest's config and layers, then the manifest itself; returns where its
    /// blobs were seen, for the caller to record once.
    async fn pull_manifest(
        &self,
        transfer: &Transfer,
        reference: &Reference,
        entry: &Descriptor,
        fetched: &Blobs,
    ) -> Result<Vec<(Digest, String)>> {
        let store = self.store();
        if entry.size > MANIFEST_LIMIT {
            return Err(over_limit(reference, entry, "manifest"));
        }
        let bytes = if store.has_blob(entry.digest, None).await? {
            self.catalog().read_by_digest(entry).await?
        } else {
            // A transfer slot like a blob's: the slots bound every request of the pull.
            let _permit = transfer.permit().await;
            fetch_manifest(&transfer.client, reference, entry).await?
        };
        let manifest: Manifest = parse_remote(reference, entry, &bytes, "image manifest")?;
        if manifest.config.size > MANIFEST_LIMIT {
            return Err(over_limit(reference, &manifest.config, "config"));
        }
        let blobs = unique_blobs(&manifest);
        self.reporter()
            .on_plan(&Plan::of(reference, Direction::Download, blobs.iter().copied()));
        futures_util::future::try_join_all(blobs.iter().map(|blob| {
            fetched.once(blob.digest, move || async move {
                let _permit = transfer.permit().await;
                transfer.download(reference, blob).await
            })
        }))
        .await?;
        store.put_bytes(bytes).await?;
        let mut seen: Vec<(Digest, String)> = blobs.iter().map(|b| (b.digest, reference.name())).collect();
        seen.push((entry.digest, reference.name()));
        Ok(seen)
    }

    /// Records where blobs were seen, in a store that keeps mount hints.
    pub(crate) async fn remember(&self, seen: Vec<(Digest, String)>) -> Result<()> {
        match self.store().mount_hints() {
            Some(hints) => hints.remember(seen).await,
            None => Ok(()),
        }
    }
}

/// Fetches a manifest by digest, holding the registry to its index entry's size (KraftKit's
/// indexes are allowed their wrong `size: 32`: the digest, which the client checks, decides).
pub(crate) async fn fetch_manifest(
    client: &Client,
    reference: &Reference,
    entry: &Descriptor,
) -> Result<Vec<u8>> {
    let fetched = client
        .get_manifest(&digest_reference(reference, entry.digest)?)
        .await?;
    if fetched.bytes.len() as u64 != entry.size {
        if !entry.annotations.contains_key(annotation::KRAFTKIT_VERSION) {
            return Err(Error::RegistryProtocol {
                reference: reference.clone(),
                message: format!(
                    "manifest {} is {} bytes but its index entry says {}",
                    entry.digest,
                    fetched.bytes.len(),
                    entry.size
                ),
            });
        }
        tracing::warn!(digest = %entry.digest, declared = entry.size, "KraftKit index entry has a wrong size");
    }
    Ok(fetched.bytes.to_vec())
}

/// The blobs of one pull, each fetched once however many manifests share it: the first
/// manifest to need a blob downloads it, the others wait for that download (a manifest is
/// stored only after all its blobs).
#[derive(Default)]
struct Blobs(std::sync::Mutex<std::collections::HashMap<Digest, Arc<tokio::sync::OnceCell<()>>>>);

impl Blobs {
    /// Runs `download` for `digest` unless this pull already did (or is doing) it.
    async fn once<F, Fut>(&self, digest: Digest, download: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let cell = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(digest)
            .or_default()
            .clone();
        cell.get_or_try_init(download).await.map(|_| ())
    }
}

/// A document the registry declares larger than any document may be: refused before a byte of
/// it is fetched.
fn over_limit(reference: &Reference, descriptor: &Descriptor, what: &str) -> Error {
    Error::RegistryProtocol {
        reference: reference.clone(),
        message: format!(
            "{what} {} is {} bytes, over the {MANIFEST_LIMIT}-byte limit for documents",
            descriptor.digest, descriptor.size
        ),
    }
}

/// Parses a document a registry served; a failure is the registry's malformed document.
pub(crate) fn parse_remote<T: serde::de::DeserializeOwned>(
    reference: &Reference,
    descriptor: &Descriptor,
    bytes: &[u8],
    what: &'static str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::BadRemoteDocument {
        reference: reference.clone(),
        digest: descriptor.digest,
        what,
        source,
    })
}

/// The ref name a pulled reference is stored under.
fn stored_name(reference: &Reference) -> Reference {
    if reference.tag().is_some() {
        reference.without_digest()
    } else {
        reference.clone()
    }
}

/// A manifest's config and layers, each blob once (a layer may repeat).
pub(crate) fn unique_blobs(manifest: &Manifest) -> Vec<&Descriptor> {
    let mut seen = std::collections::BTreeSet::new();
    std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .filter(|b| seen.insert(b.digest))
        .collect()
}

/// `registry/repository@digest` for a reference's repository.
pub(crate) fn digest_reference(reference: &Reference, digest: Digest) -> Result<Reference> {
    Ok(format!("{}@{digest}", reference.name()).parse()?)
}

pub(crate) fn normalized(platform: &ukpm_types::Platform) -> ukpm_types::Platform {
    let mut p = platform.clone();
    p.architecture = normalize_architecture(&p.architecture);
    p.os = normalize_plat(&p.os);
    p
}

/// An index entry for people: `qemu/x86_64 (0.18.0)`.
pub(crate) fn describe_entry(d: &Descriptor) -> String {
    match &d.platform {
        Some(p) if p.os_version.is_empty() => normalized(p).short(),
        Some(p) => format!("{} ({})", normalized(p).short(), p.os_version),
        None => "no platform".to_string(),
    }
}
