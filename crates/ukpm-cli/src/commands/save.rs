//! `ukpm save`: packages, every platform the store holds and every blob, written as an OCI
//! layout tar that `skopeo copy oci-archive:FILE.tar:NAME` and `ukpm load` read.

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use ukpm::{PackageManager, SaveReport};

use crate::args::{Format, SaveArgs};
use crate::output::{Escaped, JsonPath, Output, Printer, StdoutClosed};

/// What `ukpm save` wrote, and where.
pub struct SaveOutput {
    /// The archive; `None` for stdout, where nothing else may be printed.
    pub path: Option<PathBuf>,
    /// The library's report.
    pub report: SaveReport,
}

/// `ukpm save --json`.
#[derive(Serialize)]
struct SaveJson<'a> {
    blobs: usize,
    bytes: u64,
    output: JsonPath<'a>,
    saved: Vec<SavedJson<'a>>,
}

/// One package written.
#[derive(Serialize)]
struct SavedJson<'a> {
    digest: String,
    manifests_absent: usize,
    name: &'a str,
}

impl Output for SaveOutput {
    fn json(&self) -> impl Serialize + '_ {
        SaveJson {
            blobs: self.report.blobs,
            bytes: self.report.bytes,
            output: JsonPath(self.path.as_deref().unwrap_or(Path::new("-"))),
            saved: self
                .report
                .saved
                .iter()
                .map(|s| SavedJson {
                    digest: s.descriptor.digest.to_string(),
                    manifests_absent: s.manifests_absent,
                    name: &s.name,
                })
                .collect(),
        }
    }

    /// `NAME@DIGEST` per package, then where they went; nothing when the tar went to stdout.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        for s in &self.report.saved {
            writeln!(out, "{}@{}", Escaped(&s.name), s.descriptor.digest)?;
        }
        writeln!(
            out,
            "saved {} package(s), {} blob(s), {} bytes to {}",
            self.report.saved.len(),
            self.report.blobs,
            self.report.bytes,
            Escaped(&path.display())
        )
    }
}

/// Whether writing failed because stdout's reader closed it.
fn broken_pipe(err: &ukpm::Error) -> bool {
    let pipe = |io: &io::Error| io.kind() == io::ErrorKind::BrokenPipe;
    // `Io` is transparent: its io::Error is the error itself, not a source in the chain.
    if let ukpm::Error::Io(io) | ukpm::Error::Store(ukpm::StoreError::Io(io)) = err {
        return pipe(io);
    }
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        if e.downcast_ref::<io::Error>().is_some_and(pipe) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether `-o` names standard output: `-`, or one of the paths that link to it. Written as
/// stdout, the tar is the only thing there (no summary line after it).
fn names_stdout(path: &Path) -> bool {
    ["-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"]
        .iter()
        .any(|name| path == Path::new(name))
}

/// Writes the packages named into the file (or stdout, never a terminal).
pub async fn run(manager: &PackageManager, args: &SaveArgs, printer: &Printer) -> Result<SaveOutput> {
    if names_stdout(&args.output) {
        if io::stdout().is_terminal() {
            bail!(ukpm::Error::InvalidInput(
                "refusing to write a tar to a terminal; redirect stdout or give -o FILE".into()
            ));
        }
        if printer.format != Format::Table {
            bail!(ukpm::Error::InvalidInput(
                "-o - writes the tar to stdout, where --json cannot go too; give -o FILE".into()
            ));
        }
        let saved = manager
            .save(
                &args.references,
                io::BufWriter::with_capacity(1 << 20, io::stdout()),
            )
            .await;
        let (report, _) = match saved {
            // The reader went away (`save -o - | tar -t | head`): not a failure, exit 0.
            Err(err) if broken_pipe(&err) => {
                return Err(StdoutClosed(io::Error::from(io::ErrorKind::BrokenPipe)).into());
            }
            other => other.context("failed to save to stdout")?,
        };
        return Ok(SaveOutput { path: None, report });
    }
    let report = manager
        .save_to_file(&args.references, &args.output)
        .await
        .with_context(|| format!("failed to save to {}", args.output.display()))?;
    Ok(SaveOutput {
        path: Some(args.output.clone()),
        report,
    })
}
