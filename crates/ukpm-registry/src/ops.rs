//! The distribution API: ping, manifests, blob downloads and tags (uploads and mounts are in
//! `upload.rs`).

use bytes::Bytes;
use futures_util::future::Either;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use ukpm_types::{Descriptor, Digest, Reference, media_type};

use crate::auth::Scope;
use crate::client::Client;
use crate::error::{RegistryError, Result};
use crate::pace::BodyWatch;
use crate::retry::Resumes;

/// Manifests and indexes larger than this are refused before they are buffered.
pub const MANIFEST_LIMIT: u64 = ukpm_types::limits::MANIFEST_LIMIT;

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A manifest or index as the registry sent it: raw bytes (never re-serialised) and what they are.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The exact bytes.
    pub bytes: Bytes,
    /// Its media type (from `Content-Type`, else from the document).
    pub media_type: String,
    /// The digest of the bytes.
    pub digest: Digest,
}

impl FetchedManifest {
    /// Its descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(&self.media_type, self.digest, self.bytes.len() as u64)
    }
}

/// A blob download in progress; yields chunks and refuses a body longer or shorter than the
/// descriptor says, or one the registry stalls or trickles (the client's read timeout and
/// minimum rate).
///
/// A body that breaks off (the connection lost, a stall) is resumed in place with a `Range`
/// request at the byte reached, within the client's retry budget (`Resumes` in the retry module),
/// so the reader sees one unbroken stream. A registry that answers the resumption with the
/// whole blob (200) has the bytes already delivered skipped; for a download of a bounded range
/// that cannot be, and the break is returned as the error.
pub struct BlobDownload {
    response: reqwest::Response,
    watch: BodyWatch,
    what: String,
    registry: String,
    digest: Digest,
    expected: u64,
    received: u64,
    start: u64,
    ranged: bool,
    /// What a resumption asks for again.
    client: Client,
    reference: Reference,
    descriptor: Descriptor,
    end: Option<u64>,
    /// Bytes of the current response to drop before yielding: a resumption answered whole.
    skip: u64,
    resumes: Resumes,
    /// Closed when whoever waits for this download is gone: no resumption is tried then.
    stop: Option<tokio::sync::watch::Receiver<()>>,
}

