//! Settings: flags, then `UKPM_*` (and containerd's) environment variables, then the config
//! file, then defaults. clap resolves the first two; this module adds the file.
//!
//! The file is JSON, `$UKPM_CONFIG`, else `$XDG_CONFIG_HOME/ukpm/config.json`, else
//! `~/.config/ukpm/config.json`; a missing file is no settings. Its keys are documented in
//! docs/config.md.

use std::path::PathBuf;

use anyhow::Result;
use serde::Deserialize;

use crate::args::{Global, MAX_CONCURRENCY};

/// What the config file may set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    store: Option<PathBuf>,
    containerd: Option<PathBuf>,
    namespace: Option<String>,
    #[serde(default)]
    registries: Vec<String>,
    #[serde(default)]
    plain_http: Vec<String>,
    #[serde(default)]
    ca_files: Vec<PathBuf>,
    concurrency: Option<usize>,
    timeout: Option<u64>,
    min_rate: Option<u64>,
}

/// The settings every command runs with, resolved.
#[derive(Debug)]
pub struct Settings {
    pub store: Option<PathBuf>,
    /// `--store kraftkit:[DIR]`: KraftKit's runtime folder (its default for `kraftkit:`);
    /// `store` is then `None`.
    pub kraftkit_store: Option<PathBuf>,
    pub containerd: Option<PathBuf>,
    pub namespace: String,
    pub registries: Vec<String>,
    pub plain_http: Vec<String>,
    pub ca_files: Vec<PathBuf>,
    pub concurrency: usize,
    /// Seconds a registry may stay silent.
    pub timeout: u64,
    /// The slowest transfer in bytes per second (0: none).
    pub min_rate: u64,
}

/// The config file's path (which need not exist), as the settings read it.
pub fn config_path() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("UKPM_CONFIG")
        .or_else(|| non_empty("XDG_CONFIG_HOME").map(|d| d.join("ukpm").join("config.json")))
        .or_else(|| non_empty("HOME").map(|h| h.join(".config").join("ukpm").join("config.json")))
}

fn load() -> Result<FileSettings> {
    let Some(path) = config_path() else {
        return Ok(FileSettings::default());
    };
    let bytes = match fs_err::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileSettings::default()),
        Err(e) => return Err(e.into()),
    };
    let invalid = |why: String| {
        anyhow::Error::new(ukpm::Error::InvalidInput(format!(
            "{} is not a valid ukpm config: {why}",
            path.display()
        )))
        .context("cannot read the config file")
    };
    let settings: FileSettings = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if let Some(n) = settings.concurrency
        && !(1..=MAX_CONCURRENCY).contains(&n)
    {
        return Err(invalid(format!(
            "`concurrency` is {n}, outside 1..={MAX_CONCURRENCY}"
        )));
    }
    if settings.timeout == Some(0) {
        return Err(invalid("`timeout` must be at least 1 second".into()));
    }
    Ok(settings)
}

impl Settings {
    /// Resolves flags and environment (in `global`) over the config file over defaults.
    pub fn resolve(global: &Global) -> Result<Settings> {
        let file = load()?;
        let or_file =
            |flags: &[String], file: Vec<String>| if flags.is_empty() { file } else { flags.to_vec() };
        let store = global.store.clone().or(file.store);
        let kraftkit = store
            .as_deref()
            .and_then(|s| s.to_str())
            .and_then(|s| s.strip_prefix("kraftkit:"));
        let kraftkit_store = match kraftkit {
            Some("") => Some(ukpm::kraftkit_runtime_dir()?),
            Some(dir) => Some(PathBuf::from(dir)),
            None => None,
        };
        Ok(Settings {
            store: if kraftkit_store.is_some() { None } else { store },
            kraftkit_store,
            containerd: global.containerd.clone().or(file.containerd),
            namespace: global
                .namespace
                .clone()
                .or(file.namespace)
                .unwrap_or_else(|| ukpm::types::DEFAULT_CONTAINERD_NAMESPACE.to_string()),
            registries: or_file(&global.registries, file.registries)
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect(),
            plain_http: or_file(&global.plain_http, file.plain_http),
            ca_files: if global.ca_file.is_empty() {
                file.ca_files
            } else {
                global.ca_file.clone()
            },
            concurrency: global
                .concurrency
                .or(file.concurrency)
                .unwrap_or(ukpm::DEFAULT_CONCURRENCY),
            timeout: global
                .timeout
                .or(file.timeout)
                .unwrap_or(ukpm::registry::DEFAULT_READ_TIMEOUT.as_secs()),
            min_rate: global
                .min_rate
                .or(file.min_rate)
                .unwrap_or(ukpm::registry::DEFAULT_MIN_RATE),
        })
    }
}
