//! Copying a package from one registry reference to another without the local store (`ukpm
//! copy`, crane's and skopeo's `copy`).
//!
//! Blobs stream from the source's GET body straight into the destination's upload: the
//! upload's body factory (called again for each attempt and each chunk) opens a ranged GET for
//! exactly the bytes asked for, so no blob is ever held whole in memory and a retried chunk
//! re-reads only its own range. The destination checks each blob's digest as it commits the
//! upload. Blobs the destination has are skipped (HEAD); on the same registry they are mounted
//! from the source's repository. Manifests go by digest once their blobs are there, then the
//! index under the destination's tag.
//!
//! With every platform the index's bytes are copied exactly, so its digest is kept; with only
//! some platforms a new index holding only their entries is written, whose digest differs.
//!
//! With [`RemoteCopyOptions::referrers`], the OCI 1.1 referrers of every copied manifest (and of
//! the index, when its bytes are kept) come along, recursively: those the source's referrers
//! API lists and those in its `sha256-<hex>` fallback tag. The fallback tag is written at the
//! destination when the source has one or the destination has no referrers API, merged with
//! what the destination's tag already lists.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use ukpm_registry::{BlobDownload, Body, Client, MANIFEST_LIMIT, PushOutcome, RegistryError, referrers_tag};
use ukpm_types::{Descriptor, Digest, Index, Manifest, Reference, to_go_json};

use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::package::Query;
use crate::pull::{describe_entry, digest_reference, fetch_manifest, normalized, parse_remote, unique_blobs};
use crate::reporter::{Direction, Plan, Reporter, Skip, Step, Subject, TransferId};
use crate::transfer::Transfer;

/// How often one upload body opens the source again after it broke off.
const REOPEN_LIMIT: u32 = 5;

