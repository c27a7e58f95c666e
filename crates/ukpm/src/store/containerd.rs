//! containerd as an [`ImageStore`] (KraftKit's `WithContainerd`): every operation works
//! unchanged against it.
//!
//! Content goes in with its expected digest and size (containerd verifies on commit) under a
//! lease, with the `containerd.io/gc.ref.content.*` labels containerd's collector follows, so an
//! image record keeps exactly what it reaches and `rm` plus a collection frees the rest.

use std::collections::{BTreeSet, HashMap};
use std::io::{Cursor, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ukpm_containerd::{Containerd, ContainerdError};
use ukpm_store::{GcReport, RefEntry};
use ukpm_types::{Descriptor, Digest, Hasher, annotation};

use tokio_util::io::{StreamReader, SyncIoBridge};
use ukpm_store::VerifyingReader;

use super::{
    BlobRead, BoxFuture, ContentStore, Expect, ImageStore, Maintenance, MountHints, RefStore,
    ResumableWrites, StoreLease,
};
use crate::error::{Error, Result};

/// containerd's label prefix for where a blob came from (`...source.<registry>` = repositories).
const SOURCE_LABEL: &str = "containerd.io/distribution.source.";

/// Packages kept in containerd, in one namespace.
#[derive(Debug, Clone)]
pub struct ContainerdImageStore {
    client: Arc<Containerd>,
    releases: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl ContainerdImageStore {
    /// Connects to containerd at `address` (its socket) and works in `namespace`.
    pub async fn connect(address: &Path, namespace: &str) -> Result<ContainerdImageStore> {
        let client = Containerd::connect(address, namespace).await?;
        Ok(ContainerdImageStore {
            client: Arc::new(client),
            releases: Arc::default(),
        })
    }

    /// The connection.
    pub fn client(&self) -> &Containerd {
        &self.client
    }

    /// Takes the lock that serialises image-record updates among ukpm processes on this
    /// machine for this containerd and namespace (a file in the temp folder, released when the
    /// returned file is dropped or the process dies).
    async fn lock_images(&self) -> Result<std::fs::File> {
        let key = format!("{}\n{}", self.client.address().display(), self.client.namespace());
        let path = std::env::temp_dir().join(format!(
            "ukpm-containerd-{}.lock",
            &Digest::of(key.as_bytes()).hex()[..16]
        ));
        let file = tokio::task::spawn_blocking(move || {
            let file = fs_err::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|source| ContainerdError::Lock {
                    path: path.clone(),
                    source,
                })?;
            let file = file.into_parts().0;
            file.lock()
                .map_err(|source| ContainerdError::Lock { path, source })?;
            Ok::<_, ContainerdError>(file)
        })
        .await??;
        Ok(file)
    }
}

/// Gives the lease back when an operation ends; [`ImageStore::close`] waits for that.
struct LeaseGuard {
    client: Arc<Containerd>,
    releases: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let client = self.client.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let task = handle.spawn(async move {
                if let Err(err) = client.release_lease().await {
                    tracing::warn!("cannot release the containerd lease (it expires by itself): {err}");
                }
            });
            self.releases.lock().unwrap_or_else(|p| p.into_inner()).push(task);
        }
    }
}

/// The labels that make containerd's collector follow a document to what it references.
fn gc_labels(bytes: &[u8]) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return labels;
    };
    let digest_of = |v: &serde_json::Value| v.get("digest").and_then(|d| d.as_str()).map(str::to_string);
    if let Some(manifests) = value.get("manifests").and_then(|m| m.as_array()) {
        for (i, m) in manifests.iter().enumerate() {
            if let Some(d) = digest_of(m) {
                labels.insert(format!("containerd.io/gc.ref.content.m.{i}"), d);
            }
        }
    }
    if let Some(config) = value.get("config").and_then(digest_of) {
        labels.insert("containerd.io/gc.ref.content.config".to_string(), config);
    }
    if let Some(layers) = value.get("layers").and_then(|l| l.as_array()) {
        for (i, l) in layers.iter().enumerate() {
            if let Some(d) = digest_of(l) {
                labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), d);
            }
        }
    }
    labels
}

impl ContentStore for ContainerdImageStore {
    fn describe(&self) -> String {
        format!(
            "containerd at {} (namespace {})",
            self.client.address().display(),
            self.client.namespace()
        )
    }

