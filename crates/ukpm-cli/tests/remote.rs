//! `ukpm pull`, `push`, `tag`, `login` and `logout` against real `docker-registry` processes
//! (plain, htpasswd Basic, bearer tokens), with skopeo as the interop oracle both ways.

mod common;

use common::{pack, pack_conformance, rows, ukpm};
use serde_json::Value;
use ukpm_test::registry::Registry;
use ukpm_test::{OciLayoutWriter, RawTar, TestEnv, conformance, require_program, sha256_digest};

fn skopeo(env: &TestEnv, args: &[&str]) -> ukpm_test::Outcome {
    let skopeo = require_program("skopeo", "skopeo");
    let out = env.command(skopeo).args(args).run();
    out.assert_success();
    out
}

#[test]
fn push_is_read_back_byte_exact_by_skopeo_and_a_repush_uploads_nothing() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    pack_conformance(&env).assert_success();
    let target = format!("{}/uk/hello:v1", registry.host());

    let first = ukpm(&env)
        .args(["--json", "push", conformance::REFERENCE, "--to", &target])
        .run();
    first.assert_success();
    let report = first.json();
    assert_eq!(report["digest"], conformance::INDEX);
    assert_eq!(report["uploaded"], 3, "{report}");
    assert_eq!(report["manifests_written"], 2, "{report}");

    let raw = skopeo(
        &env,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ],
    );
    assert_eq!(raw.stdout.trim_end(), conformance::INDEX_JSON);
    let manifest = skopeo(
        &env,
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/uk/hello@{}", registry.host(), conformance::MANIFEST),
        ],
    );
    assert_eq!(manifest.stdout.trim_end(), conformance::MANIFEST_JSON);
    skopeo(
        &env,
        &[
            "copy",
            "--multi-arch",
            "all",
            "--src-tls-verify=false",
            &format!("docker://{target}"),
            &format!("oci:{}:copy", env.path("copied").display()),
        ],
    );

    let again = ukpm(&env)
        .args(["--json", "push", conformance::REFERENCE, "--to", &target])
        .run();
    again.assert_success();
    let report = again.json();
    assert_eq!(report["uploaded"], 0, "a re-push uploaded: {report}");
    assert_eq!(report["uploaded_bytes"], 0, "{report}");
    assert_eq!(report["manifests_written"], 0, "{report}");
    assert_eq!(report["existed"], 3, "{report}");
}

#[test]
fn pull_keeps_the_registry_digests_and_selects_platforms() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    pack(&env, "multi:1", "x86_64", "qemu", &[]).assert_success();
    pack(&env, "multi:1", "arm64", "fc", &[]).assert_success();
    let remote = format!("{}/uk/multi:1", registry.host());
    ukpm(&env)
        .args(["push", "multi:1", "--to", &remote])
        .run()
        .assert_success();
    let index_digest = ukpm(&env).args(["--json", "ls"]).run().json()["packages"][0]["index"].clone();

    let other = TestEnv::new();
    let pulled = ukpm(&other)
        .args(["--json", "pull", &remote, "--arch", "arm64"])
        .run();
    pulled.assert_success();
    assert_eq!(rows(&pulled), [format!("{remote} arm64/fc")]);
    assert_eq!(
        rows(&ukpm(&other).args(["--json", "ls"]).run()),
        [format!("{remote} arm64/fc")]
    );
    // The store names the registry's index exactly (same digest, same bytes).
    assert_eq!(
        ukpm(&other).args(["--json", "ls"]).run().json()["packages"][0]["index"],
        index_digest
    );

    let none = ukpm(&other)
        .args(["--json", "pull", &remote, "--plat", "xen"])
        .run();
    none.assert_code(1);
    let error = &none.json()["error"];
    assert_eq!(error["code"], "not_found");
    let text = error.to_string();
    assert!(
        text.contains("qemu/x86_64") && text.contains("fc/arm64"),
        "{text}"
    );

    ukpm(&other)
        .args(["pull", &remote, "--all-platforms"])
        .run()
        .assert_success();
    assert_eq!(
        rows(&ukpm(&other).args(["--json", "ls"]).run()),
        [format!("{remote} x86_64/qemu"), format!("{remote} arm64/fc")]
    );
    // The source store still holds the one-platform index of the first pack: garbage.
    ukpm(&env).arg("gc").run().assert_success();
    assert_eq!(env.blob_names("store"), other.blob_names("store"));

    // Every blob is already here: a second pull fetches nothing and changes nothing.
    let before = other.dir_state("store/blobs");
    ukpm(&other)
        .args(["pull", &remote, "--all-platforms"])
        .run()
        .assert_success();
    assert_eq!(other.dir_state("store/blobs"), before);
}

