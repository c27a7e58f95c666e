//! Building images: [`Layer`], [`Blob`] and [`ManifestBuilder`] (KraftKit's `NewLayerFromFile`,
//! `NewBlobFromFile` and `Image`/`Manifest`), and the index merge that packing uses.

use std::path::{Path, PathBuf};

use ukpm_archive::LayerFile;
use ukpm_types::{
    Annotations, Architecture, Descriptor, ImageConfig, Index, Manifest, Plat, Platform, Reference, RootFs,
    RuntimeConfig, compact_sorted, media_type, to_go_json,
};

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::reporter::{BlobKind, Direction, Reporter, Subject, TransferId};
use crate::store::{BlobRead, ImageStore};

/// A file placed at a path inside a layer tarball of its own.
#[derive(Debug, Clone)]
pub struct Layer {
    source: PathBuf,
    file: LayerFile,
    annotations: Annotations,
}

impl Layer {
    /// A layer holding `source` at `path` (`/unikraft/bin/kernel`), with the source file's
    /// permission bits, as KraftKit's `NewLayerFromFile` makes it.
    pub fn from_file(source: impl Into<PathBuf>, path: &str, what: &'static str) -> Result<Layer> {
        let source = source.into();
        let meta = input_metadata(&source, what)?;
        Ok(Layer {
            file: LayerFile {
                path: path.to_string(),
                mode: mode_of(&meta),
                size: meta.len(),
            },
            source,
            annotations: Annotations::new(),
        })
    }

    /// Overrides the mode written into the header (a generated initrd is `0644`).
    pub fn with_mode(mut self, mode: u32) -> Layer {
        self.file.mode = mode;
        self
    }

    /// Adds an annotation to the layer's descriptor (`org.unikraft.kernel.image`).
    pub fn with_annotation(mut self, key: &str, value: &str) -> Layer {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }
}

/// A raw blob stored as a layer as it is, under its own media type (newer KraftKit writes
/// kernels as `application/vnd.unikraft.kernel.v1` blobs).
#[derive(Debug, Clone)]
pub struct Blob {
    source: PathBuf,
    media_type: String,
    annotations: Annotations,
}

impl Blob {
    /// A blob with the content of `source`.
    pub fn from_file(media_type: &str, source: impl Into<PathBuf>) -> Result<Blob> {
        let source = source.into();
        input_metadata(&source, "blob")?;
        Ok(Blob {
            source,
            media_type: media_type.to_string(),
            annotations: Annotations::new(),
        })
    }

    /// Adds an annotation to the blob's descriptor.
    pub fn with_annotation(mut self, key: &str, value: &str) -> Blob {
        self.annotations.insert(key.to_string(), value.to_string());
        self
    }
}

