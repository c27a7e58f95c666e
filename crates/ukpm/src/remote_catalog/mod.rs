//! What is on the registries: `ls --remote` (every repository of each registry's `_catalog`
//! that matches, every tag, each tag's index and manifests), `update` (the same, kept in a
//! cache so the listing works offline) and `tags`.
//!
//! A fetch produces a [`Snapshot`]: which digest each `registry/repo:tag` pointed at, and the raw
//! bytes of every document read (indexes, manifests, configs where the index has no platforms)
//! under their own digests. The cache stores exactly those bytes, never re-marshalled (KraftKit
//! re-marshals and then cannot find them by digest), so a cached listing is the same function of
//! the same bytes as a live one.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use ukpm_registry::{CatalogRefusal, Client};
use ukpm_types::{Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Reference, limits};

use crate::catalog::parse;

mod cache;

use crate::package::glob_match;
use crate::{Error, Package, PackageManager, Query, Result};
pub(crate) use cache::atomic_write;
use cache::{CacheIndex, read_cache, write_cache};

/// The page size asked of `_catalog` and `tags/list`.
pub const LISTING_PAGE_SIZE: usize = 100;

/// What `ls --remote` found.
#[derive(Debug, Clone, Default)]
pub struct RemoteListing {
    /// One row per manifest, as the local `ls` has them.
    pub packages: Vec<Package>,
    /// Why some of it may be missing (a registry that refuses `_catalog`, a tag that could not
    /// be read).
    pub warnings: Vec<String>,
    /// When the cache this came from was written (Unix seconds); `None` for a live listing.
    pub cached_at: Option<i64>,
}

/// How [`PackageManager::list_remote`] gets its answer.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Globs or `REGISTRY/REPO` names; empty: every repository of the configured registries.
    pub names: Vec<String>,
    /// Ask the registries and rewrite the cache (`--update`, `ukpm update`), even if a cache
    /// exists.
    pub refresh: bool,
    /// The cache folder; `None`: [`default_remote_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Entries asked for per page of `_catalog` and `tags/list`; 0: [`LISTING_PAGE_SIZE`].
    pub page_size: usize,
}

/// Where `update` keeps what it found: `$XDG_CACHE_HOME/ukpm/remote`, else
/// `~/.cache/ukpm/remote`.
pub fn default_remote_cache_dir() -> Result<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(cache) = non_empty("XDG_CACHE_HOME") {
        return Ok(cache.join("ukpm").join("remote"));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(home.join(".cache").join("ukpm").join("remote"));
    }
    Err(Error::InvalidInput(
        "cannot find a place for the remote cache: set XDG_CACHE_HOME or HOME".into(),
    ))
}

/// A tag and what it pointed at.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    reference: String,
    descriptor: Descriptor,
}

/// A tag and the raw documents read for it.
type Fetched = (Entry, Vec<(Digest, Bytes)>);

/// One repository's part of a listing: why its tags could not be read, or each tag's result.
type RepositoryListing = (Option<Error>, Vec<(Reference, Result<Fetched>)>);

/// One fetch: the tags and the raw documents.
#[derive(Debug, Default)]
struct Snapshot {
    entries: Vec<Entry>,
    documents: HashMap<Digest, Bytes>,
    warnings: Vec<String>,
    /// As [`CacheIndex::covered`].
    covered: Vec<String>,
}

/// A name split into what to list: the registry and either a repository or a glob.
struct Target {
    registry: String,
    /// A repository named without wildcards: listed even where `_catalog` is refused.
    repository: Option<String>,
}

