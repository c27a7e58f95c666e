//! `ukpm fsck`: every blob checked against its digest and every reference against what it
//! needs; with `--repair`, what is missing or corrupt fetched again.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{FsckOutcome, PackageManager, Problem};

use crate::args::FsckArgs;
use crate::output::{Escaped, Output, Printer, escape, human_size};

/// What the check found (and repaired). Problems left make the command fail after printing.
pub struct Checked(FsckOutcome);

/// `ukpm fsck --json`.
#[derive(Serialize)]
struct CheckedJson<'a> {
    blobs_checked: usize,
    bytes_checked: u64,
    no_source: &'a [String],
    problems: Vec<ProblemJson<'a>>,
    repaired: Vec<String>,
    unreachable: usize,
    unrepaired: Vec<UnrepairedJson<'a>>,
}

/// One problem of `ukpm fsck --json`.
#[derive(Serialize)]
struct ProblemJson<'a> {
    digest: Option<String>,
    kind: &'static str,
    message: String,
    refs: &'a [String],
}

/// One blob `--repair` could not fetch again.
#[derive(Serialize)]
struct UnrepairedJson<'a> {
    digest: String,
    reason: &'a str,
}

impl<'a> From<&'a Problem> for ProblemJson<'a> {
    fn from(p: &'a Problem) -> Self {
        let (kind, digest) = match p {
            Problem::BadIndex { .. } => ("bad_index", None),
            Problem::Corrupt { descriptor, .. } => ("corrupt", Some(descriptor.digest.to_string())),
            Problem::Missing { descriptor, .. } => ("missing", Some(descriptor.digest.to_string())),
            Problem::BadDocument { descriptor, .. } => ("bad_document", Some(descriptor.digest.to_string())),
            Problem::StrayFile { .. } => ("stray_file", None),
            Problem::NotAFile { digest, .. } => ("not_a_file", Some(digest.to_string())),
            _ => ("other", None),
        };
        ProblemJson {
            digest,
            kind,
            message: p.to_string(),
            refs: p.refs(),
        }
    }
}

impl Output for Checked {
    fn json(&self) -> impl Serialize + '_ {
        let o = &self.0;
        CheckedJson {
            blobs_checked: o.report.blobs_checked,
            bytes_checked: o.report.bytes_checked,
            no_source: &o.no_source,
            problems: o.report.problems.iter().map(ProblemJson::from).collect(),
            repaired: o.repaired.iter().map(ToString::to_string).collect(),
            unreachable: o.report.unreachable,
            unrepaired: o
                .unrepaired
                .iter()
                .map(|(digest, reason)| UnrepairedJson {
                    digest: digest.to_string(),
                    reason,
                })
                .collect(),
        }
    }

    /// One line per repair and problem, escaped: problems quote names and messages from
    /// the store and its registries.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let o = &self.0;
        for digest in &o.repaired {
            writeln!(out, "repaired {digest}")?;
        }
        for (digest, why) in &o.unrepaired {
            writeln!(out, "could not repair {digest}: {}", Escaped(why))?;
        }
        for problem in &o.report.problems {
            writeln!(out, "{}", Escaped(problem))?;
        }
        writeln!(
            out,
            "checked {} blobs ({}); {} problems; {} unreachable",
            o.report.blobs_checked,
            human_size(o.report.bytes_checked),
            o.report.problems.len(),
            o.report.unreachable
        )
    }

    fn is_failure(&self) -> bool {
        !self.0.report.problems.is_empty()
    }
}

/// Checks (and with `--repair`, repairs) the store.
pub async fn run(manager: &PackageManager, args: &FsckArgs, printer: &Printer) -> Result<Checked> {
    let outcome = manager
        .fsck(args.repair)
        .await
        .context("failed to check the store")?;
    for name in &outcome.no_source {
        printer.note(&format!(
            "{} was not repaired: no registry is recorded as where it came from (it was packed here), and fsck --repair never asks a registry by the name alone; pack it again, or pull it",
            escape(name)
        ));
    }
    Ok(Checked(outcome))
}
