//! The archive formats of ukpm: what goes inside an image's layers, and how it comes back out.
//!
//! - [`tar_layer`]: the single-file tar layers KraftKit writes for a kernel or an initrd,
//!   byte-identical to Go's `archive/tar` output, so ukpm's and KraftKit's layers have the same
//!   digests ([`LayerFile`]).
//! - [`cpio`]: a folder turned into a deterministic CPIO newc archive, the initrd format Linux
//!   and Unikraft accept ([`cpio::write_dir`]).
//! - [`extract`]: a tar layer unpacked into a user's folder without ever writing outside it
//!   ([`extract::extract`]): `..` names, escaping links, writes through symlinks, device nodes
//!   and fifos are refused; every tar dialect GNU tar reads (GNU and PAX long names, PAX
//!   records checked as Go checks them, sparse files restored with holes), OCI whiteouts
//!   applied, and sizes bounded ([`extract::Options`]: 16 GiB of files per layer, 4 GiB per
//!   sparse file by default).
//! - [`compression`]: gzip and zstd layers decompressed with a bounded expansion ratio
//!   ([`compression::Expansion`]: 1000:1 past the first 16 MiB by default).
//!
//! Each format has its own error type, so a caller can tell a bad initrd folder from a hostile
//! layer.
//!
//! This crate is synchronous and must not depend on tokio, reqwest or clap (CI checks this with
//! `cargo tree`): the async library runs it on blocking threads.

pub mod compression;
pub mod cpio;
pub mod extract;
pub mod tar_layer;

pub use cpio::CpioError;
pub use extract::ExtractError;
pub use tar_layer::{LayerError, LayerFile};
