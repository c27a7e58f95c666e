//! `ukpm inspect --remote`, `ukpm digest` and `ukpm delete` against real `docker-registry`
//! processes, with skopeo's `inspect --raw` as the oracle for the registry's exact bytes.

mod common;

use common::{pack, pack_conformance, ukpm};
use serde_json::Value;
use ukpm_test::registry::Registry;
use ukpm_test::{TestEnv, conformance, require_program, sha256_digest};

/// The registry's exact document bytes for `reference`, as skopeo reads them.
fn skopeo_raw(env: &TestEnv, reference: &str) -> String {
    common::skopeo_raw(env, reference).trim_end().to_string()
}

/// Packs the conformance package and pushes it to `registry` as `uk/hello:v1`.
fn push_conformance(env: &TestEnv, registry: &Registry) -> String {
    pack_conformance(env).assert_success();
    let target = format!("{}/uk/hello:v1", registry.host());
    ukpm(env)
        .args(["push", conformance::REFERENCE, "--to", &target])
        .run()
        .assert_success();
    target
}

/// Packs `multi:1` for two platforms and pushes it to `registry` as `uk/multi:1`.
fn push_multi(env: &TestEnv, registry: &Registry) -> String {
    pack(env, "multi:1", "x86_64", "qemu", &[]).assert_success();
    pack(env, "multi:1", "arm64", "fc", &[]).assert_success();
    let target = format!("{}/uk/multi:1", registry.host());
    ukpm(env)
        .args(["push", "multi:1", "--to", &target])
        .run()
        .assert_success();
    target
}

#[test]
fn inspect_remote_shows_the_registry_documents_with_their_exact_digests() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let target = push_conformance(&env, &registry);
    let raw = skopeo_raw(&env, &target);

    let out = ukpm(&env).args(["--json", "inspect", "--remote", &target]).run();
    out.assert_success();
    let doc = out.json();
    assert_eq!(doc["source"], "remote");
    assert_eq!(doc["reference"], target);
    assert_eq!(doc["descriptor"]["digest"], sha256_digest(&raw));
    assert_eq!(doc["descriptor"]["digest"], conformance::INDEX);
    assert_eq!(doc["index"], serde_json::from_str::<Value>(&raw).unwrap());
    let manifests = doc["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1, "{doc}");
    assert_eq!(
        manifests[0]["manifest"],
        serde_json::from_str::<Value>(conformance::MANIFEST_JSON).unwrap()
    );
    assert_eq!(
        manifests[0]["config"],
        serde_json::from_str::<Value>(conformance::CONFIG_JSON).unwrap()
    );
    assert_eq!(manifests[0]["package"]["manifest"], conformance::MANIFEST);

    // The local inspect has the same shape, with `"source": "local"`.
    let local = ukpm(&env)
        .args(["--json", "inspect", conformance::REFERENCE])
        .run()
        .json();
    assert_eq!(local["source"], "local");
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&local), keys(&doc));
    assert_eq!(local["manifests"][0]["manifest"], manifests[0]["manifest"]);
    assert_eq!(local["manifests"][0]["config"], manifests[0]["config"]);

    // For people: the digest and a summary per platform; `--raw` the documents.
    let human = ukpm(&env).args(["inspect", "--remote", &target]).run();
    human.assert_success();
    assert!(human.stdout.contains(conformance::INDEX), "{}", human.stdout);
    assert!(human.stdout.contains("on the registry"), "{}", human.stdout);
    assert!(
        human
            .stdout
            .contains("  kconfig   3 entries: CONFIG_ARCH_X86_64=y"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("  kernel    /unikraft/bin/kernel  layer 2.0 KiB"),
        "{}",
        human.stdout
    );
    let raw = ukpm(&env).args(["inspect", "--remote", "--raw", &target]).run();
    raw.assert_success();
    assert!(raw.stdout.contains("\nindex:\n{"), "{}", raw.stdout);
}

