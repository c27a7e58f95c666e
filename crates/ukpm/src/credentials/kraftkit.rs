//! Credentials KraftKit keeps: the `auth:` section of its `config.yaml` (written by
//! `kraft login`) and the KraftCloud token variables.
//!
//! `config.yaml` lives in `$KRAFTKIT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/kraftkit`, else
//! `~/.config/kraftkit` (KraftKit's `ConfigDir`). Its `auth:` maps a registry host to
//! `{user, token, endpoint, verify_ssl}`; KraftKit hands `user`/`token` to the registry as Basic
//! credentials (exchanged for a bearer token where the registry wants one), and `verify_ssl:
//! false` turns certificate verification off for that host.
//!
//! Where ukpm differs, on purpose: an entry without `verify_ssl` is verified (KraftKit's zero
//! value would turn TLS verification off silently), and keys are matched by host whatever form
//! they were written in (`https://host/`, `HOST` in capitals), where KraftKit needs the exact
//! string.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_norway::Value;
use ukpm_registry::{Credential, CredentialSource, Secret};

use crate::error::{Error, Result};

/// The registry the KraftCloud token is for (KraftKit's `config/kraftcloud.go`).
pub const KRAFTCLOUD_REGISTRY: &str = "index.unikraft.io";

/// The token variables, in the order KraftKit reads them (the first set one wins).
pub const KRAFTCLOUD_TOKEN_VARS: [&str; 4] =
    ["KRAFTCLOUD_TOKEN", "KC_TOKEN", "UNIKRAFTCLOUD_TOKEN", "UKC_TOKEN"];

/// The user variables, read only when the token is a bare token rather than KraftKit's base64
/// `user:token` (an extension: KraftKit refuses such a token).
pub const KRAFTCLOUD_USER_VARS: [&str; 2] = ["UKC_USER", "KRAFTCLOUD_USER"];

/// One `auth:` entry of KraftKit's `config.yaml`.
#[derive(Clone, PartialEq, Eq)]
pub struct KraftKitAuth {
    /// `user`; empty when the entry has none (the token is then sent with an empty user name,
    /// as KraftKit does).
    pub user: String,
    /// `token`, the password.
    pub token: Secret,
    /// `endpoint`, informational (KraftKit writes the host there).
    pub endpoint: Option<String>,
    /// `verify_ssl`; `true` unless the entry says `false`.
    pub verify_ssl: bool,
}

impl std::fmt::Debug for KraftKitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KraftKitAuth")
            .field("user", &self.user)
            .field("endpoint", &self.endpoint)
            .field("verify_ssl", &self.verify_ssl)
            .finish_non_exhaustive()
    }
}

/// KraftKit's `config.yaml` as a credential source: so a `kraft login` works for ukpm too.
#[derive(Debug, Clone)]
pub struct KraftKitConfig {
    path: PathBuf,
    /// Normalised host -> (the key as written, the entry).
    entries: BTreeMap<String, (String, KraftKitAuth)>,
}

impl KraftKitConfig {
    /// `$KRAFTKIT_CONFIG_DIR/config.yaml`, else `$XDG_CONFIG_HOME/kraftkit/config.yaml`, else
    /// `~/.config/kraftkit/config.yaml`: where KraftKit reads its settings.
    pub fn default_path() -> Option<PathBuf> {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let dir = non_empty("KRAFTKIT_CONFIG_DIR")
            .or_else(|| non_empty("XDG_CONFIG_HOME").map(|d| d.join("kraftkit")))
            .or_else(|| non_empty("HOME").map(|h| h.join(".config").join("kraftkit")))?;
        Some(dir.join("config.yaml"))
    }

