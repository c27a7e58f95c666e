//! Unpacking a package into a folder, as `kraft pkg pull -o DIR` does, but safely.
//!
//! Layers are extracted into a staging folder inside the target, each blob hashed as it is read;
//! only when every layer has verified are the staged files moved into place. A corrupt blob or a
//! hostile tar therefore leaves the target as it was.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use ukpm_archive::extract::{ExtractError, extract};
use ukpm_types::{Descriptor, annotation, media_type, well_known};

use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::package::{Package, Query};
use crate::reporter::Step;
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
    Tar,
    TarGzip,
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
        media_type::LAYER_TAR | media_type::DOCKER_LAYER_TAR | media_type::UNIKRAFT_LAYER => LayerKind::Tar,
        media_type::LAYER_TAR_GZIP | media_type::DOCKER_LAYER_TAR_GZIP | media_type::UNIKRAFT_LAYER_GZIP => {
            LayerKind::TarGzip
        }
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
        let _lease = store.lease().await?;
        let catalog = self.catalog();
        let reference = &catalog.stored_reference(&catalog.resolve(&name).await?, &name)?;
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
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            let kind = layer_kind(layer)?;
            layers.push((layer.clone(), kind, store.open_blob(layer.digest).await?));
        }
        self.reporter().on_step(&Step::Unpack {
            reference: package.reference.clone(),
            platform: package.plat_arch(),
            dir: dir.to_path_buf(),
        });
        let dest = dir.to_path_buf();
        let files = tokio::task::spawn_blocking(move || unpack_layers(layers, &dest)).await??;

        let find = |key: &str, default: &str| {
            let path = manifest
                .layers
                .iter()
                .find_map(|l| l.annotations.get(key))
                .map_or(default, String::as_str);
            let full = dir.join(path.trim_start_matches('/'));
            full.is_file().then_some(full)
        };
        Ok(Unpacked {
            kernel: find(annotation::KERNEL_PATH, well_known::KERNEL),
            initrd: find(annotation::KERNEL_INITRD_PATH, well_known::INITRD),
            cmd: config.config.cmd,
            env: config.config.env,
            files,
            package,
        })
    }
}

fn unpack_layers(layers: Vec<(Descriptor, LayerKind, BlobRead)>, dest: &Path) -> Result<Vec<PathBuf>> {
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
    let mut files = Vec::new();
    for (layer, kind, mut blob) in layers {
        let written = match kind {
            LayerKind::Tar => extract(&mut blob, staging.path()),
            LayerKind::TarGzip => extract(flate2::read::GzDecoder::new(&mut blob), staging.path()),
            LayerKind::Raw { path, mode } => write_raw(&mut blob, staging.path(), &path, mode),
        }
        .map_err(|e| Error::extract(layer.digest, e))?;
        // Read what the parser left (tar padding) so the digest check covers every byte.
        io::copy(&mut blob, &mut io::sink()).map_err(Error::from_store_io)?;
        files.extend(written);
    }
    move_tree(staging.path(), dest)?;
    files.sort();
    files.dedup();
    Ok(files)
}

fn write_raw(blob: &mut impl Read, root: &Path, path: &str, mode: u32) -> Result<Vec<PathBuf>, ExtractError> {
    let relative: PathBuf = Path::new(path)
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if relative.as_os_str().is_empty() || Path::new(path).components().any(|c| c == Component::ParentDir) {
        return Err(ExtractError::PathEscape {
            entry: path.to_string(),
        });
    }
    let target = root.join(&relative);
    let io_err = |source| ExtractError::Io {
        path: target.clone(),
        source,
    };
    if let Some(parent) = target.parent() {
        fs_err::create_dir_all(parent).map_err(io_err)?;
    }
    let mut file = fs_err::File::create(&target).map_err(io_err)?;
    io::copy(blob, &mut file).map_err(io_err)?;
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(&target, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    Ok(vec![relative])
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
