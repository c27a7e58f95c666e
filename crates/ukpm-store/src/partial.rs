//! Resumable downloads: a blob being fetched lives in `ingest/partial-<hex>` until it verifies,
//! so a pull killed at any moment continues from what it already has.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use ukpm_types::{Digest, Hasher};

use crate::error::{Result, StoreError};
use crate::{LocalStore, sync_dir};

/// A download in progress, resumable across processes. Bytes are appended at [`Partial::offset`];
/// [`Partial::commit`] checks the whole blob and renames it into `blobs/`. Unlike an
/// [`crate::Ingest`], dropping it keeps the file, so the next attempt continues.
pub struct Partial {
    store: LocalStore,
    path: PathBuf,
    file: fs_err::File,
    hasher: Hasher,
    digest: Digest,
    size: u64,
    /// Bytes already handed to the kernel's writeback ([`crate::writeback_past`]).
    kicked: u64,
}

impl LocalStore {
    fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.ingest_dir().join(format!("partial-{}", digest.hex()))
    }

    /// How many bytes of `digest` an earlier, interrupted sequential download left (0 when
    /// none, or when a ranged download left it: that one resumes through [`LocalStore::ranged`]).
    pub fn partial_len(&self, digest: &Digest) -> u64 {
        if self.ranges_path(digest).exists() {
            return 0;
        }
        fs_err::metadata(self.partial_path(digest))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Opens and locks `ingest/partial-<hex>`, whichever kind of download uses it; `None` when
    /// another process holds it.
    fn open_partial(&self, digest: &Digest) -> Result<Option<(fs_err::File, PathBuf)>> {
        fs_err::create_dir_all(self.ingest_dir())?;
        let path = self.partial_path(digest);
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        Ok(locked_and_current(&file, &path)?.then_some((file, path)))
    }

    /// Opens the download of `digest` (`size` bytes), keeping the first `keep` bytes an earlier
    /// attempt wrote (hashed again, since they were never verified) and dropping the rest.
    ///
    /// `Ok(None)` when another process is downloading the same blob right now.
    pub fn partial(&self, digest: Digest, size: u64, keep: u64) -> Result<Option<Partial>> {
        let Some((mut file, path)) = self.open_partial(&digest)? else {
            return Ok(None);
        };
        // A ranged download left this file: it is not a prefix. Start the sequential one over.
        let ranges = self.ranges_path(&digest);
        let have = if ranges.exists() {
            fs_err::remove_file(&ranges)?;
            0
        } else {
            file.metadata()?.len()
        };
        let keep = keep.min(have).min(size);
        file.set_len(keep)?;
        let mut hasher = Hasher::new();
        file.seek(SeekFrom::Start(0))?;
        io::copy(&mut (&mut file).take(keep), &mut hasher)?;
        if hasher.len() != keep {
            return Err(
                io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} shrank", path.display())).into(),
            );
        }
        file.seek(SeekFrom::End(0))?;
        Ok(Some(Partial {
            store: self.clone(),
            path,
            file,
            kicked: keep,
            hasher,
            digest,
            size,
        }))
    }
}

/// Takes the lock on a partial download, and checks that the file is still the one at its path:
/// a process that opened it just before another committed (renamed) it must not touch the now
/// visible blob.
fn locked_and_current(file: &fs_err::File, path: &std::path::Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    match file.file().try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
        Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    let opened = file.metadata()?.ino();
    Ok(fs_err::metadata(path).is_ok_and(|m| m.ino() == opened))
}

impl Partial {
    /// Where the next byte goes: what is already here.
    pub fn offset(&self) -> u64 {
        self.hasher.len()
    }

    /// Checks the whole blob against its digest and size, syncs it and renames it into the
    /// store. A blob that does not verify is deleted, so the next attempt starts afresh.
    pub fn commit(mut self) -> Result<(Digest, u64)> {
        self.file.flush()?;
        let size = self.hasher.len();
        let actual = self.hasher.clone().finish();
        let refused = if actual != self.digest {
            Some(StoreError::DigestMismatch {
                expected: self.digest,
                actual,
            })
        } else if size != self.size {
            Some(StoreError::SizeMismatch {
                digest: self.digest,
                expected: self.size,
                actual: size,
            })
        } else {
            None
        };
        if let Some(err) = refused {
            let _ = fs_err::remove_file(&self.path);
            return Err(err);
        }
        self.file.file().sync_all()?;
        let blobs = self.store.blobs_dir();
        fs_err::create_dir_all(&blobs)?;
        fs_err::rename(&self.path, self.store.blob_path(&self.digest))?;
        sync_dir(&blobs)?;
        Ok((self.digest, size))
    }
}

