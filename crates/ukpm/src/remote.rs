//! Moving packages to and from registries: pull, push, tag, login and logout (KraftKit's
//! `NewPackageFromRemoteOCIRef`, `Pull`, `Push`).
//!
//! Pulls keep the registry's bytes exactly (the store then holds the registry's digests), write
//! blobs before the manifests that name them and manifests before the index, and set the ref
//! last, so an interrupted pull leaves nothing half-visible. Pushes go the other way: blobs
//! (skipping what the registry has, mounting what another repository has), then manifests by
//! digest, then the index under its tag.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use ukpm_registry::{BlobDownload, Body, Client, Credential, CredentialSource, PushOutcome, Secret};
use ukpm_types::{
    Descriptor, Digest, Index, Manifest, Reference, annotation, normalize_architecture, normalize_plat,
};

use crate::catalog::{Package, Query, parse};
use crate::credentials::DockerConfig;
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::store::{ChannelReader, Expect};
use crate::time;

/// What to pull from an index.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Which platforms: every manifest matching the query is pulled.
    pub query: Query,
    /// Pull every platform, whatever the query says.
    pub all_platforms: bool,
}

/// What a push did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Where it went.
    pub reference: Option<Reference>,
    /// The digest of the pushed index or manifest.
    pub digest: Option<Digest>,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Blobs the registry already had.
    pub existed: usize,
    /// Blobs mounted from another repository.
    pub mounted: usize,
    /// Manifests and indexes written.
    pub manifests_written: usize,
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
        let client = self.client()?;
        let store = self.store();
        let _lease = store.lease().await?;
        self.reporter().step(&format!("pulling {reference}"));
        let fetched = client.get_manifest(reference).await?;
        let top = fetched.descriptor();
        let mut pulled = Vec::new();
        if top.is_index() {
            let index: Index = parse(&top, &fetched.bytes, "image index")?;
            let available: Vec<String> = index.manifests.iter().map(describe_entry).collect();
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
                .collect();
            if selected.is_empty() {
                return Err(Error::NoPlatform {
                    reference: reference.clone(),
                    query: options.query.describe(),
                    available,
                });
            }
            // Manifests in parallel; their blobs share the manager's transfer limit.
            futures_util::future::try_join_all(
                selected
                    .iter()
                    .map(|entry| self.pull_manifest(&client, reference, entry)),
            )
            .await?;
            pulled.extend(selected.iter().map(|entry| entry.digest));
        } else if top.is_manifest() {
            self.pull_manifest(&client, reference, &top).await?;
            pulled.push(top.digest);
        } else {
            return Err(Error::InvalidInput(format!(
                "{reference} is a `{}`, neither an image index nor a manifest",
                top.media_type
            )));
        }
        let stored = store.put_bytes(fetched.bytes.to_vec()).await?;
        debug_assert_eq!(stored, top.digest);
        store.note_source(top.digest, reference).await?;
        let name = stored_name(reference);
        let mut entry = top.clone();
        entry.annotations.insert(
            annotation::OCI_CREATED.into(),
            time::rfc3339(time::now_or_epoch()?),
        );
        store
            .set_ref(name.to_string(), entry.clone(), Expect::Any)
            .await?;
        let packages = self.packages_of(&name, &entry).await?;
        Ok(packages
            .into_iter()
            .filter(|p| pulled.contains(&p.manifest.digest))
            .collect())
    }

    /// Fetches one manifest's config and layers, then the manifest itself.
    async fn pull_manifest(&self, client: &Client, reference: &Reference, entry: &Descriptor) -> Result<()> {
        let store = self.store();
        let by_digest = digest_reference(reference, entry.digest)?;
        let bytes = if store.has_blob(entry.digest, None).await? {
            self.read_by_digest(entry).await?
        } else {
            let fetched = client.get_manifest(&by_digest).await?;
            if fetched.bytes.len() as u64 != entry.size {
                let kraftkit = entry.annotations.contains_key(annotation::KRAFTKIT_VERSION);
                if !kraftkit {
                    return Err(Error::InvalidInput(format!(
                        "manifest {} is {} bytes but its index entry says {}",
                        entry.digest,
                        fetched.bytes.len(),
                        entry.size
                    )));
                }
                tracing::warn!(digest = %entry.digest, declared = entry.size, "KraftKit index entry has a wrong size");
            }
            fetched.bytes.to_vec()
        };
        let manifest: Manifest = parse(entry, &bytes, "image manifest")?;
        let blobs = unique_blobs(&manifest);
        futures_util::future::try_join_all(blobs.into_iter().map(|blob| async move {
            let _permit = self.transfer_permit().await;
            self.fetch_blob(client, reference, blob).await?;
            store.note_source(blob.digest, reference).await
        }))
        .await?;
        store.put_bytes(bytes).await?;
        store.note_source(entry.digest, reference).await?;
        let mut seen: Vec<(Digest, String)> = unique_blobs(&manifest)
            .iter()
            .map(|b| (b.digest, reference.name()))
            .collect();
        seen.push((entry.digest, reference.name()));
        store.remember_sources(seen).await?;
        Ok(())
    }

    /// Streams one blob into the store, its size enforced as bytes arrive and its digest
    /// checked before it becomes visible; a blob already present is not fetched.
    pub(crate) async fn fetch_blob(
        &self,
        client: &Client,
        reference: &Reference,
        blob: &Descriptor,
    ) -> Result<()> {
        let store = self.store();
        let label = blob.digest.to_string();
        let reporter = self.reporter_arc();
        if store.has_blob(blob.digest, Some(blob.size)).await? {
            reporter.blob_skipped(&label, "already in the store");
            return Ok(());
        }
        let id = crate::reporter::next_id();
        reporter.blob_started(id, &label, Some(blob.size));
        let mut resume = if blob.size >= RANGED_MIN {
            match self.fetch_ranged(client, reference, blob, id).await {
                Ok(None) => {
                    reporter.blob_finished(id);
                    return Ok(());
                }
                Ok(Some(prefix)) => prefix,
                // The ranges did not add up to the blob: fetch it whole once more.
                Err(Error::Store(ukpm_store::StoreError::DigestMismatch { .. })) => 0,
                Err(err) => {
                    reporter.blob_finished(id);
                    return Err(err);
                }
            }
        } else {
            store.resumable(blob.digest).await?.min(blob.size)
        };
        let outcome = loop {
            let result = self.fetch_from(client, reference, blob, resume, id).await;
            match result {
                // The bytes an earlier attempt left did not verify, or another process holds
                // them: fetch the whole blob once more, from the start.
                Err(Error::Store(
                    ukpm_store::StoreError::DigestMismatch { .. } | ukpm_store::StoreError::Busy { .. },
                )) if resume > 0 => {
                    tracing::debug!(digest = %blob.digest, "resuming failed; downloading from the start");
                    resume = 0;
                }
                // The registry refused the range (416): start over.
                Err(Error::Registry(ukpm_registry::RegistryError::Status { status: 416, .. }))
                    if resume > 0 =>
                {
                    tracing::debug!(digest = %blob.digest, "resuming failed; downloading from the start");
                    resume = 0;
                }
                other => break other,
            }
        };
        reporter.blob_finished(id);
        outcome
    }

    /// Downloads a large blob as parallel `Range` requests written in place into one file,
    /// verified whole at the end; what an interrupted attempt landed is not fetched again.
    /// `Ok(Some(prefix))` when it cannot (another process holds the blob, or the registry does
    /// not serve ranges): the caller then downloads in one stream from `prefix`.
    async fn fetch_ranged(
        &self,
        client: &Client,
        reference: &Reference,
        blob: &Descriptor,
        id: u64,
    ) -> Result<Option<u64>> {
        let Some(writer) = self.store().ranged(blob.digest, blob.size).await? else {
            return Ok(Some(0));
        };
        let missing = writer.missing();
        let already = blob.size - missing.iter().map(|(a, b)| b + 1 - a).sum::<u64>();
        let reporter = self.reporter_arc();
        let done = Arc::new(std::sync::atomic::AtomicU64::new(already));
        if already > 0 {
            tracing::debug!(digest = %blob.digest, already, "resuming a ranged download");
            reporter.blob_progress(id, already);
        }
        let piece = blob.size.div_ceil(RANGED_PARTS).max(1 << 20);
        let jobs: Vec<(u64, u64)> = missing
            .iter()
            .flat_map(|&(a, b)| {
                let mut out = Vec::new();
                let mut start = a;
                while start <= b {
                    let end = (start + piece - 1).min(b);
                    out.push((start, end));
                    start = end + 1;
                }
                out
            })
            .collect();
        let Some(&(first_start, first_end)) = jobs.first() else {
            tokio::task::spawn_blocking(move || writer.commit()).await??;
            return Ok(None);
        };
        let first = client
            .get_blob_range(reference, blob, first_start, Some(first_end))
            .await?;
        if !first.ranged() {
            tracing::debug!(digest = %blob.digest, "the registry does not serve ranges");
            let prefix = tokio::task::spawn_blocking(move || writer.give_up_ranges()).await??;
            return Ok(Some(prefix));
        }
        let context = &RangeContext {
            writer: writer.as_ref(),
            reporter: reporter.as_ref(),
            id,
            done: &done,
        };
        let rest = futures_util::stream::iter(jobs[1..].iter().copied())
            .map(|(start, end)| async move {
                let download = client.get_blob_range(reference, blob, start, Some(end)).await?;
                if !download.ranged() {
                    return Err(Error::InvalidInput(format!(
                        "the registry served blob {} whole after serving a range",
                        blob.digest
                    )));
                }
                write_range(download, start, context).await
            })
            .buffer_unordered(RANGED_PARTS as usize - 1)
            .try_collect::<Vec<()>>();
        let (first_result, rest) = tokio::join!(write_range(first, first_start, context), rest);
        first_result?;
        rest?;
        tokio::task::spawn_blocking(move || writer.commit()).await??;
        Ok(None)
    }

    /// One download attempt of `blob` from byte `offset`.
    async fn fetch_from(
        &self,
        client: &Client,
        reference: &Reference,
        blob: &Descriptor,
        offset: u64,
        id: u64,
    ) -> Result<()> {
        let reporter = self.reporter_arc();
        if offset >= blob.size {
            // An earlier attempt already has every byte (it died just before the rename, or
            // another process is finishing it): verify and commit, no request needed.
            let empty: crate::store::BlobRead = Box::new(std::io::empty());
            self.store()
                .write_blob_from(empty, (blob.digest, blob.size), blob.size)
                .await?;
            return Ok(());
        }
        let mut download = client.get_blob(reference, blob, offset).await?;
        let start = download.start();
        if start > 0 {
            tracing::debug!(digest = %blob.digest, start, "resuming a download");
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(32);
        let write =
            self.store()
                .write_blob_from(Box::new(ChannelReader::new(rx)), (blob.digest, blob.size), start);
        let pump = pump(&mut download, tx, reporter.as_ref(), id, start);
        let (written, pumped) = tokio::join!(write, pump);
        pumped?;
        written?;
        Ok(())
    }

    /// Pushes the package `source` to `target` (default: where its name says).
    pub async fn push(&self, source: &Reference, target: Option<&Reference>) -> Result<PushReport> {
        let client = self.client()?;
        let store = self.store();
        let _lease = store.lease().await?;
        let (entry, _) = self.resolve(source).await?;
        let stored: Reference = entry.name.parse().unwrap_or_else(|_| source.clone());
        let target = target.cloned().unwrap_or_else(|| stored.clone());
        if target.tag().is_none() && target.digest().is_none() {
            return Err(Error::InvalidInput(format!("{target} needs a tag to push to")));
        }
        self.reporter().step(&format!("pushing {stored} to {target}"));
        let top = Descriptor::new(
            &entry.descriptor.media_type,
            entry.descriptor.digest,
            entry.descriptor.size,
        );
        let mount_from = (stored.registry() == target.registry()
            && stored.repository() != target.repository())
        .then(|| stored.repository().to_string());
        let mut report = PushReport::default();
        if !top.is_index() && !top.is_manifest() {
            return Err(Error::InvalidInput(format!(
                "{stored} is a `{}`, neither an image index nor a manifest",
                top.media_type
            )));
        }
        // What the tag points at now is asked while the rest goes up.
        let children = async {
            if top.is_manifest() {
                return self
                    .push_manifest(&client, &target, &top, mount_from.as_deref(), &mut report)
                    .await;
            }
            let bytes = store.read_bytes(top.clone()).await?;
            let index: Index = parse(&top, &bytes, "image index")?;
            for child in index.manifests.iter().filter(|d| d.is_manifest()) {
                if store.has_blob(child.digest, None).await? {
                    self.push_manifest(&client, &target, child, mount_from.as_deref(), &mut report)
                        .await?;
                } else if client
                    .head_manifest(&digest_reference(&target, child.digest)?)
                    .await?
                    .is_none()
                {
                    return Err(Error::InvalidInput(format!(
                        "cannot push {stored}: its manifest {} ({}) is neither in the store nor in {}; pull it with --all-platforms first",
                        child.digest,
                        describe_entry(child),
                        target.name()
                    )));
                }
            }
            Ok(bytes)
        };
        let (bytes, present) = tokio::join!(children, client.head_manifest(&target));
        let (bytes, present) = (bytes?, present?);
        self.put_top(&client, &target, &top, bytes, present, &mut report)
            .await?;
        report.reference = Some(target);
        report.digest = Some(top.digest);
        Ok(report)
    }

    /// Pushes a manifest's blobs, then the manifest by digest; returns its bytes.
    async fn push_manifest(
        &self,
        client: &Client,
        target: &Reference,
        entry: &Descriptor,
        mount_from: Option<&str>,
        report: &mut PushReport,
    ) -> Result<Vec<u8>> {
        let bytes = self.read_by_digest(entry).await?;
        let manifest: Manifest = parse(entry, &bytes, "image manifest")?;
        let blobs = unique_blobs(&manifest);
        let by_digest = digest_reference(target, entry.digest)?;
        // Whether the registry has the manifest is asked while the blobs go up: a round trip
        // less on every push.
        let pushes = futures_util::future::try_join_all(blobs.into_iter().map(|blob| async move {
            let _permit = self.transfer_permit().await;
            if !self.store().has_blob(blob.digest, Some(blob.size)).await? {
                return Err(Error::Store(ukpm_store::StoreError::BlobNotFound {
                    digest: blob.digest,
                }));
            }
            let label = blob.digest.to_string();
            let id = crate::reporter::next_id();
            let body = self.body_factory(blob, id);
            // Mount from where this blob was last seen in the same registry, if anywhere.
            let remembered = self.store().blob_sources(blob.digest).await?;
            let prefix = format!("{}/", target.registry());
            let seen_in = remembered
                .iter()
                .filter_map(|name| name.strip_prefix(&prefix))
                .find(|repo| *repo != target.repository());
            let outcome = client
                .push_blob(target, blob, mount_from.or(seen_in), &body)
                .await?;
            match outcome {
                PushOutcome::Exists => self.reporter().blob_skipped(&label, "already in the registry"),
                PushOutcome::Mounted => self.reporter().blob_skipped(&label, "mounted"),
                PushOutcome::Uploaded => self.reporter().blob_finished(id),
            }
            Ok::<_, Error>((outcome, blob.size))
        }));
        let (outcomes, present) = tokio::join!(pushes, client.head_manifest(&by_digest));
        let (outcomes, present) = (outcomes?, present?);
        let mut seen: Vec<(Digest, String)> = unique_blobs(&manifest)
            .iter()
            .map(|b| (b.digest, target.name()))
            .collect();
        seen.push((entry.digest, target.name()));
        self.store().remember_sources(seen).await?;
        for (outcome, size) in outcomes {
            match outcome {
                PushOutcome::Exists => report.existed += 1,
                PushOutcome::Mounted => report.mounted += 1,
                PushOutcome::Uploaded => {
                    report.uploaded += 1;
                    report.uploaded_bytes += size;
                }
            }
        }
        if present.is_none_or(|d| d.digest != entry.digest) {
            client
                .put_manifest(&by_digest, &entry.media_type, Bytes::from(bytes.clone()))
                .await?;
            report.manifests_written += 1;
        }
        Ok(bytes)
    }

    /// Puts the index or manifest under the target's tag, unless it already points there
    /// (`present`: what the tag points at, asked while the rest went up).
    async fn put_top(
        &self,
        client: &Client,
        target: &Reference,
        top: &Descriptor,
        bytes: Vec<u8>,
        present: Option<Descriptor>,
        report: &mut PushReport,
    ) -> Result<()> {
        if present.is_some_and(|d| d.digest == top.digest) {
            return Ok(());
        }
        client
            .put_manifest(target, &top.media_type, Bytes::from(bytes))
            .await?;
        report.manifests_written += 1;
        Ok(())
    }

    /// A body that streams `len` bytes of a stored blob from `offset`, opened anew for each
    /// attempt, reporting the bytes as they go out under `id`.
    fn body_factory(&self, blob: &Descriptor, id: u64) -> impl Fn(u64, u64) -> Body + Send + Sync + 'static {
        let store = self.store_arc();
        let reporter = self.reporter_arc();
        let (digest, size) = (blob.digest, blob.size);
        move |offset, len| {
            let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
            let store = store.clone();
            let reporter = reporter.clone();
            tokio::spawn(async move {
                match store.open_blob_range(digest, offset, len).await {
                    Ok(reader) => {
                        if offset == 0 {
                            reporter.blob_started(id, &digest.to_string(), Some(size));
                        }
                        let _ = tokio::task::spawn_blocking(move || {
                            send_blocking(reader, tx, reporter.as_ref(), id, offset)
                        })
                        .await;
                    }
                    Err(err) => {
                        let _ = tx.send(Err(io::Error::other(err.to_string()))).await;
                    }
                }
            });
            Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }))
        }
    }

    /// Gives `source`'s content another local name.
    pub async fn tag(&self, source: &Reference, target: &Reference) -> Result<()> {
        if target.tag().is_none() || target.digest().is_some() {
            return Err(Error::InvalidInput(format!("{target} must be a name with a tag")));
        }
        let (entry, manifest) = self.resolve(source).await?;
        let mut descriptor = entry.descriptor;
        if let Some(digest) = manifest {
            let packages = self.find(source, &Query::default()).await?;
            let package = packages
                .into_iter()
                .find(|p| p.manifest.digest == digest)
                .ok_or_else(|| Error::NotFound {
                    reference: source.clone(),
                })?;
            descriptor = Descriptor::new(&package.manifest.media_type, digest, package.manifest.size);
        }
        descriptor.annotations.remove(annotation::OCI_REF_NAME);
        self.store()
            .set_ref(target.without_digest().to_string(), descriptor, Expect::Any)
            .await?;
        Ok(())
    }

    /// Checks `username` and `password` against `registry`, then stores them in the docker
    /// `config.json`; returns that file's path.
    pub async fn login(
        &self,
        registry: &str,
        username: &str,
        password: Secret,
    ) -> Result<std::path::PathBuf> {
        let credential = Credential::Basic {
            username: username.to_string(),
            password: password.clone(),
        };
        let client = Client::new(self.client_config().clone(), Arc::new(Fixed(credential)))?;
        client.ping(registry).await?;
        let path = self.docker_config_path()?;
        let mut config = DockerConfig::load(&path)?;
        config.store(registry, username, &password)?;
        Ok(path)
    }

    /// Removes the stored login for `registry`; `Ok(false)` when there was none.
    pub async fn logout(&self, registry: &str) -> Result<bool> {
        let path = self.docker_config_path()?;
        DockerConfig::load(&path)?.erase(registry)
    }
}

