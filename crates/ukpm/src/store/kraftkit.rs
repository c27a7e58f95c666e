//! KraftKit's own directory store (`<runtime_dir>/oci`, research §3.2), so that ukpm reads the
//! packages `kraft pkg` made and writes packages `kraft run` finds, during a migration.
//!
//! The layout, as KraftKit 0.7 and later write it:
//!
//! ```text
//! <runtime_dir>/oci/digests/sha256/<hex>     every blob (index, manifest, config, layer), raw
//! <runtime_dir>/oci/indexes/<ref, ':' → '/'>  a symlink to the absolute path of an index blob
//! ```
//!
//! What differs from KraftKit, on purpose (its bugs are not copied):
//! - every blob is checked (size and digest) as it is read, so a truncated download that
//!   KraftKit left under its final name is refused instead of trusted;
//! - blobs and tag links are written to a temp name under `.ukpm-tmp/` and renamed into place,
//!   so KraftKit never sees half a file; `.ukpm-tmp/` is outside `digests/` and `indexes/`,
//!   which are the only folders KraftKit walks;
//! - a tag link is read by the digest its target names, looked up in *this* store's
//!   `digests/`, so a runtime folder that was moved or copied (its absolute links pointing at
//!   the old place) still reads, and a link can never lead outside the store;
//! - the name of a tag whose registry has a port (`localhost/5000/foo/bar`, ambiguous in
//!   KraftKit's path scheme, which reads it as the repository `localhost/5000/foo`) comes from
//!   the index's own `io.containerd.image.name` annotation when it matches the path, else a
//!   host followed by a port number is read as `host:port`;
//! - removing a tag removes the link only, never the index blob it points at.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ukpm_store::{GcReport, RefEntry, StoreError};
use ukpm_types::{Descriptor, Digest, Hasher, annotation, limits, media_type};

use super::{
    BlobRead, BoxFuture, ContentStore, Expect, ImageStore, Maintenance, MountHints, RefStore,
    ResumableWrites, StoreLease,
};
use crate::error::{Error, Result};

/// Where ukpm stages files before renaming them in; KraftKit walks neither this nor its parent.
const TMP_DIR: &str = ".ukpm-tmp";
/// The lock that serialises ukpm's tag updates (KraftKit itself takes none).
const LOCK_FILE: &str = ".ukpm-refs.lock";

/// KraftKit's directory store: `digests/` and `indexes/` under `<runtime_dir>/oci`.
///
/// It has blobs and refs but none of the optional capabilities (no resumable downloads, mount
/// hints or fsck), and no garbage collection: what KraftKit's store keeps is KraftKit's to
/// collect.
#[derive(Debug, Clone)]
pub struct KraftKitStore {
    root: PathBuf,
}

impl KraftKitStore {
    /// The store under `dir`: KraftKit's runtime folder (whose `oci/` is used), or the `oci`
    /// folder itself (a folder named `oci`, or one that already has `digests/` or `indexes/`).
    pub fn new(dir: impl Into<PathBuf>) -> KraftKitStore {
        let dir = dir.into();
        let is_oci = dir.file_name().is_some_and(|n| n == "oci")
            || dir.join("digests").is_dir()
            || dir.join("indexes").is_dir();
        let root = if is_oci { dir } else { dir.join("oci") };
        let root = std::path::absolute(&root).unwrap_or(root);
        KraftKitStore { root }
    }

    /// The store KraftKit uses by default: under `$KRAFTKIT_RUNTIME_DIR`, else
    /// `$XDG_DATA_HOME/kraftkit/runtime`, else `~/.local/share/kraftkit/runtime`.
    pub fn open_default() -> Result<KraftKitStore> {
        Ok(KraftKitStore::new(default_runtime_dir()?))
    }

