//! Where a package's root filesystem comes from ([`Rootfs`]), and how an OCI image becomes one.
//!
//! KraftKit's `--rootfs` (and a Kraftfile's `rootfs:`) takes a CPIO file, a folder, a Dockerfile
//! or an OCI image and turns it into the initrd of the package. [`Rootfs::classify`] tells these
//! apart once, up front; packing then builds the initrd (`crate::initrd`). An image's layers
//! (from the store, a registry or an OCI layout on disk) are applied in order into a temp folder,
//! OCI whiteouts honoured, with the same safe extraction `unpack` uses, and that folder is
//! archived as CPIO newc exactly as a folder rootfs is.
//!
//! ukpm builds no Dockerfiles (KraftKit runs BuildKit for them): a Dockerfile is recognised so
//! the error can say what to do instead.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ukpm_archive::compression::{Compression, Expansion, decompress};
use ukpm_archive::extract::{self, Options};
use ukpm_types::{
    Architecture, Descriptor, Digest, Index, Manifest, Reference, media_type, normalize_architecture,
};

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::manager::PackageManager;
use crate::pull::{fetch_manifest, parse_remote, unique_blobs};
use crate::reporter::Step;
use crate::store::{ImageStore, LocalImageStore};

/// The registry a rootfs image's short name (`alpine:3.19`) resolves against: Docker Hub, as
/// KraftKit's image rootfs does (go-containerregistry's default), not the package registry.
pub const ROOTFS_IMAGE_REGISTRY: &str = "docker.io";

/// Where the root filesystem of a package comes from (KraftKit's `--rootfs` / `rootfs:`).
///
/// Build one with [`Rootfs::classify`] from what a user typed (a flag, a Kraftfile's `rootfs:`);
/// the variants can also be built directly when the kind is known.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rootfs {
    /// A file packed as it is: a CPIO newc archive, possibly gzipped (any readable file is
    /// accepted, as KraftKit does; the initrd's format is recorded nowhere).
    Cpio(PathBuf),
    /// A folder, archived as a deterministic CPIO newc initrd.
    Dir(PathBuf),
    /// An OCI image layout on disk (`oci:DIR[:TAG]`, or a folder holding `oci-layout`); `tag`
    /// is the ref name inside it, needed only when it holds several images.
    Layout {
        /// The layout's folder.
        dir: PathBuf,
        /// The ref name (`org.opencontainers.image.ref.name`), as skopeo's `oci:DIR:TAG`.
        tag: Option<String>,
    },
    /// An image reference: looked up in the store first, else pulled from its registry (a short
    /// name means Docker Hub, [`ROOTFS_IMAGE_REGISTRY`], as in KraftKit).
    Image(String),
    /// A Dockerfile, which KraftKit builds with BuildKit and ukpm refuses with advice.
    Dockerfile(PathBuf),
}

