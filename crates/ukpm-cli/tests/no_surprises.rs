//! Issue 13, point 3, "No silent surprises", on the built binary: what could quietly overwrite,
//! create, pick or skip something is refused, warned about or reported.

mod common;

use std::path::Path;

use common::*;
use ukpm_test::TestEnv;

fn symlink(target: &str, link: &Path) {
    fs_err::os::unix::fs::symlink(target, link).unwrap();
}

// --- unpack into a folder that holds other files --------------------------------------------

#[test]
fn unpack_refuses_a_folder_that_holds_other_files_unless_force() {
    let env = TestEnv::new();
    pack(&env, "app", "x86_64", "qemu", &[]).assert_success();
    env.write("out/notes.txt", "mine", 0o644);
    let before = env.dir_state("out");

    let refused = ukpm(&env).args(["unpack", "app", "out"]).run();
    refused.assert_code(1);
    assert!(
        refused
            .stderr
            .contains("out already holds other files (notes.txt)"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(env.dir_state("out"), before, "a refused unpack changes nothing");
    let json = ukpm(&env).args(["--json", "unpack", "app", "out"]).run();
    json.assert_code(1);
    assert_eq!(json.json()["error"]["code"], "invalid_input");

    // An empty folder, or one that does not exist yet, needs no --force.
    fs_err::create_dir(env.path("empty")).unwrap();
    ukpm(&env).args(["unpack", "app", "empty"]).run().assert_success();
    ukpm(&env)
        .args(["unpack", "app", "new/folder"])
        .run()
        .assert_success();
    // Unpacking again into what an unpack wrote is writing over files: --force.
    ukpm(&env).args(["unpack", "app", "empty"]).run().assert_code(1);
    ukpm(&env)
        .args(["unpack", "app", "empty", "--force"])
        .run()
        .assert_success();
}

/// What README "Unpacking" promises about symlinks already in the target under `--force`: a
/// symlink where the package has a file or folder is replaced by it and never followed; other
/// symlinks and files stay as they are.
#[test]
fn unpack_force_replaces_symlinks_in_the_way_and_never_follows_them() {
    let env = TestEnv::new();
    pack(&env, "app", "x86_64", "qemu", &[]).assert_success();
    env.write("outside/file", "outside", 0o644);
    env.write("out/notes.txt", "mine", 0o644);
    fs_err::create_dir_all(env.path("decoy")).unwrap();
    // `unikraft` is a folder in the package: here it is a symlink to a folder elsewhere.
    symlink("../decoy", &env.path("out/unikraft"));
    // A symlink the package does not name.
    symlink("../outside/file", &env.path("out/elsewhere"));

    ukpm(&env)
        .args(["unpack", "app", "out", "--force"])
        .run()
        .assert_success();
    let unikraft = fs_err::symlink_metadata(env.path("out/unikraft")).unwrap();
    assert!(unikraft.is_dir(), "the symlink became a real folder");
    assert_eq!(env.read("out/unikraft/bin/kernel"), env.read("kernel"));
    assert_eq!(
        fs_err::read_dir(env.path("decoy")).unwrap().count(),
        0,
        "the link was not followed"
    );
    assert_eq!(
        fs_err::read_link(env.path("out/elsewhere")).unwrap(),
        Path::new("../outside/file")
    );
    assert_eq!(env.read("out/notes.txt"), b"mine");

    // A symlink at the kernel's own path is replaced by the kernel; its target is untouched.
    fs_err::remove_file(env.path("out/unikraft/bin/kernel")).unwrap();
    symlink("../../../outside/file", &env.path("out/unikraft/bin/kernel"));
    ukpm(&env)
        .args(["unpack", "app", "out", "--force"])
        .run()
        .assert_success();
    assert!(
        fs_err::symlink_metadata(env.path("out/unikraft/bin/kernel"))
            .unwrap()
            .is_file()
    );
    assert_eq!(env.read("out/unikraft/bin/kernel"), env.read("kernel"));
    assert_eq!(env.read("outside/file"), b"outside");

    // A real folder where the package has a file is not removed: the unpack fails, saying so.
    fs_err::remove_file(env.path("out/unikraft/bin/kernel")).unwrap();
    env.write("out/unikraft/bin/kernel/keep", "keep", 0o644);
    let blocked = ukpm(&env).args(["unpack", "app", "out", "--force"]).run();
    blocked.assert_code(1);
    assert!(
        blocked.stderr.contains("a folder is in the way"),
        "{}",
        blocked.stderr
    );
    assert_eq!(env.read("out/unikraft/bin/kernel/keep"), b"keep");
    // DIR itself may be a symlink to a folder: it is the folder the user named, and is used.
    symlink("empty-target", &env.path("via-link"));
    fs_err::create_dir(env.path("empty-target")).unwrap();
    ukpm(&env)
        .args(["unpack", "app", "via-link"])
        .run()
        .assert_success();
    assert_eq!(env.read("empty-target/unikraft/bin/kernel"), env.read("kernel"));
}

#[test]
fn pull_o_refuses_an_occupied_folder_before_pulling() {
    let env = TestEnv::new();
    env.write("out/notes.txt", "mine", 0o644);
    // No registry is needed: the refusal comes first (nothing listens on port 9).
    let out = ukpm(&env).args(["pull", "127.0.0.1:9/app:v1", "-o", "out"]).run();
    out.assert_code(1);
    assert!(
        out.stderr.contains("out already holds other files"),
        "{}",
        out.stderr
    );
    assert!(!env.store().exists(), "no store was created");
}

// --- read-only commands do not create a store --------------------------------------------------

#[test]
fn read_only_commands_leave_no_store_behind() {
    let env = TestEnv::new();
    let store = env.store();
    for args in [
        &["ls"][..],
        &["ls", "--json"],
        &["fsck"],
        &["inspect", "127.0.0.1:9/app"],
        &["save", "app", "-o", "app.tar"],
        &["unpack", "app", "out"],
        &["unpack", "app", "out", "--force"],
        &["source", "ls"],
        &["gc"],
        &["rm", "app"],
    ] {
        let _ = ukpm(&env).args(args).run();
        assert!(!store.exists(), "`ukpm {}` created the store", args.join(" "));
        assert!(
            !env.path("out").exists(),
            "`ukpm {}` created out/",
            args.join(" ")
        );
    }
    let listed = ukpm(&env).args(["--json", "ls"]).run();
    listed.assert_success();
    let missing = ukpm(&env).args(["unpack", "app", "out"]).run();
    missing.assert_code(1);
    assert!(
        missing.stderr.contains("is not in the store"),
        "{}",
        missing.stderr
    );
}

// --- a pull of several references reports each ------------------------------------------------

#[test]
fn a_pull_of_several_reports_every_success_and_every_failure() {
    let env = TestEnv::new();
    let registry = ukpm_test::registry::Registry::plain();
    let good = format!("{}/ok/app:v1", registry.host());
    let also = format!("{}/ok/other:v1", registry.host());
    let missing = format!("{}/no/such:v1", registry.host());
    let unreachable = "127.0.0.1:9/down/app:v1";
    for name in [&good, &also] {
        pack(&env, name, "x86_64", "qemu", &[]).assert_success();
        ukpm(&env).args(["push", name]).run().assert_success();
    }
    let fresh = TestEnv::new();
    let plat = ["--plat", "qemu/x86_64"];
    let out = ukpm(&fresh)
        .args(["pull", &good, &missing, unreachable, &also])
        .args(plat)
        .run();
    out.assert_code(1);
    assert!(
        out.stdout.contains(&format!("{good} qemu/x86_64")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("{also} qemu/x86_64")),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(&format!("error: failed to pull {missing}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("error: failed to pull {unreachable}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "error: 2 of 4 references failed ({missing}, {unreachable}); 2 pulled"
        )),
        "{}",
        out.stderr
    );
    // The successes are in the store.
    let listed = ukpm(&fresh).args(["ls"]).run().stdout;
    assert!(
        listed.contains("ok/app") && listed.contains("ok/other"),
        "{listed}"
    );

    let json = ukpm(&fresh)
        .args(["--json", "pull", &missing, &good])
        .args(plat)
        .run();
    json.assert_code(1);
    let doc = json.json();
    assert_eq!(doc["packages"].as_array().unwrap().len(), 1, "{doc}");
    let failed = doc["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{doc}");
    assert_eq!(failed[0]["reference"], missing.as_str());
    assert_eq!(failed[0]["error"]["code"], "not_found");
    assert_eq!(failed[0]["error"]["message"], format!("failed to pull {missing}"));

    // One reference fails as any command does, with its hint.
    let one = ukpm(&fresh).args(["pull", &missing]).args(plat).run();
    one.assert_code(1);
    assert!(!one.stderr.contains("references failed"), "{}", one.stderr);
}

// --- fsck --repair asks only where a package came from ----------------------------------------

/// The digest of the first layer of the first manifest of the one package in `env`'s store.
fn first_layer(env: &TestEnv) -> String {
    let blob = |digest: &serde_json::Value| -> serde_json::Value {
        serde_json::from_slice(&env.blob("store", digest.as_str().unwrap())).unwrap()
    };
    let roots = read_json(env, "store/index.json");
    let index = blob(&roots["manifests"][0]["digest"]);
    let manifest = blob(&index["manifests"][0]["digest"]);
    manifest["layers"][0]["digest"].as_str().unwrap().to_string()
}

#[test]
fn fsck_repair_fetches_only_from_recorded_sources() {
    let registry = ukpm_test::registry::Registry::plain();
    let name = format!("{}/team/app:v1", registry.host());
    // Someone else pushed a package under the name.
    let other = TestEnv::new();
    pack(&other, &name, "x86_64", "qemu", &["--cmd", "theirs"]).assert_success();
    ukpm(&other).args(["push", &name]).run().assert_success();

    // Here the same name was packed locally, never pulled nor pushed: its damage is not
    // "repaired" with whatever the registry serves under that name.
    let env = TestEnv::new();
    pack(&env, &name, "x86_64", "qemu", &["--cmd", "mine"]).assert_success();
    let layer = first_layer(&env);
    flip_byte(&env, &layer, 100);
    let before = registry.requests().len();
    let out = ukpm(&env).args(["fsck", "--repair"]).run();
    out.assert_code(1);
    assert_eq!(
        registry.requests().len(),
        before,
        "the registry was asked: {:?}",
        registry.requests()
    );
    assert!(
        out.stderr
            .contains(&format!("note: {name} was not repaired: no registry is recorded")),
        "{}",
        out.stderr
    );
    let json = ukpm(&env).args(["--json", "fsck", "--repair"]).run().json();
    assert_eq!(json["no_source"], serde_json::json!([name]), "{json}");

    // A pulled package is repaired from where it was pulled.
    let pulled = TestEnv::new();
    ukpm(&pulled)
        .args(["pull", &name, "--plat", "qemu/x86_64"])
        .run()
        .assert_success();
    let layer = first_layer(&pulled);
    flip_byte(&pulled, &layer, 100);
    let out = ukpm(&pulled).args(["--json", "fsck", "--repair"]).run();
    out.assert_success();
    assert_eq!(
        out.json()["repaired"],
        serde_json::json!([layer]),
        "{}",
        out.stdout
    );
    assert_eq!(out.json()["no_source"], serde_json::json!([]));
}

// --- pack: --arch/--plat against the kconfig, and strategies -----------------------------------

#[test]
fn pack_warns_when_arch_or_plat_contradict_the_kconfig() {
    let env = TestEnv::new();
    env.write(
        "arm-fc.config",
        "CONFIG_ARCH_ARM_64=y\nCONFIG_PLAT_KVM=y\nCONFIG_KVM_VMM_FIRECRACKER=y\n",
        0o644,
    );
    let agrees = pack(&env, "agrees", "arm64", "fc", &["--kconfig", "arm-fc.config"]);
    agrees.assert_success();
    assert!(!agrees.stderr.contains("warning"), "{}", agrees.stderr);
    let out = pack(&env, "app", "x86_64", "qemu", &["--kconfig", "arm-fc.config"]);
    out.assert_success();
    assert!(
        out.stderr.contains("warning: --arch x86_64 implies CONFIG_ARCH_X86_64=y, but the kconfig sets CONFIG_ARCH_ARM_64=y (arm-fc.config)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("warning: --plat qemu implies CONFIG_KVM_VMM_QEMU=y, but the kconfig sets CONFIG_KVM_VMM_FIRECRACKER=y"),
        "{}",
        out.stderr
    );
    // Even --quiet does not hide it.
    let quiet = pack(
        &env,
        "app",
        "x86_64",
        "xen",
        &["--kconfig", "arm-fc.config", "-q"],
    );
    assert!(
        quiet
            .stderr
            .contains("warning: --plat xen implies CONFIG_PLAT_XEN=y"),
        "{}",
        quiet.stderr
    );
}

#[test]
fn a_different_kconfig_makes_a_separate_entry_and_pack_says_so() {
    let env = TestEnv::new();
    env.write("a.config", "CONFIG_LIBFOO=y\nCONFIG_SAME=y\n", 0o644);
    env.write(
        "b.config",
        "CONFIG_LIBFOO=n\nCONFIG_LIBBAR=y\nCONFIG_SAME=y\n",
        0o644,
    );
    let first = pack(
        &env,
        "app",
        "x86_64",
        "qemu",
        &["--kconfig", "a.config", "--json"],
    );
    first.assert_success();
    let first_digest = first.json()["package"]["manifest"].as_str().unwrap().to_string();
    let second = pack(
        &env,
        "app",
        "x86_64",
        "qemu",
        &["--kconfig", "b.config", "--json"],
    );
    second.assert_success();
    let second_digest = second.json()["package"]["manifest"].as_str().unwrap().to_string();
    assert!(
        second
            .stderr
            .contains("warning: unikraft.org/app:latest now holds 2 manifests for qemu/x86_64"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!("{second_digest} (this pack)")),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains(&format!(
            "{first_digest} differs in CONFIG_LIBBAR, CONFIG_LIBFOO\n"
        )),
        "{}",
        second.stderr
    );
    // Packing the same kconfig again replaces its own entry: nothing to warn about beyond the
    // one other entry; under abort it is refused, naming the manifest in the slot.
    let abort = pack(
        &env,
        "app",
        "x86_64",
        "qemu",
        &["--kconfig", "b.config", "--strategy", "abort"],
    );
    abort.assert_code(1);
    assert!(
        abort.stderr.contains(&format!(
            "with the same kernel version and kconfig ({second_digest}), and the strategy is abort"
        )),
        "{}",
        abort.stderr
    );
    // Overwrite leaves one entry, and no warning.
    let over = pack(
        &env,
        "app",
        "x86_64",
        "qemu",
        &["--kconfig", "a.config", "--strategy", "overwrite"],
    );
    over.assert_success();
    assert!(!over.stderr.contains("warning"), "{}", over.stderr);
    let help = ukpm(&env).args(["pack", "--help"]).run();
    assert!(help.stdout.contains("separate entry"), "{}", help.stdout);
}
