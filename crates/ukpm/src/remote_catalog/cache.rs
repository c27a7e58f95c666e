//! The remote listing's cache: the registries' documents as files named by their digests
//! (`blobs/sha256/<hex>`, exactly the bytes served) and `index.json` (which tag pointed where,
//! when, and what was asked), each written through a temp file and a rename.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use ukpm_types::Digest;

use super::{Entry, Snapshot};
use crate::{Error, Result};

/// The cache's `index.json`: small; the documents are files of their own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct CacheIndex {
    pub(super) fetched_at: i64,
    pub(super) entries: Vec<Entry>,
    #[serde(default)]
    pub(super) warnings: Vec<String>,
    /// What was asked: registries whose catalogs were tried, and `registry/repo` names.
    #[serde(default)]
    pub(super) covered: Vec<String>,
}

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join(digest.algorithm()).join(digest.hex())
}

pub(super) async fn read_cache(dir: &Path) -> Result<Option<(CacheIndex, Snapshot)>> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<Option<(CacheIndex, Snapshot)>> {
        let bytes = match fs_err::read(dir.join("index.json")) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let index: CacheIndex = serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidInput(format!(
                "the remote cache {} is damaged: {e}; run `ukpm update`",
                dir.display()
            ))
        })?;
        let mut snapshot = Snapshot {
            entries: index.entries.clone(),
            documents: HashMap::new(),
            warnings: index.warnings.clone(),
            covered: index.covered.clone(),
        };
        let blobs = dir.join("blobs");
        if blobs.is_dir() {
            for algorithm in fs_err::read_dir(&blobs)? {
                for file in fs_err::read_dir(algorithm?.path())? {
                    let path = file?.path();
                    let bytes = fs_err::read(&path)?;
                    // Only what is what its name says is used.
                    let digest = Digest::of(&bytes);
                    if path.file_name().and_then(|n| n.to_str()) == Some(digest.hex().as_str()) {
                        snapshot.documents.insert(digest, Bytes::from(bytes));
                    }
                }
            }
        }
        Ok(Some((index, snapshot)))
    })
    .await
    .map_err(Error::Task)?
}

/// Writes the documents, then the index that names them (so a reader never finds an entry
/// without its bytes); `prune` (a full refresh) then deletes documents nothing names any more.
pub(super) async fn write_cache(dir: &Path, snapshot: Snapshot, prune: bool) -> Result<()> {
    let dir = dir.to_path_buf();
    let documents = snapshot.documents;
    let index = CacheIndex {
        fetched_at: crate::time::now_or_epoch()?,
        entries: snapshot.entries,
        warnings: snapshot.warnings,
        covered: snapshot.covered,
    };
    tokio::task::spawn_blocking(move || -> Result<()> {
        fs_err::create_dir_all(&dir)?;
        let keep: std::collections::HashSet<String> = documents.keys().map(Digest::hex).collect();
        for (digest, bytes) in &documents {
            let path = blob_path(&dir, digest);
            if path.exists() {
                continue;
            }
            let parent = path.parent().unwrap_or(&dir);
            fs_err::create_dir_all(parent)?;
            atomic_write(parent, &path, bytes)?;
        }
        let json = serde_json::to_vec_pretty(&index)
            .map_err(|e| Error::InvalidInput(format!("cannot write the remote cache: {e}")))?;
        atomic_write(&dir, &dir.join("index.json"), &json)?;
        let blobs = dir.join("blobs").join("sha256");
        if prune && blobs.is_dir() {
            for file in fs_err::read_dir(&blobs)? {
                let path = file?.path();
                let known = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| keep.contains(n));
                if !known {
                    fs_err::remove_file(&path)?;
                }
            }
        }
        Ok(())
    })
    .await
    .map_err(Error::Task)?
}

/// Writes `path` through a temp file in `dir` and a rename, so a reader sees the old file or
/// the new one, never half of one.
pub(crate) fn atomic_write(dir: &Path, path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| Error::Io(e.error))?;
    Ok(())
}