/// What to copy.
#[derive(Debug, Clone, Default)]
pub struct RemoteCopyOptions {
    /// Which platforms of an index: every manifest matching the query. The default query
    /// copies every platform and keeps the index's bytes (and digest) exactly; any other
    /// writes a new index of the matching entries.
    pub query: Query,
    /// Also copy the OCI 1.1 referrers (signatures, SBOMs) of what is copied, recursively.
    pub referrers: bool,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCopyReport {
    /// Where it came from.
    pub source: Reference,
    /// Where it went.
    pub target: Reference,
    /// The digest the target's tag now points at.
    pub digest: Digest,
    /// Whether that is the source's own document (false: a new index of the chosen platforms).
    pub digest_kept: bool,
    /// The platforms copied (`qemu/x86_64`), in index order; empty for a single manifest
    /// without a platform.
    pub platforms: Vec<String>,
    /// Blobs whose bytes were streamed across.
    pub copied: usize,
    /// Bytes streamed across.
    pub copied_bytes: u64,
    /// Blobs the destination already had.
    pub existed: usize,
    /// Blobs the destination mounted from the source's repository.
    pub mounted: usize,
    /// Manifests, indexes and tags written.
    pub manifests_written: usize,
    /// Referrer manifests copied (or found already there).
    pub referrers: usize,
}

impl PackageManager {
    /// Copies `source` (a tag or digest on one registry) to `target` (on the same registry or
    /// another) without touching the store; see the module docs for what moves and how.
    pub async fn copy(
        &self,
        source: &Reference,
        target: &Reference,
        options: &RemoteCopyOptions,
    ) -> Result<RemoteCopyReport> {
        let transfer = self.transfer()?;
        self.reporter().on_step(&Step::Copy {
            source: source.clone(),
            target: target.clone(),
        });
        let mount_from = (source.registry() == target.registry()
            && source.repository() != target.repository())
        .then(|| source.repository().to_string());
        let copier = Copier {
            transfer,
            reporter: self.reporter_arc(),
            source: source.clone(),
            target: target.clone(),
            mount_from,
            done: Mutex::new(HashMap::new()),
            tally: Mutex::new(Tally::default()),
        };
        let fetched = copier.transfer.client.get_manifest(source).await?;
        let top = fetched.descriptor();
        let mut subjects = Vec::new();
        let mut platforms = Vec::new();
        let (bytes, digest_kept) = if top.is_index() {
            let index: Index = parse_remote(source, &top, &fetched.bytes, "image index")?;
            let all = options.query == Query::default();
            let selected: Vec<Descriptor> = index
                .manifests
                .iter()
                .filter(|d| {
                    all || d
                        .platform
                        .as_ref()
                        .is_some_and(|p| d.is_manifest() && options.query.matches_platform(&normalized(p)))
                })
                .cloned()
                .collect();
            if selected.is_empty() {
                return Err(Error::NoPlatform {
                    reference: source.clone(),
                    query: options.query.describe(),
                    available: index.manifests.iter().map(describe_entry).collect(),
                });
            }
            // Manifests in parallel (in index order), never more at once than the transfer
            // slots; their blobs share the same slots.
            let copier = &copier;
            futures_util::stream::iter(&selected)
                .map(|entry| copier.copy_document(entry, None))
                .buffered(self.concurrency())
                .try_collect::<Vec<_>>()
                .await?;
            for entry in &selected {
                subjects.push(entry.digest);
                if entry.platform.is_some() {
                    platforms.push(describe_entry(entry));
                }
            }
            if selected.len() == index.manifests.len() {
                subjects.push(top.digest);
                (fetched.bytes.clone(), true)
            } else {
                let mut chosen = index.clone();
                chosen.manifests = selected;
                (Bytes::from(to_go_json(&chosen)), false)
            }
        } else if top.is_manifest() {
            copier.copy_document(&top, Some(fetched.bytes.clone())).await?;
            subjects.push(top.digest);
            (fetched.bytes.clone(), true)
        } else {
            return Err(Error::NotAnImage {
                reference: source.clone(),
                media_type: top.media_type.clone(),
            });
        };
        let digest = Digest::of(&bytes);
        if let Some(wanted) = target.digest()
            && wanted != digest
        {
            return Err(Error::InvalidInput(format!(
                "{target} names digest {wanted}, but the copy is {digest}: give the target a tag"
            )));
        }
        if top.is_index() {
            copier
                .put_if_absent(target, &top.media_type, bytes, digest)
                .await?;
        } else if target.tag().is_some() {
            // The manifest is there by digest already; the tag is one more PUT.
            copier
                .put_if_absent(target, &top.media_type, bytes, digest)
                .await?;
        }
        if options.referrers {
            copier.copy_referrers(subjects).await?;
        }
        let tally = copier.tally.into_inner().unwrap_or_else(PoisonError::into_inner);
        Ok(RemoteCopyReport {
            source: source.clone(),
            target: target.clone(),
            digest,
            digest_kept,
            platforms,
            copied: tally.copied,
            copied_bytes: tally.copied_bytes,
            existed: tally.existed,
            mounted: tally.mounted,
            manifests_written: tally.manifests_written,
            referrers: tally.referrers,
        })
    }
}

#[derive(Default)]
struct Tally {
    copied: usize,
    copied_bytes: u64,
    existed: usize,
    mounted: usize,
    manifests_written: usize,
    referrers: usize,
}

/// One copy's state: where from, where to, and what it has done.
struct Copier {
    transfer: Transfer,
    reporter: Arc<dyn Reporter>,
    source: Reference,
    target: Reference,
    mount_from: Option<String>,
    /// Blobs this copy has dealt with, or is dealing with.
    done: Mutex<HashMap<Digest, Arc<tokio::sync::OnceCell<()>>>>,
    tally: Mutex<Tally>,
}

impl Copier {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Copies a manifest (its blobs first) or an index (its manifests first), then the document
    /// itself by digest; returns its bytes. `fetched` is the document when the caller has it.
    fn copy_document<'a>(
        &'a self,
        entry: &'a Descriptor,
        fetched: Option<Bytes>,
    ) -> BoxFuture<'a, Result<Bytes>> {
        Box::pin(async move {
            let client = &self.transfer.client;
            let bytes = match fetched {
                Some(bytes) => bytes,
                None => {
                    if entry.size > MANIFEST_LIMIT {
                        return Err(Error::RegistryProtocol {
                            reference: self.source.clone(),
                            message: format!(
                                "document {} is {} bytes, over the {MANIFEST_LIMIT}-byte limit",
                                entry.digest, entry.size
                            ),
                        });
                    }
                    let _permit = self.transfer.permit().await;
                    Bytes::from(fetch_manifest(client, &self.source, entry).await?)
                }
            };
            if entry.is_index() {
                let index: Index = parse_remote(&self.source, entry, &bytes, "image index")?;
                for child in &index.manifests {
                    self.copy_document(child, None).await?;
                }
            } else {
                let manifest: Manifest = parse_remote(&self.source, entry, &bytes, "image manifest")?;
                let blobs = unique_blobs(&manifest);
                self.reporter
                    .on_plan(&Plan::of(&self.target, Direction::Upload, blobs.iter().copied()));
                futures_util::future::try_join_all(blobs.into_iter().map(|blob| self.copy_blob(blob)))
                    .await?;
            }
            let by_digest = digest_reference(&self.target, entry.digest)?;
            self.put_if_absent(&by_digest, &entry.media_type, bytes.clone(), entry.digest)
                .await?;
            Ok(bytes)
        })
    }

    /// Puts a document under `reference` unless it already points at `digest`.
    async fn put_if_absent(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
        digest: Digest,
    ) -> Result<()> {
        let client = &self.transfer.client;
        if client
            .head_manifest(reference)
            .await?
            .is_some_and(|d| d.digest == digest)
        {
            return Ok(());
        }
        client.put_manifest(reference, media_type, bytes).await?;
        self.tally().manifests_written += 1;
        Ok(())
    }

    /// Makes one blob available at the target: skipped, mounted, or streamed across.
    /// A blob several manifests share moves once; the others wait for it (a manifest is put
    /// only once all its blobs are there).
    async fn copy_blob(&self, blob: &Descriptor) -> Result<()> {
        let cell = self
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(blob.digest)
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.move_blob(blob)).await.map(|_| ())
    }

    /// Moves one blob across, once.
    async fn move_blob(&self, blob: &Descriptor) -> Result<()> {
        let _permit = self.transfer.permit().await;
        let subject = Subject::of(&self.target, blob, Direction::Upload);
        let started = Arc::new(OnceLock::new());
        let body = streamed_body(
            self.transfer.client.clone(),
            self.source.clone(),
            blob.clone(),
            self.reporter.clone(),
            subject.clone(),
            started.clone(),
        );
        let outcome = self
            .transfer
            .client
            .push_blob(&self.target, blob, self.mount_from.as_deref(), &body)
            .await;
        if let Some(id) = started.get() {
            self.reporter.on_transfer_complete(*id);
        }
        let mut tally = self.tally();
        match outcome? {
            PushOutcome::Exists => {
                tally.existed += 1;
                self.reporter.on_transfer_skipped(&subject, &Skip::InRegistry);
            }
            PushOutcome::Mounted => {
                tally.mounted += 1;
                let from = self.mount_from.clone().unwrap_or_default();
                self.reporter
                    .on_transfer_skipped(&subject, &Skip::Mounted { from });
            }
            PushOutcome::Uploaded => {
                tally.copied += 1;
                tally.copied_bytes += blob.size;
            }
        }
        Ok(())
    }

    /// Copies the referrers of each subject, and theirs in turn, with the fallback tags.
    async fn copy_referrers(&self, subjects: Vec<Digest>) -> Result<()> {
        let client = &self.transfer.client;
        let mut queue = VecDeque::from(subjects);
        let mut seen = HashSet::new();
        while let Some(subject) = queue.pop_front() {
            if !seen.insert(subject) {
                continue;
            }
            let tag = referrers_tag(subject);
            let source_tag = self.source.with_tag(&tag)?;
            let mut referrers = client
                .list_referrers(&self.source, subject)
                .await?
                .unwrap_or_default();
            let tagged = match client.head_manifest(&source_tag).await? {
                Some(_) => {
                    let fetched = client.get_manifest(&source_tag).await?;
                    let index: Index = parse_remote(
                        &self.source,
                        &fetched.descriptor(),
                        &fetched.bytes,
                        "referrers index",
                    )?;
                    for entry in index.manifests {
                        if !referrers.iter().any(|r| r.digest == entry.digest) {
                            referrers.push(entry);
                        }
                    }
                    Some(fetched)
                }
                None => None,
            };
            if referrers.is_empty() {
                continue;
            }
            for referrer in &referrers {
                self.copy_document(referrer, None).await?;
                self.tally().referrers += 1;
                queue.push_back(referrer.digest);
            }
            let write_tag = tagged.is_some() || client.list_referrers(&self.target, subject).await?.is_none();
            if write_tag {
                self.write_fallback_tag(
                    &tag,
                    &referrers,
                    tagged.as_ref().map(|f| (&f.bytes, f.media_type.as_str())),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Writes the target's fallback tag: the source's exact bytes when the target has no such
    /// tag and they list every referrer, else the union of what the target's tag lists and
    /// `referrers` (a copy never drops a referrer someone else put there).
    async fn write_fallback_tag(
        &self,
        tag: &str,
        referrers: &[Descriptor],
        source: Option<(&Bytes, &str)>,
    ) -> Result<()> {
        let client = &self.transfer.client;
        let target_tag = self.target.with_tag(tag)?;
        let mut index = match client.head_manifest(&target_tag).await? {
            Some(_) => {
                let fetched = client.get_manifest(&target_tag).await?;
                let index: Index = parse_remote(
                    &self.target,
                    &fetched.descriptor(),
                    &fetched.bytes,
                    "referrers index",
                )?;
                if referrers
                    .iter()
                    .all(|r| index.manifests.iter().any(|m| m.digest == r.digest))
                {
                    return Ok(());
                }
                index
            }
            None => {
                if let Some((bytes, media_type)) = source {
                    let index: Index = serde_json::from_slice(bytes).unwrap_or_default();
                    if referrers
                        .iter()
                        .all(|r| index.manifests.iter().any(|m| m.digest == r.digest))
                    {
                        return self
                            .put_if_absent(&target_tag, media_type, bytes.clone(), Digest::of(bytes))
                            .await;
                    }
                }
                Index::new()
            }
        };
        for referrer in referrers {
            if !index.manifests.iter().any(|m| m.digest == referrer.digest) {
                index.manifests.push(referrer.clone());
            }
        }
        let bytes = Bytes::from(to_go_json(&index));
        let digest = Digest::of(&bytes);
        let media_type = if index.media_type.is_empty() {
            ukpm_types::media_type::IMAGE_INDEX
        } else {
            index.media_type.as_str()
        };
        self.put_if_absent(&target_tag, media_type, bytes, digest).await
    }
}

/// The body of one upload attempt: a GET on the source for exactly `offset..offset+len` of the
/// blob (the whole blob without a `Range` header when that is what is asked), streamed as it
/// arrives; a registry that ignores ranges sends the whole blob and the bytes before `offset`
/// are dropped. The first body built starts the transfer; its id lands in `started`.
fn streamed_body(
    client: Client,
    source: Reference,
    blob: Descriptor,
    reporter: Arc<dyn Reporter>,
    subject: Subject,
    started: Arc<OnceLock<TransferId>>,
) -> impl Fn(u64, u64) -> Body + Send + Sync + 'static {
    move |offset, len| {
        let id = *started.get_or_init(|| reporter.on_transfer_start(&subject));
        let piece = Piece {
            client: client.clone(),
            source: source.clone(),
            blob: blob.clone(),
            reporter: reporter.clone(),
            id,
            offset,
            len,
            sent: 0,
            skip: 0,
            reopened: 0,
            download: None,
        };
        // The stream runs on its own task, handing chunks over a small channel: memory is
        // bounded by the channel, and the body is `Sync` whatever the download is.
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        tokio::spawn(async move {
            let mut piece = piece;
            loop {
                match piece.next().await {
                    Ok(Some(chunk)) => {
                        if tx.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                }
            }
        });
        Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }))
    }
}

