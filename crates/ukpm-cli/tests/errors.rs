//! Errors and hints that point the right way (issue 13, points 2 and 5), on the built binary
//! against real docker-registry instances: a registry's 404 points at the remote, never at the
//! store; a refused password names the user and a failed login never suggests logging in; a
//! typo in a stored name suggests the closest one; a pull without the platform it needs says
//! which was implied and how to choose; values refused on the command line exit 2; clap's
//! suggestions and `push SRC --to DST`; `--color` colours the labels and nothing else.

mod common;

use common::*;
use ukpm_test::registry::Registry;
use ukpm_test::{OciLayoutWriter, Outcome, TestEnv, require_program};

/// Whether stderr holds any escape sequence (colour or otherwise).
fn coloured(out: &Outcome) -> bool {
    out.stderr.contains('\x1b')
}

#[test]
fn a_registry_404_points_at_the_remote_not_the_store() {
    let registry = Registry::plain();
    let host = registry.host();
    let env = TestEnv::new();
    pack(&env, &format!("{host}/app/hello:1"), "x86_64", "qemu", &[]).assert_success();
    ukpm(&env)
        .args(["push", &format!("{host}/app/hello:1")])
        .run()
        .assert_success();

    for (args, remote) in [
        (vec!["pull", "--plat", "qemu"], format!("{host}/app/hello:2")),
        (vec!["pull", "--plat", "qemu"], format!("{host}/app/nothere:1")),
        (vec!["inspect", "--remote"], format!("{host}/app/hello:2")),
        (vec!["digest"], format!("{host}/app/nothere:1")),
    ] {
        let out = ukpm(&env).args(&args).arg(&remote).run();
        out.assert_failure();
        let repository = remote.rsplit_once(':').unwrap().0;
        assert!(
            out.stderr
                .contains(&format!("`ukpm ls --remote {repository}` lists the tags")),
            "{}",
            out.snapshot_text()
        );
        assert!(!out.stderr.contains("store"), "{}", out.snapshot_text());
    }
    // The command the hint gives works, and lists the tag that is there.
    let listed = ukpm(&env)
        .args(["ls", "--remote", &format!("{host}/app/hello")])
        .run();
    listed.assert_success();
    assert!(listed.stdout.contains("app/hello"), "{}", listed.snapshot_text());

    let out = ukpm(&env).args(["tags", &format!("{host}/app/nothere")]).run();
    out.assert_failure();
    assert!(
        out.stderr
            .contains(&format!("`ukpm ls --remote {host}` lists the repositories")),
        "{}",
        out.snapshot_text()
    );
}

