//! The package object, which `ls`, `pack`, `pull`, `inspect` and `unpack` print, and the
//! `ls` table.

use std::io::{self, Write};

use serde::Serialize;
use ukpm::Package;

use super::{escape, human_size, short_time};

/// A package (one manifest of an index) as `--json` shows it (docs/json.md, "The package
/// object").
#[derive(Serialize)]
pub struct PackageJson<'a> {
    architecture: &'a str,
    created: Option<&'a str>,
    features: &'a [String],
    index: Option<String>,
    kernel_version: Option<&'a str>,
    manifest: String,
    name: String,
    platform: &'a str,
    reference: String,
    size: u64,
    tag: Option<&'a str>,
}

impl<'a> From<&'a Package> for PackageJson<'a> {
    fn from(p: &'a Package) -> Self {
        PackageJson {
            architecture: &p.platform.architecture,
            created: p.created.as_deref(),
            features: &p.platform.os_features,
            index: p.index.as_ref().map(|d| d.digest.to_string()),
            kernel_version: Some(p.platform.os_version.as_str()).filter(|v| !v.is_empty()),
            manifest: p.manifest.digest.to_string(),
            name: p.display_name(),
            platform: &p.platform.os,
            reference: p.name.clone(),
            size: p.size,
            tag: p.display_tag(),
        }
    }
}

/// `ukpm ls` as a table. Every cell is escaped: names, platforms and times come from whoever
/// wrote the store, and a control character in one must neither reach the terminal nor skew
/// the columns (widths are those of the escaped text).
pub fn package_table(out: &mut dyn Write, packages: &[Package]) -> io::Result<()> {
    let header = ["NAME", "TAG", "ARCH", "PLAT", "DIGEST", "SIZE", "CREATED"];
    let rows: Vec<[String; 7]> = packages
        .iter()
        .map(|p| {
            [
                p.display_name(),
                p.display_tag().unwrap_or("<none>").to_string(),
                p.platform.architecture.clone(),
                p.platform.os.clone(),
                p.manifest.digest.short(),
                human_size(p.size),
                p.created.as_deref().map(short_time).unwrap_or_else(|| "-".into()),
            ]
            .map(|cell| escape(&cell).into_owned())
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

/// `ukpm ls -o list`: a `key: value` block per package, blank-line separated, the table's
/// cells (escaped) with their lower-cased headers as keys.
pub fn package_list(out: &mut dyn Write, packages: &[Package]) -> io::Result<()> {
    for (i, p) in packages.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let index = p.index.as_ref().map(|d| d.digest.short());
        let cells = [
            ("name", p.display_name()),
            ("tag", p.display_tag().unwrap_or("<none>").to_string()),
            ("arch", p.platform.architecture.clone()),
            ("plat", p.platform.os.clone()),
            (
                "version",
                Some(p.platform.os_version.clone())
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "-".into()),
            ),
            ("manifest", p.manifest.digest.short()),
            ("index", index.unwrap_or_else(|| "-".into())),
            ("size", human_size(p.size)),
            (
                "created",
                p.created.as_deref().map(short_time).unwrap_or_else(|| "-".into()),
            ),
        ];
        for (key, value) in cells {
            writeln!(out, "{key}: {}", escape(&value))?;
        }
    }
    Ok(())
}
