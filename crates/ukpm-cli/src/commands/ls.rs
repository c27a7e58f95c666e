//! `ukpm ls`: the packages in the store, one per platform.

use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use ukpm::{Package, PackageManager};

use super::query;
use crate::args::LsArgs;
use crate::output::{Output, PackagesJson, package_table};

/// The packages that matched, in store order.
pub struct Listed {
    packages: Vec<Package>,
}

impl Output for Listed {
    fn json(&self) -> impl Serialize + '_ {
        PackagesJson::new(&self.packages)
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        package_table(out, &self.packages)
    }
}

/// Lists the packages the filters and the name glob select.
pub async fn run(manager: &PackageManager, args: &LsArgs) -> Result<Listed> {
    let mut query = query(&args.filters)?;
    query.name = args.name.clone();
    let packages = manager.list(&query).await.context("failed to list the store")?;
    Ok(Listed { packages })
}
