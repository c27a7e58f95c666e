//! `ukpm pack NAME [DIR]` on KraftKit projects: a `Kraftfile` and Unikraft's build output
//! (`.unikraft/build/<name>_<plat>-<arch>`, `.config.<name>_<plat>-<arch>`) written here the
//! way `kraft build` leaves them, and runtime packages (`runtime:`, `--runtime`) on a real
//! registry whose kernel layer the new package shares.

mod common;

use common::*;
use serde_json::Value;
use ukpm_test::registry::Registry;
use ukpm_test::{TestEnv, conformance};

/// The conformance inputs as a one-target project: the kernel where Unikraft builds it, the
/// CPIO as the rootfs, the arguments as a `cmd` list.
fn conformance_project(env: &TestEnv, dir: &str) {
    env.write(
        format!("{dir}/Kraftfile"),
        "spec: v0.6\nname: helloworld\nunikraft:\n  version: stable\ntargets:\n- qemu/x86_64\n\
         rootfs: ./initramfs.cpio\ncmd: [\"/helloworld\", \"--greeting\", \"hi & bye\"]\n",
        0o644,
    );
    env.write(
        format!("{dir}/.unikraft/build/helloworld_qemu-x86_64"),
        conformance::KERNEL_BYTES,
        0o755,
    );
    env.write(format!("{dir}/initramfs.cpio"), conformance::INITRD_BYTES, 0o644);
}

fn pack_project(env: &TestEnv, args: &[&str]) -> ukpm_test::Outcome {
    ukpm(env)
        .env("SOURCE_DATE_EPOCH", conformance::SOURCE_DATE_EPOCH)
        .args(["pack"])
        .args(args)
        .args(["--annotation", conformance::KRAFTKIT_VERSION_ANNOTATION])
        .run()
}

#[test]
fn a_project_packs_to_the_conformance_vectors() {
    let env = TestEnv::new();
    conformance_project(&env, "proj");
    let out = pack_project(&env, &[conformance::REFERENCE, "proj"]);
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("{}@{}\n", conformance::NAME, conformance::INDEX)
    );
    assert_eq!(
        env.blob("store", conformance::MANIFEST),
        conformance::MANIFEST_JSON.as_bytes()
    );
    assert_eq!(
        env.blob("store", conformance::CONFIG),
        conformance::CONFIG_JSON.as_bytes()
    );

    // DIR defaults to the current folder.
    let here = TestEnv::new();
    conformance_project(&here, ".");
    let out = pack_project(&here, &[conformance::REFERENCE]);
    out.assert_success();
    assert_eq!(
        out.stdout,
        format!("{}@{}\n", conformance::NAME, conformance::INDEX)
    );
}

/// The research's "variant from a Kraftfile build" (kraftkit-oci.md §1.4): a `.config` with
/// `CONFIG_UK_FULLVERSION`, env and labels from the Kraftfile.
#[test]
fn a_project_with_kconfig_env_and_labels_gives_kraftkits_digests() {
    let env = TestEnv::new();
    conformance_project(&env, "proj");
    env.write(
        "proj/Kraftfile",
        "spec: v0.6\nname: helloworld\nunikraft: stable\ntargets:\n- platform: qemu\n  architecture: x86_64\n\
         rootfs: ./initramfs.cpio\ncmd: [\"/helloworld\", \"--greeting\", \"hi & bye\"]\n\
         env:\n  PATH: /usr/bin\nlabels:\n  org.example.team: demo\n",
        0o644,
    );
    env.write(
        "proj/.config.helloworld_qemu-x86_64",
        "# Unikraft configuration\nCONFIG_UK_NAME=\"helloworld\"\nCONFIG_UK_FULLVERSION=\"0.17.0~5fb4fd4\"\n\
         CONFIG_LIBVFSCORE_AUTOMOUNT_UP=y\n# CONFIG_LIBUKDEBUG is not set\nCONFIG_UK_BASE=\"/tmp/unikraft\"\n",
        0o644,
    );
    let out = pack_project(&env, &["--json", conformance::REFERENCE, "proj"]);
    out.assert_success();
    let json = out.json();
    assert_eq!(json["packages"].as_array().unwrap().len(), 1);
    let config = "sha256:298868ba3ff7d53bde503544d85053f30bf728602d76105a889fc126c273e28d";
    let manifest = "sha256:b9487f95fe85c472983395e4fabeb0d43733d6dc74318361437103a0d988f8e7";
    let index = "sha256:00c2babc666a8eabf5bc62e74885907a4e7bb6b416fefe5c2c861ba657f8577f";
    assert_eq!(env.blob("store", config).len(), 563);
    assert_eq!(env.blob("store", manifest).len(), 1271);
    assert_eq!(env.blob("store", index).len(), 998);
    assert_eq!(json["package"]["index"], index, "{json}");
}

