//! Credentials from the docker `config.json` (KraftKit's `WithDefaultAuth`/`WithDockerConfig`).
//!
//! Reads `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`: `auths` entries (base64
//! `auth`, or `username`/`password`, or `identitytoken`), `credHelpers` per registry and the
//! `credsStore` default, through `docker-credential-<name>` programs. `ukpm login` writes there
//! too, keeping every field it does not understand, so docker, crane, skopeo and ukpm share one
//! set of logins.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use base64::Engine;
use serde_json::{Map, Value};
use ukpm_registry::{Credential, CredentialSource, Secret};

use crate::error::{Error, Result};

/// The key Docker Hub's credentials are stored under, whichever alias a reference uses.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The docker `config.json` as a credential source.
pub struct DockerConfig {
    path: PathBuf,
    document: Map<String, Value>,
    cache: Mutex<HashMap<String, Option<Credential>>>,
    /// Where `docker-credential-*` programs are looked for, instead of `PATH` (tests).
    helper_path: Option<std::ffi::OsString>,
}

impl std::fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        non_empty("DOCKER_CONFIG")
            .map(|d| d.join("config.json"))
            .or_else(|| non_empty("HOME").map(|h| h.join(".docker").join("config.json")))
    }

    /// Loads the file at `path`; a missing file is an empty configuration.
    pub fn load(path: impl Into<PathBuf>) -> Result<DockerConfig> {
        let path = path.into();
        let document = match fs_err::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                _ => {
                    return Err(Error::InvalidInput(format!(
                        "{} is not a docker config (a JSON object)",
                        path.display()
                    )));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(DockerConfig {
            path,
            document,
            cache: Mutex::new(HashMap::new()),
            helper_path: None,
        })
    }

    /// The file this configuration lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let key = config_key(registry);
        let helpers = self.document.get("credHelpers").and_then(Value::as_object);
        helpers
            .and_then(|h| h.get(&key).or_else(|| h.get(registry)))
            .or_else(|| self.document.get("credsStore"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn lookup(&self, registry: &str) -> Option<Credential> {
        if let Some(helper) = self.helper_for(registry) {
            match helper_get(self.helper_path.as_deref(), &helper, &config_key(registry)) {
                Ok(Some(credential)) => return Some(credential),
                Ok(None) => {}
                Err(problem) => tracing::warn!(helper, registry, "credential helper failed: {problem}"),
            }
        }
        let auths = self.document.get("auths")?.as_object()?;
        let entry = auths
            .iter()
            .find(|(key, _)| normalize_key(key) == normalize_key(&config_key(registry)))
            .map(|(_, v)| v)?;
        entry_credential(entry)
    }

    /// Stores a login for `registry`: through the credential helper when one is configured,
    /// else as a base64 `auth` entry; then writes the file atomically with mode 0600.
    pub fn store(&mut self, registry: &str, username: &str, password: &Secret) -> Result<()> {
        let key = config_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            helper_store(self.helper_path.as_deref(), &helper, &key, username, password)
                .map_err(Error::InvalidInput)?;
            self.save()?;
            return Ok(());
        }
        let raw = format!("{username}:{}", password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        let auths = self
            .document
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(auths) = auths.as_object_mut() {
            auths.retain(|k, _| normalize_key(k) != normalize_key(&key));
            let mut entry = Map::new();
            entry.insert("auth".into(), Value::String(encoded));
            auths.insert(key, Value::Object(entry));
        }
        self.save()
    }

    /// Removes the login for `registry`; `Ok(false)` when there was none.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let key = config_key(registry);
        let mut removed = false;
        if let Some(helper) = self.helper_for(registry) {
            removed |= helper_erase(self.helper_path.as_deref(), &helper, &key).is_ok();
        }
        if let Some(auths) = self.document.get_mut("auths").and_then(Value::as_object_mut) {
            let before = auths.len();
            auths.retain(|k, _| normalize_key(k) != normalize_key(&key));
            removed |= auths.len() != before;
        }
        self.save()?;
        Ok(removed)
    }

    /// The file a save replaces: `config.json` itself, or, when it is a symlink (a dotfiles
    /// manager's), the file it points at (through any chain of links), as Docker writes it, so
    /// the link survives a login.
    fn write_target(&self) -> PathBuf {
        let mut path = self.path.clone();
        // Linux's own limit on links followed; a loop ends here and fails on write.
        for _ in 0..40 {
            let Ok(target) = fs_err::read_link(&path) else {
                break;
            };
            path = match path.parent() {
                Some(dir) if target.is_relative() => dir.join(target),
                _ => target,
            };
        }
        path
    }

    fn save(&self) -> Result<()> {
        let target = self.write_target();
        let dir = target.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json.")
            .tempfile_in(dir)
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("failed to write {}: {e}", self.path.display()))
            })?;
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let text = serde_json::to_string_pretty(&self.document).map_err(std::io::Error::other)?;
        tmp.write_all(text.as_bytes())?;
        tmp.write_all(b"\n")?;
        tmp.as_file().sync_all()?;
        tmp.persist(&target).map_err(|e| {
            std::io::Error::new(
                e.error.kind(),
                format!("failed to replace {}: {}", target.display(), e.error),
            )
        })?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }
}