    /// The `oci` folder: the one holding `digests/` and `indexes/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives: `digests/sha256/<hex>`.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("digests")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Where the tag link of `name` lives: `indexes/` plus the name with every `:` made a `/`
    /// (KraftKit's scheme: `unikraft.org/nginx:1.25` → `indexes/unikraft.org/nginx/1.25`).
    pub fn index_path(&self, name: &str) -> Result<PathBuf> {
        let bad = |why: &str| Error::InvalidInput(format!("`{name}` cannot name a KraftKit index: {why}"));
        if name.contains('@') {
            return Err(bad("KraftKit links tags only, never digests"));
        }
        if !name.contains(':') {
            return Err(bad("it has no tag"));
        }
        let rel = name.replace(':', "/");
        let mut path = self.root.join("indexes");
        for part in rel.split('/') {
            if part.is_empty() || part == "." || part == ".." || part.starts_with('.') {
                return Err(bad("a path component is empty or starts with a dot"));
            }
            path.push(part);
        }
        Ok(path)
    }

    fn tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join(TMP_DIR);
        fs_err::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// The blob's size if it is a regular file; a symlink, folder or fifo under a digest's name
    /// is damage and never opened.
    fn stat_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        match fs_err::symlink_metadata(self.blob_path(digest)) {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            Ok(meta) => Err(StoreError::NotAFile {
                digest: *digest,
                kind: if meta.is_dir() {
                    "folder"
                } else if meta.file_type().is_symlink() {
                    "symlink"
                } else {
                    "special file"
                },
            }
            .into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn read_verified(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        let digest = descriptor.digest;
        let size = self
            .stat_blob(&digest)?
            .ok_or(StoreError::BlobNotFound { digest })?;
        if size != descriptor.size {
            return Err(StoreError::StoredSizeMismatch {
                digest,
                expected: descriptor.size,
                actual: size,
            }
            .into());
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        fs_err::File::open(self.blob_path(&digest))?
            .take(size.saturating_add(1))
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 != size {
            return Err(StoreError::StoredSizeMismatch {
                digest,
                expected: size,
                actual: bytes.len() as u64,
            }
            .into());
        }
        let actual = Digest::of(&bytes);
        if actual != digest {
            return Err(StoreError::Corrupt { digest, actual }.into());
        }
        Ok(bytes)
    }

    /// Streams content into `digests/`, through a temp file renamed into place once checked.
    fn ingest(&self, content: &mut dyn Read, expected: Option<(Digest, u64)>) -> Result<(Digest, u64)> {
        let mut file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(self.tmp_dir()?)?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::from_store_io(e)),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
        }
        let size = hasher.len();
        let digest = hasher.finish();
        if let Some((want, want_size)) = expected {
            if digest != want {
                return Err(StoreError::DigestMismatch {
                    expected: want,
                    actual: digest,
                }
                .into());
            }
            if size != want_size {
                return Err(StoreError::SizeMismatch {
                    digest,
                    expected: want_size,
                    actual: size,
                }
                .into());
            }
        }
        if self.stat_blob(&digest).ok().flatten() == Some(size) {
            return Ok((digest, size));
        }
        file.flush()?;
        file.as_file().sync_all()?;
        // KraftKit writes 0664 under the umask; the umask-free 0644 gives the same to others.
        {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))?;
        }
        let target = self.blob_path(&digest);
        if let Some(parent) = target.parent() {
            fs_err::create_dir_all(parent)?;
        }
        file.persist(&target).map_err(|e| {
            std::io::Error::new(
                e.error.kind(),
                format!("failed to rename a blob into {}: {}", target.display(), e.error),
            )
        })?;
        Ok((digest, size))
    }

    /// The digest a tag link points at, from its target's last two components
    /// (`…/sha256/<hex>`); `None` when `path` is no link or names no digest.
    fn link_digest(path: &Path) -> Option<Digest> {
        let target = fs_err::read_link(path).ok()?;
        let hex = target.file_name()?.to_str()?;
        let algorithm = target.parent()?.file_name()?.to_str()?;
        if algorithm != "sha256" {
            return None;
        }
        Digest::from_hex(hex).ok()
    }

    fn list_refs(&self) -> Result<Vec<RefEntry>> {
        Ok(self.list_links()?.into_iter().map(|(entry, _)| entry).collect())
    }

    /// Every tag link, with the paths (under `indexes/`) of the links behind each name.
    ///
    /// Names are full references (`helloworld:latest`, KraftKit's short-name form, is
    /// `unikraft.org/helloworld:latest`, what it stands for). When a short and a full link
    /// both name one package, the full one (which ukpm writes) is the one read.
    fn list_links(&self) -> Result<Vec<(RefEntry, Vec<PathBuf>)>> {
        let indexes = self.root.join("indexes");
        let mut found: std::collections::BTreeMap<String, (RefEntry, bool, Vec<PathBuf>)> =
            std::collections::BTreeMap::new();
        let mut stack = vec![indexes.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs_err::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let mut entries = entries.collect::<std::io::Result<Vec<_>>>()?;
            entries.sort_by_key(fs_err::DirEntry::file_name);
            for entry in entries {
                let path = entry.path();
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Some(rel) = path.strip_prefix(&indexes).ok().and_then(Path::to_str) else {
                    tracing::warn!(path = %path.display(), "skipping a KraftKit tag whose path is not UTF-8");
                    continue;
                };
                if !kind.is_symlink() {
                    tracing::warn!(path = %path.display(), "skipping a KraftKit tag that is not a link to a blob");
                    continue;
                }
                let Some(digest) = Self::link_digest(&path) else {
                    tracing::warn!(path = %path.display(), "skipping a KraftKit tag whose link names no blob");
                    continue;
                };
                let Some(size) = self.stat_blob(&digest).ok().flatten() else {
                    tracing::warn!(path = %path.display(), %digest, "skipping a KraftKit tag whose blob is gone");
                    continue;
                };
                let Some(raw) = self.tag_name(rel, &digest, size) else {
                    tracing::warn!(path = %path.display(), "skipping a KraftKit tag with no tag component");
                    continue;
                };
                let (name, full) = match raw.parse::<ukpm_types::Reference>() {
                    Ok(reference) => {
                        let name = reference.to_string();
                        let full = name == raw;
                        (name, full)
                    }
                    Err(_) => (raw, true),
                };
                let ref_entry = RefEntry {
                    name: name.clone(),
                    descriptor: Descriptor::new(media_type::IMAGE_INDEX, digest, size),
                };
                match found.get_mut(&name) {
                    None => {
                        found.insert(name, (ref_entry, full, vec![path]));
                    }
                    Some((kept, kept_full, paths)) => {
                        if full && !*kept_full {
                            *kept = ref_entry;
                            *kept_full = true;
                        }
                        if kept.descriptor.digest != digest {
                            tracing::warn!(%name, path = %path.display(), "KraftKit has two tags for one name; the full one is read");
                        }
                        paths.push(path);
                    }
                }
            }
        }
        Ok(found
            .into_values()
            .map(|(entry, _, paths)| (entry, paths))
            .collect())
    }

    /// The name a tag link at `rel` (under `indexes/`) stands for: the index's own
    /// `io.containerd.image.name` when it maps to this path (it keeps a port's `:`), else
    /// KraftKit's reading: the last component is the tag, the rest the name.
    fn tag_name(&self, rel: &str, digest: &Digest, size: u64) -> Option<String> {
        if size <= limits::MANIFEST_LIMIT
            && let Ok(bytes) = self.read_verified(&Descriptor::new(media_type::IMAGE_INDEX, *digest, size))
            && let Ok(index) = serde_json::from_slice::<ukpm_types::Index>(&bytes)
            && let Some(name) = index.annotations.get(annotation::CONTAINERD_IMAGE_NAME)
            && name.replace(':', "/") == rel
            && name.contains(':')
        {
            return Some(name.clone());
        }
        let (name, tag) = rel.rsplit_once('/')?;
        Some(format!("{}:{tag}", with_port(name)))
    }

    fn lock(&self) -> Result<fs_err::File> {
        fs_err::create_dir_all(&self.root)?;
        let file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(LOCK_FILE))?;
        file.file().lock()?;
        Ok(file)
    }

    fn set_link(&self, name: &str, descriptor: &Descriptor, expect: Expect) -> Result<bool> {
        if !descriptor.is_index() {
            return Err(Error::Unsupported {
                store: self.describe(),
                what: "naming anything but an image index (KraftKit reads only indexes)",
            });
        }
        let path = self.index_path(name)?;
        if self.stat_blob(&descriptor.digest)? != Some(descriptor.size) {
            return Err(StoreError::BlobNotFound {
                digest: descriptor.digest,
            }
            .into());
        }
        let _lock = self.lock()?;
        let current = match fs_err::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::InvalidInput(format!(
                    "cannot tag `{name}` in {}: {} is a folder (another name uses it as a prefix)",
                    self.describe(),
                    path.display()
                )));
            }
            Ok(_) => Self::link_digest(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        if !expect.holds(current) {
            return Ok(false);
        }
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let tmp = tempfile::Builder::new()
            .prefix("link-")
            .make_in(self.tmp_dir()?, |p| {
                fs_err::os::unix::fs::symlink(self.blob_path(&descriptor.digest), p)
            })?;
        let tmp = tmp.into_temp_path();
        fs_err::rename(&tmp, &path)?;
        // The rename consumed the temp name: nothing is left for the drop to remove.
        let _ = tmp.keep();
        Ok(true)
    }
}