impl PackageManager {
    /// Lists the packages on the registries ([`PackageManager::registries`] plus the registries
    /// `options.names` name) that `query` and the names select: from the cache when there is
    /// one and `options.refresh` is false, else from the registries (and the cache is then
    /// rewritten).
    pub async fn list_remote(&self, query: &Query, options: &RemoteOptions) -> Result<RemoteListing> {
        let dir = match &options.cache_dir {
            Some(dir) => dir.clone(),
            None => default_remote_cache_dir()?,
        };
        if !options.refresh
            && let Some((index, snapshot)) = read_cache(&dir).await?
            && self.covers(&index.covered, &options.names)
        {
            let mut listing = self.packages(query, &options.names, &snapshot)?;
            listing.cached_at = Some(index.fetched_at);
            return Ok(listing);
        }
        let page_size = if options.page_size == 0 {
            LISTING_PAGE_SIZE
        } else {
            options.page_size
        };
        // What an earlier listing read is not asked for again (documents are immutable).
        let known = Known::default();
        if let Ok(Some((_, old))) = read_cache(&dir).await {
            for (digest, bytes) in old.documents {
                known.insert(digest, bytes);
            }
        }
        let snapshot = self.fetch_remote(&options.names, page_size, known).await?;
        let listing = self.packages(query, &options.names, &snapshot)?;
        if options.names.is_empty() {
            write_cache(&dir, snapshot, true).await?;
        } else {
            // A listing by name refreshes what those names select; the rest of the cache stays
            // (a damaged cache is simply replaced).
            let old = read_cache(&dir).await.ok().flatten();
            write_cache(&dir, self.merge(snapshot, old, &options.names), false).await?;
        }
        Ok(listing)
    }

    /// The tags of the repository `name` names (`REGISTRY/REPO`, or a repository of the first
    /// configured registry), read page by page.
    pub async fn list_tags(&self, name: &str) -> Result<(Reference, Vec<String>)> {
        let reference = self.parse_name(name)?;
        let client = self.client()?;
        let tags = all_tags(&client, &reference, LISTING_PAGE_SIZE).await?;
        Ok((reference, tags))
    }

    /// Whether a cache that asked for `covered` answers for the configured registries (no
    /// names) or for `names`; one that does not is refreshed rather than answering with nothing.
    fn covers(&self, covered: &[String], names: &[String]) -> bool {
        let has = |s: &str| covered.iter().any(|c| c == s);
        if names.is_empty() {
            return self.registries().iter().all(|r| has(r) || has(&no_catalog(r)));
        }
        names
            .iter()
            .all(|name| has(&self.target(name).registry) || has(&name_marker(name)))
    }

    /// The cache after a listing by `names`: the new entries, and the old ones the names do
    /// not select.
    fn merge(&self, mut new: Snapshot, old: Option<(CacheIndex, Snapshot)>, names: &[String]) -> Snapshot {
        let Some((_, old)) = old else {
            return new;
        };
        for entry in old.entries {
            let selected = entry
                .reference
                .parse::<Reference>()
                .map_or(true, |r| names.iter().any(|n| self.name_matches(n, &r)));
            if !selected && !new.entries.iter().any(|e| e.reference == entry.reference) {
                new.entries.push(entry);
            }
        }
        new.entries.sort_by(|a, b| a.reference.cmp(&b.reference));
        for c in old.covered {
            if !new.covered.contains(&c) {
                new.covered.push(c);
            }
        }
        new
    }

    fn packages(&self, query: &Query, names: &[String], snapshot: &Snapshot) -> Result<RemoteListing> {
        let mut packages = Vec::new();
        let mut warnings = snapshot.warnings.clone();
        for entry in &snapshot.entries {
            let reference: Reference = match entry.reference.parse() {
                Ok(r) => r,
                Err(_) => continue,
            };
            if !names.is_empty() && !names.iter().any(|n| self.name_matches(n, &reference)) {
                continue;
            }
            if !query.matches_name(&reference, &entry.reference) {
                continue;
            }
            match packages_of(&reference, &entry.descriptor, &snapshot.documents) {
                Ok(found) => {
                    packages.extend(found.into_iter().filter(|p| query.matches_platform(&p.platform)))
                }
                Err(err) => warnings.push(format!("skipped {reference}: {err}")),
            }
        }
        Ok(RemoteListing {
            packages,
            warnings,
            cached_at: None,
        })
    }

