//! The vocabulary of ukpm: the names and documents every other crate speaks in.
//!
//! - [`Reference`]: `unikraft.org/nginx:1.25`, parsed with KraftKit's defaults
//!   (registry `unikraft.org`, tag `latest`, no `library/` prefix).
//! - [`Digest`] and [`Hasher`]: sha256 content addresses, valid by construction, so a path built
//!   from one cannot leave a store.
//! - [`media_type`], [`annotation`], [`well_known`]: every string of the KraftKit format, once.
//! - [`Architecture`], [`Plat`], [`Platform`], [`KConfig`]: what a unikernel runs on, and the
//!   kconfig options that become OS features.
//! - [`limits`]: the size caps of documents read whole.
//! - [`Descriptor`], [`Manifest`], [`Index`], [`ImageConfig`] and [`to_go_json`]: OCI documents
//!   written byte-for-byte as Go writes them, so ukpm and KraftKit agree on digests.
//!
//! This crate is pure and synchronous: it must not depend on any I/O, tokio or HTTP crate, so that
//! everything above it can share it (CI checks this with `cargo tree`).

mod digest;
pub mod limits;
mod media;
mod oci;
mod platform;
mod reference;
mod time;

pub use digest::{Digest, DigestError, Hasher};
pub use media::{
    CONFIG_FILENAME, DEFAULT_CONTAINERD_NAMESPACE, OCI_FORMAT, annotation, media_type, well_known,
};
pub use oci::{
    Annotations, Descriptor, Empty, History, ImageConfig, Index, Manifest, RootFs, RuntimeConfig, to_go_json,
};
pub use platform::{
    Architecture, KConfig, Plat, Platform, PlatformError, compact_sorted, normalize_architecture,
    normalize_plat,
};
pub use reference::{DEFAULT_REGISTRY, DEFAULT_TAG, Reference, ReferenceError, has_registry};
pub use time::{parse_rfc3339, rfc3339};