    /// Loads the file at `path`; a missing file is a configuration without entries.
    pub fn load(path: impl Into<PathBuf>) -> Result<KraftKitConfig> {
        let path = path.into();
        match fs_err::read_to_string(&path) {
            Ok(text) => KraftKitConfig::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KraftKitConfig {
                path,
                entries: BTreeMap::new(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Parses `text` as the `config.yaml` at `path`. Settings other than `auth:` are ignored;
    /// an `auth:` that is not a map of hosts to entries is an error naming the file and the host
    /// (never a value: the file holds secrets).
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<KraftKitConfig> {
        let path = path.into();
        let bad = |what: String| Error::InvalidInput(format!("{}: {what}", path.display()));
        let document: Value = serde_norway::from_str(text).map_err(|e| {
            // The parser's message may quote the text (a token); say only where it broke.
            bad(match e.location() {
                Some(at) => format!("not valid YAML (line {}, column {})", at.line(), at.column()),
                None => "not valid YAML".into(),
            })
        })?;
        let mut entries = BTreeMap::new();
        let auth = match &document {
            Value::Null => None,
            Value::Mapping(top) => top.get("auth"),
            _ => return Err(bad("not a KraftKit config (a YAML map)".into())),
        };
        match auth {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(hosts)) => {
                for (key, entry) in hosts {
                    let Some(key) = scalar(key) else {
                        return Err(bad("an `auth:` key is not a host name".into()));
                    };
                    let entry =
                        parse_entry(entry).map_err(|what| bad(format!("auth entry {key:?}: {what}")))?;
                    entries.insert(host_key(&key), (key, entry));
                }
            }
            Some(_) => return Err(bad("`auth:` is not a map of registry hosts".into())),
        }
        Ok(KraftKitConfig { path, entries })
    }

    /// The file this configuration lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry for `registry`, if any.
    pub fn entry(&self, registry: &str) -> Option<&KraftKitAuth> {
        self.entries.get(&host_key(registry)).map(|(_, e)| e)
    }

    /// The hosts whose entry says `verify_ssl: false`: their TLS certificates are not verified.
    pub fn insecure_hosts(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, (_, e))| !e.verify_ssl)
            .map(|(host, _)| host.clone())
            .collect()
    }
}

impl CredentialSource for KraftKitConfig {
    fn credential(&self, registry: &str) -> Option<Credential> {
        let entry = self.entry(registry)?;
        if entry.user.is_empty() && entry.token.expose().is_empty() {
            return None;
        }
        Some(Credential::Basic {
            username: entry.user.clone(),
            password: entry.token.clone(),
        })
    }

    fn describe(&self, registry: &str) -> String {
        match self.entries.get(&host_key(registry)) {
            Some((key, _)) => format!("{} (auth: {key})", self.path.display()),
            None => format!("{}", self.path.display()),
        }
    }
}

/// A scalar YAML value as text (KraftKit's YAML decoder turns numbers and booleans into the
/// string fields it expects too).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_entry(entry: &Value) -> std::result::Result<KraftKitAuth, String> {
    let map = match entry {
        Value::Mapping(map) => map,
        Value::Null => {
            return Ok(KraftKitAuth {
                user: String::new(),
                token: Secret::new(""),
                endpoint: None,
                verify_ssl: true,
            });
        }
        _ => return Err("not a map of user, token, endpoint, verify_ssl".into()),
    };
    let text = |field: &str| -> std::result::Result<Option<String>, String> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => scalar(v)
                .map(Some)
                .ok_or_else(|| format!("`{field}` is not a string")),
        }
    };
    let verify_ssl = match map.get("verify_ssl") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        // yaml.v3, KraftKit's decoder, still takes YAML 1.1's words for a boolean field.
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "on" => true,
            "false" | "no" | "n" | "off" => false,
            _ => return Err("`verify_ssl` is not true or false".into()),
        },
        Some(_) => return Err("`verify_ssl` is not true or false".into()),
    };
    Ok(KraftKitAuth {
        user: text("user")?.unwrap_or_default(),
        token: Secret::new(text("token")?.unwrap_or_default()),
        endpoint: text("endpoint")?.filter(|e| !e.is_empty()),
        verify_ssl,
    })
}

/// The host a key or registry names: scheme and path dropped, lower case, Docker Hub's aliases
/// as one (`https://index.docker.io/v1/`, `docker.io` and `registry-1.docker.io` are one host).
pub(crate) fn host_key(key: &str) -> String {
    let key = key.trim();
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    }
}