    fn lease(&self) -> BoxFuture<'_, Result<StoreLease>> {
        Box::pin(async move {
            self.client.acquire_lease().await?;
            Ok(Box::new(LeaseGuard {
                client: self.client.clone(),
                releases: self.releases.clone(),
            }) as StoreLease)
        })
    }

    fn has_blob(&self, digest: Digest, size: Option<u64>) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            Ok(match (self.client.content_size(digest).await?, size) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
        })
    }

    fn write_blob(
        &self,
        content: BlobRead,
        expected: Option<(Digest, u64)>,
    ) -> BoxFuture<'_, Result<(Digest, u64)>> {
        Box::pin(async move {
            let (digest, size, content) = match expected {
                Some((digest, size)) => (digest, size, content),
                // Content made here (a layer being packed): its digest is known only at the end,
                // and containerd wants it up front, so spool it through a temp file first.
                None => tokio::task::spawn_blocking(move || spool(content)).await??,
            };
            match self
                .client
                .write_content(digest, size, HashMap::new(), content)
                .await
            {
                Ok(()) => Ok((digest, size)),
                // Reading the content failed: a download's registry error comes back typed.
                Err(ContainerdError::Io(err)) => Err(Error::from_io(err)),
                Err(err) => Err(err.into()),
            }
        })
    }

    fn put_bytes(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Digest>> {
        Box::pin(async move {
            let digest = Digest::of(&bytes);
            let labels = gc_labels(&bytes);
            let size = bytes.len() as u64;
            self.client
                .write_content(digest, size, labels, Box::new(Cursor::new(bytes)))
                .await?;
            Ok(digest)
        })
    }

    fn read_bytes(&self, descriptor: Descriptor) -> BoxFuture<'_, Result<Vec<u8>>> {
        Box::pin(async move {
            let digest = descriptor.digest;
            let mut stream = self.client.read_content(digest).await?;
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.chunk().await? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > descriptor.size {
                    break;
                }
            }
            if bytes.len() as u64 != descriptor.size {
                return Err(ContainerdError::SizeMismatch {
                    digest,
                    expected: descriptor.size,
                    actual: bytes.len() as u64,
                }
                .into());
            }
            let actual = Digest::of(&bytes);
            if actual != digest {
                return Err(ContainerdError::Corrupt { digest, actual }.into());
            }
            Ok(bytes)
        })
    }

    fn read_many(&self, descriptors: Vec<Descriptor>) -> BoxFuture<'_, Result<Vec<Result<Vec<u8>>>>> {
        Box::pin(async move {
            // containerd reads are round trips: a few at once, answers in order.
            use futures_util::StreamExt;
            Ok(futures_util::stream::iter(descriptors)
                .map(|descriptor| self.read_bytes(descriptor))
                .buffered(8)
                .collect()
                .await)
        })
    }

    fn open_blob(&self, digest: Digest) -> BoxFuture<'_, Result<BlobRead>> {
        Box::pin(async move {
            let stream = self.client.read_content(digest).await?;
            let chunks = futures_util::stream::unfold(Some(stream), |stream| async move {
                let mut stream = stream?;
                match stream.chunk().await {
                    Ok(Some(chunk)) => Some((Ok(Bytes::from(chunk)), Some(stream))),
                    Ok(None) => None,
                    // The error ends the stream; the reader reports it with its cause.
                    Err(err) => Some((Err(std::io::Error::other(err)), None)),
                }
            });
            let reader = SyncIoBridge::new(StreamReader::new(Box::pin(chunks)));
            Ok(Box::new(VerifyingReader::new(reader, digest)) as BlobRead)
        })
    }

    fn open_blob_range(&self, digest: Digest, offset: u64, len: u64) -> BoxFuture<'_, Result<BlobRead>> {
        Box::pin(async move {
            let blob = self.open_blob(digest).await?;
            // containerd reads from an offset too, but a resumed upload is rare enough that
            // skipping on a blocking thread is simpler than a second read path.
            tokio::task::spawn_blocking(move || {
                let mut blob = blob;
                std::io::copy(&mut (&mut blob).take(offset), &mut std::io::sink())?;
                Ok::<_, Error>(Box::new(blob.take(len)) as BlobRead)
            })
            .await?
        })
    }
}

impl RefStore for ContainerdImageStore {
    fn refs(&self) -> BoxFuture<'_, Result<Vec<RefEntry>>> {
        Box::pin(async move {
            let images = self.client.images().await?;
            if images.is_empty() && !self.client.namespace_exists().await? {
                return Err(Error::Namespace {
                    namespace: self.client.namespace().to_string(),
                });
            }
            Ok(images
                .into_iter()
                .map(|image| {
                    let mut descriptor = image.target;
                    if let Some(secs) = image.created {
                        descriptor
                            .annotations
                            .insert(annotation::OCI_CREATED.into(), crate::time::rfc3339(secs));
                    }
                    descriptor
                        .annotations
                        .insert(annotation::OCI_REF_NAME.into(), image.name.clone());
                    RefEntry {
                        name: image.name,
                        descriptor,
                    }
                })
                .collect())
        })
    }

    fn set_ref(&self, name: String, descriptor: Descriptor, expect: Expect) -> BoxFuture<'_, Result<bool>> {
        Box::pin(async move {
            if self.client.content_size(descriptor.digest).await?.is_none() {
                return Err(ContainerdError::MissingTarget {
                    name,
                    digest: descriptor.digest,
                }
                .into());
            }
            let target = Descriptor::new(&descriptor.media_type, descriptor.digest, descriptor.size);
            // containerd creates only if absent, atomically, but has no precondition for an
            // update: ukpm processes on this machine serialise read-compare-update on a lock
            // file, so two of them merging into one name never lose each other's manifests.
            let _lock = self.lock_images().await?;
            let current = self.client.image(&name).await?.map(|i| i.target.digest);
            if !expect.holds(current) {
                return Ok(false);
            }
            Ok(match current {
                None => self.client.create_image(&name, &target).await?,
                Some(_) => self.client.update_image(&name, &target).await?,
            })
        })
    }

    fn remove_refs(&self, names: Vec<String>) -> BoxFuture<'_, Result<Vec<RefEntry>>> {
        Box::pin(async move {
            let mut removed = Vec::new();
            for name in names {
                if let Some(image) = self.client.image(&name).await?
                    && self.client.delete_image(&name, false).await?
                {
                    removed.push(RefEntry {
                        name,
                        descriptor: image.target,
                    });
                }
            }
            Ok(removed)
        })
    }
}

