//! `ukpm ls --remote`, `ukpm update` and `ukpm tags`: what is on the registries.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{PackageManager, RemoteListing, RemoteOptions};

use super::query;
use crate::args::{LsArgs, TagsArgs, UpdateArgs};
use crate::output::{Escaped, Output, PackageJson, package_list, package_table};

/// What the registries hold (or held, when `cached_at` is set).
pub struct Remote {
    listing: RemoteListing,
}

/// `{"cached_at": ..., "packages": [...], "warnings": [...]}` (docs/json.md).
#[derive(Serialize)]
struct RemoteJson<'a> {
    cached_at: Option<String>,
    packages: Vec<PackageJson<'a>>,
    warnings: &'a [String],
}

impl Output for Remote {
    fn json(&self) -> impl Serialize + '_ {
        RemoteJson {
            cached_at: self.listing.cached_at.map(ukpm::rfc3339),
            packages: self.listing.packages.iter().map(PackageJson::from).collect(),
            warnings: &self.listing.warnings,
        }
    }

    fn list(&self, out: &mut dyn Write) -> io::Result<()> {
        package_list(out, &self.listing.packages)?;
        self.notes()
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        package_table(out, &self.listing.packages)?;
        self.notes()
    }
}

impl Remote {
    /// The cache's age and why parts are missing: for people, on stderr.
    fn notes(&self) -> io::Result<()> {
        let stderr = io::stderr();
        let mut notes = stderr.lock();
        for warning in &self.listing.warnings {
            writeln!(notes, "note: {}", Escaped(warning))?;
        }
        if let Some(at) = self.listing.cached_at {
            writeln!(
                notes,
                "note: from the cache, updated {}; `ukpm update` refreshes it",
                age(now() - at)
            )?;
        }
        Ok(())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `N minutes ago`, in the largest unit that is at least 1.
fn age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (n, unit) = match seconds {
        0..60 => return "less than a minute ago".into(),
        60..3600 => (seconds / 60, "minute"),
        3600..86_400 => (seconds / 3600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// `ukpm ls --remote`: from the cache unless `--update` (or there is none yet).
pub async fn ls(manager: &PackageManager, args: &LsArgs) -> Result<Remote> {
    let mut query = query(&args.filters)?;
    query.name = args.name.clone();
    let options = RemoteOptions {
        names: args.names.clone(),
        refresh: args.update,
        ..RemoteOptions::default()
    };
    let listing = manager
        .list_remote(&query, &options)
        .await
        .context("failed to list the registries")?;
    Ok(Remote { listing })
}

/// `ukpm update`: asks the registries and rewrites the cache.
pub async fn update(manager: &PackageManager, args: &UpdateArgs) -> Result<Updated> {
    let options = RemoteOptions {
        names: args.names.clone(),
        refresh: true,
        ..RemoteOptions::default()
    };
    let listing = manager
        .list_remote(&ukpm::Query::default(), &options)
        .await
        .context("failed to update the remote cache")?;
    Ok(Updated { listing })
}

/// What `update` cached.
pub struct Updated {
    listing: RemoteListing,
}

/// `{"packages": N, "warnings": [...]}` (docs/json.md).
#[derive(Serialize)]
struct UpdatedJson<'a> {
    packages: usize,
    warnings: &'a [String],
}

impl Output for Updated {
    fn json(&self) -> impl Serialize + '_ {
        UpdatedJson {
            packages: self.listing.packages.len(),
            warnings: &self.listing.warnings,
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let n = self.listing.packages.len();
        writeln!(out, "cached {n} package{}", if n == 1 { "" } else { "s" })?;
        let stderr = io::stderr();
        let mut notes = stderr.lock();
        for warning in &self.listing.warnings {
            writeln!(notes, "note: {}", Escaped(warning))?;
        }
        Ok(())
    }
}

/// A repository's tags; its own `--json` document.
#[derive(Serialize)]
pub struct Tags {
    repository: String,
    tags: Vec<String>,
}

impl Output for Tags {
    fn json(&self) -> impl Serialize + '_ {
        self
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        for tag in &self.tags {
            writeln!(out, "{}", Escaped(tag))?;
        }
        Ok(())
    }
}

/// `ukpm tags REPO`.
pub async fn tags(manager: &PackageManager, args: &TagsArgs) -> Result<Tags> {
    let (reference, tags) = manager
        .list_tags(&args.repository)
        .await
        .with_context(|| format!("failed to list the tags of {}", args.repository))?;
    Ok(Tags {
        repository: reference.name(),
        tags,
    })
}
