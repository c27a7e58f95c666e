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

/// `{"packages": [...]}`, the document of `ls` and `pull`.
#[derive(Serialize)]
pub struct PackagesJson<'a> {
    packages: Vec<PackageJson<'a>>,
}

impl<'a> PackagesJson<'a> {
    /// The document for these packages, in order.
    pub fn new(packages: &'a [Package]) -> Self {
        PackagesJson {
            packages: packages.iter().map(PackageJson::from).collect(),
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
