//! ukpm, the unikernel package manager, as a library.
//!
//! It packages built unikernels as OCI images in exactly the structure KraftKit writes (an index
//! per name, a manifest per platform, one single-file tar layer each for the kernel and the
//! initrd, kconfig as OS features), keeps them in a content-addressed store that never shows
//! unverified content, and unpacks them safely.
//!
//! Every operation is a method of [`PackageManager`]; the `ukpm` binary only parses arguments,
//! calls them and prints. Operations are async (tokio) and never build a runtime of their own.
//!
//! ```
//! use ukpm::{Architecture, PackOptions, PackageManager, Plat, Query, Target};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let kernel = dir.path().join("kernel");
//! std::fs::write(&kernel, b"UNIKRAFT-KERNEL\n")?;
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! runtime.block_on(async {
//!     let manager = PackageManager::builder().store_dir(dir.path().join("store")).build()?;
//!     let mut target = Target::new(&kernel, Architecture::X86_64, Plat::Qemu);
//!     target.command = vec!["/helloworld".into()];
//!     manager.pack(&target, &PackOptions::new("helloworld".parse()?)).await?;
//!
//!     let packages = manager.list(&Query::default()).await?;
//!     assert_eq!(packages.len(), 1);
//!     assert_eq!(packages[0].reference.to_string(), "unikraft.org/helloworld:latest");
//!     assert_eq!(packages[0].plat_arch(), "qemu/x86_64");
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! This crate must not depend on clap, anyhow or indicatif: presentation belongs to the binary,
//! and progress reaches it through [`Reporter`].

mod archive_io;
mod catalog;
mod copy;
mod credentials;
mod error;
mod fsck;
mod image;
mod inflight;
mod initrd;
mod inspect;
mod kraftfile;
mod listing_cache;
mod login;
mod manager;
mod pack;
mod package;
mod project;
mod pull;
mod push;
mod push_merge;
mod remote_catalog;
mod remote_copy;
mod remote_inspect;
mod remove;
mod reporter;
mod rootfs;
mod sources;
mod store;
mod time;
mod transfer;
mod unpack;

pub use archive_io::{LoadReport, Loaded, SaveReport, Saved};
pub use catalog::{Catalog, Listing, LocalName, Resolved};
pub use copy::{Copied, CopyFailure, CopyReport, copy_between};
pub use credentials::{
    CredentialChain, CredentialPaths, DockerConfig, KRAFTCLOUD_REGISTRY, KRAFTCLOUD_TOKEN_VARS,
    KRAFTCLOUD_USER_VARS, KraftCloudToken, KraftKitAuth, KraftKitConfig, config_key, load_podman_auth,
    podman_auth_path,
};
pub use error::{Error, ErrorKind, Origin, Result};
pub use fsck::FsckOutcome;
pub use image::{Blob, Layer, ManifestBuilder, MergeStrategy, SavedManifest, merge_index};
pub use initrd::EINITRD_KCONFIG;
pub use inspect::{InspectedManifest, Inspection, LayerSummary, ManifestSummary, Source};
pub use kraftfile::{KRAFTFILE_NAMES, Kraftfile, KraftfileTarget, split_shell_words};
pub use manager::{DEFAULT_CONCURRENCY, PackageManager, PackageManagerBuilder, default_store_dir};
pub use pack::{PackOptions, TOOL_VERSION, Target, kconfig_contradictions};
pub use package::{HostPlatform, PULLED_ANNOTATION, Package, Pulled, Query, compare_tags, listing_order};
pub use project::{BUILD_DIR, ProjectOptions, RuntimeTarget};
pub use pull::PullOptions;
pub use push::PushReport;
pub use push_merge::MERGE_INTO_ANNOTATION;
pub use remote_catalog::{LISTING_PAGE_SIZE, RemoteListing, RemoteOptions, default_remote_cache_dir};
pub use remote_copy::{RemoteCopyOptions, RemoteCopyReport};
pub use remote_inspect::Deleted;
pub use reporter::{BlobKind, Direction, NoReporter, Plan, Reporter, Skip, Step, Subject, TransferId};
pub use rootfs::{ROOTFS_IMAGE_REGISTRY, Rootfs};
pub use sources::{SOURCES_KEY, Sources, normalize_source};
#[cfg(feature = "containerd")]
pub use store::ContainerdImageStore;
pub use store::{
    BlobRead, BoxFuture, ContentStore, Expect, ImageStore, KraftKitStore, LocalImageStore, Maintenance,
    MountHints, RangedWrite, RefStore, ResumableWrites, StoreLease, kraftkit_runtime_dir,
};
pub use time::{parse_rfc3339, rfc3339};
pub use ukpm_archive::LayerFile;
pub use ukpm_registry as registry;
pub use ukpm_registry::{ClientConfig, Credential, CredentialSource, Secret};
pub use ukpm_store::{FsckReport, GcReport, Problem, RefEntry, StoreError};
pub use ukpm_types as types;
pub use ukpm_types::{Architecture, Descriptor, Digest, KConfig, Plat, Platform, Reference};
pub use unpack::Unpacked;

#[cfg(test)]
mod tests;
