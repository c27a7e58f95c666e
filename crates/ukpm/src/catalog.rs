//! The catalog: every operation's one way to find packages in a store. It resolves references
//! (by tag, or by the digest of an index or of one of its manifests), lists packages with
//! filters (KraftKit's `Catalog`), and reads stored documents, tolerating the quirks of
//! KraftKit's indexes (a wrong manifest size) while still checking every digest.

use std::collections::HashMap;
use std::sync::Arc;

use ukpm_store::{RefEntry, StoreError};
use ukpm_types::{Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Reference, annotation, limits};

use crate::error::{Error, Result};
use crate::listing_cache::{ListingCache, ManifestFacts};
use crate::manager::PackageManager;
use crate::package::{Package, Pulled, Query};
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

/// What `ls` shows of a store: [`Catalog::listing`].
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The packages the query matched, in [`crate::listing_order`].
    pub packages: Vec<Package>,
    /// The roots that are not images (artifacts, signatures) whose names pass the query's
    /// name filter, as [`Catalog::foreign_roots`] lists them.
    pub foreign: Vec<RefEntry>,
    /// How many names in the store point at an image, before any filter: zero is an empty
    /// store, more with no packages is a query nothing matched.
    pub names: usize,
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
        self.reference().unwrap_or_else(|| fallback.clone())
    }
}

impl Resolved {
    /// The stored name as a reference, when it is one or is a bare tag that parses as one.
    pub fn reference(&self) -> Option<Reference> {
        name_reference(&self.entry.name)
    }
}

/// How a local command names a stored package: the text as given, matched against ref names
/// literally first (a bare tag `v1` that umoci, go-containerregistry or `skopeo copy
/// oci:DIR:v1` wrote), then as the reference it parses to.
///
/// Every `&Reference` converts into one (its full form as the text), so library callers that
/// hold references keep working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalName {
    text: String,
    reference: Option<Reference>,
}

impl LocalName {
    /// The text, matched literally against ref names.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The reference the text parses to, if it does.
    pub fn reference(&self) -> Option<&Reference> {
        self.reference.as_ref()
    }

    fn not_found(&self) -> Error {
        match &self.reference {
            Some(reference) => Error::NotFound {
                reference: reference.clone(),
            },
            None => Error::NameNotFound {
                name: self.text.clone(),
            },
        }
    }
}

/// The full reference when the text parses as one (`unikraft.org/nginx:latest` for `nginx`),
/// else the text as given.
impl std::fmt::Display for LocalName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reference {
            Some(reference) => reference.fmt(f),
            None => f.write_str(&self.text),
        }
    }
}

impl From<Reference> for LocalName {
    fn from(reference: Reference) -> LocalName {
        LocalName {
            text: reference.to_string(),
            reference: Some(reference),
        }
    }
}

impl From<&Reference> for LocalName {
    fn from(reference: &Reference) -> LocalName {
        LocalName::from(reference.clone())
    }
}

impl From<&LocalName> for LocalName {
    fn from(name: &LocalName) -> LocalName {
        name.clone()
    }
}

impl PackageManager {
    /// Parses a name a local command was given (`inspect`, `rm`, `tag`): a reference, resolved
    /// against the first registry, or any other text an OCI layout may use as a ref name (a bare
    /// tag such as `V1` that is not a valid repository), which then matches only literally.
    pub fn local_name(&self, text: &str) -> Result<LocalName> {
        match self.parse_name(text) {
            Ok(reference) => Ok(LocalName {
                text: text.to_string(),
                reference: Some(reference),
            }),
            Err(_) if is_ref_name(text) => Ok(LocalName {
                text: text.to_string(),
                reference: None,
            }),
            Err(err) => Err(err),
        }
    }
}

/// The image-spec's grammar for `org.opencontainers.image.ref.name`: components of letters and
/// digits joined by `-._:@+` or `/`.
fn is_ref_name(text: &str) -> bool {
    text.split('/').all(|component| {
        component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric())
            && component
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:@+".contains(c))
    })
}

/// The reference a stored ref name stands for: itself when it parses, else (a bare tag with
/// capitals, `V1`) its lowercase form; `None` for a name no reference can stand for.
fn name_reference(name: &str) -> Option<Reference> {
    name.parse().or_else(|_| name.to_ascii_lowercase().parse()).ok()
}

