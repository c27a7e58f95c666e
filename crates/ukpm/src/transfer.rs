//! The transfer engine: blobs between a registry and the store, for pull, push and repair.
//!
//! Downloads are verified as they are written (size enforced as bytes arrive, digest checked
//! before the blob becomes visible). Large blobs go as parallel `Range` requests written in
//! place and hashed in order as the written prefix grows (the store carries the hash state);
//! when the store keeps partial downloads ([`ResumableWrites`]), an interrupted download
//! continues where it stopped. A connection lost mid-body is resumed in the same process by
//! the registry client ([`BlobDownload`] asks again from the byte reached). Every write to the store happens on a blocking thread that reads
//! the network stream through tokio-util's [`StreamReader`] and [`SyncIoBridge`], so no
//! runtime worker ever waits on the disk.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio_util::io::{StreamReader, SyncIoBridge};
use ukpm_registry::{BlobDownload, Body, Client, RegistryError};
use ukpm_store::StoreError;
use ukpm_types::{Descriptor, Reference};

use crate::error::{Error, Result};
use crate::reporter::{Direction, Reporter, Skip, Subject, TransferId};
use crate::store::{BlobRead, ImageStore, RangedWrite, ResumableWrites};

/// Blobs at least this big are fetched as parallel ranges.
const RANGED_MIN: u64 = 16 << 20;
/// How many ranges of a blob are in flight at once.
const RANGED_PARTS: u64 = 8;
/// The largest range asked for: ranges are handed out in order to the downloads in flight, so
/// the written prefix, and with it the in-order hash, advances steadily behind them instead of
/// waiting for the first of eight eighths.
const RANGED_PIECE_MAX: u64 = 8 << 20;

/// What moving blobs needs: a registry client, the store, the reporter and the limit on how
/// many blobs move at once (shared by every operation of one manager).
#[derive(Clone)]
pub(crate) struct Transfer {
    pub(crate) client: Client,
    pub(crate) store: Arc<dyn ImageStore>,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
    pub(crate) in_flight: Arc<crate::inflight::InFlight>,
}

