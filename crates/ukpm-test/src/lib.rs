//! ukpm's test harness: throwaway folders with a store in them, the built `ukpm` binary run with
//! a clean environment, the external programs tests check against (skopeo, umoci, GNU cpio), and
//! fixtures the product must never write itself (hand-made tars and OCI layouts, the conformance
//! vectors).
//!
//! This crate is a dev-dependency only: nothing in a shipped crate may depend on it. It must not
//! depend on ukpm's own crates either, so that what the tests expect is never computed by the code
//! under test.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a test harness reports servers' logs and seeds to the test output, which libtest captures"
)]

mod command;
pub mod conformance;
pub mod containerd;
pub mod cpio;
mod fixtures;
pub mod gnutar;
pub mod proxy;
pub mod registry;
mod wait;

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

pub use crate::command::{Outcome, Running, UkpmCommand};
pub use crate::fixtures::{
    DirState, OciLayoutWriter, RawTar, TYPE_DIR, TYPE_FILE, TYPE_SYMLINK, tar_with_raw_names,
};
pub use crate::wait::{POLL_INTERVAL, poll_until, wait_for, wait_until};

/// A throwaway folder for one test: the store lives at `store/`, inputs and outputs beside it,
/// and programs run from it with `HOME` pointing into it. Dropping it deletes everything.
pub struct TestEnv {
    dir: tempfile::TempDir,
}

impl TestEnv {
    /// Creates the folder (under `$TMPDIR`), empty: the store does not exist until something
    /// writes it, so tests can see whether a failing command created it.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ukpm-test-")
            .tempdir()
            .expect("cannot create a temporary folder");
        Self { dir }
    }

    /// The folder itself; commands run here.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The store commands use by default (`UKPM_STORE`): `<root>/store`.
    pub fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// A path inside the folder (nothing is created).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes a file inside the folder with the given permission bits, creating parent folders,
    /// and returns its full path. The mode is set explicitly so the umask cannot change layer
    /// digests (a layer records the file's mode).
    pub fn write(&self, rel: impl AsRef<Path>, bytes: impl AsRef<[u8]>, mode: u32) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent).expect("cannot create a fixture folder");
        }
        fs_err::write(&path, bytes).expect("cannot write a fixture");
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .expect("cannot set a fixture's mode");
        path
    }

    /// Reads a file inside the folder.
    pub fn read(&self, rel: impl AsRef<Path>) -> Vec<u8> {
        fs_err::read(self.path(rel)).expect("cannot read")
    }

    /// Damages a file inside the folder the way a bad disk would: one bit of the byte at
    /// `offset` flips. The file is replaced rather than written in place, so read-only files
    /// (store blobs) can be damaged too; its mode is kept.
    pub fn flip_bit(&self, rel: impl AsRef<Path>, offset: usize) {
        let path = self.path(rel);
        let mode = mode_of(&path);
        let mut bytes = fs_err::read(&path).expect("cannot read the file to damage");
        bytes[offset] ^= 0x01;
        fs_err::remove_file(&path).expect("cannot replace the file to damage");
        fs_err::write(&path, bytes).expect("cannot write the damaged file");
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("cannot restore mode");
    }

    /// Writes the spec's conformance inputs, `kernel` (mode 0755) and `initramfs.cpio`
    /// (mode 0644), and returns their paths as (kernel, initrd).
    pub fn conformance_inputs(&self) -> (PathBuf, PathBuf) {
        let kernel = self.write("kernel", conformance::KERNEL_BYTES, 0o755);
        let initrd = self.write("initramfs.cpio", conformance::INITRD_BYTES, 0o644);
        (kernel, initrd)
    }

    /// A command for `bin` (the ukpm binary, or any program) with a clean environment: only
    /// `PATH`, `HOME` (the folder), `XDG_DATA_HOME` (`<root>/xdg`), `UKPM_STORE` (the store) and
    /// `LANG=C`, plus whatever the test adds; it runs in the folder with stdin closed. Nothing
    /// from the developer's shell (`UKPM_*`, `SOURCE_DATE_EPOCH`, `NO_COLOR`...) leaks in.
    pub fn command(&self, bin: impl AsRef<OsStr>) -> UkpmCommand {
        UkpmCommand::new(bin.as_ref(), self.root(), &self.store())
    }

    /// The state of a folder inside (or outside) the test folder, to compare before and after.
    pub fn dir_state(&self, dir: impl AsRef<Path>) -> DirState {
        DirState::capture(&self.path(dir))
    }

    /// The hex names of the blobs in a layout's `blobs/sha256/`, sorted; empty when the folder
    /// does not exist.
    pub fn blob_names(&self, layout: impl AsRef<Path>) -> Vec<String> {
        let dir = self.path(layout).join("blobs").join("sha256");
        if !dir.exists() {
            return Vec::new();
        }
        let mut names: Vec<String> = fs_err::read_dir(&dir)
            .expect("cannot list blobs")
            .map(|entry| {
                entry
                    .expect("cannot list blobs")
                    .file_name()
                    .into_string()
                    .expect("blob name is not UTF-8")
            })
            .collect();
        names.sort();
        names
    }

    /// The bytes of the blob `sha256:<hex>` in a layout.
    pub fn blob(&self, layout: impl AsRef<Path>, digest: &str) -> Vec<u8> {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        fs_err::read(self.path(layout).join("blobs").join("sha256").join(hex)).expect("cannot read blob")
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Finds a program on `PATH`. A test that needs one fails (never skips) when it is missing, with
/// the command that installs it, so a green run always means the check really ran.
pub fn require_program(name: &str, debian_package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        let executable = fs_err::metadata(&candidate)
            .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if executable {
            return candidate;
        }
    }
    panic!("{name} is required by this test: apt-get install -y --no-install-recommends {debian_package}");
}

