//! `ukpm pack`: a built kernel (and initrd) becomes a package in the store.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use ukpm::{MergeStrategy, PackOptions, Package, PackageManager, Rootfs, Target};

use super::{architecture, plat};
use crate::args::{PackArgs, Strategy};
use crate::output::{Escaped, Output, PackageJson};

/// What a pack made.
pub struct Packed {
    package: Package,
    /// `name@digest` of what the name now points at (the index, or the lone manifest).
    pinned: String,
}

/// `ukpm pack --json`.
#[derive(Serialize)]
struct PackedJson<'a> {
    package: PackageJson<'a>,
}

impl Output for Packed {
    fn json(&self) -> impl Serialize + '_ {
        PackedJson {
            package: PackageJson::from(&self.package),
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", Escaped(&self.pinned))
    }
}

/// Packs the target the arguments describe under their name.
pub async fn run(manager: &PackageManager, args: &PackArgs) -> Result<Packed> {
    let reference = manager.parse_name(&args.name)?;
    let mut target = Target::new(&args.kernel, architecture(&args.arch)?, plat(&args.plat)?);
    target.kernel_dbg = args.kernel_dbg.clone();
    target.kconfig = args.kconfig.clone();
    target.initrd = args
        .initrd
        .as_ref()
        .map(|rootfs| Rootfs::classify(rootfs, std::path::Path::new("")))
        .transpose()
        .with_context(|| format!("failed to pack {reference}"))?;
    target.command = args.cmd.iter().chain(&args.trailing).cloned().collect();
    let mut options = PackOptions::new(reference.clone());
    options.env = args.env.clone();
    options.labels = key_values("--label", &args.label)?;
    options.annotations = key_values("--annotation", &args.annotation)?;
    options.kernel_version = args.kernel_version.clone();
    options.pack_kconfig = !args.no_kconfig;
    options.compress_initrd = args.compress;
    options.strategy = match args.strategy {
        Strategy::Merge => MergeStrategy::Merge,
        Strategy::Overwrite => MergeStrategy::Overwrite,
        Strategy::Abort => MergeStrategy::Abort,
    };
    if let Some(created) = &args.created {
        let secs = ukpm::parse_rfc3339(created).with_context(|| {
            format!("--created `{created}` is not an RFC 3339 time like 2024-10-21T12:00:00Z")
        })?;
        options.created = Some(ukpm::rfc3339(secs));
    }
    let package = manager
        .pack(&target, &options)
        .await
        .with_context(|| format!("failed to pack {reference}"))?;
    let pinned = match &package.index {
        Some(index) => format!("{}@{}", reference.name(), index.digest),
        None => format!("{}@{}", reference.name(), package.manifest.digest),
    };
    Ok(Packed { package, pinned })
}

/// `K=V` flags as a map; a later key wins.
fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            bail!(ukpm::Error::InvalidInput(format!("{flag} `{item}` is not K=V")));
        };
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}
