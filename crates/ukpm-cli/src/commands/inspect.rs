//! `ukpm inspect`: a package's index, manifests and configs, from the store or (`--remote`, or
//! for a name the store lacks) from the registry.

use std::collections::HashMap;
use std::io::{self, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use ukpm::{Descriptor, Digest, ErrorKind, Inspection, ManifestSummary, PULLED_ANNOTATION, PackageManager};

use super::query;
use crate::args::InspectArgs;
use crate::output::{
    Escaped, Output, PackageJson, Printer, escape_json, human_size, short_time, sorted_keys,
};

/// What `inspect` found, and how to show it.
pub struct Inspected {
    inspection: Inspection,
    /// `--raw`: the documents instead of the summary.
    raw: bool,
    /// A platform filter chose the manifests: `--raw` then leaves the index out.
    filtered: bool,
    /// The size of the file each stored single-file layer carries, by layer digest.
    file_sizes: HashMap<Digest, u64>,
}

/// `ukpm inspect --json`.
#[derive(Serialize)]
struct InspectionJson<'a> {
    #[serde(serialize_with = "sorted_keys")]
    descriptor: &'a Descriptor,
    index: Option<&'a Value>,
    manifests: Vec<ManifestJson<'a>>,
    reference: String,
    source: &'static str,
}

/// One manifest of `ukpm inspect --json`.
#[derive(Serialize)]
struct ManifestJson<'a> {
    config: &'a Value,
    manifest: &'a Value,
    package: PackageJson<'a>,
    summary: Option<SummaryJson>,
}

/// What a manifest holds, as the summary shows it (docs/json.md).
#[derive(Serialize)]
struct SummaryJson {
    cmd: Vec<String>,
    env: Vec<String>,
    layers: Vec<LayerJson>,
}

/// One layer of a summary.
#[derive(Serialize)]
struct LayerJson {
    digest: String,
    file_size: Option<u64>,
    kind: &'static str,
    media_type: String,
    path: Option<String>,
    size: u64,
}

impl SummaryJson {
    fn new(s: ManifestSummary, file_sizes: &HashMap<Digest, u64>) -> SummaryJson {
        SummaryJson {
            cmd: s.cmd,
            env: s.env,
            layers: s
                .layers
                .into_iter()
                .map(|l| LayerJson {
                    digest: l.digest.to_string(),
                    file_size: file_sizes.get(&l.digest).copied(),
                    kind: l.kind.as_str(),
                    media_type: l.media_type,
                    path: l.path,
                    size: l.size,
                })
                .collect(),
        }
    }
}

impl Output for Inspected {
    fn json(&self) -> impl Serialize + '_ {
        let i = &self.inspection;
        InspectionJson {
            descriptor: &i.descriptor,
            index: i.index.as_ref(),
            manifests: i
                .manifests
                .iter()
                .map(|m| ManifestJson {
                    config: &m.config,
                    manifest: &m.manifest,
                    package: PackageJson::from(&m.package),
                    summary: m.summary().map(|s| SummaryJson::new(s, &self.file_sizes)),
                })
                .collect(),
            reference: i.name.clone(),
            source: i.source.as_str(),
        }
    }

    /// A summary per platform by default, the documents with `--raw`; the documents are
    /// whatever their writer put in them (annotations, media types), so the summary is escaped
    /// and the documents show their controls as JSON escapes.
    fn human(&self, out: &mut dyn Write) -> io::Result<()> {
        let i = &self.inspection;
        writeln!(
            out,
            "{} -> {} ({}, {}){}",
            Escaped(&i.name),
            i.descriptor.digest,
            Escaped(kind(&i.descriptor)),
            human_size(i.descriptor.size),
            if i.source == ukpm::Source::Remote {
                " on the registry"
            } else {
                ""
            }
        )?;
        if self.raw {
            return self.documents(out);
        }
        if i.source == ukpm::Source::Local {
            let annotations = &i.descriptor.annotations;
            let created = annotations.get(ukpm::types::annotation::OCI_CREATED);
            writeln!(
                out,
                "  created   {}",
                Escaped(created.map_or_else(|| "-".into(), |t| short_time(t)))
            )?;
            let pulled = i.manifests.first().map(|m| &m.package.pulled);
            let pulled = match (annotations.get(PULLED_ANNOTATION), pulled) {
                (Some(t), _) => short_time(t),
                (None, Some(ukpm::Pulled::Never)) => "never".into(),
                (None, _) => "-".into(),
            };
            writeln!(out, "  pulled    {}", Escaped(&pulled))?;
        }
        for m in &i.manifests {
            self.manifest_summary(out, m)?;
        }
        Ok(())
    }
}

