//! The client against real registries: `docker-registry` (Distribution 2.8) plain, with Basic
//! auth, with bearer tokens and with TLS, and `skopeo` as the interop oracle.
//!
//! Each test builds a tiny image by hand (config, one layer, a manifest, an index), pushes it with
//! the client, reads it back and compares exact bytes and digests.

// Until ukpm-test exports it; some harness helpers are for other crates' tests.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ukpm_registry::{
    Anonymous, Client, ClientConfig, Credential, CredentialSource, PushOutcome, RegistryError, Secret,
};
use ukpm_test::registry::{Registry, TOKEN_SERVICE};
use ukpm_test::require_program as require;
use ukpm_types::{Descriptor, Digest, Reference, media_type};

const USER: &str = "tester";
const PASSWORD: &str = "s3cret-Pa55word";

/// Credentials for one registry only, as a docker `config.json` entry would give.
struct Fixed {
    registry: String,
    credential: Credential,
}

impl CredentialSource for Fixed {
    fn credential(&self, registry: &str) -> Option<Credential> {
        (registry == self.registry).then(|| self.credential.clone())
    }

    fn describe(&self, registry: &str) -> String {
        format!("the test's credentials for {registry}")
    }
}

fn basic_credentials(registry: &str, password: &str) -> Arc<dyn CredentialSource> {
    Arc::new(Fixed {
        registry: registry.to_string(),
        credential: Credential::Basic {
            username: USER.to_string(),
            password: Secret::new(password),
        },
    })
}

fn client(credentials: Arc<dyn CredentialSource>) -> Client {
    Client::new(ClientConfig::default(), credentials).expect("a client")
}

fn anonymous() -> Client {
    client(Arc::new(Anonymous))
}

fn reference(registry: &str, repository: &str, tag: &str) -> Reference {
    Reference::new(registry, repository, tag).expect("a valid reference")
}

fn by_digest(registry: &str, repository: &str, digest: Digest) -> Reference {
    Reference::parse_with_registry(&format!("{registry}/{repository}@{digest}"), registry)
        .expect("a valid digest reference")
}

/// A tiny image made by hand: a config, one layer of pseudo-random bytes (large enough to
/// arrive in several chunks) and a manifest pointing at both.
struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl Image {
    fn new(seed: &str) -> Image {
        let layer = noise(seed, 300 << 10);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "qemu",
            "rootfs": {"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]},
            "config": {"Labels": {"seed": seed}},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::IMAGE_MANIFEST,
            "config": descriptor_json(&Descriptor::for_bytes(media_type::IMAGE_CONFIG, &config)),
            "layers": [descriptor_json(&Descriptor::for_bytes(media_type::LAYER_TAR, &layer))],
        }))
        .unwrap();
        Image {
            config,
            layer,
            manifest,
        }
    }

    fn config_descriptor(&self) -> Descriptor {
        Descriptor::for_bytes(media_type::IMAGE_CONFIG, &self.config)
    }

    fn layer_descriptor(&self) -> Descriptor {
        Descriptor::for_bytes(media_type::LAYER_TAR, &self.layer)
    }

    fn manifest_descriptor(&self) -> Descriptor {
        Descriptor::for_bytes(media_type::IMAGE_MANIFEST, &self.manifest)
    }
}

fn descriptor_json(descriptor: &Descriptor) -> serde_json::Value {
    serde_json::json!({
        "mediaType": descriptor.media_type,
        "digest": descriptor.digest.to_string(),
        "size": descriptor.size,
    })
}

