//! The library's default credentials: a `PackageManager` built without `.credentials(...)`
//! takes KraftKit's `config.yaml` (here given by `.kraftkit_config`) before the docker
//! `config.json`, and its `verify_ssl: false` hosts, against real registries.

use ukpm::{Architecture, PackOptions, PackageManager, Plat, Target};
use ukpm_test::registry::Registry;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn manager(dir: &std::path::Path, kraftkit_yaml: &str) -> PackageManager {
    fs_err::write(dir.join("config.yaml"), kraftkit_yaml).unwrap();
    PackageManager::builder()
        .store_dir(dir.join("store"))
        .kraftkit_config(dir.join("config.yaml"))
        .docker_config(dir.join("docker.json"))
        .build()
        .unwrap()
}

fn pack_and_push(manager: &PackageManager, dir: &std::path::Path, remote: &str) -> ukpm::Result<()> {
    let rt = runtime();
    let kernel = dir.join("kernel");
    fs_err::write(&kernel, b"kernel bytes").unwrap();
    let reference: ukpm::types::Reference = remote.parse().unwrap();
    rt.block_on(manager.pack(
        &Target::new(&kernel, Architecture::X86_64, Plat::Qemu),
        &PackOptions::new(reference.clone()),
    ))?;
    rt.block_on(manager.push(&reference, None)).map(|_| ())
}

#[test]
fn the_default_chain_reads_kraftkits_config_before_dockers() {
    let registry = Registry::basic("kk", "kk-lib-pw");
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    // The docker file has a wrong password for the host: KraftKit's entry must win.
    fs_err::write(
        dir.path().join("docker.json"),
        format!(r#"{{"auths":{{"{host}":{{"username":"kk","password":"wrong"}}}}}}"#),
    )
    .unwrap();
    let m = manager(
        dir.path(),
        &format!("auth:\n  \"{host}\": {{user: kk, token: kk-lib-pw}}\n"),
    );
    assert!(
        m.credential_origin(&host)
            .unwrap()
            .contains("config.yaml (auth: "),
        "{}",
        m.credential_origin(&host).unwrap()
    );
    pack_and_push(&m, dir.path(), &format!("{host}/lib/a:v1")).expect("KraftKit's entry is used");

    let m = manager(dir.path(), "auth: {}\n");
    let err = pack_and_push(&m, dir.path(), &format!("{host}/lib/a:v2")).unwrap_err();
    assert!(err.to_string().contains("docker.json"), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
}

#[test]
fn verify_ssl_false_in_kraftkits_config_reaches_a_self_signed_registry() {
    let registry = Registry::tls();
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let m = manager(
        dir.path(),
        &format!("auth:\n  \"{host}\": {{verify_ssl: false}}\n"),
    );
    pack_and_push(&m, dir.path(), &format!("{host}/lib/tls:v1")).expect("verify_ssl: false connects");
    let m = manager(dir.path(), "");
    pack_and_push(&m, dir.path(), &format!("{host}/lib/tls:v2")).expect_err("verified by default");
}
