//! The registries ukpm lists and resolves against, kept in the config file's `registries` key
//! (KraftKit's `kraft pkg source`/`unsource`, which keep `unikraft.manifests`).
//!
//! The file is rewritten through a temp file and a rename, with every other key, its value and
//! the keys' order kept as they were: people edit this file by hand.

use std::path::{Path, PathBuf};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;
use ukpm_registry::RegistryError;

use crate::{Error, PackageManager, Result};

/// The config key the sources live under.
pub const SOURCES_KEY: &str = "registries";

/// The list of sources in one config file.
#[derive(Debug, Clone)]
pub struct Sources {
    path: PathBuf,
}

/// The config file's top level, keys in file order.
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        deserializer.deserialize_map(V)
    }
}

impl serde::Serialize for Ordered {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A source as the file keeps it: a registry host (`ghcr.io`, `localhost:5000`), with any
/// `https://` and trailing `/` a KraftKit user types taken off.
pub fn normalize_source(source: &str) -> Result<String> {
    let trimmed = source.trim();
    let bare = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed)
        .trim_end_matches('/');
    let bare = bare.strip_suffix("/v2").unwrap_or(bare);
    if bare.is_empty() || bare.contains(char::is_whitespace) || bare.contains(['/', '?', '#', '@']) {
        return Err(Error::InvalidInput(format!(
            "`{source}` is not a registry: give a host such as ghcr.io or localhost:5000"
        )));
    }
    Ok(bare.to_ascii_lowercase())
}

impl Sources {
    /// The sources of the config file at `path` (which need not exist yet).
    pub fn at(path: impl Into<PathBuf>) -> Sources {
        Sources { path: path.into() }
    }

    /// The config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sources, in order.
    pub fn list(&self) -> Result<Vec<String>> {
        let doc = self.read()?;
        Ok(doc
            .0
            .iter()
            .find(|(k, _)| k == SOURCES_KEY)
            .and_then(|(_, v)| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default())
    }

    /// Appends `source` unless it is there; whether it was added.
    pub fn add(&self, source: &str) -> Result<bool> {
        let source = normalize_source(source)?;
        let mut list = self.list()?;
        if list.contains(&source) {
            return Ok(false);
        }
        list.push(source);
        self.set(&list)?;
        Ok(true)
    }

    /// Removes `source`; whether it was there.
    pub fn remove(&self, source: &str) -> Result<bool> {
        let source = normalize_source(source).unwrap_or_else(|_| source.to_string());
        let mut list = self.list()?;
        let before = list.len();
        list.retain(|s| *s != source);
        if list.len() == before {
            return Ok(false);
        }
        self.set(&list)?;
        Ok(true)
    }

    /// Replaces the list; the other keys stay as they were.
    pub fn set(&self, sources: &[String]) -> Result<()> {
        let mut doc = self.read()?;
        let value = Value::Array(sources.iter().cloned().map(Value::String).collect());
        match doc.0.iter_mut().find(|(k, _)| k == SOURCES_KEY) {
            Some((_, v)) => *v = value,
            None => doc.0.push((SOURCES_KEY.to_string(), value)),
        }
        let mut bytes = serde_json::to_vec_pretty(&doc)
            .map_err(|e| Error::InvalidInput(format!("cannot write {}: {e}", self.path.display())))?;
        bytes.push(b'\n');
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs_err::create_dir_all(&dir)?;
        crate::remote_catalog::atomic_write(&dir, &self.path, &bytes)
    }

    fn read(&self) -> Result<Ordered> {
        let bytes = match fs_err::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ordered(Vec::new())),
            Err(e) => return Err(e.into()),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Ordered(Vec::new()));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::InvalidInput(format!("{} is not a valid ukpm config: {e}", self.path.display()))
        })
    }
}

impl PackageManager {
    /// Checks that `source` answers as a registry: `GET /v2/` is 200, or 401 (it wants
    /// credentials, which is still a registry). `source add` asks this unless forced.
    pub async fn check_source(&self, source: &str) -> Result<()> {
        let source = normalize_source(source)?;
        let client = self.client()?;
        match client.ping(&source).await {
            Ok(()) => Ok(()),
            Err(RegistryError::Unauthorized { .. }) => Ok(()),
            Err(RegistryError::Status { status: 401, .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_keys_and_their_order_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs_err::write(
            &path,
            r#"{"timeout": 5, "registries": ["a.io"], "concurrency": 2}"#,
        )
        .unwrap();
        let sources = Sources::at(&path);
        assert!(sources.add("https://b.io/").unwrap());
        assert!(!sources.add("b.io").unwrap());
        assert_eq!(sources.list().unwrap(), ["a.io", "b.io"]);
        assert!(sources.remove("a.io").unwrap());
        assert!(!sources.remove("a.io").unwrap());
        let text = fs_err::read_to_string(&path).unwrap();
        let t = text.find("timeout").unwrap();
        let r = text.find("registries").unwrap();
        let c = text.find("concurrency").unwrap();
        assert!(t < r && r < c, "{text}");
        assert!(normalize_source("a b").is_err());
    }
}
