//! KraftKit's `kraft pkg` flag names and forms, typed as a KraftKit user types them: each
//! alias must do exactly what ukpm's own form does (same stdout, same store), conflicting forms
//! are usage errors (exit 2), `-o yaml` is the `--json` document, `pull -o DIR` unpacks against
//! a real docker-registry, and `--strategy prompt` asks on a terminal (a pty from `script`).

mod common;

use common::{index_platforms, pack, ukpm};
use serde_json::{Value, json};
use ukpm_test::registry::Registry;
use ukpm_test::{TestEnv, conformance, require_program};

/// `ukpm` with the words of `line` (no quoting: tests that need spaces use `.args`).
fn run(env: &TestEnv, line: &str) -> ukpm_test::Outcome {
    ukpm(env)
        .env("SOURCE_DATE_EPOCH", conformance::SOURCE_DATE_EPOCH)
        .args(line.split_whitespace())
        .run()
}

/// A store with `app` packed for x86_64/qemu and arm64/fc, and `other` for x86_64/xen.
fn populated() -> TestEnv {
    let env = TestEnv::new();
    pack(&env, "app", "x86_64", "qemu", &["--cmd", "one"]).assert_success();
    pack(&env, "app", "arm64", "fc", &[]).assert_success();
    pack(&env, "other:v1", "x86_64", "xen", &[]).assert_success();
    env
}

/// The YAML document parsed into the JSON data model, to compare with `--json`.
fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
}

#[test]
fn pack_forms_make_the_same_package() {
    let own = "pack app --kernel kernel --arch x86_64 --plat qemu";
    let forms = [
        "pack --name app --kernel kernel --arch x86_64 --plat qemu",
        "pack -n app -k kernel -m x86_64 -p qemu",
        "pkg -n app -k kernel --plat qemu/x86_64",
        "pack app -k kernel --platform qemu/x86_64",
        "pack app -k kernel --platform kvm/amd64 --arch x86_64",
        "pack -n app -k kernel -p qemu/x86_64 --strategy merge",
    ];
    let expected = {
        let env = TestEnv::new();
        env.conformance_inputs();
        let out = run(&env, own);
        out.assert_success();
        out.stdout
    };
    for form in forms {
        let env = TestEnv::new();
        env.conformance_inputs();
        let out = run(&env, form);
        out.assert_success();
        assert_eq!(out.stdout, expected, "`{form}` packed something else");
    }
}