#[test]
fn a_refused_password_names_the_user_and_a_failed_login_never_suggests_logging_in() {
    let registry = Registry::basic("tester", "s3cret-pw");
    let host = registry.host();
    let env = TestEnv::new();
    let login = |password: &str| {
        ukpm(&env)
            .env("DOCKER_CONFIG", env.path("docker"))
            .args(["login", &host, "-u", "tester", "--password-stdin"])
            .stdin(format!("{password}\n"))
            .run()
    };
    let out = login("wr0ng-pw");
    out.assert_failure();
    assert!(
        out.stderr.contains(&format!(
            "registry {host} refused the credentials for user tester\n"
        )),
        "{}",
        out.snapshot_text()
    );
    assert!(!out.stderr.contains("ukpm login"), "{}", out.snapshot_text());
    assert!(!out.stderr.contains("wr0ng-pw"), "{}", out.snapshot_text());
    assert!(!env.path("docker/config.json").exists());
    // Under --json too: the code says what happened.
    let json = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .args(["--json", "login", &host, "-u", "tester", "--password-stdin"])
        .stdin("wr0ng-pw\n")
        .run();
    json.assert_failure();
    assert_eq!(json.json()["error"]["code"], "unauthorized");

    login("s3cret-pw").assert_success();
    pack(&env, &format!("{host}/app:1"), "x86_64", "qemu", &[]).assert_success();
    let push = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .args(["push", &format!("{host}/app:1")])
        .run();
    push.assert_success();

    // The saved password changed on the registry's side: a pull says whose credentials were
    // refused and where they came from, and how to replace them.
    let config = env.path("docker/config.json");
    let saved = String::from_utf8(env.read("docker/config.json")).unwrap();
    let stale = saved.replace(&b64("tester:s3cret-pw"), &b64("tester:old-pw"));
    assert_ne!(saved, stale);
    env.write("docker/config.json", stale, 0o600);
    let out = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .args(["pull", "--plat", "qemu", &format!("{host}/app:1")])
        .run();
    out.assert_failure();
    assert!(
        out.stderr.contains(&format!(
            "refused the credentials for user tester (from {})",
            config.display()
        )),
        "{}",
        out.snapshot_text()
    );
    assert!(
        out.stderr.contains(&format!("`ukpm login {host}` replaces it")),
        "{}",
        out.snapshot_text()
    );
    assert!(!out.stderr.contains("old-pw"), "{}", out.snapshot_text());

    // No credentials at all: where they are looked for, and the login to run.
    let anonymous = ukpm(&env)
        .args(["pull", "--plat", "qemu", &format!("{host}/app:1")])
        .run();
    anonymous.assert_failure();
    assert!(
        anonymous.stderr.contains("has none for it")
            && anonymous.stderr.contains(&format!("run `ukpm login {host}`")),
        "{}",
        anonymous.snapshot_text()
    );
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn a_typo_in_a_stored_name_suggests_the_closest_one() {
    let env = TestEnv::new();
    pack(&env, "hello:1", "x86_64", "qemu", &[]).assert_success();
    pack(&env, "nginx:1.25", "x86_64", "qemu", &[]).assert_success();
    let before = env.dir_state("store");
    for args in [
        "inspect helo:1",
        "unpack hell:1 out",
        "rm hllo",
        "tag helo:1 other:1",
        "push hello:2",
        "save helo -o x.tar",
    ] {
        let out = ukpm(&env).args(args.split_whitespace()).run();
        out.assert_failure();
        assert!(
            out.stderr
                .contains("hint: did you mean `unikraft.org/hello:1`? `ukpm ls` lists what the store holds"),
            "{}",
            out.snapshot_text()
        );
    }
    let out = ukpm(&env).args(["inspect", "ngnix:1.25"]).run();
    assert!(
        out.stderr.contains("did you mean `unikraft.org/nginx:1.25`?"),
        "{}",
        out.snapshot_text()
    );
    // The name is there, the platform is not: where to see the ones it has.
    let out = ukpm(&env)
        .args(["unpack", "hello:1", "out", "--plat", "fc"])
        .run();
    out.assert_failure();
    assert!(
        out.stderr
            .contains("hint: `ukpm ls --name unikraft.org/hello` lists the platforms the store has for it"),
        "{}",
        out.snapshot_text()
    );
    // Nothing close: no guess.
    let out = ukpm(&env).args(["unpack", "redis", "out"]).run();
    out.assert_failure();
    assert!(!out.stderr.contains("did you mean"), "{}", out.snapshot_text());
    assert!(out.stderr.contains("`ukpm ls` lists what the store holds"));
    assert_eq!(env.dir_state("store"), before);
    assert!(!env.path("out").exists() && !env.path("x.tar").exists());
}

#[test]
fn a_suggested_name_from_a_foreign_store_is_escaped() {
    let env = TestEnv::new();
    let mut layout = OciLayoutWriter::create(env.store());
    let kernel = ukpm_test::tar_with_raw_names(&[(b"unikraft/bin/kernel", b"KERNEL\n")]);
    let kernel = layout.blob("application/vnd.oci.image.layer.v1.tar", &kernel);
    let image = layout.image("x86_64", "qemu", &[kernel]);
    layout.tag("V1\u{202e}", &image);
    layout.tag("Bad\rName!", &image);
    layout.finish();
    let out = ukpm(&env).args(["inspect", "V1"]).run();
    out.assert_failure();
    assert!(
        out.stderr.contains("did you mean `V1\\u{202e}`?"),
        "{}",
        out.snapshot_text()
    );
    assert!(!out.stderr.contains('\u{202e}'), "{:?}", out.stderr);
    // A warning in the log (a ref name no reference can stand for) is escaped too.
    let out = ukpm(&env).arg("ls").run();
    out.assert_success();
    assert!(out.stderr.contains("Bad\\rName!"), "{:?}", out.stderr);
    assert!(!out.stderr.contains('\r'), "{:?}", out.stderr);
}

#[test]
fn a_pull_without_the_platform_says_what_was_implied_and_how_to_choose() {
    let registry = Registry::plain();
    let host = registry.host();
    let env = TestEnv::new();
    let remote = format!("{host}/app:1");
    pack(&env, &remote, "x86_64", "fc", &[]).assert_success();
    pack(&env, &remote, "arm64", "xen", &[]).assert_success();
    ukpm(&env).args(["push", &remote]).run().assert_success();
    let other = TestEnv::new();

    // No flag: this machine's platform (qemu, as fc is never guessed) was taken.
    let out = ukpm(&other).args(["pull", &remote]).run();
    out.assert_failure();
    assert!(
        out.stderr.contains("it has: fc/x86_64, xen/arm64"),
        "{}",
        out.snapshot_text()
    );
    assert!(
        out.stderr.contains("no platform was given, so ukpm took qemu/"),
        "{}",
        out.snapshot_text()
    );
    assert!(
        out.stderr.contains("--plat fc/x86_64 (or --arch, --platform)") && out.stderr.contains("--all"),
        "{}",
        out.snapshot_text()
    );
    // A flag chose it: no word of a default.
    let out = ukpm(&other).args(["pull", &remote, "--plat", "qemu"]).run();
    out.assert_failure();
    assert!(
        out.stderr.contains("has no manifest for qemu"),
        "{}",
        out.snapshot_text()
    );
    assert!(
        !out.stderr.contains("no platform was given"),
        "{}",
        out.snapshot_text()
    );
    assert!(out.stderr.contains("--plat fc/x86_64"), "{}", out.snapshot_text());
    let json = ukpm(&other)
        .args(["--json", "pull", &remote, "--plat", "qemu"])
        .run();
    json.assert_failure();
    assert_eq!(json.json()["error"]["code"], "not_found");
    // Following the hint works.
    ukpm(&other)
        .args(["pull", &remote, "--plat", "fc/x86_64"])
        .run()
        .assert_success();
    let listed = ukpm(&other).arg("ls").run();
    assert!(listed.stdout.contains("fc"), "{}", listed.snapshot_text());
}

#[test]
fn values_refused_on_the_command_line_exit_2() {
    let env = TestEnv::new();
    env.conformance_inputs();
    let pack = "pack x:1 --kernel kernel";
    for (args, says) in [
        (
            format!("{pack} --arch mips --plat qemu"),
            "unknown architecture `mips`",
        ),
        (
            format!("{pack} --arch=mips --plat qemu"),
            "unknown architecture `mips`",
        ),
        (
            format!("{pack} --arch x86_64 --plat vmware"),
            "unknown platform `vmware`",
        ),
        (format!("{pack} --plat qemu/mips"), "unknown architecture `mips`"),
        (
            format!("{pack} --arch x86_64 --plat qemu --created yesterday"),
            "--created `yesterday`",
        ),
        (
            format!("{pack} --arch x86_64 --plat qemu --label novalue"),
            "--label `novalue`",
        ),
        (
            format!("{pack} --arch x86_64 --plat qemu --annotation novalue"),
            "--annotation `novalue`",
        ),
        (
            "pack Bad_Name! --kernel kernel --arch x86_64 --plat qemu".into(),
            "Bad_Name!",
        ),
        ("pull Bad_Name!".into(), "Bad_Name!"),
        ("pull x --arch mips".into(), "unknown architecture"),
        ("inspect Bad_Name!".into(), "Bad_Name!"),
        ("ls --arch mips".into(), "unknown architecture"),
        ("ls --plat vmware".into(), "unknown platform"),
        ("unpack x out --plat qemu/mips".into(), "unknown architecture"),
        ("copy Bad_Name! localhost:1/x:1".into(), "Bad_Name!"),
        ("digest x:1 --platform qemu/mips".into(), "unknown architecture"),
    ] {
        let out = ukpm(&env).args(args.split_whitespace()).run();
        out.assert_code(2);
        assert!(out.stderr.contains(says), "{}", out.snapshot_text());
        assert!(out.stderr.starts_with("error:") || out.stderr.contains("\nerror:"));
        let json = ukpm(&env).arg("--json").args(args.split_whitespace()).run();
        json.assert_code(2);
        assert_eq!(
            json.json()["error"]["code"],
            "invalid_input",
            "{}",
            json.snapshot_text()
        );
    }
    assert!(!env.store().exists());
    // Failures of the world, not of the command line, stay 1.
    ukpm(&env)
        .args([
            "pack",
            "x:1",
            "--kernel",
            "no-such-kernel",
            "--arch",
            "x86_64",
            "--plat",
            "qemu",
        ])
        .run()
        .assert_code(1);
    ukpm(&env).args(["unpack", "nothere", "out"]).run().assert_code(1);
}

#[test]
fn clap_suggests_commands_and_flags_and_push_points_at_to() {
    let env = TestEnv::new();
    let out = ukpm(&env).args(["pus", "hello"]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("'push'"), "{}", out.snapshot_text());
    let out = ukpm(&env).args(["pack", "x", "--kernl", "k"]).run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("a similar argument exists: '--kernel'"),
        "{}",
        out.snapshot_text()
    );
    let out = ukpm(&env)
        .args(["push", "hello:1", "127.0.0.1:5000/hello:1"])
        .run();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("tip: push takes one package; to push it under another name, give that with --to: `ukpm push hello:1 --to 127.0.0.1:5000/hello:1`"),
        "{}",
        out.snapshot_text()
    );
    let json = ukpm(&env)
        .args(["--json", "push", "hello:1", "127.0.0.1:5000/hello:1"])
        .run();
    json.assert_code(2);
    assert_eq!(json.json()["error"]["code"], "usage");
    assert!(
        json.json()["error"]["causes"][0]
            .as_str()
            .unwrap()
            .contains("--to")
    );
}