impl MountHints for ContainerdImageStore {
    fn sources(&self, digest: Digest) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            let Some(info) = self.client.content_info(digest).await? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for (key, repositories) in &info.labels {
                if let Some(registry) = key.strip_prefix(SOURCE_LABEL) {
                    out.extend(repositories.split(',').map(|repo| format!("{registry}/{repo}")));
                }
            }
            out.sort();
            Ok(out)
        })
    }

    fn remember(&self, seen: Vec<(Digest, String)>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            // containerd's convention: `containerd.io/distribution.source.<registry>` holds the
            // repositories, comma-separated; the newest is put first.
            for (digest, name) in seen {
                let Some((registry, repository)) = name.split_once('/') else {
                    continue;
                };
                let Some(info) = self.client.content_info(digest).await? else {
                    continue;
                };
                let key = format!("{SOURCE_LABEL}{registry}");
                let mut repositories = vec![repository.to_string()];
                if let Some(known) = info.labels.get(&key) {
                    repositories.extend(known.split(',').filter(|r| *r != repository).map(str::to_string));
                }
                let value = repositories.join(",");
                if info.labels.get(&key) != Some(&value) {
                    self.client
                        .add_labels(digest, HashMap::from([(key, value)]))
                        .await?;
                }
            }
            Ok(())
        })
    }
}

impl ImageStore for ContainerdImageStore {
    fn gc(&self) -> BoxFuture<'_, Result<GcReport>> {
        Box::pin(async move {
            self.close().await?;
            let before = self.client.content().await?;
            self.client.collect_garbage().await?;
            let after: BTreeSet<Digest> = self
                .client
                .content()
                .await?
                .into_iter()
                .map(|c| c.digest)
                .collect();
            let mut report = GcReport {
                kept: after.len(),
                ..GcReport::default()
            };
            for info in before.into_iter().filter(|c| !after.contains(&c.digest)) {
                report.bytes_freed += info.size;
                report.removed.push(info.digest);
            }
            report.removed.sort();
            Ok(report)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let tasks = std::mem::take(&mut *self.releases.lock().unwrap_or_else(|p| p.into_inner()));
            for task in tasks {
                let _ = task.await;
            }
            Ok(())
        })
    }

    fn resumable_writes(&self) -> Option<&dyn ResumableWrites> {
        // containerd keeps its own ingests, but resuming them needs its ref-based writer
        // protocol, which ukpm does not speak yet: downloads start over.
        None
    }

    fn mount_hints(&self) -> Option<&dyn MountHints> {
        Some(self)
    }

    fn maintenance(&self) -> Option<&dyn Maintenance> {
        // containerd verifies every blob on commit; it has nothing for ukpm to check.
        None
    }
}

/// Writes `content` to a temp file, hashing it, and returns its digest, size and a reader.
fn spool(mut content: BlobRead) -> Result<(Digest, u64, BlobRead)> {
    let mut file = tempfile::tempfile()
        .map_err(|e| std::io::Error::new(e.kind(), format!("failed to create a temp file: {e}")))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = content.read(&mut buf).map_err(Error::from_io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
    }
    let size = hasher.len();
    file.rewind()?;
    Ok((hasher.finish(), size, Box::new(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_indexes_and_manifests() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let index = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{a}"}},{{"digest":"{b}"}}]}}"#);
        let labels = gc_labels(index.as_bytes());
        assert_eq!(labels.get("containerd.io/gc.ref.content.m.0"), Some(&a));
        assert_eq!(labels.get("containerd.io/gc.ref.content.m.1"), Some(&b));
        let manifest = format!(r#"{{"config":{{"digest":"{a}"}},"layers":[{{"digest":"{b}"}}]}}"#);
        let labels = gc_labels(manifest.as_bytes());
        assert_eq!(labels.get("containerd.io/gc.ref.content.config"), Some(&a));
        assert_eq!(labels.get("containerd.io/gc.ref.content.l.0"), Some(&b));
        assert!(gc_labels(b"not json").is_empty());
    }
}
