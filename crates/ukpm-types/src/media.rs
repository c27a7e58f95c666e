//! Media types, annotation keys and well-known paths: each string in exactly one place.

/// OCI media types ukpm writes and reads.
pub mod media_type {
    /// An OCI image index: what a KraftKit tag points at, one entry per platform.
    pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// An OCI image manifest: one unikernel for one platform.
    pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// The OCI image config.
    pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// An uncompressed tar layer: KraftKit's layers are always this, so diff IDs equal digests.
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// A gzip tar layer, accepted on read.
    pub const LAYER_TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// A zstd tar layer, recognised on read so that it is refused by name.
    pub const LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker's manifest list, read for images made by Docker tooling.
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker's image manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker's uncompressed layer.
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker's gzip layer.
    pub const DOCKER_LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    /// KraftKit's rootfs diff type (defined by KraftKit, never written by its packer).
    pub const UNIKRAFT_LAYER: &str = "application/vnd.unikraft.rootfs.diff";
    /// KraftKit's kernel image type (defined, never written).
    pub const UNIKRAFT_IMAGE_KERNEL: &str = "application/vnd.unikraft.image.v1";
    /// A raw initrd blob (written by KraftKit since 2025 as a raw layer).
    pub const UNIKRAFT_INITRD: &str = "application/vnd.unikraft.initrd.v1";
    /// KraftKit's config type (defined, never written).
    pub const UNIKRAFT_CONFIG: &str = "application/vnd.unikraft.config.v1";
    /// A raw kernel blob (KraftKit since 2025).
    pub const UNIKRAFT_KERNEL: &str = "application/vnd.unikraft.kernel.v1";
    /// A raw ROM blob (KraftKit since 2025).
    pub const UNIKRAFT_ROM: &str = "application/vnd.unikraft.rom.v1";
    /// Gzip variant of [`UNIKRAFT_LAYER`].
    pub const UNIKRAFT_LAYER_GZIP: &str = "application/vnd.unikraft.rootfs.diff+gzip";
    /// Gzip variant of [`UNIKRAFT_IMAGE_KERNEL`].
    pub const UNIKRAFT_IMAGE_KERNEL_GZIP: &str = "application/vnd.unikraft.image.v1+gzip";
    /// Gzip variant of [`UNIKRAFT_INITRD`].
    pub const UNIKRAFT_INITRD_GZIP: &str = "application/vnd.unikraft.initrd.v1+gzip";
    /// Gzip variant of [`UNIKRAFT_CONFIG`].
    pub const UNIKRAFT_CONFIG_GZIP: &str = "application/vnd.unikraft.config.v1+gzip";
    /// The prefix of every unikraft media type: an unknown one is refused by name on unpack.
    pub const UNIKRAFT_PREFIX: &str = "application/vnd.unikraft.";
}

/// Annotation keys, unikraft's and the standard ones KraftKit writes.
pub mod annotation {
    /// KraftKit's media-type annotation (defined, never written).
    pub const MEDIA_TYPE: &str = "org.unikraft.mediaType";
    /// The package name, registry-qualified (`unikraft.org/nginx`).
    pub const NAME: &str = "org.unikraft.image.name";
    /// The package version (KraftKit 0.6 wrote the tag here).
    pub const VERSION: &str = "org.unikraft.image.version";
    /// A URL describing the package.
    pub const URL: &str = "org.unikraft.image.url";
    /// Unikraft's creation-time key (defined, never written).
    pub const CREATED: &str = "org.unikraft.image.created";
    /// A description of the package.
    pub const DESCRIPTION: &str = "org.unikraft.image.description";
    /// On a layer descriptor: the path of the kernel inside that layer.
    pub const KERNEL_PATH: &str = "org.unikraft.kernel.image";
    /// On a layer descriptor: the path of the debug kernel inside that layer (KraftKit since 2025).
    pub const KERNEL_DBG_PATH: &str = "org.unikraft.kernel.imagedbg";
    /// On a manifest: the Unikraft kernel version.
    pub const KERNEL_VERSION: &str = "org.unikraft.kernel.version";
    /// On a layer descriptor: the path of the initrd inside that layer.
    pub const KERNEL_INITRD_PATH: &str = "org.unikraft.kernel.initrd";
    /// Prefix for per-option kconfig annotations (defined, never written).
    pub const KERNEL_KCONFIG_PREFIX: &str = "org.unikraft.kernel.kconfig.";
    /// The architecture (defined, never written).
    pub const KERNEL_ARCH: &str = "org.unikraft.kernel.arch";
    /// The platform (defined, never written).
    pub const KERNEL_PLAT: &str = "org.unikraft.kernel.plat";
    /// The filesystem path (defined, never written).
    pub const FILESYSTEM: &str = "org.unikraft.filesystem";
    /// Pattern of per-disk annotations; `%d` is the disk index.
    pub const DISK_INDEX_PATTERN: &str = "org.unikraft.disk-%d";
    /// KraftKit ignores any index, manifest or descriptor without this key, so ukpm always writes it.
    pub const KRAFTKIT_VERSION: &str = "sh.kraftkit.version";
    /// The OCI reference name: the repository in KraftKit's objects, the full reference in a layout's `index.json`.
    pub const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// The OCI creation time.
    pub const OCI_CREATED: &str = "org.opencontainers.image.created";
    /// The OCI revision (KraftKit 0.6 wrote the tag here).
    pub const OCI_REVISION: &str = "org.opencontainers.image.revision";
    /// containerd's image name: the full reference with its tag.
    pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";
}

/// Paths inside a unikernel image.
pub mod well_known {
    /// Where the kernel lives.
    pub const KERNEL: &str = "/unikraft/bin/kernel";
    /// Where the debug kernel lives.
    pub const KERNEL_DBG: &str = "/unikraft/bin/kernel.dbg";
    /// Where the initrd lives.
    pub const INITRD: &str = "/unikraft/bin/initrd";
    /// Where the kernel's `.config` lives (unused by KraftKit's packer).
    pub const CONFIG: &str = "/unikraft/bin/config";
    /// Kernel sources (unused by the packer).
    pub const KERNEL_SOURCE_DIR: &str = "/unikraft/src";
    /// Application sources (unused by the packer).
    pub const APP_SOURCE_DIR: &str = "/unikraft/app";
    /// Where newer KraftKit writes a raw ROM blob on unpack.
    pub const ROM: &str = "/unikraft/bin/rom";
}

/// The package-format name KraftKit registers this manager under.
pub const OCI_FORMAT: &str = "oci";
/// The config file name inside a package (unused by KraftKit's OCI path, kept for completeness).
pub const CONFIG_FILENAME: &str = "config.json";
/// The containerd namespace used when none is given, as in KraftKit.
pub const DEFAULT_CONTAINERD_NAMESPACE: &str = "default";
