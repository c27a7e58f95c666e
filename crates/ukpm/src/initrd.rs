//! The initrd of a package, made from a [`Rootfs`]: a file packed as it is, a folder or an
//! image's flattened tree archived as CPIO newc, optionally gzipped (`--compress`).
//!
//! The bytes of a file or folder rootfs are what they always were, so packages keep their
//! digests. KraftKit compresses with Go's `compress/gzip` at the default level: ukpm writes the
//! same gzip header (no name, mtime 0, OS 255) but its deflate stream comes from another
//! implementation, so a compressed initrd's digest differs from KraftKit's; the uncompressed
//! CPIO it holds is the same.

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use ukpm_types::{Architecture, KConfig, annotation, well_known};

use crate::error::{Error, Result};
use crate::image::Layer;
use crate::manager::PackageManager;
use crate::rootfs::Rootfs;

/// The kconfig options that embed the initrd in the kernel image (KraftKit's EINITRD check):
/// with any of them `=y`, no initrd layer is packed.
pub const EINITRD_KCONFIG: [&str; 3] = [
    "CONFIG_LIBVFSCORE_ROOTFS_EINITRD",
    "CONFIG_LIBVFSCORE_AUTOMOUNT_EINITRD",
    "CONFIG_LIBVFSCORE_AUTOMOUNT_CI_EINITRD",
];

/// The first EINITRD option `kconfig` sets to `y`, if any.
pub(crate) fn embedded_initrd(kconfig: &KConfig) -> Option<&'static str> {
    EINITRD_KCONFIG
        .into_iter()
        .find(|key| kconfig.get(key) == Some("y"))
}

/// The initrd ready to become a layer; holds the temp archive it was built into, if any.
pub(crate) struct PreparedInitrd {
    pub(crate) file: Layer,
    _archive: Option<tempfile::NamedTempFile>,
    /// An image's `Entrypoint` + `Cmd`: the command when the user gives none (KraftKit's rule).
    pub(crate) args: Vec<String>,
    /// An image's `Env`: the environment when the user gives none.
    pub(crate) env: Vec<String>,
    /// What was chosen (an image's platform and manifest), for the reporter.
    pub(crate) chosen: Option<String>,
}

/// Refuses a rootfs that cannot be packed, before anything is written: a missing file or
/// folder, a Dockerfile, a folder given as a layout that is not one.
pub(crate) fn check(rootfs: &Rootfs) -> Result<()> {
    let kind = |path: &Path| {
        #[expect(
            clippy::disallowed_methods,
            reason = "Error::InputFile names the path already"
        )]
        std::fs::metadata(path).map_err(|source| Error::InputFile {
            what: "initrd",
            path: path.to_path_buf(),
            source,
        })
    };
    let wrong = |path: &Path, why: &str| Error::InputFile {
        what: "initrd",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
    };
    match rootfs {
        Rootfs::Cpio(path) if !kind(path)?.is_file() => Err(wrong(path, "not a file")),
        Rootfs::Dir(path) if !kind(path)?.is_dir() => Err(wrong(path, "not a folder")),
        Rootfs::Layout { dir, .. } if !dir.join("oci-layout").is_file() => Err(Error::InputFile {
            what: "OCI layout",
            path: dir.join("oci-layout"),
            source: io::Error::new(io::ErrorKind::NotFound, "not an OCI image layout"),
        }),
        Rootfs::Dockerfile(path) => Err(Rootfs::dockerfile_error(path)),
        _ => Ok(()),
    }
}

