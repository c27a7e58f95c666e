//! Packing KraftKit projects (`kraft pkg` in a folder with a `Kraftfile`) and packing on a
//! prebuilt runtime package.
//!
//! A `unikraft:` project is packed from its build output: each target's kernel under
//! `.unikraft/build/<name>_<plat>-<arch>` and its `.config.<name>_<plat>-<arch>` in the project
//! folder (Unikraft's and KraftKit's names), one index entry per target; the first target uses
//! the strategy asked for, later ones merge, which is how KraftKit assembles a multi-platform
//! index. A `runtime:` project (or `--runtime`) reuses the runtime package's layers and config
//! and adds the project's rootfs, command, environment and labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ukpm_types::{Architecture, Plat};

use crate::error::{Error, Result};
use crate::image::MergeStrategy;
use crate::kraftfile::{Kraftfile, KraftfileTarget};
use crate::manager::PackageManager;
use crate::pack::{PackOptions, RuntimeBase, Target};
use crate::package::{Package, Query};
use crate::pull::PullOptions;
use crate::rootfs::Rootfs;

/// The folder, under the project, where Unikraft writes its build output.
pub const BUILD_DIR: &str = ".unikraft/build";

/// How to pack a project: the pack options and what selects and overrides parts of it
/// (KraftKit's `kraft pkg` flags).
#[derive(Debug, Clone)]
pub struct ProjectOptions {
    /// Name, strategy, extra environment, labels and annotations. The environment and labels
    /// are added to the Kraftfile's (a flag's label wins).
    pub pack: PackOptions,
    /// The Kraftfile to read, instead of the one found in the folder.
    pub kraftfile: Option<PathBuf>,
    /// Only the target with this name, or this `plat/arch`.
    pub target: Option<String>,
    /// Only targets of this architecture.
    pub architecture: Option<Architecture>,
    /// Only targets of this platform.
    pub platform: Option<Plat>,
    /// Pack on this runtime package instead of the Kraftfile's `runtime:` or its own kernels.
    pub runtime: Option<String>,
    /// The rootfs instead of the Kraftfile's `rootfs:`.
    pub rootfs: Option<Rootfs>,
    /// The command instead of the Kraftfile's `cmd:` (when not empty).
    pub command: Vec<String>,
}

impl ProjectOptions {
    /// Options that pack every target as the Kraftfile says.
    pub fn new(pack: PackOptions) -> ProjectOptions {
        ProjectOptions {
            pack,
            kraftfile: None,
            target: None,
            architecture: None,
            platform: None,
            runtime: None,
            rootfs: None,
            command: Vec::new(),
        }
    }
}

/// An application packed on a runtime package without a project: the rootfs and command, and
/// which of the runtime's platforms.
#[derive(Debug, Clone, Default)]
pub struct RuntimeTarget {
    /// The rootfs, becoming the initrd (the runtime's own initrd, if any, stays without one).
    pub rootfs: Option<Rootfs>,
    /// The command; the runtime's stays when empty.
    pub command: Vec<String>,
    /// Which runtime packages: platform, architecture and kconfig they must have.
    pub query: Query,
}

/// A project target resolved against its folder.
struct Selected {
    name: String,
    target: KraftfileTarget,
}

