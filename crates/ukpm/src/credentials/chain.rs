//! [`CredentialChain`]: every place a KraftKit, docker or Podman user keeps registry logins,
//! asked in KraftKit's order.

use std::path::PathBuf;
use std::sync::Arc;

use ukpm_registry::{Credential, CredentialSource};

use super::docker::DockerConfig;
use super::kraftkit::{KRAFTCLOUD_REGISTRY, KraftCloudToken, KraftKitConfig, host_key};
use super::podman::{load_podman_auth, podman_auth_path};
use crate::error::Result;

/// Credential sources asked in order: the first with a credential for a registry answers.
///
/// The default chain ([`CredentialChain::from_environment`]) is KraftKit's precedence:
/// 1. the KraftCloud token variables (`KRAFTCLOUD_TOKEN`, `KC_TOKEN`, `UNIKRAFTCLOUD_TOKEN`,
///    `UKC_TOKEN`), for `index.unikraft.io` only: KraftKit lets them override everything;
/// 2. KraftKit's `config.yaml` `auth:` (what `kraft login` wrote): KraftKit merges these over
///    the docker ones;
/// 3. the docker `config.json` (with its credential helpers), where `ukpm login` writes;
/// 4. Podman's `auth.json`, which KraftKit reads only when there is no docker config.
///
/// Hosts whose KraftKit entry says `verify_ssl: false` are collected in
/// [`CredentialChain::insecure_hosts`]; no other source turns verification off.
#[derive(Clone, Default)]
pub struct CredentialChain {
    sources: Vec<Arc<dyn CredentialSource>>,
    insecure_hosts: Vec<String>,
}

impl std::fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialChain")
            .field("sources", &self.sources.len())
            .field("insecure_hosts", &self.insecure_hosts)
            .finish()
    }
}

/// Where [`CredentialChain::from_paths`] reads; `None` leaves that source out.
#[derive(Debug, Clone, Default)]
pub struct CredentialPaths {
    /// KraftKit's `config.yaml`.
    pub kraftkit_config: Option<PathBuf>,
    /// The docker `config.json`.
    pub docker_config: Option<PathBuf>,
    /// Podman's `auth.json`.
    pub podman_auth: Option<PathBuf>,
}

impl CredentialPaths {
    /// Every file at its default place ([`KraftKitConfig::default_path`],
    /// [`DockerConfig::default_path`], [`podman_auth_path`]).
    pub fn defaults() -> CredentialPaths {
        CredentialPaths {
            kraftkit_config: KraftKitConfig::default_path(),
            docker_config: DockerConfig::default_path(),
            podman_auth: podman_auth_path(),
        }
    }
}

impl CredentialChain {
    /// An empty chain (every registry anonymous until sources are added).
    pub fn new() -> CredentialChain {
        CredentialChain::default()
    }

    /// Adds `source` after the ones already there (it answers only where they do not).
    pub fn push(mut self, source: Arc<dyn CredentialSource>) -> CredentialChain {
        self.sources.push(source);
        self
    }

    /// Adds KraftKit's `config.yaml`, taking its `verify_ssl: false` hosts too.
    pub fn push_kraftkit(mut self, config: KraftKitConfig) -> CredentialChain {
        for host in config.insecure_hosts() {
            if !self.insecure_hosts.contains(&host) {
                self.insecure_hosts.push(host);
            }
        }
        self.sources.push(Arc::new(config));
        self
    }

    /// The chain in KraftKit's order over `paths` and `kraftcloud` (the token from the
    /// environment, see [`KraftCloudToken::from_env`]).
    pub fn from_paths(
        paths: &CredentialPaths,
        kraftcloud: Option<KraftCloudToken>,
    ) -> Result<CredentialChain> {
        let mut chain = CredentialChain::new();
        if let Some(token) = kraftcloud {
            chain = chain.push(Arc::new(token));
        }
        if let Some(path) = &paths.kraftkit_config {
            chain = chain.push_kraftkit(KraftKitConfig::load(path)?);
        }
        if let Some(path) = &paths.docker_config {
            chain = chain.push(Arc::new(DockerConfig::load(path)?));
        }
        if let Some(path) = &paths.podman_auth
            && Some(path) != paths.docker_config.as_ref()
        {
            chain = chain.push(Arc::new(load_podman_auth(path)?));
        }
        Ok(chain)
    }

    /// The default chain: the KraftCloud variables, then every file at its default place, the
    /// docker `config.json` at `docker_config` when given.
    pub fn from_environment(docker_config: Option<PathBuf>) -> Result<CredentialChain> {
        let mut paths = CredentialPaths::defaults();
        if docker_config.is_some() {
            paths.docker_config = docker_config;
        }
        CredentialChain::from_paths(&paths, KraftCloudToken::from_env())
    }

    /// The hosts whose TLS certificates are not verified (KraftKit entries with
    /// `verify_ssl: false`), as [`ukpm_registry::ClientConfig::insecure_tls`] wants them: each
    /// as written, and for Docker Hub every alias.
    pub fn insecure_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        for host in &self.insecure_hosts {
            if host == "docker.io" {
                hosts.extend(["docker.io", "index.docker.io", "registry-1.docker.io"].map(String::from));
            } else {
                hosts.push(host.clone());
            }
        }
        hosts
    }

    fn answering(&self, registry: &str) -> Option<(&Arc<dyn CredentialSource>, Credential)> {
        self.sources
            .iter()
            .find_map(|s| s.credential(registry).map(|c| (s, c)))
    }
}

