//! ukpm's containerd client: containerd as the place packages live (KraftKit's
//! `WithContainerd`).
//!
//! It speaks containerd's gRPC API (content, images, leases, namespaces) over its unix socket:
//!
//! - **Content** is written with its expected digest and size, so containerd itself verifies it
//!   on commit, and with the `containerd.io/gc.ref.content.*` labels its garbage collector
//!   follows (the caller computes them from the documents).
//! - **Leases** protect content written before an image record reaches it: one lease per
//!   process while any operation holds it, with an expiry label so a crashed process's lease
//!   does not pin content forever.
//! - **Images** are records named by the full reference with the index or manifest descriptor as
//!   target, exactly what `ctr images ls` shows.
//!
//! This crate must not depend on the `ukpm` library, on reqwest or on clap.

mod error;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::{
    CreateImageRequest, DeleteContentRequest, DeleteImageRequest, GetImageRequest, Image, InfoRequest,
    ListContentRequest, ListImagesRequest, ListNamespacesRequest, ReadContentRequest, UpdateImageRequest,
    UpdateRequest, WriteAction, WriteContentRequest, content_client::ContentClient,
    images_client::ImagesClient, leases_client::LeasesClient, namespaces_client::NamespacesClient,
    version_client::VersionClient,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request};
use containerd_client::types::Descriptor as CtdDescriptor;
use ukpm_types::{Descriptor, Digest};

pub use error::{ContainerdError, Result};

/// The label containerd's collector reads to drop an abandoned lease.
const LEASE_EXPIRE: &str = "containerd.io/gc.expire";
/// How long a lease of a crashed process keeps content alive.
const LEASE_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a connection and its first answer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes per write message: containerd's own clients use 1 MiB.
const CHUNK: usize = 1 << 20;

/// A connection to one containerd, in one namespace.
pub struct Containerd {
    channel: Channel,
    address: PathBuf,
    namespace: String,
    lease: tokio::sync::Mutex<LeaseState>,
}

#[derive(Default)]
struct LeaseState {
    id: Option<String>,
    holders: usize,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// One record of containerd's images service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The image's name: a full reference.
    pub name: String,
    /// What it points at.
    pub target: Descriptor,
    /// When it was created, seconds since the epoch.
    pub created: Option<i64>,
}

/// One blob in containerd's content store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentInfo {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its labels.
    pub labels: HashMap<String, String>,
}

