//! `ukpm ls`: the packages in the store, one per platform.

use std::io::{self, IsTerminal, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{Package, PackageManager, RefEntry};

use super::query;
use crate::args::LsArgs;
use crate::output::{Escaped, Output, PackageJson, Printer, package_list, package_table_within};

/// The packages that matched, by name and version, the roots skipped because they are not
/// images (another tool's artifacts and signatures), and what to say when nothing is listed.
pub struct Listed {
    /// Never dropped: the process exits right after printing them, and freeing ten thousand
    /// packages one allocation at a time is a tenth of the time `ls` takes (the OS takes the
    /// memory back at once).
    packages: std::mem::ManuallyDrop<Vec<Package>>,
    skipped: Vec<RefEntry>,
    /// Why the list is empty, for people (stderr), unless `--quiet`.
    empty: Option<String>,
}

/// `{"packages": [...], "skipped": [...]}` (docs/json.md).
#[derive(Serialize)]
struct ListedJson<'a> {
    packages: Vec<PackageJson<'a>>,
    skipped: Vec<SkippedJson<'a>>,
}

/// A root of the store that is not an image.
#[derive(Serialize)]
struct SkippedJson<'a> {
    digest: String,
    media_type: &'a str,
    name: &'a str,
}

impl Output for Listed {
    fn json(&self) -> impl Serialize + '_ {
        ListedJson {
            packages: self.packages.iter().map(PackageJson::from).collect(),
            skipped: self
                .skipped
                .iter()
                .map(|e| SkippedJson {
                    digest: e.descriptor.digest.to_string(),
                    media_type: &e.descriptor.media_type,
                    name: &e.name,
                })
                .collect(),
        }
    }

    fn list(&self, out: &mut dyn Write) -> io::Result<()> {
        package_list(out, &self.packages)?;
        self.notes()
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if !self.packages.is_empty() {
            // On a terminal, as wide as it is; into a pipe, every column.
            let columns = io::stdout()
                .is_terminal()
                .then(|| console::Term::stdout().size_checked())
                .flatten()
                .map(|(_rows, columns)| usize::from(columns));
            package_table_within(out, &self.packages, columns)?;
        }
        self.notes()
    }
}

impl Listed {
    /// One note per skipped root, and why nothing is listed: for people, not a result, so on
    /// stderr (`ls | ...` sees only the packages). An empty list prints no header on stdout,
    /// so `[ -z "$(ukpm ls)" ]` tests for it and `ukpm ls | tail -n +2` still sees no rows;
    /// the `--json` document says it with `"packages": []` and needs no note.
    fn notes(&self) -> io::Result<()> {
        let stderr = io::stderr();
        let mut notes = stderr.lock();
        if let Some(empty) = &self.empty {
            writeln!(notes, "{empty}")?;
        }
        for entry in &self.skipped {
            writeln!(
                notes,
                "note: skipped {}: a `{}`, not an image",
                Escaped(&entry.name),
                Escaped(&entry.descriptor.media_type)
            )?;
        }
        Ok(())
    }
}

/// Lists the packages the filters and the name glob select.
pub async fn run(manager: &PackageManager, args: &LsArgs, printer: &Printer) -> Result<Listed> {
    let mut query = query(&args.filters)?;
    query.name = args.name.clone();
    let catalog = manager.catalog();
    let listing = catalog
        .listing(&query)
        .await
        .context("failed to list the store")?;
    let empty = (listing.packages.is_empty() && !printer.quiet).then(|| {
        let store = Escaped(catalog.store().describe()).to_string();
        match listing.names {
            0 => format!(
                "note: no packages in the {store}: `ukpm pull REF` fetches one, `ukpm pack` makes one"
            ),
            n => {
                let what = filters(&query);
                let s = if n == 1 { "" } else { "s" };
                format!(
                    "note: no package matches {what}; the {store} holds {n} name{s}: `ukpm ls` without filters lists them"
                )
            }
        }
    });
    Ok(Listed {
        packages: std::mem::ManuallyDrop::new(listing.packages),
        skipped: listing.foreign,
        empty,
    })
}

/// The filters given, for the empty-listing line: `--name 'nginx*' --plat qemu/x86_64`.
fn filters(query: &ukpm::Query) -> String {
    let mut parts = Vec::new();
    if let Some(name) = &query.name {
        parts.push(format!("--name '{}'", Escaped(name)));
    }
    if query.platform.is_some() || query.architecture.is_some() || !query.kconfig.is_empty() {
        parts.push(query.describe());
    }
    parts.join(" ")
}
