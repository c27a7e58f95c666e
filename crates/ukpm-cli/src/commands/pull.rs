//! `ukpm pull`: packages fetched from registries into the store, several at once; with
//! `-o DIR`, also unpacked there, as `kraft pkg pull -o` does.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use ukpm::{HostPlatform, Package, PackageManager, PullOptions, Query, Unpacked};

use super::query;
use crate::args::PullArgs;
use crate::output::{Escaped, JsonPath, Output, PackageJson, Printer, escape, escape_path};

/// The packages (platforms) fetched, for every reference given, in order, and what `-o`
/// unpacked.
pub struct Pulled {
    packages: Vec<Package>,
    unpacked: Option<(Unpacked, PathBuf)>,
    /// The references of a pull of several that failed, each with its error: every one is
    /// reported, and the command then fails (a single reference fails as any command does).
    failed: Vec<(String, anyhow::Error)>,
    /// How many references were pulled (a reference may bring several packages).
    pulled: usize,
}

/// `ukpm pull --json`: `{"packages": [...]}`, and with `-o` the `unpack --json` fields of
/// what was unpacked under `"unpacked"`.
#[derive(Serialize)]
struct PulledJson<'a> {
    packages: Vec<PackageJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unpacked: Option<UnpackedJson<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failed: Vec<FailedJson>,
}

/// One reference of `pull A B ...` that failed: the error document's body (docs/json.md).
#[derive(Serialize)]
struct FailedJson {
    error: ErrorJson,
    reference: String,
}

/// As `{"error": ...}` of a failed command.
#[derive(Serialize)]
struct ErrorJson {
    causes: Vec<String>,
    code: &'static str,
    message: String,
}

impl FailedJson {
    fn new(reference: &str, err: &anyhow::Error) -> FailedJson {
        let code = err
            .chain()
            .find_map(|cause| cause.downcast_ref::<ukpm::Error>())
            .map_or("error", |e| e.kind().as_str());
        FailedJson {
            error: ErrorJson {
                causes: err.chain().skip(1).map(ToString::to_string).collect(),
                code,
                message: err.to_string(),
            },
            reference: reference.to_string(),
        }
    }
}

/// What `pull -o` wrote.
#[derive(Serialize)]
struct UnpackedJson<'a> {
    directory: JsonPath<'a>,
    files: Vec<JsonPath<'a>>,
    initrd: Option<JsonPath<'a>>,
    kernel: Option<JsonPath<'a>>,
}

impl Output for Pulled {
    fn json(&self) -> impl Serialize + '_ {
        PulledJson {
            packages: self.packages.iter().map(PackageJson::from).collect(),
            unpacked: self.unpacked.as_ref().map(|(u, dir)| UnpackedJson {
                directory: JsonPath(dir),
                files: u.files.iter().map(|f| JsonPath(f)).collect(),
                initrd: u.initrd.as_deref().map(JsonPath),
                kernel: u.kernel.as_deref().map(JsonPath),
            }),
            failed: self.failed.iter().map(|(r, e)| FailedJson::new(r, e)).collect(),
        }
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
        if let Some((u, _)) = &self.unpacked {
            for path in u.kernel.iter().chain(&u.initrd) {
                writeln!(out, "{}", escape_path(path))?;
            }
        }
        if !self.failed.is_empty() {
            // Failures are errors: on stderr, each as a failed command prints its own.
            let mut err = io::stderr().lock();
            for (_, error) in &self.failed {
                writeln!(err, "error: {}", escape(&error.to_string()))?;
                for cause in error.chain().skip(1) {
                    writeln!(err, "  caused by: {}", escape(&cause.to_string()))?;
                }
            }
            let names: Vec<_> = self.failed.iter().map(|(r, _)| escape(r)).collect();
            let total = self.failed.len() + self.pulled;
            writeln!(
                err,
                "error: {} of {total} references failed ({}); {} pulled",
                self.failed.len(),
                names.join(", "),
                self.pulled
            )?;
        }
        Ok(())
    }

    fn is_failure(&self) -> bool {
        !self.failed.is_empty()
    }
}

/// Pulls every reference given, all at once. One reference fails as any command does; of
/// several, every success and every failure is reported, and any failure fails the command.
/// Without a platform choice, the machine's own architecture and platform, said on stderr.
pub async fn run(manager: &PackageManager, args: &PullArgs, printer: &Printer) -> Result<Pulled> {
    let mut query = query(&args.filters)?;
    if let Some(dir) = &args.output {
        // Before the pull: a refusal after minutes of download would be a waste.
        super::unpack::refuse_occupied(dir, args.force)?;
    }
    if query.architecture.is_none() && query.platform.is_none() && !args.all_platforms {
        // Like kraft: without a choice, this machine's architecture and platform.
        let host = HostPlatform::detect();
        query.architecture = host.architecture;
        query.platform = Some(host.platform);
        let arch = host
            .architecture
            .map_or("any architecture".into(), |a| a.to_string());
        crate::error::note_implied_platform(format!(
            "{}/{arch}, this machine's ({})",
            host.platform, host.reason
        ));
        printer.note(&format!(
            "pulling for {}/{arch}, this machine ({}); --plat, --arch or --all choose otherwise",
            host.platform, host.reason
        ));
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
    let mut failed = Vec::new();
    let mut pulled = 0;
    let results = futures_util::future::join_all(pulls).await;
    let several = results.len() > 1;
    for (name, result) in args.references.iter().zip(results) {
        match result {
            Ok(got) => {
                pulled += 1;
                packages.extend(got);
            }
            Err(err) if several => failed.push((name.clone(), err)),
            Err(err) => return Err(err),
        }
    }
    let unpacked = match &args.output {
        Some(_) if !failed.is_empty() => {
            printer.note("nothing was unpacked: a pull failed");
            None
        }
        Some(dir) => Some((unpack(manager, &packages, dir).await?, dir.clone())),
        None => None,
    };
    Ok(Pulled {
        packages,
        unpacked,
        failed,
        pulled,
    })
}

/// `pull -o DIR`: the one package pulled, unpacked into DIR. Several would write the same
/// files over each other (KraftKit does that silently): they are refused, after the pull.
async fn unpack(manager: &PackageManager, packages: &[Package], dir: &Path) -> Result<Unpacked> {
    let [package] = packages else {
        bail!(ukpm::Error::InvalidInput(format!(
            "-o unpacks one package, and {} were pulled (they are in the store): choose one with --plat PLAT/ARCH or --kconfig",
            packages.len()
        )));
    };
    let query = Query {
        name: None,
        architecture: package.platform.architecture.parse().ok(),
        platform: package.platform.os.parse().ok(),
        kconfig: package.platform.os_features.clone(),
    };
    manager
        .unpack(&package.reference, &query, dir)
        .await
        .with_context(|| format!("failed to unpack {} into {}", package.reference, dir.display()))
}