/// The KraftCloud token from the environment, for [`KRAFTCLOUD_REGISTRY`] only.
#[derive(Clone)]
pub struct KraftCloudToken {
    /// The variable the token came from, for messages.
    variable: &'static str,
    /// The credential, or why the token could not be used.
    credential: std::result::Result<Credential, String>,
}

impl std::fmt::Debug for KraftCloudToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KraftCloudToken")
            .field("variable", &self.variable)
            .finish_non_exhaustive()
    }
}

impl KraftCloudToken {
    /// The token from the process environment, if one of [`KRAFTCLOUD_TOKEN_VARS`] is set.
    pub fn from_env() -> Option<KraftCloudToken> {
        KraftCloudToken::from_vars(|name| std::env::var(name).ok())
    }

    /// The token from `var` (a variable's value by name): the first non-empty of
    /// [`KRAFTCLOUD_TOKEN_VARS`]. KraftKit's form is base64 of `user:token`; a token that is not
    /// takes its user from [`KRAFTCLOUD_USER_VARS`].
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Option<KraftCloudToken> {
        let (variable, value) = KRAFTCLOUD_TOKEN_VARS
            .iter()
            .find_map(|name| var(name).filter(|v| !v.is_empty()).map(|v| (*name, v)))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let credential = match decoded.as_deref().and_then(|d| d.split_once(':')) {
            Some((user, token)) if !token.is_empty() => Ok(Credential::Basic {
                username: user.to_string(),
                password: Secret::new(token),
            }),
            _ => match KRAFTCLOUD_USER_VARS
                .iter()
                .find_map(|name| var(name).filter(|v| !v.is_empty()))
            {
                Some(user) => Ok(Credential::Basic {
                    username: user,
                    password: Secret::new(value.trim()),
                }),
                None => Err(format!(
                    "{variable} is not base64 of user:token, and neither {} is set",
                    KRAFTCLOUD_USER_VARS.join(" nor ")
                )),
            },
        };
        Some(KraftCloudToken { variable, credential })
    }

    /// The variable the token was read from.
    pub fn variable(&self) -> &'static str {
        self.variable
    }

    /// Why the token cannot be used, when it cannot (never the token itself).
    pub fn problem(&self) -> Option<&str> {
        self.credential.as_ref().err().map(String::as_str)
    }
}

impl CredentialSource for KraftCloudToken {
    fn credential(&self, registry: &str) -> Option<Credential> {
        if host_key(registry) != KRAFTCLOUD_REGISTRY {
            return None;
        }
        self.credential.as_ref().ok().cloned()
    }

