//! Integrity checking: every blob against its name, every ref against what it must reach.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use ukpm_types::{Descriptor, Digest, Hasher, Index, Manifest};

use crate::error::Result;
use crate::{LocalStore, StoreError};

/// One thing wrong with a store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// `index.json` cannot be read or parsed: no ref can be trusted.
    BadIndex {
        /// Why.
        message: String,
    },
    /// A blob's bytes do not hash to its name (or its size differs from what refs say).
    Corrupt {
        /// The blob as refs describe it (when a ref reaches it) or as found.
        descriptor: Descriptor,
        /// What the bytes hash to.
        actual: Digest,
        /// The refs that reach it.
        refs: Vec<String>,
    },
    /// A blob a ref needs is absent.
    Missing {
        /// The blob as the ref's documents describe it.
        descriptor: Descriptor,
        /// The refs that need it.
        refs: Vec<String>,
    },
    /// A stored index or manifest cannot be parsed.
    BadDocument {
        /// The blob.
        descriptor: Descriptor,
        /// The parse error.
        message: String,
        /// The refs that reach it.
        refs: Vec<String>,
    },
    /// A blob's name holds a symlink, a fifo or anything else but a regular file; it is not
    /// opened. Refs that need it are also reported as missing it.
    NotAFile {
        /// The blob.
        digest: Digest,
        /// What it is instead.
        kind: &'static str,
    },
    /// A file in `blobs/sha256/` whose name is not a digest.
    StrayFile {
        /// Its name.
        name: String,
    },
}

