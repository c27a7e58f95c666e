//! `ukpm copy` between two real `docker-registry` processes and within one: byte-identical
//! documents (skopeo as the oracle), nothing uploaded twice (the report and a proxy's byte
//! counters), mounts on one registry, chosen platforms, a large blob in bounded memory, and OCI
//! referrers through the `sha256-<hex>` tag fallback (docker-registry 2.8 has no referrers API).

mod common;

use std::sync::Arc;

use common::{UKPM, pack, ukpm};
use serde_json::Value;
use ukpm::registry::{Anonymous, Client, ClientConfig, referrers_tag};
use ukpm::{Descriptor, Digest, Reference};
use ukpm_test::TestEnv;
use ukpm_test::proxy::{Faults, Proxy};
use ukpm_test::registry::Registry;

/// `skopeo inspect --raw` of a reference: the document exactly as the registry serves it.
fn raw(env: &TestEnv, reference: &str) -> String {
    common::skopeo_raw(env, reference)
}

/// Two platforms of `multi:1` packed and pushed to `registry` as `uk/multi:1`.
fn push_multi(env: &TestEnv, registry: &str) -> String {
    pack(env, "multi:1", "x86_64", "qemu", &[]).assert_success();
    pack(env, "multi:1", "arm64", "fc", &[]).assert_success();
    let remote = format!("{registry}/uk/multi:1");
    ukpm(env)
        .args(["push", "multi:1", "--to", &remote])
        .run()
        .assert_success();
    remote
}

fn copy(env: &TestEnv, args: &[&str]) -> Value {
    let out = ukpm(env).args(["--json", "copy"]).args(args).run();
    out.assert_success();
    out.json()
}

/// The manifests an index names, by digest.
fn manifests(index: &str) -> Vec<String> {
    let index: Value = serde_json::from_str(index).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn copy_between_registries_is_byte_identical_and_a_second_copy_uploads_nothing() {
    let env = TestEnv::new();
    let (a, b) = (Registry::plain(), Registry::plain());
    let source = push_multi(&env, &a.host());
    let proxy = Proxy::start(b.host(), Faults::none());
    let target = format!("{}/mirror/multi:1", proxy.addr());
    // Nothing in the store is needed: a fresh one copies as well.
    let fresh = TestEnv::new();

    let first = copy(&fresh, &[&source, &target]);
    let index = raw(&env, &source);
    assert_eq!(
        first["digest"],
        Digest::of(index.trim_end().as_bytes()).to_string(),
        "{first}"
    );
    assert_eq!(first["digest_kept"], true);
    assert_eq!(first["platforms"].as_array().unwrap().len(), 2, "{first}");
    assert!(first["copied"].as_u64().unwrap() >= 3, "{first}");
    assert_eq!(first["mounted"], 0);
    assert_eq!(
        first["manifests_written"], 3,
        "two manifests and the index: {first}"
    );
    let copied = raw(&env, &format!("{}/mirror/multi:1", b.host()));
    assert_eq!(copied, index, "the index is copied byte for byte");
    for digest in manifests(&index) {
        assert_eq!(
            raw(&env, &format!("{}/mirror/multi@{digest}", b.host())),
            raw(&env, &format!("{}/uk/multi@{digest}", a.host())),
        );
    }
    assert!(
        ukpm(&fresh).args(["--json", "ls"]).run().json()["packages"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a copy touches no store"
    );

    let before = proxy.stats();
    let second = copy(&fresh, &[&source, &target]);
    let up = proxy.stats().bytes_up - before.bytes_up;
    assert_eq!(second["copied"], 0, "{second}");
    assert_eq!(second["copied_bytes"], 0, "{second}");
    assert_eq!(second["manifests_written"], 0, "{second}");
    assert_eq!(second["existed"], first["copied"], "{second}");
    // Requests only (HEADs): no blob and no document went up again.
    assert!(up < 8 << 10, "a second copy sent {up} bytes to the destination");
}

#[test]
fn copy_within_one_registry_mounts_every_blob() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let source = push_multi(&env, &registry.host());
    let target = format!("{}/other/multi:2", registry.host());
    let report = copy(&env, &[&source, &target]);
    assert_eq!(report["copied"], 0, "{report}");
    assert!(report["mounted"].as_u64().unwrap() >= 3, "{report}");
    assert_eq!(raw(&env, &target), raw(&env, &source));
}

#[test]
fn the_cp_alias_and_chosen_platforms_write_a_new_index() {
    let env = TestEnv::new();
    let (a, b) = (Registry::plain(), Registry::plain());
    let source = push_multi(&env, &a.host());
    let target = format!("{}/uk/multi:fc", b.host());
    let out = ukpm(&env)
        .args(["--json", "cp", &source, &target, "--plat", "fc/arm64"])
        .run();
    out.assert_success();
    let report = out.json();
    assert_eq!(report["digest_kept"], false, "{report}");
    assert_eq!(report["platforms"].as_array().unwrap().len(), 1, "{report}");
    let index = raw(&env, &target);
    assert_eq!(
        report["digest"],
        Digest::of(index.trim_end().as_bytes()).to_string()
    );
    let kept = manifests(&index);
    assert_eq!(kept.len(), 1);
    assert!(manifests(&raw(&env, &source)).contains(&kept[0]));
    let doc: Value = serde_json::from_str(&index).unwrap();
    assert_eq!(doc["manifests"][0]["platform"]["os"], "fc");

    let none = ukpm(&env)
        .args(["--json", "copy", &source, &target, "--plat", "xen"])
        .run();
    none.assert_code(1);
    assert_eq!(none.json()["error"]["code"], "not_found");
}

#[test]
fn a_large_blob_is_streamed_in_bounded_memory() {
    const SIZE: usize = 64 << 20;
    let env = TestEnv::new();
    let (a, b) = (Registry::plain(), Registry::plain());
    // Incompressible enough, and not all one byte.
    let mut kernel = Vec::with_capacity(SIZE);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while kernel.len() < SIZE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        kernel.extend_from_slice(&x.to_le_bytes());
    }
    env.write("kernel", &kernel, 0o644);
    drop(kernel);
    pack(&env, "big:1", "x86_64", "qemu", &[]).assert_success();
    let source = format!("{}/uk/big:1", a.host());
    ukpm(&env)
        .args(["push", "big:1", "--to", &source])
        .run()
        .assert_success();
    let proxy = Proxy::start(b.host(), Faults::none());
    let target = format!("{}/uk/big:1", proxy.addr());
    let out = env
        .command("/usr/bin/time")
        .args(["-v", UKPM, "--json", "copy", &source, &target])
        .run();
    out.assert_success();
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(report["copied_bytes"].as_u64().unwrap() > SIZE as u64, "{report}");
    assert!(proxy.stats().bytes_up > SIZE as u64);
    let peak_kib: u64 = out
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in:\n{}", out.stderr));
    assert!(
        peak_kib * 1024 < (SIZE as u64) / 2,
        "copying a {SIZE}-byte blob peaked at {peak_kib} KiB"
    );
    assert_eq!(raw(&env, &format!("{}/uk/big:1", b.host())), raw(&env, &source));
}