/// Three targets, both forms, one with its own name; each kernel and `.config` as Unikraft
/// names them.
fn multi_project(env: &TestEnv) {
    env.write(
        "proj/Kraftfile",
        "spec: v0.6\nname: app\nunikraft: stable\ntargets:\n- qemu/x86_64\n\
         - name: small\n  platform: fc\n  architecture: arm64\n- {plat: xen, arch: x86_64}\ncmd: /app -v\n",
        0o644,
    );
    for (kernel, version) in [
        ("app_qemu-x86_64", "0.17.0~aaa"),
        ("small_fc-arm64", "0.18.0~bbb"),
        ("app_xen-x86_64", "0.19.0~ccc"),
    ] {
        env.write(
            format!("proj/.unikraft/build/{kernel}"),
            format!("KERNEL {kernel}\n"),
            0o755,
        );
        env.write(
            format!("proj/.config.{kernel}"),
            format!("CONFIG_UK_NAME=\"app\"\nCONFIG_UK_FULLVERSION=\"{version}\"\nCONFIG_HAVE_BOOTENTRY=y\n"),
            0o644,
        );
    }
}

fn plat_arch(package: &Value) -> String {
    format!(
        "{}/{}",
        package["platform"].as_str().unwrap(),
        package["architecture"].as_str().unwrap()
    )
}

fn entries(env: &TestEnv, reference: &str) -> Vec<Value> {
    let out = ukpm(env).args(["--json", "inspect", reference]).run();
    out.assert_success();
    let json = out.json();
    let index = &json["index"];
    index["manifests"].as_array().cloned().unwrap_or_default()
}