#[test]
fn color_always_colours_errors_hints_and_warnings_and_never_does_not() {
    let env = TestEnv::new();
    let registry = Registry::basic("tester", "pw");
    let host = registry.host();
    let error = |color: &str| {
        ukpm(&env)
            .args(["--color", color, "unpack", "nothere", "out"])
            .run()
    };
    let out = error("always");
    out.assert_failure();
    for label in ["error:", "hint:"] {
        assert!(
            out.stderr.contains(&format!("m{label}\x1b[0m")),
            "{label} is not coloured: {:?}",
            out.stderr
        );
    }
    assert!(!coloured(&error("never")));
    assert!(!coloured(&error("auto")), "stderr is no terminal here");
    // A warning (login -t), and a usage error, which is printed before the flags are parsed.
    let warned = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .args(["--color=always", "login", &host, "-u", "tester", "-t", "pw"])
        .run();
    warned.assert_success();
    assert!(warned.stderr.contains("mwarning:\x1b[0m"), "{:?}", warned.stderr);
    let usage = ukpm(&env).args(["--color", "always", "pus"]).run();
    usage.assert_code(2);
    assert!(usage.stderr.contains("merror:\x1b[0m"), "{:?}", usage.stderr);
    let usage = ukpm(&env).env("UKPM_COLOR", "always").args(["pus"]).run();
    assert!(usage.stderr.contains("merror:\x1b[0m"), "{:?}", usage.stderr);
    assert!(!coloured(&ukpm(&env).args(["--color", "never", "pus"]).run()));
}