impl CredentialSource for DockerConfig {
    fn credential(&self, registry: &str) -> Option<Credential> {
        if let Some(known) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(registry) {
            return known.clone();
        }
        // The lookup may run a credential helper (a child process): never under the lock, so
        // a slow helper for one registry does not hold up another.
        let found = self.lookup(registry);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(registry.to_string(), found.clone());
        found
    }

    fn describe(&self, registry: &str) -> String {
        match self.helper_for(registry) {
            Some(helper) => format!(
                "docker-credential-{helper} (configured in {})",
                self.path.display()
            ),
            None => format!("{}", self.path.display()),
        }
    }
}

/// The key a registry's entry has in `config.json`.
pub fn config_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

/// `https://host/v1/` and `host` name the same registry.
fn normalize_key(key: &str) -> String {
    if key == DOCKER_HUB_KEY {
        return key.to_string();
    }
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    match host {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_ascii_lowercase(),
    }
}

fn entry_credential(entry: &Value) -> Option<Credential> {
    if let Some(token) = entry
        .get("identitytoken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Some(Credential::IdentityToken(Secret::new(token)));
    }
    if let Some(auth) = entry
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (username, password) = decoded.split_once(':')?;
        return Some(Credential::Basic {
            username: username.to_string(),
            password: Secret::new(password),
        });
    }
    let username = entry.get("username").and_then(Value::as_str)?;
    let password = entry.get("password").and_then(Value::as_str)?;
    Some(Credential::Basic {
        username: username.to_string(),
        password: Secret::new(password),
    })
}

type SearchPath<'a> = Option<&'a std::ffi::OsStr>;

fn run_helper(
    path: SearchPath<'_>,
    helper: &str,
    action: &str,
    input: &str,
) -> std::result::Result<String, String> {
    let program = format!("docker-credential-{helper}");
    let mut command = Command::new(&program);
    if let Some(path) = path {
        command.env("PATH", path);
    }
    let mut child = command
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("cannot talk to {program}: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{program} failed: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if output.status.success() {
        Ok(stdout)
    } else {
        // Helpers print "credentials not found in native keychain" on stdout; never echo input.
        Err(format!(
            "{program} {action} exited with {}: {stdout}",
            output.status
        ))
    }
}

fn helper_get(
    path: SearchPath<'_>,
    helper: &str,
    server: &str,
) -> std::result::Result<Option<Credential>, String> {
    let out = match run_helper(path, helper, "get", server) {
        Ok(out) => out,
        Err(e) if e.contains("credentials not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    let value: Value =
        serde_json::from_str(&out).map_err(|_| format!("docker-credential-{helper} sent no JSON"))?;
    let username = value.get("Username").and_then(Value::as_str).unwrap_or_default();
    let secret = value.get("Secret").and_then(Value::as_str).unwrap_or_default();
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if username == "<token>" {
        Credential::IdentityToken(Secret::new(secret))
    } else {
        Credential::Basic {
            username: username.to_string(),
            password: Secret::new(secret),
        }
    }))
}

fn helper_store(
    path: SearchPath<'_>,
    helper: &str,
    server: &str,
    username: &str,
    password: &Secret,
) -> std::result::Result<(), String> {
    let input = serde_json::json!({"ServerURL": server, "Username": username, "Secret": password.expose()});
    run_helper(path, helper, "store", &input.to_string()).map(|_| ())
}