impl Write for Partial {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.hasher.len() + buf.len() as u64 > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                StoreError::SizeMismatch {
                    digest: self.digest,
                    expected: self.size,
                    actual: self.hasher.len() + buf.len() as u64,
                },
            ));
        }
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.kicked = crate::writeback_past(self.file.file(), self.kicked, self.hasher.len());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The ranges record of a download, buffered: a line per landed stretch goes to the file in one
/// write once the stretches it holds cover [`RECORD_EVERY`] bytes, and when the record is
/// dropped. A kill loses at most that many bytes' worth of records (they are fetched again);
/// every line on disk describes bytes already written, so a record never claims too much.
struct Record {
    file: fs_err::File,
    pending: String,
    covered: u64,
}

/// How many landed bytes the records held in memory may describe before they are written.
const RECORD_EVERY: u64 = 256 << 10;

impl Record {
    fn add(&mut self, start: u64, end: u64) -> io::Result<()> {
        use std::fmt::Write as _;
        let _ = writeln!(self.pending, "{start} {end}");
        self.covered += end + 1 - start;
        if self.covered >= RECORD_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            // One write of whole lines: a torn write can only shorten the last line's end,
            // which under-claims.
            self.file.write_all(self.pending.as_bytes())?;
            self.pending.clear();
        }
        self.covered = 0;
        Ok(())
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if let Err(err) = self.flush() {
            tracing::debug!("cannot record landed ranges (they will be fetched again): {err}");
        }
    }
}

/// A blob downloaded in parallel ranges, resumably: ranges are written in place into
/// `ingest/partial-<hex>` and each stretch that landed is recorded in
/// `ingest/partial-<hex>.ranges`, so a download killed at any moment fetches only what is
/// missing next time.
///
/// The blob is hashed in order while it arrives, not read back whole at the end: the hash
/// state is carried forward from a "hashed up to" offset, and whenever the stretch starting
/// there has been written, it is hashed (from the caller's bytes when they are that stretch,
/// else read back from the page cache, that stretch only). [`Ranged::commit`] hashes what is
/// left and checks the digest before the rename. A download resumed from an earlier process
/// hashes the stretches that process left once, as the prefix reaches them.
///
/// A partial file without a ranges record (left by a sequential download) counts as a prefix.
pub struct Ranged {
    store: LocalStore,
    path: PathBuf,
    record: std::sync::Mutex<Option<Record>>,
    file: fs_err::File,
    done: Vec<(u64, u64)>,
    digest: Digest,
    size: u64,
    /// The stretches claimed by writers and not yet hashed, and the hashed prefix.
    stretches: std::sync::Mutex<Stretches>,
    /// The hash of the prefix `[0, Stretches::hashed)`, held by whichever writer is hashing.
    hasher: std::sync::Mutex<Hasher>,
    /// How much of the hashed prefix was handed to the kernel's writeback
    /// ([`crate::writeback_past`]); changed only by the writer holding `hasher`.
    kicked: std::sync::atomic::AtomicU64,
}

/// What of a ranged download is written, being written, and hashed.
#[derive(Default)]
struct Stretches {
    /// Everything below this offset is hashed, or taken by the writer hashing it; no write may
    /// land there any more.
    hashed: u64,
    /// Stretches above `hashed`, by start: `(end, written)`, end exclusive; `written` is false
    /// while the bytes are on their way to the file.
    pending: std::collections::BTreeMap<u64, (u64, bool)>,
    /// A stretch was taken for hashing but could not be read: [`Ranged::commit`] hashes the
    /// whole file instead of trusting the carried state.
    broken: bool,
}

impl Stretches {
    /// Claims `[start, end)` for a write; false when it overlaps the hashed prefix or another
    /// claim (the same bytes written twice could differ from what was hashed).
    fn claim(&mut self, start: u64, end: u64) -> bool {
        if start < self.hashed {
            return false;
        }
        if let Some((_, &(prev_end, _))) = self.pending.range(..end).next_back()
            && prev_end > start
        {
            return false;
        }
        self.pending.insert(start, (end, false));
        true
    }

    /// Takes the written stretch that starts where the hash stands, advancing `hashed` past it.
    fn take_next(&mut self) -> Option<(u64, u64)> {
        if self.broken {
            return None;
        }
        let (&start, &(end, written)) = self.pending.first_key_value()?;
        if start != self.hashed || !written {
            return None;
        }
        self.pending.remove(&start);
        self.hashed = end;
        Some((start, end))
    }
}

impl LocalStore {
    fn ranges_path(&self, digest: &Digest) -> PathBuf {
        self.ingest_dir().join(format!("partial-{}.ranges", digest.hex()))
    }

