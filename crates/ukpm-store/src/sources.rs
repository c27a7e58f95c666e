//! Where blobs were last seen in registries, so a push can mount a blob from another repository
//! of the same registry instead of uploading it again (skopeo keeps a similar cache).
//!
//! A cache, not data: `ukpm-sources.json` beside `index.json`, rewritten atomically under the
//! ref lock; losing it costs uploads, never content.

use std::collections::BTreeMap;

use ukpm_types::Digest;

use crate::error::Result;
use crate::{LocalStore, write_atomic};

const SOURCES: &str = "ukpm-sources.json";
/// Repositories remembered per blob.
const PER_BLOB: usize = 8;

impl LocalStore {
    fn read_sources(&self) -> BTreeMap<String, Vec<String>> {
        fs_err::read(self.root().join(SOURCES))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// The `registry/repository` names where `digest` was last pushed or pulled, newest first.
    pub fn blob_sources(&self, digest: &Digest) -> Vec<String> {
        self.read_sources().remove(&digest.hex()).unwrap_or_default()
    }

    /// Records that these blobs are in these repositories.
    pub fn remember_sources(&self, seen: &[(Digest, String)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let _lock = self.lock_index()?;
        let mut sources = self.read_sources();
        for (digest, repository) in seen {
            let list = sources.entry(digest.hex()).or_default();
            list.retain(|r| r != repository);
            list.insert(0, repository.clone());
            list.truncate(PER_BLOB);
        }
        // Forget blobs the store no longer has, so the cache does not grow without bound.
        sources.retain(|hex, _| Digest::from_hex(hex).is_ok_and(|d| self.blob_size(&d).is_some()));
        let bytes = serde_json::to_vec(&sources).map_err(std::io::Error::other)?;
        write_atomic(self.root(), SOURCES, &bytes)
    }
}
