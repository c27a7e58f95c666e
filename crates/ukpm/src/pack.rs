//! Packing a built unikernel (KraftKit's `NewPackageFromTarget`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ukpm_types::{
    Annotations, Architecture, Descriptor, ImageConfig, Index, KConfig, Plat, Reference, annotation,
    media_type, to_go_json, well_known,
};

use crate::error::{Error, Result};
use crate::image::{Layer, ManifestBuilder, MergeStrategy, merge_index};
use crate::manager::PackageManager;
use crate::package::Package;
use crate::reporter::Step;
use crate::rootfs::Rootfs;
use crate::store::Expect;
use crate::time;

/// The value ukpm writes under `sh.kraftkit.version`, the key KraftKit requires to see a package.
pub const TOOL_VERSION: &str = concat!("ukpm ", env!("CARGO_PKG_VERSION"));

/// A built unikernel: what to pack (KraftKit's `target.Target`).
#[derive(Debug, Clone)]
pub struct Target {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The unstripped kernel, packed at `/unikraft/bin/kernel.dbg` when given.
    pub kernel_dbg: Option<PathBuf>,
    /// The CPU architecture.
    pub architecture: Architecture,
    /// The platform it boots on.
    pub platform: Plat,
    /// The kernel's `.config`, whose entries become OS features.
    pub kconfig: Option<PathBuf>,
    /// The root filesystem, packed as the initrd (KraftKit's `--rootfs`): a file as it is, a
    /// folder or an image flattened into a CPIO newc archive; see [`Rootfs::classify`]. Left
    /// out when the kconfig embeds the initrd in the kernel ([`crate::EINITRD_KCONFIG`]).
    pub initrd: Option<Rootfs>,
    /// The unikernel's arguments.
    pub command: Vec<String>,
}

impl Target {
    /// A target with just the required parts.
    pub fn new(kernel: impl Into<PathBuf>, architecture: Architecture, platform: Plat) -> Target {
        Target {
            kernel: kernel.into(),
            kernel_dbg: None,
            architecture,
            platform,
            kconfig: None,
            initrd: None,
            command: Vec::new(),
        }
    }
}

/// How to pack: the name and what goes around the target (KraftKit's pack options).
#[derive(Debug, Clone)]
pub struct PackOptions {
    /// The package's reference (`unikraft.org/helloworld:latest`).
    pub reference: Reference,
    /// Environment for the config, `K=V`, in order.
    pub env: Vec<String>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Extra manifest annotations; they override ukpm's defaults (even `sh.kraftkit.version`).
    pub annotations: BTreeMap<String, String>,
    /// The kernel version; else `CONFIG_UK_FULLVERSION` from the kconfig.
    pub kernel_version: Option<String>,
    /// Whether kconfig entries become OS features (KraftKit's default: yes).
    pub pack_kconfig: bool,
    /// What to do when the name already has a manifest for this platform.
    pub strategy: MergeStrategy,
    /// `org.opencontainers.image.created`; by default written only when `SOURCE_DATE_EPOCH` is
    /// set, so packing is reproducible.
    pub created: Option<String>,
    /// Gzip the initrd (KraftKit's `--compress`); a file that is gzip already stays as it is.
    pub compress_initrd: bool,
}

impl PackOptions {
    /// Options with KraftKit's defaults for `reference`.
    pub fn new(reference: Reference) -> PackOptions {
        PackOptions {
            reference,
            env: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            kernel_version: None,
            pack_kconfig: true,
            strategy: MergeStrategy::Merge,
            created: None,
            compress_initrd: false,
        }
    }
}

/// What a package packed on a runtime takes from it: the runtime's layers and config.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeBase {
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) config: ImageConfig,
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// Whether a layer is an initrd (by its annotation, or its path in newer KraftKit's blobs).
fn is_initrd_layer(layer: &Descriptor) -> bool {
    layer.annotations.contains_key(annotation::KERNEL_INITRD_PATH) || layer.media_type.contains("initrd")
}

/// The kconfig keys that say which architecture a kernel was built for.
const ARCH_KEYS: &[&str] = &["CONFIG_ARCH_X86_64", "CONFIG_ARCH_ARM_64", "CONFIG_ARCH_ARM_32"];
/// The kconfig keys that say which platform, and which KVM monitor, a kernel was built for.
const PLAT_KEYS: &[&[&str]] = &[
    &["CONFIG_PLAT_KVM", "CONFIG_PLAT_XEN", "CONFIG_PLAT_LINUXU"],
    &["CONFIG_KVM_VMM_QEMU", "CONFIG_KVM_VMM_FIRECRACKER"],
];

