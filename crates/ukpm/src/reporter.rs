//! Progress reporting: the library never prints; it tells a [`Reporter`] what it is doing, in
//! typed events, and the front end decides how (or whether) to show it.
//!
//! Events say what is moving (the kernel, the initrd, a config, a manifest, an index) of which
//! package, so a front end can label a bar "kernel" instead of a digest. The reporter mints the
//! ids that tie a transfer's later events to its start, so two managers (or two reporters)
//! never share a counter.

use std::sync::Arc;

use ukpm_types::{Descriptor, Digest, Reference, annotation, media_type, well_known};

/// What a blob is to its package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BlobKind {
    /// The unikernel (`/unikraft/bin/kernel`).
    Kernel,
    /// The kernel with debug symbols.
    KernelDbg,
    /// The initial ramdisk (`/unikraft/bin/initrd`).
    Initrd,
    /// Some other layer (a rootfs, a layer another tool wrote).
    Layer,
    /// The image config.
    Config,
    /// An image manifest.
    Manifest,
    /// An image index.
    Index,
}

impl BlobKind {
    /// What a descriptor is, from its media type and, for layers, the path its annotations name.
    pub fn of(descriptor: &Descriptor) -> BlobKind {
        if descriptor.is_index() {
            return BlobKind::Index;
        }
        if descriptor.is_manifest() {
            return BlobKind::Manifest;
        }
        if descriptor.media_type == media_type::IMAGE_CONFIG {
            return BlobKind::Config;
        }
        let path = [
            annotation::KERNEL_PATH,
            annotation::KERNEL_INITRD_PATH,
            annotation::KERNEL_DBG_PATH,
        ]
        .iter()
        .find_map(|key| descriptor.annotations.get(*key));
        BlobKind::at_path(path.map_or("", String::as_str))
    }

    /// What a file at `path` inside the image is.
    pub fn at_path(path: &str) -> BlobKind {
        let path = path.trim_start_matches('.');
        if path == well_known::KERNEL {
            BlobKind::Kernel
        } else if path == well_known::KERNEL_DBG {
            BlobKind::KernelDbg
        } else if path == well_known::INITRD {
            BlobKind::Initrd
        } else {
            BlobKind::Layer
        }
    }

    /// A short lowercase name for people and `--json` (`kernel`, `initrd`, `config`...).
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Kernel => "kernel",
            BlobKind::KernelDbg => "kernel-dbg",
            BlobKind::Initrd => "initrd",
            BlobKind::Layer => "layer",
            BlobKind::Config => "config",
            BlobKind::Manifest => "manifest",
            BlobKind::Index => "index",
        }
    }
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// From a file into the store (packing).
    Write,
    /// From a registry into the store.
    Download,
    /// From the store to a registry.
    Upload,
    /// From the store into a folder (unpacking a layer).
    Unpack,
}

impl Direction {
    /// A short lowercase name for `--json` (`write`, `download`, `upload`, `unpack`).
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Write => "write",
            Direction::Download => "download",
            Direction::Upload => "upload",
            Direction::Unpack => "unpack",
        }
    }
}

/// A blob being moved: what it is, of which package, how big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The package it belongs to.
    pub reference: Reference,
    /// What it is to that package.
    pub kind: BlobKind,
    /// Its digest, when known before it is written (not while packing).
    pub digest: Option<Digest>,
    /// Its size, when known.
    pub size: Option<u64>,
    /// Which way it goes.
    pub direction: Direction,
}

impl Subject {
    /// A blob a registry and the store both know by its descriptor.
    pub fn of(reference: &Reference, descriptor: &Descriptor, direction: Direction) -> Subject {
        Subject {
            reference: reference.clone(),
            kind: BlobKind::of(descriptor),
            digest: Some(descriptor.digest),
            size: Some(descriptor.size),
            direction,
        }
    }
}

/// What an operation is about to handle, announced as soon as it is known (a pull knows once a
/// manifest is read), so that a front end can show a total and an ETA for the whole operation
/// rather than for one blob at a time. An operation over several manifests announces one plan
/// per manifest; a blob two plans name is still handled once, so a front end counts each
/// digest once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Plan {
    /// The package the blobs belong to.
    pub reference: Reference,
    /// Which way they go.
    pub direction: Direction,
    /// Each blob's digest and size. Some may turn out to need no transfer (a skip event says
    /// so later) or to be partly there already (a resume event says how much).
    pub blobs: Vec<(Digest, u64)>,
}

impl Plan {
    /// The plan to move `blobs` of `reference` in `direction`.
    pub fn of<'a>(
        reference: &Reference,
        direction: Direction,
        blobs: impl IntoIterator<Item = &'a Descriptor>,
    ) -> Plan {
        Plan {
            reference: reference.clone(),
            direction,
            blobs: blobs.into_iter().map(|d| (d.digest, d.size)).collect(),
        }
    }

    /// The bytes the plan names.
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|(_, size)| size).sum()
    }
}

/// Why a blob needed no transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// The store already has it.
    InStore,
    /// The registry already has it.
    InRegistry,
    /// The registry mounted it from another of its repositories.
    Mounted {
        /// The repository it came from.
        from: String,
    },
}

