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
}

impl LocalStore {
    fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.ingest_dir().join(format!("partial-{}", digest.hex()))
    }

    /// How many bytes of `digest` an earlier, interrupted download left (0 when none).
    pub fn partial_len(&self, digest: &Digest) -> u64 {
        fs_err::metadata(self.partial_path(digest))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Opens the download of `digest` (`size` bytes), keeping the first `keep` bytes an earlier
    /// attempt wrote (hashed again, since they were never verified) and dropping the rest.
    ///
    /// `Ok(None)` when another process is downloading the same blob right now.
    pub fn partial(&self, digest: Digest, size: u64, keep: u64) -> Result<Option<Partial>> {
        fs_err::create_dir_all(self.ingest_dir())?;
        let path = self.partial_path(&digest);
        let mut file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.file().try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        let have = file.metadata()?.len();
        let keep = keep.min(have).min(size);
        file.set_len(keep)?;
        let mut hasher = Hasher::new();
        file.seek(SeekFrom::Start(0))?;
        let mut prefix = (&mut file).take(keep);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = prefix.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
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
            hasher,
            digest,
            size,
        }))
    }
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
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
