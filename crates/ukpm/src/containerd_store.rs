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
use ukpm_store::{GcReport, RefEntry, StoreError};
use ukpm_types::{Descriptor, Digest, Hasher, Reference, annotation};

use crate::error::{Error, Result};
use crate::store::{BlobRead, BoxFuture, ChannelReader, Expect, ImageStore, StoreLease};
use ukpm_store::VerifyingReader;

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

impl ImageStore for ContainerdImageStore {
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
            self.client
                .write_content(digest, size, HashMap::new(), content)
                .await?;
            Ok((digest, size))
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
            let mut stream = self.client.read_content(digest).await.map_err(not_found)?;
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.chunk().await.map_err(not_found)? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > descriptor.size {
                    break;
                }
            }
            if bytes.len() as u64 != descriptor.size {
                return Err(StoreError::StoredSizeMismatch {
                    digest,
                    expected: descriptor.size,
                    actual: bytes.len() as u64,
                }
                .into());
            }
            let actual = Digest::of(&bytes);
            if actual != digest {
                return Err(StoreError::Corrupt { digest, actual }.into());
            }
            Ok(bytes)
        })
    }

    fn open_blob(&self, digest: Digest) -> BoxFuture<'_, Result<BlobRead>> {
        Box::pin(async move {
            let mut stream = self.client.read_content(digest).await.map_err(not_found)?;
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
            tokio::spawn(async move {
                loop {
                    let item = match stream.chunk().await {
                        Ok(Some(chunk)) => Ok(Bytes::from(chunk)),
                        Ok(None) => return,
                        Err(err) => Err(std::io::Error::other(err.to_string())),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        return;
                    }
                }
            });
            Ok(Box::new(VerifyingReader::new(ChannelReader::new(rx), digest)) as BlobRead)
        })
    }

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
            let current = self.client.image(&name).await?.map(|i| i.target.digest);
            let ok = match expect {
                Expect::Any => true,
                Expect::Absent => current.is_none(),
                Expect::Digest(d) => current == Some(d),
            };
            if !ok {
                return Ok(false);
            }
            if self.client.content_size(descriptor.digest).await?.is_none() {
                return Err(StoreError::DanglingRef {
                    name,
                    digest: descriptor.digest,
                }
                .into());
            }
            let target = Descriptor::new(&descriptor.media_type, descriptor.digest, descriptor.size);
            self.client.put_image(&name, &target, HashMap::new()).await?;
            Ok(true)
        })
    }

    fn note_source(&self, digest: Digest, reference: &Reference) -> BoxFuture<'_, Result<()>> {
        let label = format!("containerd.io/distribution.source.{}", reference.registry());
        let labels = HashMap::from([(label, reference.repository().to_string())]);
        Box::pin(async move { Ok(self.client.add_labels(digest, labels).await?) })
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

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let tasks = std::mem::take(&mut *self.releases.lock().unwrap_or_else(|p| p.into_inner()));
            for task in tasks {
                let _ = task.await;
            }
            Ok(())
        })
    }

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
}

fn not_found(err: ContainerdError) -> Error {
    match err {
        ContainerdError::NotFound { digest } => StoreError::BlobNotFound { digest }.into(),
        other => other.into(),
    }
}

/// Writes `content` to a temp file, hashing it, and returns its digest, size and a reader.
fn spool(mut content: BlobRead) -> Result<(Digest, u64, BlobRead)> {
    let mut file = tempfile::tempfile()
        .map_err(|e| std::io::Error::new(e.kind(), format!("failed to create a temp file: {e}")))?;
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = content
            .read(&mut buf)
            .map_err(|e| Error::Store(ukpm_store::unwrap_store_error(e)))?;
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