impl Rootfs {
    /// Classifies what a user gave as a rootfs, relative paths taken inside `base` (the current
    /// folder for a flag, the project folder for a Kraftfile).
    ///
    /// In order: `oci:DIR[:TAG]` is a layout; `docker://REF` is an image; an existing folder is a
    /// layout when it holds `oci-layout`, else a folder to archive; an existing file named
    /// `Dockerfile*` or `*Dockerfile` (any case) that is not a CPIO or gzip archive is a
    /// Dockerfile, any other file a CPIO; a missing path named like a Dockerfile is one too. What
    /// does not exist is an image reference when it parses as one and does not look like a path
    /// (`./x`, `/x`, `~/x`, `x.cpio`); otherwise the error is the missing file.
    ///
    /// A Kraftfile's `rootfs:` is classified against the project folder:
    ///
    /// ```
    /// use std::path::Path;
    /// use ukpm::Rootfs;
    ///
    /// # fn main() -> Result<(), ukpm::Error> {
    /// let project = Path::new("/no/such/project");
    /// assert_eq!(Rootfs::classify("alpine:3.19", project)?, Rootfs::Image("alpine:3.19".into()));
    /// assert_eq!(
    ///     Rootfs::classify("oci:build/layout:v1", project)?,
    ///     Rootfs::Layout { dir: project.join("build/layout"), tag: Some("v1".into()) }
    /// );
    /// assert_eq!(
    ///     Rootfs::classify("Dockerfile", project)?,
    ///     Rootfs::Dockerfile(project.join("Dockerfile"))
    /// );
    /// assert!(Rootfs::classify("./rootfs", project).is_err()); // a missing folder
    /// # Ok(())
    /// # }
    /// ```
    pub fn classify(input: impl AsRef<OsStr>, base: &Path) -> Result<Rootfs> {
        let raw = input.as_ref();
        if raw.is_empty() {
            return Err(Error::InvalidInput("the rootfs is empty".into()));
        }
        if let Some(text) = raw.to_str() {
            if let Some(rest) = text.strip_prefix("oci:") {
                let (dir, tag) = match rest.split_once(':') {
                    Some((dir, tag)) => (dir, Some(tag).filter(|t| !t.is_empty())),
                    None => (rest, None),
                };
                if dir.is_empty() {
                    return Err(Error::InvalidInput(format!(
                        "rootfs `{text}` names no folder: write oci:DIR[:TAG]"
                    )));
                }
                return Ok(Rootfs::Layout {
                    dir: base.join(dir),
                    tag: tag.map(str::to_string),
                });
            }
            if let Some(rest) = text.strip_prefix("docker://") {
                image_reference(rest)?;
                return Ok(Rootfs::Image(rest.to_string()));
            }
        }
        let path = base.join(raw);
        #[expect(clippy::disallowed_methods, reason = "Error::InputFile names the path")]
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                if path.join("oci-layout").is_file() {
                    Ok(Rootfs::Layout { dir: path, tag: None })
                } else {
                    Ok(Rootfs::Dir(path))
                }
            }
            Ok(meta) if meta.is_file() => {
                if is_dockerfile_name(&path) && !starts_like_an_archive(&path) {
                    Ok(Rootfs::Dockerfile(path))
                } else {
                    Ok(Rootfs::Cpio(path))
                }
            }
            Ok(_) => Err(Error::InputFile {
                what: "initrd",
                path,
                source: io::Error::new(io::ErrorKind::InvalidInput, "neither a file nor a folder"),
            }),
            Err(source) if source.kind() == io::ErrorKind::NotFound => {
                if is_dockerfile_name(&path) {
                    return Ok(Rootfs::Dockerfile(path));
                }
                match raw.to_str() {
                    Some(text) if !looks_like_a_path(text) && image_reference(text).is_ok() => {
                        Ok(Rootfs::Image(text.to_string()))
                    }
                    _ => Err(Error::InputFile {
                        what: "initrd",
                        path,
                        source,
                    }),
                }
            }
            Err(source) => Err(Error::InputFile {
                what: "initrd",
                path,
                source,
            }),
        }
    }

    /// The error a Dockerfile rootfs gets: ukpm does not build images; what to do instead.
    pub(crate) fn dockerfile_error(path: &Path) -> Error {
        let shown = path.display();
        Error::InvalidInput(format!(
            "the rootfs {shown} is a Dockerfile, and ukpm does not build Dockerfiles (KraftKit \
             runs BuildKit for them). Build the image first, then give its reference as the \
             rootfs: `docker build -t registry.example/app:latest -f {shown} . && docker push \
             registry.example/app:latest` (or `buildah build`, or `docker build --output \
             type=oci,dest=app.tar` and `tar -xf app.tar -C app-layout`, then --rootfs \
             oci:app-layout), or export its filesystem to a folder and give the folder"
        ))
    }
}

impl fmt::Display for Rootfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rootfs::Cpio(path) => write!(f, "file {}", path.display()),
            Rootfs::Dir(path) => write!(f, "folder {}", path.display()),
            Rootfs::Layout { dir, tag: None } => write!(f, "oci:{}", dir.display()),
            Rootfs::Layout { dir, tag: Some(tag) } => write!(f, "oci:{}:{tag}", dir.display()),
            Rootfs::Image(name) => write!(f, "image {name}"),
            Rootfs::Dockerfile(path) => write!(f, "Dockerfile {}", path.display()),
        }
    }
}

/// A rootfs image name as a reference, a short name resolved against Docker Hub.
fn image_reference(text: &str) -> Result<Reference> {
    Ok(Reference::parse_with_registry(text, ROOTFS_IMAGE_REGISTRY)?)
}

/// `Dockerfile`, `Dockerfile.prod`, `rootfs.Dockerfile`, in any case.
fn is_dockerfile_name(path: &Path) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase)
        .is_some_and(|name| name.starts_with("dockerfile") || name.ends_with("dockerfile"))
}

