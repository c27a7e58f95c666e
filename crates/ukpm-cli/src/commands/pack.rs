//! `ukpm pack`: a built kernel (and initrd) becomes a package in the store.

use std::collections::BTreeMap;
use std::io::{self, Write};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::path::PathBuf;

use ukpm::{
    MergeStrategy, PackOptions, Package, PackageManager, ProjectOptions, Query, Rootfs, RuntimeTarget, Target,
};

use super::{architecture, plat};
use crate::args::{PackArgs, Strategy};
use crate::output::{Escaped, Output, PackageJson};

/// What a pack made: one package per target, all under one name.
pub struct Packed {
    packages: Vec<Package>,
    /// `name@digest` of what the name now points at (the index, or the lone manifest).
    pinned: String,
}

/// `ukpm pack --json`: `package` is the last one packed (what a single-target pack made),
/// `packages` all of them in order.
#[derive(Serialize)]
struct PackedJson<'a> {
    package: Option<PackageJson<'a>>,
    packages: Vec<PackageJson<'a>>,
}

impl Output for Packed {
    fn json(&self) -> impl Serialize + '_ {
        PackedJson {
            package: self.packages.last().map(PackageJson::from),
            packages: self.packages.iter().map(PackageJson::from).collect(),
        }
    }

    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.packages.len() > 1 {
            for package in &self.packages {
                writeln!(out, "{}", Escaped(&package.plat_arch()))?;
            }
        }
        writeln!(out, "{}", Escaped(&self.pinned))
    }
}

/// Packs what the arguments describe under their name: a kernel file (`--kernel`), a KraftKit
/// project folder, or a rootfs on a runtime package (`--runtime` without a project).
pub async fn run(manager: &PackageManager, args: &PackArgs) -> Result<Packed> {
    let reference = manager.parse_name(&args.name)?;
    let rootfs = args
        .initrd
        .as_ref()
        .map(|rootfs| Rootfs::classify(rootfs, std::path::Path::new("")))
        .transpose()
        .with_context(|| format!("failed to pack {reference}"))?;
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
    let command: Vec<String> = args.cmd.iter().chain(&args.trailing).cloned().collect();
    let arch = args.arch.as_deref().map(architecture).transpose()?;
    let platform = args.plat.as_deref().map(plat).transpose()?;
    let packages = if let Some(kernel) = &args.kernel {
        let (Some(arch), Some(platform)) = (arch, platform) else {
            bail!(ukpm::Error::InvalidInput(
                "--kernel needs --arch and --plat".into()
            ));
        };
        if args.target.is_some() {
            bail!(ukpm::Error::InvalidInput(
                "--target selects a project's target; it does not go with --kernel".into()
            ));
        }
        let mut target = Target::new(kernel, arch, platform);
        target.kernel_dbg = args.kernel_dbg.clone();
        target.kconfig = args.kconfig.clone();
        target.initrd = rootfs;
        target.command = command;
        vec![
            manager
                .pack(&target, &options)
                .await
                .with_context(|| format!("failed to pack {reference}"))?,
        ]
    } else {
        if args.kconfig.is_some() || args.kernel_dbg.is_some() {
            bail!(ukpm::Error::InvalidInput(
                "--kconfig and --kernel-dbg go with --kernel; a project's come from its build".into()
            ));
        }
        let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
        match &args.runtime {
            // A rootfs on a runtime, without a project.
            Some(runtime) if args.dir.is_none() && ukpm::Kraftfile::find(&dir).is_none() => {
                let target = RuntimeTarget {
                    rootfs,
                    command,
                    query: Query {
                        architecture: arch,
                        platform,
                        ..Query::default()
                    },
                };
                manager
                    .pack_on_runtime(runtime, &target, &options)
                    .await
                    .with_context(|| format!("failed to pack {reference} on {runtime}"))?
            }
            _ => {
                let mut project = ProjectOptions::new(options);
                project.target = args.target.clone();
                project.architecture = arch;
                project.platform = platform;
                project.runtime = args.runtime.clone();
                project.rootfs = rootfs;
                project.command = command;
                manager
                    .pack_project(&dir, &project)
                    .await
                    .with_context(|| format!("failed to pack {reference} from {}", dir.display()))?
            }
        }
    };
    let pinned = match packages.last() {
        Some(Package {
            index: Some(index), ..
        }) => format!("{}@{}", reference.name(), index.digest),
        Some(package) => format!("{}@{}", reference.name(), package.manifest.digest),
        None => bail!(ukpm::Error::InvalidInput("nothing was packed".into())),
    };
    Ok(Packed { packages, pinned })
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