#[test]
fn every_target_becomes_an_entry_with_the_digests_of_a_flag_pack() {
    let env = TestEnv::new();
    multi_project(&env);
    let out = pack_project(&env, &["--json", "app:1", "proj"]);
    out.assert_success();
    let json = out.json();
    let packages = json["packages"].as_array().unwrap();
    let plats: Vec<String> = packages.iter().map(plat_arch).collect();
    assert_eq!(plats, ["qemu/x86_64", "fc/arm64", "xen/x86_64"], "{json}");
    let index = packages[2]["index"].as_str().unwrap().to_string();

    // The same kernels packed one by one with flags, into another store, merge into the same
    // index: same manifests, same order, same digest.
    let flags = TestEnv::new();
    for (kernel, arch, plat) in [
        ("app_qemu-x86_64", "x86_64", "qemu"),
        ("small_fc-arm64", "arm64", "fc"),
        ("app_xen-x86_64", "x86_64", "xen"),
    ] {
        flags.write(kernel, env.read(format!("proj/.unikraft/build/{kernel}")), 0o755);
        flags.write(
            format!("{kernel}.config"),
            env.read(format!("proj/.config.{kernel}")),
            0o644,
        );
        pack_project(
            &flags,
            &[
                "app:1",
                "--kernel",
                kernel,
                "--arch",
                arch,
                "--plat",
                plat,
                "--kconfig",
                &format!("{kernel}.config"),
                "--cmd",
                "/app",
                "--cmd",
                "-v",
            ],
        )
        .assert_success();
    }
    let flag_index = ukpm(&flags).args(["--json", "ls"]).run().json()["packages"][0]["index"].clone();
    assert_eq!(
        flag_index,
        index.as_str(),
        "{}\n{}",
        ukpm(&env).args(["--json", "inspect", "app:1"]).run().stdout,
        ukpm(&flags).args(["--json", "inspect", "app:1"]).run().stdout
    );

    let versions: Vec<String> = packages
        .iter()
        .map(|p| p["kernel_version"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(versions, ["0.17.0~aaa", "0.18.0~bbb", "0.19.0~ccc"], "{json}");
    assert_eq!(entries(&env, "app:1").len(), 3);
}

#[test]
fn filters_pick_targets() {
    for (filter, wanted) in [
        (vec!["-t", "small"], vec!["fc/arm64"]),
        (vec!["--target", "xen/x86_64"], vec!["xen/x86_64"]),
        (vec!["-t", "app"], vec!["qemu/x86_64", "xen/x86_64"]),
        (vec!["--arch", "x86_64"], vec!["qemu/x86_64", "xen/x86_64"]),
        (vec!["--plat", "fc"], vec!["fc/arm64"]),
        (vec!["-t", "app", "--plat", "xen"], vec!["xen/x86_64"]),
    ] {
        let env = TestEnv::new();
        multi_project(&env);
        let mut args = vec!["--json", "app:1", "proj"];
        args.extend(&filter);
        let out = pack_project(&env, &args);
        out.assert_success();
        let json = out.json();
        let plats: Vec<String> = json["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(plat_arch)
            .collect();
        assert_eq!(plats, wanted, "{filter:?}");
    }
    let env = TestEnv::new();
    multi_project(&env);
    let out = pack_project(&env, &["app:1", "proj", "-t", "small", "--arch", "x86_64"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("no target matches target small, architecture x86_64"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("small (fc/arm64)"), "{}", out.stderr);
}

#[test]
fn a_missing_build_output_names_the_target_and_file_and_packs_nothing() {
    let env = TestEnv::new();
    multi_project(&env);
    fs_err::remove_file(env.path("proj/.unikraft/build/small_fc-arm64")).unwrap();
    let out = pack_project(&env, &["app:1", "proj"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("target small (fc/arm64) has no kernel"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("proj/.unikraft/build/small_fc-arm64 does not exist"),
        "{}",
        out.stderr
    );
    // The other targets were not packed either.
    let ls = ukpm(&env).args(["--json", "ls"]).run();
    assert!(
        ls.json()["packages"].as_array().is_none_or(Vec::is_empty),
        "{}",
        ls.stdout
    );

    let empty = TestEnv::new();
    let out = pack_project(&empty, &["app:1"]);
    out.assert_code(1);
    assert!(out.stderr.contains("no Kraftfile in ."), "{}", out.stderr);
}

/// A runtime package on a registry, and an app packed on it in another store: the kernel layer
/// is the runtime's (same digest), its kconfig and version are kept, and the push of the app
/// mounts that layer instead of uploading it.
#[test]
fn an_app_on_a_runtime_shares_its_kernel_layer() {
    let registry = Registry::plain();
    let host = registry.host();
    let runtime = format!("{host}/runtimes/base:1.0");

    let base = TestEnv::new();
    base.write("kernel", b"RUNTIME KERNEL\n", 0o755);
    base.write(
        "runtime.config",
        "CONFIG_UK_FULLVERSION=\"0.17.0~5fb4fd4\"\nCONFIG_LIBVFSCORE_AUTOMOUNT_CI=y\n",
        0o644,
    );
    ukpm(&base)
        .args([
            "pack", &runtime, "--kernel", "kernel", "--arch", "x86_64", "--plat", "qemu",
        ])
        .args(["--kconfig", "runtime.config", "--", "/runtime-default"])
        .run()
        .assert_success();
    // The runtime has a second platform, which the app's target does not ask for.
    ukpm(&base)
        .args([
            "pack", &runtime, "--kernel", "kernel", "--arch", "arm64", "--plat", "fc",
        ])
        .run()
        .assert_success();
    ukpm(&base).args(["push", &runtime]).run().assert_success();
    let base_inspect = ukpm(&base).args(["--json", "inspect", &runtime]).run().json();
    let base_manifest = &base_inspect["manifests"][0]["manifest"];
    let base_config = &base_inspect["manifests"][0]["config"];
    let kernel_layer = base_manifest["layers"][0]["digest"].as_str().unwrap().to_string();

    let app = TestEnv::new();
    app.write(
        "proj/Kraftfile",
        format!(
            "spec: v0.6\nname: app\nruntime: {runtime}\nrootfs: ./rootfs.cpio\ncmd: /app --port 80\n\
             env:\n  MODE: prod\nlabels:\n  team: web\ntargets:\n- qemu/x86_64\n"
        ),
        0o644,
    );
    app.write("proj/rootfs.cpio", conformance::INITRD_BYTES, 0o644);
    let app_ref = format!("{host}/apps/web:1");
    let out = ukpm(&app).args(["--json", "pack", &app_ref, "proj"]).run();
    out.assert_success();
    let inspect = ukpm(&app).args(["--json", "inspect", &app_ref]).run().json();
    let manifest = &inspect["manifests"][0]["manifest"];
    let config = &inspect["manifests"][0]["config"];
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2, "{manifest}");
    assert_eq!(
        layers[0], base_manifest["layers"][0],
        "the kernel layer is the runtime's"
    );
    assert_eq!(layers[1]["digest"], conformance::INITRD_LAYER);
    assert_eq!(config["os.version"], "0.17.0~5fb4fd4");
    assert_eq!(config["os.features"], base_config["os.features"]);
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["/app", "--port", "80"])
    );
    assert_eq!(config["config"]["Env"], serde_json::json!(["MODE=prod"]));
    assert_eq!(config["config"]["Labels"]["team"], "web");
    assert_eq!(
        manifest["annotations"]["org.unikraft.kernel.version"],
        "0.17.0~5fb4fd4"
    );

    assert_eq!(inspect["manifests"].as_array().unwrap().len(), 1);
    // Only the runtime's qemu/x86_64 manifest was pulled.
    let pulled = ukpm(&app).args(["--json", "ls", "--name", &runtime]).run().json();
    let pulled: Vec<String> = pulled["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(plat_arch)
        .collect();
    assert_eq!(pulled, ["qemu/x86_64"]);

    let push = ukpm(&app).args(["--json", "push", &app_ref]).run();
    push.assert_success();
    let report = push.json();
    // The initrd and the config go up; the kernel is mounted from the runtime's repository.
    assert_eq!(report["uploaded"], 2, "{report}");
    assert_eq!(report["mounted"], 1, "{report}");
    let uploads = registry.requests();
    let kernel_hex = kernel_layer.strip_prefix("sha256:").unwrap();
    assert!(
        !uploads
            .iter()
            .any(|r| r.starts_with("PUT /v2/apps/web/") && r.contains(kernel_hex)),
        "the kernel was uploaded again: {uploads:#?}"
    );

    // --runtime without a project: a rootfs and a command on the runtime found in the store.
    app.write("rootfs2.cpio", conformance::INITRD_BYTES, 0o644);
    let out = ukpm(&app)
        .args([
            "--json",
            "pack",
            "plain:1",
            "--runtime",
            &runtime,
            "--initrd",
            "rootfs2.cpio",
        ])
        .run();
    out.assert_success();
    let plain = ukpm(&app).args(["--json", "inspect", "plain:1"]).run().json();
    assert_eq!(
        plain["manifests"][0]["manifest"]["layers"][0],
        base_manifest["layers"][0]
    );
    // No command given: the runtime's stays.
    assert_eq!(
        plain["manifests"][0]["config"]["config"]["Cmd"],
        serde_json::json!(["/runtime-default"])
    );
}

#[test]
fn kraftfile_names_are_found_in_kraftkits_order_and_kernel_flags_refused() {
    let env = TestEnv::new();
    conformance_project(&env, "proj");
    // kraft.yaml comes before Kraftfile in KraftKit's order; this one has no targets.
    env.write(
        "proj/kraft.yaml",
        "spec: v0.6\nname: helloworld\nunikraft: stable\n",
        0o644,
    );
    let out = pack_project(&env, &["app:1", "proj"]);
    out.assert_code(1);
    assert!(out.stderr.contains("kraft.yaml has no targets"), "{}", out.stderr);

    let out = pack_project(&env, &["app:1", "proj", "--kconfig", "x"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("--kconfig and --kernel-dbg go with --kernel"),
        "{}",
        out.stderr
    );
}