impl PackageManager {
    /// Packs the KraftKit project in `dir`: one index entry per selected target, all under
    /// `options.pack.reference`; returns the packages in target order.
    pub async fn pack_project(&self, dir: &Path, options: &ProjectOptions) -> Result<Vec<Package>> {
        let path = match &options.kraftfile {
            Some(path) => path.clone(),
            None => Kraftfile::find(dir).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "no Kraftfile in {} (looked for {})",
                    dir.display(),
                    crate::kraftfile::KRAFTFILE_NAMES.join(", ")
                ))
            })?,
        };
        let kraftfile = Kraftfile::read(&path)?;
        let project_name = kraftfile
            .name
            .clone()
            .or_else(|| dir_name(dir))
            .unwrap_or_else(|| "app".to_string());
        let runtime = options.runtime.clone().or_else(|| {
            // `unikraft:` wins over `runtime:` unless --runtime asks, as KraftKit's packagers do.
            (!kraftfile.unikraft).then(|| kraftfile.runtime.clone()).flatten()
        });
        if runtime.is_none() && !kraftfile.unikraft {
            return Err(Error::InvalidInput(format!(
                "{} has neither a `unikraft:` section nor a `runtime:`: nothing to pack",
                path.display()
            )));
        }
        let selected = select(&kraftfile, &project_name, options)?;

        let mut pack = options.pack.clone();
        pack.env = resolve_env(kraftfile.env.iter().chain(&options.pack.env));
        let mut labels = kraftfile.labels.clone();
        labels.extend(options.pack.labels.clone());
        pack.labels = labels;
        let command = if options.command.is_empty() {
            kraftfile.cmd.clone()
        } else {
            options.command.clone()
        };
        // The Kraftfile's `rootfs:` is classified like the flag, relative to the project.
        let rootfs = match &options.rootfs {
            Some(rootfs) => Some(rootfs.clone()),
            None => kraftfile
                .rootfs
                .as_ref()
                .map(|r| Rootfs::classify(r, dir))
                .transpose()?,
        };

        if let Some(runtime) = runtime {
            let queries: Vec<Query> = if selected.is_empty() {
                vec![Query {
                    architecture: options.architecture,
                    platform: options.platform,
                    ..Query::default()
                }]
            } else {
                selected
                    .iter()
                    .map(|s| Query {
                        architecture: Some(s.target.architecture),
                        platform: Some(s.target.platform),
                        kconfig: s.target.kconfig.clone(),
                        ..Query::default()
                    })
                    .collect()
            };
            let mut packages = Vec::new();
            for query in queries {
                let target = RuntimeTarget {
                    rootfs: rootfs.clone(),
                    command: command.clone(),
                    query,
                };
                packages.extend(self.pack_on_runtime(&runtime, &target, &pack).await?);
                pack.strategy = MergeStrategy::Merge;
            }
            return Ok(packages);
        }

        if selected.is_empty() {
            return Err(Error::InvalidInput(format!("{} has no targets", path.display())));
        }
        // Every target's output is checked before anything is packed.
        let mut targets = Vec::with_capacity(selected.len());
        for s in &selected {
            targets.push(build_output(dir, s, &kraftfile)?);
        }
        let mut packages = Vec::with_capacity(targets.len());
        for mut target in targets {
            target.command = command.clone();
            target.initrd = rootfs.clone();
            packages.push(self.pack(&target, &pack).await?);
            pack.strategy = MergeStrategy::Merge;
        }
        Ok(packages)
    }

    /// Packs `target.rootfs` and command on the runtime package `runtime` (KraftKit's
    /// `--runtime`): the runtime is taken from the store, else pulled for `target.query`; every
    /// runtime package matching the query gets an entry. The first uses `options.strategy`,
    /// later ones merge.
    pub async fn pack_on_runtime(
        &self,
        runtime: &str,
        target: &RuntimeTarget,
        options: &PackOptions,
    ) -> Result<Vec<Package>> {
        let runtimes = self.find_runtime(runtime, &target.query).await?;
        let mut options = options.clone();
        let mut packages = Vec::with_capacity(runtimes.len());
        for package in runtimes {
            let manifest = self.catalog().read_manifest(&package.manifest).await?;
            let config = self.catalog().read_config(&manifest).await?;
            let architecture: Architecture = package.platform.architecture.parse()?;
            let platform: Plat = package.platform.os.parse()?;
            let base = RuntimeBase {
                layers: manifest.layers.clone(),
                config,
            };
            let mut app = Target::new(PathBuf::new(), architecture, platform);
            app.command = target.command.clone();
            app.initrd = target.rootfs.clone();
            packages.push(self.pack_target(&app, Some(&base), &options).await?);
            options.strategy = MergeStrategy::Merge;
        }
        Ok(packages)
    }

    /// The runtime packages `name` names that match `query`: from the store, else pulled.
    pub async fn find_runtime(&self, name: &str, query: &Query) -> Result<Vec<Package>> {
        let local = match self.local_name(name) {
            Ok(local) => match self.catalog().find(local, query).await {
                Ok(found) => found,
                Err(err) if err.kind() == crate::ErrorKind::NotFound => Vec::new(),
                Err(err) => return Err(err),
            },
            Err(err) => return Err(err),
        };
        if !local.is_empty() {
            return Ok(local);
        }
        tracing::debug!(runtime = name, query = %query.describe(), "runtime not in the store; pulling it");
        let pulled = self
            .pull_name(
                name,
                &PullOptions {
                    query: query.clone(),
                    all_platforms: false,
                },
            )
            .await?;
        let matching: Vec<Package> = pulled
            .into_iter()
            .filter(|p| query.matches_platform(&p.platform))
            .collect();
        if matching.is_empty() {
            return Err(Error::InvalidInput(format!(
                "runtime {name} has no package for {}",
                query.describe()
            )));
        }
        Ok(matching)
    }
}

fn dir_name(dir: &Path) -> Option<String> {
    let dir = if dir.as_os_str().is_empty() || dir == Path::new(".") {
        std::env::current_dir().ok()?
    } else {
        dir.to_path_buf()
    };
    dir.file_name()?.to_str().map(str::to_string)
}