    /// Opens (or continues) a ranged download of `digest` (`size` bytes); `Ok(None)` when
    /// another process is downloading it right now.
    pub fn ranged(&self, digest: Digest, size: u64) -> Result<Option<Ranged>> {
        let Some((file, path)) = self.open_partial(&digest)? else {
            return Ok(None);
        };
        let have = file.metadata()?.len();
        let ranges = self.ranges_path(&digest);
        let mut done = match fs_err::read_to_string(&ranges) {
            Ok(text) => text
                .lines()
                .filter_map(|l| {
                    let (a, b) = l.split_once(' ')?;
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .filter(|&(a, b): &(u64, u64)| a <= b && b < size)
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if have > 0 && have <= size {
                    vec![(0, have - 1)]
                } else {
                    Vec::new()
                }
            }
            Err(e) => return Err(e.into()),
        };
        if have > size {
            done.clear();
            file.set_len(0)?;
        }
        file.set_len(size)?;
        done.sort_unstable();
        let done = merge(done);
        let mut record = fs_err::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&ranges)?;
        for (a, b) in &done {
            writeln!(record, "{a} {b}")?;
        }
        Ok(Some(Ranged {
            store: self.clone(),
            path,
            record: std::sync::Mutex::new(Some(Record {
                file: record,
                pending: String::new(),
                covered: 0,
            })),
            file,
            stretches: std::sync::Mutex::new(Stretches {
                hashed: 0,
                pending: done.iter().map(|&(a, b)| (a, (b + 1, true))).collect(),
                broken: false,
            }),
            hasher: std::sync::Mutex::new(Hasher::new()),
            kicked: std::sync::atomic::AtomicU64::new(0),
            done,
            digest,
            size,
        }))
    }
}

/// Sorted inclusive ranges with overlapping and adjacent ones joined.
fn merge(sorted: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(sorted.len());
    for (a, b) in sorted {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

impl Ranged {
    /// The byte ranges (inclusive) still to fetch, in order.
    pub fn missing(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut next = 0u64;
        for &(a, b) in &self.done {
            if a > next {
                out.push((next, a - 1));
            }
            next = next.max(b + 1);
        }
        if next < self.size {
            out.push((next, self.size - 1));
        }
        out
    }

    /// Writes `bytes` at `offset` and hashes whatever prefix that completes; refuses bytes past
    /// the blob's size and bytes over a stretch already written or being written (writers
    /// write disjoint stretches).
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let end = offset + bytes.len() as u64;
        if end > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                StoreError::SizeMismatch {
                    digest: self.digest,
                    expected: self.size,
                    actual: end,
                },
            ));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.stretches().claim(offset, end) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bytes {offset}-{} of {} were written twice", end - 1, self.digest),
            ));
        }
        if let Err(err) = self.file.file().write_all_at(bytes, offset) {
            self.stretches().pending.remove(&offset);
            return Err(err);
        }
        if let Some(entry) = self.stretches().pending.get_mut(&offset) {
            entry.1 = true;
        }
        self.advance(Some((offset, bytes)));
        Ok(())
    }

    /// How far the in-order hash has got: [`Ranged::commit`] reads back only the bytes past
    /// this offset.
    pub fn hashed(&self) -> u64 {
        self.stretches().hashed
    }

    fn stretches(&self) -> std::sync::MutexGuard<'_, Stretches> {
        self.stretches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hashes written stretches in order for as long as the next one is there, unless another
    /// writer is doing it (it picks these up too). `own` is the caller's stretch, hashed from
    /// memory when it is next; others are read back from the file.
    fn advance(&self, mut own: Option<(u64, &[u8])>) {
        loop {
            let Ok(mut hasher) = self.hasher.try_lock() else {
                return;
            };
            while let Some((start, end)) = self.stretches().take_next() {
                match own {
                    Some((at, bytes)) if at == start && end == at + bytes.len() as u64 => {
                        hasher.update(bytes);
                        own = None;
                    }
                    _ => {
                        if let Err(err) = self.hash_back(&mut hasher, start, end) {
                            tracing::debug!("cannot read back bytes {start}-{end} to hash them: {err}");
                            self.stretches().broken = true;
                            return;
                        }
                    }
                }
                // The hashed prefix is complete on disk's way: start writing it out.
                let kicked = self.kicked.load(std::sync::atomic::Ordering::Relaxed);
                let kicked = crate::writeback_past(self.file.file(), kicked, end);
                self.kicked.store(kicked, std::sync::atomic::Ordering::Relaxed);
            }
            drop(hasher);
            // A stretch written while the hasher was busy may be next now: hash it here, since
            // its writer found the hasher taken and left.
            let stretches = self.stretches();
            let ready = stretches
                .pending
                .first_key_value()
                .is_some_and(|(&start, &(_, written))| start == stretches.hashed && written);
            if !ready {
                return;
            }
        }
    }

    /// Reads `[start, end)` back from the file into the hash.
    fn hash_back(&self, hasher: &mut Hasher, start: u64, end: u64) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; (end - start).min(1 << 20) as usize];
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            self.file.file().read_exact_at(&mut buf[..n], at)?;
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        Ok(())
    }

    /// Records that bytes `start..=end` are written, so a later attempt skips them.
    pub fn landed(&self, start: u64, end: u64) -> io::Result<()> {
        let mut record = self.record.lock().unwrap_or_else(|p| p.into_inner());
        match record.as_mut() {
            Some(record) => record.add(start, end),
            None => Ok(()),
        }
    }

    /// Gives up ranges (the registry does not serve them): keeps the longest prefix already
    /// written as a sequential partial download, and returns its length.
    pub fn into_sequential(self) -> Result<u64> {
        let prefix = match self.done.first() {
            Some(&(0, b)) => {
                let mut end = b;
                for &(a, b) in &self.done[1..] {
                    if a <= end + 1 {
                        end = end.max(b);
                    }
                }
                end + 1
            }
            _ => 0,
        };
        self.file.set_len(prefix)?;
        drop(self.record.lock().unwrap_or_else(|p| p.into_inner()).take());
        let _ = fs_err::remove_file(self.store.ranges_path(&self.digest));
        Ok(prefix)
    }

    /// Hashes what the in-order hash has not reached yet (only that, read back from the page
    /// cache), checks the digest, syncs the file and renames it into the store. A blob that
    /// does not verify is deleted with its record, so the next attempt starts afresh.
    pub fn commit(self) -> Result<(Digest, u64)> {
        drop(self.record.lock().unwrap_or_else(|p| p.into_inner()).take());
        let ranges = self.store.ranges_path(&self.digest);
        let mut hasher = std::mem::take(&mut *self.hasher.lock().unwrap_or_else(|p| p.into_inner()));
        let from = {
            let mut stretches = self.stretches();
            let from = if stretches.broken { 0 } else { stretches.hashed };
            stretches.hashed = self.size;
            stretches.pending.clear();
            from
        };
        if from == 0 {
            hasher = Hasher::new();
        }
        tracing::debug!(digest = %self.digest, hashed = from, size = self.size, "hashing the rest of a ranged download");
        self.hash_back(&mut hasher, from, self.size)?;
        let actual = hasher.finish();
        if actual != self.digest {
            let _ = fs_err::remove_file(&self.path);
            let _ = fs_err::remove_file(&ranges);
            return Err(StoreError::DigestMismatch {
                expected: self.digest,
                actual,
            });
        }
        self.file.file().sync_all()?;
        let blobs = self.store.blobs_dir();
        fs_err::create_dir_all(&blobs)?;
        fs_err::rename(&self.path, self.store.blob_path(&self.digest))?;
        let _ = fs_err::remove_file(&ranges);
        sync_dir(&blobs)?;
        Ok((self.digest, self.size))
    }
}