impl PackageManager {
    /// Builds the initrd `rootfs` describes for `arch`, gzipped when `compress`.
    pub(crate) async fn prepare_initrd(
        &self,
        rootfs: &Rootfs,
        arch: Architecture,
        compress: bool,
    ) -> Result<PreparedInitrd> {
        let layer = |path: &Path| {
            Ok::<_, Error>(
                Layer::from_file(path, well_known::INITRD, "initrd")?
                    .with_annotation(annotation::KERNEL_INITRD_PATH, well_known::INITRD),
            )
        };
        let built = |archive: tempfile::NamedTempFile| {
            Ok::<_, Error>(PreparedInitrd {
                file: layer(archive.path())?.with_mode(0o644),
                _archive: Some(archive),
                args: Vec::new(),
                env: Vec::new(),
                chosen: None,
            })
        };
        match rootfs {
            Rootfs::Cpio(path) if !compress || is_gzip_file(path)? => Ok(PreparedInitrd {
                file: layer(path)?,
                _archive: None,
                args: Vec::new(),
                env: Vec::new(),
                chosen: None,
            }),
            Rootfs::Cpio(path) => {
                let path = path.clone();
                let archive = tokio::task::spawn_blocking(move || gzip_file(&path)).await??;
                built(archive)
            }
            Rootfs::Dir(dir) => {
                let dir = dir.clone();
                let archive =
                    tokio::task::spawn_blocking(move || archive_dir(&dir, compress, &HashMap::new()))
                        .await??;
                built(archive)
            }
            Rootfs::Layout { .. } | Rootfs::Image(_) => {
                let flat = self.flatten_image(rootfs, arch).await?;
                let (tree, modes) = (flat.tree, flat.modes);
                let archive =
                    tokio::task::spawn_blocking(move || archive_dir(tree.path(), compress, &modes)).await??;
                let mut prepared = built(archive)?;
                prepared.args = flat.args;
                prepared.env = flat.env;
                prepared.chosen = Some(flat.chosen);
                Ok(prepared)
            }
            Rootfs::Dockerfile(path) => Err(Rootfs::dockerfile_error(path)),
        }
    }
}

fn temp_archive() -> Result<tempfile::NamedTempFile> {
    Ok(tempfile::Builder::new()
        .prefix("ukpm-initrd-")
        .suffix(".cpio")
        .tempfile()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("failed to create a temp file for the initrd: {e}"),
            )
        })?)
}

/// Go's `gzip.NewWriter` header: no name, mtime 0, OS 255 ("unknown"), default level.
fn gzip<W: Write>(out: W) -> flate2::write::GzEncoder<W> {
    flate2::GzBuilder::new().write(out, flate2::Compression::default())
}

/// Archives `dir` as CPIO newc into a temp file, gzipped when `compress`; an entry in `modes`
/// is written with that mode instead of the one it has on disk.
fn archive_dir(dir: &Path, compress: bool, modes: &HashMap<PathBuf, u32>) -> Result<tempfile::NamedTempFile> {
    let archive = temp_archive()?;
    let out = BufWriter::new(archive.as_file());
    let mode = |path: &Path, bits: u32| modes.get(path).copied().unwrap_or(bits);
    if compress {
        let mut encoder = gzip(out);
        ukpm_archive::cpio::write_dir_with_modes(dir, &mut encoder, &mode)?;
        encoder.finish()?.flush()?;
    } else {
        let mut out = out;
        ukpm_archive::cpio::write_dir_with_modes(dir, &mut out, &mode)?;
        out.flush()?;
    }
    Ok(archive)
}

/// Whether the file at `path` already holds gzip data (then `--compress` leaves it as it is).
fn is_gzip_file(path: &Path) -> Result<bool> {
    let mut prefix = [0u8; 2];
    let mut file = fs_err::File::open(path).map_err(|source| Error::InputFile {
        what: "initrd",
        path: path.to_path_buf(),
        source,
    })?;
    let n = file.read(&mut prefix)?;
    Ok(ukpm_archive::cpio::is_gzip(&prefix[..n]))
}

/// Gzips the file at `path` into a temp file.
fn gzip_file(path: &Path) -> Result<tempfile::NamedTempFile> {
    let archive = temp_archive()?;
    let mut input = fs_err::File::open(path).map_err(|source| Error::InputFile {
        what: "initrd",
        path: path.to_path_buf(),
        source,
    })?;
    let mut encoder = gzip(BufWriter::new(archive.as_file()));
    io::copy(&mut input, &mut encoder)?;
    encoder.finish()?.flush()?;
    Ok(archive)
}