/// Checks an input file exists and is a regular file (following symlinks, as Go's `os.Stat`).
pub(crate) fn input_metadata(path: &Path, what: &'static str) -> Result<std::fs::Metadata> {
    #[expect(
        clippy::disallowed_methods,
        reason = "Error::InputFile names the path already"
    )]
    let meta = std::fs::metadata(path).map_err(|source| Error::InputFile {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(Error::InputFile {
            what,
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    Ok(meta)
}

fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// An image manifest being assembled: its platform, run configuration, layers and annotations.
///
/// Layers are written to the store as they are added; [`ManifestBuilder::save`] writes the
/// config and manifest with bytes identical to KraftKit's for the same inputs.
#[derive(Clone)]
pub struct ManifestBuilder {
    platform: Platform,
    config_features: Vec<String>,
    runtime: RuntimeConfig,
    layers: Vec<Descriptor>,
    annotations: Annotations,
    /// Where progress goes, and the package the layers belong to.
    reporting: Option<(Arc<dyn Reporter>, Reference)>,
}

impl std::fmt::Debug for ManifestBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManifestBuilder")
            .field("platform", &self.platform)
            .field("layers", &self.layers)
            .field("annotations", &self.annotations)
            .finish_non_exhaustive()
    }
}

/// A manifest written to a store.
#[derive(Debug, Clone)]
pub struct SavedManifest {
    /// Its descriptor as an index entry: media type, digest, size, annotations, platform.
    pub descriptor: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The config.
    pub config: ImageConfig,
}

impl ManifestBuilder {
    /// A manifest for one architecture and platform.
    pub fn new(architecture: Architecture, plat: Plat) -> ManifestBuilder {
        ManifestBuilder {
            platform: Platform {
                architecture: architecture.as_str().to_string(),
                os: plat.as_str().to_string(),
                ..Platform::default()
            },
            config_features: Vec::new(),
            runtime: RuntimeConfig::default(),
            layers: Vec::new(),
            annotations: Annotations::new(),
            reporting: None,
        }
    }

    /// Reports each layer written (start, bytes, end) to `reporter`, as part of `package`.
    pub fn with_reporter(mut self, reporter: Arc<dyn Reporter>, package: Reference) -> ManifestBuilder {
        self.reporting = Some((reporter, package));
        self
    }

    /// Sets `os.version` (the Unikraft version).
    pub fn set_os_version(&mut self, version: &str) {
        self.platform.os_version = version.to_string();
    }

    /// Adds OS features (`KEY=VALUE` kconfig entries).
    pub fn add_os_features(&mut self, features: impl IntoIterator<Item = String>) {
        self.config_features.extend(features);
    }

    /// Sets the unikernel's arguments.
    pub fn set_cmd(&mut self, cmd: Vec<String>) {
        self.runtime.cmd = cmd;
    }

    /// Sets the environment (`K=V`), in the order given.
    pub fn set_env(&mut self, env: Vec<String>) {
        self.runtime.env = env;
    }

    /// Replaces the whole run configuration (re-packaging keeps a runtime's `Entrypoint`,
    /// `WorkingDir`, labels... and changes only what the project sets).
    pub fn set_runtime_config(&mut self, config: RuntimeConfig) {
        self.runtime = config;
    }

    /// Sets a config label.
    pub fn set_label(&mut self, key: &str, value: &str) {
        self.runtime.labels.insert(key.to_string(), value.to_string());
    }

    /// Sets a manifest annotation.
    pub fn set_annotation(&mut self, key: &str, value: &str) {
        self.annotations.insert(key.to_string(), value.to_string());
    }

    /// The manifest's annotations so far.
    pub fn annotations(&self) -> &Annotations {
        &self.annotations
    }

    /// The platform the manifest will carry (features sorted and de-duplicated).
    pub fn platform(&self) -> Platform {
        let mut platform = self.platform.clone();
        platform.os_features = compact_sorted(&self.config_features);
        platform
    }

    /// Writes `layer` as a single-file tar into the store and appends it.
    pub async fn add_layer(&mut self, store: &dyn ImageStore, layer: Layer) -> Result<Descriptor> {
        let file = fs_err::File::open(&layer.source).map_err(|source| Error::InputFile {
            what: "layer file",
            path: layer.source.clone(),
            source,
        })?;
        let kind = BlobKind::at_path(&layer.file.path);
        let stream = layer.file.tar_stream(file)?;
        let (digest, size) = self
            .write_reported(store, kind, Some(layer.file.tar_len()), stream)
            .await?;
        if size != layer.file.tar_len() {
            return Err(Error::InvalidInput(format!(
                "{} changed size while it was being packed",
                layer.source.display()
            )));
        }
        let mut descriptor = Descriptor::new(media_type::LAYER_TAR, digest, size);
        descriptor.annotations = layer.annotations;
        self.layers.push(descriptor.clone());
        Ok(descriptor)
    }

    /// Writes a raw blob into the store and appends it as a layer.
    pub async fn add_blob(&mut self, store: &dyn ImageStore, blob: Blob) -> Result<Descriptor> {
        let file = fs_err::File::open(&blob.source).map_err(|source| Error::InputFile {
            what: "blob",
            path: blob.source.clone(),
            source,
        })?;
        let total = file.metadata().ok().map(|m| m.len());
        let (digest, size) = self.write_reported(store, BlobKind::Layer, total, file).await?;
        let mut descriptor = Descriptor::new(&blob.media_type, digest, size);
        descriptor.annotations = blob.annotations;
        self.layers.push(descriptor.clone());
        Ok(descriptor)
    }

    async fn write_reported(
        &self,
        store: &dyn ImageStore,
        kind: BlobKind,
        total: Option<u64>,
        content: impl std::io::Read + Send + 'static,
    ) -> Result<(ukpm_types::Digest, u64)> {
        let Some((reporter, package)) = &self.reporting else {
            return store.write_blob(Box::new(content), None).await;
        };
        let id = reporter.on_transfer_start(&Subject {
            reference: package.clone(),
            kind,
            digest: None,
            size: total,
            direction: Direction::Write,
        });
        let stream: BlobRead = Box::new(ProgressRead {
            inner: content,
            reporter: reporter.clone(),
            id,
            done: 0,
        });
        let out = store.write_blob(stream, None).await;
        reporter.on_transfer_complete(id);
        out
    }

    /// Appends a layer already in the store (re-packaging reuses a runtime's kernel layer).
    pub fn add_layer_descriptor(&mut self, descriptor: Descriptor) {
        self.layers.push(descriptor);
    }

    /// Writes the config and the manifest.
    pub async fn save(self, store: &dyn ImageStore) -> Result<SavedManifest> {
        let platform = self.platform();
        let mut features = self.config_features;
        features.sort();
        let config = ImageConfig {
            created: None,
            author: None,
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            os_version: platform.os_version.clone(),
            os_features: features,
            variant: String::new(),
            config: self.runtime,
            rootfs: RootFs {
                kind: "layers".to_string(),
                diff_ids: self.layers.iter().map(|l| l.digest).collect(),
            },
            history: Vec::new(),
        };
        let config_bytes = to_go_json(&config);
        let mut config_descriptor = Descriptor::for_bytes(media_type::IMAGE_CONFIG, &config_bytes);
        config_descriptor.platform = Some(platform.clone());
        store.put_bytes(config_bytes).await?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: media_type::IMAGE_MANIFEST.to_string(),
            artifact_type: String::new(),
            config: config_descriptor,
            layers: self.layers,
            subject: None,
            annotations: self.annotations,
        };
        let manifest_bytes = to_go_json(&manifest);
        let mut descriptor = Descriptor::for_bytes(media_type::IMAGE_MANIFEST, &manifest_bytes);
        descriptor.annotations = manifest.annotations.clone();
        descriptor.platform = Some(platform);
        store.put_bytes(manifest_bytes).await?;
        Ok(SavedManifest {
            descriptor,
            manifest,
            config,
        })
    }
}

