//! Stamps the binary with what `ukpm --version` reports beside the version: the git commit it
//! was built from and the cargo features it was built with, so a bug report names the exact
//! build. Outside a git checkout of ukpm (a crate tarball, no `git`), the commit is "unknown".
//!
//! Only `git` is run, nothing is fetched; the script reruns when the checked-out commit moves
//! (HEAD, the branch's ref, packed refs, HEAD's reflog), not on every source change.

// Cargo reads a build script's instructions from its stdout.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = match git_checkout(&manifest_dir) {
        Some(checkout) => {
            for file in checkout.watch {
                println!("cargo:rerun-if-changed={}", file.display());
            }
            checkout.commit
        }
        None => "unknown".to_string(),
    };
    println!("cargo:rustc-env=UKPM_GIT_COMMIT={commit}");

    let mut features: Vec<String> = std::env::vars()
        .filter_map(|(key, _)| key.strip_prefix("CARGO_FEATURE_").map(str::to_owned))
        .filter(|feature| feature != "DEFAULT")
        .map(|feature| feature.to_lowercase().replace('_', "-"))
        .collect();
    features.sort();
    let features = if features.is_empty() {
        "none".to_string()
    } else {
        features.join(", ")
    };
    println!("cargo:rustc-env=UKPM_FEATURES={features}");
}

/// The commit of the ukpm checkout this crate sits in, and the files whose change moves it.
struct Checkout {
    commit: String,
    watch: Vec<PathBuf>,
}

/// `None` when git is missing, this is no git checkout, or the checkout is another project's
/// (ukpm vendored into it): its commit would name the wrong source.
fn git_checkout(manifest_dir: &Path) -> Option<Checkout> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(manifest_dir)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
    };
    let toplevel = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let ours = toplevel.join("crates").join("ukpm-cli");
    if ours.canonicalize().ok()? != manifest_dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    // `--git-path` answers for linked worktrees too, whose HEAD and refs live apart.
    let path =
        |name: &str| git(&["rev-parse", "--path-format=absolute", "--git-path", name]).map(PathBuf::from);
    let mut watch = vec![path("HEAD")?];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch.extend(path(&branch));
    }
    // A commit on a branch whose ref is packed writes no file watched so far, but appends to
    // HEAD's reflog.
    watch.extend(path("packed-refs"));
    watch.extend(path("logs/HEAD"));
    watch.retain(|file| file.exists());
    Some(Checkout { commit, watch })
}