/// Refuses a document whose descriptor says it is over `limit` before any of it is read.
pub(crate) fn check_cap(descriptor: &Descriptor, what: &'static str, limit: u64) -> Result<()> {
    if descriptor.size > limit {
        return Err(Error::Store(StoreError::TooLarge {
            digest: descriptor.digest,
            what,
            size: descriptor.size,
            limit,
        }));
    }
    Ok(())
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
        check_cap(descriptor, "image index", limits::MANIFEST_LIMIT)?;
        let bytes = self.store.read_bytes(descriptor.clone()).await?;
        parse(descriptor, &bytes, "image index")
    }

    /// Lists the stored packages matching `query`, one per manifest, in
    /// [`crate::listing_order`]: by name, then tag as a version, the platforms of one name in
    /// their index's order. A listed package's `manifest`
    /// descriptor is the index entry without its annotations ([`Catalog::find`] gives them).
    ///
    /// Refs are listed under their names as written (`v1` for another tool's bare tag). A root
    /// that is neither an index nor a manifest (an artifact, a signature, a plain layer another
    /// tool put in `index.json`) is skipped with a warning, never an error for the whole store;
    /// [`Catalog::foreign_roots`] lists them.
    pub async fn list(&self, query: &Query) -> Result<Vec<Package>> {
        Ok(self.listing(query).await?.packages)
    }

    /// [`Catalog::list`] and [`Catalog::foreign_roots`] from one read of the refs, plus how
    /// many packages the store holds before the query's filters, which `ls` needs to tell an
    /// empty store from a query nothing matched.
    ///
    /// It reads each stored document once however many names share it, every index in one
    /// batch and then every manifest in one batch: `ls` of ten thousand packages is one read
    /// of `index.json` and two batches of small files, not twenty thousand round trips.
    pub async fn listing(&self, query: &Query) -> Result<Listing> {
        let store = self.store.as_ref();
        // A ref removed and collected while this reads would leave it naming a blob gone.
        let _lease = store.read_lease().await?;
        let records = store.keeps_ref_annotations();
        let mut refs = Vec::new();
        let mut foreign = Vec::new();
        let mut names = 0;
        // The refs and the cache are two files to parse: at the same time.
        let (stored, mut cache) = tokio::join!(store.refs(), ListingCache::load(store));
        for entry in stored? {
            let top = &entry.descriptor;
            let image = top.is_index() || top.is_manifest();
            let Some(reference) = name_reference(&entry.name) else {
                if image {
                    tracing::warn!(name = %entry.name, "skipping a ref whose name no reference can stand for");
                } else if query.name.is_none() {
                    foreign.push(entry);
                }
                continue;
            };
            names += usize::from(image);
            if !query.matches_name(&reference, &entry.name) {
                continue;
            }
            if !image {
                // Front ends show these through `foreign_roots`.
                tracing::debug!(name = %entry.name, media_type = %top.media_type, "skipping a ref that is not an image");
                foreign.push(entry);
                continue;
            }
            check_cap(top, document_kind(top), limits::MANIFEST_LIMIT)?;
            refs.push((reference, entry));
        }
        // Each index's manifest entries: from the cache, else read (all in one batch).
        let mut entries: Vec<Option<Vec<Descriptor>>> = refs
            .iter()
            .map(|(_, e)| {
                let top = &e.descriptor;
                top.is_index().then(|| cache.index(top.digest)).flatten()
            })
            .collect();
        let unread: Vec<usize> = (0..refs.len())
            .filter(|&i| refs[i].1.descriptor.is_index() && entries[i].is_none())
            .collect();
        let tops = self
            .read_unique(unread.iter().map(|&i| &refs[i].1.descriptor))
            .await?;
        for (&i, bytes) in unread.iter().zip(tops) {
            let top = &refs[i].1.descriptor;
            let index: Index = parse(top, &bytes?, "image index")?;
            // A listing needs an entry's digest, size, media type and platform, not its
            // annotations (most of its bytes): the cache holds ten thousand of these.
            let manifests: Vec<Descriptor> = index
                .manifests
                .into_iter()
                .filter(Descriptor::is_manifest)
                .map(|mut m| {
                    m.annotations.clear();
                    m
                })
                .collect();
            cache.set_index(top.digest, manifests.clone());
            entries[i] = Some(manifests);
        }
        let mut wanted: Vec<(usize, Descriptor)> = Vec::new();
        for (i, (_, entry)) in refs.iter().enumerate() {
            match entries[i].take() {
                Some(manifests) => {
                    for m in manifests {
                        check_cap(&m, "image manifest", limits::MANIFEST_LIMIT)?;
                        wanted.push((i, m));
                    }
                }
                None => {
                    let mut single = entry.descriptor.clone();
                    single.annotations.clear();
                    wanted.push((i, single));
                }
            }
        }
        // One stat per manifest says which are here (a pull keeps the registry's whole index
        // but only the platforms asked for); what the cache knows of those is not read again.
        let digests: Vec<Digest> = wanted.iter().map(|(_, d)| d.digest).collect();
        let (first, second) = digests.split_at(digests.len() / 2);
        let (first, second) = tokio::join!(store.has_blobs(first.to_vec()), store.has_blobs(second.to_vec()));
        let present: Vec<bool> = first?.into_iter().chain(second?).collect();
        let mut packages: Vec<Option<Package>> = vec![None; wanted.len()];
        let mut to_read = Vec::new();
        for (w, ((i, entry), here)) in wanted.into_iter().zip(present).enumerate() {
            let (reference, stored) = &refs[i];
            if !here && stored.descriptor.is_index() {
                continue;
            }
            let known = here
                .then(|| cache.manifest(entry.digest))
                .flatten()
                .and_then(|facts| Some((entry.platform.clone().or(facts.platform)?, facts.size)));
            match known {
                Some((platform, size)) => {
                    packages[w] = Some(self.package(reference, stored, entry, platform, size, records));
                }
                // Not known yet; a missing single manifest is read for the error it gives.
                None => to_read.push((w, i, entry)),
            }
        }
        let manifests = self.read_unique(to_read.iter().map(|(_, _, d)| d)).await?;
        for ((w, i, entry), bytes) in to_read.into_iter().zip(manifests) {
            let entry = &entry;
            let (reference, stored) = &refs[i];
            let bytes = match bytes {
                Ok(bytes) => bytes,
                // Gone since the stat: as if that platform had not been pulled.
                Err(err) if stored.descriptor.is_index() && err.is_missing_blob() => continue,
                // KraftKit's `size: 32` entries: read by digest alone.
                Err(err) if err.stored_size().is_some() => self.read_by_digest(entry).await?,
                Err(err) => return Err(err),
            };
            let manifest: Manifest = parse(entry, &bytes, "image manifest")?;
            let filled = self.with_platform(entry.clone(), &manifest).await?;
            let platform = filled.platform.clone().unwrap_or_default();
            let size = manifest.layers.iter().map(|l| l.size).sum();
            let own = match entry.platform {
                None => filled.platform.clone(),
                Some(_) => manifest.config.platform.clone(),
            };
            cache.set_manifest(entry.digest, ManifestFacts { size, platform: own });
            packages[w] = Some(self.package(reference, stored, filled, platform, size, records));
        }
        cache.save(store, query.name.is_none()).await;
        let mut packages: Vec<Package> = packages
            .into_iter()
            .flatten()
            .filter(|p| query.matches_platform(&p.platform))
            .collect();
        sort_listing(&mut packages);
        Ok(Listing {
            packages,
            foreign,
            names,
        })
    }

    /// A listed package of the ref `stored` (whose name reads as `reference`).
    fn package(
        &self,
        reference: &Reference,
        stored: &RefEntry,
        manifest: Descriptor,
        platform: Platform,
        size: u64,
        records: bool,
    ) -> Package {
        let top = &stored.descriptor;
        let index = top.is_index().then(|| top.clone());
        let created = top.annotations.get(annotation::OCI_CREATED).cloned();
        Package::listed(reference.clone(), index, manifest, platform, size, created)
            .named(&stored.name)
            .with_pulled(Pulled::of_entry(top, records))
    }

    /// Reads documents in one batch, each distinct one once (two tags of one index, one
    /// manifest in several indexes), every result in the order asked.
    async fn read_unique<'d>(
        &self,
        descriptors: impl Iterator<Item = &'d Descriptor>,
    ) -> Result<Vec<Result<Vec<u8>>>> {
        let mut slots = Vec::new();
        let mut unique: Vec<Descriptor> = Vec::new();
        let mut seen: HashMap<(Digest, u64), usize> = HashMap::new();
        for d in descriptors {
            let slot = *seen.entry((d.digest, d.size)).or_insert_with(|| {
                unique.push(d.clone());
                unique.len() - 1
            });
            slots.push(slot);
        }
        if slots.len() == unique.len() {
            return self.store.read_many(unique).await;
        }
        let mut read: Vec<Option<Result<Vec<u8>>>> = self
            .store
            .read_many(unique.clone())
            .await?
            .into_iter()
            .map(Some)
            .collect();
        let mut out = Vec::with_capacity(slots.len());
        for slot in slots {
            out.push(match read[slot].take() {
                Some(Ok(bytes)) => {
                    read[slot] = Some(Ok(bytes.clone()));
                    Ok(bytes)
                }
                // The first to ask takes the error; errors are not `Clone`, so a later one
                // reads again for an error of its own.
                Some(Err(err)) => Err(err),
                None => self.store.read_bytes(unique[slot].clone()).await,
            });
        }
        Ok(out)
    }

    /// The refs `list` skips because they are neither an index nor a manifest (an artifact, a
    /// signature, a plain descriptor another tool put in `index.json`) whose names pass the
    /// query's name filter: each ref's name (or `index.json entry N` for an unnamed root) with
    /// what it points at.
    pub async fn foreign_roots(&self, query: &Query) -> Result<Vec<RefEntry>> {
        Ok(self
            .store
            .refs()
            .await?
            .into_iter()
            .filter(|e| !e.descriptor.is_index() && !e.descriptor.is_manifest())
            .filter(|e| match name_reference(&e.name) {
                Some(reference) => query.matches_name(&reference, &e.name),
                None => query.name.is_none(),
            })
            .collect())
    }

    /// The packages (manifests) a stored ref target holds.
    pub async fn packages_of(&self, reference: &Reference, target: &Descriptor) -> Result<Vec<Package>> {
        self.packages_named(reference, &reference.to_string(), target)
            .await
    }

    /// [`Catalog::packages_of`] for a ref stored under `name` (which may be a bare tag).
    async fn packages_named(
        &self,
        reference: &Reference,
        name: &str,
        target: &Descriptor,
    ) -> Result<Vec<Package>> {
        let store = self.store.as_ref();
        let created = target.annotations.get(annotation::OCI_CREATED).cloned();
        let pulled = Pulled::of_entry(target, store.keeps_ref_annotations());
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
                out.push(
                    Package::new(
                        reference.clone(),
                        Some(target.clone()),
                        entry,
                        &manifest,
                        created.clone(),
                    )
                    .named(name)
                    .with_pulled(pulled.clone()),
                );
            }
            Ok(out)
        } else if target.is_manifest() {
            let manifest = self.read_manifest(target).await?;
            let entry = self.with_platform(target.clone(), &manifest).await?;
            Ok(vec![
                Package::new(reference.clone(), None, entry, &manifest, created)
                    .named(name)
                    .with_pulled(pulled),
            ])
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
    ///
    /// A config over [`limits::CONFIG_LIMIT`] is refused before it is read.
    pub async fn read_config(&self, manifest: &Manifest) -> Result<ImageConfig> {
        check_cap(&manifest.config, "image config", limits::CONFIG_LIMIT)?;
        let bytes = self.store.read_bytes(manifest.config.clone()).await?;
        parse(&manifest.config, &bytes, "image config")
    }

    /// Reads a stored blob by digest when its descriptor's size may be wrong (KraftKit's
    /// merged index entries say `size: 32`); the digest decides.
    ///
    /// It reads manifests and indexes: one over [`limits::MANIFEST_LIMIT`] (as its descriptor
    /// says, or as stored) is refused before it is read.
    pub async fn read_by_digest(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let store = self.store.as_ref();
        let what = document_kind(descriptor);
        check_cap(descriptor, what, limits::MANIFEST_LIMIT)?;
        match store.read_bytes(descriptor.clone()).await {
            Err(err) if err.stored_size().is_some() => {
                let actual = err.stored_size().unwrap_or(descriptor.size);
                let mut fixed = descriptor.clone();
                fixed.size = actual;
                check_cap(&fixed, what, limits::MANIFEST_LIMIT)?;
                tracing::warn!(digest = %descriptor.digest, declared = descriptor.size, actual, "descriptor size is wrong");
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

    /// The stored ref `name` names: a ref named exactly as given first (a bare tag `v1` another
    /// tool wrote), then the parsed reference by tag, then a ref whose name parses to the same
    /// reference (`v1` for `unikraft.org/v1:latest`), or by digest (of the index or of one of its
    /// manifests) among the refs of the same repository.
    pub async fn resolve(&self, name: impl Into<LocalName>) -> Result<Resolved> {
        let name = name.into();
        let refs = self.store.refs().await?;
        let found = |entry: RefEntry| Resolved {
            entry,
            manifest: None,
        };
        if let Some(entry) = refs.iter().find(|e| e.name == name.text) {
            return Ok(found(entry.clone()));
        }
        let Some(reference) = name.reference.as_ref() else {
            return Err(name.not_found());
        };
        let Some(digest) = reference.digest() else {
            let key = reference.to_string();
            if let Some(entry) = refs.iter().find(|e| e.name == key) {
                return Ok(found(entry.clone()));
            }
            return refs
                .into_iter()
                .find(|e| name_reference(&e.name).as_ref() == Some(reference))
                .map(found)
                .ok_or_else(|| name.not_found());
        };
        for entry in refs {
            let Some(r) = name_reference(&entry.name) else {
                continue;
            };
            if r.name() != reference.name() || reference.tag().is_some_and(|t| r.tag() != Some(t)) {
                continue;
            }
            if entry.descriptor.digest == digest {
                return Ok(found(entry));
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
        Err(name.not_found())
    }

    /// The stored packages `name` names that match `query`.
    pub async fn find(&self, name: impl Into<LocalName>, query: &Query) -> Result<Vec<Package>> {
        let name = name.into();
        let resolved = self.resolve(&name).await?;
        let stored = self.stored_reference(&resolved, &name)?;
        let packages = self
            .packages_named(&stored, &resolved.entry.name, &resolved.entry.descriptor)
            .await?;
        Ok(packages
            .into_iter()
            .filter(|p| resolved.manifest.is_none_or(|d| p.manifest.digest == d))
            .filter(|p| query.matches_platform(&p.platform))
            .collect())
    }

    /// The reference a resolved ref stands for: its name parsed, else what was asked for.
    pub(crate) fn stored_reference(&self, resolved: &Resolved, name: &LocalName) -> Result<Reference> {
        resolved
            .reference()
            .or_else(|| name.reference.clone())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the ref `{}` has a name no reference can stand for",
                    resolved.entry.name
                ))
            })
    }

    /// The packages a resolved ref holds, under its stored name.
    pub(crate) async fn packages_of_resolved(
        &self,
        resolved: &Resolved,
        name: &LocalName,
    ) -> Result<Vec<Package>> {
        let stored = self.stored_reference(resolved, name)?;
        self.packages_named(&stored, &resolved.entry.name, &resolved.entry.descriptor)
            .await
    }
}

/// Sorts packages in [`crate::listing_order`], working out each one's name and tag once rather than
/// at every comparison (ten thousand packages are over a hundred thousand comparisons).
fn sort_listing(packages: &mut Vec<Package>) {
    let keys: Vec<(String, Option<String>)> = packages
        .iter()
        .map(|p| (p.display_name(), p.display_tag().map(str::to_string)))
        .collect();
    let mut order: Vec<usize> = (0..packages.len()).collect();
    // Stable: the platforms of one name keep their index's order.
    order.sort_by(|&a, &b| {
        let (name_a, tag_a) = &keys[a];
        let (name_b, tag_b) = &keys[b];
        name_a.cmp(name_b).then_with(|| match (tag_a, tag_b) {
            (Some(x), Some(y)) => crate::package::compare_tags(x, y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        })
    });
    let mut slots: Vec<Option<Package>> = std::mem::take(packages).into_iter().map(Some).collect();
    packages.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// What a document descriptor points at, for messages.
fn document_kind(descriptor: &Descriptor) -> &'static str {
    if descriptor.is_index() {
        "image index"
    } else {
        "image manifest"
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