/// Passes bytes through and tells a reporter how many have gone by.
struct ProgressRead<R> {
    inner: R,
    reporter: Arc<dyn Reporter>,
    id: TransferId,
    done: u64,
}

impl<R: std::io::Read> std::io::Read for ProgressRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.done += n as u64;
            self.reporter.on_transfer_progress(self.id, self.done);
        }
        Ok(n)
    }
}

/// What packing does when the name already has a manifest for the same platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeStrategy {
    /// Keep the other platforms' manifests and replace the one for this platform.
    #[default]
    Merge,
    /// Drop the whole existing index first.
    Overwrite,
    /// Fail if the platform's slot is taken.
    Abort,
}

impl std::str::FromStr for MergeStrategy {
    type Err = Error;

    fn from_str(s: &str) -> Result<MergeStrategy> {
        match s {
            "merge" => Ok(MergeStrategy::Merge),
            "overwrite" => Ok(MergeStrategy::Overwrite),
            "abort" => Ok(MergeStrategy::Abort),
            _ => Err(Error::InvalidInput(format!(
                "unknown merge strategy `{s}` (expected merge, overwrite or abort)"
            ))),
        }
    }
}

/// Adds `entry` to `existing` as KraftKit does: entries for other platforms keep their order,
/// one for the same slot is replaced (or refused under `abort`), the new entry goes last.
///
/// Returns `Err(platform)` when the strategy is abort and the slot is taken.
pub fn merge_index(
    existing: Option<Index>,
    entry: Descriptor,
    strategy: MergeStrategy,
    annotations: Annotations,
) -> std::result::Result<Index, String> {
    let mut index = match (existing, strategy) {
        (Some(index), MergeStrategy::Merge | MergeStrategy::Abort) => index,
        _ => Index::new(),
    };
    let new_platform = entry.platform.clone().unwrap_or_default();
    let mut kept = Vec::with_capacity(index.manifests.len() + 1);
    for old in index.manifests {
        let same_slot = old.platform.as_ref().is_some_and(|p| p.same_slot(&new_platform));
        if same_slot && strategy == MergeStrategy::Abort {
            return Err(new_platform.short());
        }
        if !same_slot && old.digest != entry.digest {
            kept.push(old);
        }
    }
    kept.push(entry);
    index.schema_version = 2;
    index.media_type = media_type::IMAGE_INDEX.to_string();
    index.manifests = kept;
    index.annotations = annotations;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ukpm_types::Digest;

    fn entry(arch: &str, os: &str, tag: &[u8]) -> Descriptor {
        let mut d = Descriptor::new(media_type::IMAGE_MANIFEST, Digest::of(tag), 1);
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: os.into(),
            ..Platform::default()
        });
        d
    }

    #[test]
    fn merge_keeps_other_platforms_in_order_and_appends() {
        let a = entry("x86_64", "qemu", b"a");
        let b = entry("arm64", "qemu", b"b");
        let c = entry("x86_64", "fc", b"c");
        let index = merge_index(None, a.clone(), MergeStrategy::Merge, Annotations::new()).unwrap();
        let index = merge_index(Some(index), b.clone(), MergeStrategy::Merge, Annotations::new()).unwrap();
        let index = merge_index(Some(index), c.clone(), MergeStrategy::Merge, Annotations::new()).unwrap();
        assert_eq!(index.manifests, vec![a.clone(), b.clone(), c.clone()]);
        let a2 = entry("x86_64", "qemu", b"a2");
        let index = merge_index(Some(index), a2.clone(), MergeStrategy::Merge, Annotations::new()).unwrap();
        assert_eq!(index.manifests, vec![b.clone(), c.clone(), a2.clone()]);
        let err = merge_index(
            Some(index.clone()),
            entry("x86_64", "fc", b"c2"),
            MergeStrategy::Abort,
            Annotations::new(),
        );
        assert_eq!(err.unwrap_err(), "fc/x86_64");
        let index = merge_index(
            Some(index),
            entry("arm64", "fc", b"d"),
            MergeStrategy::Overwrite,
            Annotations::new(),
        )
        .unwrap();
        assert_eq!(index.manifests.len(), 1);
    }
}