#[test]
fn args_are_shell_words_and_dbg_is_the_kernel_beside() {
    let with = |extra: &[&str]| {
        let env = TestEnv::new();
        env.conformance_inputs();
        env.write("kernel.dbg", b"debug kernel", 0o755);
        let out = ukpm(&env)
            .env("SOURCE_DATE_EPOCH", conformance::SOURCE_DATE_EPOCH)
            .args(["pack", "app", "-k", "kernel", "-p", "qemu/x86_64"])
            .args(extra)
            .run();
        out.assert_success();
        let inspected = ukpm(&env).args(["--json", "inspect", "app"]).run().json();
        (out.stdout, inspected)
    };
    let (own, _) = with(&["--cmd", "/hello", "--cmd", "--greeting", "--cmd", "hi there"]);
    for form in [
        &["--args", "/hello --greeting \"hi there\""][..],
        &["-a", "/hello --greeting 'hi there'"],
        &["-a", "/hello", "-a", "--greeting \"hi there\""],
        &["-a", "/hello --greeting", "--", "hi there"],
        &["--", "/hello", "--greeting", "hi there"],
    ] {
        assert_eq!(with(form).0, own, "{form:?}");
    }
    // Unlike go-shellwords, an unquoted `;` neither ends the command nor is lost.
    let (_, inspected) = with(&["-a", "/bin/x a;b c&d"]);
    assert_eq!(
        inspected["manifests"][0]["config"]["config"]["Cmd"],
        json!(["/bin/x", "a;b", "c&d"])
    );

    // --dbg packs KERNEL.dbg at /unikraft/bin/kernel.dbg, as --kernel-dbg KERNEL.dbg does.
    let (dbg, inspected) = with(&["--dbg"]);
    assert_eq!(with(&["--kernel-dbg", "kernel.dbg"]).0, dbg);
    assert_eq!(
        inspected["manifests"][0]["manifest"]["layers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn ls_and_inspect_forms_print_the_same() {
    let env = populated();
    let same = |own: &str, forms: &[&str]| {
        let expected = run(&env, own);
        expected.assert_success();
        for form in forms {
            let out = run(&env, form);
            out.assert_success();
            assert_eq!(out.stdout, expected.stdout, "`{form}` differs from `{own}`");
        }
    };
    same("ls", &["ls -o table", "list", "ls --all", "list --all -o table"]);
    same("--json ls", &["ls -o json", "list -o json", "--json ls -o json"]);
    same(
        "ls --plat qemu --arch x86_64",
        &[
            "ls --plat qemu/x86_64",
            "ls --platform qemu/x86_64",
            "ls -p kvm/amd64 -m x86_64",
        ],
    );
    same(
        "inspect app",
        &["info app", "show app", "get app", "i app", "show app -o table"],
    );
    same(
        "--json inspect app",
        &["show app -o json", "get -o json app", "info app -o json"],
    );
    same(
        "unpack app out --plat fc --arch arm64 --force",
        &["unpack app out --platform fc/arm64 --force"],
    );

    // -o yaml is the --json document in YAML.
    for (own, form) in [
        ("--json ls", "ls -o yaml"),
        ("--json inspect app", "show app -o yaml"),
        ("--json inspect other:v1", "get other:v1 -o yaml"),
    ] {
        let json = run(&env, own).json();
        let out = run(&env, form);
        out.assert_success();
        assert_eq!(yaml(&out.stdout), json, "`{form}`");
    }

    // -o list: a key: value block per package.
    let list = run(&env, "ls -o list --plat qemu");
    list.assert_success();
    assert!(
        list.stdout
            .starts_with("name: unikraft.org/app\ntag: latest\narch: x86_64\nplat: qemu\n")
    );
    assert_eq!(list.stdout.matches("name: ").count(), 1, "{}", list.stdout);
    assert_eq!(run(&env, "ls -o list").stdout.split("\n\n").count(), 3);
}

#[test]
fn rm_all_short_form() {
    for form in ["rm --all", "rm -a", "remove -a"] {
        let env = populated();
        run(&env, form).assert_success();
        assert_eq!(run(&env, "--json ls").json()["packages"], json!([]), "`{form}`");
    }
}

#[test]
fn conflicting_forms_are_usage_errors() {
    let env = populated();
    env.write("kernel.dbg", b"debug", 0o755);
    for line in [
        "pack app -n app -k kernel -p qemu/x86_64",
        "pack -k kernel -p qemu/x86_64",
        "pack app -k kernel -p qemu",
        "pack app -k kernel -p qemu/x86_64 --arch arm64",
        "pack app -k kernel -p qemu/x86_64 -a x --cmd y",
        "pack app -k kernel -p qemu/x86_64 --dbg --kernel-dbg kernel.dbg",
        "pack app -k kernel -p qemu/x86_64 --strategy yolo",
        "ls --plat qemu/x86_64 --arch arm64",
        "unpack app out --platform fc/arm64 -m x86_64",
        "pull app --plat qemu/arm64 --arch x86_64",
        "pull app --all -o out",
        "pull app -A --plat qemu",
        "--json ls -o yaml",
        "--json show app -o table",
        "ls -o csv",
        "show app -o list",
    ] {
        let out = run(&env, line);
        assert_eq!(out.code, 2, "`{line}` is not a usage error:\n{}", out.describe());
    }
    // An unclosed quote in --args: a usage error, naming the flag.
    let out = ukpm(&env)
        .args([
            "pack",
            "app",
            "-k",
            "kernel",
            "-p",
            "qemu/x86_64",
            "-a",
            "/x \"unclosed",
        ])
        .run();
    assert_eq!(out.code, 2, "{}", out.describe());
    assert!(out.stderr.contains("--args"), "{}", out.stderr);
    // --dbg without the debug kernel: an error that names the file it looked for.
    let fresh = TestEnv::new();
    fresh.conformance_inputs();
    let out = run(&fresh, "pack app -k kernel -p qemu/x86_64 --dbg");
    out.assert_failure();
    assert!(out.stderr.contains("kernel.dbg"), "{}", out.stderr);
}

#[test]
fn strategy_prompt_is_refused_without_a_terminal() {
    let env = populated();
    let before = env.read("store/index.json");
    let out = ukpm(&env)
        .args([
            "pack",
            "app",
            "-k",
            "kernel",
            "-p",
            "qemu/x86_64",
            "--strategy",
            "prompt",
        ])
        .stdin("o\n")
        .run();
    out.assert_code(1);
    assert!(out.stderr.contains("--strategy prompt"), "{}", out.stderr);
    assert!(out.stderr.contains("terminal"), "{}", out.stderr);
    assert_eq!(
        env.read("store/index.json"),
        before,
        "a refused pack changed the store"
    );
}

/// `ukpm ...` run by `script` on a pty, `input` typed on it.
fn on_a_terminal(env: &TestEnv, line: &str, input: &str) -> ukpm_test::Outcome {
    let script = require_program("script", "bsdutils");
    let command = format!(
        "SOURCE_DATE_EPOCH={} UKPM_STORE={} {} {line}",
        conformance::SOURCE_DATE_EPOCH,
        env.store().display(),
        common::UKPM
    );
    env.command(script)
        .args(["-qec", &command, "/dev/null"])
        .stdin(input)
        .run()
}

#[test]
fn strategy_prompt_asks_on_a_terminal() {
    let env = populated();
    let line = "pack app -k kernel -p qemu/x86_64 --cmd two --strategy prompt";
    // A nonsense answer asks again; `o` overwrites the whole index.
    let out = on_a_terminal(&env, line, "x\no\n");
    out.assert_success();
    assert_eq!(out.stdout.matches("already exists").count(), 2, "{}", out.stdout);
    assert_eq!(index_platforms(&env, "app"), ["x86_64/qemu"]);

    // `merge` keeps the other platforms; `a` aborts with the conflict error.
    pack(&env, "app", "arm64", "fc", &[]).assert_success();
    on_a_terminal(&env, line, "merge\n").assert_success();
    assert_eq!(index_platforms(&env, "app"), ["arm64/fc", "x86_64/qemu"]);
    let out = on_a_terminal(&env, line, "a\n");
    assert_eq!(out.code, 1, "{}", out.describe());
    assert!(out.stdout.contains("and the strategy is abort"), "{}", out.stdout);
    assert_eq!(index_platforms(&env, "app"), ["arm64/fc", "x86_64/qemu"]);

    // A new name needs no question.
    let out = on_a_terminal(&env, "pack fresh -k kernel -p qemu/x86_64 --strategy prompt", "");
    out.assert_success();
    assert!(!out.stdout.contains("already exists"), "{}", out.stdout);
}

/// The platform the test machine is, as ukpm detects it.
fn host_plat() -> &'static str {
    let xen = fs_err::read_to_string("/proc/xen/capabilities").is_ok_and(|c| c.contains("control_d"));
    if xen { "xen" } else { "qemu" }
}

#[test]
fn pull_forms_against_a_registry() {
    let registry = Registry::plain();
    let remote = format!("{}/uk/hello:v1", registry.host());
    let env = TestEnv::new();
    common::pack_conformance(&env).assert_success();
    pack(&env, conformance::REFERENCE, "arm64", "fc", &[]).assert_success();
    // `ph` is push.
    run(&env, &format!("ph {} --to {remote}", conformance::REFERENCE)).assert_success();

    // pull -o DIR (and `pl`): pulled, then unpacked, as `pull` then `unpack` do.
    let own = TestEnv::new();
    run(&own, &format!("pull {remote} --plat qemu --arch x86_64")).assert_success();
    run(&own, &format!("unpack {remote} out --plat qemu")).assert_success();
    for form in [
        format!("pull {remote} -o out --plat qemu/x86_64"),
        format!("pl {remote} --output out --platform qemu/x86_64"),
    ] {
        let env = TestEnv::new();
        let out = run(&env, &form);
        out.assert_success();
        assert_eq!(
            env.read("out/unikraft/bin/kernel"),
            conformance::KERNEL_BYTES,
            "`{form}`"
        );
        assert_eq!(
            env.read("out/unikraft/bin/initrd"),
            conformance::INITRD_BYTES,
            "`{form}`"
        );
        assert_eq!(env.dir_state("out"), own.dir_state("out"), "`{form}`");
        assert_eq!(
            run(&env, "--json ls").json(),
            run(&own, "--json ls").json(),
            "`{form}`"
        );
    }
    let env = TestEnv::new();
    let json = run(&env, &format!("--json pull {remote} -o out -p qemu/x86_64")).json();
    assert_eq!(json["unpacked"]["kernel"], "out/unikraft/bin/kernel");
    assert_eq!(json["packages"].as_array().unwrap().len(), 1);
    // -o with two packages pulled is refused (they stay in the store): no silent overwrite.
    let env = TestEnv::new();
    let out = run(&env, &format!("pull {remote} {remote} -o out --plat qemu/x86_64"));
    out.assert_failure();
    assert!(out.stderr.contains("-o unpacks one package"), "{}", out.stderr);
    assert!(!env.path("out").exists());

    // --all and -A are --all-platforms.
    let own = TestEnv::new();
    run(&own, &format!("pull {remote} --all-platforms")).assert_success();
    for form in ["--all", "-A"] {
        let env = TestEnv::new();
        run(&env, &format!("pull {remote} {form}")).assert_success();
        assert_eq!(
            run(&env, "--json ls").json(),
            run(&own, "--json ls").json(),
            "`{form}`"
        );
    }

    // Without --arch/--plat: this machine's architecture and platform, said on stderr.
    let env = TestEnv::new();
    let out = run(&env, &format!("pull {remote}"));
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    let picked = format!("note: pulling for {}/{arch}", host_plat());
    assert!(out.stderr.contains(&picked), "{}", out.stderr);
    if host_plat() == "qemu" && arch == "x86_64" {
        out.assert_success();
        assert_eq!(
            common::rows(&run(&env, "--json ls")),
            [format!("{remote} x86_64/qemu")]
        );
    }
    // -q keeps it quiet.
    let env = TestEnv::new();
    assert!(!run(&env, &format!("-q pull {remote}")).stderr.contains("note:"));
}

#[test]
fn pack_push_packs_then_pushes() {
    let registry = Registry::plain();
    let remote = format!("{}/uk/app:1", registry.host());
    let env = TestEnv::new();
    env.conformance_inputs();
    let out = run(
        &env,
        &format!("--json pack -n {remote} -k kernel -p qemu/x86_64 -P"),
    );
    out.assert_success();
    let json = out.json();
    let index = json["package"]["index"].clone();
    assert_eq!(json["pushed"]["digest"], index, "{json}");
    assert_eq!(json["pushed"]["reference"], remote);

    let other = TestEnv::new();
    let pulled = run(&other, &format!("--json pull {remote} --plat qemu/x86_64")).json();
    assert_eq!(pulled["packages"][0]["index"], index);

    // The human form: the packed name@digest, then the pushed one.
    let out = run(&env, &format!("pack {remote} -k kernel -p qemu/x86_64 --push"));
    out.assert_success();
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
}