/// Where `--arch`/`--plat` contradict a kernel's kconfig: one sentence per contradiction,
/// naming the keys the kconfig sets instead. Packing goes on (KraftKit packs whatever it is
/// told), but the package would then claim both (the implied keys are added), and a kernel
/// built for another machine would be chosen for this one: the user must hear of it.
///
/// A family of keys contradicts only when the kconfig sets one of them to `y` and not the one
/// `arch`/`plat` imply; a kconfig that says nothing about a family contradicts nothing.
pub fn kconfig_contradictions(kconfig: &KConfig, arch: Architecture, plat: Plat) -> Vec<String> {
    let set = |key: &str| kconfig.get(key) == Some("y");
    let mut out = Vec::new();
    let mut check = |flag: String, family: &[&str], wanted: &[&str]| {
        let wanted: Vec<&str> = wanted.iter().copied().filter(|w| family.contains(w)).collect();
        if wanted.is_empty() || wanted.iter().any(|w| set(w)) {
            return;
        }
        let instead: Vec<String> = family
            .iter()
            .filter(|k| set(k))
            .map(|k| format!("{k}=y"))
            .collect();
        if !instead.is_empty() {
            out.push(format!(
                "{flag} implies {}=y, but the kconfig sets {}",
                wanted.join("=y and "),
                instead.join(" and ")
            ));
        }
    };
    check(format!("--arch {arch}"), ARCH_KEYS, &[arch.kconfig()]);
    for family in PLAT_KEYS {
        check(format!("--plat {plat}"), family, plat.kconfig());
    }
    out
}

/// How many times a pack re-reads and re-merges an index another process changed meanwhile.
const MERGE_ATTEMPTS: usize = 16;

impl PackageManager {
    /// Packs `target` into the store under `options.reference`, merging it into the index that
    /// name already has, and returns the package written.
    pub async fn pack(&self, target: &Target, options: &PackOptions) -> Result<Package> {
        self.pack_target(target, None, options).await
    }

