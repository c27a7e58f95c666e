//! The listing cache: what `ls` learned from a store's indexes and manifests, kept beside the
//! store (`cache/listing.json` in the local store), so that the next `ls` reads `index.json`
//! and this one file instead of two small files per package (issue 14: `ls` of 10,000
//! packages under 150 ms).
//!
//! It is safe because a blob never changes under its digest: an index's manifest entries and
//! a manifest's layer sizes are facts of the digest. What can change, a blob's presence, is
//! not cached: each listing checks with one `stat` per manifest that what it takes from here
//! is still in the store (a pull of another platform into a stored index makes a manifest
//! appear, which is then read). A cache that is missing, unreadable or of another version is
//! ignored and rewritten; one that cannot be written (a store this user may only read) costs
//! only speed. It holds what was read from verified blobs and is only ever used for listing:
//! `unpack`, `push` and `inspect` read the documents themselves.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use ukpm_types::{Descriptor, Digest, Platform};

use crate::store::ImageStore;

/// The cache file's name in the store's cache folder.
const NAME: &str = "listing.json";

/// Bumped when the shape or meaning of the file changes: another version is ignored.
const VERSION: u32 = 2;

/// What listings know by digest.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ListingCache {
    version: u32,
    /// An index's manifest entries (those that are manifests), as the index has them.
    indexes: HashMap<Digest, Vec<Descriptor>>,
    /// What a manifest says.
    manifests: HashMap<Digest, ManifestFacts>,
    /// Whether something was learned since it was loaded.
    #[serde(skip)]
    changed: bool,
    /// The digests this listing used, to leave out the others when it covered the store.
    #[serde(skip)]
    used: HashSet<Digest>,
}

/// What a listing needs of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestFacts {
    /// The layers' total size.
    pub size: u64,
    /// The platform the manifest gives itself (its config descriptor's, else its config's),
    /// for an index entry without one; `None` when it was not needed, so not looked up.
    pub platform: Option<Platform>,
}

impl ListingCache {
    /// The store's cache, or an empty one.
    ///
    /// It is parsed on the calling task's thread (the runtime's main thread under `block_on`)
    /// while the store parses `index.json` on a blocking thread: the two overlap, and the many
    /// small allocations of the parse come from the main heap, which grows far more cheaply
    /// than a thread's arena.
    pub(crate) async fn load(store: &dyn ImageStore) -> ListingCache {
        let Some(bytes) = store.read_cache(NAME).await else {
            return ListingCache::default();
        };
        match serde_json::from_slice::<ListingCache>(&bytes) {
            Ok(cache) if cache.version == VERSION => cache,
            Ok(_) => ListingCache::default(),
            Err(err) => {
                tracing::debug!(%err, "ignoring an unreadable listing cache");
                ListingCache::default()
            }
        }
    }

    /// An index's manifest entries, if known.
    pub(crate) fn index(&mut self, digest: Digest) -> Option<Vec<Descriptor>> {
        let entries = self.indexes.get(&digest)?.clone();
        self.used.insert(digest);
        Some(entries)
    }

    /// Records an index's manifest entries.
    pub(crate) fn set_index(&mut self, digest: Digest, entries: Vec<Descriptor>) {
        self.used.insert(digest);
        self.indexes.insert(digest, entries);
        self.changed = true;
    }

    /// What a manifest says, if known.
    pub(crate) fn manifest(&mut self, digest: Digest) -> Option<ManifestFacts> {
        let facts = self.manifests.get(&digest)?.clone();
        self.used.insert(digest);
        Some(facts)
    }

    /// Records what a manifest says.
    pub(crate) fn set_manifest(&mut self, digest: Digest, facts: ManifestFacts) {
        self.used.insert(digest);
        if self.manifests.get(&digest) != Some(&facts) {
            self.manifests.insert(digest, facts);
            self.changed = true;
        }
    }

    /// Writes the cache back when it learned something or, after a listing of the whole
    /// store (`whole`), holds entries for blobs no name reaches any more, which it then drops.
    pub(crate) async fn save(mut self, store: &dyn ImageStore, whole: bool) {
        let stale = whole && self.indexes.len() + self.manifests.len() > self.used.len();
        if !self.changed && !stale {
            return;
        }
        if whole {
            let used = std::mem::take(&mut self.used);
            self.indexes.retain(|d, _| used.contains(d));
            self.manifests.retain(|d, _| used.contains(d));
        }
        self.version = VERSION;
        match serde_json::to_vec(&self) {
            Ok(bytes) => store.write_cache(NAME, bytes).await,
            Err(err) => tracing::debug!(%err, "cannot serialise the listing cache"),
        }
    }
}
