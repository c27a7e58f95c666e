//! `ClientConfig::insecure_tls` (KraftKit's `verify_ssl: false`): a registry with a certificate
//! from an unknown CA is reached over TLS without verification, and only that host.

use std::sync::Arc;
use std::time::Duration;

use ukpm_registry::{Anonymous, Client, ClientConfig};
use ukpm_test::registry::Registry;

fn client(insecure_tls: Vec<String>) -> Client {
    Client::new(
        ClientConfig {
            insecure_tls,
            retries: 0,
            backoff: Duration::from_millis(10),
            ..ClientConfig::default()
        },
        Arc::new(Anonymous),
    )
    .expect("a client")
}

#[tokio::test]
async fn an_insecure_host_connects_without_the_ca_and_others_are_still_verified() {
    let registry = Registry::tls();
    let other = Registry::tls();
    // 127.1 is not "localhost" and not 127.0.0.1: a plain host name as far as the client cares.
    let host = format!("127.1:{}", registry.port());
    let other_host = format!("127.1:{}", other.port());

    let insecure = client(vec![host.clone()]);
    assert_eq!(insecure.base_url(&host).await, format!("https://{host}/v2/"));
    insecure
        .ping(&host)
        .await
        .expect("a verify_ssl: false host connects without its CA");
    let err = insecure
        .ping(&other_host)
        .await
        .expect_err("another host with an unknown CA is still refused");
    assert!(err.is_network(), "{err:?}");

    let verifying = client(Vec::new());
    let err = verifying
        .ping(&host)
        .await
        .expect_err("without the entry the unknown CA is refused");
    assert!(err.is_network(), "{err:?}");
}

#[tokio::test]
async fn an_insecure_loopback_registry_is_probed_and_reached_over_tls() {
    let registry = Registry::tls();
    let insecure = client(vec![registry.host()]);
    insecure
        .ping(&registry.host())
        .await
        .expect("a verify_ssl: false loopback TLS registry is reachable");
    assert!(insecure.base_url(&registry.host()).await.starts_with("https://"));
}
