//! `_catalog` and `tags/list` page by page against a real `docker-registry` (which honours `n=`
//! and answers with `Link: <...>; rel="next"`), and a registry that refuses the catalog.

use std::sync::Arc;

use bytes::Bytes;
use ukpm_registry::{Anonymous, CatalogRefusal, Client, ClientConfig, Credential, CredentialSource, Secret};
use ukpm_test::registry::Registry;
use ukpm_types::{Descriptor, Digest, Reference, media_type};

fn anonymous() -> Client {
    Client::new(ClientConfig::default(), Arc::new(Anonymous)).expect("a client")
}

/// Pushes a one-config image (no layers) under `repo:tag`.
async fn push(client: &Client, host: &str, repo: &str, tag: &str) {
    let reference = Reference::new(host, repo, tag).unwrap();
    let config = br#"{"architecture":"x86_64","os":"qemu"}"#.to_vec();
    let descriptor = Descriptor::new(media_type::IMAGE_CONFIG, Digest::of(&config), config.len() as u64);
    let body = Bytes::from(config);
    client
        .push_blob(&reference, &descriptor, None, &move |offset, len| {
            ukpm_registry::Body::from(body.slice(offset as usize..(offset + len) as usize))
        })
        .await
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[]}}"#,
        media_type::IMAGE_MANIFEST,
        media_type::IMAGE_CONFIG,
        descriptor.digest,
        descriptor.size
    );
    client
        .put_manifest(&reference, media_type::IMAGE_MANIFEST, Bytes::from(manifest))
        .await
        .unwrap();
}

#[tokio::test]
async fn catalog_and_tags_are_read_page_by_page() {
    let registry = Registry::plain();
    let host = registry.host();
    let client = anonymous();
    for repo in ["a/one", "b/two", "c/three", "d/four", "e/five"] {
        push(&client, &host, repo, "v1").await;
    }
    for tag in ["v2", "v3", "latest"] {
        push(&client, &host, "a/one", tag).await;
    }

    let mut repos = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client.catalog_page(&host, 2, next.as_deref()).await.unwrap();
        assert!(page.items.len() <= 2, "n=2 was not honoured: {page:?}");
        pages += 1;
        repos.extend(page.items);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    assert!(pages >= 3, "{pages} pages");
    assert_eq!(repos, ["a/one", "b/two", "c/three", "d/four", "e/five"]);

    let reference = Reference::new(&host, "a/one", "latest").unwrap();
    let mut tags = Vec::new();
    let mut next: Option<String> = None;
    loop {
        // Distribution 2.8 pages the catalog but sends every tag at once; both are followed.
        let page = client.tags_page(&reference, 2, next.as_deref()).await.unwrap();
        tags.extend(page.items);
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    tags.sort();
    assert_eq!(tags, ["latest", "v1", "v2", "v3"]);
    assert!(
        registry.requests().iter().any(|r| r.contains("last=")),
        "no page asked for `last=`: {:?}",
        registry.requests()
    );
}

struct Fixed(String, Credential);

impl CredentialSource for Fixed {
    fn credential(&self, registry: &str) -> Option<Credential> {
        (registry == self.0).then(|| self.1.clone())
    }
    fn describe(&self, registry: &str) -> String {
        format!("the test's credentials for {registry}")
    }
}

#[tokio::test]
async fn a_token_registry_without_catalog_access_is_a_typed_refusal() {
    let registry = Registry::token("lister", "pw-123");
    let host = registry.host();
    let credentials = Arc::new(Fixed(
        host.clone(),
        Credential::Basic {
            username: "lister".into(),
            password: Secret::new("pw-123"),
        },
    ));
    let client = Client::new(ClientConfig::default(), credentials).unwrap();
    push(&client, &host, "only/repo", "v1").await;
    let err = client.catalog_page(&host, 2, None).await.unwrap_err();
    assert_eq!(
        CatalogRefusal::of(&err),
        Some(CatalogRefusal::Unauthorized),
        "{err}"
    );
    // The repository itself still lists.
    let reference = Reference::new(&host, "only/repo", "v1").unwrap();
    let page = client.tags_page(&reference, 10, None).await.unwrap();
    assert_eq!(page.items, ["v1"]);
}

#[path = "fake/mod.rs"]
mod fake;

/// Registries that refuse the catalog as Docker Hub (`UNSUPPORTED`/404) and GHCR-like
/// deployments (`DENIED`/403) do: docker-registry cannot be told to, so the fake does.
#[tokio::test]
async fn catalog_refusals_are_typed() {
    for (status, code, expected) in [
        (404, "UNSUPPORTED", CatalogRefusal::Unsupported),
        (403, "DENIED", CatalogRefusal::Denied),
    ] {
        let server = fake::Fake::start(move |request| {
            if request.path() == "/v2/_catalog" {
                fake::Reply::status(status)
                    .body(format!(r#"{{"errors":[{{"code":"{code}","message":"no"}}]}}"#))
            } else {
                fake::Reply::status(404)
            }
        })
        .await;
        let err = fake::anonymous(0)
            .catalog_page(&server.host(), 2, None)
            .await
            .unwrap_err();
        assert_eq!(CatalogRefusal::of(&err), Some(expected), "{err}");
    }
}

/// A `Link` that names the page itself ends the listing rather than looping; one to another
/// origin is dropped (credentials never leave the registry).
#[tokio::test]
async fn links_that_loop_or_leave_end_the_listing() {
    let server = fake::Fake::start(|request| {
        if request.path() == "/v2/_catalog" {
            let link = if request.query("last").is_empty() {
                r#"</v2/_catalog?last=a&n=2>; rel="next""#
            } else {
                r#"</v2/_catalog?last=a&n=2>; rel="next", <http://elsewhere.invalid/x>; rel="prev""#
            };
            fake::Reply::ok(r#"{"repositories":["a"]}"#).header("Link", link)
        } else if request.path() == "/v2/r/tags/list" {
            fake::Reply::ok(r#"{"name":"r","tags":["x"]}"#).header(
                "Link",
                r#"<http://elsewhere.invalid/v2/r/tags/list?last=x>; rel="next""#,
            )
        } else {
            fake::Reply::status(404)
        }
    })
    .await;
    let client = fake::anonymous(0);
    let first = client.catalog_page(&server.host(), 2, None).await.unwrap();
    let next = first.next.expect("a second page");
    let second = client.catalog_page(&server.host(), 2, Some(&next)).await.unwrap();
    assert_eq!(second.items, ["a"]);
    assert_eq!(second.next, None, "a page that links to itself loops");
    let reference = Reference::new(&server.host(), "r", "latest").unwrap();
    let tags = client.tags_page(&reference, 2, None).await.unwrap();
    assert_eq!(tags.items, ["x"]);
    assert_eq!(tags.next, None, "an off-origin link was kept");
}
