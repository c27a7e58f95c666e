//! Unpacking a package into a folder, as `kraft pkg pull -o DIR` does, but safely.
//!
//! Layers are extracted into a staging folder inside the target, each blob hashed as it is read;
//! only when every layer has verified are the staged files moved into place. A corrupt blob or a
//! hostile tar therefore leaves the target as it was.
//!
//! Layers are applied in order into the staging folder, so the OCI whiteouts of a layer
//! (`.wh.NAME`, `.wh..wh..opq`) remove what the layers before it wrote, as the image spec and
//! umoci do. Compressed layers (gzip, zstd) expand at most 1000:1 past their first 16 MiB, and
//! one layer's files may take at most 16 GiB (see `ukpm_archive::extract::Options`).
//!
//! The kernel and initrd paths a package names in its annotations are resolved inside the
//! target: a `..`, or a symlink that is absolute or climbs out, is refused.

use std::collections::VecDeque;
use std::io;
use std::path::{Component, Path, PathBuf};

use ukpm_archive::compression::{Compression, Expansion, decompress};
use ukpm_archive::extract::{self, Options};
use ukpm_types::{Descriptor, Digest, annotation, media_type, well_known};

use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::package::{Package, Query};
use crate::reporter::{Direction, Plan, ReportedRead, Step, Subject};
use crate::store::BlobRead;

/// What an unpack wrote.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The package unpacked.
    pub package: Package,
    /// The kernel's path, when the image has one.
    pub kernel: Option<PathBuf>,
    /// The initrd's path, when the image has one.
    pub initrd: Option<PathBuf>,
    /// The unikernel's arguments, from the config.
    pub cmd: Vec<String>,
    /// The environment, from the config.
    pub env: Vec<String>,
    /// Every regular file written, relative to the target folder.
    pub files: Vec<PathBuf>,
}

/// How one layer is turned into files.
enum LayerKind {
    Tar(Compression),
    Raw { path: String, mode: u32 },
}

