//! Registries that stall: a registry that accepts the connection and then goes silent, or
//! trickles, ends every stage with a clear error within bounded time: the response head (ping,
//! token, manifest), a body (manifest, blob), and an upload body.
//!
//! Stages a real registry reaches are tested against `docker-registry` behind the fault proxy
//! (`hold`, `stall`, rate caps); the token endpoint and exact silences against the in-process
//! fake. Every client here waits at most a second or two, so a test that passes proves the
//! bound, and one that hangs fails at its own deadline.

mod fake;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fake::*;
use ukpm_registry::{Anonymous, Client, ClientConfig, Flow, PushOutcome, RegistryError};
use ukpm_test::proxy::{Faults, Proxy};
use ukpm_test::registry::Registry;
use ukpm_types::{Descriptor, Reference, media_type};

const IDLE: Duration = Duration::from_secs(1);

/// A client that gives up after a second of silence, or below 1 KiB/s over two seconds.
fn impatient(retries: u32) -> Client {
    let config = ClientConfig {
        read_timeout: IDLE,
        min_rate: 1024,
        min_rate_window: Duration::from_secs(2),
        ..config(retries)
    };
    Client::new(config, Arc::new(Anonymous)).unwrap()
}

/// Runs `future`, which must fail with a stall of `flow`, within `deadline`; returns the error.
async fn stalls<T: std::fmt::Debug>(
    flow: Flow,
    deadline: Duration,
    future: impl std::future::Future<Output = Result<T, RegistryError>>,
) -> RegistryError {
    let started = Instant::now();
    let result = tokio::time::timeout(deadline, future)
        .await
        .unwrap_or_else(|_| panic!("still waiting after {deadline:?}: the stall was not noticed"));
    let err = result.expect_err("a stalled registry cannot succeed");
    match &err {
        RegistryError::Stalled { flow: f, .. } | RegistryError::TooSlow { flow: f, .. } => {
            assert_eq!(*f, flow, "{err}");
        }
        other => panic!("expected a stall, got {other:?} ({other})"),
    }
    assert!(err.is_network() && err.is_stall(), "{err:?}");
    assert!(started.elapsed() < deadline, "{err}");
    err
}

