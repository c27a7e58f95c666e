//! Credentials stay with their registry: every URL a registry can hand back (an upload
//! `Location` on POST, PATCH or PUT, absolute or relative; a redirect on a blob GET) that names
//! another host or port gets no `Authorization`, Basic or Bearer. Each test runs a fake
//! registry that hands such a URL out and a second listener that records what reaches it: it
//! must never see a credential. Relative locations, which stay on the registry, are the control:
//! they must carry the credentials, or the fakes would prove nothing.
//!
//! Another scheme on the same host and port (an HTTPS registry handing out a plain `http://`
//! Location) goes through a TLS front that serves both schemes on one port: the downgraded
//! request reaches the fake in the clear, where a leaked credential would show.

mod fake;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use fake::*;
use ukpm_registry::{Client, Credential, PushOutcome};
use ukpm_types::{Descriptor, media_type};

const USER: &str = "alice";
const PASSWORD: &str = "location-secret";

fn expected_basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    )
}

/// A registry that wants Basic credentials for everything under `/v2/` and starts uploads at
/// `location(host)`, where `host` is how the client addressed it. Paths under `/elsewhere/` are
/// served without credentials: they stand for storage the registry delegates to.
fn basic_registry(
    location: impl Fn(&str) -> String + Send + Sync + 'static,
) -> impl Fn(&Request) -> Reply + Send + Sync {
    move |request| {
        if let Some(reply) = elsewhere(request) {
            return reply;
        }
        if request.header("authorization") != Some(expected_basic().as_str()) {
            return Reply::status(401).header("WWW-Authenticate", r#"Basic realm="fake""#);
        }
        let host = request.header("host").unwrap_or_default().to_string();
        match request.method.as_str() {
            "HEAD" => Reply::status(404),
            "POST" => Reply::status(202).header("Location", &location(&host)),
            "PATCH" => Reply::status(202)
                .header("Location", &location(&host))
                .header("Range", &format!("0-{}", request.body.len().saturating_sub(1))),
            "PUT" => Reply::status(201),
            _ => Reply::status(404),
        }
    }
}

/// Storage that needs no credentials: takes uploads, answers chunks.
fn elsewhere(request: &Request) -> Option<Reply> {
    if !request.path().starts_with("/elsewhere/") {
        return None;
    }
    Some(match request.method.as_str() {
        "PUT" => Reply::status(201),
        "PATCH" => Reply::status(202).header("Location", request.path()),
        _ => Reply::status(404),
    })
}

fn client_for(registry: &Fake, chunked: bool) -> Client {
    let credentials = Fixed {
        registry: registry.host(),
        credential: Credential::Basic {
            username: USER.into(),
            password: ukpm_registry::Secret::new(PASSWORD),
        },
    };
    let mut config = config(0);
    if chunked {
        config.chunk_threshold = 1;
        config.chunk_size = 1_000;
    }
    Client::new(config, Arc::new(credentials)).unwrap()
}

async fn push(
    client: &Client,
    registry: &Fake,
    content: &[u8],
) -> Result<PushOutcome, ukpm_registry::RegistryError> {
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, content);
    let body = Bytes::from(content.to_vec());
    within(
        client.push_blob(&tagged(registry), &descriptor, None, &move |offset, len| {
            reqwest::Body::from(body.slice(offset as usize..(offset + len) as usize))
        }),
    )
    .await
}

/// No request `fake` received under a `Host` other than `registry` carried `Authorization`;
/// and some did arrive (the URL was really followed).
fn assert_no_credentials_left(fake: &Fake, registry: &str, what: &str) {
    let foreign: Vec<Request> = fake
        .requests()
        .into_iter()
        .filter(|r| r.header("host") != Some(registry))
        .collect();
    assert!(!foreign.is_empty(), "{what}: nothing reached the other listener");
    for request in &foreign {
        assert_eq!(
            request.header("authorization"),
            None,
            "{what}: credentials left the registry: {} {}",
            request.method,
            request.target
        );
    }
}

#[tokio::test]
async fn an_upload_location_on_another_port_gets_no_credentials() {
    let other = Fake::start(|request| elsewhere(request).unwrap_or(Reply::status(404))).await;
    let target = format!("http://{}/elsewhere/upload-1?_state=x", other.host());
    let registry = Fake::start(basic_registry(move |_| target.clone())).await;
    let client = client_for(&registry, false);
    let outcome = push(&client, &registry, &blob(3_000))
        .await
        .expect("the upload goes to the other port");
    assert_eq!(outcome, PushOutcome::Uploaded);
    assert_eq!(other.requests_to("/elsewhere/upload-1").len(), 1);
    assert_no_credentials_left(&other, &registry.host(), "a POST Location on another port");
    // The registry itself did get them, so the test would see a leak.
    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some(expected_basic().as_str()))
    );
}

