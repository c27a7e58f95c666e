//! Library tests of whole operations on a real local store.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ukpm_types::{Index, Manifest};

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    manager: PackageManager,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let manager = PackageManager::builder()
            .store_dir(dir.path().join("store"))
            .build()
            .unwrap();
        Fixture { dir, manager }
    }

    fn file(&self, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = self.dir.path().join(name);
        fs_err::write(&path, bytes).unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn store_root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn blob(&self, digest: &Digest) -> Vec<u8> {
        fs_err::read(self.store_root().join("blobs/sha256").join(digest.hex())).unwrap()
    }

    fn ref_target(&self, name: &str) -> Descriptor {
        let index: Index =
            serde_json::from_slice(&fs_err::read(self.store_root().join("index.json")).unwrap()).unwrap();
        index
            .manifests
            .into_iter()
            .find(|d| {
                d.annotations
                    .get("org.opencontainers.image.ref.name")
                    .map(String::as_str)
                    == Some(name)
            })
            .unwrap()
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn conformance_target(fx: &Fixture) -> (Target, PackOptions) {
    let kernel = fx.file("kernel", b"UNIKRAFT-KERNEL\n", 0o755);
    let initrd = fx.file("initramfs.cpio", b"UNIKRAFT-INITRD\n", 0o644);
    let mut target = Target::new(kernel, Architecture::X86_64, Plat::Qemu);
    target.initrd = Some(crate::Rootfs::Cpio(initrd));
    target.command = vec!["/helloworld".into(), "--greeting".into(), "hi & bye".into()];
    let mut options = PackOptions::new("unikraft.org/helloworld:latest".parse().unwrap());
    options.created = Some(rfc3339(1_729_512_000));
    options
        .annotations
        .insert("sh.kraftkit.version".into(), "0.9.2".into());
    (target, options)
}

/// The five digests of the spec's KraftKit 0.9.2 conformance vector.
#[test]
fn kraftkit_conformance_digests() {
    let fx = Fixture::new();
    let (target, options) = conformance_target(&fx);
    let package = run(fx.manager.pack(&target, &options)).unwrap();
    let index = package.index.clone().unwrap();
    assert_eq!(
        index.digest.to_string(),
        "sha256:d483f207e6b4e93ae5c36598da9d9b22345543e885fb025a4b39aeab93189687"
    );
    assert_eq!(index.size, 819);
    assert_eq!(
        package.manifest.digest.to_string(),
        "sha256:43e9c05b4653dfc4bdb95e4dea3c87f6e671d434ab6a48080a05c84bb75c07bc"
    );
    assert_eq!(package.manifest.size, 1092);
    let manifest: Manifest = serde_json::from_slice(&fx.blob(&package.manifest.digest)).unwrap();
    assert_eq!(
        manifest.config.digest.to_string(),
        "sha256:766f6534517772b4e626ac6ad55bc5d784a946e5a56d1a709d8a0a887ae3d594"
    );
    assert_eq!(manifest.config.size, 370);
    let layers: Vec<String> = manifest.layers.iter().map(|l| l.digest.to_string()).collect();
    assert_eq!(
        layers,
        [
            "sha256:35de056c2eb649ba307f61360e60d7349352e6261782a49a38510a814b4e8f01",
            "sha256:f3765f69a3820cf85e208695c6384308776c2b7d106a84423e92eee165b37c67"
        ]
    );
    // The exact config bytes of the spec.
    assert_eq!(
        String::from_utf8(fx.blob(&manifest.config.digest)).unwrap(),
        r#"{"architecture":"x86_64","os":"qemu","os.features":["CONFIG_ARCH_X86_64=y","CONFIG_KVM_VMM_QEMU=y","CONFIG_PLAT_KVM=y"],"config":{"Cmd":["/helloworld","--greeting","hi \u0026 bye"]},"rootfs":{"type":"layers","diff_ids":["sha256:35de056c2eb649ba307f61360e60d7349352e6261782a49a38510a814b4e8f01","sha256:f3765f69a3820cf85e208695c6384308776c2b7d106a84423e92eee165b37c67"]}}"#
    );
}

/// The spec's Kraftfile variant: os.version, Env, Labels and the kernel-version annotation.
#[test]
fn kraftkit_conformance_with_kconfig_env_and_labels() {
    let fx = Fixture::new();
    let (mut target, mut options) = conformance_target(&fx);
    let kconfig = fx.file(
        ".config",
        b"CONFIG_UK_FULLVERSION=\"0.17.0~5fb4fd4\"\nCONFIG_UK_NAME=\"helloworld\"\nCONFIG_LIBVFSCORE_AUTOMOUNT_UP=y\nCONFIG_UK_BASE=/src/unikraft\n",
        0o644,
    );
    target.kconfig = Some(kconfig);
    options.env = vec!["PATH=/usr/bin".into()];
    options.labels.insert("org.example.team".into(), "demo".into());
    let package = run(fx.manager.pack(&target, &options)).unwrap();
    let manifest: Manifest = serde_json::from_slice(&fx.blob(&package.manifest.digest)).unwrap();
    assert_eq!(
        manifest.config.digest.to_string(),
        "sha256:298868ba3ff7d53bde503544d85053f30bf728602d76105a889fc126c273e28d"
    );
    assert_eq!(
        package.manifest.digest.to_string(),
        "sha256:b9487f95fe85c472983395e4fabeb0d43733d6dc74318361437103a0d988f8e7"
    );
    assert_eq!(
        package.index.unwrap().digest.to_string(),
        "sha256:00c2babc666a8eabf5bc62e74885907a4e7bb6b416fefe5c2c861ba657f8577f"
    );
}

#[test]
fn packing_twice_gives_the_same_digests_and_no_wall_clock_time() {
    let fx = Fixture::new();
    let (target, mut options) = conformance_target(&fx);
    options.created = None;
    let a = run(fx.manager.pack(&target, &options)).unwrap();
    let b = run(fx.manager.pack(&target, &options)).unwrap();
    assert_eq!(a.manifest.digest, b.manifest.digest);
    assert_eq!(a.index.unwrap().digest, b.index.unwrap().digest);
    assert!(
        !a.manifest
            .annotations
            .contains_key("org.opencontainers.image.created")
    );
    assert_eq!(run(fx.manager.list(&Query::default())).unwrap().len(), 1);
}

#[test]
fn merge_adds_platforms_and_abort_refuses_a_taken_slot() {
    let fx = Fixture::new();
    let kernel = fx.file("kernel", b"k", 0o755);
    let reference: Reference = "app:1".parse().unwrap();
    let options = PackOptions::new(reference.clone());
    run(fx
        .manager
        .pack(&Target::new(&kernel, Architecture::X86_64, Plat::Qemu), &options))
    .unwrap();
    run(fx
        .manager
        .pack(&Target::new(&kernel, Architecture::Arm64, Plat::Qemu), &options))
    .unwrap();
    run(fx
        .manager
        .pack(&Target::new(&kernel, Architecture::X86_64, Plat::Fc), &options))
    .unwrap();
    let listed: Vec<String> = run(fx.manager.list(&Query::default()))
        .unwrap()
        .iter()
        .map(Package::plat_arch)
        .collect();
    assert_eq!(listed, ["qemu/x86_64", "qemu/arm64", "fc/x86_64"]);

    // Same slot, other content: merge replaces, abort refuses and leaves the store as it was.
    let other = fx.file("kernel2", b"k2", 0o755);
    let before = fx.ref_target("unikraft.org/app:1");
    let mut abort = options.clone();
    abort.strategy = MergeStrategy::Abort;
    let blobs = || {
        fs_err::read_dir(fx.store_root().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let blobs_before = blobs();
    let err = run(fx
        .manager
        .pack(&Target::new(&other, Architecture::X86_64, Plat::Fc), &abort))
    .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(fx.ref_target("unikraft.org/app:1"), before);
    // Refused before anything was written: no orphan blobs for gc to find.
    assert_eq!(blobs(), blobs_before);
    // Abort means abort, even for identical content (as in KraftKit).
    let same = Target::new(&kernel, Architecture::X86_64, Plat::Qemu);
    let err = run(fx.manager.pack(&same, &abort)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    run(fx
        .manager
        .pack(&Target::new(&other, Architecture::X86_64, Plat::Fc), &options))
    .unwrap();
    let listed = run(fx.manager.list(&Query::default())).unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2].plat_arch(), "fc/x86_64");

    let mut overwrite = options.clone();
    overwrite.strategy = MergeStrategy::Overwrite;
    run(fx
        .manager
        .pack(&Target::new(&other, Architecture::Arm, Plat::Xen), &overwrite))
    .unwrap();
    let listed: Vec<String> = run(fx.manager.list(&Query::default()))
        .unwrap()
        .iter()
        .map(Package::plat_arch)
        .collect();
    assert_eq!(listed, ["xen/arm"]);
}

#[test]
fn list_filters_by_platform_kconfig_and_name() {
    let fx = Fixture::new();
    let kernel = fx.file("kernel", b"k", 0o755);
    let kconfig = fx.file(".config", b"CONFIG_LIBPOSIX_SOCKET=y\n", 0o644);
    let mut with_kconfig = Target::new(&kernel, Architecture::X86_64, Plat::Qemu);
    with_kconfig.kconfig = Some(kconfig);
    run(fx
        .manager
        .pack(&with_kconfig, &PackOptions::new("nginx".parse().unwrap())))
    .unwrap();
    run(fx.manager.pack(
        &Target::new(&kernel, Architecture::Arm64, Plat::Fc),
        &PackOptions::new("redis".parse().unwrap()),
    ))
    .unwrap();
    let names = |q: Query| -> Vec<String> {
        run(fx.manager.list(&q))
            .unwrap()
            .iter()
            .map(|p| p.reference.to_string())
            .collect()
    };
    assert_eq!(names(Query::default()).len(), 2);
    let q = Query {
        kconfig: vec!["CONFIG_LIBPOSIX_SOCKET=y".into()],
        ..Query::default()
    };
    assert_eq!(names(q), ["unikraft.org/nginx:latest"]);
    let q = Query {
        kconfig: vec!["CONFIG_LIBPOSIX_SOCKET".into()],
        ..Query::default()
    };
    assert_eq!(names(q), ["unikraft.org/nginx:latest"]);
    let q = Query {
        architecture: Some(Architecture::Arm64),
        ..Query::default()
    };
    assert_eq!(names(q), ["unikraft.org/redis:latest"]);
    let q = Query {
        platform: Some(Plat::Qemu),
        architecture: Some(Architecture::Arm64),
        ..Query::default()
    };
    assert!(names(q).is_empty());
    let q = Query {
        name: Some("red*".into()),
        ..Query::default()
    };
    assert_eq!(names(q), ["unikraft.org/redis:latest"]);
}

fn unpack_dir(fx: &Fixture) -> PathBuf {
    fx.dir.path().join("out")
}

#[test]
fn unpack_writes_kernel_and_initrd_with_modes() {
    let fx = Fixture::new();
    let (target, options) = conformance_target(&fx);
    run(fx.manager.pack(&target, &options)).unwrap();
    let out = unpack_dir(&fx);
    let unpacked = run(fx.manager.unpack(&options.reference, &Query::default(), &out)).unwrap();
    let kernel = out.join("unikraft/bin/kernel");
    assert_eq!(unpacked.kernel.as_deref(), Some(kernel.as_path()));
    assert_eq!(fs_err::read(&kernel).unwrap(), b"UNIKRAFT-KERNEL\n");
    assert_eq!(
        fs_err::metadata(&kernel).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(
        fs_err::read(out.join("unikraft/bin/initrd")).unwrap(),
        b"UNIKRAFT-INITRD\n"
    );
    assert_eq!(unpacked.cmd, ["/helloworld", "--greeting", "hi & bye"]);
    // Nothing but the image's files (no staging leftovers).
    let names: Vec<_> = fs_err::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["unikraft"]);
}

#[test]
fn unpack_refuses_a_corrupt_blob_by_name_and_writes_nothing() {
    let fx = Fixture::new();
    let (target, options) = conformance_target(&fx);
    let package = run(fx.manager.pack(&target, &options)).unwrap();
    let manifest: Manifest = serde_json::from_slice(&fx.blob(&package.manifest.digest)).unwrap();
    let kernel_layer = manifest.layers[0].digest;
    let path = fx.store_root().join("blobs/sha256").join(kernel_layer.hex());
    let mut bytes = fs_err::read(&path).unwrap();
    bytes[600] ^= 0x20;
    fs_err::write(&path, bytes).unwrap();
    let out = unpack_dir(&fx);
    let err = run(fx.manager.unpack(&options.reference, &Query::default(), &out)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    assert!(err.to_string().contains(&kernel_layer.to_string()), "{err}");
    let names: Vec<_> = fs_err::read_dir(&out).unwrap().collect();
    assert!(names.is_empty(), "unpack left {names:?}");
}

#[test]
fn unpack_never_follows_a_symlink_already_in_the_target() {
    let fx = Fixture::new();
    let (target, options) = conformance_target(&fx);
    run(fx.manager.pack(&target, &options)).unwrap();
    let out = unpack_dir(&fx);
    let elsewhere = fx.dir.path().join("elsewhere");
    fs_err::create_dir_all(&out).unwrap();
    fs_err::create_dir_all(&elsewhere).unwrap();
    fs_err::os::unix::fs::symlink(&elsewhere, out.join("unikraft")).unwrap();
    run(fx.manager.unpack(&options.reference, &Query::default(), &out)).unwrap();
    assert_eq!(fs_err::read_dir(&elsewhere).unwrap().count(), 0);
    assert!(out.join("unikraft/bin/kernel").is_file());
    assert!(
        !fs_err::symlink_metadata(out.join("unikraft"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn unpack_asks_to_choose_among_several_platforms() {
    let fx = Fixture::new();
    let kernel = fx.file("kernel", b"k", 0o755);
    let options = PackOptions::new("app".parse().unwrap());
    run(fx
        .manager
        .pack(&Target::new(&kernel, Architecture::X86_64, Plat::Qemu), &options))
    .unwrap();
    run(fx
        .manager
        .pack(&Target::new(&kernel, Architecture::Arm64, Plat::Qemu), &options))
    .unwrap();
    let out = unpack_dir(&fx);
    let err = run(fx.manager.unpack(&options.reference, &Query::default(), &out)).unwrap_err();
    assert!(matches!(err, Error::Ambiguous { .. }), "{err}");
    let q = Query {
        architecture: Some(Architecture::Arm64),
        ..Query::default()
    };
    let unpacked = run(fx.manager.unpack(&options.reference, &q, &out)).unwrap();
    assert_eq!(unpacked.package.plat_arch(), "qemu/arm64");
    let q = Query {
        platform: Some(Plat::Xen),
        ..Query::default()
    };
    let err = run(fx.manager.unpack(&options.reference, &q, &out)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn initrd_folder_becomes_a_reproducible_cpio() {
    let fx = Fixture::new();
    let kernel = fx.file("kernel", b"k", 0o755);
    let root = fx.dir.path().join("rootfs");
    fs_err::create_dir_all(root.join("etc")).unwrap();
    fs_err::write(root.join("etc/hostname"), "unikraft\n").unwrap();
    fs_err::os::unix::fs::symlink("hostname", root.join("etc/name")).unwrap();
    let mut target = Target::new(&kernel, Architecture::X86_64, Plat::Qemu);
    target.initrd = Some(crate::Rootfs::Dir(root.clone()));
    let options = PackOptions::new("fs".parse().unwrap());
    let a = run(fx.manager.pack(&target, &options)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs_err::write(root.join("etc/hostname"), "unikraft\n").unwrap();
    let b = run(fx.manager.pack(&target, &options)).unwrap();
    assert_eq!(a.manifest.digest, b.manifest.digest);
    let out = unpack_dir(&fx);
    let unpacked = run(fx.manager.unpack(&options.reference, &Query::default(), &out)).unwrap();
    let initrd = fs_err::read(unpacked.initrd.unwrap()).unwrap();
    // GNU cpio, not ukpm, reads the archive back.
    let entries = ukpm_test::cpio::list(&initrd);
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["/etc", "/etc/hostname", "/etc/name"]);
    assert_eq!(entries[1].size, 9);
    assert_eq!(entries[2].link_target.as_deref(), Some("hostname"));
}

#[test]
fn bad_inputs_are_refused_before_anything_is_written() {
    let fx = Fixture::new();
    let kernel = fx.file("kernel", b"k", 0o755);
    let missing = fx.dir.path().join("nope");
    let options = PackOptions::new("app".parse().unwrap());
    let err = run(fx
        .manager
        .pack(&Target::new(&missing, Architecture::X86_64, Plat::Qemu), &options))
    .unwrap_err();
    assert!(
        err.to_string().contains("kernel") && err.to_string().contains("nope"),
        "{err}"
    );
    let garbage = fx.file("garbage.config", b"CONFIG_A=y\nhello world\n", 0o644);
    let mut target = Target::new(&kernel, Architecture::X86_64, Plat::Qemu);
    target.kconfig = Some(garbage);
    let err = run(fx.manager.pack(&target, &options)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let mut target = Target::new(&kernel, Architecture::X86_64, Plat::Qemu);
    target.initrd = Some(crate::Rootfs::Cpio(missing.clone()));
    assert!(run(fx.manager.pack(&target, &options)).is_err());
    assert!(!fx.store_root().exists(), "a failed pack created the store");
}

#[test]
fn remove_and_gc_keep_shared_kernels() {
    let fx = Fixture::new();
    let kernel = fx.file("kernel", b"shared kernel", 0o755);
    let target = Target::new(&kernel, Architecture::X86_64, Plat::Qemu);
    let a = run(fx.manager.pack(&target, &PackOptions::new("a".parse().unwrap()))).unwrap();
    let mut other = target.clone();
    other.command = vec!["b".into()];
    run(fx.manager.pack(&other, &PackOptions::new("b".parse().unwrap()))).unwrap();
    let manifest: Manifest = serde_json::from_slice(&fx.blob(&a.manifest.digest)).unwrap();
    let kernel_blob = fx
        .store_root()
        .join("blobs/sha256")
        .join(manifest.layers[0].digest.hex());

    let err = run(fx
        .manager
        .remove::<Reference>(&["a".parse().unwrap(), "zzz".parse().unwrap()]))
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(run(fx.manager.list(&Query::default())).unwrap().len(), 2);

    run(fx.manager.remove::<Reference>(&["a".parse().unwrap()])).unwrap();
    let report = run(fx.manager.gc()).unwrap();
    assert!(!report.removed.is_empty());
    assert!(kernel_blob.exists());
    assert!(
        !fx.store_root()
            .join("blobs/sha256")
            .join(a.manifest.digest.hex())
            .exists()
    );
    run(fx.manager.remove_all()).unwrap();
    run(fx.manager.gc()).unwrap();
    assert!(!kernel_blob.exists());
}

#[test]
fn digest_references_resolve_to_indexes_and_manifests() {
    let fx = Fixture::new();
    let (target, options) = conformance_target(&fx);
    let package = run(fx.manager.pack(&target, &options)).unwrap();
    let by_manifest: Reference = format!("unikraft.org/helloworld@{}", package.manifest.digest)
        .parse()
        .unwrap();
    let out = unpack_dir(&fx);
    run(fx.manager.unpack(&by_manifest, &Query::default(), &out)).unwrap();
    let by_index: Reference = format!("unikraft.org/helloworld@{}", package.index.unwrap().digest)
        .parse()
        .unwrap();
    let inspection = run(fx.manager.inspect(&by_index)).unwrap();
    assert_eq!(inspection.manifests.len(), 1);
}

fn _assert_send(m: &PackageManager, t: &Target, o: &PackOptions, p: &Path) {
    fn is_send<T: Send>(_: T) {}
    is_send(m.pack(t, o));
    is_send(m.list(&Query::default()));
    is_send(m.unpack(&o.reference, &Query::default(), p));
}

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl Reporter for Recorder {
    fn on_step(&self, step: &crate::Step) {
        self.0.lock().unwrap().push(format!("step {step:?}"));
    }
    fn on_transfer_start(&self, subject: &crate::Subject) -> crate::TransferId {
        let mut events = self.0.lock().unwrap();
        events.push(format!(
            "start {} of {} {:?} {:?}",
            subject.kind, subject.reference, subject.size, subject.direction
        ));
        crate::TransferId(events.len() as u64)
    }
    fn on_transfer_progress(&self, _id: crate::TransferId, done: u64) {
        self.0.lock().unwrap().push(format!("progress {done}"));
    }
    fn on_transfer_complete(&self, _id: crate::TransferId) {
        self.0.lock().unwrap().push("finish".into());
    }
}

#[test]
fn pack_reports_steps_and_every_layer_byte() {
    let fx = Fixture::new();
    let recorder = std::sync::Arc::new(Recorder::default());
    let manager = PackageManager::builder()
        .store_dir(fx.store_root())
        .reporter(recorder.clone())
        .build()
        .unwrap();
    let (target, options) = conformance_target(&fx);
    run(manager.pack(&target, &options)).unwrap();
    let events = recorder.0.lock().unwrap().clone();
    assert_eq!(
        events[0],
        r#"step Pack { reference: Reference(unikraft.org/helloworld:latest), platform: "qemu/x86_64" }"#
    );
    assert_eq!(
        events[1],
        "start kernel of unikraft.org/helloworld:latest Some(2048) Write"
    );
    let kernel_end = events.iter().position(|e| e == "finish").unwrap();
    assert_eq!(events[kernel_end - 1], "progress 2048");
    assert!(events.contains(&"start initrd of unikraft.org/helloworld:latest Some(2048) Write".to_string()));
    assert_eq!(events.iter().filter(|e| *e == "finish").count(), 2);
}