#[test]
fn inspect_remote_of_a_multi_platform_index_and_of_one_manifest() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let target = push_multi(&env, &registry);
    let raw = skopeo_raw(&env, &target);
    let index: Value = serde_json::from_str(&raw).unwrap();

    let doc = ukpm(&env)
        .args(["--json", "inspect", "--remote", &target])
        .run()
        .json();
    assert_eq!(doc["descriptor"]["digest"], sha256_digest(&raw));
    let platforms: Vec<String> = doc["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{}/{}", m["package"]["platform"], m["package"]["architecture"]))
        .collect();
    assert_eq!(platforms, [r#""qemu"/"x86_64""#, r#""fc"/"arm64""#], "{doc}");

    // One manifest by digest: no index, the platform from its config.
    let manifest = index["manifests"][1]["digest"].as_str().unwrap();
    let by_digest = format!("{}/uk/multi@{manifest}", registry.host());
    let raw_manifest = skopeo_raw(&env, &by_digest);
    let one = ukpm(&env)
        .args(["--json", "inspect", "--remote", &by_digest])
        .run();
    one.assert_success();
    let one = one.json();
    assert_eq!(one["descriptor"]["digest"], sha256_digest(&raw_manifest));
    assert_eq!(one["index"], Value::Null);
    assert_eq!(one["manifests"][0]["package"]["platform"], "fc", "{one}");
    assert_eq!(one["manifests"][0]["package"]["architecture"], "arm64", "{one}");
}

#[test]
fn inspect_falls_back_to_the_registry_when_the_store_lacks_the_name() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let target = push_conformance(&env, &registry);

    let other = TestEnv::new();
    for alias in ["inspect", "info"] {
        let out = ukpm(&other).args(["--json", alias, &target]).run();
        out.assert_success();
        assert!(
            out.stderr
                .contains("not in the store; reading it from the registry"),
            "{}",
            out.stderr
        );
        assert_eq!(out.json()["source"], "remote");
        assert_eq!(out.json()["descriptor"]["digest"], conformance::INDEX);
    }
    // Nothing was stored.
    assert!(
        ukpm(&other).args(["--json", "ls"]).run().json()["packages"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Absent from both: the store's not-found error, exit 1.
    let missing = ukpm(&other)
        .args(["--json", "inspect", &format!("{}/uk/nothing:v1", registry.host())])
        .run();
    missing.assert_code(1);
    assert_eq!(missing.json()["error"]["code"], "not_found");

    // A registry that cannot be reached: still "not in the store", the reason a note.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let offline = ukpm(&other)
        .args(["--json", "inspect", &format!("127.0.0.1:{port}/uk/hello:v1")])
        .run();
    offline.assert_code(1);
    assert_eq!(offline.json()["error"]["code"], "not_found", "{}", offline.stdout);
    assert!(
        offline.stderr.contains("cannot ask the registry either"),
        "{}",
        offline.stderr
    );
    // Asked for explicitly, the registry's failure is the error.
    let remote = ukpm(&other)
        .args([
            "--json",
            "inspect",
            "--remote",
            &format!("127.0.0.1:{port}/uk/hello:v1"),
        ])
        .run();
    remote.assert_code(1);
    assert_eq!(remote.json()["error"]["code"], "network", "{}", remote.stdout);
}

#[test]
fn digest_resolves_tags_digests_and_platforms_like_skopeo() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let target = push_multi(&env, &registry);
    let raw = skopeo_raw(&env, &target);
    let index: Value = serde_json::from_str(&raw).unwrap();

    let before = registry.requests().len();
    let out = ukpm(&env).args(["digest", &target]).run();
    out.assert_success();
    assert_eq!(out.stdout.trim_end(), sha256_digest(&raw));
    // A HEAD alone (after the client's probe of `/v2/`): docker-registry sends
    // Docker-Content-Digest.
    let asked: Vec<String> = registry.requests()[before..].to_vec();
    assert!(
        asked
            .iter()
            .filter(|r| *r != "GET /v2/")
            .all(|r| r.starts_with("HEAD ")),
        "digest sent more than a HEAD: {asked:?}"
    );

    let by_digest = format!("{}/uk/multi@{}", registry.host(), sha256_digest(&raw));
    let out = ukpm(&env).args(["--json", "digest", &by_digest]).run();
    out.assert_success();
    assert_eq!(out.json()["digest"], sha256_digest(&raw));

    for (platform, entry) in [("qemu/x86_64", 0), ("fc/arm64", 1), ("fc", 1)] {
        let manifest = index["manifests"][entry]["digest"].as_str().unwrap();
        let raw_manifest = skopeo_raw(&env, &format!("{}/uk/multi@{manifest}", registry.host()));
        let out = ukpm(&env).args(["digest", &target, "--platform", platform]).run();
        out.assert_success();
        assert_eq!(out.stdout.trim_end(), sha256_digest(&raw_manifest), "{platform}");
    }

    // A single manifest: its config says its platform.
    let manifest = index["manifests"][1]["digest"].as_str().unwrap();
    let one = format!("{}/uk/multi@{manifest}", registry.host());
    let out = ukpm(&env).args(["digest", &one, "--platform", "fc/arm64"]).run();
    out.assert_success();
    assert_eq!(out.stdout.trim_end(), manifest);
    let other = ukpm(&env)
        .args(["--json", "digest", &one, "--platform", "qemu"])
        .run();
    other.assert_code(1);
    assert_eq!(other.json()["error"]["code"], "not_found");

    let none = ukpm(&env)
        .args(["--json", "digest", &target, "--platform", "xen/x86_64"])
        .run();
    none.assert_code(1);
    assert_eq!(none.json()["error"]["code"], "not_found");
    let missing = ukpm(&env)
        .args(["digest", &format!("{}/uk/multi:nope", registry.host())])
        .run();
    missing.assert_code(1);
}

#[test]
fn delete_removes_the_tag_target_where_the_registry_allows_it() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let target = push_multi(&env, &registry);
    let digest = sha256_digest(skopeo_raw(&env, &target));

    let out = ukpm(&env).args(["--json", "delete", &target]).run();
    out.assert_success();
    assert_eq!(out.json()["deleted"], digest);
    assert_eq!(out.json()["reference"], target);

    let gone = ukpm(&env).args(["--json", "digest", &target]).run();
    gone.assert_code(1);
    assert_eq!(gone.json()["error"]["code"], "not_found");
    let skopeo = require_program("skopeo", "skopeo");
    env.command(skopeo)
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ])
        .run()
        .assert_failure();

    // By digest: one of the platform manifests, still there after its index went.
    let local = ukpm(&env).args(["--json", "ls"]).run().json();
    let manifest = local["packages"][0]["manifest"].as_str().unwrap().to_string();
    let by_digest = format!("{}/uk/multi@{manifest}", registry.host());
    let out = ukpm(&env).args(["delete", &by_digest]).run();
    out.assert_success();
    assert!(out.stdout.contains(&manifest), "{}", out.stdout);
    ukpm(&env).args(["digest", &by_digest]).run().assert_code(1);
}

