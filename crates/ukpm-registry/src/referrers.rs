//! OCI 1.1 referrers: the manifests (signatures, SBOMs, attestations) whose `subject` names a
//! given manifest, through the referrers API (`GET /v2/<name>/referrers/<digest>`), and the name
//! of the tag that registries without the API use instead (the "tag schema" fallback).

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, LINK};
use ukpm_types::{Descriptor, Digest, Index, Reference, media_type};

use crate::auth::Scope;
use crate::client::Client;
use crate::error::{RegistryError, Result};
use crate::ops::MANIFEST_LIMIT;

/// The most pages of a referrers list followed through `Link`: a registry that links pages in
/// a circle must not keep a client asking forever.
const MAX_PAGES: usize = 1000;

/// The tag a registry without the referrers API keeps the referrers of `subject` under
/// (`sha256-<hex>`), as the OCI distribution spec's fallback names it.
pub fn referrers_tag(subject: Digest) -> String {
    subject.to_string().replace(':', "-")
}

impl Client {
    /// The referrers of `subject` in `reference`'s repository, every page of them; `None` when
    /// the registry has no referrers API (it answers 404, as docker-registry 2.8 does: the
    /// caller then reads the [`referrers_tag`] instead).
    pub async fn list_referrers(
        &self,
        reference: &Reference,
        subject: Digest,
    ) -> Result<Option<Vec<Descriptor>>> {
        let registry = reference.registry();
        let what = format!("referrers of {}@{subject}", reference.repository());
        let scopes = [Scope::pull(reference.repository())];
        let mut url = self.url(reference, &format!("referrers/{subject}")).await;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = url.clone();
            let response = self
                .send(registry, &scopes, &what, &|http| {
                    http.get(&page).header(ACCEPT, media_type::IMAGE_INDEX)
                })
                .await?;
            if response.status() == StatusCode::NOT_FOUND && out.is_empty() {
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(self.status_error(registry, &what, response).await);
            }
            let next = next_link(&response);
            let bytes = self
                .read_capped(response, MANIFEST_LIMIT, registry, &what)
                .await?;
            let index: Index = serde_json::from_slice(&bytes).map_err(|_| RegistryError::Protocol {
                registry: registry.to_string(),
                problem: format!("{what} is not an image index"),
            })?;
            out.extend(index.manifests);
            match next {
                Some(next) => url = next,
                None => return Ok(Some(out)),
            }
        }
        Err(RegistryError::Protocol {
            registry: registry.to_string(),
            problem: format!("{what}: more than {MAX_PAGES} pages"),
        })
    }
}

/// The next page a `Link: <url>; rel="next"` header names, made absolute against the URL that
/// answered.
fn next_link(response: &reqwest::Response) -> Option<String> {
    let header = response.headers().get(LINK)?.to_str().ok()?;
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| response.url().join(target).ok().map(|u| u.to_string()))?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_tag_is_the_digest_with_a_dash() {
        let digest = Digest::of(b"x");
        let tag = referrers_tag(digest);
        assert!(tag.starts_with("sha256-"), "{tag}");
        assert_eq!(tag.len(), "sha256-".len() + 64);
    }
}
