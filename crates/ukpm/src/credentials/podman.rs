//! Podman's `auth.json` (also skopeo's and buildah's): the docker `config.json` format (`auths`,
//! `credHelpers`), so it is read by [`DockerConfig`] from Podman's own place.

use std::path::PathBuf;

use super::docker::DockerConfig;
use crate::error::Result;

/// `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
/// `$XDG_CONFIG_HOME/containers/auth.json` (`~/.config/containers/auth.json`): where
/// `podman login` writes (containers-auth.json(5)).
pub fn podman_auth_path() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(file) = non_empty("REGISTRY_AUTH_FILE") {
        return Some(file);
    }
    if let Some(run) = non_empty("XDG_RUNTIME_DIR") {
        let path = run.join("containers").join("auth.json");
        if path.exists() {
            return Some(path);
        }
    }
    non_empty("XDG_CONFIG_HOME")
        .or_else(|| non_empty("HOME").map(|h| h.join(".config")))
        .map(|d| d.join("containers").join("auth.json"))
}

/// Loads Podman's `auth.json` at `path` (a missing file has no entries).
pub fn load_podman_auth(path: impl Into<PathBuf>) -> Result<DockerConfig> {
    DockerConfig::load(path)
}
