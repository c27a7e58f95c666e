//! Deleting a manifest (`DELETE /v2/<name>/manifests/<digest>`), for `ukpm delete`.

use reqwest::StatusCode;
use ukpm_types::{Digest, Reference};

use crate::auth::Scope;
use crate::client::Client;
use crate::error::{ErrorCode, RegistryError, Result};

/// What a registry said to a manifest deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeleteOutcome {
    /// The manifest is gone (202 Accepted, or any other success).
    Deleted,
    /// The registry does not allow deleting (405, or the `UNSUPPORTED` code): docker-registry
    /// without `storage.delete.enabled: true`, most public registries. Told apart so callers
    /// can say what to change rather than show a bare status.
    Refused,
}

impl Client {
    /// Deletes the manifest `digest` of `reference`'s repository. The distribution spec
    /// deletes by digest only (a tag is removed with the manifest it points at), so callers
    /// resolve a tag first. A missing manifest is [`RegistryError::Status`] with 404.
    ///
    /// Token registries are asked for the `delete` action, which Distribution and Harbor
    /// require for `DELETE` (`pull,push` is not enough).
    pub async fn delete_manifest(&self, reference: &Reference, digest: Digest) -> Result<DeleteOutcome> {
        let url = self.url(reference, &format!("manifests/{digest}")).await;
        let what = format!("manifest {}@{digest}", reference.repository());
        let scopes = [Scope::delete(reference.repository())];
        let response = self
            .send(reference.registry(), &scopes, &what, &|http| http.delete(&url))
            .await?;
        if response.status().is_success() {
            return Ok(DeleteOutcome::Deleted);
        }
        let status = response.status();
        let err = self.status_error(reference.registry(), &what, response).await;
        let unsupported =
            matches!(&err, RegistryError::Status { codes, .. } if codes.contains(&ErrorCode::Unsupported));
        if status == StatusCode::METHOD_NOT_ALLOWED || unsupported {
            return Ok(DeleteOutcome::Refused);
        }
        Err(err)
    }
}
