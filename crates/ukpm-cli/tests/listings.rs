//! Readable listings (issue 13, point 4): `ls` sorted by name and version, naming the digests
//! it shows, KraftKit's PULLED column, a clear line for an empty store; `inspect`'s summary,
//! `--raw` and its platform filter. On the built binary, against a real registry for pulls.

mod common;

use common::*;
use serde_json::Value;
use ukpm_test::registry::Registry;
use ukpm_test::{TestEnv, conformance};

/// The `ls` table's rows (header first), split into columns.
fn table(env: &TestEnv, args: &[&str]) -> Vec<Vec<String>> {
    let out = ukpm(env).arg("ls").args(args).run();
    out.assert_success();
    out.stdout
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn ls_sorts_by_name_then_tag_as_a_version() {
    let env = TestEnv::new();
    for name in [
        "zeta:1",
        "app:latest",
        "app:1.10",
        "app:v2.0.0-rc.1",
        "app:1.9",
        "app:2.0.0",
        "app:build-10",
        "app:build-9",
    ] {
        pack(&env, name, "x86_64", "qemu", &[]).assert_success();
    }
    let expected = [
        "unikraft.org/app:1.9",
        "unikraft.org/app:1.10",
        "unikraft.org/app:v2.0.0-rc.1",
        "unikraft.org/app:2.0.0",
        "unikraft.org/app:build-9",
        "unikraft.org/app:build-10",
        "unikraft.org/app:latest",
        "unikraft.org/zeta:1",
    ];
    let listed: Vec<String> = rows(&ukpm(&env).args(["--json", "ls"]).run())
        .iter()
        .map(|r| r.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(listed, expected, "index.json holds them in pack order");
    let tags: Vec<String> = table(&env, &[]).iter().skip(1).map(|r| r[1].clone()).collect();
    assert_eq!(
        tags,
        [
            "1.9",
            "1.10",
            "v2.0.0-rc.1",
            "2.0.0",
            "build-9",
            "build-10",
            "latest",
            "1"
        ]
    );

    // The platforms of one name keep their index's (packing) order.
    pack(&env, "multi:1", "x86_64", "qemu", &[]).assert_success();
    pack(&env, "multi:1", "arm64", "fc", &[]).assert_success();
    pack(&env, "multi:1", "x86_64", "fc", &[]).assert_success();
    let multi = rows(&ukpm(&env).args(["--json", "ls", "--name", "multi"]).run());
    assert_eq!(
        multi,
        [
            "unikraft.org/multi:1 x86_64/qemu",
            "unikraft.org/multi:1 arm64/fc",
            "unikraft.org/multi:1 x86_64/fc",
        ]
    );
}

#[test]
fn ls_names_the_index_digest_pack_printed_and_the_manifest_digest() {
    let env = TestEnv::new();
    let packed = pack_conformance(&env);
    packed.assert_success();
    let pinned = packed.stdout.trim().to_string();
    assert_eq!(pinned, format!("{}@{}", conformance::NAME, conformance::INDEX));

    let rows = table(&env, &[]);
    assert_eq!(
        rows[0],
        [
            "NAME", "TAG", "ARCH", "PLAT", "INDEX", "MANIFEST", "SIZE", "CREATED", "PULLED"
        ]
    );
    let hex = |d: &str| d.strip_prefix("sha256:").unwrap()[..12].to_string();
    assert_eq!(rows[1][4], hex(conformance::INDEX), "INDEX is what pack printed");
    assert_eq!(rows[1][5], hex(conformance::MANIFEST));

    let json = ukpm(&env).args(["--json", "ls"]).run().json();
    assert_eq!(json["packages"][0]["index"], conformance::INDEX);
    assert_eq!(json["packages"][0]["manifest"], conformance::MANIFEST);

    // A single-manifest image (another tool's) has no index: `-`.
    let layout = read_json(&env, "store/index.json");
    let mut single = layout.clone();
    single["manifests"][0]["digest"] = conformance::MANIFEST.into();
    single["manifests"][0]["size"] = 1092.into();
    single["manifests"][0]["mediaType"] = "application/vnd.oci.image.manifest.v1+json".into();
    env.write("store/index.json", serde_json::to_vec(&single).unwrap(), 0o644);
    let rows = table(&env, &[]);
    assert_eq!(rows[1][4], "-");
    assert_eq!(rows[1][5], hex(conformance::MANIFEST));
}

#[test]
fn ls_shows_when_a_package_was_pulled_in_every_format() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    pack_conformance(&env).assert_success();
    let remote = format!("{}/uk/hello:v1", registry.host());
    ukpm(&env)
        .args(["push", conformance::REFERENCE, "--to", &remote])
        .run()
        .assert_success();
    ukpm(&env).args(["pull", &remote]).run().assert_success();

    let rows = table(&env, &[]);
    let pulled_cell = |name: &str| {
        rows.iter()
            .find(|r| r[0] == name)
            .map(|r| r[10..].join(" "))
            .unwrap()
    };
    assert_eq!(pulled_cell(conformance::NAME), "never", "packed here");
    let ago = pulled_cell(&format!("{}/uk/hello", registry.host()));
    assert!(
        ago == "now" || ago.ends_with("seconds ago") || ago == "1 second ago",
        "{ago}"
    );

    let json = ukpm(&env).args(["--json", "ls"]).run().json();
    let by_name = |name: &str| -> Value {
        json["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name(conformance::NAME)["pulled"], Value::Null);
    let pulled = by_name(&format!("{}/uk/hello", registry.host()))["pulled"].clone();
    let pulled = pulled.as_str().unwrap();
    let secs = ukpm::parse_rfc3339(pulled).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - secs).abs() < 120, "{pulled}");

    // Recorded on the name's entry in index.json, where skopeo and umoci ignore it.
    let layout = read_json(&env, "store/index.json");
    let entry = layout["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == remote)
        .unwrap();
    assert_eq!(entry["annotations"]["sh.ukpm.pulled"], pulled);

    let list = ukpm(&env).args(["ls", "-o", "list"]).run();
    list.assert_success();
    assert!(list.stdout.contains("pulled: never"), "{}", list.stdout);
    assert!(
        list.stdout.contains(&format!(
            "pulled: {}",
            pulled.trim_end_matches('Z').replace('T', " ")
        )),
        "{}",
        list.stdout
    );
    let yaml = ukpm(&env).args(["ls", "-o", "yaml"]).run();
    yaml.assert_success();
    assert!(yaml.stdout.contains("pulled: null"), "{}", yaml.stdout);
    assert!(
        yaml.stdout.contains(&format!("pulled: {pulled}")),
        "{}",
        yaml.stdout
    );

    // inspect says it too; a pack into the pulled name makes it a local package again.
    let inspect = ukpm(&env).args(["inspect", &remote]).run();
    inspect.assert_success();
    assert!(inspect.stdout.contains("  pulled    20"), "{}", inspect.stdout);
    pack(&env, &remote, "arm64", "fc", &[]).assert_success();
    let json = ukpm(&env).args(["--json", "ls", "--name", &remote]).run().json();
    assert!(
        json["packages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["pulled"].is_null())
    );
}

#[test]
fn ls_of_an_empty_store_says_so_on_stderr_and_prints_nothing() {
    let env = TestEnv::new();
    let out = ukpm(&env).arg("ls").run();
    out.assert_success();
    assert_eq!(out.stdout, "", "no header: `[ -z \"$(ukpm ls)\" ]` tests for it");
    assert!(
        out.stderr.starts_with("note: no packages in the local store ")
            && out.stderr.contains("`ukpm pull REF` fetches one"),
        "{}",
        out.stderr
    );
    assert!(!env.store().exists(), "a read-only command creates no store");
    for format in ["list", "table"] {
        let out = ukpm(&env).args(["ls", "-o", format]).run();
        out.assert_success();
        assert_eq!(out.stdout, "");
        assert!(
            out.stderr.contains("no packages in the local store"),
            "{}",
            out.stderr
        );
    }
    let quiet = ukpm(&env).args(["-q", "ls"]).run();
    quiet.assert_success();
    assert_eq!((quiet.stdout.as_str(), quiet.stderr.as_str()), ("", ""));
    let json = ukpm(&env).args(["--json", "ls"]).run();
    json.assert_success();
    assert_eq!(json.stderr, "", "the document says it");
    assert_eq!(json.json()["packages"], serde_json::json!([]));

    // A filter that matches nothing is not an empty store.
    pack(&env, "app:1", "x86_64", "qemu", &[]).assert_success();
    let none = ukpm(&env).args(["ls", "--plat", "xen"]).run();
    none.assert_success();
    assert_eq!(none.stdout, "");
    assert!(
        none.stderr.contains("no package matches xen/any architecture")
            && none.stderr.contains("holds 1 name:"),
        "{}",
        none.stderr
    );
}

#[test]
fn inspect_summarises_and_shows_documents_with_raw() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    let summary = ukpm(&env).args(["inspect", "helloworld"]).run();
    summary.assert_success();
    let text = &summary.stdout;
    for line in [
        "qemu/x86_64  manifest sha256:43e9c05b",
        "  kernel    /unikraft/bin/kernel  16 B (layer 2.0 KiB)  35de056c2eb6",
        "  initrd    /unikraft/bin/initrd  16 B (layer 2.0 KiB)  f3765f69a382",
        "  cmd       /helloworld --greeting 'hi & bye'",
        "  kconfig   3 entries: CONFIG_ARCH_X86_64=y, CONFIG_KVM_VMM_QEMU=y, CONFIG_PLAT_KVM=y",
        "    org.unikraft.image.name            unikraft.org/helloworld",
        "  pulled    never",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert!(
        !text.contains("\"schemaVersion\""),
        "no documents by default:\n{text}"
    );

    let raw = ukpm(&env).args(["inspect", "--raw", "helloworld"]).run();
    raw.assert_success();
    assert!(raw.stdout.contains("\nindex:\n{"), "{}", raw.stdout);
    assert!(
        raw.stdout.contains(&format!(
            "\nmanifest {} (qemu/x86_64, 4.0 KiB):\n{{",
            conformance::MANIFEST
        )),
        "{}",
        raw.stdout
    );
    assert!(
        raw.stdout
            .contains(&format!("config {}:\n{{", conformance::CONFIG)),
        "{}",
        raw.stdout
    );
    assert!(!raw.stdout.contains("  kconfig "), "{}", raw.stdout);

    let json = ukpm(&env).args(["--json", "inspect", "helloworld"]).run().json();
    let summary = &json["manifests"][0]["summary"];
    assert_eq!(summary["cmd"], serde_json::json!(conformance::ARGS));
    assert_eq!(summary["layers"][0]["kind"], "kernel");
    assert_eq!(summary["layers"][0]["file_size"], 16);
    assert_eq!(summary["layers"][0]["size"], 2048);
    assert_eq!(summary["layers"][1]["path"], "/unikraft/bin/initrd");
    assert_eq!(
        json["manifests"][0]["manifest"],
        serde_json::from_str::<Value>(conformance::MANIFEST_JSON).unwrap(),
        "the documents are still there, unchanged"
    );
}

#[test]
fn inspect_filters_by_platform() {
    let env = TestEnv::new();
    pack(&env, "multi:1", "x86_64", "qemu", &[]).assert_success();
    pack(&env, "multi:1", "arm64", "fc", &[]).assert_success();

    let all = ukpm(&env).args(["--json", "inspect", "multi:1"]).run().json();
    assert_eq!(all["manifests"].as_array().unwrap().len(), 2);
    for args in [
        &["--plat", "fc/arm64"][..],
        &["--platform", "fc"],
        &["--arch", "arm64"],
        &["-p", "fc", "-m", "arm64"],
    ] {
        let one = ukpm(&env).args(["--json", "inspect", "multi:1"]).args(args).run();
        one.assert_success();
        let doc = one.json();
        let manifests = doc["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1, "{args:?}");
        assert_eq!(manifests[0]["package"]["platform"], "fc", "{args:?}");
        assert_eq!(
            doc["index"]["manifests"].as_array().unwrap().len(),
            2,
            "the index stays whole"
        );
    }
    let human = ukpm(&env).args(["inspect", "multi:1", "--plat", "fc"]).run();
    human.assert_success();
    assert!(human.stdout.contains("fc/arm64  manifest"), "{}", human.stdout);
    assert!(!human.stdout.contains("qemu/x86_64"), "{}", human.stdout);
    let raw = ukpm(&env)
        .args(["inspect", "multi:1", "--plat", "fc", "--raw"])
        .run();
    raw.assert_success();
    assert!(
        !raw.stdout.contains("\nindex:"),
        "one platform's documents: {}",
        raw.stdout
    );
    assert_eq!(
        raw.stdout.matches("\nmanifest sha256:").count(),
        1,
        "{}",
        raw.stdout
    );

    let none = ukpm(&env)
        .args(["--json", "inspect", "multi:1", "--plat", "xen"])
        .run();
    none.assert_failure();
    let error = none.json();
    assert_eq!(error["error"]["code"], "not_found");
    let cause = error["error"]["causes"][0].as_str().unwrap();
    assert!(
        cause.contains("qemu/x86_64") && cause.contains("fc/arm64"),
        "{cause}"
    );
    let human = ukpm(&env).args(["inspect", "multi:1", "--plat", "xen"]).run();
    assert!(human.stderr.contains("leave the filter out"), "{}", human.stderr);
    assert!(!human.stderr.contains("--all-platforms"), "{}", human.stderr);
}

#[test]
fn the_listing_cache_never_hides_what_the_store_holds() {
    let env = TestEnv::new();
    pack(&env, "multi:1", "x86_64", "qemu", &[]).assert_success();
    pack(&env, "multi:1", "arm64", "fc", &[]).assert_success();
    let both = [
        "unikraft.org/multi:1 x86_64/qemu",
        "unikraft.org/multi:1 arm64/fc",
    ];
    let ls = || rows(&ukpm(&env).args(["--json", "ls"]).run());
    assert_eq!(ls(), both);
    let cache = env.path("store/cache/listing.json");
    assert!(cache.is_file(), "ls keeps what it read");
    assert_eq!(ls(), both, "and lists the same from it");

    // A platform whose manifest is not in the store (a pull of one platform) is not listed,
    // and is as soon as it arrives, though the index was cached without it.
    let fc = ukpm(&env).args(["--json", "ls", "--plat", "fc"]).run().json()["packages"][0]["manifest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let blob = env.path(format!("store/blobs/sha256/{fc}"));
    let saved = env.path("fc-manifest");
    fs_err::rename(&blob, &saved).unwrap();
    assert_eq!(ls(), both[..1]);
    fs_err::rename(&saved, &blob).unwrap();
    assert_eq!(ls(), both);

    // A damaged or foreign cache is ignored and replaced.
    env.write("store/cache/listing.json", b"{not json", 0o644);
    assert_eq!(ls(), both);
    let rewritten: Value = serde_json::from_slice(&env.read("store/cache/listing.json")).unwrap();
    assert_eq!(rewritten["version"], 2);

    // A name removed leaves the cache to the names still there (after a whole listing).
    ukpm(&env).args(["rm", "multi:1"]).run().assert_success();
    pack(&env, "other:1", "x86_64", "qemu", &[]).assert_success();
    assert_eq!(ls(), ["unikraft.org/other:1 x86_64/qemu"]);
    let pruned: Value = serde_json::from_slice(&env.read("store/cache/listing.json")).unwrap();
    assert_eq!(pruned["indexes"].as_object().unwrap().len(), 1, "{pruned}");
    assert_eq!(pruned["manifests"].as_object().unwrap().len(), 1, "{pruned}");
}