/// The targets the filters select; each filter given must match (a target matches `--target`
/// by its name or its `plat/arch`).
fn select(kraftfile: &Kraftfile, project: &str, options: &ProjectOptions) -> Result<Vec<Selected>> {
    let all: Vec<Selected> = kraftfile
        .targets
        .iter()
        .map(|t| Selected {
            name: t.name.clone().unwrap_or_else(|| project.to_string()),
            target: t.clone(),
        })
        .collect();
    if all.is_empty() {
        return Ok(all);
    }
    let wanted = |s: &Selected| {
        options
            .target
            .as_ref()
            .is_none_or(|t| *t == s.name || *t == s.target.plat_arch())
            && options.architecture.is_none_or(|a| a == s.target.architecture)
            && options.platform.is_none_or(|p| p == s.target.platform)
    };
    let available: Vec<String> = all
        .iter()
        .map(|s| format!("{} ({})", s.name, s.target.plat_arch()))
        .collect();
    let selected: Vec<Selected> = all.into_iter().filter(wanted).collect();
    if selected.is_empty() {
        let mut asked = Vec::new();
        if let Some(t) = &options.target {
            asked.push(format!("target {t}"));
        }
        if let Some(p) = options.platform {
            asked.push(format!("platform {p}"));
        }
        if let Some(a) = options.architecture {
            asked.push(format!("architecture {a}"));
        }
        return Err(Error::InvalidInput(format!(
            "no target matches {}; the Kraftfile has {}",
            asked.join(", "),
            available.join(", ")
        )));
    }
    Ok(selected)
}

/// The kernel and `.config` Unikraft built for a target.
fn build_output(dir: &Path, selected: &Selected, kraftfile: &Kraftfile) -> Result<Target> {
    let t = &selected.target;
    let kernel_name = format!("{}_{}-{}", selected.name, t.platform, t.architecture);
    let build = dir.join(BUILD_DIR);
    let kernel = match &t.kernel {
        Some(path) => dir.join(path),
        None => build.join(&kernel_name),
    };
    if !kernel.is_file() {
        return Err(Error::InvalidInput(format!(
            "target {} ({}) has no kernel: {} does not exist; build the project first (`kraft build`)",
            selected.name,
            t.plat_arch(),
            kernel.display()
        )));
    }
    // KraftKit's per-target `.config.<kernel file name>` in the project folder
    // (`TargetConfig.ConfigFilename`) first; a shared `.config` only when the Kraftfile has a
    // single target, so no target takes another's.
    let kernel_name = kernel
        .file_name()
        .map_or(kernel_name.clone(), |n| n.to_string_lossy().into_owned());
    let mut candidates = vec![
        dir.join(format!(".config.{kernel_name}")),
        build.join(format!(".config.{kernel_name}")),
        build.join(format!("{kernel_name}.config")),
    ];
    if kraftfile.targets.len() == 1 {
        candidates.push(build.join(".config"));
        candidates.push(dir.join(".config"));
    }
    let kconfig = candidates.into_iter().find(|p| p.is_file());
    let mut target = Target::new(kernel, t.architecture, t.platform);
    target.kconfig = kconfig;
    Ok(target)
}

/// `K=V` entries as given; a bare `K` takes the host's `$K` (empty when unset), as KraftKit's
/// `--env K` does. A later entry for a key replaces an earlier one, in the earlier's place.
fn resolve_env<'a>(entries: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries {
        let (key, value) = match entry.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (entry.clone(), std::env::var(entry).unwrap_or_default()),
        };
        if !values.contains_key(&key) {
            order.push(key.clone());
        }
        values.insert(key, value);
    }
    order
        .into_iter()
        .map(|k| {
            let v = &values[&k];
            format!("{k}={v}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_later_wins_in_place() {
        let entries = ["A=1".to_string(), "B=2".to_string(), "A=3".to_string()];
        assert_eq!(resolve_env(entries.iter()), ["A=3", "B=2"]);
    }

    #[test]
    fn filters_all_apply() {
        let k = Kraftfile::parse(
            "name: app\nunikraft: stable\ntargets:\n- qemu/x86_64\n- fc/x86_64\n- {name: small, plat: qemu, arch: arm64}\n",
        )
        .unwrap();
        let pick = |target: Option<&str>, arch: Option<Architecture>, plat: Option<Plat>| {
            let mut o = ProjectOptions::new(PackOptions::new("x".parse().unwrap()));
            o.target = target.map(str::to_string);
            o.architecture = arch;
            o.platform = plat;
            select(&k, "app", &o).map(|v| {
                v.iter()
                    .map(|s| format!("{}:{}", s.name, s.target.plat_arch()))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(pick(None, None, None).unwrap().len(), 3);
        assert_eq!(
            pick(Some("app"), None, None).unwrap(),
            ["app:qemu/x86_64", "app:fc/x86_64"]
        );
        assert_eq!(pick(Some("small"), None, None).unwrap(), ["small:qemu/arm64"]);
        assert_eq!(pick(Some("fc/x86_64"), None, None).unwrap(), ["app:fc/x86_64"]);
        assert_eq!(
            pick(Some("app"), Some(Architecture::X86_64), Some(Plat::Qemu)).unwrap(),
            ["app:qemu/x86_64"]
        );
        assert_eq!(pick(None, None, Some(Plat::Qemu)).unwrap().len(), 2);
        let err = pick(Some("small"), Some(Architecture::X86_64), None).unwrap_err();
        assert!(err.to_string().contains("small (qemu/arm64)"), "{err}");
    }
}
