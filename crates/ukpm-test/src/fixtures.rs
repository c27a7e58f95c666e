//! Content the product must never be trusted to make for its own tests: tars written byte by
//! byte (tar writers refuse the hostile names tests need), OCI layouts written by hand, and
//! before/after pictures of folders.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{sha256_digest, sha256_hex};

/// A tar archive built header by header, as Go's `archive/tar` writes POSIX ustar for KraftKit
/// (uid/gid 0, mtime 0, empty user and group names, devmajor/devminor `0000000\0`, two zero
/// blocks at the end). It writes any name it is given, `../evil` included, which is the point:
/// tests need archives that no well-behaved writer produces.
#[derive(Default)]
pub struct RawTar {
    bytes: Vec<u8>,
}

/// The ustar type flag of a regular file.
pub const TYPE_FILE: u8 = b'0';
/// The ustar type flag of a symbolic link.
pub const TYPE_SYMLINK: u8 = b'2';
/// The ustar type flag of a folder.
pub const TYPE_DIR: u8 = b'5';

impl RawTar {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file.
    pub fn file(self, name: &str, mode: u32, data: &[u8]) -> Self {
        self.entry(name, TYPE_FILE, mode, "", data)
    }

    /// Adds a symbolic link to `target`.
    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.entry(name, TYPE_SYMLINK, 0o777, target, &[])
    }

    /// Adds a folder.
    pub fn dir(self, name: &str, mode: u32) -> Self {
        self.entry(name, TYPE_DIR, mode, "", &[])
    }

    /// Adds any entry: a 512-byte header with a correct checksum, then `data` padded to 512.
    pub fn entry(mut self, name: &str, typeflag: u8, mode: u32, linkname: &str, data: &[u8]) -> Self {
        assert!(
            name.len() <= 100 && linkname.len() <= 100,
            "RawTar writes only short names"
        );
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 0);
        h[156] = typeflag;
        h[157..157 + linkname.len()].copy_from_slice(linkname.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], 0);
        octal(&mut h[337..345], 0);
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..154].copy_from_slice(format!("{sum:06o}").as_bytes());
        h[154] = 0;
        h[155] = b' ';
        self.bytes.extend_from_slice(&h);
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    /// The archive: the entries, then two zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend(std::iter::repeat_n(0u8, 1024));
        self.bytes
    }
}

/// Writes `value` as zero-padded octal filling all but the last byte of `field`, then NUL.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let text = format!("{value:0width$o}");
    assert_eq!(text.len(), width, "value too large for its tar field");
    field[..width].copy_from_slice(text.as_bytes());
    field[width] = 0;
}

/// An OCI image layout written by hand, the way another tool might have left it: blobs named by
/// their digest and an `index.json` naming references. Tests use it to put content in a store
/// that `ukpm pack` would never write (hostile tars, foreign media types).
pub struct OciLayoutWriter {
    dir: PathBuf,
    refs: Vec<Value>,
}

impl OciLayoutWriter {
    /// Creates `oci-layout` and `blobs/sha256/` in `dir` (made if missing).
    pub fn create(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref().to_path_buf();
        fs_err::create_dir_all(dir.join("blobs").join("sha256")).expect("cannot create a layout");
        fs_err::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("cannot write oci-layout");
        Self {
            dir,
            refs: Vec::new(),
        }
    }

    /// Stores a blob and returns its descriptor (`mediaType`, `digest`, `size`).
    pub fn blob(&mut self, media_type: &str, bytes: &[u8]) -> Value {
        let path = self.dir.join("blobs").join("sha256").join(sha256_hex(bytes));
        fs_err::write(path, bytes).expect("cannot write a blob");
        json!({"mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len()})
    }

    /// Stores a JSON document as a blob (compact, as serde_json writes it) and returns its
    /// descriptor.
    pub fn json_blob(&mut self, media_type: &str, document: &Value) -> Value {
        let bytes = serde_json::to_vec(document).expect("cannot serialise");
        self.blob(media_type, &bytes)
    }

    /// Stores an image manifest with an OCI config for `architecture`/`os` and the given layer
    /// descriptors, and returns the manifest's descriptor.
    pub fn image(&mut self, architecture: &str, os: &str, layers: &[Value]) -> Value {
        let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
        let config = json!({
            "architecture": architecture,
            "os": os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = self.json_blob("application/vnd.oci.image.config.v1+json", &config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": layers,
        });
        let mut descriptor = self.json_blob("application/vnd.oci.image.manifest.v1+json", &manifest);
        descriptor["platform"] = json!({"architecture": architecture, "os": os});
        descriptor
    }

    /// Names `descriptor` in `index.json` as `reference` (the full `registry/repo:tag`).
    pub fn tag(&mut self, reference: &str, descriptor: &Value) {
        let mut entry = descriptor.clone();
        if let Some(object) = entry.as_object_mut() {
            object.remove("platform");
        }
        entry["annotations"] = json!({"org.opencontainers.image.ref.name": reference});
        self.refs.push(entry);
    }

    /// Writes `index.json`.
    pub fn finish(self) {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.refs,
        });
        fs_err::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).expect("serialise"),
        )
        .expect("cannot write index.json");
    }
}