/// `ukpm ARGS` on a pseudo-terminal (`script`), with `vars` set; what the terminal showed.
fn on_a_terminal(env: &TestEnv, vars: &str, args: &str) -> Outcome {
    let script = require_program("script", "bsdutils");
    let command = format!("{vars} UKPM_STORE={} {UKPM} {args}", env.store().display());
    env.command(script).args(["-qec", &command, "/dev/null"]).run()
}

#[test]
fn color_auto_colours_a_terminal_unless_no_color_is_set() {
    let env = TestEnv::new();
    let out = on_a_terminal(&env, "", "unpack nothere out");
    assert!(out.stdout.contains("error:\x1b[0m"), "{:?}", out.stdout);
    let out = on_a_terminal(&env, "NO_COLOR=1", "unpack nothere out");
    assert!(out.stdout.contains("error: failed to unpack"), "{:?}", out.stdout);
    assert!(!out.stdout.contains('\x1b'), "{:?}", out.stdout);
    let out = on_a_terminal(&env, "NO_COLOR=1", "--color always unpack nothere out");
    assert!(
        out.stdout.contains("error:\x1b[0m"),
        "--color always wins: {:?}",
        out.stdout
    );
}

/// `--color` decides clap's help too: `never` keeps a terminal's help plain, `always` colours
/// help that goes into a pipe. (Before, clap chose by itself and `--color never` was ignored.)
#[test]
fn color_decides_the_help_too() {
    let env = TestEnv::new();
    let out = on_a_terminal(&env, "", "--color never --help");
    assert!(out.stdout.contains("Usage:"), "{:?}", out.stdout);
    assert!(!out.stdout.contains('\x1b'), "{:?}", out.stdout);
    let out = on_a_terminal(&env, "", "--color always --help");
    assert!(out.stdout.contains('\x1b'), "{:?}", out.stdout);
    let piped = ukpm(&env).args(["--color", "always", "pack", "--help"]).run();
    assert!(piped.stdout.contains('\x1b'), "{:?}", piped.stdout);
}
