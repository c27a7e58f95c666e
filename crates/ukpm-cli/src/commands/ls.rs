//! `ukpm ls`: the packages in the store, one per platform.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{Package, PackageManager, RefEntry};

use super::query;
use crate::args::LsArgs;
use crate::output::{Escaped, Output, PackageJson, package_list, package_table};

/// The packages that matched, in store order, and the roots skipped because they are not
/// images (another tool's artifacts and signatures).
pub struct Listed {
    packages: Vec<Package>,
    skipped: Vec<RefEntry>,
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
        package_table(out, &self.packages)?;
        self.notes()
    }
}

impl Listed {
    /// One note per skipped root: for people, not a result, so on stderr (`ls | ...` sees
    /// only the packages).
    fn notes(&self) -> io::Result<()> {
        let stderr = io::stderr();
        let mut notes = stderr.lock();
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
pub async fn run(manager: &PackageManager, args: &LsArgs) -> Result<Listed> {
    let mut query = query(&args.filters)?;
    query.name = args.name.clone();
    let catalog = manager.catalog();
    let packages = catalog.list(&query).await.context("failed to list the store")?;
    let skipped = catalog
        .foreign_roots(&query)
        .await
        .context("failed to list the store")?;
    Ok(Listed { packages, skipped })
}