    fn name_matches(&self, name: &str, reference: &Reference) -> bool {
        let target = self.target(name);
        if target.registry != reference.registry() {
            return false;
        }
        let pattern = name_pattern(name);
        glob_match(pattern.as_bytes(), reference.repository().as_bytes())
            || glob_match(
                pattern.as_bytes(),
                format!("{}/{}", reference.registry(), reference.repository()).as_bytes(),
            )
            || glob_match(name.as_bytes(), reference.to_string().as_bytes())
            || glob_match(name.as_bytes(), reference.name().as_bytes())
    }

    fn target(&self, name: &str) -> Target {
        let default = self
            .registries()
            .first()
            .map_or(ukpm_types::DEFAULT_REGISTRY, String::as_str)
            .to_string();
        let pattern = name_pattern(name);
        let (registry, repository) = match pattern.split_once('/') {
            Some((first, rest)) if ukpm_types::has_registry(&pattern) && !first.contains(['*', '?']) => {
                (first.to_string(), rest.to_string())
            }
            _ => (default, pattern.clone()),
        };
        let explicit = !repository.is_empty() && !repository.contains(['*', '?']);
        Target {
            registry,
            repository: explicit.then_some(repository),
        }
    }

    async fn fetch_remote(&self, names: &[String], page_size: usize, known: Known) -> Result<Snapshot> {
        let client = self.client()?;
        // registry -> explicit repositories (None: the whole catalog).
        let mut plan: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
        // The configured registries' catalogs are read even when names are given: a name
        // filters them, and a refusal is then said (the rest is missing for that reason).
        for registry in self.registries() {
            plan.insert(registry.clone(), None);
        }
        let mut explicit: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in names {
            let target = self.target(name);
            match target.repository {
                Some(repo) => explicit.entry(target.registry).or_default().push(repo),
                None => {
                    plan.insert(target.registry, None);
                }
            }
        }
        let mut snapshot = Snapshot::default();
        let mut repositories: Vec<Reference> = Vec::new();
        let mut failed: Option<Error> = None;
        for (registry, _) in plan {
            match all_repositories(&client, &registry, page_size).await {
                Ok(repos) => {
                    if names.is_empty() {
                        snapshot.covered.push(registry.clone());
                    }
                    for repo in repos {
                        let reference = Reference::new(&registry, &repo, ukpm_types::DEFAULT_TAG)?;
                        if names.is_empty() || names.iter().any(|n| self.name_matches(n, &reference)) {
                            repositories.push(reference);
                        }
                    }
                }
                Err(Error::Registry(err)) if CatalogRefusal::of(&err).is_some() => {
                    if names.is_empty() {
                        snapshot.covered.push(no_catalog(&registry));
                    }
                    let why = CatalogRefusal::of(&err).map_or("", |r| r.describe());
                    snapshot.warnings.push(format!(
                        "registry {registry} lists no repositories: {why}; name them as {registry}/REPO to list them"
                    ));
                }
                // One unreachable registry does not hide the others' packages.
                Err(err) => {
                    snapshot
                        .warnings
                        .push(format!("cannot list registry {registry}: {err}"));
                    failed.get_or_insert(err);
                }
            }
        }
        // Nothing could be asked at all: that is the answer, not an empty listing.
        if let Some(err) = failed
            && repositories.is_empty()
            && explicit.is_empty()
        {
            return Err(err);
        }
        snapshot.covered.extend(names.iter().map(|n| name_marker(n)));
        for (registry, repos) in explicit {
            for repo in repos {
                let reference = Reference::new(&registry, &repo, ukpm_types::DEFAULT_TAG)?;
                if !repositories.contains(&reference) {
                    repositories.push(reference);
                }
            }
        }
        // Every tag of every repository, and each tag's documents as soon as its repository's
        // tags are known: no phase waits for the slowest repository of the one before.
        let slots = tokio::sync::Semaphore::new(LISTING_CONCURRENCY);
        let slots = &slots;
        let known = &known;
        let per_repository: Vec<RepositoryListing> = stream::iter(repositories)
            .map(|repo| {
                let client = client.clone();
                async move {
                    let tags = {
                        let _slot = slots.acquire().await;
                        all_tags(&client, &repo, page_size).await
                    };
                    let references = match tags.and_then(|tags| {
                        tags.iter()
                            .map(|t| Ok(repo.with_tag(t)?))
                            .collect::<Result<Vec<_>>>()
                    }) {
                        Ok(references) => references,
                        Err(err) => return (Some(err), Vec::new()),
                    };
                    let fetched = stream::iter(references)
                        .map(|reference| {
                            let client = client.clone();
                            async move {
                                let result = fetch_tag(&client, &reference, known, slots).await;
                                (reference, result)
                            }
                        })
                        .buffer_unordered(LISTING_CONCURRENCY)
                        .collect()
                        .await;
                    (None, fetched)
                }
            })
            .buffer_unordered(LISTING_CONCURRENCY)
            .collect()
            .await;
        let mut fetched = Vec::new();
        let mut skipped = Vec::new();
        for (failure, tags) in per_repository {
            if let Some(err) = failure {
                skipped.push(format!("skipped a repository: {err}"));
            }
            fetched.extend(tags);
        }
        // Finished in whatever order the registry answered: listed in a stable one.
        fetched.sort_by_key(|(reference, _)| reference.to_string());
        for (reference, result) in fetched {
            match result {
                Ok((entry, documents)) => {
                    snapshot.entries.push(entry);
                    snapshot.documents.extend(documents);
                }
                Err(err) => skipped.push(format!("skipped {reference}: {err}")),
            }
        }
        skipped.sort();
        snapshot.warnings.extend(skipped);
        Ok(snapshot)
    }
}

