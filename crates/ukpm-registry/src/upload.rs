//! Blob uploads: existence checks, cross-repository mounts, monolithic PUTs and chunked
//! uploads that resume from where the registry's session stands.

use std::time::SystemTime;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use ukpm_types::{Descriptor, Digest, Reference};

use crate::auth::Scope;
use crate::client::Client;
use crate::error::{RegistryError, Result};
use crate::retry;

/// What happened to a blob on push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The registry already had it.
    Exists,
    /// It was mounted from another repository of the same registry.
    Mounted,
    /// Its bytes were uploaded.
    Uploaded,
}
impl Client {
    /// Makes a blob available in `reference`'s repository: nothing if it is there, a
    /// cross-repository mount from `mount_from` when the registry allows, else an upload of the
    /// bytes `body(offset, len)` produces (called again for each attempt).
    ///
    /// Blobs under [`ClientConfig::chunk_threshold`](crate::ClientConfig::chunk_threshold) go up in one PUT; larger ones, and any the
    /// registry refuses whole (413), in PATCH chunks, resuming after a failed chunk from the
    /// offset the upload session reports.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        mount_from: Option<&str>,
        body: &(dyn Fn(u64, u64) -> reqwest::Body + Send + Sync),
    ) -> Result<PushOutcome> {
        match self.blob_size(reference, descriptor.digest).await {
            Ok(Some(size)) if size == descriptor.size => return Ok(PushOutcome::Exists),
            Ok(_) => {}
            // The check is only a shortcut, so a 5xx sends the bytes instead: docker-registry
            // rewrites a repository's blob link in place, and answers 500 (`invalid checksum
            // digest format`) to a HEAD that races another client's upload of the same blob.
            Err(RegistryError::Status { status, .. }) if status >= 500 => {
                tracing::debug!(digest = %descriptor.digest, status, "the blob check failed; uploading");
            }
            Err(e) => return Err(e),
        }
        let repo = reference.repository();
        let mut scopes = vec![Scope::push(repo)];
        let mount = mount_from.filter(|from| *from != repo);
        if let Some(from) = mount {
            scopes.push(Scope::pull(from));
        }
        let session = self.start_upload(reference, descriptor, mount, &scopes).await?;
        let Some((location, chunk_min)) = session else {
            return Ok(PushOutcome::Mounted);
        };
        if descriptor.size < self.config().chunk_threshold {
            return self
                .upload_whole(reference, descriptor, &scopes, location, body)
                .await;
        }
        self.upload_chunks(reference, descriptor, &scopes, location, chunk_min, body)
            .await
    }

    /// Sends a blob in one PUT. A PUT cut mid-body may end its session (docker-registry answers
    /// the next request on it with 404 `BLOB_UPLOAD_INVALID`), so each retry opens a fresh
    /// session first; the client's one retry policy decides how often and how long. A registry
    /// that refuses the whole blob (413) gets it in chunks instead.
    async fn upload_whole(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        scopes: &[Scope],
        mut location: String,
        body: &(dyn Fn(u64, u64) -> reqwest::Body + Send + Sync),
    ) -> Result<PushOutcome> {
        let registry = reference.registry();
        let what = format!("blob {}", descriptor.digest);
        let size = descriptor.size.to_string();
        let mut setbacks = 0u32;
        loop {
            let put = with_digest(&location, descriptor.digest);
            let sent = self
                .send_once(registry, scopes, &what, &|http| {
                    http.put(&put)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_LENGTH, &size)
                        .body(body(0, descriptor.size))
                })
                .await;
            let (failure, retry_after) = match sent {
                Ok(response) if response.status().is_success() => return Ok(PushOutcome::Uploaded),
                Ok(response) if response.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    tracing::debug!(%what, "the registry refused a whole upload; sending chunks");
                    let Some((location, chunk_min)) =
                        self.start_upload(reference, descriptor, None, scopes).await?
                    else {
                        return Ok(PushOutcome::Mounted);
                    };
                    return self
                        .upload_chunks(reference, descriptor, scopes, location, chunk_min, body)
                        .await;
                }
                // 404: the session is gone (a cut PUT ends it); 429 and 5xx: transient.
                Ok(response) if matches!(response.status().as_u16(), 404 | 429 | 500..=599) => {
                    let retry_after = retry::retry_after(response.headers(), SystemTime::now());
                    (self.status_error(registry, &what, response).await, retry_after)
                }
                Ok(response) => return Err(self.status_error(registry, &what, response).await),
                Err(error) if error.is_network() => (error, None),
                Err(other) => return Err(other),
            };
            let policy = self.policy();
            if setbacks >= policy.retries {
                return Err(failure);
            }
            tracing::debug!(%what, error = %failure, "the upload failed; starting a new session");
            tokio::time::sleep(policy.delay(setbacks, retry_after)).await;
            setbacks += 1;
            match self.start_upload(reference, descriptor, None, scopes).await? {
                Some((next, _)) => location = next,
                None => return Ok(PushOutcome::Mounted),
            }
        }
    }

    /// Opens an upload session (or mounts); `None` when the mount succeeded. Returns the
    /// session's location and the registry's minimum chunk length.
    async fn start_upload(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        mount_from: Option<&str>,
        scopes: &[Scope],
    ) -> Result<Option<(String, u64)>> {
        let registry = reference.registry();
        let what = format!("blob {}", descriptor.digest);
        let mut start = self.url(reference, "blobs/uploads/").await;
        if let Some(from) = mount_from {
            start = format!("{start}?mount={}&from={from}", descriptor.digest);
        }
        let response = self
            .send(registry, scopes, &what, &|http| {
                http.post(&start).header(CONTENT_LENGTH, "0")
            })
            .await?;
        match response.status() {
            StatusCode::CREATED if mount_from.is_some() => Ok(None),
            StatusCode::ACCEPTED | StatusCode::CREATED => {
                let chunk_min = response
                    .headers()
                    .get("oci-chunk-min-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
                let location = location(&response, registry)?;
                Ok(Some((location, chunk_min)))
            }
            _ => Err(self.status_error(registry, &what, response).await),
        }
    }

    /// Sends a blob in PATCH chunks; after a failed chunk (an error status or a connection lost
    /// mid-body), asks the session where it stands and sends only the rest, or, when the
    /// registry ended the session, starts over in a new one. The client's retry budget counts
    /// the setbacks.
    async fn upload_chunks(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        scopes: &[Scope],
        mut location: String,
        chunk_min: u64,
        body: &(dyn Fn(u64, u64) -> reqwest::Body + Send + Sync),
    ) -> Result<PushOutcome> {
        let registry = reference.registry();
        let what = format!("blob {}", descriptor.digest);
        let chunk = self.config().chunk_size.max(chunk_min).max(1);
        let mut offset = 0u64;
        let mut setbacks = 0u32;
        while offset < descriptor.size {
            let len = chunk.min(descriptor.size - offset);
            let range = format!("{offset}-{}", offset + len - 1);
            let length = len.to_string();
            let patch = location.clone();
            let sent = self
                .send_once(registry, scopes, &what, &|http| {
                    http.patch(&patch)
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, &range)
                        .header(CONTENT_LENGTH, &length)
                        .body(body(offset, len))
                })
                .await;
            let retry_after = match sent {
                Ok(response) if response.status() == StatusCode::ACCEPTED => {
                    location = self::location(&response, registry).unwrap_or(location);
                    offset += len;
                    continue;
                }
                Ok(response) if !matches!(response.status().as_u16(), 416 | 429 | 500..=599) => {
                    return Err(self.status_error(registry, &what, response).await);
                }
                Ok(response) => retry::retry_after(response.headers(), SystemTime::now()),
                Err(error) if error.is_network() => None,
                Err(other) => return Err(other),
            };
            // The client's one retry policy decides how often and how long; only the recovery
            // differs: ask the session where it stands instead of resending the chunk blindly.
            let policy = self.policy();
            if setbacks >= policy.retries {
                return Err(RegistryError::Protocol {
                    registry: registry.to_string(),
                    problem: format!("{what}: the upload kept failing at byte {offset}"),
                });
            }
            tokio::time::sleep(policy.delay(setbacks, retry_after)).await;
            setbacks += 1;
            match self.upload_status(registry, scopes, &what, &location).await {
                Ok((resume, next)) => {
                    tracing::debug!(%what, offset, resume, "resuming a chunked upload");
                    offset = resume;
                    location = next;
                }
                // The session is gone: docker-registry ends one whose PATCH broke off (the
                // bytes that did arrive no longer match the offset it recorded). Start over in
                // a new one.
                Err(RegistryError::Status {
                    status: 400 | 404 | 416,
                    ..
                }) => match self.start_upload(reference, descriptor, None, scopes).await? {
                    Some((next, _)) => {
                        tracing::debug!(%what, offset, "the upload session is gone; starting a new one");
                        offset = 0;
                        location = next;
                    }
                    None => return Ok(PushOutcome::Mounted),
                },
                Err(other) => return Err(other),
            }
        }
        let put = with_digest(&location, descriptor.digest);
        let response = self
            .send(registry, scopes, &what, &|http| {
                http.put(&put).header(CONTENT_LENGTH, "0")
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(registry, &what, response).await);
        }
        Ok(PushOutcome::Uploaded)
    }

    /// Where an upload session stands: the next offset to send and its location.
    async fn upload_status(
        &self,
        registry: &str,
        scopes: &[Scope],
        what: &str,
        location: &str,
    ) -> Result<(u64, String)> {
        let response = self
            .send(registry, scopes, what, &|http| http.get(location))
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(registry, what, response).await);
        }
        let next = response
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start_matches("bytes=").split('-').nth(1))
            .and_then(|end| end.parse::<u64>().ok())
            .map_or(0, |end| end + 1);
        let location = self::location(&response, registry).unwrap_or_else(|_| location.to_string());
        Ok((next, location))
    }
}

/// The upload location with `digest=` appended, as the final PUT needs it.
fn with_digest(location: &str, digest: Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}
/// The upload location, made absolute against the URL that answered (RFC 9110 §10.2.2): a
/// relative `Location` from storage the session moved to stays on that storage, and never turns
/// into a URL on the registry, which would get the registry's credentials.
fn location(response: &reqwest::Response, registry: &str) -> Result<String> {
    let value = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            registry: registry.to_string(),
            problem: "an upload was started without a Location header".into(),
        })?;
    response
        .url()
        .join(value)
        .map(|u| u.to_string())
        .map_err(|_| RegistryError::Protocol {
            registry: registry.to_string(),
            problem: format!("the upload Location `{value}` is not a URL"),
        })
}
