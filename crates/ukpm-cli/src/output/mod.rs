//! What ukpm prints: the `--json` shapes (the contract in docs/json.md) and the human forms.

use std::io::{self, Write};

use serde_json::{Value, json};
use ukpm::{FsckOutcome, GcReport, Inspection, Package, Problem, Unpacked};

/// Writing the result to stdout failed (typically `ukpm ls | head`): the reader went away,
/// which is not the command's failure. Only this error may end in a silent exit 0; a broken
/// pipe anywhere else (a socket) is a real error.
#[derive(Debug)]
pub struct StdoutClosed(pub io::Error);

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutClosed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Where results go: stdout, as text or as exactly one JSON document.
pub struct Printer {
    pub json: bool,
}

impl Printer {
    /// Writes a result: `json` under `--json`, else `human` lines.
    pub fn result(
        &self,
        json: Value,
        human: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StdoutClosed> {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let written = if self.json {
            serde_json::to_writer(&mut out, &json)
                .map_err(io::Error::other)
                .and_then(|()| writeln!(out))
        } else {
            human(&mut out)
        };
        written.and_then(|()| out.flush()).map_err(StdoutClosed)
    }
}

/// A package as `--json` shows it.
pub fn package_json(p: &Package) -> Value {
    json!({
        "reference": p.reference.to_string(),
        "name": p.reference.name(),
        "tag": p.reference.tag(),
        "architecture": p.platform.architecture,
        "platform": p.platform.os,
        "kernel_version": (!p.platform.os_version.is_empty()).then_some(&p.platform.os_version),
        "features": p.platform.os_features,
        "manifest": p.manifest.digest.to_string(),
        "index": p.index.as_ref().map(|d| d.digest.to_string()),
        "size": p.size,
        "created": p.created,
    })
}

/// `ukpm ls` as a table.
pub fn package_table(out: &mut dyn Write, packages: &[Package]) -> io::Result<()> {
    let header = ["NAME", "TAG", "ARCH", "PLAT", "DIGEST", "SIZE", "CREATED"];
    let rows: Vec<[String; 7]> = packages
        .iter()
        .map(|p| {
            [
                p.reference.name(),
                p.reference.tag().unwrap_or("<none>").to_string(),
                p.platform.architecture.clone(),
                p.platform.os.clone(),
                p.manifest.digest.short(),
                human_size(p.size),
                p.created.as_deref().map(short_time).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &header)?;
    for row in &rows {
        line(out, &row.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    Ok(())
}

/// `2024-10-21T12:00:00Z` as `2024-10-21 12:00:00`.
fn short_time(t: &str) -> String {
    match ukpm::parse_rfc3339(t) {
        Some(secs) => ukpm::rfc3339(secs).trim_end_matches('Z').replace('T', " "),
        None => t.to_string(),
    }
}

/// Sizes in binary units, as `ls -h` would.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `ukpm inspect --json`.
pub fn inspection_json(i: &Inspection) -> Value {
    json!({
        "reference": i.reference.to_string(),
        "descriptor": i.descriptor,
        "index": i.index,
        "manifests": i.manifests.iter().map(|m| json!({
            "package": package_json(&m.package),
            "manifest": m.manifest,
            "config": m.config,
        })).collect::<Vec<_>>(),
    })
}

/// `ukpm inspect` for people: a summary, then each document.
pub fn inspection_human(out: &mut dyn Write, i: &Inspection) -> io::Result<()> {
    writeln!(
        out,
        "{} -> {} ({})",
        i.reference, i.descriptor.digest, i.descriptor.media_type
    )?;
    if let Some(index) = &i.index {
        writeln!(out, "\nindex:")?;
        writeln!(out, "{}", pretty(index))?;
    }
    for m in &i.manifests {
        writeln!(
            out,
            "\nmanifest {} ({}, {}):",
            m.package.manifest.digest,
            m.package.plat_arch(),
            human_size(m.package.size)
        )?;
        writeln!(out, "{}", pretty(&m.manifest))?;
        writeln!(out, "config:")?;
        writeln!(out, "{}", pretty(&m.config))?;
    }
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// `ukpm unpack --json`.
pub fn unpacked_json(u: &Unpacked, dir: &std::path::Path) -> Value {
    json!({
        "package": package_json(&u.package),
        "directory": dir,
        "kernel": u.kernel,
        "initrd": u.initrd,
        "cmd": u.cmd,
        "env": u.env,
        "files": u.files,
    })
}

/// `ukpm gc --json`.
pub fn gc_json(r: &GcReport) -> Value {
    json!({
        "removed": r.removed.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "bytes_freed": r.bytes_freed,
        "kept": r.kept,
        "missing": r.missing.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// `ukpm fsck --json`.
pub fn fsck_json(o: &FsckOutcome) -> Value {
    let problems: Vec<Value> = o
        .report
        .problems
        .iter()
        .map(|p| {
            let (kind, digest) = match p {
                Problem::BadIndex { .. } => ("bad_index", None),
                Problem::Corrupt { descriptor, .. } => ("corrupt", Some(descriptor.digest.to_string())),
                Problem::Missing { descriptor, .. } => ("missing", Some(descriptor.digest.to_string())),
                Problem::BadDocument { descriptor, .. } => {
                    ("bad_document", Some(descriptor.digest.to_string()))
                }
                Problem::StrayFile { .. } => ("stray_file", None),
                _ => ("other", None),
            };
            json!({"kind": kind, "digest": digest, "refs": p.refs(), "message": p.to_string()})
        })
        .collect();
    json!({
        "blobs_checked": o.report.blobs_checked,
        "bytes_checked": o.report.bytes_checked,
        "unreachable": o.report.unreachable,
        "problems": problems,
        "repaired": o.repaired.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "unrepaired": o.unrepaired.iter().map(|(d, why)| json!({"digest": d.to_string(), "reason": why})).collect::<Vec<_>>(),
    })
}

/// `ukpm fsck` for people.
pub fn fsck_human(out: &mut dyn Write, o: &FsckOutcome) -> io::Result<()> {
    for digest in &o.repaired {
        writeln!(out, "repaired {digest}")?;
    }
    for (digest, why) in &o.unrepaired {
        writeln!(out, "could not repair {digest}: {why}")?;
    }
    for problem in &o.report.problems {
        writeln!(out, "{problem}")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 + 1), "5.0 MiB");
    }
}