/// `127.0.0.1/5000/foo` read back as `127.0.0.1:5000/foo`: KraftKit's path scheme turns a
/// registry's port colon into a `/`, and a host (with a `.`, or `localhost`) followed by a
/// number and more components can only have been a registry with a port (a repository whose
/// first component is a host name and second a bare port number is not something anyone
/// packs); anything else is left as it is.
fn with_port(name: &str) -> String {
    let parts: Vec<&str> = name.splitn(3, '/').collect();
    if let [host, port, rest] = parts[..]
        && (host.contains('.') || host == "localhost")
        && port.parse::<u16>().is_ok_and(|p| p > 0)
        && !rest.is_empty()
    {
        return format!("{host}:{port}/{rest}");
    }
    name.to_string()
}

/// KraftKit's runtime folder: `$KRAFTKIT_RUNTIME_DIR`, else `$XDG_DATA_HOME/kraftkit/runtime`,
/// else `~/.local/share/kraftkit/runtime` (research §3.1; the config file's `runtime_dir` is
/// not read).
pub fn default_runtime_dir() -> Result<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = non_empty("KRAFTKIT_RUNTIME_DIR") {
        return Ok(dir);
    }
    if let Some(data) = non_empty("XDG_DATA_HOME") {
        return Ok(data.join("kraftkit").join("runtime"));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(home.join(".local").join("share").join("kraftkit").join("runtime"));
    }
    Err(Error::InvalidInput(
        "cannot find KraftKit's runtime folder: set KRAFTKIT_RUNTIME_DIR, XDG_DATA_HOME or HOME".into(),
    ))
}