/// The lowercase hex SHA-256 of some bytes, computed here rather than by the product, so tests
/// check ukpm's digests against an independent implementation.
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    let digest = Sha256::digest(bytes.as_ref());
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// `sha256:<hex>` of some bytes: an OCI digest string.
pub fn sha256_digest(bytes: impl AsRef<[u8]>) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The permission bits of a file (`0o755`), for checking that unpack keeps modes.
pub fn mode_of(path: impl AsRef<Path>) -> u32 {
    fs_err::metadata(path.as_ref())
        .expect("cannot stat")
        .permissions()
        .mode()
        & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_the_empty_string() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn conformance_inputs_have_their_modes() {
        let env = TestEnv::new();
        let (kernel, initrd) = env.conformance_inputs();
        assert_eq!(mode_of(&kernel), 0o755);
        assert_eq!(mode_of(&initrd), 0o644);
        assert_eq!(fs_err::read(&kernel).unwrap(), b"UNIKRAFT-KERNEL\n");
        assert!(!env.store().exists());
    }

    #[test]
    fn the_environment_is_clean() {
        let env = TestEnv::new();
        let out = env
            .command("env")
            .env("EXTRA", "1")
            .run()
            .assert_success()
            .clone();
        let mut names: Vec<&str> = out.stdout.lines().filter_map(|l| l.split('=').next()).collect();
        names.sort();
        assert_eq!(
            names,
            ["EXTRA", "HOME", "LANG", "PATH", "UKPM_STORE", "XDG_DATA_HOME"]
        );
        assert!(
            out.stdout
                .contains(&format!("UKPM_STORE={}", env.store().display()))
        );
        assert!(out.snapshot_text().contains("UKPM_STORE=[TMP]/store"));
    }

    #[test]
    #[should_panic(expected = "no-such-program-here is required by this test: apt-get install -y")]
    fn a_missing_program_fails_loudly() {
        require_program("no-such-program-here", "no-such-package");
    }
}