impl LocalStore {
    /// Waits while another process downloads `digest` (holds the lock on its partial file),
    /// so that two pulls of one blob on one store fetch it once: the waiter then finds the
    /// blob stored, or, if the other process died, takes over what it left. Returns whether it
    /// waited. Creates nothing: no partial file means nobody is downloading it.
    ///
    /// A holder that writes nothing for `patience` (its file's length and modification time
    /// stand still) is not waited for any longer: it may be hung, and the caller then
    /// downloads on its own, as it did before anyone waited.
    pub fn wait_for_download(&self, digest: &Digest, patience: std::time::Duration) -> Result<bool> {
        // Neither a symlink nor a fifo planted at the name may redirect or hang the wait.
        let file = match crate::open_regular(&self.partial_path(digest)) {
            Ok(file) if file.metadata()?.is_file() => file,
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let progress = || -> Result<(u64, Option<std::time::SystemTime>)> {
            let meta = file.metadata()?;
            Ok((meta.len(), meta.modified().ok()))
        };
        let mut seen = progress()?;
        let mut since = std::time::Instant::now();
        let mut waited = false;
        loop {
            match file.file().try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
            }
            waited = true;
            // Renamed into place: the blob is there (the lock goes with the holder's exit).
            if self.blob_path(digest).exists() {
                return Ok(true);
            }
            let now = progress()?;
            if now != seen {
                (seen, since) = (now, std::time::Instant::now());
            } else if since.elapsed() >= patience {
                tracing::debug!(%digest, "the process downloading this blob wrote nothing for a while; not waiting longer");
                return Ok(true);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Only asked, never kept: the download itself takes the lock again.
        file.file().unlock()?;
        Ok(waited)
    }
}