fn silent_error(err: &RegistryError) {
    let message = err.to_string();
    assert!(
        message.contains("stopped sending") && message.contains("nothing for 1 s"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// The in-process fake: exact silences
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn silence_before_a_manifest_head_is_a_stall_retried_a_bounded_number_of_times() {
    let fake = Fake::start(|_| Reply::status(200).silence(Silence::BeforeHead)).await;
    let retries = 2;
    let client = impatient(retries);
    let started = Instant::now();
    let err = stalls(
        Flow::Download,
        Duration::from_secs(20),
        client.get_manifest(&tagged(&fake)),
    )
    .await;
    silent_error(&err);
    assert_eq!(
        fake.requests_to(&manifest_path("v1")).len(),
        retries as usize + 1,
        "a stall is retried like a dropped connection, and no more"
    );
    assert!(
        started.elapsed() >= IDLE * (retries + 1),
        "gave up before the timeout"
    );
}

#[tokio::test]
async fn a_silent_token_endpoint_is_a_stall() {
    let fake = Fake::start(|request| {
        if request.path() == "/token" {
            return Reply::status(200).silence(Silence::BeforeHead);
        }
        let host = request.header("host").unwrap_or_default();
        Reply::status(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{host}/token",service="svc""#),
        )
    })
    .await;
    let client = impatient(0);
    let err = stalls(
        Flow::Download,
        Duration::from_secs(10),
        client.get_manifest(&tagged(&fake)),
    )
    .await;
    silent_error(&err);
    assert!(err.to_string().contains("a token"), "{err}");
}

#[tokio::test]
async fn silence_in_the_middle_of_a_manifest_is_a_stall() {
    let bytes = manifest("half a manifest");
    let half = bytes[..bytes.len() / 2].to_vec();
    let declared = bytes.len() as u64;
    let fake = Fake::start(move |_| {
        manifest_reply(&half)
            .length(Length::Declared(declared))
            .silence(Silence::AfterBody)
    })
    .await;
    let client = impatient(0);
    let err = stalls(
        Flow::Download,
        Duration::from_secs(10),
        client.get_manifest(&tagged(&fake)),
    )
    .await;
    silent_error(&err);
}

#[tokio::test]
async fn silence_in_the_middle_of_a_blob_is_a_stall() {
    let content = blob(100_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let half = content[..50_000].to_vec();
    let fake = Fake::start(move |_| {
        Reply::ok(half.clone())
            .length(Length::Declared(100_000))
            .silence(Silence::AfterBody)
    })
    .await;
    let client = impatient(0);
    let err = stalls(
        Flow::Download,
        Duration::from_secs(10),
        download(&client, &tagged(&fake), &descriptor),
    )
    .await;
    silent_error(&err);
    assert!(err.to_string().contains(&descriptor.digest.to_string()), "{err}");
}

// ---------------------------------------------------------------------------------------------
// A real registry behind the fault proxy
// ---------------------------------------------------------------------------------------------

/// A blob of `len` bytes pushed to `registry` directly, and its descriptor.
async fn stored_blob(registry: &Registry, len: usize) -> (Reference, Descriptor) {
    let content = blob(len);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let reference = Reference::new(&registry.host(), REPO, "v1").unwrap();
    let body = Bytes::from(content);
    anonymous(0)
        .push_blob(&reference, &descriptor, None, &move |offset, len| {
            ukpm_registry::Body::from(body.slice(offset as usize..(offset + len) as usize))
        })
        .await
        .expect("push the blob to the registry");
    (reference, descriptor)
}

fn through(proxy: &Proxy) -> Reference {
    Reference::new(&proxy.addr(), REPO, "v1").unwrap()
}

#[tokio::test]
async fn a_held_registry_stalls_the_ping() {
    let registry = Registry::plain();
    let proxy = Proxy::start(registry.host(), Faults::none());
    proxy.hold(true);
    let client = impatient(1);
    let err = stalls(
        Flow::Download,
        Duration::from_secs(30),
        client.ping(&proxy.addr()),
    )
    .await;
    silent_error(&err);
    assert!(
        proxy.stats().held > 0,
        "the request reached the proxy: {}",
        proxy.stats()
    );
}

#[tokio::test]
async fn a_registry_that_stalls_mid_blob_is_given_up_on() {
    let registry = Registry::plain();
    let (_, descriptor) = stored_blob(&registry, 1 << 20).await;
    // Every connection stops forwarding after 200 KB: well into the blob's body.
    let proxy = Proxy::start(
        registry.host(),
        Faults::none()
            .stall(1.0, Duration::from_secs(60))
            .fault_after(200_000, 200_000),
    );
    let client = impatient(0);
    let reference = through(&proxy);
    let err = stalls(
        Flow::Download,
        Duration::from_secs(30),
        download(&client, &reference, &descriptor),
    )
    .await;
    silent_error(&err);
    assert!(proxy.stats().stalled > 0, "{}", proxy.stats());
}

#[tokio::test]
async fn a_trickle_below_the_minimum_rate_is_given_up_on() {
    let registry = Registry::plain();
    let (_, descriptor) = stored_blob(&registry, 256 << 10).await;
    // 300 bytes/s arrives in 1 KiB pieces every few seconds: under a read timeout of 10 s, so
    // only the minimum rate (1 KiB/s over 2 s) can notice.
    let proxy = Proxy::start(registry.host(), Faults::none().rate_limit(300));
    let config = ClientConfig {
        read_timeout: Duration::from_secs(10),
        min_rate: 1024,
        min_rate_window: Duration::from_secs(2),
        plain_http: vec![proxy.addr()],
        ..config(0)
    };
    let client = Client::new(config, Arc::new(Anonymous)).unwrap();
    let err = stalls(
        Flow::Download,
        Duration::from_secs(60),
        download(&client, &through(&proxy), &descriptor),
    )
    .await;
    assert!(
        matches!(err, RegistryError::TooSlow { minimum: 1024, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("below the minimum of 1024 bytes/s"),
        "{err}"
    );
}

#[tokio::test]
async fn a_registry_that_stops_taking_an_upload_is_given_up_on() {
    let registry = Registry::plain();
    let proxy = Arc::new(Proxy::start(registry.host(), Faults::none()));
    // Larger than every socket buffer between the client and the proxy, so the upload must
    // wait for the registry.
    let content = Bytes::from(blob(48 << 20));
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let client = impatient(0);
    let reference = through(&proxy);
    let held = proxy.clone();
    let body = move |offset: u64, len: u64| {
        // The registry goes silent as the body starts.
        held.hold(true);
        ukpm_registry::Body::from(content.slice(offset as usize..(offset + len) as usize))
    };
    let err = stalls(
        Flow::Upload,
        Duration::from_secs(30),
        client.push_blob(&reference, &descriptor, None, &body),
    )
    .await;
    let message = err.to_string();
    assert!(message.contains("stopped taking blob"), "{message}");
    proxy.hold(false);
}

#[tokio::test]
async fn slow_but_steady_transfers_are_not_stalls() {
    let registry = Registry::plain();
    let content = blob(600 << 10);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    // 200 KB/s each way: about three seconds per transfer, far over the minimum rate. The read
    // timeout is longer than the socket buffers take to drain at that rate (they absorb the
    // whole upload on loopback, and the response comes only when the registry has it all).
    let proxy = Proxy::start(
        registry.host(),
        Faults::none().rate_limit(200_000).upload_rate_limit(200_000),
    );
    let config = ClientConfig {
        read_timeout: Duration::from_secs(6),
        min_rate: 1024,
        min_rate_window: Duration::from_secs(2),
        ..config(0)
    };
    let client = Client::new(config, Arc::new(Anonymous)).unwrap();
    let reference = through(&proxy);
    let body = Bytes::from(content.clone());
    let outcome = within(
        client.push_blob(&reference, &descriptor, None, &move |offset, len| {
            ukpm_registry::Body::from(body.slice(offset as usize..(offset + len) as usize))
        }),
    )
    .await
    .expect("a slow upload is still an upload");
    assert_eq!(outcome, PushOutcome::Uploaded);
    let downloaded = within(download(&client, &reference, &descriptor))
        .await
        .expect("a slow download is still a download");
    assert!(downloaded == content);
}
