//! ukpm's OCI distribution client.
//!
//! A thin client on reqwest (rustls, system roots plus optional extra CAs) for the endpoints a
//! package manager needs: ping, manifests (GET/HEAD/PUT, raw bytes kept exactly), blobs
//! (HEAD/GET with size enforcement as the bytes arrive), uploads with cross-repository mounts,
//! tag listing, and OCI 1.1 referrers (the API and its `sha256-<hex>` tag fallback).
//!
//! - **Auth**: anonymous, Basic and Bearer. Credentials are sent only after the registry
//!   challenges, tokens are requested for exactly the scopes a request needs (both repositories
//!   for a mount) and cached per scope set until they expire. When a registry offers several
//!   schemes, Bearer is preferred over Basic. Credential sources (which may run a
//!   `docker-credential-*` program) are asked on the blocking pool. Secrets live in [`Secret`],
//!   whose `Debug` and `Display` print `***`.
//! - **Transport**: HTTPS, except plain HTTP for loopback hosts and hosts named in
//!   [`ClientConfig::plain_http`]. Credentials and tokens go only to the registry's own scheme,
//!   host and port: an upload `Location` or a redirect elsewhere gets no `Authorization`
//!   (reqwest strips it on redirects; the client never adds it to such URLs), and a 401 from
//!   elsewhere is never answered. Bearer tokens are cached per realm, service and scopes.
//! - **Stalls**: every request and body is held to [`ClientConfig::read_timeout`] (no byte for
//!   that long, before the response head, in a body, or no piece of an upload taken) and to
//!   [`ClientConfig::min_rate`]; a stall is [`RegistryError::Stalled`] or
//!   [`RegistryError::TooSlow`], retried like a dropped connection, so an operation always ends.
//! - **Retries**: every request goes through one retry policy: connection errors, stalls, 429
//!   and 502/503/504 are retried with capped exponential backoff, or after what `Retry-After`
//!   asks (seconds or an HTTP date, capped too), rebuilding the request and its body each time.
//! - **Errors**: the registry's error envelope becomes [`ErrorCode`]s.
//!
//! This crate must not depend on the store or on clap: callers decide where bytes go.

mod auth;
mod client;
mod delete;
mod error;
mod listing;
mod ops;
mod pace;
mod referrers;
mod retry;
mod upload;

pub use auth::{Anonymous, Challenge, Credential, CredentialSource, Scope, Secret};
pub use client::{Client, ClientConfig, DEFAULT_MIN_RATE, DEFAULT_READ_TIMEOUT, is_loopback, transport_host};
pub use delete::DeleteOutcome;
pub use error::{ErrorCode, Flow, RegistryError, Result};
pub use listing::{CatalogRefusal, Page};
pub use ops::{BlobDownload, FetchedManifest, MANIFEST_LIMIT};
pub use referrers::referrers_tag;
/// The request body type uploads take, so callers need not depend on reqwest.
pub use reqwest::Body;
pub use upload::PushOutcome;