impl BlobDownload {
    /// The next chunk, `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let error = match self.next_chunk().await {
                Ok(chunk) => return Ok(chunk),
                Err(error) => error,
            };
            // Everything arrived and only the connection's end was unclean.
            if self.received == self.expected && self.skip == 0 && error.is_network() {
                return Ok(None);
            }
            let Some(wait) = self.resumes.next(&error, self.received) else {
                return Err(error);
            };
            tracing::debug!(digest = %self.digest, at = self.start + self.received, %error, "resuming a broken download");
            let Some(mut stop) = self.stop.clone() else {
                tokio::time::sleep(wait).await;
                self.resume(error).await?;
                continue;
            };
            // Checked first on every poll: once the waiter is gone (an interrupted process
            // shutting its runtime down), neither the wait nor the request is polled again.
            let gave_up = self.stopped();
            let stopped = std::pin::pin!(stop.changed());
            let resumed = std::pin::pin!(async {
                tokio::time::sleep(wait).await;
                self.resume(error).await
            });
            match futures_util::future::select(stopped, resumed).await {
                Either::Left(_) => return Err(gave_up),
                Either::Right((resumed, _)) => resumed?,
            }
        }
    }

    /// The error a download given up on ends with: what arrived fell short.
    fn stopped(&self) -> RegistryError {
        RegistryError::Truncated {
            registry: self.registry.clone(),
            what: format!("blob {}", self.digest),
            expected: self.expected,
            actual: self.received,
        }
    }

    /// Gives up resuming once every sender of `stop` is dropped: for a download read on a
    /// blocking thread, whose reader outlives the operation that was interrupted and must then
    /// end with the break, not retry while the runtime shuts down.
    pub fn stop_when_dropped(&mut self, stop: tokio::sync::watch::Receiver<()>) {
        self.stop = Some(stop);
    }

    /// The next chunk of the current response, past what is to be skipped.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let chunk = self
                .watch
                .chunk(&mut self.response, &self.registry, &self.what)
                .await?;
            match chunk {
                Some(mut chunk) => {
                    if self.skip > 0 {
                        let n = self.skip.min(chunk.len() as u64);
                        self.skip -= n;
                        chunk = chunk.slice(n as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    self.received += chunk.len() as u64;
                    if self.received > self.expected {
                        return Err(RegistryError::TooLarge {
                            registry: self.registry.clone(),
                            what: format!("blob {}", self.digest),
                            limit: self.expected,
                        });
                    }
                    return Ok(Some(chunk));
                }
                None if self.received < self.expected || self.skip > 0 => {
                    return Err(RegistryError::Truncated {
                        registry: self.registry.clone(),
                        what: format!("blob {}", self.digest),
                        expected: self.expected,
                        actual: self.received,
                    });
                }
                None => return Ok(None),
            }
        }
    }

    /// Asks again from the byte reached; `broken` is returned when the answer cannot continue
    /// this download.
    async fn resume(&mut self, broken: RegistryError) -> Result<()> {
        let at = self.start + self.received;
        let (response, ranged) = self
            .client
            .blob_response(&self.reference, &self.descriptor, at, self.end)
            .await?;
        self.skip = if ranged {
            0
        } else if self.end.is_none() {
            tracing::debug!(digest = %self.digest, at, "the registry ignored the range; skipping what arrived");
            at
        } else {
            return Err(broken);
        };
        self.response = response;
        self.watch = BodyWatch::new(self.client.pace());
        Ok(())
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether the registry served the range asked for (206), rather than the whole blob.
    pub fn ranged(&self) -> bool {
        self.ranged
    }

    /// The offset in the blob of the first byte: the offset asked for when the registry served
    /// the range, 0 when it sent the whole blob instead.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl Client {
    pub(crate) async fn url(&self, reference: &Reference, rest: &str) -> String {
        format!(
            "{}{}/{rest}",
            self.base_url(reference.registry()).await,
            reference.repository()
        )
    }

    /// Checks that the registry answers and that the credentials (if any) are accepted.
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let url = self.base_url(registry).await;
        let response = self
            .send(registry, &[], "the API root", &|http| http.get(&url))
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(self.status_error(registry, "the API root", response).await)
        }
    }

    /// Fetches a manifest or index by tag or digest, verifying a digest reference.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<FetchedManifest> {
        let id = manifest_id(reference);
        let url = self.url(reference, &format!("manifests/{id}")).await;
        let what = format!("manifest {}:{id}", reference.repository());
        let scopes = [Scope::pull(reference.repository())];
        // A document whose body breaks off is asked for again, within the retry budget.
        let mut resumes = Resumes::new(self.policy());
        let (content_type, bytes) = loop {
            let response = self
                .send(reference.registry(), &scopes, &what, &|http| {
                    http.get(&url).header(ACCEPT, MANIFEST_ACCEPT)
                })
                .await?;
            if !response.status().is_success() {
                return Err(self.status_error(reference.registry(), &what, response).await);
            }
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
            match self
                .read_capped(response, MANIFEST_LIMIT, reference.registry(), &what)
                .await
            {
                Ok(bytes) => break (content_type, Bytes::from(bytes)),
                Err(error) => match resumes.next(&error, 0) {
                    Some(wait) => {
                        tracing::debug!(%what, %error, "the document broke off; asking again");
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(error),
                },
            }
        };
        let digest = Digest::of(&bytes);
        if let Some(expected) = reference.digest()
            && expected != digest
        {
            return Err(RegistryError::DigestMismatch {
                registry: reference.registry().to_string(),
                expected,
                actual: digest,
            });
        }
        let media_type = match content_type.filter(|t| is_manifest_type(t)) {
            Some(t) => t,
            None => sniff_media_type(&bytes).ok_or_else(|| RegistryError::Protocol {
                registry: reference.registry().to_string(),
                problem: format!("{what} is neither an OCI index nor a manifest"),
            })?,
        };
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The descriptor of a manifest by tag or digest, without its body; `None` if absent.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<Descriptor>> {
        let id = manifest_id(reference);
        let url = self.url(reference, &format!("manifests/{id}")).await;
        let what = format!("manifest {}:{id}", reference.repository());
        let scopes = [Scope::pull(reference.repository())];
        let response = self
            .send(reference.registry(), &scopes, &what, &|http| {
                http.head(&url).header(ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(self.status_error(reference.registry(), &what, response).await);
        }
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let digest = header("docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        let size = header("content-length").and_then(|s| s.parse::<u64>().ok());
        let media = header("content-type").map(|t| t.split(';').next().unwrap_or(t).trim().to_string());
        Ok(match (digest, size, media) {
            (Some(digest), Some(size), Some(media)) => Some(Descriptor::new(&media, digest, size)),
            _ => None,
        })
    }

    /// Uploads a manifest under a tag or its digest; returns its digest.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let id = manifest_id(reference);
        let url = self.url(reference, &format!("manifests/{id}")).await;
        let what = format!("manifest {}:{id}", reference.repository());
        let scopes = [Scope::push(reference.repository())];
        let response = self
            .send(reference.registry(), &scopes, &what, &|http| {
                http.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(reference.registry(), &what, response).await);
        }
        Ok(Digest::of(&bytes))
    }

    /// The size of a blob in a repository, or `None` when the registry does not have it there.
    pub async fn blob_size(&self, reference: &Reference, digest: Digest) -> Result<Option<u64>> {
        let url = self.url(reference, &format!("blobs/{digest}")).await;
        let what = format!("blob {digest}");
        let scopes = [Scope::pull(reference.repository())];
        let response = self
            .send(reference.registry(), &scopes, &what, &|http| http.head(&url))
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            // reqwest's content_length() is the body's size hint, 0 for HEAD: read the header.
            s if s.is_success() => Ok(Some(
                response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0),
            )),
            _ => Err(self.status_error(reference.registry(), &what, response).await),
        }
    }

    /// Starts downloading a blob of a repository, from byte `offset` on (a `Range` request);
    /// a registry that ignores the range sends the whole blob, which [`BlobDownload::start`]
    /// tells.
    pub async fn get_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        offset: u64,
    ) -> Result<BlobDownload> {
        self.get_blob_range(reference, descriptor, offset, None).await
    }

    /// Downloads bytes `start..=end` of a blob (to its end without `end`). A registry that
    /// ignores ranges sends the whole blob: [`BlobDownload::start`] is then 0 and
    /// [`BlobDownload::ranged`] false.
    pub async fn get_blob_range(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        start: u64,
        end: Option<u64>,
    ) -> Result<BlobDownload> {
        let offset = start.min(descriptor.size);
        let end = end.map(|e| e.min(descriptor.size.saturating_sub(1)));
        let (response, ranged) = self.blob_response(reference, descriptor, offset, end).await?;
        let start = if ranged { offset } else { 0 };
        let expected = match (ranged, end) {
            (true, Some(end)) => end + 1 - start,
            _ => descriptor.size - start,
        };
        Ok(BlobDownload {
            response,
            watch: BodyWatch::new(self.pace()),
            what: format!("blob {}", descriptor.digest),
            registry: reference.registry().to_string(),
            digest: descriptor.digest,
            expected,
            received: 0,
            start,
            ranged,
            client: self.clone(),
            reference: reference.clone(),
            descriptor: descriptor.clone(),
            end,
            skip: 0,
            resumes: Resumes::new(self.policy()),
            stop: None,
        })
    }

    /// Asks for bytes `offset..=end` of a blob (to its end without `end`); whether the answer
    /// is that range (206, starting where asked) or the whole blob.
    async fn blob_response(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        offset: u64,
        end: Option<u64>,
    ) -> Result<(reqwest::Response, bool)> {
        let url = self.url(reference, &format!("blobs/{}", descriptor.digest)).await;
        let what = format!("blob {}", descriptor.digest);
        let scopes = [Scope::pull(reference.repository())];
        let range = match end {
            Some(end) => format!("bytes={offset}-{end}"),
            None => format!("bytes={offset}-"),
        };
        let ask = offset > 0 || end.is_some();
        let response = self
            .send(reference.registry(), &scopes, &what, &|http| {
                let request = http.get(&url);
                if ask {
                    request.header(RANGE, &range)
                } else {
                    request
                }
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(reference.registry(), &what, response).await);
        }
        let ranged = response.status() == StatusCode::PARTIAL_CONTENT;
        if ranged {
            let served = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if served != Some(offset) {
                return Err(RegistryError::Protocol {
                    registry: reference.registry().to_string(),
                    problem: format!(
                        "{what}: asked for bytes from {offset}, got a range starting at {served:?}"
                    ),
                });
            }
        }
        let expected = match (ranged, end) {
            (true, Some(end)) => end + 1 - offset,
            (true, None) => descriptor.size - offset,
            (false, _) => descriptor.size,
        };
        if response.content_length().is_some_and(|n| n > expected) {
            return Err(RegistryError::TooLarge {
                registry: reference.registry().to_string(),
                what,
                limit: descriptor.size,
            });
        }
        Ok((response, ranged))
    }

    /// The tags of a repository.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>> {
        let url = self.url(reference, "tags/list").await;
        let what = format!("tags of {}", reference.repository());
        let scopes = [Scope::pull(reference.repository())];
        let response = self
            .send(reference.registry(), &scopes, &what, &|http| http.get(&url))
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(reference.registry(), &what, response).await);
        }
        #[derive(serde::Deserialize)]
        struct Tags {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let bytes = self
            .read_capped(response, MANIFEST_LIMIT, reference.registry(), &what)
            .await?;
        let tags: Tags = serde_json::from_slice(&bytes).map_err(|_| RegistryError::Protocol {
            registry: reference.registry().to_string(),
            problem: format!("{what} is not a tag list"),
        })?;
        Ok(tags.tags.unwrap_or_default())
    }
}

fn manifest_id(reference: &Reference) -> String {
    match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_string(),
        (None, None) => ukpm_types::DEFAULT_TAG.to_string(),
    }
}

fn is_manifest_type(t: &str) -> bool {
    matches!(
        t,
        media_type::IMAGE_INDEX
            | media_type::IMAGE_MANIFEST
            | media_type::DOCKER_MANIFEST_LIST
            | media_type::DOCKER_MANIFEST
    )
}

/// The media type a document says it is, or, failing that, what its shape says.
fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    match shape {
        Shape {
            media_type: Some(t), ..
        } if is_manifest_type(&t) => Some(t),
        Shape {
            manifests: Some(_), ..
        } => Some(media_type::IMAGE_INDEX.to_string()),
        Shape { config: Some(_), .. } => Some(media_type::IMAGE_MANIFEST.to_string()),
        _ => None,
    }
}