impl Transfer {
    /// Waits for a transfer slot; the permit frees it when dropped.
    pub(crate) async fn permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.permits.acquire().await.ok()
    }

    /// Streams one blob of `reference` into the store, unless it is there already.
    pub(crate) async fn download(&self, reference: &Reference, blob: &Descriptor) -> Result<()> {
        let subject = Subject::of(reference, blob, Direction::Download);
        // One download per blob: after another operation of this process, or another process
        // on this store, that is fetching it now (then it is usually stored when our turn comes).
        let _turn = self.in_flight.turn(blob.digest).await;
        if let Some(resumable) = self.store.resumable_writes()
            && resumable.wait_turn(blob.digest).await?
        {
            tracing::debug!(digest = %blob.digest, "waited for another process downloading this blob");
        }
        if self.store.has_blob(blob.digest, Some(blob.size)).await? {
            self.reporter.on_transfer_skipped(&subject, &Skip::InStore);
            return Ok(());
        }
        let id = self.reporter.on_transfer_start(&subject);
        let result = match self.store.resumable_writes() {
            Some(resumable) => self.download_resumably(resumable, reference, blob, id).await,
            None => {
                let download = self.client.get_blob(reference, blob, 0).await?;
                let (reader, _stop) = blocking_reader(download, Some((self.reporter.clone(), id, 0)));
                self.store
                    .write_blob(Box::new(reader), Some((blob.digest, blob.size)))
                    .await
                    .map(drop)
            }
        };
        self.reporter.on_transfer_complete(id);
        result
    }

    /// A download into a store that keeps partial content: ranged for large blobs, else one
    /// stream from where an earlier attempt stopped.
    async fn download_resumably(
        &self,
        resumable: &dyn ResumableWrites,
        reference: &Reference,
        blob: &Descriptor,
        id: TransferId,
    ) -> Result<()> {
        let mut resume = if blob.size >= RANGED_MIN {
            match self.download_ranged(resumable, reference, blob, id).await {
                Ok(None) => return Ok(()),
                Ok(Some(prefix)) => prefix,
                // The ranges did not add up to the blob: fetch it whole once more.
                Err(Error::Store(StoreError::DigestMismatch { .. })) => {
                    self.reporter.on_transfer_resumed(id, 0);
                    0
                }
                Err(err) => return Err(err),
            }
        } else {
            resumable.resumable(blob.digest).await?.min(blob.size)
        };
        loop {
            match self.download_from(resumable, reference, blob, resume, id).await {
                // The bytes an earlier attempt left did not verify, another process holds
                // them, or the registry refused the range (416): start over, once.
                Err(
                    Error::Store(StoreError::DigestMismatch { .. } | StoreError::Busy { .. })
                    | Error::Registry(RegistryError::Status { status: 416, .. }),
                ) if resume > 0 => {
                    tracing::debug!(digest = %blob.digest, "resuming failed; downloading from the start");
                    self.reporter.on_transfer_resumed(id, 0);
                    resume = 0;
                }
                other => return other,
            }
        }
    }

    /// One download attempt of `blob` from byte `offset`, written on a blocking thread.
    async fn download_from(
        &self,
        resumable: &dyn ResumableWrites,
        reference: &Reference,
        blob: &Descriptor,
        offset: u64,
        id: TransferId,
    ) -> Result<()> {
        let expected = (blob.digest, blob.size);
        if offset >= blob.size {
            // An earlier attempt already has every byte (it died just before the rename, or
            // another process is finishing it): verify and commit, no request needed.
            let empty: BlobRead = Box::new(io::empty());
            resumable.write_blob_from(empty, expected, blob.size).await?;
            return Ok(());
        }
        let download = self.client.get_blob(reference, blob, offset).await?;
        let start = download.start();
        if start > 0 {
            tracing::debug!(digest = %blob.digest, start, "resuming a download");
            self.reporter.on_transfer_resumed(id, start);
        }
        let (reader, _stop) = blocking_reader(download, Some((self.reporter.clone(), id, start)));
        resumable
            .write_blob_from(Box::new(reader), expected, start)
            .await?;
        Ok(())
    }

    /// Downloads a large blob as parallel `Range` requests written in place into one file,
    /// hashed in order as its prefix completes and verified at the end; what an interrupted
    /// attempt landed is not fetched again.
    /// `Ok(Some(prefix))` when it cannot (another process holds the blob, or the registry does
    /// not serve ranges): the caller then downloads in one stream from `prefix`.
    async fn download_ranged(
        &self,
        resumable: &dyn ResumableWrites,
        reference: &Reference,
        blob: &Descriptor,
        id: TransferId,
    ) -> Result<Option<u64>> {
        let Some(writer) = resumable.ranged(blob.digest, blob.size).await? else {
            return Ok(Some(0));
        };
        let missing = writer.missing();
        let already = blob.size - missing.iter().map(|(a, b)| b + 1 - a).sum::<u64>();
        let done = Arc::new(AtomicU64::new(already));
        if already > 0 {
            tracing::debug!(digest = %blob.digest, already, "resuming a ranged download");
            self.reporter.on_transfer_resumed(id, already);
            self.reporter.on_transfer_progress(id, already);
        }
        let piece = blob.size.div_ceil(RANGED_PARTS).clamp(1 << 20, RANGED_PIECE_MAX);
        let jobs = split_ranges(&missing, piece);
        let Some(&(first_start, first_end)) = jobs.first() else {
            tokio::task::spawn_blocking(move || writer.commit()).await??;
            return Ok(None);
        };
        let first = self
            .client
            .get_blob_range(reference, blob, first_start, Some(first_end))
            .await?;
        if !first.ranged() {
            tracing::debug!(digest = %blob.digest, "the registry does not serve ranges");
            let prefix = tokio::task::spawn_blocking(move || writer.give_up_ranges()).await??;
            return Ok(Some(prefix));
        }
        let range = |download: BlobDownload, start: u64| {
            write_range(
                download,
                start,
                writer.clone(),
                self.reporter.clone(),
                id,
                done.clone(),
            )
        };
        let rest = futures_util::stream::iter(jobs[1..].iter().copied())
            .map(|(start, end)| async move {
                let download = self
                    .client
                    .get_blob_range(reference, blob, start, Some(end))
                    .await?;
                if !download.ranged() {
                    return Err(Error::RegistryProtocol {
                        reference: reference.clone(),
                        message: format!("served blob {} whole after serving a range of it", blob.digest),
                    });
                }
                range(download, start).await
            })
            .buffer_unordered(RANGED_PARTS as usize - 1)
            .try_collect::<Vec<()>>();
        let (first_result, rest) = tokio::join!(range(first, first_start), rest);
        first_result?;
        rest?;
        tokio::task::spawn_blocking(move || writer.commit()).await??;
        Ok(None)
    }

    /// A body that streams `len` bytes of a stored blob from `offset`, opened anew for each
    /// attempt (so a retried or resumed upload sends the right bytes), reporting the bytes as
    /// they go out. The first body built starts the transfer; its id lands in `started`.
    pub(crate) fn upload_body(
        &self,
        blob: &Descriptor,
        subject: &Subject,
        started: Arc<std::sync::OnceLock<TransferId>>,
    ) -> impl Fn(u64, u64) -> Body + Send + Sync + 'static {
        let store = self.store.clone();
        let reporter = self.reporter.clone();
        let subject = subject.clone();
        let digest = blob.digest;
        move |offset, len| {
            let id = *started.get_or_init(|| reporter.on_transfer_start(&subject));
            let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(8);
            let store = store.clone();
            let reporter = reporter.clone();
            tokio::spawn(async move {
                match store.open_blob_range(digest, offset, len).await {
                    Ok(reader) => {
                        let _ = tokio::task::spawn_blocking(move || {
                            send_blocking(reader, tx, reporter.as_ref(), id, offset)
                        })
                        .await;
                    }
                    Err(err) => {
                        let _ = tx.send(Err(io::Error::other(err))).await;
                    }
                }
            });
            Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }))
        }
    }
}

