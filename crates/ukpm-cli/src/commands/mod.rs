//! One function per command: turn arguments into library calls and results into output.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::json;
use ukpm::{
    Architecture, ClientConfig, MergeStrategy, PackOptions, PackageManager, Plat, PullOptions, Query, Secret,
    Target,
};

use crate::args::{Cli, Command, Filters, PackArgs, Strategy};
use crate::output::{self, Printer};
use crate::report::StderrReporter;
use crate::settings::Settings;

/// Runs the parsed command line.
pub async fn run(cli: &Cli) -> Result<()> {
    let global = &cli.global;
    let settings = Settings::resolve(global)?;
    let mut builder = PackageManager::builder();
    if let Some(store) = &settings.store {
        builder = builder.store_dir(store);
    }
    if !global.quiet {
        builder = builder.reporter(Arc::new(StderrReporter::new(global)));
    }
    if !settings.registries.is_empty() {
        builder = builder.registries(settings.registries.clone());
    }
    let mut client_config = ClientConfig {
        plain_http: settings.plain_http.clone(),
        ..ClientConfig::default()
    };
    for file in &settings.ca_files {
        let pem =
            fs_err::read(file).with_context(|| format!("cannot read the CA file {}", file.display()))?;
        client_config.extra_roots_pem.push(pem);
    }
    if let Some(address) = &settings.containerd {
        builder = builder.store(containerd_store(address, &settings.namespace).await?);
    }
    let manager = builder
        .client_config(client_config)
        .concurrency(settings.concurrency)
        .build()?;
    let printer = Printer { json: global.json };
    let result = dispatch(cli, &manager, &printer).await;
    let closed = manager.close().await;
    result?;
    Ok(closed?)
}

async fn dispatch(cli: &Cli, manager: &PackageManager, printer: &Printer) -> Result<()> {
    match &cli.command {
        Command::Pack(args) => pack(manager, printer, args).await,
        Command::Ls(args) => {
            let mut query = query(&args.filters)?;
            query.name = args.name.clone();
            let packages = manager.list(&query).await.context("failed to list the store")?;
            let json = json!({"packages": packages.iter().map(output::package_json).collect::<Vec<_>>()});
            Ok(printer.result(json, |out| output::package_table(out, &packages))?)
        }
        Command::Inspect(args) => {
            let reference = manager.parse_name(&args.reference)?;
            let inspection = manager
                .inspect(&reference)
                .await
                .with_context(|| format!("failed to inspect {reference}"))?;
            Ok(printer.result(output::inspection_json(&inspection), |out| {
                output::inspection_human(out, &inspection)
            })?)
        }
        Command::Unpack(args) => {
            let reference = manager.parse_name(&args.reference)?;
            let query = query(&args.filters)?;
            let unpacked = manager
                .unpack(&reference, &query, &args.dir)
                .await
                .with_context(|| format!("failed to unpack {reference}"))?;
            Ok(
                printer.result(output::unpacked_json(&unpacked, &args.dir), |out| {
                    for path in unpacked.kernel.iter().chain(&unpacked.initrd) {
                        writeln!(out, "{}", path.display())?;
                    }
                    Ok(())
                })?,
            )
        }
        Command::Rm(args) => {
            let removed: Vec<String> = if args.all {
                manager
                    .remove_all()
                    .await
                    .context("failed to remove every package")?
            } else {
                let references = args
                    .references
                    .iter()
                    .map(|r| Ok(manager.parse_name(r)?))
                    .collect::<Result<Vec<_>>>()?;
                manager
                    .remove(&references)
                    .await
                    .context("failed to remove")?
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            };
            Ok(printer.result(json!({"removed": removed}), |out| {
                for name in &removed {
                    writeln!(out, "{name}")?;
                }
                Ok(())
            })?)
        }
        Command::Pull(args) => {
            let mut query = query(&args.filters)?;
            if query == Query::default() && !args.all_platforms {
                // Like docker and kraft: without a choice, the machine's own architecture.
                query.architecture = std::env::consts::ARCH.parse::<Architecture>().ok();
            }
            let options = PullOptions {
                query,
                all_platforms: args.all_platforms,
            };
            // Several packages at once: their round trips overlap and their blobs share the
            // transfer limit.
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
            let json = json!({"packages": packages.iter().map(output::package_json).collect::<Vec<_>>()});
            Ok(printer.result(json, |out| {
                for p in &packages {
                    writeln!(out, "{} {} {}", p.reference, p.plat_arch(), p.manifest.digest)?;
                }
                Ok(())
            })?)
        }
        Command::Push(args) => {
            let source = manager.parse_name(&args.reference)?;
            let target = args.to.as_deref().map(|t| manager.parse_name(t)).transpose()?;
            let report = manager
                .push(&source, target.as_ref())
                .await
                .with_context(|| format!("failed to push {source}"))?;
            let pushed = report
                .reference
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let digest = report.digest.map(|d| d.to_string()).unwrap_or_default();
            let json = json!({
                "reference": pushed,
                "digest": digest,
                "uploaded": report.uploaded,
                "uploaded_bytes": report.uploaded_bytes,
                "existed": report.existed,
                "mounted": report.mounted,
                "manifests_written": report.manifests_written,
            });
            Ok(printer.result(json, |out| writeln!(out, "{pushed}@{digest}"))?)
        }
        Command::Tag(args) => {
            let source = manager.parse_name(&args.source)?;
            let target = manager.parse_name(&args.target)?;
            manager
                .tag(&source, &target)
                .await
                .with_context(|| format!("failed to tag {source} as {target}"))?;
            Ok(printer.result(
                json!({"source": source.to_string(), "target": target.to_string()}),
                |out| writeln!(out, "{target}"),
            )?)
        }
        Command::Login(args) => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!(ukpm::Error::InvalidInput(
                    "the password read from standard input is empty".into()
                ));
            }
            let path = manager
                .login(&args.registry, &args.username, Secret::new(password))
                .await
                .with_context(|| format!("failed to log in to {}", args.registry))?;
            Ok(
                printer.result(json!({"registry": args.registry, "config": path}), |out| {
                    writeln!(
                        out,
                        "logged in to {} (saved in {})",
                        args.registry,
                        path.display()
                    )
                })?,
            )
        }
        Command::Logout(args) => {
            let removed = manager
                .logout(&args.registry)
                .await
                .with_context(|| format!("failed to log out of {}", args.registry))?;
            Ok(
                printer.result(json!({"registry": args.registry, "removed": removed}), |out| {
                    if removed {
                        writeln!(out, "logged out of {}", args.registry)
                    } else {
                        writeln!(out, "no saved login for {}", args.registry)
                    }
                })?,
            )
        }
        Command::Fsck(args) => {
            let outcome = manager
                .fsck(args.repair)
                .await
                .context("failed to check the store")?;
            let clean = outcome.report.problems.is_empty();
            printer.result(output::fsck_json(&outcome), |out| {
                output::fsck_human(out, &outcome)
            })?;
            if clean {
                Ok(())
            } else {
                Err(crate::Findings.into())
            }
        }
        Command::Gc => {
            let report = manager.gc().await.context("failed to collect garbage")?;
            Ok(printer.result(output::gc_json(&report), |out| {
                writeln!(
                    out,
                    "removed {} blobs, freed {}, kept {}",
                    report.removed.len(),
                    output::human_size(report.bytes_freed),
                    report.kept
                )?;
                for digest in &report.missing {
                    writeln!(out, "missing: {digest}")?;
                }
                Ok(())
            })?)
        }
    }
}