/// Whether a file starts like a CPIO newc or gzip archive (a `Dockerfile.cpio` is an initrd).
fn starts_like_an_archive(path: &Path) -> bool {
    use std::io::Read;
    let mut prefix = [0u8; 6];
    let Ok(mut file) = fs_err::File::open(path) else {
        return false;
    };
    let n = file.read(&mut prefix).unwrap_or(0);
    ukpm_archive::cpio::is_newc(&prefix[..n]) || ukpm_archive::cpio::is_gzip(&prefix[..n])
}

/// Text a user means as a path, never as an image name.
fn looks_like_a_path(text: &str) -> bool {
    text.starts_with(['/', '.', '~'])
        || text.ends_with('/')
        || (!text.contains([':', '/', '@']) && text.contains('.'))
}

/// An image's filesystem flattened into a folder, and the defaults its config gives.
pub(crate) struct FlatImage {
    /// The folder holding the flattened tree (a temp folder removed on drop).
    pub(crate) tree: tempfile::TempDir,
    /// The true modes of the files and folders opened up so they can be read and removed.
    pub(crate) modes: HashMap<PathBuf, u32>,
    /// `Entrypoint` then `Cmd`, KraftKit's default arguments for an image rootfs.
    pub(crate) args: Vec<String>,
    /// The image's `Env`.
    pub(crate) env: Vec<String>,
    /// What was chosen, for the reporter: `the linux/amd64 manifest sha256:… of docker.io/…`.
    pub(crate) chosen: String,
}

impl PackageManager {
    /// Flattens the image `rootfs` names (a layout or a reference) for `arch` into a temp
    /// folder: its layers applied in order, whiteouts honoured.
    pub(crate) async fn flatten_image(&self, rootfs: &Rootfs, arch: Architecture) -> Result<FlatImage> {
        // Kept alive until the layers are read: a registry image is pulled into a temp store.
        let mut _pulled: Option<tempfile::TempDir> = None;
        let (store, name, descriptor): (Arc<dyn ImageStore>, String, Descriptor) = match rootfs {
            Rootfs::Layout { dir, tag } => {
                if !dir.join("oci-layout").is_file() {
                    return Err(Error::InputFile {
                        what: "OCI layout",
                        path: dir.join("oci-layout"),
                        source: io::Error::new(io::ErrorKind::NotFound, "not an OCI image layout"),
                    });
                }
                let store: Arc<dyn ImageStore> = Arc::new(LocalImageStore::new(dir));
                let descriptor = layout_root(store.as_ref(), dir, tag.as_deref()).await?;
                (store, rootfs.to_string(), descriptor)
            }
            Rootfs::Image(text) => {
                let reference = image_reference(text)?;
                match self.stored_image(text, &reference).await? {
                    Some((name, descriptor)) => {
                        (self.store_arc(), format!("{name} in the store"), descriptor)
                    }
                    None => {
                        self.reporter().on_step(&Step::Rootfs {
                            rootfs: rootfs.to_string(),
                            detail: format!(
                                "no such file or folder, and not in the store: pulling {reference} for linux/{arch}"
                            ),
                        });
                        let (tmp, store, descriptor) = self.pull_rootfs_image(&reference, arch).await?;
                        _pulled = Some(tmp);
                        (store, reference.to_string(), descriptor)
                    }
                }
            }
            other => {
                return Err(Error::InvalidInput(format!("{other} is not an image")));
            }
        };
        let catalog = Catalog::new(store.clone());
        let manifest_descriptor = if descriptor.is_index() {
            let index = catalog.read_index(&descriptor).await?;
            select_manifest(&index, arch).map_err(|available| no_image_for(&name, arch, &available))?
        } else if descriptor.is_manifest() {
            descriptor
        } else {
            return Err(Error::InvalidInput(format!(
                "{name} is a `{}`, neither an image index nor a manifest",
                descriptor.media_type
            )));
        };
        let manifest = catalog.read_manifest(&manifest_descriptor).await?;
        let config = catalog.read_config(&manifest).await?;
        let platform = match (&manifest_descriptor.platform, config.os.is_empty()) {
            (Some(p), _) => format!("{}/{}", p.os, p.architecture),
            (None, false) => format!("{}/{}", config.os, config.architecture),
            (None, true) => "no platform".to_string(),
        };
        if !config.architecture.is_empty() && normalize_architecture(&config.architecture) != arch.as_str() {
            return Err(Error::InvalidInput(format!(
                "{name} is an image for {platform}, not for {arch}"
            )));
        }
        let chosen = match rootfs {
            Rootfs::Layout { .. } => format!("the {platform} manifest {}", manifest_descriptor.digest),
            _ => format!("the {platform} manifest {} of {name}", manifest_descriptor.digest),
        };
        let layers = layer_compressions(&manifest)?;
        let handle = tokio::runtime::Handle::current();
        let open = move |digest| handle.block_on(store.open_blob(digest));
        let (tree, modes) = tokio::task::spawn_blocking(move || {
            let tree = flatten(layers, open)?;
            let mut modes = HashMap::new();
            open_up(tree.path(), &mut modes)?;
            Ok::<_, Error>((tree, modes))
        })
        .await??;
        let mut args = config.config.entrypoint.clone();
        args.extend(config.config.cmd.iter().cloned());
        Ok(FlatImage {
            tree,
            modes,
            args,
            env: config.config.env.clone(),
            chosen,
        })
    }