#[tokio::test]
async fn an_upload_location_on_another_host_gets_no_credentials() {
    // `localhost:PORT` is the same socket under another host name: the client must treat it as
    // another host, whatever answers there.
    let registry = Fake::start(basic_registry(|host| {
        let port = host.rsplit(':').next().unwrap_or_default();
        format!("http://localhost:{port}/elsewhere/upload-2")
    }))
    .await;
    let client = client_for(&registry, false);
    push(&client, &registry, &blob(2_000))
        .await
        .expect("the upload goes to the other host");
    assert_eq!(registry.requests_to("/elsewhere/upload-2").len(), 1);
    assert_no_credentials_left(&registry, &registry.host(), "a POST Location on another host");
}

#[tokio::test]
async fn a_relative_upload_location_keeps_the_credentials() {
    let registry = Fake::start(basic_registry(|_| format!("/v2/{REPO}/blobs/uploads/u-3"))).await;
    let client = client_for(&registry, false);
    push(&client, &registry, &blob(1_000)).await.expect("upload");
    let puts: Vec<Request> = registry
        .requests_to(&format!("/v2/{REPO}/blobs/uploads/u-3"))
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(
        puts[0].header("authorization"),
        Some(expected_basic().as_str()),
        "a relative Location is the registry's own"
    );
}

#[tokio::test]
async fn a_patch_location_on_another_port_gets_no_credentials() {
    let other = Fake::start(|request| elsewhere(request).unwrap_or(Reply::status(404))).await;
    let moved = format!("http://{}/elsewhere/upload-4", other.host());
    // The session starts on the registry; its first PATCH answer moves it to the other port.
    let registry = Fake::start({
        let relative = format!("/v2/{REPO}/blobs/uploads/u-4");
        let inner = basic_registry(move |_| moved.clone());
        move |request: &Request| {
            if request.method == "POST" && request.header("authorization").is_some() {
                return Reply::status(202).header("Location", &relative);
            }
            inner(request)
        }
    })
    .await;
    let client = client_for(&registry, true);
    push(&client, &registry, &blob(2_500))
        .await
        .expect("a chunked upload");
    let patches = registry
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.header("authorization").is_some())
        .count();
    assert_eq!(
        patches, 1,
        "the first chunk goes to the registry, with credentials"
    );
    // The storage answers its PATCH with a relative Location: relative to the storage, not to
    // the registry.
    let moved: Vec<Request> = other.requests();
    assert_eq!(
        moved.iter().filter(|r| r.method == "PATCH").count(),
        2,
        "{moved:#?}"
    );
    assert!(moved.iter().any(|r| r.method == "PUT"), "{moved:#?}");
    assert_no_credentials_left(&other, &registry.host(), "a PATCH Location on another port");
}