fn helper_erase(path: SearchPath<'_>, helper: &str, server: &str) -> std::result::Result<(), String> {
    run_helper(path, helper, "erase", server).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_that_is_a_symlink_is_written_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let dotfiles = dir.path().join("dotfiles");
        fs_err::create_dir_all(&dotfiles).unwrap();
        fs_err::write(
            dotfiles.join("docker.json"),
            r#"{"auths":{"keep.example":{"auth":"a2VlcDpr"}}}"#,
        )
        .unwrap();
        let docker = dir.path().join("docker");
        fs_err::create_dir_all(&docker).unwrap();
        let link = docker.join("config.json");
        fs_err::os::unix::fs::symlink("../dotfiles/docker.json", &link).unwrap();
        let mut config = DockerConfig::load(&link).unwrap();
        config
            .store("reg.example:5000", "me", &Secret::new("pw".to_string()))
            .unwrap();
        assert!(
            fs_err::symlink_metadata(&link).unwrap().file_type().is_symlink(),
            "the link was replaced by a file"
        );
        let written = fs_err::read_to_string(dotfiles.join("docker.json")).unwrap();
        assert!(
            written.contains("reg.example:5000") && written.contains("keep.example"),
            "{written}"
        );
        assert_eq!(
            DockerConfig::load(&link).unwrap().credential("reg.example:5000"),
            Some(Credential::Basic {
                username: "me".into(),
                password: Secret::new("pw".to_string()),
            })
        );
    }

    fn config(json: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs_err::write(&path, json).unwrap();
        let config = DockerConfig::load(&path).unwrap();
        (dir, config)
    }

    #[test]
    fn reads_auth_entries_under_any_key_form() {
        let auth = base64::engine::general_purpose::STANDARD.encode("me:s3cret");
        let (_dir, c) = config(&format!(
            r#"{{"auths":{{"https://127.0.0.1:5000/v1/":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"identitytoken":"tok"}},"ghcr.io":{{"username":"u","password":"p"}}}}}}"#
        ));
        assert_eq!(
            c.credential("127.0.0.1:5000"),
            Some(Credential::Basic {
                username: "me".into(),
                password: Secret::new("s3cret")
            })
        );
        assert_eq!(
            c.credential("docker.io"),
            Some(Credential::IdentityToken(Secret::new("tok")))
        );
        assert!(matches!(c.credential("ghcr.io"), Some(Credential::Basic { .. })));
        assert_eq!(c.credential("unikraft.org"), None);
    }

    #[test]
    fn login_keeps_unknown_fields_and_logout_removes_the_entry() {
        let (dir, mut c) =
            config(r#"{"auths":{},"proxies":{"default":{"httpProxy":"x"}},"psFormat":"table"}"#);
        c.store("127.0.0.1:5000", "me", &Secret::new("pw")).unwrap();
        let text = fs_err::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(text.contains("psFormat") && text.contains("httpProxy"));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs_err::metadata(dir.path().join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let reloaded = DockerConfig::load(dir.path().join("config.json")).unwrap();
        assert!(matches!(
            reloaded.credential("127.0.0.1:5000"),
            Some(Credential::Basic { .. })
        ));
        assert!(c.erase("127.0.0.1:5000").unwrap());
        let reloaded = DockerConfig::load(dir.path().join("config.json")).unwrap();
        assert_eq!(reloaded.credential("127.0.0.1:5000"), None);
    }

    #[test]
    fn credential_helpers_are_asked_by_registry() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        fs_err::create_dir_all(&bin).unwrap();
        let script = bin.join("docker-credential-ukpmtest");
        fs_err::write(
            &script,
            "#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = reg.example:5000 ] && printf '{\"ServerURL\":\"%s\",\"Username\":\"helper-user\",\"Secret\":\"helper-pw\"}' \"$server\" && exit 0\necho 'credentials not found in native keychain'; exit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        fs_err::write(&path, r#"{"credHelpers":{"reg.example:5000":"ukpmtest"}}"#).unwrap();
        let mut c = DockerConfig::load(&path).unwrap();
        let mut paths = vec![bin.clone()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        c.helper_path = Some(std::env::join_paths(paths).unwrap());
        assert_eq!(
            c.credential("reg.example:5000"),
            Some(Credential::Basic {
                username: "helper-user".into(),
                password: Secret::new("helper-pw")
            })
        );
        assert!(
            c.describe("reg.example:5000")
                .contains("docker-credential-ukpmtest")
        );
        assert_eq!(c.credential("other.example"), None);
    }
}
