//! The client against a registry that lies: an in-process HTTP/1.1 server written here (tokio,
//! no framework) that answers `/v2/` with 200 and everything else from a script: wrong bytes,
//! short and long bodies, endless manifests, missing `Location`, 429/503, dropped connections,
//! redirects to another host, bearer challenges (several at once), `Retry-After` dates, and
//! credential sources that must be asked off the runtime.
//!
//! Mocked because a real registry will not misbehave on cue (house rule 8).

mod fake;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ukpm_registry::{
    Anonymous, Client, ClientConfig, Credential, CredentialSource, MANIFEST_LIMIT, PushOutcome,
    RegistryError, Secret,
};
use ukpm_types::{Descriptor, Digest, media_type};

use fake::*;

// ---------------------------------------------------------------------------------------------
// Blob bodies: the client enforces the descriptor's size as bytes arrive
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn blob_body_longer_than_its_descriptor_is_too_large() {
    let content = blob(10_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let mut longer = content.clone();
    longer.extend_from_slice(b"and some more bytes the descriptor never promised");
    // No Content-Length, so the excess can only be caught while streaming.
    let fake = Fake::start(move |_| Reply::ok(longer.clone()).length(Length::UntilClose)).await;
    let client = anonymous(0);
    let err = within(download(&client, &tagged(&fake), &descriptor))
        .await
        .expect_err("a body longer than its descriptor must fail");
    assert!(
        matches!(err, RegistryError::TooLarge { limit: 10_000, .. }),
        "{err:?}"
    );
    assert!(err.is_integrity());
}

#[tokio::test]
async fn blob_content_length_over_its_descriptor_is_refused_up_front() {
    let content = blob(10_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let fake = Fake::start(move |_| Reply::ok(blob(10_001))).await;
    let client = anonymous(0);
    let err = within(client.get_blob(&tagged(&fake), &descriptor, 0))
        .await
        .err()
        .expect("a Content-Length over the descriptor's size must be refused before reading");
    assert!(
        matches!(err, RegistryError::TooLarge { limit: 10_000, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn truncated_blob_is_never_ok() {
    let content = blob(10_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let half = content[..5_000].to_vec();
    let cases = [
        // Promises the full size, sends half, closes.
        ("declared", Length::Declared(10_000), true),
        // Says nothing, sends half, closes.
        ("until close", Length::UntilClose, false),
        // Honestly frames half the bytes.
        ("exact", Length::Exact, false),
    ];
    for (name, length, network_allowed) in cases {
        let body = half.clone();
        let fake = Fake::start(move |_| Reply::ok(body.clone()).length(length)).await;
        let client = anonymous(0);
        let result = within(download(&client, &tagged(&fake), &descriptor)).await;
        match result {
            Err(RegistryError::Truncated {
                expected: 10_000,
                actual: 5_000,
                ..
            }) => {}
            Err(ref err) if network_allowed && err.is_network() => {}
            other => panic!("{name}: a short body must fail, got {other:?}"),
        }
    }
}

/// A body that breaks off after 4,000 of 10,000 bytes, answered to the resumption by `rest`.
async fn broken_then(rest: fn(&[u8], &Request) -> Reply) -> (Fake, Descriptor, Vec<u8>) {
    let content = blob(10_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let first = content[..4_000].to_vec();
    let all = content.clone();
    let fake = Fake::start(move |request| match request.header("range") {
        None if request.method == "GET" => Reply::ok(first.clone()).length(Length::Declared(10_000)),
        _ => rest(&all, request),
    })
    .await;
    (fake, descriptor, content)
}

#[tokio::test]
async fn a_body_that_breaks_off_is_resumed_from_the_byte_reached() {
    let (fake, descriptor, content) = broken_then(|all, _| {
        Reply::status(206)
            .header("Content-Range", "bytes 4000-9999/10000")
            .body(all[4_000..].to_vec())
    })
    .await;
    let client = anonymous(2);
    let got = within(download(&client, &tagged(&fake), &descriptor))
        .await
        .expect("the download resumes");
    assert_eq!(got, content);
    let ranges: Vec<Option<String>> = fake
        .requests_to(&blob_path(descriptor.digest))
        .iter()
        .map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(ranges, [None, Some("bytes=4000-".to_string())]);
}

#[tokio::test]
async fn a_download_whose_waiter_is_gone_ends_with_the_break_instead_of_resuming() {
    let (fake, descriptor, _) = broken_then(|all, _| Reply::ok(all.to_vec())).await;
    let client = anonymous(2);
    let mut download = within(client.get_blob(&tagged(&fake), &descriptor, 0))
        .await
        .unwrap();
    let (guard, stop) = tokio::sync::watch::channel(());
    download.stop_when_dropped(stop);
    drop(guard);
    let err = loop {
        match within(download.chunk()).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the download resumed after its waiter was gone"),
            Err(err) => break err,
        }
    };
    assert!(matches!(err, RegistryError::Truncated { .. }), "{err:?}");
    assert_eq!(fake.requests_to(&blob_path(descriptor.digest)).len(), 1);
}

#[tokio::test]
async fn a_resumption_answered_whole_skips_what_already_arrived() {
    let (fake, descriptor, content) = broken_then(|all, _| Reply::ok(all.to_vec())).await;
    let got = within(download(&anonymous(2), &tagged(&fake), &descriptor))
        .await
        .expect("the download continues past the repeated prefix");
    assert_eq!(got, content);
}

#[tokio::test]
async fn a_body_that_keeps_breaking_without_headway_gives_up_after_the_retries() {
    let (fake, descriptor, _) = broken_then(|_, _| Reply::hang_up()).await;
    let err = within(download(&anonymous(2), &tagged(&fake), &descriptor))
        .await
        .expect_err("no headway, no success");
    assert!(err.is_network(), "{err:?}");
    // The first request, then two resumptions, each tried once more by the policy's retries
    // of a request that got no answer at all.
    assert!(fake.requests_to(&blob_path(descriptor.digest)).len() <= 1 + 2 * 3);
}

#[tokio::test]
async fn a_bounded_range_answered_whole_on_resumption_is_not_spliced() {
    let content = blob(10_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let all = content.clone();
    let fake = Fake::start(move |request| match request.header("range") {
        Some("bytes=0-4999") => Reply::status(206)
            .header("Content-Range", "bytes 0-4999/10000")
            .body(all[..2_000].to_vec())
            .length(Length::Declared(5_000)),
        _ => Reply::ok(all.clone()),
    })
    .await;
    let client = anonymous(2);
    let mut download = within(client.get_blob_range(&tagged(&fake), &descriptor, 0, Some(4_999)))
        .await
        .unwrap();
    let mut got = Vec::new();
    let err = loop {
        match within(download.chunk()).await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => panic!("a whole blob was spliced into a range"),
            Err(err) => break err,
        }
    };
    assert_eq!(got, content[..2_000]);
    assert!(err.is_network(), "{err:?}");
}

#[tokio::test]
async fn a_chunk_whose_connection_is_lost_resumes_from_where_the_session_stands() {
    let content = blob(10_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let patches = Arc::new(AtomicUsize::new(0));
    let seen = patches.clone();
    let fake = Fake::start(move |request| match request.method.as_str() {
        "HEAD" => Reply::status(404),
        "POST" => Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/c-1")),
        "PATCH" if seen.fetch_add(1, Ordering::SeqCst) == 1 => Reply::hang_up(),
        "PATCH" => Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/c-1")),
        "GET" => Reply::status(204)
            .header("Range", "0-4999")
            .header("Location", &format!("/v2/{REPO}/blobs/uploads/c-1")),
        "PUT" => Reply::status(201),
        _ => Reply::status(500),
    })
    .await;
    let outcome = push_in_chunks(&fake, &content, &descriptor)
        .await
        .expect("the upload resumes after the lost connection");
    assert_eq!(outcome, PushOutcome::Uploaded);
    let ranges = patch_ranges(&fake);
    assert_eq!(ranges, ["0-3999", "4000-7999", "5000-8999", "9000-9999"]);
}

#[tokio::test]
async fn a_chunk_whose_session_ended_starts_over_in_a_new_session() {
    let content = blob(10_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let patches = Arc::new(AtomicUsize::new(0));
    let sessions = Arc::new(AtomicUsize::new(0));
    let (seen, opened) = (patches.clone(), sessions.clone());
    let fake = Fake::start(move |request| match request.method.as_str() {
        "HEAD" => Reply::status(404),
        "POST" => {
            let n = opened.fetch_add(1, Ordering::SeqCst);
            Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/s-{n}"))
        }
        "PATCH" if seen.fetch_add(1, Ordering::SeqCst) == 1 => Reply::hang_up(),
        "PATCH" => Reply::status(202).header("Location", request.path()),
        // docker-registry's answer once a cut PATCH left more bytes than it recorded.
        "GET" => Reply::status(404).body(br#"{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}"#.to_vec()),
        "PUT" => Reply::status(201),
        _ => Reply::status(500),
    })
    .await;
    let outcome = push_in_chunks(&fake, &content, &descriptor)
        .await
        .expect("the upload starts over in a new session");
    assert_eq!(outcome, PushOutcome::Uploaded);
    assert_eq!(sessions.load(Ordering::SeqCst), 2);
    let patches: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| {
            format!(
                "{} {}",
                r.path().rsplit('/').next().unwrap(),
                r.header("content-range").unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        patches,
        [
            "s-0 0-3999",
            "s-0 4000-7999",
            "s-1 0-3999",
            "s-1 4000-7999",
            "s-1 8000-9999"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn manifest_by_digest_with_other_bytes_is_a_digest_mismatch() {
    let asked = manifest("asked for");
    let sent = manifest("sent instead");
    let fake = Fake::start({
        let sent = sent.clone();
        move |_| manifest_reply(&sent)
    })
    .await;
    let client = anonymous(0);
    let expected = Digest::of(&asked);
    let err = within(client.get_manifest(&pinned(&fake, expected)))
        .await
        .expect_err("bytes that hash differently must be refused");
    match err {
        RegistryError::DigestMismatch {
            expected: e, actual, ..
        } => {
            assert_eq!(e, expected);
            assert_eq!(actual, Digest::of(&sent));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_eq!(
        fake.requests_to(&manifest_path(&expected.to_string())).len(),
        1,
        "asked by digest"
    );
}

#[tokio::test]
async fn manifest_with_a_content_length_over_the_limit_is_refused_up_front() {
    let fake = Fake::start(|_| {
        Reply::ok(manifest("small"))
            .header("Content-Type", media_type::IMAGE_MANIFEST)
            .length(Length::Declared(MANIFEST_LIMIT + 1))
    })
    .await;
    let client = anonymous(0);
    let err = within(client.get_manifest(&tagged(&fake)))
        .await
        .expect_err("a manifest over the limit must be refused");
    assert!(
        matches!(err, RegistryError::TooLarge { limit, .. } if limit == MANIFEST_LIMIT),
        "{err:?}"
    );
}

#[tokio::test]
async fn endless_manifest_is_refused_at_the_limit() {
    let fake = Fake::start(|_| {
        Reply::status(200)
            .header("Content-Type", media_type::IMAGE_MANIFEST)
            .endless()
    })
    .await;
    let client = anonymous(0);
    let err = within(client.get_manifest(&tagged(&fake)))
        .await
        .expect_err("an endless manifest must be refused");
    assert!(
        matches!(err, RegistryError::TooLarge { limit, .. } if limit == MANIFEST_LIMIT),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Uploads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn upload_started_without_location_is_a_protocol_error() {
    let fake = Fake::start(|request| match request.method.as_str() {
        "HEAD" => Reply::status(404),
        "POST" => Reply::status(202),
        _ => Reply::status(500),
    })
    .await;
    let content = blob(100);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let client = anonymous(0);
    let body = Bytes::from(content);
    let err = within(
        client.push_blob(&tagged(&fake), &descriptor, None, &move |offset, len| {
            reqwest::Body::from(body.slice(offset as usize..(offset + len) as usize))
        }),
    )
    .await
    .expect_err("an upload without Location cannot go on");
    assert!(matches!(err, RegistryError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("Location"), "{err}");
    assert!(
        fake.requests().iter().all(|r| r.method != "PUT"),
        "nothing may be PUT anywhere"
    );
}

#[tokio::test]
async fn final_put_without_location_is_tolerated() {
    let content = blob(4_321);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let fake = Fake::start(|request| match request.method.as_str() {
        "HEAD" => Reply::status(404),
        "POST" => {
            Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/u-1?_state=opaque"))
        }
        "PUT" => Reply::status(201),
        _ => Reply::status(500),
    })
    .await;
    let client = anonymous(0);
    let body = Bytes::from(content.clone());
    let outcome = within(
        client.push_blob(&tagged(&fake), &descriptor, None, &move |offset, len| {
            reqwest::Body::from(body.slice(offset as usize..(offset + len) as usize))
        }),
    )
    .await
    .expect("a 201 without Location is still a finished upload");
    assert_eq!(outcome, PushOutcome::Uploaded);
    let puts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].path(), format!("/v2/{REPO}/blobs/uploads/u-1"));
    assert_eq!(
        puts[0].query("_state"),
        ["opaque"],
        "the upload's own query is kept"
    );
    assert_eq!(puts[0].query("digest"), [descriptor.digest.to_string()]);
    assert!(puts[0].body == content, "the uploaded bytes differ");
}

#[tokio::test]
async fn refused_mount_falls_back_to_an_upload() {
    let content = blob(777);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    // A registry that does not mount answers the mount POST like any upload start: 202.
    let fake = Fake::start(|request| match request.method.as_str() {
        "HEAD" => Reply::status(404),
        "POST" => Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/u-2")),
        "PUT" => Reply::status(201),
        _ => Reply::status(500),
    })
    .await;
    let client = anonymous(0);
    let body = Bytes::from(content.clone());
    let outcome = within(client.push_blob(
        &tagged(&fake),
        &descriptor,
        Some("ukpm/elsewhere"),
        &move |offset, len| reqwest::Body::from(body.slice(offset as usize..(offset + len) as usize)),
    ))
    .await
    .expect("the upload goes on after a refused mount");
    assert_eq!(outcome, PushOutcome::Uploaded);
    let posts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].query("mount"), [descriptor.digest.to_string()]);
    assert_eq!(posts[0].query("from"), ["ukpm/elsewhere"]);
    let puts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1);
    assert!(puts[0].body == content, "the uploaded bytes differ");
}

#[tokio::test]
async fn retried_upload_sends_the_whole_body_again() {
    let content = blob(3_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let puts = Arc::new(AtomicUsize::new(0));
    let fake = Fake::start({
        let puts = puts.clone();
        move |request| match request.method.as_str() {
            "HEAD" => Reply::status(404),
            "POST" => Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/u-3")),
            "PUT" if puts.fetch_add(1, Ordering::SeqCst) == 0 => Reply::status(503),
            "PUT" => Reply::status(201),
            _ => Reply::status(500),
        }
    })
    .await;
    let client = anonymous(2);
    let body = Bytes::from(content.clone());
    let outcome = within(
        client.push_blob(&tagged(&fake), &descriptor, None, &move |offset, len| {
            reqwest::Body::from(body.slice(offset as usize..(offset + len) as usize))
        }),
    )
    .await
    .expect("the upload succeeds on retry");
    assert_eq!(outcome, PushOutcome::Uploaded);
    let puts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    for put in puts {
        assert!(put.body == content, "a retried PUT must carry the whole body");
    }
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

/// The manifest was fetched on the second request, and not before `Retry-After` said.
async fn assert_one_retry_after_a_second(fake: &Fake, bytes: &[u8], what: &str) {
    let client = anonymous(3);
    let started = Instant::now();
    let fetched = within(client.get_manifest(&tagged(fake)))
        .await
        .expect("success after one retry");
    assert_eq!(fetched.bytes, bytes);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{what} was not honoured (retried after {:?})",
        started.elapsed()
    );
    assert_eq!(fake.requests_to(&manifest_path("v1")).len(), 2);
}

#[tokio::test]
async fn too_many_requests_is_retried_after_retry_after() {
    let bytes = manifest("patience");
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = Fake::start({
        let bytes = bytes.clone();
        let calls = calls.clone();
        move |_| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(429).header("Retry-After", "1"),
            _ => manifest_reply(&bytes),
        }
    })
    .await;
    assert_one_retry_after_a_second(&fake, &bytes, "Retry-After: 1").await;
}

#[tokio::test]
async fn service_unavailable_forever_gives_up_after_the_retries() {
    let fake = Fake::start(|_| Reply::status(503)).await;
    let retries = 3;
    let client = anonymous(retries);
    let err = within(client.get_manifest(&tagged(&fake)))
        .await
        .expect_err("503 forever must end in an error");
    assert!(
        matches!(err, RegistryError::Status { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(
        fake.requests_to(&manifest_path("v1")).len(),
        retries as usize + 1,
        "one attempt plus `retries` retries"
    );
}

#[tokio::test]
async fn dropped_connection_is_retried() {
    let bytes = manifest("dropped");
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = Fake::start({
        let bytes = bytes.clone();
        let calls = calls.clone();
        move |_| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::hang_up(),
            _ => manifest_reply(&bytes),
        }
    })
    .await;
    let client = anonymous(2);
    let fetched = within(client.get_manifest(&tagged(&fake)))
        .await
        .expect("success after the dropped connection");
    assert_eq!(fetched.bytes, bytes);
    assert_eq!(fake.requests_to(&manifest_path("v1")).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn redirect_to_another_host_does_not_carry_authorization() {
    let content = blob(20_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let storage = Fake::start({
        let content = content.clone();
        move |_| Reply::ok(content.clone())
    })
    .await;
    let target = format!("http://{}/storage/blob?signature=abc", storage.localhost());
    let registry = Fake::start(move |request| match request.header("authorization") {
        None => Reply::status(401).header("WWW-Authenticate", r#"Basic realm="x""#),
        Some(_) => Reply::status(307).header("Location", &target),
    })
    .await;
    let client = with_basic(&registry.host(), "alice", "redirect-secret");
    let reference = tagged(&registry);
    let downloaded = within(download(&client, &reference, &descriptor))
        .await
        .expect("the blob downloads through the redirect");
    assert!(downloaded == content, "the redirected blob differs");

    let expected = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice:redirect-secret")
        )
    };
    let asked = registry.requests_to(&blob_path(descriptor.digest));
    assert!(
        asked
            .iter()
            .any(|r| r.header("authorization") == Some(expected.as_str())),
        "the registry never got the Basic credentials: {asked:#?}"
    );
    let stored = storage.requests();
    assert!(!stored.is_empty(), "the redirect was not followed");
    for request in stored {
        assert_eq!(
            request.header("authorization"),
            None,
            "credentials followed the redirect to another host: {request:?}"
        );
    }
}

#[tokio::test]
async fn bearer_challenge_asks_for_exactly_the_needed_scope() {
    let bytes = manifest("bearer");
    let fake = Fake::start({
        let bytes = bytes.clone();
        move |request| {
            let host = request.header("host").unwrap_or_default().to_string();
            let challenge = |scope: &str| {
                format!(r#"Bearer realm="http://{host}/token",service="fake-registry",scope="{scope}""#)
            };
            if request.path() == "/token" {
                let scopes = request.query("scope");
                let token = if scopes == ["repository:ukpm/fault:pull"] {
                    "pull-token"
                } else {
                    "push-token"
                };
                return Reply::ok(format!(r#"{{"token":"{token}","expires_in":300}}"#))
                    .header("Content-Type", "application/json");
            }
            match (request.method.as_str(), request.header("authorization")) {
                ("GET", Some("Bearer pull-token")) => manifest_reply(&bytes),
                ("PUT", Some("Bearer push-token")) => Reply::status(201),
                ("GET", _) => Reply::status(401)
                    .header("WWW-Authenticate", &challenge(&format!("repository:{REPO}:pull"))),
                _ => Reply::status(401).header(
                    "WWW-Authenticate",
                    &challenge(&format!("repository:{REPO}:pull,push")),
                ),
            }
        }
    })
    .await;
    let client = with_basic(&fake.host(), "bob", "bearer-secret");
    let reference = tagged(&fake);
    for _ in 0..2 {
        let fetched = within(client.get_manifest(&reference))
            .await
            .expect("pull with a token");
        assert_eq!(fetched.bytes, bytes);
    }
    let tokens = fake.requests_to("/token");
    assert_eq!(tokens.len(), 1, "the pull token is cached: {tokens:#?}");
    assert_eq!(tokens[0].method, "GET");
    assert_eq!(tokens[0].query("scope"), [format!("repository:{REPO}:pull")]);
    assert_eq!(tokens[0].query("service"), ["fake-registry"]);
    // The realm is on loopback, so Basic credentials may go to it.
    assert!(
        tokens[0]
            .header("authorization")
            .is_some_and(|v| v.starts_with("Basic ")),
        "{:?}",
        tokens[0]
    );
    let pulls = fake.requests_to(&manifest_path("v1"));
    assert_eq!(
        pulls
            .iter()
            .filter(|r| r.header("authorization") == Some("Bearer pull-token"))
            .count(),
        2
    );

    within(client.put_manifest(&reference, media_type::IMAGE_MANIFEST, Bytes::from(bytes.clone())))
        .await
        .expect("push with a token");
    let tokens = fake.requests_to("/token");
    assert_eq!(tokens.len(), 2, "a push needs its own token: {tokens:#?}");
    assert_eq!(tokens[1].query("scope"), [format!("repository:{REPO}:pull,push")]);
    assert_eq!(tokens[1].query("service"), ["fake-registry"]);
}

#[tokio::test]
async fn anonymous_bearer_token_requests_carry_no_credentials() {
    let bytes = manifest("anonymous bearer");
    let fake = Fake::start({
        let bytes = bytes.clone();
        move |request| {
            if request.path() == "/token" {
                return Reply::ok(r#"{"access_token":"anon-token"}"#);
            }
            match request.header("authorization") {
                Some("Bearer anon-token") => manifest_reply(&bytes),
                _ => {
                    let host = request.header("host").unwrap_or_default();
                    Reply::status(401).header(
                        "WWW-Authenticate",
                        &format!(r#"Bearer realm="http://{host}/token",service="svc""#),
                    )
                }
            }
        }
    })
    .await;
    let client = anonymous(0);
    let fetched = within(client.get_manifest(&tagged(&fake)))
        .await
        .expect("anonymous pull with a token");
    assert_eq!(fetched.bytes, bytes);
    let tokens = fake.requests_to("/token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].header("authorization"), None);
    assert_eq!(tokens[0].query("scope"), [format!("repository:{REPO}:pull")]);
    assert_eq!(tokens[0].query("service"), ["svc"]);
}

#[tokio::test]
async fn a_failed_chunk_resumes_from_where_the_session_stands() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let content = blob(10_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let patches = Arc::new(AtomicUsize::new(0));
    let seen = patches.clone();
    // Chunks of 4,000 bytes; the second PATCH fails after the registry kept only 1,500 of its
    // bytes, and the session says so.
    let fake = Fake::start(move |request| match request.method.as_str() {
        "HEAD" => Reply::status(404),
        "POST" => Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/c-1")),
        "PATCH" => {
            if seen.fetch_add(1, Ordering::SeqCst) == 1 {
                Reply::status(500)
            } else {
                Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/c-1"))
            }
        }
        "GET" => Reply::status(204)
            .header("Range", "0-5499")
            .header("Location", &format!("/v2/{REPO}/blobs/uploads/c-1")),
        "PUT" => Reply::status(201),
        _ => Reply::status(500),
    })
    .await;
    let outcome = push_in_chunks(&fake, &content, &descriptor)
        .await
        .expect("the upload resumes after the failed chunk");
    assert_eq!(outcome, PushOutcome::Uploaded);
    let ranges = patch_ranges(&fake);
    // 0-3999 ok, 4000-7999 failed, then only the rest from 5500 (what the session holds).
    assert_eq!(ranges, ["0-3999", "4000-7999", "5500-9499", "9500-9999"]);
    let patch_bytes: usize = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.body.len())
        .sum();
    assert_eq!(
        patch_bytes,
        4_000 + 4_000 + 4_000 + 500,
        "only the rest was sent again"
    );
    let status_queries = fake
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path().contains("/blobs/uploads/"))
        .count();
    assert_eq!(status_queries, 1);
}

// ---------------------------------------------------------------------------------------------
// One retry policy, Retry-After dates, several challenges, credential lookups off the runtime
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_streamed_body_is_rebuilt_for_a_retry_after_503() {
    let content = blob(5_000);
    let descriptor = Descriptor::for_bytes(media_type::LAYER_TAR, &content);
    let puts = Arc::new(AtomicUsize::new(0));
    let fake = Fake::start({
        let puts = puts.clone();
        move |request| match request.method.as_str() {
            "HEAD" => Reply::status(404),
            "POST" => Reply::status(202).header("Location", &format!("/v2/{REPO}/blobs/uploads/s-1")),
            // A date long past: retry at once.
            "PUT" if puts.fetch_add(1, Ordering::SeqCst) == 0 => {
                Reply::status(503).header("Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT")
            }
            "PUT" => Reply::status(201),
            _ => Reply::status(500),
        }
    })
    .await;
    let client = anonymous(2);
    let built = Arc::new(AtomicUsize::new(0));
    let body = Bytes::from(content.clone());
    let factory = {
        let built = built.clone();
        move |offset: u64, len: u64| {
            built.fetch_add(1, Ordering::SeqCst);
            // A stream of small pieces, spent once sent: only a rebuilt body can go again.
            let whole = body.slice(offset as usize..(offset + len) as usize);
            let pieces: Vec<Result<Bytes, std::io::Error>> = whole
                .chunks(700)
                .map(|piece| Ok(Bytes::copy_from_slice(piece)))
                .collect();
            reqwest::Body::wrap_stream(futures_util::stream::iter(pieces))
        }
    };
    let started = Instant::now();
    let outcome = within(client.push_blob(&tagged(&fake), &descriptor, None, &factory))
        .await
        .expect("the upload succeeds on retry");
    assert_eq!(outcome, PushOutcome::Uploaded);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "a past Retry-After date means now"
    );
    assert_eq!(built.load(Ordering::SeqCst), 2, "one body per attempt");
    let puts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    for put in puts {
        assert!(put.body == content, "a retried PUT must carry the whole body");
    }
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let bytes = manifest("a date");
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = Fake::start({
        let bytes = bytes.clone();
        let calls = calls.clone();
        move |_| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => {
                // Whole seconds: two from now is at least one and a bit from now.
                let when = std::time::SystemTime::now() + Duration::from_secs(2);
                Reply::status(503).header("Retry-After", &httpdate::fmt_http_date(when))
            }
            _ => manifest_reply(&bytes),
        }
    })
    .await;
    assert_one_retry_after_a_second(&fake, &bytes, "a Retry-After date").await;
}

#[tokio::test]
async fn retry_after_is_capped_by_max_backoff() {
    let bytes = manifest("capped");
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = Fake::start({
        let bytes = bytes.clone();
        let calls = calls.clone();
        move |_| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(429).header("Retry-After", "3600"),
            1 => Reply::status(429).header("Retry-After", "whenever"),
            _ => manifest_reply(&bytes),
        }
    })
    .await;
    let client = Client::new(
        ClientConfig {
            max_backoff: Duration::from_millis(50),
            ..config(3)
        },
        Arc::new(Anonymous),
    )
    .unwrap();
    let started = Instant::now();
    within(client.get_manifest(&tagged(&fake)))
        .await
        .expect("success after two retries");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an hour's Retry-After must be capped (took {:?})",
        started.elapsed()
    );
    assert_eq!(fake.requests_to(&manifest_path("v1")).len(), 3);
}

/// A registry offering Basic and Bearer, in one header or in two: the client takes Bearer.
async fn bearer_is_preferred(split: bool) {
    let bytes = manifest("several challenges");
    let fake = Fake::start({
        let bytes = bytes.clone();
        move |request| {
            if request.path() == "/token" {
                return Reply::ok(r#"{"token":"t-1"}"#);
            }
            match request.header("authorization") {
                Some("Bearer t-1") => manifest_reply(&bytes),
                _ => {
                    let host = request.header("host").unwrap_or_default();
                    let basic = r#"Basic realm="a, \"quoted\" realm""#;
                    let bearer = format!(
                        r#"Bearer realm="http://{host}/token",service="fake, registry",scope="repository:{REPO}:pull,push""#
                    );
                    let reply = Reply::status(401);
                    if split {
                        reply
                            .header("WWW-Authenticate", basic)
                            .header("WWW-Authenticate", "Newfangled")
                            .header("WWW-Authenticate", &bearer)
                    } else {
                        reply.header("WWW-Authenticate", &format!("Newfangled, {basic}, {bearer}"))
                    }
                }
            }
        }
    })
    .await;
    let client = with_basic(&fake.host(), "bob", "pw");
    let fetched = within(client.get_manifest(&tagged(&fake)))
        .await
        .expect("pull with a token");
    assert_eq!(fetched.bytes, bytes);
    let tokens = fake.requests_to("/token");
    assert_eq!(tokens.len(), 1, "{tokens:#?}");
    assert_eq!(tokens[0].query("service"), ["fake, registry"]);
    assert!(
        tokens[0]
            .header("authorization")
            .is_some_and(|v| v.starts_with("Basic ")),
        "the password goes to the token endpoint only"
    );
    let pulls = fake.requests_to(&manifest_path("v1"));
    assert!(
        pulls
            .iter()
            .all(|r| !r.header("authorization").is_some_and(|v| v.starts_with("Basic "))),
        "the registry itself never gets the password: {pulls:#?}"
    );
}

#[tokio::test]
async fn bearer_is_preferred_among_challenges_in_one_header() {
    bearer_is_preferred(false).await;
}

#[tokio::test]
async fn bearer_is_preferred_among_challenge_header_lines() {
    bearer_is_preferred(true).await;
}

/// Basic credentials that note which thread was asked for them.
struct Watched {
    threads: Mutex<Vec<std::thread::ThreadId>>,
    panic: bool,
}

impl CredentialSource for Watched {
    fn credential(&self, _registry: &str) -> Option<Credential> {
        self.threads.lock().unwrap().push(std::thread::current().id());
        assert!(!self.panic, "a credential helper that crashes");
        Some(Credential::Basic {
            username: "u".into(),
            password: Secret::new("p"),
        })
    }
}

fn basic_challenge(bytes: Vec<u8>) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |request| match request.header("authorization") {
        Some(v) if v.starts_with("Basic ") => manifest_reply(&bytes),
        _ => Reply::status(401).header("WWW-Authenticate", r#"Basic realm="r""#),
    }
}

#[tokio::test]
async fn credential_sources_are_asked_off_the_runtime_thread() {
    let bytes = manifest("helper");
    let fake = Fake::start(basic_challenge(bytes.clone())).await;
    let source = Arc::new(Watched {
        threads: Mutex::new(Vec::new()),
        panic: false,
    });
    let client = Client::new(config(0), source.clone()).unwrap();
    let fetched = within(client.get_manifest(&tagged(&fake)))
        .await
        .expect("pull with Basic credentials");
    assert_eq!(fetched.bytes, bytes);
    let threads = source.threads.lock().unwrap().clone();
    assert!(!threads.is_empty(), "the source was never asked");
    // This test's runtime runs on this thread alone: a lookup here would block it.
    let runtime = std::thread::current().id();
    assert!(
        threads.iter().all(|t| *t != runtime),
        "a credential lookup ran on the runtime's thread"
    );
}

#[tokio::test]
async fn a_crashed_credential_lookup_keeps_its_cause() {
    let fake = Fake::start(basic_challenge(manifest("crash"))).await;
    let source = Arc::new(Watched {
        threads: Mutex::new(Vec::new()),
        panic: true,
    });
    let client = Client::new(config(0), source).unwrap();
    let err = within(client.get_manifest(&tagged(&fake)))
        .await
        .expect_err("the lookup crashed");
    assert!(matches!(err, RegistryError::CredentialLookup { .. }), "{err:?}");
    let cause = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<tokio::task::JoinError>())
        .expect("the join error is the cause");
    assert!(cause.is_panic());
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_retried_by_the_policy_once_over() {
    let fake = Fake::start(|request| {
        if request.path() == "/token" {
            return Reply::hang_up();
        }
        let host = request.header("host").unwrap_or_default();
        Reply::status(401).header(
            "WWW-Authenticate",
            &format!(r#"Bearer realm="http://{host}/token",service="svc""#),
        )
    })
    .await;
    let retries = 2;
    let client = anonymous(retries);
    // The first pull learns the challenge from a 401; the second asks for a token up front.
    for pulls in 1..=2 {
        let err = within(client.get_manifest(&tagged(&fake)))
            .await
            .expect_err("no token, no manifest");
        assert!(err.is_network(), "{err:?}");
        assert_eq!(
            fake.requests_to("/token").len(),
            pulls * (retries as usize + 1),
            "token requests are retried by the one policy, not once more per registry attempt"
        );
    }
}

/// Pushes `content` to `fake` in PATCH chunks of 4,000 bytes, three retries allowed: the
/// chunked-upload tests' client and call.
async fn push_in_chunks(
    fake: &Fake,
    content: &[u8],
    descriptor: &Descriptor,
) -> ukpm_registry::Result<PushOutcome> {
    let client = Client::new(
        ClientConfig {
            chunk_threshold: 1,
            chunk_size: 4_000,
            ..config(3)
        },
        Arc::new(Anonymous),
    )
    .unwrap();
    let body = Bytes::copy_from_slice(content);
    within(
        client.push_blob(&tagged(fake), descriptor, None, &move |offset, len| {
            reqwest::Body::from(body.slice(offset as usize..(offset + len) as usize))
        }),
    )
    .await
}

/// The `Content-Range` of every PATCH `fake` received, in order.
fn patch_ranges(fake: &Fake) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.header("content-range").unwrap_or_default().to_string())
        .collect()
}