    /// Packs `target`, or, with `base`, the runtime's layers and config with the target's initrd
    /// and command on top (`target.kernel` and `target.kconfig` are then not read).
    pub(crate) async fn pack_target(
        &self,
        target: &Target,
        base: Option<&RuntimeBase>,
        options: &PackOptions,
    ) -> Result<Package> {
        let reference = options.reference.without_digest();
        if options.reference.digest().is_some() {
            return Err(Error::InvalidInput(format!(
                "cannot pack into {}: a package name takes a tag, not a digest",
                options.reference
            )));
        }
        for env in &options.env {
            if !env.contains('=') || env.starts_with('=') {
                return Err(Error::InvalidInput(format!(
                    "environment entry `{env}` is not K=V"
                )));
            }
        }
        // Check every input before writing anything.
        let kernel = match base {
            Some(_) => None,
            None => Some(
                Layer::from_file(&target.kernel, well_known::KERNEL, "kernel")?
                    .with_annotation(annotation::KERNEL_PATH, well_known::KERNEL),
            ),
        };
        let kernel_dbg = match &target.kernel_dbg {
            Some(path) => Some(Layer::from_file(path, well_known::KERNEL_DBG, "debug kernel")?),
            None => None,
        };
        let kconfig = match (&target.kconfig, base) {
            (Some(path), None) => {
                crate::image::input_metadata(path, "kconfig file")?;
                let text = fs_err::read_to_string(path).map_err(|source| Error::InputFile {
                    what: "kconfig file",
                    path: path.clone(),
                    source,
                })?;
                KConfig::parse(&text).map_err(|source| Error::KConfig {
                    path: path.clone(),
                    source,
                })?
            }
            _ => KConfig::new(),
        };
        let created = match &options.created {
            Some(created) => Some(created.clone()),
            None => time::source_date_epoch()?.map(time::rfc3339),
        };
        // KraftKit builds no rootfs when the kernel embeds it.
        let embedded = crate::initrd::embedded_initrd(&kconfig);
        if let (Some(rootfs), None) = (&target.initrd, embedded) {
            crate::initrd::check(rootfs)?;
        }
        // An image is fetched and flattened before anything is written: a pull that fails
        // leaves the store as it was.
        let mut early_initrd = match (&target.initrd, embedded) {
            (Some(rootfs @ (Rootfs::Image(_) | Rootfs::Layout { .. })), None) => Some(
                self.initrd_layer(rootfs, target.architecture, options.compress_initrd)
                    .await?,
            ),
            _ => None,
        };

        let store = self.store();
        let _lease = store.lease().await?;
        self.reporter().on_step(&Step::Pack {
            reference: reference.clone(),
            platform: format!("{}/{}", target.platform, target.architecture),
        });

        let mut builder = ManifestBuilder::new(target.architecture, target.platform)
            .with_reporter(self.reporter_arc(), reference.clone());
        if let Some(base) = base {
            // KraftKit's runtime packaging: the runtime's config is the new config; its
            // command stays unless the project gives one, the environment is the project's.
            builder.set_runtime_config(base.config.config.clone());
            if let Some(version) = options
                .kernel_version
                .as_deref()
                .or(non_empty(&base.config.os_version))
            {
                builder.set_os_version(version);
            }
            // The runtime's kconfig is its OS features, taken once (KraftKit appended them a
            // second time into the config).
            builder.add_os_features(base.config.os_features.iter().cloned());
            if !target.command.is_empty() {
                builder.set_cmd(target.command.clone());
            }
        } else {
            if let Some(version) = options.kernel_version.as_deref().or(kconfig.full_version()) {
                builder.set_os_version(version);
            }
            if options.pack_kconfig {
                let mut features = kconfig.clone();
                features.add_implied(target.architecture, target.platform);
                builder.add_os_features(features.features());
            }
            builder.set_cmd(target.command.clone());
        }
        builder.set_env(options.env.clone());
        for (k, v) in &options.labels {
            builder.set_label(k, v);
        }

        if options.strategy == MergeStrategy::Abort {
            self.refuse_taken_slot(&reference, &builder.platform()).await?;
        }

        if let Some(kernel) = kernel {
            builder.add_layer(store, kernel).await?;
        }
        if let Some(base) = base {
            // The runtime's layers are reused as they are (same digests: a push finds them in
            // the registry or mounts them); its initrd gives way to the project's.
            for layer in &base.layers {
                if target.initrd.is_some() && embedded.is_none() && is_initrd_layer(layer) {
                    continue;
                }
                builder.add_layer_descriptor(layer.clone());
            }
        }
        if let Some(layer) = kernel_dbg {
            builder.add_layer(store, layer).await?;
        }
        if let Some(rootfs) = &target.initrd {
            if let Some(key) = embedded {
                self.reporter().on_step(&Step::Rootfs {
                    rootfs: rootfs.to_string(),
                    detail: format!(
                        "the kconfig embeds the initrd in the kernel ({key}=y): no initrd layer is packed"
                    ),
                });
            } else {
                let initrd = match early_initrd.take() {
                    Some(initrd) => initrd,
                    None => {
                        self.initrd_layer(rootfs, target.architecture, options.compress_initrd)
                            .await?
                    }
                };
                // An image's command and environment are the defaults (KraftKit's rule).
                if target.command.is_empty() && !initrd.args.is_empty() {
                    builder.set_cmd(initrd.args.clone());
                }
                if options.env.is_empty() && !initrd.env.is_empty() {
                    builder.set_env(initrd.env.clone());
                }
                builder.add_layer(store, initrd.file).await?;
            }
        }

        let name = reference.name();
        builder.set_annotation(annotation::CONTAINERD_IMAGE_NAME, &reference.to_string());
        builder.set_annotation(annotation::OCI_REF_NAME, &name);
        builder.set_annotation(annotation::NAME, &name);
        builder.set_annotation(annotation::KRAFTKIT_VERSION, TOOL_VERSION);
        let version = builder.platform().os_version;
        if !version.is_empty() {
            builder.set_annotation(annotation::KERNEL_VERSION, &version);
        }
        if let Some(created) = &created {
            builder.set_annotation(annotation::OCI_CREATED, created);
        }
        for (k, v) in &options.annotations {
            builder.set_annotation(k, v);
        }
        let mut index_annotations = Annotations::new();
        index_annotations.insert(annotation::CONTAINERD_IMAGE_NAME.into(), reference.to_string());
        index_annotations.insert(annotation::OCI_REF_NAME.into(), name.clone());
        index_annotations.insert(annotation::KRAFTKIT_VERSION.into(), TOOL_VERSION.into());
        for (k, v) in index_annotations.iter_mut() {
            if let Some(user) = options.annotations.get(k) {
                *v = user.clone();
            }
        }

        let saved = builder.save(store).await?;
        let entry = saved.descriptor.clone();
        let ref_name = reference.to_string();
        let local_time = time::rfc3339(time::now_or_epoch()?);
        for _ in 0..MERGE_ATTEMPTS {
            let current = store.refs().await?.into_iter().find(|e| e.name == ref_name);
            let existing = match &current {
                Some(entry) if options.strategy != MergeStrategy::Overwrite => {
                    self.existing_index(&reference, &entry.descriptor).await?
                }
                _ => None,
            };
            let index = merge_index(
                existing,
                entry.clone(),
                options.strategy,
                index_annotations.clone(),
            )
            .map_err(|platform| Error::Conflict {
                reference: reference.clone(),
                platform,
                existing: "another process packed it meanwhile".into(),
            })?;
            let bytes = to_go_json(&index);
            let mut descriptor = Descriptor::for_bytes(media_type::IMAGE_INDEX, &bytes);
            store.put_bytes(bytes).await?;
            descriptor
                .annotations
                .insert(annotation::OCI_CREATED.into(), local_time.clone());
            let expect = match &current {
                Some(entry) => Expect::Digest(entry.descriptor.digest),
                None => Expect::Absent,
            };
            if store
                .set_ref(ref_name.clone(), descriptor.clone(), expect)
                .await?
            {
                return Ok(Package::new(
                    reference,
                    Some(descriptor),
                    saved.descriptor,
                    &saved.manifest,
                    Some(local_time),
                ));
            }
            tracing::debug!(%reference, "index changed while packing; merging again");
        }
        Err(Error::Contended { reference })
    }