/// One credential for one login check.
struct Fixed(Credential);

impl CredentialSource for Fixed {
    fn credential(&self, _registry: &str) -> Option<Credential> {
        Some(self.0.clone())
    }

    fn describe(&self, _registry: &str) -> String {
        "the credentials given".to_string()
    }
}

/// The ref name a pulled reference is stored under.
fn stored_name(reference: &Reference) -> Reference {
    if reference.tag().is_some() {
        reference.without_digest()
    } else {
        reference.clone()
    }
}

/// Blobs at least this big are fetched as parallel ranges.
const RANGED_MIN: u64 = 16 << 20;
/// How many ranges a blob is fetched in at most.
const RANGED_PARTS: u64 = 8;

/// What the tasks of one ranged download share.
struct RangeContext<'a> {
    writer: &'a dyn crate::store::RangedWrite,
    reporter: &'a dyn crate::Reporter,
    id: u64,
    done: &'a std::sync::atomic::AtomicU64,
}

/// How often (in bytes) a range records how far it got: after every chunk, so a kill loses at
/// most the chunks in flight (the page cache keeps what was written; the final hash catches a
/// record that lies).
const LANDED_EVERY: u64 = 1;

/// Writes one range's bytes in place as they arrive, recording progress as it goes.
async fn write_range(mut download: BlobDownload, start: u64, cx: &RangeContext<'_>) -> Result<()> {
    let mut at = start;
    let mut recorded = start;
    while let Some(chunk) = download.chunk().await? {
        cx.writer.write_at(at, &chunk)?;
        at += chunk.len() as u64;
        if at - recorded >= LANDED_EVERY {
            cx.writer.landed(recorded, at - 1)?;
            recorded = at;
        }
        let total = cx
            .done
            .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed)
            + chunk.len() as u64;
        cx.reporter.blob_progress(cx.id, total);
    }
    if at > recorded {
        cx.writer.landed(recorded, at - 1)?;
    }
    Ok(())
}