/// An OCI index over manifests.
fn index_of(images: &[&Image]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|image| {
            let mut entry = descriptor_json(&image.manifest_descriptor());
            entry["platform"] = serde_json::json!({"architecture": "amd64", "os": "qemu"});
            entry
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::IMAGE_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

/// Deterministic bytes that do not compress, so nothing on the way can shrink them.
fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut state = seed.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |s, b| {
        (s ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

async fn push_bytes(
    client: &Client,
    reference: &Reference,
    descriptor: &Descriptor,
    bytes: &[u8],
    mount_from: Option<&str>,
) -> Result<PushOutcome, RegistryError> {
    let bytes = Bytes::copy_from_slice(bytes);
    client
        .push_blob(reference, descriptor, mount_from, &move |offset, len| {
            reqwest::Body::from(bytes.slice(offset as usize..(offset + len) as usize))
        })
        .await
}

/// Pushes the config, the layer and the manifest (under `reference`'s tag); returns the outcome
/// of each blob push.
async fn push_image(client: &Client, reference: &Reference, image: &Image) -> [PushOutcome; 2] {
    let config = push_bytes(client, reference, &image.config_descriptor(), &image.config, None)
        .await
        .unwrap_or_else(|e| panic!("pushing the config: {e}"));
    let layer = push_bytes(client, reference, &image.layer_descriptor(), &image.layer, None)
        .await
        .unwrap_or_else(|e| panic!("pushing the layer: {e}"));
    let digest = client
        .put_manifest(
            reference,
            media_type::IMAGE_MANIFEST,
            Bytes::from(image.manifest.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("pushing the manifest: {e}"));
    assert_eq!(digest, Digest::of(&image.manifest));
    [config, layer]
}

async fn download(
    client: &Client,
    reference: &Reference,
    descriptor: &Descriptor,
) -> Result<Vec<u8>, RegistryError> {
    let mut blob = client.get_blob(reference, descriptor, 0).await?;
    let mut out = Vec::new();
    while let Some(chunk) = blob.chunk().await? {
        out.extend_from_slice(&chunk);
    }
    assert_eq!(blob.received(), out.len() as u64);
    Ok(out)
}

/// Reads the image back by tag and by digest and checks every byte.
async fn assert_pulls(client: &Client, reference: &Reference, image: &Image) {
    let fetched = client
        .get_manifest(reference)
        .await
        .unwrap_or_else(|e| panic!("pulling {reference}: {e}"));
    assert_eq!(fetched.bytes, image.manifest, "manifest bytes");
    assert_eq!(fetched.digest, Digest::of(&image.manifest));
    assert_eq!(fetched.media_type, media_type::IMAGE_MANIFEST);
    assert_eq!(fetched.descriptor(), image.manifest_descriptor());
    let layer = download(client, reference, &image.layer_descriptor())
        .await
        .unwrap_or_else(|e| panic!("pulling the layer: {e}"));
    assert!(layer == image.layer, "layer bytes differ");
    assert_eq!(Digest::of(&layer), image.layer_descriptor().digest);
    let config = download(client, reference, &image.config_descriptor())
        .await
        .unwrap_or_else(|e| panic!("pulling the config: {e}"));
    assert_eq!(config, image.config);
}

#[tokio::test]
async fn plain_http_round_trip_keeps_exact_bytes_and_digests() {
    let registry = Registry::plain();
    let client = anonymous();
    client.ping(&registry.host()).await.expect("ping");
    let v1 = reference(&registry.host(), "ukpm/plain", "v1");
    let image = Image::new("plain");
    assert_eq!(
        push_image(&client, &v1, &image).await,
        [PushOutcome::Uploaded, PushOutcome::Uploaded]
    );
    assert_pulls(&client, &v1, &image).await;

    let head = client.head_manifest(&v1).await.expect("HEAD manifest");
    assert_eq!(head, Some(image.manifest_descriptor()));

    let index = index_of(&[&image]);
    let tagged = reference(&registry.host(), "ukpm/plain", "index");
    let digest = client
        .put_manifest(&tagged, media_type::IMAGE_INDEX, Bytes::from(index.clone()))
        .await
        .expect("push index");
    assert_eq!(digest, Digest::of(&index));
    let fetched = client.get_manifest(&tagged).await.expect("pull index");
    assert_eq!(fetched.bytes, index);
    assert_eq!(fetched.media_type, media_type::IMAGE_INDEX);
    assert_eq!(fetched.digest, digest);

    let mut tags = client.list_tags(&v1).await.expect("list tags");
    tags.sort();
    assert_eq!(tags, ["index", "v1"]);
}

#[tokio::test]
async fn manifest_by_digest_is_fetched_and_verified() {
    let registry = Registry::plain();
    let client = anonymous();
    let image = Image::new("by-digest");
    let digest = Digest::of(&image.manifest);
    // Pushed by digest only: no tag at all.
    let pinned = by_digest(&registry.host(), "ukpm/pinned", digest);
    push_image(&client, &pinned, &image).await;
    let fetched = client.get_manifest(&pinned).await.expect("get by digest");
    assert_eq!(fetched.digest, digest);
    assert_eq!(fetched.bytes, image.manifest);
    assert_eq!(
        client.head_manifest(&pinned).await.expect("HEAD by digest"),
        Some(image.manifest_descriptor())
    );
}

#[tokio::test]
async fn missing_things_are_not_found() {
    let registry = Registry::plain();
    let client = anonymous();
    let image = Image::new("present");
    let present = reference(&registry.host(), "ukpm/present", "v1");
    push_image(&client, &present, &image).await;

    let absent_tag = reference(&registry.host(), "ukpm/present", "nope");
    let err = client.get_manifest(&absent_tag).await.expect_err("no such tag");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(client.head_manifest(&absent_tag).await.expect("HEAD"), None);

    let absent_repo = reference(&registry.host(), "ukpm/absent", "v1");
    let err = client
        .get_manifest(&absent_repo)
        .await
        .expect_err("no such repository");
    assert!(err.is_not_found(), "{err:?}");

    let absent_digest = by_digest(&registry.host(), "ukpm/present", Digest::of(b"not pushed"));
    let err = client
        .get_manifest(&absent_digest)
        .await
        .expect_err("no such digest");
    assert!(err.is_not_found(), "{err:?}");

    let absent_blob = Descriptor::for_bytes(media_type::LAYER_TAR, b"not pushed");
    let err = download(&client, &present, &absent_blob)
        .await
        .expect_err("no such blob");
    assert!(err.is_not_found(), "{err:?}");
    assert_eq!(
        client
            .blob_size(&present, absent_blob.digest)
            .await
            .expect("HEAD blob"),
        None
    );
}

#[tokio::test]
async fn blob_size_is_the_stored_size() {
    let registry = Registry::plain();
    let client = anonymous();
    let image = Image::new("sized");
    let v1 = reference(&registry.host(), "ukpm/sized", "v1");
    push_image(&client, &v1, &image).await;
    assert_eq!(
        client
            .blob_size(&v1, image.layer_descriptor().digest)
            .await
            .expect("HEAD blob"),
        Some(image.layer.len() as u64),
        "blob_size must be the registry's Content-Length for the blob"
    );
}

#[tokio::test]
async fn pushing_a_blob_the_registry_has_is_exists() {
    let registry = Registry::plain();
    let client = anonymous();
    let image = Image::new("again");
    let v1 = reference(&registry.host(), "ukpm/again", "v1");
    push_image(&client, &v1, &image).await;
    let again = push_bytes(&client, &v1, &image.layer_descriptor(), &image.layer, None)
        .await
        .expect("re-push");
    assert_eq!(again, PushOutcome::Exists);
}

#[tokio::test]
async fn basic_auth_with_the_right_password_pushes_and_pulls() {
    let registry = Registry::basic(USER, PASSWORD);
    let client = client(basic_credentials(&registry.host(), PASSWORD));
    client
        .ping(&registry.host())
        .await
        .expect("ping with credentials");
    let v1 = reference(&registry.host(), "ukpm/basic", "v1");
    let image = Image::new("basic");
    push_image(&client, &v1, &image).await;
    assert_pulls(&client, &v1, &image).await;

    let err = anonymous()
        .get_manifest(&v1)
        .await
        .expect_err("anonymous pull of a Basic-auth registry");
    assert!(err.is_unauthorized(), "{err:?}");
    assert_eq!(err.refused_user(), None, "no credentials were sent: {err}");
}

#[tokio::test]
async fn basic_auth_with_a_wrong_password_is_unauthorized_and_never_shows_it() {
    let wrong = "wr0ng-Passw0rd-xyzzy";
    let registry = Registry::basic(USER, PASSWORD);
    let client = client(basic_credentials(&registry.host(), wrong));
    let err = client
        .ping(&registry.host())
        .await
        .expect_err("a wrong password must be refused");
    assert!(err.is_unauthorized(), "{err:?}");
    assert_no_secret(&err, wrong);
    // Said plainly: the credentials of that user were refused (issue 13).
    assert_eq!(err.refused_user(), Some(USER), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("refused the credentials for user {USER}")),
        "{err}"
    );

    let err = client
        .get_manifest(&reference(&registry.host(), "ukpm/basic", "v1"))
        .await
        .expect_err("a wrong password must be refused");
    assert!(err.is_unauthorized(), "{err:?}");
    assert_no_secret(&err, wrong);
}

/// Neither the message nor the debug form nor any source mentions the secret or its Base64.
fn assert_no_secret(err: &RegistryError, secret: &str) {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{secret}"));
    let mut texts = vec![err.to_string(), format!("{err:?}")];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        texts.push(s.to_string());
        source = s.source();
    }
    for text in texts {
        assert!(!text.contains(secret), "the password leaked: {text}");
        assert!(!text.contains(&encoded), "the Basic credential leaked: {text}");
    }
}

#[tokio::test]
async fn bearer_tokens_push_and_pull_and_anonymous_callers_may_only_pull() {
    let registry = Registry::token(USER, PASSWORD);
    let client = client(basic_credentials(&registry.host(), PASSWORD));
    client.ping(&registry.host()).await.expect("ping");
    let v1 = reference(&registry.host(), "ukpm/token", "v1");
    let image = Image::new("token");
    push_image(&client, &v1, &image).await;
    assert_pulls(&client, &v1, &image).await;
    let requests = registry.token_requests();
    assert!(
        requests.iter().any(|r| r.user.as_deref() == Some(USER)
            && r.service.as_deref() == Some(TOKEN_SERVICE)
            && r.requested == ["repository:ukpm/token:pull,push"]
            && r.granted == ["repository:ukpm/token:pull,push"]),
        "no push token was issued to {USER}: {requests:#?}"
    );

    let anonymous = anonymous();
    assert_pulls(&anonymous, &v1, &image).await;
    let other = Image::new("anonymous push");
    let err = push_bytes(&anonymous, &v1, &other.layer_descriptor(), &other.layer, None)
        .await
        .expect_err("anonymous push must be refused");
    assert!(err.is_unauthorized(), "{err:?}");
    let err = anonymous
        .put_manifest(
            &reference(&registry.host(), "ukpm/token", "anonymous"),
            media_type::IMAGE_MANIFEST,
            Bytes::from(image.manifest.clone()),
        )
        .await
        .expect_err("anonymous tag push must be refused");
    assert!(err.is_unauthorized(), "{err:?}");
    let requests = registry.token_requests();
    let anonymous_requests: Vec<_> = requests.iter().filter(|r| r.user.is_none()).collect();
    assert!(
        anonymous_requests
            .iter()
            .any(|r| r.requested == ["repository:ukpm/token:pull,push"]),
        "the anonymous client never asked to push: {requests:#?}"
    );
    for request in anonymous_requests {
        assert!(
            request.granted.iter().all(|s| s.ends_with(":pull")),
            "an anonymous caller got more than pull: {request:?}"
        );
    }
}

#[tokio::test]
async fn bearer_token_with_a_wrong_password_is_unauthorized_and_never_shows_it() {
    let wrong = "not-the-Passw0rd-plugh";
    let registry = Registry::token(USER, PASSWORD);
    let client = client(basic_credentials(&registry.host(), wrong));
    let err = client
        .get_manifest(&reference(&registry.host(), "ukpm/token", "v1"))
        .await
        .expect_err("a wrong password must be refused");
    assert!(err.is_unauthorized(), "{err:?}");
    assert_no_secret(&err, wrong);
    assert_eq!(err.refused_user(), Some(USER), "{err:?}");
    let requests = registry.token_requests();
    assert!(
        requests
            .iter()
            .any(|r| r.refused && r.user.as_deref() == Some(USER)),
        "the token server never saw the wrong password: {requests:#?}"
    );
}

#[tokio::test]
async fn identity_token_is_exchanged_for_bearer_tokens() {
    let registry = Registry::token(USER, PASSWORD);
    let credentials = Arc::new(Fixed {
        registry: registry.host(),
        credential: Credential::IdentityToken(Secret::new(registry.identity_token())),
    });
    let client = client(credentials);
    let v1 = reference(&registry.host(), "ukpm/identity", "v1");
    let image = Image::new("identity");
    push_image(&client, &v1, &image).await;
    assert_pulls(&client, &v1, &image).await;
    let requests = registry.token_requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.grant == "refresh_token" && !r.refused),
        "tokens must come from the refresh-token grant: {requests:#?}"
    );
}

#[tokio::test]
async fn cross_repository_mount_asks_for_both_repositories() {
    let registry = Registry::token(USER, PASSWORD);
    let client = client(basic_credentials(&registry.host(), PASSWORD));
    let source = reference(&registry.host(), "ukpm/source", "v1");
    let target = reference(&registry.host(), "ukpm/target", "v1");
    let image = Image::new("mount");
    push_image(&client, &source, &image).await;

    let layer = image.layer_descriptor();
    let outcome = push_bytes(&client, &target, &layer, &image.layer, Some("ukpm/source"))
        .await
        .expect("mount");
    assert_eq!(outcome, PushOutcome::Mounted);
    let requests = registry.token_requests();
    assert!(
        requests.iter().any(|r| {
            r.requested.len() == 2
                && r.requested
                    .contains(&"repository:ukpm/target:pull,push".to_string())
                && r.requested.contains(&"repository:ukpm/source:pull".to_string())
                && r.granted
                    .contains(&"repository:ukpm/target:pull,push".to_string())
                && r.granted.contains(&"repository:ukpm/source:pull".to_string())
        }),
        "no token was asked for both repositories: {requests:#?}"
    );
    let mounted = download(&client, &target, &layer)
        .await
        .expect("pull the mounted blob");
    assert!(mounted == image.layer, "the mounted layer differs");
}

/// `127.1` is 127.0.0.1 to every URL parser (the WHATWG IPv4 shorthand) but not to
/// `is_loopback`, so the client speaks HTTPS to it. This reaches the TLS registry on its loopback
/// address over HTTPS, which `127.0.0.1` itself does not (see the next test).
fn https_alias(registry: &Registry) -> String {
    format!("127.1:{}", registry.port())
}

#[tokio::test]
async fn tls_with_the_throwaway_ca_works_and_without_it_fails() {
    let registry = Registry::tls();
    let host = https_alias(&registry);
    let trusting = Client::new(
        ClientConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            ..ClientConfig::default()
        },
        Arc::new(Anonymous),
    )
    .expect("a client trusting the CA");
    assert_eq!(trusting.base_url(&host).await, format!("https://{host}/v2/"));
    trusting.ping(&host).await.expect("ping over TLS");
    let v1 = reference(&host, "ukpm/tls", "v1");
    let image = Image::new("tls");
    push_image(&trusting, &v1, &image).await;
    assert_pulls(&trusting, &v1, &image).await;

    let untrusting = Client::new(
        ClientConfig {
            retries: 1,
            backoff: Duration::from_millis(10),
            ..ClientConfig::default()
        },
        Arc::new(Anonymous),
    )
    .expect("a client");
    let err = untrusting
        .get_manifest(&v1)
        .await
        .expect_err("a certificate from an unknown CA must be refused");
    assert!(err.is_network(), "{err:?}");
    let chain = error_chain(&err);
    assert!(chain.contains("certificate"), "not a certificate error: {chain}");
}