    /// The initrd of `rootfs`, reporting which image manifest it was flattened from.
    async fn initrd_layer(
        &self,
        rootfs: &Rootfs,
        arch: ukpm_types::Architecture,
        compress: bool,
    ) -> Result<crate::initrd::PreparedInitrd> {
        let initrd = self.prepare_initrd(rootfs, arch, compress).await?;
        if let Some(chosen) = &initrd.chosen {
            self.reporter().on_step(&Step::Rootfs {
                rootfs: rootfs.to_string(),
                detail: format!("flattened {chosen}"),
            });
        }
        Ok(initrd)
    }

    /// Fails when `reference` already has a manifest for `platform`, before anything is written.
    async fn refuse_taken_slot(&self, reference: &Reference, platform: &ukpm_types::Platform) -> Result<()> {
        let name = reference.to_string();
        let Some(current) = self.store().refs().await?.into_iter().find(|e| e.name == name) else {
            return Ok(());
        };
        if let Some(index) = self.existing_index(reference, &current.descriptor).await?
            && let Some(taken) = index
                .manifests
                .iter()
                .find(|m| m.platform.as_ref().is_some_and(|p| p.same_slot(platform)))
        {
            return Err(Error::Conflict {
                reference: reference.clone(),
                platform: platform.short(),
                existing: taken.digest.to_string(),
            });
        }
        Ok(())
    }

    /// The index `reference` points at now, for merging; a single manifest (KraftKit 0.6) is
    /// read as a one-entry index.
    async fn existing_index(&self, reference: &Reference, target: &Descriptor) -> Result<Option<Index>> {
        if target.is_index() {
            return Ok(Some(self.catalog().read_index(target).await?));
        }
        if target.is_manifest() {
            let packages = self.catalog().packages_of(reference, target).await?;
            let mut index = Index::new();
            index.manifests = packages.into_iter().map(|p| p.manifest).collect();
            return Ok(Some(index));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::kconfig_contradictions;
    use ukpm_types::{Architecture, KConfig, Plat};

    fn says(text: &str, arch: Architecture, plat: Plat) -> Vec<String> {
        kconfig_contradictions(&KConfig::parse(text).unwrap(), arch, plat)
    }

    #[test]
    fn arch_and_plat_that_contradict_the_kconfig_are_named() {
        use Architecture::*;
        let arm_fc = "CONFIG_ARCH_ARM_64=y\nCONFIG_PLAT_KVM=y\nCONFIG_KVM_VMM_FIRECRACKER=y\n";
        assert!(says(arm_fc, Arm64, Plat::Fc).is_empty());
        assert_eq!(
            says(arm_fc, X86_64, Plat::Qemu),
            [
                "--arch x86_64 implies CONFIG_ARCH_X86_64=y, but the kconfig sets CONFIG_ARCH_ARM_64=y",
                "--plat qemu implies CONFIG_KVM_VMM_QEMU=y, but the kconfig sets CONFIG_KVM_VMM_FIRECRACKER=y",
            ]
        );
        assert_eq!(
            says(arm_fc, Arm64, Plat::Xen),
            ["--plat xen implies CONFIG_PLAT_XEN=y, but the kconfig sets CONFIG_PLAT_KVM=y"]
        );
        // Silence is no contradiction; nor is a kconfig built for several platforms at once.
        assert!(says("CONFIG_UK_FULLVERSION=\"0.17\"\n", X86_64, Plat::Xen).is_empty());
        assert!(says("CONFIG_PLAT_KVM=y\nCONFIG_PLAT_LINUXU=y\n", X86_64, Plat::Linuxu).is_empty());
        assert!(
            says(
                "# CONFIG_ARCH_X86_64 is not set\nCONFIG_ARCH_ARM_64=n\n",
                X86_64,
                Plat::Qemu
            )
            .is_empty()
        );
    }
}