impl Problem {
    /// The refs this problem breaks.
    pub fn refs(&self) -> &[String] {
        match self {
            Problem::Corrupt { refs, .. }
            | Problem::Missing { refs, .. }
            | Problem::BadDocument { refs, .. } => refs,
            Problem::BadIndex { .. } | Problem::StrayFile { .. } | Problem::NotAFile { .. } => &[],
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let refs = |refs: &[String]| {
            if refs.is_empty() {
                "no ref".to_string()
            } else {
                refs.join(", ")
            }
        };
        match self {
            Problem::BadIndex { message } => write!(f, "index.json is unusable: {message}"),
            Problem::Corrupt {
                descriptor,
                actual,
                refs: r,
            } => write!(
                f,
                "blob {} is corrupt (hashes to {actual}); needed by {}",
                descriptor.digest,
                refs(r)
            ),
            Problem::Missing { descriptor, refs: r } => {
                write!(f, "blob {} is missing; needed by {}", descriptor.digest, refs(r))
            }
            Problem::BadDocument {
                descriptor,
                message,
                refs: r,
            } => write!(
                f,
                "blob {} is not a valid document ({message}); needed by {}",
                descriptor.digest,
                refs(r)
            ),
            Problem::NotAFile { digest, kind } => {
                write!(f, "blob {digest} is a {kind}, not a regular file")
            }
            Problem::StrayFile { name } => write!(f, "blobs/sha256/{name} is not named by a digest"),
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Blobs read and hashed.
    pub blobs_checked: usize,
    /// Bytes read.
    pub bytes_checked: u64,
    /// Blobs no ref reaches (collectable, not a problem).
    pub unreachable: usize,
    /// The problems, refs first affected in `index.json` order.
    pub problems: Vec<Problem>,
}

impl LocalStore {
    /// Reads every blob and checks it against its name, and walks every ref checking that each
    /// blob it reaches is present, the right size and, for indexes and manifests, parses.
    ///
    /// Takes no lock: it only reads, and writers never expose partial content.
    pub fn fsck(&self) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let refs = match self.refs() {
            Ok(refs) => refs,
            Err(StoreError::BadIndex { source, .. }) => {
                report.problems.push(Problem::BadIndex {
                    message: source.to_string(),
                });
                return Ok(report);
            }
            Err(other) => return Err(other),
        };

        // Hash every blob once.
        let mut actual: BTreeMap<Digest, (Digest, u64)> = BTreeMap::new();
        if let Ok(entries) = fs_err::read_dir(self.blobs_dir()) {
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(digest) = Digest::from_hex(&name) else {
                    report.problems.push(Problem::StrayFile { name });
                    continue;
                };
                // Looked at without following links, and never opened unless a regular file:
                // a fifo would block the read forever, a symlink could point anywhere.
                let file_type = entry.file_type()?;
                if !file_type.is_file() {
                    report.problems.push(Problem::NotAFile {
                        digest,
                        kind: crate::file_kind(&file_type),
                    });
                    continue;
                }
                let (hash, size) = hash_file(&entry.path())?;
                report.blobs_checked += 1;
                report.bytes_checked += size;
                actual.insert(digest, (hash, size));
            }
        }

        // Walk each ref; remember which refs reach which blob.
        let mut reached: BTreeMap<Digest, (Descriptor, Vec<String>)> = BTreeMap::new();
        for (i, root) in refs.roots().iter().enumerate() {
            let name = root
                .annotations
                .get(ukpm_types::annotation::OCI_REF_NAME)
                .cloned()
                .unwrap_or_else(|| format!("index.json entry {i}"));
            let mut stack = vec![(root.clone(), false)];
            let mut seen = BTreeSet::new();
            while let Some((descriptor, optional)) = stack.pop() {
                if !seen.insert(descriptor.digest) {
                    continue;
                }
                let present = actual.get(&descriptor.digest).copied();
                if present.is_none() && optional {
                    continue;
                }
                let slot = reached
                    .entry(descriptor.digest)
                    .or_insert_with(|| (descriptor.clone(), Vec::new()));
                if !slot.1.contains(&name) {
                    slot.1.push(name.clone());
                }
                let Some((hash, _)) = present else { continue };
                if hash != descriptor.digest || !(descriptor.is_index() || descriptor.is_manifest()) {
                    continue;
                }
                let size = present.map_or(0, |(_, size)| size);
                if size > ukpm_types::limits::MANIFEST_LIMIT {
                    report.problems.push(Problem::BadDocument {
                        descriptor: descriptor.clone(),
                        message: format!(
                            "{size} bytes, over the {}-byte cap on manifests and indexes",
                            ukpm_types::limits::MANIFEST_LIMIT
                        ),
                        refs: vec![name.clone()],
                    });
                    continue;
                }
                let bytes = fs_err::read(self.blob_path(&descriptor.digest))?;
                if descriptor.is_index() {
                    match serde_json::from_slice::<Index>(&bytes) {
                        Ok(index) => {
                            stack.extend(index.manifests.into_iter().map(|d| (d, true)));
                            stack.extend(index.subject.map(|d| (d, true)));
                        }
                        Err(e) => report.problems.push(Problem::BadDocument {
                            descriptor: descriptor.clone(),
                            message: e.to_string(),
                            refs: vec![name.clone()],
                        }),
                    }
                } else {
                    match serde_json::from_slice::<Manifest>(&bytes) {
                        Ok(manifest) => {
                            stack.push((manifest.config, false));
                            stack.extend(manifest.layers.into_iter().map(|d| (d, false)));
                            stack.extend(manifest.subject.map(|d| (d, true)));
                        }
                        Err(e) => report.problems.push(Problem::BadDocument {
                            descriptor: descriptor.clone(),
                            message: e.to_string(),
                            refs: vec![name.clone()],
                        }),
                    }
                }
            }
        }

        for (digest, (descriptor, refs)) in &reached {
            match actual.get(digest) {
                None => report.problems.push(Problem::Missing {
                    descriptor: descriptor.clone(),
                    refs: refs.clone(),
                }),
                Some((hash, size))
                    if hash != digest || (*size != descriptor.size && !kraftkit_size(descriptor)) =>
                {
                    report.problems.push(Problem::Corrupt {
                        descriptor: descriptor.clone(),
                        actual: *hash,
                        refs: refs.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        // What gc keeps beyond the images walked above (what roots of types fsck does not check
        // may reference) is not collectable either; a store gc refuses to walk counts none.
        let kept_by_gc = self.reachable().map(|(kept, _)| kept).ok();
        for (digest, (hash, size)) in &actual {
            if reached.contains_key(digest) {
                continue;
            }
            if kept_by_gc.as_ref().is_some_and(|kept| !kept.contains(digest)) {
                report.unreachable += 1;
            }
            if hash != digest {
                report.problems.push(Problem::Corrupt {
                    descriptor: Descriptor::new("", *digest, *size),
                    actual: *hash,
                    refs: Vec::new(),
                });
            }
        }
        Ok(report)
    }

    /// Moves a damaged blob out of the way (into `ingest/`, which gc empties), so a repair can
    /// write the good bytes under its name.
    pub fn quarantine(&self, digest: &Digest) -> Result<()> {
        let from = self.blob_path(digest);
        if !from.exists() {
            return Ok(());
        }
        fs_err::create_dir_all(self.ingest_dir())?;
        fs_err::rename(&from, self.ingest_dir().join(format!("corrupt-{}", digest.hex())))?;
        Ok(())
    }
}

/// KraftKit writes `size: 32` for merged index entries; the digest still names the content.
fn kraftkit_size(descriptor: &Descriptor) -> bool {
    descriptor.size == 32
        && descriptor
            .annotations
            .contains_key(ukpm_types::annotation::KRAFTKIT_VERSION)
}

fn hash_file(path: &std::path::Path) -> io::Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    let mut file = crate::open_regular(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not a regular file"));
    }
    crate::copy_large(&mut file, &mut hasher)?;
    let size = hasher.len();
    Ok((hasher.finish(), size))
}