#[tokio::test]
async fn tls_registry_on_a_loopback_address_is_reached_over_https() {
    let registry = Registry::tls();
    let client = Client::new(
        ClientConfig {
            extra_roots_pem: vec![registry.ca_pem()],
            retries: 0,
            ..ClientConfig::default()
        },
        Arc::new(Anonymous),
    )
    .expect("a client trusting the CA");
    // Docker and go-containerregistry try HTTPS first for loopback registries and fall back to
    // plain HTTP only when TLS is not spoken; a registry serving TLS on 127.0.0.1 must work.
    client.ping(&registry.host()).await.unwrap_or_else(|e| {
        panic!(
            "a TLS registry at {} is unreachable: {e} ({})",
            registry.host(),
            error_chain(&e)
        )
    });
}

fn error_chain(err: &RegistryError) -> String {
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[tokio::test]
async fn skopeo_reads_back_the_pushed_index_byte_for_byte() {
    let skopeo = require("skopeo", "skopeo");
    let registry = Registry::plain();
    let client = anonymous();
    let image = Image::new("oracle");
    let pinned = by_digest(&registry.host(), "ukpm/oracle", Digest::of(&image.manifest));
    push_image(&client, &pinned, &image).await;
    let index = index_of(&[&image]);
    let tagged = reference(&registry.host(), "ukpm/oracle", "v1");
    client
        .put_manifest(&tagged, media_type::IMAGE_INDEX, Bytes::from(index.clone()))
        .await
        .expect("push index");

    let auth = registry.dir().join("skopeo-auth.json");
    let output = Command::new(skopeo)
        .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
        .arg(&auth)
        .arg(format!("docker://{}/ukpm/oracle:v1", registry.host()))
        .output()
        .expect("run skopeo");
    assert!(
        output.status.success(),
        "skopeo inspect failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&index)
    );
    assert_eq!(output.stdout, index);
}

#[tokio::test]
async fn large_blobs_go_up_in_chunks_that_distribution_reassembles() {
    let registry = Registry::plain();
    let chunked = Client::new(
        ClientConfig {
            chunk_threshold: 1024,
            chunk_size: 64 << 10,
            ..ClientConfig::default()
        },
        Arc::new(Anonymous),
    )
    .unwrap();
    // 300 KiB in 64 KiB chunks: four full chunks and a short last one.
    let image = Image::new("chunked");
    let v1 = reference(&registry.host(), "ukpm/chunked", "v1");
    push_image(&chunked, &v1, &image).await;
    assert_pulls(&anonymous(), &v1, &image).await;
}
