//! The initrd of a package: a file packed as it is, or a folder archived as CPIO newc first.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ukpm_types::{annotation, well_known};

use crate::error::{Error, Result};
use crate::image::Layer;

/// An initrd input, checked before anything is written.
#[derive(Debug, Clone)]
pub(crate) enum InitrdSource {
    File(PathBuf),
    Dir(PathBuf),
}

/// The initrd ready to become a layer; holds the temp archive of a folder until it is packed.
pub(crate) struct PreparedInitrd {
    pub(crate) file: Layer,
    _archive: Option<tempfile::NamedTempFile>,
}

impl InitrdSource {
    pub(crate) fn open(path: &Path) -> Result<InitrdSource> {
        #[expect(
            clippy::disallowed_methods,
            reason = "Error::InputFile names the path already"
        )]
        let meta = std::fs::metadata(path).map_err(|source| Error::InputFile {
            what: "initrd",
            path: path.to_path_buf(),
            source,
        })?;
        if meta.is_dir() {
            Ok(InitrdSource::Dir(path.to_path_buf()))
        } else if meta.is_file() {
            Ok(InitrdSource::File(path.to_path_buf()))
        } else {
            Err(Error::InputFile {
                what: "initrd",
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "neither a file nor a folder"),
            })
        }
    }

    pub(crate) async fn into_layer(self) -> Result<PreparedInitrd> {
        match self {
            InitrdSource::File(path) => Ok(PreparedInitrd {
                file: Layer::from_file(&path, well_known::INITRD, "initrd")?
                    .with_annotation(annotation::KERNEL_INITRD_PATH, well_known::INITRD),
                _archive: None,
            }),
            InitrdSource::Dir(dir) => {
                let archive = tokio::task::spawn_blocking(move || archive_dir(&dir)).await??;
                let file = Layer::from_file(archive.path(), well_known::INITRD, "initrd")?
                    .with_mode(0o644)
                    .with_annotation(annotation::KERNEL_INITRD_PATH, well_known::INITRD);
                Ok(PreparedInitrd {
                    file,
                    _archive: Some(archive),
                })
            }
        }
    }
}

fn archive_dir(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let archive = tempfile::Builder::new()
        .prefix("ukpm-initrd-")
        .suffix(".cpio")
        .tempfile()
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("failed to create a temp file for the initrd: {e}"),
            )
        })?;
    let mut out = BufWriter::new(archive.as_file());
    ukpm_archive::cpio::write_dir(dir, &mut out)?;
    out.flush()?;
    drop(out);
    Ok(archive)
}