fn layer_kind(layer: &Descriptor) -> Result<LayerKind> {
    let annotated = |key: &str, default: &str| {
        layer
            .annotations
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    Ok(match layer.media_type.as_str() {
        media_type::LAYER_TAR | media_type::DOCKER_LAYER_TAR | media_type::UNIKRAFT_LAYER => {
            LayerKind::Tar(Compression::None)
        }
        media_type::LAYER_TAR_GZIP | media_type::DOCKER_LAYER_TAR_GZIP | media_type::UNIKRAFT_LAYER_GZIP => {
            LayerKind::Tar(Compression::Gzip)
        }
        media_type::LAYER_TAR_ZSTD => LayerKind::Tar(Compression::Zstd),
        media_type::UNIKRAFT_KERNEL | media_type::UNIKRAFT_IMAGE_KERNEL => LayerKind::Raw {
            path: annotated(annotation::KERNEL_PATH, well_known::KERNEL),
            mode: 0o755,
        },
        media_type::UNIKRAFT_INITRD => LayerKind::Raw {
            path: annotated(annotation::KERNEL_INITRD_PATH, well_known::INITRD),
            mode: 0o644,
        },
        media_type::UNIKRAFT_ROM => LayerKind::Raw {
            path: well_known::ROM.to_string(),
            mode: 0o644,
        },
        other => {
            return Err(Error::UnsupportedMediaType {
                digest: layer.digest,
                media_type: other.to_string(),
            });
        }
    })
}

impl PackageManager {
    /// Writes the kernel and initrd (every layer) of the package `reference` names into `dir`.
    ///
    /// When the reference holds several manifests, `query` must narrow them to one.
    pub async fn unpack(
        &self,
        name: impl Into<crate::LocalName>,
        query: &Query,
        dir: &Path,
    ) -> Result<Unpacked> {
        let name = name.into();
        let store = self.store();
        let catalog = self.catalog();
        // Resolved before the lease: a lease creates a store that does not exist yet, and an
        // unpack of a name that is not there must leave no store behind (issue 13).
        let resolved = catalog.resolve(&name).await?;
        let _lease = store.lease().await?;
        let reference = &catalog.stored_reference(&resolved, &name)?;
        let mut packages = catalog.find(&name, query).await?;
        let package = match packages.len() {
            0 => {
                return Err(Error::NoMatch {
                    reference: reference.clone(),
                    query: query.describe(),
                });
            }
            1 => packages.remove(0),
            _ => {
                return Err(Error::Ambiguous {
                    reference: reference.clone(),
                    candidates: packages.iter().map(Package::plat_arch).collect(),
                });
            }
        };
        let manifest = catalog.read_manifest(&package.manifest).await?;
        let config = catalog.read_config(&manifest).await?;
        let layers = manifest
            .layers
            .iter()
            .map(|layer| Ok((layer.clone(), layer_kind(layer)?)))
            .collect::<Result<Vec<_>>>()?;
        // Each layer is opened when its turn comes and closed after it: a manifest with
        // thousands of layers holds one file descriptor, not one per layer.
        let store = self.store_arc();
        let handle = tokio::runtime::Handle::current();
        // Each layer read is reported as it is extracted (by the bytes of the blob read).
        let reporter = self.reporter_arc();
        let subjects: std::collections::HashMap<Digest, Subject> = manifest
            .layers
            .iter()
            .map(|l| (l.digest, Subject::of(&package.reference, l, Direction::Unpack)))
            .collect();
        let open = move |digest| -> Result<BlobRead> {
            let blob = handle.block_on(store.open_blob(digest))?;
            Ok(match subjects.get(&digest) {
                Some(subject) => Box::new(ReportedRead::start(reporter.clone(), subject, blob)),
                None => blob,
            })
        };
        self.reporter().on_step(&Step::Unpack {
            reference: package.reference.clone(),
            platform: package.plat_arch(),
            dir: dir.to_path_buf(),
        });
        self.reporter()
            .on_plan(&Plan::of(&package.reference, Direction::Unpack, &manifest.layers));
        let named = |key: &str, default: &str| {
            manifest
                .layers
                .iter()
                .find_map(|l| l.annotations.get(key))
                .map_or(default, String::as_str)
                .to_string()
        };
        let wanted = [
            (
                annotation::KERNEL_PATH,
                named(annotation::KERNEL_PATH, well_known::KERNEL),
            ),
            (
                annotation::KERNEL_INITRD_PATH,
                named(annotation::KERNEL_INITRD_PATH, well_known::INITRD),
            ),
        ];
        let dest = dir.to_path_buf();
        let (files, found) =
            tokio::task::spawn_blocking(move || unpack_layers(layers, open, &dest, &wanted)).await??;
        let [kernel, initrd] = found.map(|rel| rel.map(|rel| dir.join(rel)));
        Ok(Unpacked {
            kernel,
            initrd,
            cmd: config.config.cmd,
            env: config.config.env,
            files,
            package,
        })
    }
}

/// Applies every layer in order into a staging folder inside `dest`, resolves the kernel and
/// initrd paths in it (`wanted`: annotation key and path), then moves the tree into place.
/// Returns the regular files left and the resolved paths, relative to `dest`.
fn unpack_layers(
    layers: Vec<(Descriptor, LayerKind)>,
    open: impl Fn(Digest) -> Result<BlobRead>,
    dest: &Path,
    wanted: &[(&str, String); 2],
) -> Result<(Vec<PathBuf>, [Option<PathBuf>; 2])> {
    fs_err::create_dir_all(dest)?;
    let staging = tempfile::Builder::new()
        .prefix(".ukpm-unpack-")
        .tempdir_in(dest)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("failed to create a staging folder in {}: {e}", dest.display()),
            )
        })?;
    let options = Options::default();
    let mut files = Vec::new();
    for (layer, kind) in layers {
        let mut blob = open(layer.digest)?;
        let written = match kind {
            LayerKind::Tar(compression) => extract::extract_with(
                decompress(&mut blob, compression, Expansion::default()),
                staging.path(),
                &options,
            ),
            LayerKind::Raw { path, mode } => {
                extract::write_file(&mut blob, staging.path(), path.as_bytes(), mode, &options)
                    .map(|f| vec![f])
            }
        }
        .map_err(|e| Error::extract(layer.digest, e))?;
        // Read what the parser left (tar padding) so the digest check covers every byte.
        io::copy(&mut blob, &mut io::sink()).map_err(Error::from_store_io)?;
        files.extend(written);
    }
    // A later layer may have removed (whiteouts) or replaced what an earlier one wrote.
    files.retain(|f| fs_err::symlink_metadata(staging.path().join(f)).is_ok_and(|m| m.is_file()));
    let mut found = [None, None];
    for (slot, (key, path)) in found.iter_mut().zip(wanted) {
        *slot = resolve_inside(staging.path(), path).map_err(|why| {
            Error::InvalidInput(format!(
                "the package names `{}` in its annotation `{key}`, which {why}: refused",
                path.escape_debug()
            ))
        })?;
    }
    move_tree(staging.path(), dest)?;
    files.sort();
    files.dedup();
    Ok((files, found))
}