/// Pushes an SBOM-like referrer of `subject` into `repository` of `registry`, with the
/// `sha256-<hex>` tag listing it, as a client of a registry without the referrers API does.
/// Returns the referrer's manifest bytes and digest.
fn push_referrer(registry: &str, subject: &Descriptor) -> (Vec<u8>, Digest) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::new(ClientConfig::default(), Arc::new(Anonymous)).unwrap();
        let base: Reference = format!("{registry}/uk/multi:1").parse().unwrap();
        let mut digests = Vec::new();
        for (media, bytes) in [
            ("application/vnd.oci.empty.v1+json", b"{}".to_vec()),
            ("application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec()),
        ] {
            let descriptor = Descriptor::for_bytes(media, &bytes);
            let body = move |offset: u64, len: u64| {
                ukpm::registry::Body::from(bytes[offset as usize..(offset + len) as usize].to_vec())
            };
            client.push_blob(&base, &descriptor, None, &body).await.unwrap();
            digests.push(descriptor);
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/spdx+json",
            "config": digests[0],
            "layers": [digests[1]],
            "subject": subject,
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let digest = Digest::of(&bytes);
        let by_digest: Reference = format!("{registry}/uk/multi@{digest}").parse().unwrap();
        let media = "application/vnd.oci.image.manifest.v1+json";
        client
            .put_manifest(&by_digest, media, bytes.clone().into())
            .await
            .unwrap();
        let mut entry = Descriptor::new(media, digest, bytes.len() as u64);
        entry.artifact_type = Some("application/spdx+json".into());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry],
        });
        let tag = base.with_tag(&referrers_tag(subject.digest)).unwrap();
        client
            .put_manifest(
                &tag,
                "application/vnd.oci.image.index.v1+json",
                serde_json::to_vec(&index).unwrap().into(),
            )
            .await
            .unwrap();
        (bytes, digest)
    })
}

#[test]
fn referrers_come_along_through_the_fallback_tag() {
    let env = TestEnv::new();
    let (a, b) = (Registry::plain(), Registry::plain());
    let source = push_multi(&env, &a.host());
    let index = raw(&env, &source);
    let index = index.trim_end();
    let subject = Descriptor::new(
        "application/vnd.oci.image.index.v1+json",
        Digest::of(index.as_bytes()),
        index.len() as u64,
    );
    let (referrer, digest) = push_referrer(&a.host(), &subject);
    let tag = referrers_tag(subject.digest);

    // Without --referrers, they stay behind.
    let plain = copy(&env, &[&source, &format!("{}/uk/plain:1", b.host())]);
    assert_eq!(plain["referrers"], 0, "{plain}");

    let target = format!("{}/uk/multi:1", b.host());
    let report = copy(&env, &["--referrers", &source, &target]);
    assert_eq!(report["referrers"], 1, "{report}");
    assert_eq!(
        raw(&env, &format!("{}/uk/multi@{digest}", b.host()))
            .trim_end()
            .as_bytes(),
        referrer.as_slice()
    );
    assert_eq!(
        raw(&env, &format!("{}/uk/multi:{tag}", b.host())),
        raw(&env, &format!("{}/uk/multi:{tag}", a.host())),
        "the fallback tag is copied exactly"
    );
    // Again: all there, nothing written.
    let again = copy(&env, &["--referrers", &source, &target]);
    assert_eq!(again["manifests_written"], 0, "{again}");
    assert_eq!(again["copied"], 0, "{again}");
}
