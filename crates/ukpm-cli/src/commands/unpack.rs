//! `ukpm unpack`: a package's kernel and initrd (every layer) written into a folder.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use ukpm::{PackageManager, Unpacked};

use super::query;
use crate::args::UnpackArgs;
use crate::output::{JsonPath, Output, PackageJson, escape_path};

/// What an unpack wrote, and where.
pub struct UnpackedInto {
    unpacked: Unpacked,
    /// The folder, as given.
    directory: PathBuf,
}

/// `ukpm unpack --json`. Paths are [`JsonPath`]s: a layer may hold names that are not UTF-8.
#[derive(Serialize)]
struct UnpackedJson<'a> {
    cmd: &'a [String],
    directory: JsonPath<'a>,
    env: &'a [String],
    files: Vec<JsonPath<'a>>,
    initrd: Option<JsonPath<'a>>,
    kernel: Option<JsonPath<'a>>,
    package: PackageJson<'a>,
}

impl Output for UnpackedInto {
    fn json(&self) -> impl Serialize + '_ {
        let u = &self.unpacked;
        UnpackedJson {
            cmd: &u.cmd,
            directory: JsonPath(&self.directory),
            env: &u.env,
            files: u.files.iter().map(|f| JsonPath(f)).collect(),
            initrd: u.initrd.as_deref().map(JsonPath),
            kernel: u.kernel.as_deref().map(JsonPath),
            package: PackageJson::from(&u.package),
        }
    }

    /// The kernel's and the initrd's paths, escaped: a byte that is not UTF-8 shows as `\xNN`
    /// (never U+FFFD, so two names never print the same), a control character escaped.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        for path in self.unpacked.kernel.iter().chain(&self.unpacked.initrd) {
            writeln!(out, "{}", escape_path(path))?;
        }
        Ok(())
    }
}

/// Unpacks the one package the reference and filters select.
pub async fn run(manager: &PackageManager, args: &UnpackArgs) -> Result<UnpackedInto> {
    let reference = manager.local_name(&args.reference)?;
    let query = query(&args.filters)?;
    refuse_occupied(&args.dir, args.force)?;
    let unpacked = manager
        .unpack(&reference, &query, &args.dir)
        .await
        .with_context(|| format!("failed to unpack {reference}"))?;
    Ok(UnpackedInto {
        unpacked,
        directory: args.dir.clone(),
    })
}

/// Refuses a folder that already holds something, unless `force`: an unpack over someone's
/// files replaces those of the same names, which must never happen by surprise (issue 13).
/// A missing or empty folder is fine; so is a path that is not a folder (the unpack says why).
/// Names are shown as the error shows any text (escaped when printed for people).
pub fn refuse_occupied(dir: &Path, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Ok(());
    };
    let mut names: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    let shown: Vec<_> = names
        .iter()
        .take(3)
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let more = match names.len() {
        n if n > 3 => format!(" and {} more", n - 3),
        _ => String::new(),
    };
    bail!(ukpm::Error::InvalidInput(format!(
        "{} already holds other files ({}{more}): unpack into a new or empty folder, or give --force to write over it (files and symlinks the package also has are replaced, the rest is left)",
        dir.display(),
        shown.join(", ")
    )))
}