impl Inspected {
    /// One platform: its manifest, what each layer carries, the command, the kconfig that
    /// matters most, and the annotations.
    fn manifest_summary(&self, out: &mut dyn Write, m: &ukpm::InspectedManifest) -> io::Result<()> {
        let p = &m.package;
        writeln!(out)?;
        writeln!(
            out,
            "{}  manifest {} ({})",
            Escaped(p.plat_arch()),
            p.manifest.digest,
            human_size(p.manifest.size)
        )?;
        if !p.platform.os_version.is_empty() {
            writeln!(out, "  version   {}", Escaped(&p.platform.os_version))?;
        }
        let Some(summary) = m.summary() else {
            return writeln!(out, "  (its documents do not read as an image; --raw shows them)");
        };
        for layer in &summary.layers {
            let size = match self.file_sizes.get(&layer.digest) {
                Some(file) => format!("{} (layer {})", human_size(*file), human_size(layer.size)),
                None => format!("layer {}", human_size(layer.size)),
            };
            writeln!(
                out,
                "  {:<9} {}  {size}  {}",
                layer.kind.as_str(),
                Escaped(layer.path.as_deref().unwrap_or("-")),
                layer.digest.short()
            )?;
        }
        if summary.layers.is_empty() {
            writeln!(out, "  layers    none")?;
        }
        writeln!(
            out,
            "  cmd       {}",
            match summary.cmd.is_empty() {
                true => "-".to_string(),
                false => Escaped(shell_words(&summary.cmd)).to_string(),
            }
        )?;
        for env in &summary.env {
            writeln!(out, "  env       {}", Escaped(env))?;
        }
        writeln!(out, "  kconfig   {}", kconfig(&p.platform.os_features))?;
        for (title, map) in [("annotations", &summary.annotations), ("labels", &summary.labels)] {
            if map.is_empty() {
                continue;
            }
            writeln!(out, "  {title}:")?;
            let width = map
                .keys()
                .map(|k| Escaped(k).to_string().chars().count())
                .max()
                .unwrap_or(0);
            for (k, v) in map {
                let key = Escaped(k).to_string();
                writeln!(out, "    {key:<width$}  {}", Escaped(v))?;
            }
        }
        Ok(())
    }

    /// `--raw`: the index (unless a platform filter chose manifests), then each manifest and
    /// its config, pretty-printed.
    fn documents(&self, out: &mut dyn Write) -> io::Result<()> {
        let i = &self.inspection;
        if let Some(index) = i.index.as_ref().filter(|_| !self.filtered) {
            writeln!(out, "\nindex:")?;
            writeln!(out, "{}", pretty(index))?;
        }
        for m in &i.manifests {
            writeln!(
                out,
                "\nmanifest {} ({}, {}):",
                m.package.manifest.digest,
                Escaped(m.package.plat_arch()),
                human_size(m.package.size)
            )?;
            writeln!(out, "{}", pretty(&m.manifest))?;
            writeln!(out, "config {}:", config_digest(&m.manifest))?;
            writeln!(out, "{}", pretty(&m.config))?;
        }
        Ok(())
    }
}

/// `image index` or `image manifest` (or the media type as written, for anything else).
fn kind(descriptor: &Descriptor) -> &str {
    if descriptor.is_index() {
        "image index"
    } else if descriptor.is_manifest() {
        "image manifest"
    } else {
        &descriptor.media_type
    }
}

/// The config digest a manifest document names, for the `--raw` header.
fn config_digest(manifest: &Value) -> String {
    Escaped(manifest["config"]["digest"].as_str().unwrap_or("-")).to_string()
}

/// A document for people: pretty JSON, with what JSON leaves raw (C1 controls, bidi
/// overrides) escaped too.
fn pretty(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    escape_json(&text).into_owned()
}