impl Containerd {
    /// Connects to the containerd socket at `address` and checks that it answers, giving up
    /// after [`CONNECT_TIMEOUT`] (as `ctr` does) rather than hanging on a socket that never speaks.
    pub async fn connect(address: &Path, namespace: &str) -> Result<Containerd> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_now(address, namespace))
            .await
            .unwrap_or_else(|_| {
                Err(ContainerdError::Timeout {
                    address: address.to_path_buf(),
                    after: CONNECT_TIMEOUT,
                })
            })
    }

    async fn connect_now(address: &Path, namespace: &str) -> Result<Containerd> {
        use std::os::unix::fs::FileTypeExt;
        #[expect(
            clippy::disallowed_methods,
            reason = "the error names the socket itself (NoSocket, PermissionDenied)"
        )]
        let meta = std::fs::metadata(address).map_err(|source| match source.kind() {
            std::io::ErrorKind::PermissionDenied => ContainerdError::PermissionDenied {
                address: address.to_path_buf(),
            },
            _ => ContainerdError::NoSocket {
                address: address.to_path_buf(),
                source,
            },
        })?;
        if !meta.file_type().is_socket() {
            return Err(ContainerdError::NotASocket {
                address: address.to_path_buf(),
            });
        }
        let channel = containerd_client::connect(address).await.map_err(|source| {
            if error::is_permission_denied(&source) {
                ContainerdError::PermissionDenied {
                    address: address.to_path_buf(),
                }
            } else {
                ContainerdError::Unreachable {
                    address: address.to_path_buf(),
                    source,
                }
            }
        })?;
        let client = Containerd {
            channel,
            address: address.to_path_buf(),
            namespace: namespace.to_string(),
            lease: tokio::sync::Mutex::new(LeaseState::default()),
        };
        VersionClient::new(client.channel.clone())
            .version(Request::new(()))
            .await
            .map_err(|status| ContainerdError::NoAnswer {
                address: address.to_path_buf(),
                message: status.message().to_string(),
            })?;
        Ok(client)
    }

    /// The namespace operations run in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The socket.
    pub fn address(&self) -> &Path {
        &self.address
    }

    fn rpc(&self, what: &str, status: containerd_client::tonic::Status) -> ContainerdError {
        ContainerdError::Rpc {
            address: self.address.clone(),
            what: what.to_string(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    /// A request in our namespace, under our lease when one is held.
    async fn request<T>(&self, message: T) -> Request<T> {
        let lease = self.lease.lock().await.id.clone();
        let mut request = self.in_namespace(message);
        if let Some(lease) = lease.and_then(|l| l.parse().ok()) {
            request.metadata_mut().insert("containerd-lease", lease);
        }
        request
    }

    /// A request in our namespace, outside any lease (for managing leases themselves).
    fn in_namespace<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Ok(ns) = self.namespace.parse() {
            request.metadata_mut().insert("containerd-namespace", ns);
        }
        request
    }

    /// Whether the namespace exists (reads of a missing one are refused, to catch typos).
    pub async fn namespace_exists(&self) -> Result<bool> {
        let response = NamespacesClient::new(self.channel.clone())
            .list(Request::new(ListNamespacesRequest::default()))
            .await
            .map_err(|s| self.rpc("the namespaces", s))?;
        Ok(response
            .into_inner()
            .namespaces
            .iter()
            .any(|n| n.name == self.namespace))
    }

    /// Takes (or shares) this process's lease, so content written now survives garbage
    /// collection until an image reaches it.
    pub async fn acquire_lease(&self) -> Result<()> {
        let mut state = self.lease.lock().await;
        if state.id.is_none() {
            let id = format!(
                "ukpm-{}-{}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            );
            let expire = SystemTime::now() + LEASE_LIFETIME;
            let labels = HashMap::from([(LEASE_EXPIRE.to_string(), rfc3339(expire))]);
            let request = self.in_namespace(containerd_client::services::v1::CreateRequest {
                id: id.clone(),
                labels,
            });
            LeasesClient::new(self.channel.clone())
                .create(request)
                .await
                .map_err(|s| self.rpc("a lease", s))?;
            state.id = Some(id);
        }
        state.holders += 1;
        Ok(())
    }

    /// Gives back a hold on the lease; the last one deletes it.
    pub async fn release_lease(&self) -> Result<()> {
        let mut state = self.lease.lock().await;
        state.holders = state.holders.saturating_sub(1);
        if state.holders > 0 {
            return Ok(());
        }
        if let Some(id) = state.id.take() {
            self.delete_lease(id, false).await?;
        }
        Ok(())
    }

    async fn delete_lease(&self, id: String, sync: bool) -> Result<()> {
        let request = self.in_namespace(containerd_client::services::v1::DeleteRequest { id, sync });
        LeasesClient::new(self.channel.clone())
            .delete(request)
            .await
            .map_err(|s| self.rpc("a lease", s))?;
        Ok(())
    }

    /// Runs containerd's garbage collector now, and waits for it (by deleting an empty lease
    /// with `sync`, which is how containerd lets a client ask for a collection).
    pub async fn collect_garbage(&self) -> Result<()> {
        let id = format!("ukpm-gc-{}", std::process::id());
        let request = self.in_namespace(containerd_client::services::v1::CreateRequest {
            id: id.clone(),
            labels: HashMap::new(),
        });
        LeasesClient::new(self.channel.clone())
            .create(request)
            .await
            .map_err(|s| self.rpc("a lease", s))?;
        self.delete_lease(id, true).await
    }

    /// The size of a blob, or `None` when containerd does not have it.
    pub async fn content_size(&self, digest: Digest) -> Result<Option<u64>> {
        Ok(self.content_info(digest).await?.map(|info| info.size))
    }

    /// A blob's size and labels, or `None` when containerd does not have it.
    pub async fn content_info(&self, digest: Digest) -> Result<Option<ContentInfo>> {
        let request = self
            .request(InfoRequest {
                digest: digest.to_string(),
            })
            .await;
        match ContentClient::new(self.channel.clone()).info(request).await {
            Ok(response) => Ok(response.into_inner().info.map(|i| ContentInfo {
                digest,
                size: i.size.max(0) as u64,
                labels: i.labels,
            })),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(self.rpc(&format!("blob {digest}"), status)),
        }
    }

    /// Every blob in the namespace.
    pub async fn content(&self) -> Result<Vec<ContentInfo>> {
        let request = self.request(ListContentRequest::default()).await;
        let mut stream = ContentClient::new(self.channel.clone())
            .list(request)
            .await
            .map_err(|s| self.rpc("the content list", s))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(page) = stream
            .message()
            .await
            .map_err(|s| self.rpc("the content list", s))?
        {
            for info in page.info {
                if let Ok(digest) = info.digest.parse() {
                    out.push(ContentInfo {
                        digest,
                        size: info.size.max(0) as u64,
                        labels: info.labels,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Adds labels to a blob.
    pub async fn add_labels(&self, digest: Digest, labels: HashMap<String, String>) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let request = self
            .request(UpdateRequest {
                info: Some(containerd_client::services::v1::Info {
                    digest: digest.to_string(),
                    labels,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths }),
            })
            .await;
        ContentClient::new(self.channel.clone())
            .update(request)
            .await
            .map_err(|s| self.rpc(&format!("labels of blob {digest}"), s))?;
        Ok(())
    }

    /// Deletes a blob (garbage collection of content no image reaches).
    pub async fn delete_content(&self, digest: Digest) -> Result<()> {
        let request = self
            .request(DeleteContentRequest {
                digest: digest.to_string(),
            })
            .await;
        match ContentClient::new(self.channel.clone()).delete(request).await {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(self.rpc(&format!("blob {digest}"), status)),
        }
    }

    /// Writes a blob of known digest and size from a blocking reader (call from async code; the
    /// reading runs on the blocking pool). containerd checks digest and size when it commits;
    /// a blob it already has only gets the labels.
    pub async fn write_content(
        &self,
        digest: Digest,
        size: u64,
        labels: HashMap<String, String>,
        reader: Box<dyn Read + Send>,
    ) -> Result<()> {
        if self.content_size(digest).await? == Some(size) {
            return self.add_labels(digest, labels).await;
        }
        let reference = format!(
            "ukpm-{}-{}-{}",
            &digest.hex()[..16],
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
        let producer =
            tokio::task::spawn_blocking(move || produce(reader, tx, reference, digest, size, labels));
        let stream =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) });
        let request = self.request(stream).await;
        let outcome = async {
            let mut responses = ContentClient::new(self.channel.clone())
                .write(request)
                .await?
                .into_inner();
            while responses.message().await?.is_some() {}
            Ok::<_, containerd_client::tonic::Status>(())
        }
        .await;
        let produced = producer
            .await
            .map_err(|e| ContainerdError::Io(std::io::Error::other(e.to_string())))?;
        match outcome {
            Ok(()) => {}
            Err(status) if status.code() == Code::AlreadyExists => {}
            Err(status) if status.code() == Code::FailedPrecondition => {
                return Err(ContainerdError::Rejected {
                    digest,
                    message: status.message().to_string(),
                });
            }
            Err(status) => {
                // A failed read of our side ends the stream early; report that cause first.
                produced?;
                return Err(self.rpc(&format!("blob {digest}"), status));
            }
        }
        produced
    }

    /// Starts reading a whole blob, in order, chunk by chunk.
    pub async fn read_content(&self, digest: Digest) -> Result<ContentStream> {
        let request = self
            .request(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            })
            .await;
        match ContentClient::new(self.channel.clone()).read(request).await {
            Ok(response) => Ok(ContentStream {
                inner: response.into_inner(),
                digest,
                address: self.address.clone(),
            }),
            Err(status) if status.code() == Code::NotFound => Err(ContainerdError::NotFound { digest }),
            Err(status) => Err(self.rpc(&format!("blob {digest}"), status)),
        }
    }

    /// Every image record in the namespace.
    pub async fn images(&self) -> Result<Vec<ImageRecord>> {
        let request = self.request(ListImagesRequest::default()).await;
        let response = ImagesClient::new(self.channel.clone())
            .list(request)
            .await
            .map_err(|s| self.rpc("the image list", s))?;
        Ok(response
            .into_inner()
            .images
            .into_iter()
            .filter_map(record)
            .collect())
    }

    /// One image record.
    pub async fn image(&self, name: &str) -> Result<Option<ImageRecord>> {
        let request = self
            .request(GetImageRequest {
                name: name.to_string(),
            })
            .await;
        match ImagesClient::new(self.channel.clone()).get(request).await {
            Ok(response) => Ok(response.into_inner().image.and_then(record)),
            Err(status) if status.code() == Code::NotFound => Ok(None),
            Err(status) => Err(self.rpc(&format!("image {name}"), status)),
        }
    }

    /// Creates the image record `name` pointing at `target`, only if no record of that name
    /// exists: `Ok(false)` when one does (containerd checks this atomically).
    pub async fn create_image(&self, name: &str, target: &Descriptor) -> Result<bool> {
        let request = self
            .request(CreateImageRequest {
                image: Some(image_record(name, target)),
                source_date_epoch: None,
            })
            .await;
        match ImagesClient::new(self.channel.clone()).create(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::AlreadyExists => Ok(false),
            Err(status) => Err(self.rpc(&format!("image {name}"), status)),
        }
    }

    /// Points the existing image record `name` at `target`. containerd's API has no
    /// precondition for updates: callers that need a compare-and-swap must serialise
    /// themselves. `Ok(false)` when the record no longer exists.
    pub async fn update_image(&self, name: &str, target: &Descriptor) -> Result<bool> {
        let request = self
            .request(UpdateImageRequest {
                image: Some(image_record(name, target)),
                update_mask: None,
                source_date_epoch: None,
            })
            .await;
        match ImagesClient::new(self.channel.clone()).update(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(self.rpc(&format!("image {name}"), status)),
        }
    }

    /// Deletes the image record `name`; with `sync`, waits for containerd's collector to free
    /// what it alone reached. `Ok(false)` when there was no such image.
    pub async fn delete_image(&self, name: &str, sync: bool) -> Result<bool> {
        let request = self
            .request(DeleteImageRequest {
                name: name.to_string(),
                sync,
                target: None,
            })
            .await;
        match ImagesClient::new(self.channel.clone()).delete(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(self.rpc(&format!("image {name}"), status)),
        }
    }
}

/// An image record pointing at `target`, without labels.
fn image_record(name: &str, target: &Descriptor) -> Image {
    Image {
        name: name.to_string(),
        labels: HashMap::new(),
        target: Some(CtdDescriptor {
            media_type: target.media_type.clone(),
            digest: target.digest.to_string(),
            size: target.size as i64,
            annotations: HashMap::new(),
        }),
        created_at: None,
        updated_at: None,
    }
}

/// A blob being read from containerd.
pub struct ContentStream {
    inner: containerd_client::tonic::Streaming<containerd_client::services::v1::ReadContentResponse>,
    digest: Digest,
    address: PathBuf,
}

impl ContentStream {
    /// The next chunk, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>> {
        match self.inner.message().await {
            Ok(chunk) => Ok(chunk.map(|c| c.data)),
            Err(status) if status.code() == Code::NotFound => {
                Err(ContainerdError::NotFound { digest: self.digest })
            }
            Err(status) => Err(ContainerdError::Rpc {
                address: self.address.clone(),
                what: format!("blob {}", self.digest),
                code: status.code(),
                message: status.message().to_string(),
            }),
        }
    }
}

fn record(image: Image) -> Option<ImageRecord> {
    let target = image.target?;
    let digest = target.digest.parse().ok()?;
    let mut descriptor = Descriptor::new(&target.media_type, digest, target.size.max(0) as u64);
    descriptor.annotations = target.annotations.into_iter().collect();
    Some(ImageRecord {
        name: image.name,
        target: descriptor,
        created: image.created_at.map(|t| t.seconds),
    })
}

/// Reads `reader` into write messages: data at increasing offsets, then the commit with the
/// expected digest, size and labels.
fn produce(
    mut reader: Box<dyn Read + Send>,
    tx: tokio::sync::mpsc::Sender<WriteContentRequest>,
    reference: String,
    digest: Digest,
    size: u64,
    labels: HashMap<String, String>,
) -> Result<()> {
    let mut offset = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let message = WriteContentRequest {
            action: WriteAction::Write as i32,
            r#ref: reference.clone(),
            total: size as i64,
            expected: digest.to_string(),
            offset: offset as i64,
            data: buf[..n].to_vec(),
            labels: HashMap::new(),
        };
        offset += n as u64;
        if tx.blocking_send(message).is_err() {
            return Ok(());
        }
    }
    let commit = WriteContentRequest {
        action: WriteAction::Commit as i32,
        r#ref: reference,
        total: size as i64,
        expected: digest.to_string(),
        offset: offset as i64,
        data: Vec::new(),
        labels,
    };
    let _ = tx.blocking_send(commit);
    Ok(())
}

/// RFC 3339 in UTC, for the lease expiry label.
fn rfc3339(time: SystemTime) -> String {
    ukpm_types::rfc3339(
        time.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_expiry_times_are_rfc3339() {
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_729_512_000)),
            "2024-10-21T12:00:00Z"
        );
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn a_missing_socket_is_named() {
        let err = Containerd::connect(Path::new("/nonexistent/containerd.sock"), "default")
            .await
            .unwrap_err();
        assert!(matches!(err, ContainerdError::NoSocket { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/containerd.sock"));
    }

    #[tokio::test]
    async fn a_regular_file_is_not_a_socket() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-socket");
        fs_err::write(&file, b"").unwrap();
        let err = Containerd::connect(&file, "default").await.unwrap_err();
        assert!(matches!(err, ContainerdError::NotASocket { .. }), "{err}");
    }
}
