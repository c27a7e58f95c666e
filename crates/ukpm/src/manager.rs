//! [`PackageManager`]: the one entry point to every operation.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ukpm_registry::{Client, ClientConfig, CredentialSource};

use ukpm_types::Reference;

use crate::catalog::Catalog;
use crate::credentials::{CredentialChain, CredentialPaths, DockerConfig, KraftCloudToken};
use crate::error::{Error, Result};
use crate::package::{Package, Query};
use crate::reporter::{NoReporter, Reporter};
use crate::store::{ImageStore, LocalImageStore};
use crate::transfer::Transfer;

/// The unikernel package manager (KraftKit's `NewOCIManager`): a store plus the operations on it.
///
/// Cheap to clone; every method takes `&self` and may run concurrently with others, in this
/// process or another.
#[derive(Clone)]
pub struct PackageManager {
    store: Arc<dyn ImageStore>,
    reporter: Arc<dyn Reporter>,
    registries: Vec<String>,
    credentials: Option<Arc<dyn CredentialSource>>,
    docker_config: Option<PathBuf>,
    kraftkit_config: Option<PathBuf>,
    client_config: ClientConfig,
    client: Arc<OnceLock<Client>>,
    transfers: Arc<tokio::sync::Semaphore>,
    /// Blobs this process is downloading now: every operation of the manager shares it, so
    /// two pulls needing one blob at once fetch it once.
    in_flight: Arc<crate::inflight::InFlight>,
    concurrency: usize,
}

impl std::fmt::Debug for PackageManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackageManager")
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

/// Builds a [`PackageManager`] (KraftKit's manager options).
#[derive(Default)]
pub struct PackageManagerBuilder {
    store: Option<Arc<dyn ImageStore>>,
    store_dir: Option<PathBuf>,
    reporter: Option<Arc<dyn Reporter>>,
    registries: Vec<String>,
    credentials: Option<Arc<dyn CredentialSource>>,
    docker_config: Option<PathBuf>,
    kraftkit_config: Option<PathBuf>,
    client_config: Option<ClientConfig>,
    concurrency: Option<usize>,
}

impl PackageManagerBuilder {
    /// Keeps packages in the OCI layout at `dir` (created on first write).
    pub fn store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.store_dir = Some(dir.into());
        self
    }

    /// Keeps packages in another store (containerd, or a test double).
    pub fn store(mut self, store: Arc<dyn ImageStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sends progress to `reporter`.
    pub fn reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// The registries a short name (`nginx`) is tried against, in order (KraftKit's
    /// `WithRegistries`); default `unikraft.org`.
    pub fn registries(mut self, registries: Vec<String>) -> Self {
        self.registries = registries;
        self
    }

    /// Where registry credentials come from (KraftKit's `WithAuth`); default: a
    /// [`CredentialChain`] in KraftKit's order (KraftCloud token variables, KraftKit's
    /// `config.yaml`, the docker `config.json`, Podman's `auth.json`), whose `verify_ssl: false`
    /// hosts are added to [`ClientConfig::insecure_tls`]. A source given here replaces all that.
    pub fn credentials(mut self, credentials: Arc<dyn CredentialSource>) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Reads and writes logins in this docker `config.json` instead of the default one.
    pub fn docker_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.docker_config = Some(path.into());
        self
    }

    /// Reads KraftKit's `config.yaml` here instead of [`crate::KraftKitConfig::default_path`].
    pub fn kraftkit_config(mut self, path: impl Into<PathBuf>) -> Self {
        self.kraftkit_config = Some(path.into());
        self
    }

    /// How many blobs move at once in a pull or push (default 4).
    pub fn concurrency(mut self, blobs: usize) -> Self {
        self.concurrency = Some(blobs.max(1));
        self
    }

    /// How to talk to registries: plain-HTTP hosts, extra CAs, retries.
    pub fn client_config(mut self, config: ClientConfig) -> Self {
        self.client_config = Some(config);
        self
    }

    /// The manager; the local store defaults to [`default_store_dir`].
    pub fn build(self) -> Result<PackageManager> {
        let store = match (self.store, self.store_dir) {
            (Some(store), _) => store,
            (None, Some(dir)) => Arc::new(LocalImageStore::new(dir)),
            (None, None) => Arc::new(LocalImageStore::new(default_store_dir()?)),
        };
        let registries = if self.registries.is_empty() {
            vec![ukpm_types::DEFAULT_REGISTRY.to_string()]
        } else {
            self.registries
        };
        let concurrency = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        Ok(PackageManager {
            store,
            reporter: self.reporter.unwrap_or_else(|| Arc::new(NoReporter)),
            registries,
            credentials: self.credentials,
            docker_config: self.docker_config,
            kraftkit_config: self.kraftkit_config,
            client_config: self.client_config.unwrap_or_default(),
            client: Arc::new(OnceLock::new()),
            transfers: Arc::new(tokio::sync::Semaphore::new(concurrency)),
            in_flight: Arc::default(),
            concurrency,
        })
    }
}