async fn pack(manager: &PackageManager, printer: &Printer, args: &PackArgs) -> Result<()> {
    let reference = manager.parse_name(&args.name)?;
    let mut target = Target::new(&args.kernel, architecture(&args.arch)?, plat(&args.plat)?);
    target.kernel_dbg = args.kernel_dbg.clone();
    target.kconfig = args.kconfig.clone();
    target.initrd = args.initrd.clone();
    target.command = args.cmd.iter().chain(&args.trailing).cloned().collect();
    let mut options = PackOptions::new(reference.clone());
    options.env = args.env.clone();
    options.labels = key_values("--label", &args.label)?;
    options.annotations = key_values("--annotation", &args.annotation)?;
    options.kernel_version = args.kernel_version.clone();
    options.pack_kconfig = !args.no_kconfig;
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
    Ok(
        printer.result(json!({"package": output::package_json(&package)}), |out| {
            writeln!(out, "{pinned}")
        })?,
    )
}

fn architecture(s: &str) -> Result<Architecture> {
    Ok(s.parse::<Architecture>().map_err(ukpm::Error::from)?)
}

fn plat(s: &str) -> Result<Plat> {
    Ok(s.parse::<Plat>().map_err(ukpm::Error::from)?)
}

fn query(filters: &Filters) -> Result<Query> {
    Ok(Query {
        name: None,
        architecture: filters.arch.as_deref().map(architecture).transpose()?,
        platform: filters.plat.as_deref().map(plat).transpose()?,
        kconfig: filters.kconfig.clone(),
    })
}

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

#[cfg(feature = "containerd")]
async fn containerd_store(address: &std::path::Path, namespace: &str) -> Result<Arc<dyn ukpm::ImageStore>> {
    let store = ukpm::ContainerdImageStore::connect(address, namespace)
        .await
        .with_context(|| format!("cannot use containerd at {}", address.display()))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "containerd"))]
async fn containerd_store(address: &std::path::Path, _namespace: &str) -> Result<Arc<dyn ukpm::ImageStore>> {
    bail!(ukpm::Error::InvalidInput(format!(
        "cannot use containerd at {}: this ukpm was built without the `containerd` feature",
        address.display()
    )))
}