impl CredentialSource for CredentialChain {
    fn credential(&self, registry: &str) -> Option<Credential> {
        self.answering(registry).map(|(_, c)| c)
    }

    /// The source that supplies `registry`'s credential (a file, a variable, a helper), or,
    /// when none does, every place that was looked in.
    fn describe(&self, registry: &str) -> String {
        if let Some((source, _)) = self.answering(registry) {
            return source.describe(registry);
        }
        if self.sources.is_empty() {
            return "no credentials".into();
        }
        let mut looked: Vec<String> = self.sources.iter().map(|s| s.describe(registry)).collect();
        // A KraftCloud token for another registry says nothing about this one.
        if host_key(registry) != KRAFTCLOUD_REGISTRY {
            looked.retain(|d| !d.contains(" variable"));
        }
        // Read as "... and A, B or C has none for it" in the registry's refusal.
        match looked.split_last() {
            None => "no credentials".into(),
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use ukpm_registry::Secret;

    use super::*;

    fn basic(user: &str, password: &str) -> Option<Credential> {
        Some(Credential::Basic {
            username: user.into(),
            password: Secret::new(password),
        })
    }

    fn auth(user: &str, password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    }

    #[test]
    fn kraftkits_order_env_then_config_yaml_then_docker_then_podman() {
        let dir = tempfile::tempdir().unwrap();
        let kraftkit = dir.path().join("config.yaml");
        let docker = dir.path().join("config.json");
        let podman = dir.path().join("auth.json");
        fs_err::write(
            &kraftkit,
            "auth:\n  index.unikraft.io: {user: k, token: kk}\n  a.example: {user: k, token: ka}\n  insecure.example:5000: {user: k, token: ki, verify_ssl: false}\n",
        )
        .unwrap();
        fs_err::write(
            &docker,
            format!(
                r#"{{"auths":{{"a.example":{{"auth":"{}"}},"b.example":{{"auth":"{}"}}}}}}"#,
                auth("d", "da"),
                auth("d", "db")
            ),
        )
        .unwrap();
        // Podman's keys may carry a namespace; the host is what counts.
        fs_err::write(
            &podman,
            format!(
                r#"{{"auths":{{"b.example":{{"auth":"{}"}},"c.example/org":{{"auth":"{}"}}}}}}"#,
                auth("p", "pb"),
                auth("p", "pc")
            ),
        )
        .unwrap();
        let paths = CredentialPaths {
            kraftkit_config: Some(kraftkit.clone()),
            docker_config: Some(docker.clone()),
            podman_auth: Some(podman.clone()),
        };
        let token = base64::engine::general_purpose::STANDARD.encode("cloud:ct");
        let env = KraftCloudToken::from_vars(|n| (n == "UKC_TOKEN").then(|| token.clone()));
        let chain = CredentialChain::from_paths(&paths, env).unwrap();

        assert_eq!(chain.credential("index.unikraft.io"), basic("cloud", "ct"));
        assert_eq!(chain.describe("index.unikraft.io"), "the UKC_TOKEN variable");
        assert_eq!(chain.credential("a.example"), basic("k", "ka"));
        assert!(
            chain
                .describe("a.example")
                .contains("config.yaml (auth: a.example)")
        );
        assert_eq!(chain.credential("b.example"), basic("d", "db"));
        assert_eq!(chain.describe("b.example"), docker.display().to_string());
        assert_eq!(chain.credential("c.example"), basic("p", "pc"));
        assert_eq!(chain.describe("c.example"), podman.display().to_string());
        assert_eq!(chain.credential("none.example"), None);
        let none = chain.describe("none.example");
        assert!(
            none.contains("config.yaml") && none.contains("config.json") && none.contains("auth.json"),
            "{none}"
        );
        assert!(!none.contains("UKC_TOKEN"), "{none}");
        assert_eq!(chain.insecure_hosts(), vec!["insecure.example:5000".to_string()]);

        // Without the variable, KraftKit's entry for KraftCloud answers.
        let chain = CredentialChain::from_paths(&paths, None).unwrap();
        assert_eq!(chain.credential("index.unikraft.io"), basic("k", "kk"));
    }

    #[test]
    fn docker_derived_entries_never_turn_verification_off() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("config.json");
        fs_err::write(
            &docker,
            format!(r#"{{"auths":{{"a.example":{{"auth":"{}"}}}}}}"#, auth("d", "da")),
        )
        .unwrap();
        let paths = CredentialPaths {
            docker_config: Some(docker),
            ..CredentialPaths::default()
        };
        let chain = CredentialChain::from_paths(&paths, None).unwrap();
        assert!(chain.credential("a.example").is_some());
        assert!(chain.insecure_hosts().is_empty());
    }

    #[test]
    fn docker_hub_insecure_covers_its_aliases() {
        let config = KraftKitConfig::parse("/k", "auth:\n  index.docker.io: {verify_ssl: false}\n").unwrap();
        let chain = CredentialChain::new().push_kraftkit(config);
        assert!(
            chain
                .insecure_hosts()
                .contains(&"registry-1.docker.io".to_string())
        );
    }
}