    fn describe(&self, _registry: &str) -> String {
        match &self.credential {
            Ok(_) => format!("the {} variable", self.variable),
            Err(problem) => format!("the {} variable (unusable: {problem})", self.variable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> KraftKitConfig {
        KraftKitConfig::parse("/k/config.yaml", text).unwrap()
    }

    fn basic(user: &str, password: &str) -> Option<Credential> {
        Some(Credential::Basic {
            username: user.into(),
            password: Secret::new(password),
        })
    }

    #[test]
    fn an_entry_written_by_kraft_login_is_read() {
        let c = parse(
            "no_prompt: false\nauth:\n  ghcr.io:\n    user: me\n    token: s3cret\n    endpoint: ghcr.io\n    verify_ssl: true\nruntime_dir: /x\n",
        );
        assert_eq!(c.credential("ghcr.io"), basic("me", "s3cret"));
        assert_eq!(c.credential("quay.io"), None);
        assert!(c.insecure_hosts().is_empty());
        assert_eq!(c.describe("ghcr.io"), "/k/config.yaml (auth: ghcr.io)");
    }

    #[test]
    fn many_shapes() {
        // Flow style, quoted keys and values, a port, a URL key, numbers, no user.
        let c = parse(
            "auth: {\"127.0.0.1:5000\": {user: u, token: \"p:w\"}, 'https://Reg.Example/v2/': {token: 12345}, index.docker.io: {user: d, token: t}}\n",
        );
        assert_eq!(c.credential("127.0.0.1:5000"), basic("u", "p:w"));
        assert_eq!(c.credential("reg.example"), basic("", "12345"));
        assert_eq!(c.credential("docker.io"), basic("d", "t"));
        assert_eq!(c.credential("registry-1.docker.io"), basic("d", "t"));
        // Empty and null documents and sections.
        for empty in [
            "",
            "---\n",
            "auth:\n",
            "auth: {}\n",
            "auth: null\n",
            "no_prompt: true\n",
        ] {
            assert!(parse(empty).entries.is_empty(), "{empty:?}");
        }
        // An entry with neither user nor token gives no credential but keeps its TLS setting.
        let c = parse("auth:\n  reg.example:\n    verify_ssl: false\n  null.example:\n");
        assert_eq!(c.credential("reg.example"), None);
        assert_eq!(c.credential("null.example"), None);
        assert_eq!(c.insecure_hosts(), vec!["reg.example".to_string()]);
    }

    #[test]
    fn verify_ssl_false_only_when_said() {
        let c = parse(
            "auth:\n  a.example: {user: u, token: t}\n  b.example: {user: u, token: t, verify_ssl: false}\n  c.example: {user: u, token: t, verify_ssl: \"no\"}\n  d.example: {user: u, token: t, verify_ssl: yes}\n",
        );
        assert_eq!(
            c.insecure_hosts(),
            vec!["b.example".to_string(), "c.example".to_string()]
        );
        assert!(
            c.entry("a.example").unwrap().verify_ssl,
            "a missing verify_ssl verifies"
        );
    }

    #[test]
    fn bad_files_are_named_and_never_quote_a_secret() {
        for text in [
            "auth:\n  reg.example:\n    token: [hunter2]\n",
            "auth:\n  reg.example:\n    verify_ssl: hunter2\n",
            "auth: hunter2\n",
            "auth:\n  reg.example: hunter2\n",
            "hunter2",
            "auth:\n  reg.example: {token: \"hunter2\n",
            "auth:\n\t- hunter2: [\n",
        ] {
            let err = KraftKitConfig::parse("/k/config.yaml", text)
                .unwrap_err()
                .to_string();
            assert!(err.contains("/k/config.yaml"), "{err}");
            assert!(!err.contains("hunter2"), "the secret leaked: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let c = KraftKitConfig::load(dir.path().join("config.yaml")).unwrap();
        assert_eq!(c.credential("ghcr.io"), None);
    }

    #[test]
    fn kraftcloud_token_forms_and_order() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:tok");
        let vars = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
        };
        let s = |v: &str| v.to_string();
        let t = KraftCloudToken::from_vars(vars(vec![("UKC_TOKEN", s("ignored")), ("KC_TOKEN", encoded)]))
            .unwrap();
        assert_eq!(
            t.variable(),
            "KC_TOKEN",
            "KraftKit's order: KC_TOKEN before UKC_TOKEN"
        );
        assert_eq!(t.credential("index.unikraft.io"), basic("alice", "tok"));
        assert_eq!(t.credential("unikraft.org"), None, "only for index.unikraft.io");
        assert_eq!(t.describe("index.unikraft.io"), "the KC_TOKEN variable");

        let t =
            KraftCloudToken::from_vars(vars(vec![("UKC_TOKEN", s("bare")), ("UKC_USER", s("bob"))])).unwrap();
        assert_eq!(t.credential("index.unikraft.io"), basic("bob", "bare"));

        let t = KraftCloudToken::from_vars(vars(vec![("UKC_TOKEN", s("bare-secret"))])).unwrap();
        assert_eq!(t.credential("index.unikraft.io"), None);
        assert!(t.problem().is_some());
        assert!(!t.describe("index.unikraft.io").contains("bare-secret"));

        assert!(KraftCloudToken::from_vars(vars(vec![("UKC_TOKEN", s(""))])).is_none());
    }
}