/// Cuts the missing ranges into pieces of at most `piece` bytes.
fn split_ranges(missing: &[(u64, u64)], piece: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(a, b) in missing {
        let mut start = a;
        while start <= b {
            let end = (start + piece - 1).min(b);
            out.push((start, end));
            start = end + 1;
        }
    }
    out
}

/// A download's chunks as a stream of `io::Result<Bytes>`, the registry's error carried inside
/// the `io::Error` (so [`Error::from_io`] gets it back), reporting progress when asked.
fn chunks(
    download: BlobDownload,
    progress: Option<(Arc<dyn Reporter>, TransferId, u64)>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(Some(download), move |download| {
        let progress = progress.clone();
        async move {
            let mut download = download?;
            match download.chunk().await {
                Ok(Some(chunk)) => {
                    if let Some((reporter, id, start)) = &progress {
                        reporter.on_transfer_progress(*id, start + download.received());
                    }
                    Some((Ok(chunk), Some(download)))
                }
                Ok(None) => None,
                // The error ends the stream.
                Err(err) => Some((Err(io::Error::other(err)), None)),
            }
        }
    })
}

/// A blocking `Read` over a download, for the store's writers on blocking threads, and the
/// guard to hold while waiting for that thread: when the wait is dropped (the operation
/// interrupted), the download stops resuming, so a reader left running while the runtime shuts
/// down ends with its break instead of retrying.
fn blocking_reader(
    mut download: BlobDownload,
    progress: Option<(Arc<dyn Reporter>, TransferId, u64)>,
) -> (impl Read + Send + 'static, tokio::sync::watch::Sender<()>) {
    let (guard, stop) = tokio::sync::watch::channel(());
    download.stop_when_dropped(stop);
    let reader = SyncIoBridge::new(StreamReader::new(Box::pin(chunks(download, progress))));
    (reader, guard)
}

/// Writes one range's bytes in place as they arrive, on a blocking thread, recording each
/// stretch that landed so a kill loses at most the chunks in flight.
async fn write_range(
    download: BlobDownload,
    start: u64,
    writer: Arc<dyn RangedWrite>,
    reporter: Arc<dyn Reporter>,
    id: TransferId,
    done: Arc<AtomicU64>,
) -> Result<()> {
    let (mut reader, _stop) = blocking_reader(download, None);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 256 << 10];
        let mut at = start;
        loop {
            let n = reader.read(&mut buf).map_err(Error::from_io)?;
            if n == 0 {
                return Ok(());
            }
            writer.write_at(at, &buf[..n]).map_err(Error::from_io)?;
            writer.landed(at, at + n as u64 - 1).map_err(Error::from_io)?;
            at += n as u64;
            let total = done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            reporter.on_transfer_progress(id, total);
        }
    })
    .await?
}

/// Reads a stored blob on a blocking thread into an upload's channel.
fn send_blocking(
    mut reader: BlobRead,
    tx: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    reporter: &dyn Reporter,
    id: TransferId,
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
                reporter.on_transfer_progress(id, sent);
            }
            Err(err) => {
                let _ = tx.blocking_send(Err(err));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_cut_into_pieces() {
        assert_eq!(split_ranges(&[(0, 9)], 4), vec![(0, 3), (4, 7), (8, 9)]);
        assert_eq!(split_ranges(&[(0, 1), (5, 5)], 4), vec![(0, 1), (5, 5)]);
        assert!(split_ranges(&[], 4).is_empty());
    }
}
