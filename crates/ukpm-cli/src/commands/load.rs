//! `ukpm load`: an OCI layout tar (`ukpm save`, `skopeo copy ... oci-archive:`, `docker save`)
//! read into the store, every blob verified; a bad archive leaves the store unchanged.

use std::io::{self, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use ukpm::{LoadReport, PackageManager};

use crate::args::LoadArgs;
use crate::output::{Escaped, Output};

/// What `ukpm load` did.
pub struct LoadOutput {
    /// The library's report.
    pub report: LoadReport,
}

/// `ukpm load --json`.
#[derive(Serialize)]
struct LoadJson<'a> {
    blobs_read: usize,
    bytes_read: u64,
    loaded: Vec<LoadedJson<'a>>,
    unnamed: usize,
}

/// One package loaded.
#[derive(Serialize)]
struct LoadedJson<'a> {
    blobs_written: usize,
    bytes_written: u64,
    digest: String,
    manifests_absent: usize,
    name: &'a str,
}

impl Output for LoadOutput {
    fn json(&self) -> impl Serialize + '_ {
        LoadJson {
            blobs_read: self.report.blobs_read,
            bytes_read: self.report.bytes_read,
            loaded: self
                .report
                .loaded
                .iter()
                .map(|l| LoadedJson {
                    blobs_written: l.blobs_written,
                    bytes_written: l.bytes_written,
                    digest: l.descriptor.digest.to_string(),
                    manifests_absent: l.manifests_absent,
                    name: &l.name,
                })
                .collect(),
            unnamed: self.report.unnamed,
        }
    }

    /// `loaded NAME@DIGEST` per package; a line for unnamed entries skipped.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        for l in &self.report.loaded {
            writeln!(out, "loaded {}@{}", Escaped(&l.name), l.descriptor.digest)?;
        }
        if self.report.unnamed > 0 {
            writeln!(
                out,
                "skipped {} unnamed entr{} of the archive's index.json",
                self.report.unnamed,
                if self.report.unnamed == 1 { "y" } else { "ies" }
            )?;
        }
        Ok(())
    }
}

/// Loads the archive from the file, or stdin for `-`.
pub async fn run(manager: &PackageManager, args: &LoadArgs) -> Result<LoadOutput> {
    let Some(file) = args.file.as_deref().or(args.input.as_deref()) else {
        bail!(ukpm::Error::InvalidInput(
            "give the tar to load: FILE, -i FILE or -".into()
        ));
    };
    let report = if file == Path::new("-") {
        if io::stdin().is_terminal() {
            bail!(ukpm::Error::InvalidInput(
                "refusing to read a tar from a terminal; pipe one in or give FILE".into()
            ));
        }
        manager
            .load(io::BufReader::with_capacity(1 << 20, io::stdin()))
            .await
            .context("failed to load from stdin")?
    } else {
        let reader =
            fs_err::File::open(file).with_context(|| format!("failed to load {}", file.display()))?;
        manager
            .load(io::BufReader::with_capacity(1 << 20, reader))
            .await
            .with_context(|| format!("failed to load {}", file.display()))?
    };
    Ok(LoadOutput { report })
}