/// Requests in flight at once while listing. Each asks for a small document, so the link's
/// latency, not its bandwidth, bounds a listing: 32 lists a registry of 1,000 repositories
/// within seconds over a 40 ms link, far below the connection limits registries set.
const LISTING_CONCURRENCY: usize = 32;

/// Documents already read, by digest: a manifest or config that many tags and repositories
/// share (the same package pushed under many names) is asked for once. Seeded with the old
/// cache's documents, which were checked against their digests when read.
#[derive(Default)]
struct Known(std::sync::Mutex<HashMap<Digest, Arc<tokio::sync::OnceCell<Bytes>>>>);

impl Known {
    fn insert(&self, digest: Digest, bytes: Bytes) {
        self.cell(digest).set(bytes).ok();
    }

    fn cell(&self, digest: Digest) -> Arc<tokio::sync::OnceCell<Bytes>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(digest)
            .or_default()
            .clone()
    }

    /// The document `digest`, read by `fetch` unless it was read before or is being read now
    /// (then this waits for that read; a failed read is tried again by the next asker).
    async fn get_or_fetch<F, Fut>(&self, digest: Digest, fetch: F) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes>>,
    {
        self.cell(digest).get_or_try_init(fetch).await.cloned()
    }
}

/// How [`CacheIndex::covered`] records a name a listing was asked for.
fn name_marker(name: &str) -> String {
    format!("name {name}")
}

/// How [`CacheIndex::covered`] records a registry whose catalog was asked for but not read.
fn no_catalog(registry: &str) -> String {
    format!("{registry} (no catalog)")
}

/// The name with any `:tag` or `@digest` cut off (a tag is matched by the query's name glob).
fn name_pattern(name: &str) -> String {
    let name = name.split('@').next().unwrap_or(name);
    match name.rsplit_once(':') {
        Some((head, tail)) if !tail.contains('/') => head.to_string(),
        _ => name.to_string(),
    }
}

async fn all_repositories(client: &Client, registry: &str, page_size: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client.catalog_page(registry, page_size, next.as_deref()).await?;
        out.extend(page.items);
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok(out),
        }
    }
}

async fn all_tags(client: &Client, reference: &Reference, page_size: usize) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = client.tags_page(reference, page_size, next.as_deref()).await?;
        out.extend(page.items);
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok(out),
        }
    }
}