/// A command line as a shell would take it back: words with spaces or shell characters in
/// single quotes.
fn shell_words(words: &[String]) -> String {
    let quote = |w: &String| {
        let plain = !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%^".contains(c));
        if plain {
            w.clone()
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    words.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// The kconfig line: every entry when there are few, else the ones that say what the kernel
/// is for (platform, architecture, hypervisor, version, name) and how many more there are.
fn kconfig(features: &[String]) -> String {
    const FEW: usize = 8;
    const TELLING: [&str; 7] = [
        "CONFIG_PLAT_",
        "CONFIG_ARCH_",
        "CONFIG_KVM_",
        "CONFIG_XEN_",
        "CONFIG_UK_FULLVERSION",
        "CONFIG_UK_NAME",
        "CONFIG_LIBVFSCORE_AUTOMOUNT_ROOTFS",
    ];
    let n = features.len();
    let s = if n == 1 { "y" } else { "ies" };
    if n == 0 {
        return "no entries".into();
    }
    let shown: Vec<&String> = if n <= FEW {
        features.iter().collect()
    } else {
        features
            .iter()
            .filter(|f| TELLING.iter().any(|t| f.starts_with(t)))
            .take(FEW)
            .collect()
    };
    let list: Vec<String> = shown.iter().map(|f| Escaped(f).to_string()).collect();
    let mut line = format!("{n} entr{s}: {}", list.join(", "));
    if shown.len() < n {
        line.push_str(&format!(
            "{}{} more (--raw or -o json lists them all)",
            if shown.is_empty() { "" } else { ", and " },
            n - shown.len()
        ));
    }
    line
}

/// Reads what the reference names: from the store, else (or with `--remote`) from the
/// registry, saying so on stderr when it falls back.
pub async fn run(manager: &PackageManager, args: &InspectArgs, printer: &Printer) -> Result<Inspected> {
    let query = query(&args.filters)?;
    let mut inspection = read(manager, args, printer).await?;
    inspection
        .select(&query)
        .with_context(|| format!("failed to inspect {}", Escaped(&args.reference)))?;
    let mut file_sizes = HashMap::new();
    if inspection.source == ukpm::Source::Local {
        for m in &inspection.manifests {
            for layer in m.summary().map(|s| s.layers).unwrap_or_default() {
                let descriptor = Descriptor::new(&layer.media_type, layer.digest, layer.size);
                if let Some(size) = manager.layer_file_size(&descriptor).await {
                    file_sizes.insert(layer.digest, size);
                }
            }
        }
    }
    Ok(Inspected {
        inspection,
        raw: args.raw,
        filtered: query != ukpm::Query::default(),
        file_sizes,
    })
}

/// The inspection, from the store or the registry.
async fn read(manager: &PackageManager, args: &InspectArgs, printer: &Printer) -> Result<Inspection> {
    if args.remote {
        let inspection = manager
            .inspect_remote_name(&args.reference)
            .await
            .with_context(|| format!("failed to inspect {} on the registry", args.reference))?;
        return Ok(inspection);
    }
    let reference = manager.local_name(&args.reference)?;
    let local = match manager.inspect(&reference).await {
        Ok(inspection) => return Ok(inspection),
        Err(err) if err.kind() == ErrorKind::NotFound => err,
        Err(err) => return Err(err).with_context(|| format!("failed to inspect {reference}")),
    };
    if reference.reference().is_none() {
        // A bare ref name another tool wrote names nothing on a registry.
        return Err(local).with_context(|| format!("failed to inspect {reference}"));
    }
    printer.note(&format!(
        "{} is not in the store; reading it from the registry",
        Escaped(&args.reference)
    ));
    match manager.inspect_remote_name(&args.reference).await {
        Ok(inspection) => Ok(inspection),
        // Offline, the answer is still that the store lacks it; why the registry could not
        // tell is a note.
        Err(remote) if remote.kind() == ErrorKind::Network => {
            printer.note(&format!(
                "cannot ask the registry either: {}",
                Escaped(&remote.to_string())
            ));
            Err(local).with_context(|| format!("failed to inspect {reference}"))
        }
        Err(remote) if remote.kind() == ErrorKind::NotFound => {
            Err(local).with_context(|| format!("failed to inspect {reference} (nor is it on the registry)"))
        }
        Err(remote) => Err(remote).with_context(|| format!("failed to inspect {reference} on the registry")),
    }
}