/// A manifest's config and layers, each blob once (a layer may repeat).
fn unique_blobs(manifest: &Manifest) -> Vec<&Descriptor> {
    let mut seen = std::collections::BTreeSet::new();
    std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .filter(|b| seen.insert(b.digest))
        .collect()
}

fn digest_reference(reference: &Reference, digest: Digest) -> Result<Reference> {
    Ok(format!("{}@{digest}", reference.name()).parse()?)
}

fn normalized(platform: &ukpm_types::Platform) -> ukpm_types::Platform {
    let mut p = platform.clone();
    p.architecture = normalize_architecture(&p.architecture);
    p.os = normalize_plat(&p.os);
    p
}

fn describe_entry(d: &Descriptor) -> String {
    match &d.platform {
        Some(p) if p.os_version.is_empty() => normalized(p).short(),
        Some(p) => format!("{} ({})", normalized(p).short(), p.os_version),
        None => "no platform".to_string(),
    }
}

async fn pump(
    download: &mut BlobDownload,
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    reporter: &dyn crate::Reporter,
    id: u64,
    start: u64,
) -> Result<()> {
    loop {
        match download.chunk().await {
            Ok(Some(chunk)) => {
                if tx.send(Ok(chunk)).await.is_err() {
                    // The writer stopped (it saw bad bytes); its error is the one to report.
                    return Ok(());
                }
                reporter.blob_progress(id, start + download.received());
            }
            Ok(None) => return Ok(()),
            Err(err) => {
                let _ = tx.send(Err(io::Error::other(err.to_string()))).await;
                return Err(err.into());
            }
        }
    }
}

fn send_blocking(
    mut reader: crate::store::BlobRead,
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    reporter: &dyn crate::Reporter,
    id: u64,
    offset: u64,
) {
    let mut buf = vec![0u8; 256 << 10];
    let mut sent = offset;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tx.blocking_send(Ok(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                    return;
                }
                sent += n as u64;
                reporter.blob_progress(id, sent);
            }
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        }
    }
}
