//! The spec's conformance vectors (`spec/kraftkit-format.md`, "Conformance vectors"): what
//! KraftKit 0.9.2 writes for the two 16-byte inputs, reproduced with Go's own tar and JSON
//! encoders. Kept here, written out in full, so tests compare ukpm's output against KraftKit's
//! bytes and never against anything ukpm computed.

/// The kernel input: 16 bytes, packed with mode 0755.
pub const KERNEL_BYTES: &[u8] = b"UNIKRAFT-KERNEL\n";
/// The initrd input: 16 bytes, packed with mode 0644.
pub const INITRD_BYTES: &[u8] = b"UNIKRAFT-INITRD\n";
/// The name the vectors are packed under.
pub const REFERENCE: &str = "unikraft.org/helloworld:latest";
/// The repository part of [`REFERENCE`], as `ukpm pack` prints it before `@`.
pub const NAME: &str = "unikraft.org/helloworld";
/// The unikernel's arguments; the `&` shows Go's HTML-safe JSON escaping.
pub const ARGS: [&str; 3] = ["/helloworld", "--greeting", "hi & bye"];
/// `SOURCE_DATE_EPOCH` for the manifest and index vectors: 2024-10-21T12:00:00Z.
pub const SOURCE_DATE_EPOCH: &str = "1729512000";
/// The annotation that makes ukpm's `sh.kraftkit.version` match KraftKit's.
pub const KRAFTKIT_VERSION_ANNOTATION: &str = "sh.kraftkit.version=0.9.2";

/// The kernel layer (2048 bytes).
pub const KERNEL_LAYER: &str = "sha256:35de056c2eb649ba307f61360e60d7349352e6261782a49a38510a814b4e8f01";
/// The initrd layer (2048 bytes).
pub const INITRD_LAYER: &str = "sha256:f3765f69a3820cf85e208695c6384308776c2b7d106a84423e92eee165b37c67";
/// The config (370 bytes); independent of `SOURCE_DATE_EPOCH`.
pub const CONFIG: &str = "sha256:766f6534517772b4e626ac6ad55bc5d784a946e5a56d1a709d8a0a887ae3d594";
/// The manifest (1092 bytes) with `SOURCE_DATE_EPOCH` and the 0.9.2 annotation.
pub const MANIFEST: &str = "sha256:43e9c05b4653dfc4bdb95e4dea3c87f6e671d434ab6a48080a05c84bb75c07bc";
/// The index (819 bytes) with `SOURCE_DATE_EPOCH` and the 0.9.2 annotation.
pub const INDEX: &str = "sha256:d483f207e6b4e93ae5c36598da9d9b22345543e885fb025a4b39aeab93189687";

/// The config's exact bytes.
pub const CONFIG_JSON: &str = r#"{"architecture":"x86_64","os":"qemu","os.features":["CONFIG_ARCH_X86_64=y","CONFIG_KVM_VMM_QEMU=y","CONFIG_PLAT_KVM=y"],"config":{"Cmd":["/helloworld","--greeting","hi \u0026 bye"]},"rootfs":{"type":"layers","diff_ids":["sha256:35de056c2eb649ba307f61360e60d7349352e6261782a49a38510a814b4e8f01","sha256:f3765f69a3820cf85e208695c6384308776c2b7d106a84423e92eee165b37c67"]}}"#;
/// The manifest's exact bytes.
pub const MANIFEST_JSON: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:766f6534517772b4e626ac6ad55bc5d784a946e5a56d1a709d8a0a887ae3d594","size":370,"platform":{"architecture":"x86_64","os":"qemu","os.features":["CONFIG_ARCH_X86_64=y","CONFIG_KVM_VMM_QEMU=y","CONFIG_PLAT_KVM=y"]}},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:35de056c2eb649ba307f61360e60d7349352e6261782a49a38510a814b4e8f01","size":2048,"annotations":{"org.unikraft.kernel.image":"/unikraft/bin/kernel"}},{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:f3765f69a3820cf85e208695c6384308776c2b7d106a84423e92eee165b37c67","size":2048,"annotations":{"org.unikraft.kernel.initrd":"/unikraft/bin/initrd"}}],"annotations":{"io.containerd.image.name":"unikraft.org/helloworld:latest","org.opencontainers.image.created":"2024-10-21T12:00:00Z","org.opencontainers.image.ref.name":"unikraft.org/helloworld","org.unikraft.image.name":"unikraft.org/helloworld","sh.kraftkit.version":"0.9.2"}}"#;
/// The index's exact bytes.
pub const INDEX_JSON: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:43e9c05b4653dfc4bdb95e4dea3c87f6e671d434ab6a48080a05c84bb75c07bc","size":1092,"annotations":{"io.containerd.image.name":"unikraft.org/helloworld:latest","org.opencontainers.image.created":"2024-10-21T12:00:00Z","org.opencontainers.image.ref.name":"unikraft.org/helloworld","org.unikraft.image.name":"unikraft.org/helloworld","sh.kraftkit.version":"0.9.2"},"platform":{"architecture":"x86_64","os":"qemu","os.features":["CONFIG_ARCH_X86_64=y","CONFIG_KVM_VMM_QEMU=y","CONFIG_PLAT_KVM=y"]}}],"annotations":{"io.containerd.image.name":"unikraft.org/helloworld:latest","org.opencontainers.image.ref.name":"unikraft.org/helloworld","sh.kraftkit.version":"0.9.2"}}"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sha256_digest;

    #[test]
    fn the_documents_match_their_digests() {
        assert_eq!(
            (CONFIG_JSON.len(), sha256_digest(CONFIG_JSON)),
            (370, CONFIG.to_string())
        );
        assert_eq!(
            (MANIFEST_JSON.len(), sha256_digest(MANIFEST_JSON)),
            (1092, MANIFEST.to_string())
        );
        assert_eq!(
            (INDEX_JSON.len(), sha256_digest(INDEX_JSON)),
            (819, INDEX.to_string())
        );
    }
}
