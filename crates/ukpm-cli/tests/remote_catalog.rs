//! `ukpm ls --remote`, `update`, `tags` and `source` against real `docker-registry` processes:
//! several repositories and tags pushed with the CLI, filters, the offline cache (its raw bytes
//! and its age), a registry that refuses `_catalog`, and the sources in the config file.

mod common;

use std::collections::BTreeSet;

use common::{pack, ukpm};
use serde_json::Value;
use ukpm_test::registry::Registry;
use ukpm_test::{TestEnv, sha256_digest};

/// Packs `app` for qemu/x86_64 and fc/x86_64, then pushes it as `HOST/REPO:TAG` for each target.
fn publish(env: &TestEnv, targets: &[String]) {
    pack(env, "app:v1", "x86_64", "qemu", &[]).assert_success();
    pack(env, "app:v1", "x86_64", "fc", &[]).assert_success();
    for target in targets {
        ukpm(env)
            .args(["push", "app:v1", "--to", target])
            .run()
            .assert_success();
    }
}

/// The rows of a remote listing as `reference plat/arch`, sorted.
fn remote_rows(out: &Value) -> BTreeSet<String> {
    out["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}/{}",
                p["reference"].as_str().unwrap(),
                p["platform"].as_str().unwrap(),
                p["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn remote_ls_lists_every_repository_and_tag_and_filters_like_ls() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let host = registry.host();
    let targets: Vec<String> = ["uk/nginx:1.25", "uk/nginx:latest", "uk/redis:7", "tools/hello:v1"]
        .iter()
        .map(|t| format!("{host}/{t}"))
        .collect();
    publish(&env, &targets);

    let out = ukpm(&env)
        .args(["--json", "--registry", &host, "ls", "--remote", "--update"])
        .run();
    out.assert_success();
    let json = out.json();
    let mut expected = BTreeSet::new();
    for t in &targets {
        expected.insert(format!("{t} qemu/x86_64"));
        expected.insert(format!("{t} fc/x86_64"));
    }
    assert_eq!(remote_rows(&json), expected, "{json}");
    assert_eq!(json["warnings"], serde_json::json!([]));
    assert_eq!(
        json["cached_at"],
        Value::Null,
        "a live listing is not from the cache"
    );

    // The platform filter and a name glob, as the local ls has them.
    let out = ukpm(&env)
        .args([
            "--json",
            "--registry",
            &host,
            "ls",
            "--remote",
            "--plat",
            "fc",
            "uk/nginx*",
        ])
        .run();
    out.assert_success();
    let rows = remote_rows(&out.json());
    assert_eq!(
        rows,
        BTreeSet::from([
            format!("{host}/uk/nginx:1.25 fc/x86_64"),
            format!("{host}/uk/nginx:latest fc/x86_64"),
        ])
    );
    // `--kconfig` of an entry no kernel has matches nothing.
    let out = ukpm(&env)
        .args([
            "--json",
            "--registry",
            &host,
            "ls",
            "--remote",
            "--kconfig",
            "CONFIG_NOPE=y",
        ])
        .run();
    out.assert_success();
    assert!(remote_rows(&out.json()).is_empty());

    // `tags`, every page.
    let out = ukpm(&env)
        .args(["--json", "--registry", &host, "tags", &format!("{host}/uk/nginx")])
        .run();
    out.assert_success();
    let json = out.json();
    assert_eq!(json["repository"], format!("{host}/uk/nginx"));
    let mut tags: Vec<String> = serde_json::from_value(json["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["1.25", "latest"]);
    let human = ukpm(&env).args(["tags", &format!("{host}/uk/redis")]).run();
    human.assert_success();
    assert_eq!(human.stdout, "7\n");
}

#[test]
fn update_caches_raw_bytes_and_ls_remote_works_offline_and_shows_its_age() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let host = registry.host();
    let targets = vec![format!("{host}/uk/app:v1"), format!("{host}/uk/app:v2")];
    publish(&env, &targets);

    let updated = ukpm(&env).args(["--json", "--registry", &host, "upd"]).run();
    updated.assert_success();
    assert_eq!(updated.json()["packages"], 4, "{}", updated.stdout);

    // The cache holds the registry's bytes under their own digests: the index's digest is the
    // one the registry gives.
    let cache = env.path(".cache/ukpm/remote");
    let index: Value = serde_json::from_slice(&env.read(".cache/ukpm/remote/index.json")).unwrap();
    let entries = index["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    let blobs = cache.join("blobs/sha256");
    let mut count = 0;
    for file in fs_err::read_dir(&blobs).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(
            sha256_digest(fs_err::read(&path).unwrap()),
            format!("sha256:{name}")
        );
        count += 1;
    }
    assert!(count >= 3, "index + 2 manifests, got {count}");
    let live = ukpm(&env)
        .args(["--json", "--registry", &host, "ls", "--remote", "--update"])
        .run();
    live.assert_success();
    let index_digest = live.json()["packages"][0]["index"].as_str().unwrap().to_string();
    assert!(blobs.join(index_digest.trim_start_matches("sha256:")).exists());

    // A listing by name refreshes that name only: the cache still answers for everything.
    let expected = remote_rows(&live.json());
    ukpm(&env)
        .args([
            "--json",
            "--registry",
            &host,
            "ls",
            "--remote",
            "--update",
            "uk/app:v2",
        ])
        .run()
        .assert_success();
    let whole = ukpm(&env)
        .args(["--json", "--registry", &host, "ls", "--remote"])
        .run();
    whole.assert_success();
    assert_eq!(remote_rows(&whole.json()), expected, "{}", whole.stdout);

    // With the registry gone, the listing comes from the cache, and says how old it is.
    drop(registry);
    let cached = ukpm(&env)
        .args(["--json", "--registry", &host, "ls", "--remote"])
        .run();
    cached.assert_success();
    let json = cached.json();
    assert_eq!(remote_rows(&json), expected);
    assert!(
        json["cached_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{json}"
    );
    let human = ukpm(&env).args(["--registry", &host, "ls", "--remote"]).run();
    human.assert_success();
    assert!(
        human
            .stderr
            .contains("from the cache, updated less than a minute ago"),
        "{}",
        human.stderr
    );
    assert!(human.stdout.contains("uk/app"), "{}", human.stdout);
    // `--update` cannot refresh without the registry: an error, not stale rows.
    ukpm(&env)
        .args(["--registry", &host, "ls", "--remote", "--update"])
        .run()
        .assert_failure();
}

#[test]
fn a_registry_that_refuses_the_catalog_still_lists_named_repositories_and_says_why() {
    let env = TestEnv::new();
    let registry = Registry::token("lister", "pw-123");
    let host = registry.host();
    ukpm(&env)
        .args(["login", &host, "-u", "lister", "--password-stdin"])
        .stdin("pw-123\n")
        .run()
        .assert_success();
    publish(&env, &[format!("{host}/hidden/app:v1")]);

    let out = ukpm(&env)
        .args(["--json", "--registry", &host, "ls", "--remote", "--update"])
        .run();
    out.assert_success();
    let json = out.json();
    assert!(remote_rows(&json).is_empty(), "{json}");
    let warning = json["warnings"][0].as_str().unwrap();
    assert!(warning.contains("lists no repositories"), "{warning}");

    let named = format!("{host}/hidden/app");
    let out = ukpm(&env)
        .args([
            "--json",
            "--registry",
            &host,
            "ls",
            "--remote",
            "--update",
            &named,
        ])
        .run();
    out.assert_success();
    let json = out.json();
    assert_eq!(
        remote_rows(&json),
        BTreeSet::from([format!("{named}:v1 qemu/x86_64"), format!("{named}:v1 fc/x86_64"),])
    );
    let human = ukpm(&env)
        .args(["--registry", &host, "ls", "--remote", "--update", &named])
        .run();
    human.assert_success();
    assert!(human.stderr.contains("lists no repositories"), "{}", human.stderr);

    // The cache answers for the named repository now; a name it never asked for is fetched.
    let cached = ukpm(&env)
        .args(["--json", "--registry", &host, "ls", "--remote", &named])
        .run();
    cached.assert_success();
    assert!(cached.json()["cached_at"].is_string());
    assert_eq!(remote_rows(&cached.json()).len(), 2);
    let other = ukpm(&env)
        .args([
            "--json",
            "--registry",
            &host,
            "ls",
            "--remote",
            &format!("{host}/hidden/none"),
        ])
        .run();
    other.assert_success();
    assert_eq!(other.json()["cached_at"], Value::Null, "{}", other.stdout);
}

#[test]
fn sources_are_kept_in_the_config_file() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    let host = registry.host();
    let config = env.write(
        ".config/ukpm/config.json",
        "{\n  \"timeout\": 20,\n  \"registries\": [\"a.example\"],\n  \"concurrency\": 3\n}\n",
        0o644,
    );
    let add = ukpm(&env).args(["--json", "source", "add", &host]).run();
    add.assert_success();
    assert_eq!(add.json()["sources"], serde_json::json!(["a.example", host]));
    // Again: a note, not a second entry.
    let again = ukpm(&env).args(["src", &host]).run();
    again.assert_success();
    assert!(again.stderr.contains("already a source"), "{}", again.stderr);

    // An address that is no registry is refused unless forced.
    let nowhere = "127.0.0.1:1";
    let refused = ukpm(&env).args(["source", "add", nowhere]).run();
    refused.assert_failure();
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    ukpm(&env)
        .args(["source", "add", "--force", nowhere])
        .run()
        .assert_success();
    let listed = ukpm(&env).args(["source", "ls"]).run();
    listed.assert_success();
    assert_eq!(listed.stdout, format!("a.example\n{host}\n{nowhere}\n"));

    ukpm(&env)
        .args(["unsrc", nowhere, "a.example"])
        .run()
        .assert_success();
    let missing = ukpm(&env).args(["source", "rm", "a.example"]).run();
    missing.assert_success();
    assert!(missing.stderr.contains("not a source"), "{}", missing.stderr);

    // The other keys, in their order, are as they were; the settings read the new list.
    let text = fs_err::read_to_string(&config).unwrap();
    let (t, r, c) = (
        text.find("timeout").unwrap(),
        text.find("registries").unwrap(),
        text.find("concurrency").unwrap(),
    );
    assert!(t < r && r < c, "{text}");
    let json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["registries"], serde_json::json!([host]));
    assert_eq!(json["timeout"], 20);
    pack(&env, "app:v1", "x86_64", "qemu", &[]).assert_success();
    ukpm(&env)
        .args(["push", "app:v1", "--to", &format!("{host}/src/app:v1")])
        .run()
        .assert_success();
    let out = ukpm(&env).args(["--json", "ls", "--remote", "--update"]).run();
    out.assert_success();
    assert_eq!(
        remote_rows(&out.json()),
        BTreeSet::from([format!("{host}/src/app:v1 qemu/x86_64")])
    );
}
