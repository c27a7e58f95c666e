//! Logging in and out of registries (`ukpm login`, `ukpm logout`): credentials are checked
//! against the registry before they are saved in the docker `config.json`.

use std::path::PathBuf;
use std::sync::Arc;

use ukpm_registry::{Client, Credential, CredentialSource, Secret};

use crate::credentials::DockerConfig;
use crate::error::Result;
use crate::manager::PackageManager;

impl PackageManager {
    /// Checks `username` and `password` against `registry`, then stores them in the docker
    /// `config.json`; returns that file's path.
    pub async fn login(&self, registry: &str, username: &str, password: Secret) -> Result<PathBuf> {
        let credential = Credential::Basic {
            username: username.to_string(),
            password: password.clone(),
        };
        let client = Client::new(self.client_config().clone(), Arc::new(Given(credential)))?;
        client.ping(registry).await?;
        let path = self.docker_config_path()?;
        let username = username.to_string();
        let registry = registry.to_string();
        // The config file is read, locked and rewritten: blocking work, off the runtime.
        tokio::task::spawn_blocking(move || {
            let mut config = DockerConfig::load(&path)?;
            config.store(&registry, &username, &password)?;
            Ok(path)
        })
        .await?
    }

    /// Removes the stored login for `registry`; `Ok(false)` when there was none.
    pub async fn logout(&self, registry: &str) -> Result<bool> {
        let path = self.docker_config_path()?;
        let registry = registry.to_string();
        tokio::task::spawn_blocking(move || DockerConfig::load(&path)?.erase(&registry)).await?
    }
}

/// The credentials given to `login`, for the one check against the registry.
struct Given(Credential);

impl CredentialSource for Given {
    fn credential(&self, _registry: &str) -> Option<Credential> {
        Some(self.0.clone())
    }

    /// Nothing: the caller gave them, so a refusal names only the user.
    fn describe(&self, _registry: &str) -> String {
        String::new()
    }
}