/// Blobs moved at once by default: enough to hide round trips, few enough for a 2-core machine.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// `$XDG_DATA_HOME/ukpm/oci`, else `~/.local/share/ukpm/oci`: where packages live by default.
pub fn default_store_dir() -> Result<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(data) = non_empty("XDG_DATA_HOME") {
        return Ok(data.join("ukpm").join("oci"));
    }
    if let Some(home) = non_empty("HOME") {
        return Ok(home.join(".local").join("share").join("ukpm").join("oci"));
    }
    Err(Error::InvalidInput(
        "cannot find a place for the store: set XDG_DATA_HOME or HOME, or give --store".into(),
    ))
}

impl PackageManager {
    /// A builder with the defaults: the local store at [`default_store_dir`], no reporter.
    pub fn builder() -> PackageManagerBuilder {
        PackageManagerBuilder::default()
    }

    /// The store packages live in.
    pub fn store(&self) -> &dyn ImageStore {
        self.store.as_ref()
    }

    pub(crate) fn reporter(&self) -> &dyn Reporter {
        self.reporter.as_ref()
    }

    pub(crate) fn store_arc(&self) -> Arc<dyn ImageStore> {
        self.store.clone()
    }

    /// The same manager over another store (a temp store a rootfs image is pulled into).
    pub(crate) fn with_store(&self, store: Arc<dyn ImageStore>) -> PackageManager {
        PackageManager {
            store,
            ..self.clone()
        }
    }

    pub(crate) fn reporter_arc(&self) -> Arc<dyn Reporter> {
        self.reporter.clone()
    }

    /// The catalog of this manager's store: how every operation finds and reads packages.
    pub fn catalog(&self) -> Catalog {
        Catalog::new(self.store.clone())
    }

    /// Lists the stored packages matching `query`, one per manifest, in store order.
    pub async fn list(&self, query: &Query) -> Result<Vec<Package>> {
        self.catalog().list(query).await
    }

    /// What moving blobs to and from registries needs (made on first use, so local commands
    /// never load TLS roots).
    pub(crate) fn transfer(&self) -> Result<Transfer> {
        Ok(Transfer {
            client: self.client()?,
            store: self.store.clone(),
            reporter: self.reporter.clone(),
            permits: self.transfers.clone(),
            in_flight: self.in_flight.clone(),
        })
    }

    /// How many requests move at once (blobs, and the manifests of an index).
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The registries short names are tried against, in order.
    pub fn registries(&self) -> &[String] {
        &self.registries
    }

    /// Parses a name for a local lookup, resolving a short name against the first registry.
    pub fn parse_name(&self, name: &str) -> Result<Reference> {
        let registry = self
            .registries
            .first()
            .map_or(ukpm_types::DEFAULT_REGISTRY, String::as_str);
        Ok(Reference::parse_with_registry(name, registry)?)
    }

    pub(crate) fn client_config(&self) -> &ClientConfig {
        &self.client_config
    }

    pub(crate) fn docker_config_path(&self) -> Result<PathBuf> {
        self.docker_config
            .clone()
            .or_else(DockerConfig::default_path)
            .ok_or_else(|| {
                Error::InvalidInput("cannot find the docker config: set DOCKER_CONFIG or HOME".into())
            })
    }

    /// The default credential chain: KraftKit's order over the files this manager was given or
    /// their default places.
    fn default_credentials(&self) -> Result<CredentialChain> {
        let mut paths = CredentialPaths::defaults();
        if let Some(path) = &self.docker_config {
            paths.docker_config = Some(path.clone());
        }
        if let Some(path) = &self.kraftkit_config {
            paths.kraftkit_config = Some(path.clone());
        }
        CredentialChain::from_paths(&paths, KraftCloudToken::from_env())
    }

    /// Where the credentials for `registry` come from (a file, a variable, a helper; never the
    /// secret), or every place looked in when none has them: for `ukpm login` to say when
    /// another source takes precedence over the login it saved.
    pub fn credential_origin(&self, registry: &str) -> Result<String> {
        let source: Arc<dyn CredentialSource> = match &self.credentials {
            Some(c) => c.clone(),
            None => Arc::new(self.default_credentials()?),
        };
        Ok(source.describe(registry))
    }

    /// The registry client, made on first use (so local commands never load TLS roots).
    pub(crate) fn client(&self) -> Result<Client> {
        if let Some(client) = self.client.get() {
            return Ok(client.clone());
        }
        let mut config = self.client_config.clone();
        let credentials: Arc<dyn CredentialSource> = match &self.credentials {
            Some(c) => c.clone(),
            None => {
                let chain = self.default_credentials()?;
                for host in chain.insecure_hosts() {
                    if !config.insecure_tls.contains(&host) {
                        config.insecure_tls.push(host);
                    }
                }
                Arc::new(chain)
            }
        };
        let client = Client::new(config, credentials)?;
        Ok(self.client.get_or_init(|| client).clone())
    }

    /// Finishes the store's background work (containerd leases are given back); call it before
    /// the process exits. Dropping the manager without it is safe: leases expire by themselves.
    pub async fn close(&self) -> Result<()> {
        self.store().close().await
    }
}