impl KraftKitStore {
    fn blocking<T, F>(&self, f: F) -> BoxFuture<'_, Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(KraftKitStore) -> Result<T> + Send + 'static,
    {
        super::on_blocking(self, f)
    }
}

impl ContentStore for KraftKitStore {
    fn describe(&self) -> String {
        format!("KraftKit store {}", self.root.display())
    }

    fn lease(&self) -> BoxFuture<'_, Result<StoreLease>> {
        // Nothing here collects garbage, so there is nothing to hold off.
        Box::pin(async { Ok(Box::new(()) as StoreLease) })
    }

    fn has_blob(&self, digest: Digest, size: Option<u64>) -> BoxFuture<'_, Result<bool>> {
        self.blocking(move |s| {
            Ok(match (s.stat_blob(&digest).ok().flatten(), size) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            })
        })
    }

    fn write_blob(
        &self,
        mut content: BlobRead,
        expected: Option<(Digest, u64)>,
    ) -> BoxFuture<'_, Result<(Digest, u64)>> {
        self.blocking(move |s| s.ingest(&mut content, expected))
    }

    fn put_bytes(&self, bytes: Vec<u8>) -> BoxFuture<'_, Result<Digest>> {
        self.blocking(move |s| Ok(s.ingest(&mut bytes.as_slice(), None)?.0))
    }

    fn read_bytes(&self, descriptor: Descriptor) -> BoxFuture<'_, Result<Vec<u8>>> {
        self.blocking(move |s| s.read_verified(&descriptor))
    }

    fn read_many(&self, descriptors: Vec<Descriptor>) -> BoxFuture<'_, Result<Vec<Result<Vec<u8>>>>> {
        self.blocking(move |s| Ok(descriptors.iter().map(|d| s.read_verified(d)).collect()))
    }

    fn open_blob(&self, digest: Digest) -> BoxFuture<'_, Result<BlobRead>> {
        self.blocking(move |s| {
            let size = s.stat_blob(&digest)?.ok_or(StoreError::BlobNotFound { digest })?;
            let file = fs_err::File::open(s.blob_path(&digest))?;
            // The size is checked by whoever knows the descriptor; the digest is checked here.
            Ok(Box::new(ukpm_store::VerifyingReader::new(file.take(size), digest)) as BlobRead)
        })
    }

    fn open_blob_range(&self, digest: Digest, offset: u64, len: u64) -> BoxFuture<'_, Result<BlobRead>> {
        self.blocking(move |s| {
            use std::io::{Seek, SeekFrom};
            s.stat_blob(&digest)?.ok_or(StoreError::BlobNotFound { digest })?;
            let mut file = fs_err::File::open(s.blob_path(&digest))?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(Box::new(file.take(len)) as BlobRead)
        })
    }
}

