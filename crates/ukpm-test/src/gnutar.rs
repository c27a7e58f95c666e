//! GNU `tar` (and the `zstd` program) as the independent reference for layer extraction: tests
//! build archives with GNU tar itself, extract them both with GNU tar and with ukpm, and compare
//! the file trees, so every dialect is checked against the tool that defines it.
//!
//! Every function fails the test, with the command that installs the program, when GNU tar or
//! zstd is missing.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs GNU tar with `args` in `dir`; fails the test if it is not GNU tar.
pub fn run<S: AsRef<OsStr>>(args: &[S], dir: &Path) -> Output {
    let out = Command::new("tar")
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run GNU tar ({e}): install it with `apt-get install tar`"));
    let version = Command::new("tar")
        .arg("--version")
        .output()
        .expect("tar --version");
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("GNU tar"),
        "`tar` is not GNU tar: install it with `apt-get install tar`"
    );
    out
}

/// Creates `archive` from `members` of `dir` with GNU tar and extra `options` (a format,
/// `--sparse`...), asserting success. Owners and times are fixed so archives are reproducible.
pub fn create(archive: &Path, dir: &Path, options: &[&str], members: &[&str]) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("-cf"), archive.as_os_str()];
    args.extend(
        ["--owner=0", "--group=0", "--numeric-owner", "--mtime=@0"]
            .iter()
            .map(OsStr::new),
    );
    args.extend(options.iter().map(OsStr::new));
    args.extend(members.iter().map(OsStr::new));
    let out = run(&args, dir);
    assert!(
        out.status.success(),
        "GNU tar failed to create {}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Extracts `archive` into the existing folder `dest` with GNU tar (permissions kept, owners
/// not); `Err` with tar's messages when GNU tar refuses the archive or warns about it.
pub fn extract(archive: &Path, dest: &Path) -> Result<(), String> {
    let args: Vec<&OsStr> = vec![
        OsStr::new("-xf"),
        archive.as_os_str(),
        OsStr::new("-p"),
        OsStr::new("--no-same-owner"),
        OsStr::new("-C"),
        dest.as_os_str(),
    ];
    let out = run(&args, dest);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Compresses `data` with the `zstd` program at `level`.
pub fn zstd(data: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("zstd")
        .args([format!("-{level}"), "-c".into(), "-q".into()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run zstd ({e}): install it with `apt-get install zstd`"));
    let mut stdin = child.stdin.take().expect("stdin");
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("zstd");
    writer.join().expect("writer").expect("write to zstd");
    assert!(out.status.success(), "zstd failed");
    out.stdout
}

/// One node of an extracted tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `f` file, `d` directory, `l` symlink, `o` other.
    pub kind: char,
    /// Permission bits (not for symlinks).
    pub mode: u32,
    /// Apparent size (files only).
    pub size: u64,
    /// The content of a file.
    pub content: Vec<u8>,
    /// A symlink's target, raw bytes.
    pub link: Vec<u8>,
}

/// Every node under `root` by raw relative name, with what a comparison of two extractions
/// should look at; also the 512-byte blocks each file occupies (`st_blocks`), to check holes.
pub fn tree(root: &Path) -> (BTreeMap<Vec<u8>, Node>, BTreeMap<Vec<u8>, u64>) {
    let mut nodes = BTreeMap::new();
    let mut blocks = BTreeMap::new();
    walk(root, &PathBuf::new(), &mut nodes, &mut blocks);
    (nodes, blocks)
}

fn walk(root: &Path, rel: &Path, nodes: &mut BTreeMap<Vec<u8>, Node>, blocks: &mut BTreeMap<Vec<u8>, u64>) {
    let mut entries: Vec<_> = fs_err::read_dir(root.join(rel))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    entries.sort();
    for name in entries {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = fs_err::symlink_metadata(&path).expect("metadata");
        let key = rel.as_os_str().as_bytes().to_vec();
        let ft = meta.file_type();
        let mut node = Node {
            kind: 'o',
            mode: meta.mode() & 0o7777,
            size: 0,
            content: Vec::new(),
            link: Vec::new(),
        };
        if ft.is_symlink() {
            node.kind = 'l';
            node.mode = 0;
            node.link = fs_err::read_link(&path)
                .expect("readlink")
                .as_os_str()
                .as_bytes()
                .to_vec();
        } else if ft.is_dir() {
            node.kind = 'd';
            walk(root, &rel, nodes, blocks);
        } else if ft.is_file() {
            node.kind = 'f';
            node.size = meta.len();
            node.content = fs_err::read(&path).expect("read");
            blocks.insert(key.clone(), meta.blocks());
        }
        nodes.insert(key, node);
    }
}