#[test]
fn pull_by_digest_and_unpack() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    pack_conformance(&env).assert_success();
    let remote = format!("{}/uk/hello", registry.host());
    ukpm(&env)
        .args(["push", conformance::REFERENCE, "--to", &format!("{remote}:v1")])
        .run()
        .assert_success();

    let other = TestEnv::new();
    let by_digest = format!("{remote}@{}", conformance::INDEX);
    ukpm(&other).args(["pull", &by_digest]).run().assert_success();
    ukpm(&other)
        .args(["unpack", &by_digest, "out"])
        .run()
        .assert_success();
    assert_eq!(other.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
    assert_eq!(other.read("out/unikraft/bin/initrd"), conformance::INITRD_BYTES);
    // A single manifest can be pulled by digest too (KraftKit cannot: kraftkit#2466).
    let third = TestEnv::new();
    let manifest = format!("{remote}@{}", conformance::MANIFEST);
    ukpm(&third).args(["pull", &manifest]).run().assert_success();
    ukpm(&third)
        .args(["unpack", &manifest, "out"])
        .run()
        .assert_success();
    assert_eq!(third.read("out/unikraft/bin/kernel"), conformance::KERNEL_BYTES);
}

#[test]
fn an_image_skopeo_pushed_is_pulled_and_unpacked() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    // A third-party image: one gzip-free tar layer with the kernel, no KraftKit annotations, no
    // platform on the config descriptor.
    let layer = RawTar::new()
        .dir("unikraft/", 0o755)
        .dir("unikraft/bin/", 0o755)
        .file("unikraft/bin/kernel", 0o755, b"third-party kernel\n")
        .finish();
    let mut layout = OciLayoutWriter::create(env.path("layout"));
    let layer = layout.blob("application/vnd.oci.image.layer.v1.tar", &layer);
    let image = layout.image("amd64", "qemu", &[layer]);
    layout.tag("v1", &image);
    layout.finish();
    let remote = format!("{}/third/party:v1", registry.host());
    skopeo(
        &env,
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", env.path("layout").display()),
            &format!("docker://{remote}"),
        ],
    );
    ukpm(&env).args(["pull", &remote]).run().assert_success();
    let listed = ukpm(&env).args(["--json", "ls"]).run();
    assert_eq!(rows(&listed), [format!("{remote} x86_64/qemu")]);
    ukpm(&env).args(["unpack", &remote, "out"]).run().assert_success();
    assert_eq!(env.read("out/unikraft/bin/kernel"), b"third-party kernel\n");
}

#[test]
fn short_names_try_the_registries_in_order() {
    let env = TestEnv::new();
    let empty = Registry::plain();
    let holder = Registry::plain();
    pack_conformance(&env).assert_success();
    ukpm(&env)
        .args([
            "push",
            conformance::REFERENCE,
            "--to",
            &format!("{}/helloworld:v2", holder.host()),
        ])
        .run()
        .assert_success();
    let other = TestEnv::new();
    let out = ukpm(&other)
        .args([
            "--json",
            "--registry",
            &empty.host(),
            "--registry",
            &holder.host(),
        ])
        .args(["pull", "helloworld:v2"])
        .run();
    out.assert_success();
    assert_eq!(
        rows(&out),
        [format!("{}/helloworld:v2 x86_64/qemu", holder.host())]
    );
    // The environment variable works as the flag does.
    let third = TestEnv::new();
    ukpm(&third)
        .env("UKPM_REGISTRIES", format!("{},{}", empty.host(), holder.host()))
        .args(["pull", "helloworld:v2"])
        .run()
        .assert_success();
}

