//! Where registry credentials come from: KraftKit's `config.yaml` and KraftCloud token
//! variables ([`kraftkit`]), the docker `config.json` ([`docker`]), Podman's `auth.json`
//! ([`podman`]), and the chain that asks them in KraftKit's order ([`chain`]).

mod chain;
mod docker;
mod kraftkit;
mod podman;

pub use chain::{CredentialChain, CredentialPaths};
pub use docker::{DockerConfig, config_key};
pub use kraftkit::{
    KRAFTCLOUD_REGISTRY, KRAFTCLOUD_TOKEN_VARS, KRAFTCLOUD_USER_VARS, KraftCloudToken, KraftKitAuth,
    KraftKitConfig,
};
pub use podman::{load_podman_auth, podman_auth_path};
