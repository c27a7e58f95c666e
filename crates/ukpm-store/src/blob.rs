//! Blobs in and out: ingest through a temp file with a digest check, reads that verify as they go.

use std::io::{self, Read, Write};

use tempfile::NamedTempFile;
use ukpm_types::{Digest, Hasher};

use crate::LocalStore;
use crate::error::{Result, StoreError};

/// A blob being written: bytes go to a temp file under `ingest/` and through a hasher, and
/// become visible only when [`Ingest::commit`] has checked them.
///
/// Dropping an `Ingest` without committing deletes the temp file, so an interrupted write
/// leaves nothing behind but, at worst (a crash), a temp file that `gc` removes.
pub struct Ingest<'s> {
    store: &'s LocalStore,
    file: NamedTempFile,
    hasher: Hasher,
    /// Bytes already handed to the kernel's writeback ([`crate::writeback_past`]).
    kicked: u64,
}

impl<'s> Ingest<'s> {
    pub(crate) fn new(store: &'s LocalStore) -> Result<Ingest<'s>> {
        let dir = store.ingest_dir();
        fs_err::create_dir_all(&dir)?;
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .permissions(crate::shared_mode())
            .tempfile_in(&dir)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("failed to create a temp file in {}: {e}", dir.display()),
                )
            })?;
        Ok(Ingest {
            store,
            file,
            hasher: Hasher::new(),
            kicked: 0,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Checks the bytes against `expected` (digest and size) when given, then syncs the temp file
    /// and renames it to `blobs/sha256/<hex>`. Returns the digest and size.
    ///
    /// If the blob is already present with the right size the temp file is dropped instead; a
    /// present blob of the wrong size (a damaged store) is replaced.
    pub fn commit(mut self, expected: Option<(Digest, u64)>) -> Result<(Digest, u64)> {
        self.file.flush()?;
        let size = self.hasher.len();
        let digest = self.hasher.clone().finish();
        if let Some((want, want_size)) = expected {
            if digest != want {
                return Err(StoreError::DigestMismatch {
                    expected: want,
                    actual: digest,
                });
            }
            if size != want_size {
                return Err(StoreError::SizeMismatch {
                    digest,
                    expected: want_size,
                    actual: size,
                });
            }
        }
        let target = self.store.blob_path(&digest);
        if self.store.blob_size(&digest) == Some(size) {
            return Ok((digest, size));
        }
        self.file.as_file().sync_all()?;
        let parent = self.store.blobs_dir();
        fs_err::create_dir_all(&parent)?;
        self.file.persist(&target).map_err(|e| {
            io::Error::new(
                e.error.kind(),
                format!("failed to rename a blob into {}: {}", target.display(), e.error),
            )
        })?;
        crate::sync_dir(&parent)?;
        tracing::debug!(%digest, size, "blob committed");
        Ok((digest, size))
    }
}

impl Write for Ingest<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.kicked = crate::writeback_past(self.file.as_file(), self.kicked, self.hasher.len());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A reader that hashes what it yields and fails the read that reaches the end if the bytes do
/// not match the expected digest, so damaged content is never trusted, whichever store it
/// comes from.
pub struct VerifyingReader<R> {
    inner: R,
    digest: Digest,
    hasher: Hasher,
    done: bool,
}

/// A stored blob opened for a verifying read.
pub type BlobReader = VerifyingReader<fs_err::File>;

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, whose bytes must hash to `digest`.
    pub fn new(inner: R, digest: Digest) -> VerifyingReader<R> {
        VerifyingReader {
            inner,
            digest,
            hasher: Hasher::new(),
            done: false,
        }
    }

    /// The expected digest.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Reads whatever the consumer left unread and checks the digest; call it after a parser
    /// that may stop before the end (a tar reader stops at its end-of-archive blocks).
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).map_err(unwrap_store_error)?;
        Ok(())
    }

    fn verify(&mut self) -> io::Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let actual = std::mem::take(&mut self.hasher).finish();
        if actual != self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                StoreError::Corrupt {
                    digest: self.digest,
                    actual,
                },
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.verify()?;
        } else {
            self.hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Recovers a [`StoreError`] that travelled inside an `io::Error` through a `Read` chain, so a
/// corrupt blob is reported as corrupt and not as a generic read failure.
pub fn unwrap_store_error(err: io::Error) -> StoreError {
    if err.get_ref().is_some_and(|inner| inner.is::<StoreError>()) {
        match err.into_inner().map(|inner| inner.downcast::<StoreError>()) {
            Some(Ok(store)) => *store,
            Some(Err(other)) => StoreError::Io(io::Error::other(other)),
            None => StoreError::Io(io::Error::other("unknown error")),
        }
    } else {
        StoreError::Io(err)
    }
}