    /// The image `text` names in the store: a ref named exactly so (a bare tag), else the
    /// reference (by tag, or by the digest of an index or one of its manifests). `None` when
    /// the store does not have it.
    async fn stored_image(&self, text: &str, reference: &Reference) -> Result<Option<(String, Descriptor)>> {
        let catalog = self.catalog();
        if let Some(entry) = catalog.store().refs().await?.into_iter().find(|e| e.name == text) {
            return Ok(Some((entry.name, entry.descriptor)));
        }
        let resolved = match catalog.resolve(reference.clone()).await {
            Ok(resolved) => resolved,
            Err(err) if err.kind() == crate::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err),
        };
        let descriptor = match resolved.manifest {
            Some(digest) => {
                let index = catalog.read_index(&resolved.entry.descriptor).await?;
                manifest_entry(&index, digest)?
            }
            None => resolved.entry.descriptor.clone(),
        };
        Ok(Some((resolved.entry.name, descriptor)))
    }

    /// Pulls the manifest of `reference` for linux/`arch` into a temp store (the user's store is
    /// not for Linux images), returning it and the manifest's descriptor there.
    async fn pull_rootfs_image(
        &self,
        reference: &Reference,
        arch: Architecture,
    ) -> Result<(tempfile::TempDir, Arc<dyn ImageStore>, Descriptor)> {
        let tmp = tempfile::Builder::new()
            .prefix("ukpm-rootfs-image-")
            .tempdir()
            .map_err(|e| io::Error::new(e.kind(), format!("failed to create a temp store: {e}")))?;
        let store: Arc<dyn ImageStore> = Arc::new(LocalImageStore::new(tmp.path().join("oci")));
        let transfer = self.with_store(store.clone()).transfer()?;
        self.reporter().on_step(&Step::Pull {
            reference: reference.clone(),
        });
        let fetched = transfer.client.get_manifest(reference).await?;
        let top = fetched.descriptor();
        let (descriptor, bytes) = if top.is_index() {
            let index: Index = parse_remote(reference, &top, &fetched.bytes, "image index")?;
            let entry = select_manifest(&index, arch)
                .map_err(|available| no_image_for(&reference.to_string(), arch, &available))?;
            let bytes = fetch_manifest(&transfer.client, reference, &entry).await?;
            (entry, bytes)
        } else if top.is_manifest() {
            (top, fetched.bytes.to_vec())
        } else {
            return Err(Error::NotAnImage {
                reference: reference.clone(),
                media_type: top.media_type,
            });
        };
        let manifest: Manifest = parse_remote(reference, &descriptor, &bytes, "image manifest")?;
        // The futures are made before they are awaited, so no borrowing closure is held across
        // an await (which would keep `pack`'s future from being provably `Send`).
        let downloads: Vec<_> = unique_blobs(&manifest)
            .into_iter()
            .map(|blob| {
                let transfer = &transfer;
                async move {
                    let _permit = transfer.permit().await;
                    transfer.download(reference, blob).await
                }
            })
            .collect();
        futures_util::future::try_join_all(downloads).await?;
        store.put_bytes(bytes).await?;
        Ok((tmp, store, descriptor))
    }
}