#[test]
fn delete_says_why_when_the_registry_does_not_allow_it() {
    let env = TestEnv::new();
    let registry = Registry::plain_without_delete();
    let target = push_conformance(&env, &registry);

    let out = ukpm(&env).args(["delete", &target]).run();
    out.assert_code(1);
    assert!(out.stderr.contains("storage.delete.enabled"), "{}", out.stderr);
    insta::assert_snapshot!(
        "delete_refused",
        out.snapshot_text().replace(&registry.host(), "REGISTRY")
    );
    let json = ukpm(&env).args(["--json", "delete", &target]).run();
    json.assert_code(1);
    assert!(
        json.json()["error"]
            .to_string()
            .contains("does not support deleting"),
        "{}",
        json.stdout
    );
    // Still there.
    assert_eq!(skopeo_raw(&env, &target), conformance::INDEX_JSON);
}

#[test]
fn delete_on_a_token_registry_asks_for_the_delete_action() {
    let env = TestEnv::new();
    let registry = Registry::token("tester", "tok-pw");
    let docker = env.path("docker");
    env.write(
        "docker/config.json",
        format!(
            r#"{{"auths":{{"{}":{{"auth":"dGVzdGVyOnRvay1wdw=="}}}}}}"#,
            registry.host()
        ),
        0o600,
    );
    pack_conformance(&env).assert_success();
    let target = format!("{}/team/a:v1", registry.host());
    ukpm(&env)
        .env("DOCKER_CONFIG", &docker)
        .args(["push", conformance::REFERENCE, "--to", &target])
        .run()
        .assert_success();
    let out = ukpm(&env)
        .env("DOCKER_CONFIG", &docker)
        .args(["delete", &target])
        .run();
    out.assert_success();
    // The token asked for carries `delete`, which `pull,push` does not grant.
    let asked_delete = registry
        .token_requests()
        .iter()
        .any(|r| r.granted.iter().any(|s| s == "repository:team/a:delete"));
    assert!(asked_delete, "{:?}", registry.token_requests());
    ukpm(&env)
        .env("DOCKER_CONFIG", &docker)
        .args(["digest", &target])
        .run()
        .assert_code(1);
}
