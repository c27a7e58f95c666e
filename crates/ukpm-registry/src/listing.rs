//! Listings: the registry's repositories (`GET /v2/_catalog`) and a repository's tags
//! (`GET /v2/<name>/tags/list`), one page at a time so a registry of a million repositories
//! never sits in memory whole. Pages follow the `Link: <...>; rel="next"` header the
//! distribution spec defines, asking for `n=` entries each.

use ukpm_types::Reference;

use crate::auth::Scope;
use crate::client::Client;
use crate::error::{ErrorCode, RegistryError, Result};
use crate::ops::MANIFEST_LIMIT;

/// One page of a listing and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The names on this page, as the registry sent them.
    pub items: Vec<String>,
    /// The URL of the next page (from `Link`), `None` on the last page.
    pub next: Option<String>,
}

/// Why a registry lists no repositories: it has no `_catalog` for us, which is common
/// (Docker Hub, GHCR and most token registries refuse it), so callers say so and go on with the
/// repositories they were named.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatalogRefusal {
    /// 401: not without credentials (or not with these).
    Unauthorized,
    /// 403 or `DENIED`: not for these credentials.
    Denied,
    /// 404 or `UNSUPPORTED`: the registry has no catalog endpoint.
    Unsupported,
}

impl CatalogRefusal {
    /// A few words for "the rest is missing because ...".
    pub fn describe(&self) -> &'static str {
        match self {
            CatalogRefusal::Unauthorized => "it asks for credentials to list its repositories",
            CatalogRefusal::Denied => "it denies listing its repositories",
            CatalogRefusal::Unsupported => "it does not offer a repository catalog",
        }
    }

    /// The refusal an error stands for, if it is one.
    pub fn of(error: &RegistryError) -> Option<CatalogRefusal> {
        match error {
            RegistryError::Unauthorized { .. } => Some(CatalogRefusal::Unauthorized),
            RegistryError::Status { status, codes, .. } => {
                if codes.contains(&ErrorCode::Unsupported) || *status == 404 || *status == 405 {
                    Some(CatalogRefusal::Unsupported)
                } else if codes.contains(&ErrorCode::Denied) || *status == 403 {
                    Some(CatalogRefusal::Denied)
                } else if codes.contains(&ErrorCode::Unauthorized) || *status == 401 {
                    Some(CatalogRefusal::Unauthorized)
                } else {
                    None
                }
            }
            _ => None,
        }
    }
}

impl Client {
    /// One page of the registry's repositories: the first with `next = None`, the following
    /// ones with the previous page's [`Page::next`]. `page_size` is sent as `n=`.
    ///
    /// A registry that refuses the catalog fails with an error [`CatalogRefusal::of`]
    /// recognises.
    pub async fn catalog_page(&self, registry: &str, page_size: usize, next: Option<&str>) -> Result<Page> {
        let base = self.base_url(registry).await;
        let url = match next {
            Some(next) => resolve(&base, next).ok_or_else(|| off_origin(registry, next))?,
            None => format!("{base}_catalog?n={page_size}"),
        };
        self.page(
            registry,
            &[],
            "the repository catalog",
            &url,
            "repositories",
            &base,
        )
        .await
    }

    /// One page of a repository's tags (the repository of `reference`; its tag is ignored),
    /// as [`Client::catalog_page`] pages.
    pub async fn tags_page(
        &self,
        reference: &Reference,
        page_size: usize,
        next: Option<&str>,
    ) -> Result<Page> {
        let base = self.base_url(reference.registry()).await;
        let url = match next {
            Some(next) => resolve(&base, next).ok_or_else(|| off_origin(reference.registry(), next))?,
            None => format!("{base}{}/tags/list?n={page_size}", reference.repository()),
        };
        let what = format!("tags of {}", reference.repository());
        let scopes = [Scope::pull(reference.repository())];
        self.page(reference.registry(), &scopes, &what, &url, "tags", &base)
            .await
    }

    async fn page(
        &self,
        registry: &str,
        scopes: &[Scope],
        what: &str,
        url: &str,
        field: &'static str,
        base: &str,
    ) -> Result<Page> {
        let response = self.send(registry, scopes, what, &|http| http.get(url)).await?;
        if !response.status().is_success() {
            return Err(self.status_error(registry, what, response).await);
        }
        let next = response
            .headers()
            .get_all("link")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link)
            .and_then(|link| resolve(base, &link));
        let bytes = self.read_capped(response, MANIFEST_LIMIT, registry, what).await?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| RegistryError::Protocol {
                registry: registry.to_string(),
                problem: format!("{what} is not a JSON listing"),
            })?;
        let items = match value.get(field) {
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                return Err(RegistryError::Protocol {
                    registry: registry.to_string(),
                    problem: format!("{what}: `{field}` is not a list"),
                });
            }
        };
        // A registry that repeats its own page would loop forever.
        let next = next.filter(|n| n != url);
        Ok(Page { items, next })
    }
}

/// A page URL that is not on the registry's own origin: never asked (credentials stay home).
fn off_origin(registry: &str, next: &str) -> RegistryError {
    RegistryError::Protocol {
        registry: registry.to_string(),
        problem: format!("the next page {next} is not on the registry"),
    }
}

/// The target of a `Link` header value's `rel="next"` entry.
fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

/// A `Link` target made absolute against the registry's `/v2/` base: registries send
/// `/v2/_catalog?last=x&n=2`, a path on the same origin. An absolute URL is taken as given only
/// if it stays on that origin (credentials never leave it).
fn resolve(base: &str, link: &str) -> Option<String> {
    let base_url = url::Url::parse(base).ok()?;
    let url = base_url.join(link).ok()?;
    (url.origin() == base_url.origin()).then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, codes: Vec<ErrorCode>) -> RegistryError {
        RegistryError::Status {
            registry: "r".into(),
            what: "the repository catalog".into(),
            status,
            codes,
            message: None,
        }
    }

    /// docker-registry cannot be told to refuse `_catalog`; other registries answer so.
    #[test]
    fn refusals_are_recognised() {
        assert_eq!(
            CatalogRefusal::of(&status(404, vec![])),
            Some(CatalogRefusal::Unsupported)
        );
        assert_eq!(
            CatalogRefusal::of(&status(400, vec![ErrorCode::Unsupported])),
            Some(CatalogRefusal::Unsupported)
        );
        assert_eq!(
            CatalogRefusal::of(&status(403, vec![])),
            Some(CatalogRefusal::Denied)
        );
        assert_eq!(
            CatalogRefusal::of(&status(401, vec![])),
            Some(CatalogRefusal::Unauthorized)
        );
        assert_eq!(CatalogRefusal::of(&status(500, vec![])), None);
    }

    #[test]
    fn next_links_are_found() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            resolve("http://127.0.0.1:5000/v2/", "/v2/_catalog?last=b&n=2").as_deref(),
            Some("http://127.0.0.1:5000/v2/_catalog?last=b&n=2")
        );
        // Another origin is not followed.
        assert_eq!(
            resolve("http://127.0.0.1:5000/v2/", "http://evil.example/v2/_catalog"),
            None
        );
    }
}