/// A picture of a folder: every path under it with its kind, mode and (for files) size and
/// SHA-256, or nothing when the folder does not exist. Two pictures are equal exactly when
/// nothing was added, removed, changed or re-moded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirState(Option<BTreeMap<String, String>>);

impl DirState {
    /// Takes the picture (symlinks are recorded, not followed).
    pub fn capture(dir: &Path) -> Self {
        if fs_err::symlink_metadata(dir).is_err() {
            return Self(None);
        }
        let mut entries = BTreeMap::new();
        walk(dir, Path::new(""), &mut entries);
        Self(Some(entries))
    }

    /// Whether the folder existed.
    pub fn exists(&self) -> bool {
        self.0.is_some()
    }

    /// The paths under the folder (not the folder itself), sorted; empty when it is missing.
    pub fn paths(&self) -> Vec<&str> {
        self.0
            .iter()
            .flat_map(|m| m.keys())
            .map(String::as_str)
            .filter(|p| *p != ".")
            .collect()
    }
}

fn walk(base: &Path, rel: &Path, out: &mut BTreeMap<String, String>) {
    let path = base.join(rel);
    let meta = fs_err::symlink_metadata(&path).expect("cannot stat");
    let mode = meta.permissions().mode() & 0o7777;
    let key = if rel.as_os_str().is_empty() {
        ".".to_string()
    } else {
        rel.display().to_string()
    };
    if meta.file_type().is_symlink() {
        let target = fs_err::read_link(&path).expect("cannot read link");
        out.insert(key, format!("symlink -> {}", target.display()));
    } else if meta.is_dir() {
        out.insert(key, format!("dir {mode:04o}"));
        let mut children: Vec<_> = fs_err::read_dir(&path)
            .expect("cannot list")
            .map(|e| e.expect("cannot list").file_name())
            .collect();
        children.sort();
        for child in children {
            walk(base, &rel.join(child), out);
        }
    } else {
        let bytes = fs_err::read(&path).expect("cannot read");
        out.insert(
            key,
            format!("file {mode:04o} {} {}", bytes.len(), sha256_hex(&bytes)),
        );
    }
}

/// A tar of regular files whose names are written into the ustar header as raw bytes (up to
/// 100), because a tar writer's path API would check them: names that are not UTF-8, or that
/// hold control characters.
pub fn tar_with_raw_names(files: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        let ustar = header.as_ustar_mut().expect("a ustar header");
        ustar.name[..name.len()].copy_from_slice(name);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).expect("append to a tar in memory");
    }
    builder.into_inner().expect("finish a tar in memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance;

    #[test]
    fn raw_tar_reproduces_kraftkits_layers() {
        let kernel = RawTar::new()
            .file("unikraft/bin/kernel", 0o755, conformance::KERNEL_BYTES)
            .finish();
        assert_eq!(kernel.len(), 2048);
        assert_eq!(sha256_digest(&kernel), conformance::KERNEL_LAYER);
        assert_eq!(&kernel[148..156], b"012776\0 ");
        let initrd = RawTar::new()
            .file("unikraft/bin/initrd", 0o644, conformance::INITRD_BYTES)
            .finish();
        assert_eq!(sha256_digest(&initrd), conformance::INITRD_LAYER);
    }

    #[test]
    fn dir_state_sees_changes() {
        let env = crate::TestEnv::new();
        assert!(!env.dir_state("d").exists());
        env.write("d/a", b"one", 0o644);
        let before = env.dir_state("d");
        assert_eq!(before.paths(), ["a"]);
        env.write("d/a", b"two", 0o644);
        assert_ne!(env.dir_state("d"), before);
        env.write("d/a", b"one", 0o600);
        assert_ne!(env.dir_state("d"), before);
        env.write("d/a", b"one", 0o644);
        assert_eq!(env.dir_state("d"), before);
    }
}