impl RefStore for KraftKitStore {
    fn refs(&self) -> BoxFuture<'_, Result<Vec<RefEntry>>> {
        self.blocking(|s| s.list_refs())
    }

    fn set_ref(&self, name: String, descriptor: Descriptor, expect: Expect) -> BoxFuture<'_, Result<bool>> {
        self.blocking(move |s| s.set_link(&name, &descriptor, expect))
    }

    fn remove_refs(&self, names: Vec<String>) -> BoxFuture<'_, Result<Vec<RefEntry>>> {
        self.blocking(move |s| {
            let _lock = s.lock()?;
            let mut removed = Vec::new();
            for (entry, paths) in s.list_links()? {
                if names.contains(&entry.name) {
                    // Every link behind the name, the short form too, or it would show again.
                    for path in paths {
                        fs_err::remove_file(path)?;
                    }
                    removed.push(entry);
                }
            }
            Ok(removed)
        })
    }
}

impl ImageStore for KraftKitStore {
    fn gc(&self) -> BoxFuture<'_, Result<GcReport>> {
        let store = self.describe();
        Box::pin(async move {
            Err(Error::Unsupported {
                store,
                what: "garbage collection (KraftKit's store is KraftKit's to collect)",
            })
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn resumable_writes(&self) -> Option<&dyn ResumableWrites> {
        None
    }

    fn mount_hints(&self) -> Option<&dyn MountHints> {
        None
    }

    fn maintenance(&self) -> Option<&dyn Maintenance> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn a_port_folder_is_read_back_as_a_port() {
        assert_eq!(with_port("127.0.0.1/5000/foo"), "127.0.0.1:5000/foo");
        assert_eq!(with_port("localhost/5000/foo/bar"), "localhost:5000/foo/bar");
        assert_eq!(with_port("unikraft.org/helloworld"), "unikraft.org/helloworld");
        assert_eq!(with_port("helloworld"), "helloworld");
        assert_eq!(with_port("team/5000/app"), "team/5000/app");
        assert_eq!(with_port("localhost/5000"), "localhost/5000");
    }

    #[test]
    fn names_that_cannot_be_a_tag_path_are_refused() {
        let store = KraftKitStore::new("/nonexistent/runtime");
        assert_eq!(store.root(), Path::new("/nonexistent/runtime/oci"));
        assert!(
            store
                .index_path("unikraft.org/a:v1")
                .unwrap()
                .ends_with("oci/indexes/unikraft.org/a/v1")
        );
        for bad in [
            "a",
            "a@sha256:00",
            "../x:v1",
            "a/./b:v1",
            "a//b:v1",
            "a/.hidden:v1",
        ] {
            assert!(store.index_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_indexes_are_named_and_the_full_link_wins_over_the_short_one() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = KraftKitStore::new(dir.path());
        block_on(async {
            let one = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
            let two = br#"{"schemaVersion":2,"manifests":[]}"#;
            let one = Descriptor::new(media_type::IMAGE_INDEX, store.put_bytes(one.to_vec()).await?, one.len() as u64);
            let two = Descriptor::new(media_type::IMAGE_INDEX, store.put_bytes(two.to_vec()).await?, two.len() as u64);
            let manifest = Descriptor::new(media_type::IMAGE_MANIFEST, one.digest, one.size);
            assert!(matches!(
                store.set_ref("unikraft.org/a:v1".into(), manifest, Expect::Any).await,
                Err(Error::Unsupported { .. })
            ));
            // KraftKit's short form first, then ukpm's full one for the same package.
            assert!(store.set_ref("a:v1".into(), two.clone(), Expect::Any).await?);
            assert!(dir.path().join("oci/indexes/a/v1").is_symlink());
            let refs = store.refs().await?;
            assert_eq!(refs.len(), 1);
            assert_eq!(refs[0].name, "unikraft.org/a:v1");
            assert_eq!(refs[0].descriptor.digest, two.digest);
            assert!(
                store
                    .set_ref("unikraft.org/a:v1".into(), one.clone(), Expect::Absent)
                    .await?
            );
            assert!(!store.set_ref("unikraft.org/a:v1".into(), two.clone(), Expect::Absent).await?);
            let refs = store.refs().await?;
            assert_eq!(refs.len(), 1);
            assert_eq!(refs[0].descriptor.digest, one.digest);
            // Removing the name removes both links, so the short one does not show again.
            assert_eq!(store.remove_refs(vec!["unikraft.org/a:v1".into()]).await?.len(), 1);
            assert!(store.refs().await?.is_empty());
            assert!(store.has_blob(one.digest, Some(one.size)).await?);
            // Nothing of ukpm's staging is left where KraftKit looks.
            assert_eq!(fs_err::read_dir(dir.path().join("oci").join(TMP_DIR))?.count(), 0);
            Ok::<_, Error>(())
        })
        .expect("the store works");
    }

    #[test]
    fn a_truncated_blob_is_refused() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = KraftKitStore::new(dir.path());
        block_on(async {
            let bytes = b"some layer bytes".to_vec();
            let digest = store.put_bytes(bytes.clone()).await?;
            let path = store.blob_path(&digest);
            fs_err::write(&path, &bytes[..4])?;
            let read = store
                .read_bytes(Descriptor::new(media_type::LAYER_TAR, digest, bytes.len() as u64))
                .await;
            assert!(read.is_err());
            fs_err::write(&path, b"some layer bytez")?;
            let read = store
                .read_bytes(Descriptor::new(media_type::LAYER_TAR, digest, bytes.len() as u64))
                .await;
            assert!(matches!(read, Err(Error::Store(StoreError::Corrupt { .. }))));
            let mut reader = store.open_blob(digest).await?;
            assert!(std::io::copy(&mut reader, &mut std::io::sink()).is_err());
            Ok::<_, Error>(())
        })
        .expect("the store works");
    }
}