/// A long operation beginning.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Packing a target into a package.
    Pack {
        /// The package written.
        reference: Reference,
        /// `plat/arch`.
        platform: String,
    },
    /// Pulling a reference.
    Pull {
        /// What is pulled.
        reference: Reference,
    },
    /// Pushing a package.
    Push {
        /// The package in the store.
        source: Reference,
        /// Where it goes.
        target: Reference,
    },
    /// Copying a package from one registry reference to another.
    Copy {
        /// Where it comes from.
        source: Reference,
        /// Where it goes.
        target: Reference,
    },
    /// Making the initrd from a rootfs (which image and manifest were chosen), or leaving it
    /// out (the kconfig embeds it in the kernel).
    Rootfs {
        /// The rootfs, as classified (`image alpine:3.19`, `folder ./rootfs`).
        rootfs: String,
        /// What was done: the platform and manifest chosen, or why no initrd layer is written.
        detail: String,
    },
    /// Unpacking a package into a folder.
    Unpack {
        /// The package.
        reference: Reference,
        /// `plat/arch`.
        platform: String,
        /// The folder.
        dir: std::path::PathBuf,
    },
}

/// Identifies one transfer in a reporter's later events; minted by the reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransferId(pub u64);

/// Receives progress from long operations. Every method but the id-minting one has a
/// do-nothing default, so a reporter implements only what it shows.
pub trait Reporter: Send + Sync {
    /// A step has begun.
    fn on_step(&self, step: &Step) {
        let _ = step;
    }

    /// A blob transfer or write has begun; the returned id names it in later calls. A reporter
    /// that shows transfers mints a fresh id each time.
    fn on_transfer_start(&self, subject: &Subject) -> TransferId {
        let _ = subject;
        TransferId::default()
    }

    /// An operation announces the blobs it is about to handle (see [`Plan`]).
    fn on_plan(&self, plan: &Plan) {
        let _ = plan;
    }

    /// The transfer continues from byte `from`, which an earlier run (or attempt) already
    /// moved: those bytes count as done, but a front end must not count them as moved now (a
    /// rate over them would be a lie). `from` may be lower than the progress reported so far:
    /// the transfer started over (0: what an earlier run left did not verify), and the bytes
    /// past it move again.
    fn on_transfer_resumed(&self, id: TransferId, from: u64) {
        let _ = (id, from);
    }

    /// The running total of bytes handled.
    fn on_transfer_progress(&self, id: TransferId, done: u64) {
        let _ = (id, done);
    }

    /// The transfer is over (done, or given up: the operation's result says which).
    fn on_transfer_complete(&self, id: TransferId) {
        let _ = id;
    }

    /// The transfer is over and failed; the operation's error says why. By default it is
    /// reported as [`Reporter::on_transfer_complete`].
    fn on_transfer_failed(&self, id: TransferId) {
        self.on_transfer_complete(id);
    }

    /// A blob needed no transfer.
    fn on_transfer_skipped(&self, subject: &Subject, why: &Skip) {
        let _ = (subject, why);
    }
}

/// A reporter that shows nothing, for library users who do not want progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {}

/// A reader that reports the bytes read through it as one transfer: started when it is made,
/// complete when it is dropped after reading its whole size without an error, failed when
/// dropped earlier (an extraction that stopped half-way).
pub(crate) struct ReportedRead<R> {
    inner: R,
    reporter: Arc<dyn Reporter>,
    id: TransferId,
    done: u64,
    size: Option<u64>,
    failed: bool,
}

impl<R> ReportedRead<R> {
    /// Starts the transfer of `subject`, read from `inner`.
    pub(crate) fn start(reporter: Arc<dyn Reporter>, subject: &Subject, inner: R) -> ReportedRead<R> {
        ReportedRead {
            id: reporter.on_transfer_start(subject),
            inner,
            reporter,
            done: 0,
            size: subject.size,
            failed: false,
        }
    }
}

impl<R: std::io::Read> std::io::Read for ReportedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if n > 0 {
                    self.done += n as u64;
                    self.reporter.on_transfer_progress(self.id, self.done);
                }
                Ok(n)
            }
            Err(err) => {
                self.failed = true;
                Err(err)
            }
        }
    }
}

impl<R> Drop for ReportedRead<R> {
    fn drop(&mut self) {
        if self.failed || self.size.is_some_and(|size| self.done < size) {
            self.reporter.on_transfer_failed(self.id);
        } else {
            self.reporter.on_transfer_complete(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_paths_and_media_types() {
        assert_eq!(BlobKind::at_path("/unikraft/bin/kernel"), BlobKind::Kernel);
        assert_eq!(BlobKind::at_path("./unikraft/bin/initrd"), BlobKind::Initrd);
        assert_eq!(BlobKind::at_path("/usr/lib/libc.so"), BlobKind::Layer);
        let digest = Digest::of(b"x");
        let config = Descriptor::new(media_type::IMAGE_CONFIG, digest, 1);
        assert_eq!(BlobKind::of(&config), BlobKind::Config);
        let index = Descriptor::new(media_type::IMAGE_INDEX, digest, 1);
        assert_eq!(BlobKind::of(&index), BlobKind::Index);
        let mut layer = Descriptor::new(media_type::LAYER_TAR, digest, 1);
        layer
            .annotations
            .insert(annotation::KERNEL_PATH.into(), "/unikraft/bin/kernel".into());
        assert_eq!(BlobKind::of(&layer), BlobKind::Kernel);
    }
}