/// Resolves `name` (a path from an annotation) inside `root` as the kernel would open it there,
/// following symlinks only while they stay inside. `Ok(None)` when there is no regular file
/// there; `Err` (why) when the name or a symlink on the way leads out of `root`.
fn resolve_inside(root: &Path, name: &str) -> std::result::Result<Option<PathBuf>, String> {
    let mut pending: VecDeque<PathBuf> = VecDeque::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(c) => pending.push_back(PathBuf::from(c)),
            Component::ParentDir => return Err("climbs with `..`".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if pending.is_empty() {
        return Err("names no file".into());
    }
    let mut resolved = PathBuf::new();
    let mut hops = 0;
    while let Some(component) = pending.pop_front() {
        if component.as_os_str() == ".." {
            if !resolved.pop() {
                return Err("goes through a symlink that leads out of the target folder".into());
            }
            continue;
        }
        let candidate = resolved.join(&component);
        let meta = match fs_err::symlink_metadata(root.join(&candidate)) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot be inspected ({e})")),
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err("goes through too many symlinks".into());
            }
            let target =
                fs_err::read_link(root.join(&candidate)).map_err(|e| format!("cannot be inspected ({e})"))?;
            if target.is_absolute() {
                return Err("goes through a symlink to an absolute path".into());
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(c) => pending.push_front(PathBuf::from(c)),
                    Component::ParentDir => pending.push_front(PathBuf::from("..")),
                    _ => {}
                }
            }
            continue;
        }
        if pending.is_empty() {
            return Ok(meta.is_file().then_some(candidate));
        }
        if !meta.is_dir() {
            return Ok(None);
        }
        resolved = candidate;
    }
    Ok(None)
}

/// Moves a staged tree into `dest`, merging folders and replacing files, without ever
/// following a symlink that is already in `dest`.
fn move_tree(staged: &Path, dest: &Path) -> Result<()> {
    let mut entries: Vec<_> = fs_err::read_dir(staged)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let staged_dir = entry.file_type()?.is_dir();
        match fs_err::symlink_metadata(&to) {
            Ok(existing) if existing.is_dir() && staged_dir => {
                move_tree(&from, &to)?;
                continue;
            }
            Ok(existing) if existing.is_dir() => {
                return Err(Error::InvalidInput(format!(
                    "cannot unpack {}: a folder is in the way",
                    to.display()
                )));
            }
            Ok(_) => fs_err::remove_file(&to)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        fs_err::rename(&from, &to)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::resolve_inside;

    #[test]
    fn annotation_paths_resolve_inside_or_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs_err::create_dir_all(root.join("boot")).unwrap();
        fs_err::write(root.join("boot/kernel"), b"k").unwrap();
        fs_err::write(tmp.path().join("outside"), b"o").unwrap();
        let link = |name: &str, target: &str| fs_err::os::unix::fs::symlink(target, root.join(name)).unwrap();
        link("inside", "boot/kernel");
        link("via-dir", "boot");
        link("absolute", "/etc/passwd");
        link("climbs", "../outside");
        link("loop", "loop");
        let ok = |name: &str| {
            resolve_inside(&root, name)
                .unwrap()
                .map(|p| p.display().to_string())
        };
        assert_eq!(ok("boot/kernel").as_deref(), Some("boot/kernel"));
        assert_eq!(ok("/boot/kernel").as_deref(), Some("boot/kernel"));
        assert_eq!(ok("inside").as_deref(), Some("boot/kernel"));
        assert_eq!(ok("via-dir/kernel").as_deref(), Some("boot/kernel"));
        assert_eq!(ok("boot/missing"), None);
        assert_eq!(ok("boot"), None);
        for bad in [
            "../outside",
            "boot/../../outside",
            "absolute",
            "climbs",
            "loop",
            "/",
            "",
        ] {
            assert!(resolve_inside(&root, bad).is_err(), "{bad}");
        }
    }
}
