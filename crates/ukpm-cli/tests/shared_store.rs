//! A store shared by a group (issue 13, point 7): the `/var/lib/ukpm` of docs/config.md, a
//! set-group-ID folder owned by the group, written by several users whose umask is 002. Each
//! user here is a real uid the test switches to with `setpriv`, as a second login would be.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use ukpm_test::registry::Registry;
use ukpm_test::{Outcome, TestEnv, mode_of, require_program};

/// The group that shares the store, and two of its members (numeric: no user database needed).
const GROUP: u32 = 4242;
const ALICE: u32 = 4243;
const BOB: u32 = 4244;

/// `ukpm ARGS` as `uid` (primary group [`GROUP`], no other groups) under umask 002.
fn as_user(env: &TestEnv, uid: u32, store: &Path, args: &[&str]) -> Outcome {
    let setpriv = require_program("setpriv", "util-linux");
    env.command("sh")
        .args(["-c", "umask 002 && exec \"$@\"", "sh"])
        .arg(setpriv)
        .args([
            format!("--reuid={uid}"),
            format!("--regid={GROUP}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(UKPM)
        .arg("--store")
        .arg(store)
        .args(args)
        .run()
}

#[test]
fn two_users_of_one_group_pack_into_and_pull_from_one_store() {
    if !nix_is_root() {
        panic!("this test switches uids with setpriv and must run as root");
    }
    let env = TestEnv::new();
    env.conformance_inputs();
    // The test folder is root's 0700 temp folder: let the users in.
    fs_err::set_permissions(env.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // What docs/config.md tells an administrator to do for /var/lib/ukpm.
    let store = env.path("var-lib-ukpm");
    fs_err::create_dir(&store).unwrap();
    std::os::unix::fs::chown(&store, Some(0), Some(GROUP)).unwrap();
    fs_err::set_permissions(&store, std::fs::Permissions::from_mode(0o2775)).unwrap();
    // Something to pull: pushed by root from its own store.
    let registry = Registry::plain();
    let remote = format!("{}/shared/app:v1", registry.host());
    pack(&env, &remote, "x86_64", "qemu", &["--cmd", "remote"]).assert_success();
    ukpm(&env).args(["push", &remote]).run().assert_success();

    let alice = |args: &[&str]| as_user(&env, ALICE, &store, args);
    let bob = |args: &[&str]| as_user(&env, BOB, &store, args);
    alice(&[
        "pack", "alice", "--kernel", "kernel", "--arch", "x86_64", "--plat", "qemu",
    ])
    .assert_success();
    // Bob reads and rewrites what Alice created: index.json, the locks, the blob folders.
    bob(&[
        "pack", "bob", "--kernel", "kernel", "--arch", "arm64", "--plat", "fc",
    ])
    .assert_success();
    bob(&["pull", &remote, "--plat", "qemu/x86_64"]).assert_success();
    alice(&["pull", &remote, "--plat", "qemu/x86_64"]).assert_success();
    bob(&["fsck"]).assert_success();
    let listed = alice(&["ls", "--json"]);
    listed.assert_success();
    for name in ["alice", "bob", "shared/app"] {
        assert!(listed.stdout.contains(name), "{name} missing: {}", listed.stdout);
    }

    // Every file the group reads and replaces is group-writable and the group's; every folder
    // keeps the set-group-ID bit so new files stay the group's.
    let mut owners = std::collections::BTreeSet::new();
    for entry in walk(&store) {
        let meta = fs_err::symlink_metadata(&entry).unwrap();
        assert_eq!(meta.gid(), GROUP, "{}", entry.display());
        let want = if meta.is_dir() { 0o2775 } else { 0o664 };
        assert_eq!(mode_of(&entry), want, "{}", entry.display());
        owners.insert(meta.uid());
    }
    assert!(owners.contains(&ALICE) && owners.contains(&BOB), "{owners:?}");
}

/// Whether the tests run as root (they do in CI and on the build machine).
fn nix_is_root() -> bool {
    fs_err::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Every path below `dir` (not `dir` itself), depth first.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs_err::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