/// One range of a blob being read from the source.
struct Piece {
    client: Client,
    source: Reference,
    blob: Descriptor,
    reporter: Arc<dyn Reporter>,
    id: TransferId,
    offset: u64,
    len: u64,
    sent: u64,
    skip: u64,
    /// How often the source was opened again after breaking off.
    reopened: u32,
    download: Option<BlobDownload>,
}

impl Piece {
    /// Opens the source at the first byte of the range not yet sent.
    async fn open(&mut self) -> io::Result<()> {
        let from = self.offset + self.sent;
        let whole = from == 0 && self.len == self.blob.size;
        let download = if whole {
            self.client.get_blob(&self.source, &self.blob, 0).await
        } else {
            let end = self.offset + self.len - 1;
            self.client
                .get_blob_range(&self.source, &self.blob, from, Some(end))
                .await
        }
        .map_err(io::Error::other)?;
        self.skip = from - download.start();
        self.download = Some(download);
        Ok(())
    }

    /// The next chunk of the range, `None` once `len` bytes went out. A source connection
    /// that breaks is opened again where it stopped (a few times), so the destination's
    /// upload never sees a body cut short by the source.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if self.sent >= self.len {
                return Ok(None);
            }
            if self.download.is_none() {
                self.open().await?;
            }
            let Some(download) = self.download.as_mut() else {
                return Ok(None);
            };
            let chunk = match download.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "blob {} ended before byte {}",
                            self.blob.digest,
                            self.offset + self.len
                        ),
                    ));
                }
                Err(err)
                    if (err.is_network() || matches!(err, RegistryError::Truncated { .. }))
                        && self.reopened < REOPEN_LIMIT =>
                {
                    tracing::debug!(digest = %self.blob.digest, at = self.offset + self.sent, %err, "the source broke off; reading on from there");
                    self.reopened += 1;
                    self.download = None;
                    continue;
                }
                Err(err) => return Err(io::Error::other(err)),
            };
            let mut chunk = chunk;
            if self.skip > 0 {
                let n = self.skip.min(chunk.len() as u64);
                chunk = chunk.slice(n as usize..);
                self.skip -= n;
                if chunk.is_empty() {
                    continue;
                }
            }
            let room = self.len - self.sent;
            if chunk.len() as u64 > room {
                chunk.truncate(room as usize);
            }
            self.sent += chunk.len() as u64;
            self.reporter
                .on_transfer_progress(self.id, self.offset + self.sent);
            return Ok(Some(chunk));
        }
    }
}