/// A tag's index (or manifest), its manifests, and the configs a listing needs, as raw bytes.
async fn fetch_tag(
    client: &Client,
    reference: &Reference,
    known: &Known,
    slots: &tokio::sync::Semaphore,
) -> Result<Fetched> {
    let top = {
        let _slot = slots.acquire().await;
        client.get_manifest(reference).await?
    };
    let descriptor = Descriptor::new(&top.media_type, top.digest, top.bytes.len() as u64);
    let mut documents = vec![(top.digest, top.bytes.clone())];
    let manifests: Vec<Descriptor> = if descriptor.is_index() {
        let index: Index = parse(&descriptor, &top.bytes, "image index")?;
        index
            .manifests
            .into_iter()
            .filter(Descriptor::is_manifest)
            .collect()
    } else {
        Vec::new()
    };
    let single = (!descriptor.is_index()).then(|| descriptor.clone());
    for entry in manifests.iter().chain(single.iter()) {
        let bytes = if entry.digest == top.digest {
            top.bytes.clone()
        } else {
            let by_digest: Reference =
                format!("{}@{}", reference.without_digest().name(), entry.digest).parse()?;
            let bytes = known
                .get_or_fetch(entry.digest, || async {
                    let _slot = slots.acquire().await;
                    // The client checks what it got against the digest asked for.
                    Ok(client.get_manifest(&by_digest).await?.bytes)
                })
                .await?;
            documents.push((entry.digest, bytes.clone()));
            bytes
        };
        if entry.platform.is_none() {
            let manifest: Manifest = parse(entry, &bytes, "image manifest")?;
            if manifest.config.platform.is_none() && manifest.config.size <= limits::MANIFEST_LIMIT {
                let config = known
                    .get_or_fetch(manifest.config.digest, || async {
                        let _slot = slots.acquire().await;
                        read_blob(client, reference, &manifest.config).await
                    })
                    .await?;
                documents.push((manifest.config.digest, config));
            }
        }
    }
    Ok((
        Entry {
            reference: reference.to_string(),
            descriptor,
        },
        documents,
    ))
}

async fn read_blob(client: &Client, reference: &Reference, descriptor: &Descriptor) -> Result<Bytes> {
    let mut download = client.get_blob(reference, descriptor, 0).await?;
    let mut out = Vec::with_capacity(descriptor.size as usize);
    while let Some(chunk) = download.chunk().await? {
        out.extend_from_slice(&chunk);
    }
    let actual = Digest::of(&out);
    if actual != descriptor.digest {
        return Err(Error::Registry(ukpm_registry::RegistryError::DigestMismatch {
            registry: reference.registry().to_string(),
            expected: descriptor.digest,
            actual,
        }));
    }
    Ok(Bytes::from(out))
}

/// The packages a tag holds, from the snapshot's documents.
fn packages_of(
    reference: &Reference,
    top: &Descriptor,
    documents: &HashMap<Digest, Bytes>,
) -> Result<Vec<Package>> {
    let doc = |d: &Descriptor| {
        documents
            .get(&d.digest)
            .cloned()
            .ok_or_else(|| Error::InvalidInput(format!("the document {} was not fetched", d.digest)))
    };
    let entries: Vec<(Option<Descriptor>, Descriptor)> = if top.is_index() {
        let index: Index = parse(top, &doc(top)?, "image index")?;
        index
            .manifests
            .into_iter()
            .filter(Descriptor::is_manifest)
            .map(|m| (Some(top.clone()), m))
            .collect()
    } else {
        vec![(None, top.clone())]
    };
    let mut out = Vec::new();
    for (index, mut entry) in entries {
        let manifest: Manifest = parse(&entry, &doc(&entry)?, "image manifest")?;
        if entry.platform.is_none() && manifest.config.platform.is_none() {
            let config: ImageConfig = parse(&manifest.config, &doc(&manifest.config)?, "image config")?;
            entry.platform = Some(Platform {
                architecture: config.architecture,
                os: config.os,
                os_version: config.os_version,
                os_features: ukpm_types::compact_sorted(&config.os_features),
                variant: config.variant,
            });
        }
        let created = top.annotations.get(ukpm_types::annotation::OCI_CREATED).cloned();
        out.push(Package::new(reference.clone(), index, entry, &manifest, created));
    }
    Ok(out)
}