#[tokio::test]
async fn a_blob_redirect_to_another_port_gets_no_credentials() {
    let content = blob(20_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let storage = Fake::start({
        let content = content.clone();
        move |_| Reply::ok(content.clone())
    })
    .await;
    let target = format!("http://{}/storage/blob", storage.host());
    let registry = Fake::start(move |request| match request.header("authorization") {
        Some(value) if value == expected_basic() => Reply::status(307).header("Location", &target),
        _ => Reply::status(401).header("WWW-Authenticate", r#"Basic realm="x""#),
    })
    .await;
    let client = client_for(&registry, false);
    let downloaded = within(download(&client, &tagged(&registry), &descriptor))
        .await
        .expect("the blob downloads through the redirect");
    assert!(downloaded == content);
    assert_no_credentials_left(&storage, &registry.host(), "a redirect to another port");
}

#[tokio::test]
async fn a_bearer_token_is_never_sent_to_an_upload_location_elsewhere() {
    let other = Fake::start(|request| elsewhere(request).unwrap_or(Reply::status(404))).await;
    let target = format!("http://{}/elsewhere/upload-5", other.host());
    let registry = Fake::start(move |request| {
        let host = request.header("host").unwrap_or_default().to_string();
        if request.path() == "/token" {
            return Reply::ok(r#"{"token":"registry-token","expires_in":300}"#);
        }
        if request.header("authorization") != Some("Bearer registry-token") {
            return Reply::status(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://{host}/token",service="fake""#),
            );
        }
        match request.method.as_str() {
            "HEAD" => Reply::status(404),
            "POST" => Reply::status(202).header("Location", &target),
            _ => Reply::status(404),
        }
    })
    .await;
    let client = client_for(&registry, false);
    push(&client, &registry, &blob(1_500))
        .await
        .expect("upload with a token");
    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some("Bearer registry-token")),
        "the token reached the registry"
    );
    assert_no_credentials_left(
        &other,
        &registry.host(),
        "a bearer token and a Location elsewhere",
    );
}

#[tokio::test]
async fn a_challenge_from_elsewhere_is_not_answered() {
    // Storage that asks for credentials must not get the registry's.
    let other =
        Fake::start(|_| Reply::status(401).header("WWW-Authenticate", r#"Basic realm="storage""#)).await;
    let target = format!("http://{}/elsewhere/upload-6", other.host());
    let registry = Fake::start(basic_registry(move |_| target.clone())).await;
    let client = client_for(&registry, false);
    let err = push(&client, &registry, &blob(500))
        .await
        .expect_err("storage that refuses the upload fails it");
    assert!(err.is_unauthorized(), "{err:?}");
    assert_eq!(
        other.requests().len(),
        1,
        "asked once, never again with credentials"
    );
    assert_no_credentials_left(&other, &registry.host(), "a 401 from elsewhere");
}

/// A TLS front on one port for a fake registry: TLS connections are decrypted and passed on;
/// plain ones are passed on only for `/elsewhere/` (so the client's scheme probe, which tries
/// plain HTTP first, finds TLS there). Its certificate is the harness's throwaway one for
/// `127.0.0.1`, borrowed from a TLS docker-registry.
async fn tls_front(backend: SocketAddr, tls: &ukpm_test::registry::Registry) -> SocketAddr {
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(tls.dir().join("leaf.crt"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(tls.dir().join("leaf.key")).unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 32];
                let Ok(n) = stream.peek(&mut first).await else {
                    return;
                };
                let mut upstream = tokio::net::TcpStream::connect(backend).await.unwrap();
                if first[..n].first() == Some(&0x16) {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                } else if String::from_utf8_lossy(&first[..n]).contains(" /elsewhere/") {
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
                } else {
                    let mut sink = [0u8; 1024];
                    let _ = stream.read(&mut sink).await;
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn an_http_location_from_an_https_registry_gets_no_credentials() {
    let certificates = ukpm_test::registry::Registry::tls();
    let front: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let registry = Fake::start(basic_registry({
        let front = front.clone();
        move |_| format!("http://{}/elsewhere/upload-7", front.get().unwrap())
    }))
    .await;
    let address = tls_front(registry.address, &certificates).await;
    front.set(address.to_string()).unwrap();
    let host = address.to_string();
    let credentials = Fixed {
        registry: host.clone(),
        credential: Credential::Basic {
            username: USER.into(),
            password: ukpm_registry::Secret::new(PASSWORD),
        },
    };
    let mut config = config(0);
    config.extra_roots_pem = vec![certificates.ca_pem()];
    let client = Client::new(config, Arc::new(credentials)).unwrap();
    let content = blob(1_200);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let reference = ukpm_types::Reference::new(&host, REPO, "v1").unwrap();
    let body = Bytes::from(content);
    within(
        client.push_blob(&reference, &descriptor, None, &move |offset, len| {
            reqwest::Body::from(body.slice(offset as usize..(offset + len) as usize))
        }),
    )
    .await
    .expect("the upload goes on over plain HTTP");
    // The first request learnt that the registry speaks TLS.
    assert_eq!(client.base_url(&host).await, format!("https://{host}/v2/"));
    let requests = registry.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.method == "POST" && r.header("authorization") == Some(expected_basic().as_str())),
        "the registry got the credentials over TLS: {requests:#?}"
    );
    let downgraded: Vec<&Request> = requests
        .iter()
        .filter(|r| r.path().starts_with("/elsewhere/"))
        .collect();
    assert_eq!(downgraded.len(), 1, "{requests:#?}");
    assert_eq!(
        downgraded[0].header("authorization"),
        None,
        "credentials went out in the clear to {} {}",
        downgraded[0].method,
        downgraded[0].target
    );
}