#[test]
fn login_checks_credentials_before_saving_them_and_never_shows_them() {
    let env = TestEnv::new();
    let registry = Registry::basic("tester", "s3cret-pw");
    let docker = env.path("docker");
    let login = |password: &str| {
        ukpm(&env)
            .env("DOCKER_CONFIG", &docker)
            .args([
                "--json",
                "login",
                &registry.host(),
                "--username",
                "tester",
                "--password-stdin",
            ])
            .stdin(format!("{password}\n"))
            .run()
    };
    let wrong = login("not-the-password");
    wrong.assert_code(1);
    assert_eq!(wrong.json()["error"]["code"], "unauthorized");
    assert!(!wrong.stdout.contains("not-the-password") && !wrong.stderr.contains("not-the-password"));
    assert!(!docker.join("config.json").exists(), "a refused login was saved");

    let right = login("s3cret-pw");
    right.assert_success();
    assert!(!right.stdout.contains("s3cret-pw") && !right.stderr.contains("s3cret-pw"));
    let config: Value = serde_json::from_slice(&env.read("docker/config.json")).unwrap();
    assert!(config["auths"][registry.host()]["auth"].is_string(), "{config}");

    // With the saved login, push and pull work; without it, they are refused with a hint.
    pack_conformance(&env).assert_success();
    let remote = format!("{}/private/hello:v1", registry.host());
    let anonymous = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("nowhere"))
        .args(["push", conformance::REFERENCE, "--to", &remote])
        .run();
    anonymous.assert_code(1);
    assert!(
        anonymous.stderr.contains("hint: credentials come from"),
        "{}",
        anonymous.stderr
    );
    ukpm(&env)
        .env("DOCKER_CONFIG", &docker)
        .args(["push", conformance::REFERENCE, "--to", &remote])
        .run()
        .assert_success();
    let other = TestEnv::new();
    ukpm(&other)
        .env("DOCKER_CONFIG", &docker)
        .args(["pull", &remote])
        .run()
        .assert_success();

    ukpm(&env)
        .env("DOCKER_CONFIG", &docker)
        .args(["logout", &registry.host()])
        .run()
        .assert_success();
    let config: Value = serde_json::from_slice(&env.read("docker/config.json")).unwrap();
    assert!(config["auths"].get(registry.host()).is_none(), "{config}");
}

#[test]
fn bearer_tokens_from_a_docker_config_push_and_pull_and_mount() {
    let env = TestEnv::new();
    let registry = Registry::token("tester", "tok-pw");
    use base64_free::encode;
    let docker = env.path("docker");
    env.write(
        "docker/config.json",
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#,
            registry.host(),
            encode("tester:tok-pw")
        ),
        0o600,
    );
    pack_conformance(&env).assert_success();
    let first = format!("{}/team/a:v1", registry.host());
    ukpm(&env)
        .env("DOCKER_CONFIG", &docker)
        .args(["push", conformance::REFERENCE, "--to", &first])
        .run()
        .assert_success();

    // Pulled under its registry name, it can be pushed to a sibling repository by mounting.
    let other = TestEnv::new();
    let with_creds = |cmd: ukpm_test::UkpmCommand| cmd.env("DOCKER_CONFIG", &docker);
    with_creds(ukpm(&other))
        .args(["pull", &first])
        .run()
        .assert_success();
    let second = format!("{}/team/b:v1", registry.host());
    let pushed = with_creds(ukpm(&other))
        .args(["--json", "push", &first, "--to", &second])
        .run();
    pushed.assert_success();
    let report = pushed.json();
    assert_eq!(report["mounted"], 3, "{report}");
    assert_eq!(report["uploaded"], 0, "{report}");

    // Anonymous callers may pull but not push.
    let third = TestEnv::new();
    ukpm(&third).args(["pull", &second]).run().assert_success();
    let refused = ukpm(&third)
        .args([
            "--json",
            "push",
            &second,
            "--to",
            &format!("{}/team/c:v1", registry.host()),
        ])
        .run();
    refused.assert_code(1);
    assert_eq!(refused.json()["error"]["code"], "unauthorized");
    assert_eq!(sha256_digest(conformance::INDEX_JSON), conformance::INDEX);
}

