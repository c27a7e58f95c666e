//! The library's project operations, without the CLI: `PackageManager::pack_project` on a
//! KraftKit project (the conformance inputs as a Kraftfile project give the conformance
//! digests) and `pack_on_runtime` on a runtime package in the store (its layers reused).

use ukpm::{Architecture, PackOptions, PackageManager, Plat, ProjectOptions, Query, RuntimeTarget, Target};
use ukpm_test::conformance;

fn write(path: &std::path::Path, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, bytes).unwrap();
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn options(reference: &str) -> PackOptions {
    let mut options = PackOptions::new(reference.parse().unwrap());
    options.created = Some("2024-10-21T12:00:00Z".into());
    options
        .annotations
        .insert("sh.kraftkit.version".into(), "0.9.2".into());
    options
}

#[tokio::test]
async fn pack_project_gives_the_conformance_index() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("helloworld");
    write(
        &proj.join("Kraftfile"),
        b"spec: v0.6\nunikraft: stable\ntargets: [qemu/x86_64]\nrootfs: initramfs.cpio\n\
          cmd: [\"/helloworld\", \"--greeting\", \"hi & bye\"]\n",
        0o644,
    );
    // No `name:`: the folder's name is the target's, as KraftKit's UK_NAME.
    write(
        &proj.join(".unikraft/build/helloworld_qemu-x86_64"),
        conformance::KERNEL_BYTES,
        0o755,
    );
    write(&proj.join("initramfs.cpio"), conformance::INITRD_BYTES, 0o644);
    let manager = PackageManager::builder()
        .store_dir(dir.path().join("store"))
        .build()
        .unwrap();
    let packages = manager
        .pack_project(&proj, &ProjectOptions::new(options(conformance::REFERENCE)))
        .await
        .unwrap();
    assert_eq!(packages.len(), 1);
    assert_eq!(packages[0].manifest.digest.to_string(), conformance::MANIFEST);
    assert_eq!(
        packages[0].index.as_ref().unwrap().digest.to_string(),
        conformance::INDEX
    );
}

#[tokio::test]
async fn pack_on_runtime_reuses_the_runtime_layers_and_config() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("kernel"), conformance::KERNEL_BYTES, 0o755);
    write(&dir.path().join("old.cpio"), b"OLD INITRD\n", 0o644);
    write(&dir.path().join("new.cpio"), conformance::INITRD_BYTES, 0o644);
    write(
        &dir.path().join("runtime.config"),
        b"CONFIG_UK_FULLVERSION=\"0.18.0~abc\"\n",
        0o644,
    );
    let manager = PackageManager::builder()
        .store_dir(dir.path().join("store"))
        .build()
        .unwrap();
    let mut runtime = Target::new(dir.path().join("kernel"), Architecture::Arm64, Plat::Fc);
    runtime.kconfig = Some(dir.path().join("runtime.config"));
    runtime.initrd = Some(ukpm::Rootfs::Cpio(dir.path().join("old.cpio")));
    runtime.command = vec!["/default".into()];
    let mut runtime_options = options("runtimes/base:1");
    runtime_options.labels.insert("from".into(), "runtime".into());
    let base = manager.pack(&runtime, &runtime_options).await.unwrap();
    let base_manifest = manager.catalog().read_manifest(&base.manifest).await.unwrap();

    let target = RuntimeTarget {
        rootfs: Some(ukpm::Rootfs::Cpio(dir.path().join("new.cpio"))),
        command: vec!["/app".into()],
        query: Query {
            platform: Some(Plat::Fc),
            ..Query::default()
        },
    };
    let mut app_options = options("apps/app:1");
    app_options.labels.insert("team".into(), "web".into());
    app_options.env = vec!["MODE=prod".into()];
    let packed = manager
        .pack_on_runtime("runtimes/base:1", &target, &app_options)
        .await
        .unwrap();
    assert_eq!(packed.len(), 1);
    assert_eq!(packed[0].plat_arch(), "fc/arm64");
    let manifest = manager
        .catalog()
        .read_manifest(&packed[0].manifest)
        .await
        .unwrap();
    let config = manager.catalog().read_config(&manifest).await.unwrap();
    assert_eq!(manifest.layers.len(), 2);
    assert_eq!(manifest.layers[0], base_manifest.layers[0]);
    assert_eq!(manifest.layers[1].digest.to_string(), conformance::INITRD_LAYER);
    assert_eq!(config.os_version, "0.18.0~abc");
    assert_eq!(packed[0].platform, base.platform);
    assert_eq!(config.config.cmd, ["/app"]);
    assert_eq!(config.config.env, ["MODE=prod"]);
    assert_eq!(
        config.config.labels.get("from").map(String::as_str),
        Some("runtime")
    );
    assert_eq!(config.config.labels.get("team").map(String::as_str), Some("web"));
}