/// The root descriptor of a layout: the ref `tag` names, else its only image.
async fn layout_root(store: &dyn ImageStore, dir: &Path, tag: Option<&str>) -> Result<Descriptor> {
    let refs = store.refs().await?;
    if let Some(tag) = tag {
        return refs
            .into_iter()
            .find(|e| e.name == tag)
            .map(|e| e.descriptor)
            .ok_or_else(|| {
                Error::InvalidInput(format!("the OCI layout {} has no ref `{tag}`", dir.display()))
            });
    }
    let index_bytes = fs_err::read(dir.join("index.json"))?;
    let index: Index = serde_json::from_slice(&index_bytes).map_err(|e| {
        Error::InvalidInput(format!(
            "the OCI layout {} has a malformed index.json: {e}",
            dir.display()
        ))
    })?;
    match index.manifests.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(Error::InvalidInput(format!(
            "the OCI layout {} holds no image",
            dir.display()
        ))),
        _ => Err(Error::InvalidInput(format!(
            "the OCI layout {} holds several images; name one with oci:{}:TAG (refs: {})",
            dir.display(),
            dir.display(),
            if refs.is_empty() {
                "none".to_string()
            } else {
                refs.iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ))),
    }
}

/// The entry of `index` with `digest`.
fn manifest_entry(index: &Index, digest: Digest) -> Result<Descriptor> {
    index
        .manifests
        .iter()
        .find(|m| m.digest == digest)
        .cloned()
        .ok_or_else(|| Error::InvalidInput(format!("no manifest {digest} in the index")))
}

/// The manifest of an image index a rootfs uses: the first `linux` one for `arch` (Docker's
/// `amd64` is `x86_64`), else the only manifest when none names a platform. `Err` lists what
/// the index has.
pub(crate) fn select_manifest(
    index: &Index,
    arch: Architecture,
) -> std::result::Result<Descriptor, Vec<String>> {
    let manifests: Vec<&Descriptor> = index.manifests.iter().filter(|d| d.is_manifest()).collect();
    if let Some(found) = manifests.iter().find(|d| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && normalize_architecture(&p.architecture) == arch.as_str())
    }) {
        return Ok((*found).clone());
    }
    if let [only] = manifests.as_slice()
        && only.platform.is_none()
    {
        return Ok((*only).clone());
    }
    Err(index
        .manifests
        .iter()
        .map(|d| match &d.platform {
            Some(p) if p.variant.is_empty() => format!("{}/{}", p.os, p.architecture),
            Some(p) => format!("{}/{}/{}", p.os, p.architecture, p.variant),
            None => "no platform".to_string(),
        })
        .collect())
}

fn no_image_for(name: &str, arch: Architecture, available: &[String]) -> Error {
    Error::InvalidInput(format!(
        "{name} has no linux/{arch} image for the rootfs; it has: {}",
        if available.is_empty() {
            "nothing".to_string()
        } else {
            available.join(", ")
        }
    ))
}

/// How each layer of an image is decompressed; a layer that is not a tar is refused.
fn layer_compressions(manifest: &Manifest) -> Result<Vec<(Digest, Compression)>> {
    manifest
        .layers
        .iter()
        .map(|layer| {
            let compression = match layer.media_type.as_str() {
                media_type::LAYER_TAR | media_type::DOCKER_LAYER_TAR | media_type::UNIKRAFT_LAYER => {
                    Compression::None
                }
                media_type::LAYER_TAR_GZIP
                | media_type::DOCKER_LAYER_TAR_GZIP
                | media_type::UNIKRAFT_LAYER_GZIP => Compression::Gzip,
                media_type::LAYER_TAR_ZSTD => Compression::Zstd,
                other => {
                    return Err(Error::UnsupportedMediaType {
                        digest: layer.digest,
                        media_type: other.to_string(),
                    });
                }
            };
            Ok((layer.digest, compression))
        })
        .collect()
}

/// Applies the layers in order into a fresh temp folder; each blob is read to its end so its
/// digest is checked.
fn flatten(
    layers: Vec<(Digest, Compression)>,
    open: impl Fn(Digest) -> Result<crate::store::BlobRead>,
) -> Result<tempfile::TempDir> {
    let tree = tempfile::Builder::new()
        .prefix("ukpm-rootfs-")
        .tempdir()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("failed to create a temp folder for the rootfs: {e}"),
            )
        })?;
    let options = Options::default();
    for (digest, compression) in layers {
        let mut blob = open(digest)?;
        extract::extract_with(
            decompress(&mut blob, compression, Expansion::default()),
            tree.path(),
            &options,
        )
        .map_err(|e| Error::extract(digest, e))?;
        io::copy(&mut blob, &mut io::sink()).map_err(Error::from_store_io)?;
    }
    Ok(tree)
}