#[test]
fn tag_gives_a_stored_package_another_name() {
    let env = TestEnv::new();
    pack_conformance(&env).assert_success();
    ukpm(&env)
        .args(["tag", conformance::REFERENCE, "mine:1"])
        .run()
        .assert_success();
    let listed = ukpm(&env).args(["--json", "ls"]).run();
    let packages = listed.json()["packages"].as_array().unwrap().clone();
    assert_eq!(packages.len(), 2);
    assert_eq!(packages[0]["index"], packages[1]["index"]);
    assert_eq!(packages[1]["reference"], "unikraft.org/mine:1");
    let missing = ukpm(&env).args(["--json", "tag", "nothere", "x:1"]).run();
    missing.assert_code(1);
    assert_eq!(missing.json()["error"]["code"], "not_found");
}

/// Base64 for a test's docker config, written here so the expected bytes do not come from the
/// product.
mod base64_free {
    pub fn encode(text: &str) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn known_vector() {
        assert_eq!(encode("tester:s3cret"), "dGVzdGVyOnMzY3JldA==");
        assert_eq!(encode("ab"), "YWI=");
    }
}

#[test]
fn a_tls_registry_is_trusted_through_ca_file() {
    let env = TestEnv::new();
    let registry = Registry::tls();
    env.write("ca.pem", registry.ca_pem(), 0o644);
    pack_conformance(&env).assert_success();
    let remote = format!("{}/secure/hello:v1", registry.host());
    let untrusted = ukpm(&env)
        .args(["--json", "push", conformance::REFERENCE, "--to", &remote])
        .run();
    untrusted.assert_code(1);
    ukpm(&env)
        .args([
            "--ca-file",
            "ca.pem",
            "push",
            conformance::REFERENCE,
            "--to",
            &remote,
        ])
        .run()
        .assert_success();
    let other = TestEnv::new();
    other.write("ca.pem", registry.ca_pem(), 0o644);
    ukpm(&other)
        .args(["--ca-file", "ca.pem", "pull", &remote])
        .run()
        .assert_success();
    assert_eq!(
        rows(&ukpm(&other).args(["--json", "ls"]).run()),
        [format!("{remote} x86_64/qemu")]
    );
}

#[test]
fn several_packages_are_pulled_in_one_run() {
    let env = TestEnv::new();
    let registry = Registry::plain();
    pack(&env, "one:1", "x86_64", "qemu", &[]).assert_success();
    pack(&env, "two:1", "x86_64", "qemu", &["--cmd", "two"]).assert_success();
    for name in ["one:1", "two:1"] {
        ukpm(&env)
            .args(["push", name, "--to", &format!("{}/many/{name}", registry.host())])
            .run()
            .assert_success();
    }
    let other = TestEnv::new();
    let out = ukpm(&other)
        .args(["--json", "pull"])
        .arg(format!("{}/many/one:1", registry.host()))
        .arg(format!("{}/many/two:1", registry.host()))
        .run();
    assert_eq!(
        rows(&out),
        [
            format!("{}/many/one:1 x86_64/qemu", registry.host()),
            format!("{}/many/two:1 x86_64/qemu", registry.host())
        ]
    );
    let missing = ukpm(&other)
        .args(["--json", "pull"])
        .arg(format!("{}/many/one:1", registry.host()))
        .arg(format!("{}/many/nothere:1", registry.host()))
        .run();
    // Every reference is pulled and reported (issue 13): one pulled, one failed.
    missing.assert_code(1);
    let doc = missing.json();
    assert_eq!(doc["packages"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(doc["failed"][0]["error"]["code"], "not_found", "{doc}");
}
