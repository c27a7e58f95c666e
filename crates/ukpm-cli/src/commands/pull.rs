//! `ukpm pull`: packages fetched from registries into the store, several at once.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{Architecture, Package, PackageManager, PullOptions, Query};

use super::query;
use crate::args::PullArgs;
use crate::output::{Escaped, Output, PackagesJson};

/// The packages (platforms) fetched, for every reference given, in order.
pub struct Pulled {
    packages: Vec<Package>,
}

impl Output for Pulled {
    fn json(&self) -> impl Serialize + '_ {
        PackagesJson::new(&self.packages)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        for p in &self.packages {
            writeln!(
                out,
                "{} {} {}",
                Escaped(&p.reference),
                Escaped(p.plat_arch()),
                p.manifest.digest
            )?;
        }
        Ok(())
    }
}

/// Pulls every reference given; the first failure is the command's.
pub async fn run(manager: &PackageManager, args: &PullArgs) -> Result<Pulled> {
    let mut query = query(&args.filters)?;
    if query == Query::default() && !args.all_platforms {
        // Like docker and kraft: without a choice, the machine's own architecture.
        query.architecture = std::env::consts::ARCH.parse::<Architecture>().ok();
    }
    let options = PullOptions {
        query,
        all_platforms: args.all_platforms,
    };
    // Several packages at once: their round trips overlap and their blobs share the transfer
    // limit.
    let options = &options;
    let pulls = args.references.iter().map(|name| async move {
        manager
            .pull_name(name, options)
            .await
            .with_context(|| format!("failed to pull {name}"))
    });
    let mut packages = Vec::new();
    for result in futures_util::future::join_all(pulls).await {
        packages.extend(result?);
    }
    Ok(Pulled { packages })
}