/// Gives the owner read access to every file and full access to every folder under `dir`
/// that lacks it, recording the true modes: a user who is not root must read an image's
/// `0000` files to archive them, and write into its `0555` folders to remove the temp tree.
fn open_up(dir: &Path, modes: &mut HashMap<PathBuf, u32>) -> Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let meta = fs_err::symlink_metadata(&path)?;
        let mode = meta.permissions().mode() & 0o7777;
        let needed = if meta.is_dir() {
            0o700
        } else if meta.is_file() {
            0o400
        } else {
            continue;
        };
        if mode & needed != needed {
            fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode | needed))?;
            modes.insert(path.clone(), mode);
        }
        if meta.is_dir() {
            open_up(&path, modes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        fs_err::create_dir_all(base.join("tree")).unwrap();
        fs_err::create_dir_all(base.join("layout")).unwrap();
        fs_err::write(
            base.join("layout/oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        fs_err::write(base.join("initramfs.cpio"), b"070701").unwrap();
        fs_err::write(base.join("Dockerfile"), b"FROM scratch\n").unwrap();
        fs_err::write(base.join("app.dockerfile"), b"FROM scratch\n").unwrap();
        fs_err::write(base.join("Dockerfile.cpio"), b"070701").unwrap();
        let c = |s: &str| Rootfs::classify(s, base);
        assert_eq!(c("tree").unwrap(), Rootfs::Dir(base.join("tree")));
        assert_eq!(
            c("layout").unwrap(),
            Rootfs::Layout {
                dir: base.join("layout"),
                tag: None
            }
        );
        assert_eq!(
            c("oci:some/dir:v1").unwrap(),
            Rootfs::Layout {
                dir: base.join("some/dir"),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            c("initramfs.cpio").unwrap(),
            Rootfs::Cpio(base.join("initramfs.cpio"))
        );
        assert_eq!(
            c("Dockerfile.cpio").unwrap(),
            Rootfs::Cpio(base.join("Dockerfile.cpio"))
        );
        assert_eq!(
            c("Dockerfile").unwrap(),
            Rootfs::Dockerfile(base.join("Dockerfile"))
        );
        assert_eq!(
            c("app.dockerfile").unwrap(),
            Rootfs::Dockerfile(base.join("app.dockerfile"))
        );
        assert_eq!(
            c("sub/Dockerfile").unwrap(),
            Rootfs::Dockerfile(base.join("sub/Dockerfile"))
        );
        assert_eq!(c("alpine:3.19").unwrap(), Rootfs::Image("alpine:3.19".into()));
        assert_eq!(
            c("docker://ghcr.io/a/b:1").unwrap(),
            Rootfs::Image("ghcr.io/a/b:1".into())
        );
        assert_eq!(
            c("localhost:5000/app@sha256:0000000000000000000000000000000000000000000000000000000000000000")
                .unwrap(),
            Rootfs::Image(
                "localhost:5000/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
                    .into()
            )
        );
        for missing in ["./missing", "/nope/x", "missing.cpio", "missing/"] {
            let err = c(missing).unwrap_err();
            assert!(matches!(err, Error::InputFile { .. }), "{missing}: {err}");
        }
        assert!(c("").is_err());
        assert!(c("oci:").is_err());
    }

    #[test]
    fn manifest_selection_prefers_linux_of_the_architecture() {
        let digest = |b: &[u8]| Digest::of(b);
        let entry = |os: &str, arch: &str, b: &[u8]| {
            let mut d = Descriptor::new(media_type::IMAGE_MANIFEST, digest(b), 1);
            d.platform = Some(ukpm_types::Platform {
                architecture: arch.into(),
                os: os.into(),
                ..Default::default()
            });
            d
        };
        let mut index = Index::new();
        index.manifests = vec![
            entry("unknown", "unknown", b"attestation"),
            entry("windows", "amd64", b"win"),
            entry("linux", "arm64", b"arm"),
            entry("linux", "amd64", b"amd"),
        ];
        assert_eq!(
            select_manifest(&index, Architecture::X86_64).unwrap().digest,
            digest(b"amd")
        );
        assert_eq!(
            select_manifest(&index, Architecture::Arm64).unwrap().digest,
            digest(b"arm")
        );
        let available = select_manifest(&index, Architecture::Arm).unwrap_err();
        assert_eq!(
            available,
            ["unknown/unknown", "windows/amd64", "linux/arm64", "linux/amd64"]
        );
        let mut lone = Index::new();
        lone.manifests = vec![Descriptor::new(media_type::IMAGE_MANIFEST, digest(b"x"), 1)];
        assert!(select_manifest(&lone, Architecture::Arm).is_ok());
    }
}
