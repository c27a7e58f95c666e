//! Where `ukpm` finds registry credentials (KraftKit's `config.yaml`, the KraftCloud token
//! variables, the docker `config.json`, Podman's `auth.json`) and in which order, KraftKit's
//! per-host `verify_ssl: false`, and `ukpm login -u -t` and its prompt, against real
//! `docker-registry` processes (htpasswd, token server, TLS with a throwaway CA).

mod common;

use std::path::Path;

use base64::Engine;
use common::{UKPM, pack_conformance, ukpm};
use ukpm_test::registry::Registry;
use ukpm_test::{Outcome, TestEnv, conformance, require_program};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A KraftKit `config.yaml` with one `auth:` entry, as `kraft login` writes it (plus `extra`).
fn kraftkit_yaml(host: &str, user: &str, token: &str, extra: &str) -> String {
    format!(
        "no_prompt: true\nauth:\n  \"{host}\":\n    user: {user}\n    token: \"{token}\"\n    endpoint: \"{host}\"\n{extra}log:\n  level: info\n"
    )
}

/// A docker `config.json` (or Podman `auth.json`) with one `auths` entry.
fn docker_json(host: &str, user: &str, password: &str) -> String {
    format!(
        r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
        b64(&format!("{user}:{password}"))
    )
}

/// `ukpm push` of the conformance package to `remote` with `vars` set, DOCKER_CONFIG pointing
/// at `<root>/docker` unless `vars` says otherwise.
fn push(env: &TestEnv, remote: &str, vars: &[(&str, &Path)]) -> Outcome {
    let mut command = ukpm(env).env("DOCKER_CONFIG", env.path("docker"));
    for (k, v) in vars {
        command = command.env(k, v);
    }
    command
        .args(["push", conformance::REFERENCE, "--to", remote])
        .run()
}

fn no_secret(out: &Outcome, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{secret} leaked:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }
}

#[test]
fn kraftkit_config_yaml_alone_at_each_place_kraftkit_looks() {
    let env = TestEnv::new();
    let registry = Registry::basic("kk-user", "kk-pw-1");
    let host = registry.host();
    pack_conformance(&env).assert_success();
    let yaml = kraftkit_yaml(&host, "kk-user", "kk-pw-1", "    verify_ssl: true\n");

    // $KRAFTKIT_CONFIG_DIR/config.yaml
    env.write("kkdir/config.yaml", &yaml, 0o600);
    let out = push(
        &env,
        &format!("{host}/a/hello:v1"),
        &[("KRAFTKIT_CONFIG_DIR", &env.path("kkdir"))],
    );
    out.assert_success();
    no_secret(&out, &["kk-pw-1"]);
    // Without it, refused, and the hint names every source.
    let refused = push(&env, &format!("{host}/a/hello:v2"), &[]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains("KraftKit's config.yaml"),
        "{}",
        refused.stderr
    );

    // $XDG_CONFIG_HOME/kraftkit/config.yaml
    env.write("xdgc/kraftkit/config.yaml", &yaml, 0o600);
    push(
        &env,
        &format!("{host}/b/hello:v1"),
        &[("XDG_CONFIG_HOME", &env.path("xdgc"))],
    )
    .assert_success();

    // ~/.config/kraftkit/config.yaml (HOME is the test folder)
    env.write(".config/kraftkit/config.yaml", &yaml, 0o600);
    push(&env, &format!("{host}/c/hello:v1"), &[]).assert_success();
}

#[test]
fn kraftkit_credentials_are_exchanged_at_a_token_server() {
    let env = TestEnv::new();
    let registry = Registry::token("kk-user", "kk-pw-2");
    let host = registry.host();
    pack_conformance(&env).assert_success();
    env.write(
        "kkdir/config.yaml",
        kraftkit_yaml(&host, "kk-user", "kk-pw-2", ""),
        0o600,
    );
    let out = push(
        &env,
        &format!("{host}/t/hello:v1"),
        &[("KRAFTKIT_CONFIG_DIR", &env.path("kkdir"))],
    );
    out.assert_success();
    no_secret(&out, &["kk-pw-2"]);
    assert!(
        registry.token_requests().iter().any(|r| !r.refused),
        "no token was granted"
    );
}

#[test]
fn podman_auth_json_alone() {
    let env = TestEnv::new();
    let registry = Registry::basic("pod-user", "pod-pw");
    let host = registry.host();
    pack_conformance(&env).assert_success();
    env.write(
        "podman/auth.json",
        docker_json(&host, "pod-user", "pod-pw"),
        0o600,
    );
    push(
        &env,
        &format!("{host}/p/hello:v1"),
        &[("REGISTRY_AUTH_FILE", &env.path("podman/auth.json"))],
    )
    .assert_success();
    env.write(
        "run/containers/auth.json",
        docker_json(&host, "pod-user", "pod-pw"),
        0o600,
    );
    push(
        &env,
        &format!("{host}/p/hello:v2"),
        &[("XDG_RUNTIME_DIR", &env.path("run"))],
    )
    .assert_success();
    // ~/.config/containers/auth.json, when the runtime folder has none.
    env.write(
        ".config/containers/auth.json",
        docker_json(&host, "pod-user", "pod-pw"),
        0o600,
    );
    push(
        &env,
        &format!("{host}/p/hello:v3"),
        &[("XDG_RUNTIME_DIR", &env.path("empty-run"))],
    )
    .assert_success();
}

#[test]
fn precedence_kraftkit_over_docker_over_podman() {
    let env = TestEnv::new();
    let registry = Registry::basic("u", "right-pw");
    let host = registry.host();
    pack_conformance(&env).assert_success();
    let kk = env.path("kkdir");
    let podman = env.path("podman/auth.json");

    // KraftKit's entry (right) beats the docker one (wrong).
    env.write(
        "kkdir/config.yaml",
        kraftkit_yaml(&host, "u", "right-pw", ""),
        0o600,
    );
    env.write("docker/config.json", docker_json(&host, "u", "wrong-pw"), 0o600);
    push(&env, &format!("{host}/o/a:v1"), &[("KRAFTKIT_CONFIG_DIR", &kk)]).assert_success();

    // KraftKit's entry (wrong) beats the docker one (right): refused, naming the file and key.
    env.write(
        "kkdir/config.yaml",
        kraftkit_yaml(&host, "u", "wrong-pw", ""),
        0o600,
    );
    env.write("docker/config.json", docker_json(&host, "u", "right-pw"), 0o600);
    let refused = push(&env, &format!("{host}/o/a:v2"), &[("KRAFTKIT_CONFIG_DIR", &kk)]);
    refused.assert_code(1);
    assert!(
        refused.stderr.contains(&format!("config.yaml (auth: {host})")),
        "{}",
        refused.stderr
    );
    no_secret(&refused, &["wrong-pw", "right-pw"]);

    // The docker config (right) beats Podman's (wrong).
    env.write("podman/auth.json", docker_json(&host, "u", "wrong-pw"), 0o600);
    push(
        &env,
        &format!("{host}/o/a:v3"),
        &[("REGISTRY_AUTH_FILE", &podman)],
    )
    .assert_success();
    // Podman's (wrong) answers only where the docker config has nothing.
    env.write("docker/config.json", "{}", 0o600);
    let refused = push(
        &env,
        &format!("{host}/o/a:v4"),
        &[("REGISTRY_AUTH_FILE", &podman)],
    );
    refused.assert_code(1);
    assert!(refused.stderr.contains("auth.json"), "{}", refused.stderr);

    // The KraftCloud token is for index.unikraft.io only: never sent here, never shown.
    let token = b64("u:right-pw");
    let out = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("UKC_TOKEN", &token)
        .args(["push", conformance::REFERENCE, "--to", &format!("{host}/o/a:v5")])
        .run();
    out.assert_code(1);
    no_secret(&out, &[&token, "right-pw"]);
}

#[test]
fn verify_ssl_false_reaches_a_tls_registry_without_its_ca_and_docker_entries_do_not() {
    let env = TestEnv::new();
    let registry = Registry::tls();
    let host = registry.host();
    pack_conformance(&env).assert_success();
    let remote = format!("{host}/tls/hello:v1");

    // Without any entry, the unknown CA is refused.
    let refused = push(&env, &remote, &[]);
    refused.assert_code(1);
    assert!(refused.stderr.contains("certificate"), "{}", refused.stderr);

    // A Docker-derived entry never turns verification off (KraftKit's bug, not copied).
    env.write("docker/config.json", docker_json(&host, "u", "p"), 0o600);
    push(&env, &remote, &[]).assert_code(1);

    // verify_ssl: true (and a missing verify_ssl) keep verifying.
    env.write(
        "kkdir/config.yaml",
        format!("auth:\n  \"{host}\":\n    verify_ssl: true\n"),
        0o600,
    );
    push(&env, &remote, &[("KRAFTKIT_CONFIG_DIR", &env.path("kkdir"))]).assert_code(1);
    env.write("kkdir/config.yaml", format!("auth:\n  \"{host}\": {{}}\n"), 0o600);
    push(&env, &remote, &[("KRAFTKIT_CONFIG_DIR", &env.path("kkdir"))]).assert_code(1);

    // verify_ssl: false connects, over TLS, to this host only.
    env.write(
        "kkdir/config.yaml",
        format!("auth:\n  \"{host}\":\n    verify_ssl: false\n"),
        0o600,
    );
    push(&env, &remote, &[("KRAFTKIT_CONFIG_DIR", &env.path("kkdir"))]).assert_success();
    let other = Registry::tls();
    push(
        &env,
        &format!("{}/tls/hello:v1", other.host()),
        &[("KRAFTKIT_CONFIG_DIR", &env.path("kkdir"))],
    )
    .assert_code(1);
    let pulled = TestEnv::new();
    ukpm(&pulled)
        .env("KRAFTKIT_CONFIG_DIR", env.path("kkdir"))
        .args(["pull", &remote])
        .run()
        .assert_success();
}

fn login(env: &TestEnv, args: &[&str]) -> Outcome {
    ukpm(env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .arg("login")
        .args(args)
        .run()
}

#[test]
fn login_takes_kraft_logins_u_and_t_with_a_warning() {
    let env = TestEnv::new();
    let registry = Registry::basic("tester", "t0ken-pw");
    let host = registry.host();

    let out = login(&env, &[&host, "-u", "tester", "-t", "t0ken-pw"]);
    out.assert_success();
    assert!(
        out.stderr.contains("warning:") && out.stderr.contains("--password-stdin"),
        "{}",
        out.stderr
    );
    no_secret(&out, &["t0ken-pw"]);
    let saved = String::from_utf8(env.read("docker/config.json")).unwrap();
    assert!(saved.contains(&b64("tester:t0ken-pw")), "{saved}");

    // KraftKit's base64 user:token carries the user name; with -u as well it is refused.
    fs_err::remove_file(env.path("docker/config.json")).unwrap();
    let token = b64("tester:t0ken-pw");
    let out = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .args(["--json", "login", &host, "--token", &token])
        .run();
    out.assert_success();
    no_secret(&out, &[&token, "t0ken-pw"]);
    assert!(env.path("docker/config.json").exists());
    let out = login(&env, &[&host, "-u", "tester", "-t", &token]);
    out.assert_code(2);
    assert!(out.stderr.contains("cannot be given with"), "{}", out.stderr);

    // kraft login's variables, without a warning (the environment is not argv).
    fs_err::remove_file(env.path("docker/config.json")).unwrap();
    let out = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("KRAFTKIT_LOGIN_USER", "tester")
        .env("KRAFTKIT_LOGIN_TOKEN", "t0ken-pw")
        .args(["login", &host])
        .run();
    out.assert_success();
    assert!(!out.stderr.contains("warning:"), "{}", out.stderr);
    no_secret(&out, &["t0ken-pw"]);
    assert!(env.path("docker/config.json").exists());

    // A wrong token is refused and not saved, and never shown.
    let other = TestEnv::new();
    let out = login(&other, &[&host, "-u", "tester", "-t", "bad-t0ken"]);
    out.assert_code(1);
    no_secret(&out, &["bad-t0ken"]);
    assert!(!other.path("docker/config.json").exists());

    // -t and --password-stdin together are a usage error; neither, off a terminal, is refused.
    login(&env, &[&host, "-u", "tester", "-t", "x", "--password-stdin"]).assert_code(2);
    let out = login(&env, &[&host, "-u", "tester"]);
    out.assert_failure();
    assert!(out.stderr.contains("--password-stdin"), "{}", out.stderr);

    // A `kraft login` entry for the host takes precedence: the login says so.
    env.write(
        "kkdir/config.yaml",
        kraftkit_yaml(&host, "tester", "t0ken-pw", ""),
        0o600,
    );
    let out = ukpm(&env)
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("KRAFTKIT_CONFIG_DIR", env.path("kkdir"))
        .args(["login", &host, "-u", "tester", "--password-stdin"])
        .stdin("t0ken-pw\n")
        .run();
    out.assert_success();
    assert!(out.stderr.contains("takes precedence"), "{}", out.stderr);
    no_secret(&out, &["t0ken-pw"]);
}

/// Runs `ukpm login ARGS` on a pseudo-terminal (`script`), typing `lines` once the program waits
/// for them; returns everything the terminal showed.
fn login_on_a_tty(env: &TestEnv, args: &str, lines: &[&str]) -> Outcome {
    require_program("script", "util-linux");
    // Typed after a pause, as a person would: input that arrives before the prompt turned echo
    // off would be echoed by the terminal itself.
    let typing: String = lines
        .iter()
        .enumerate()
        .map(|(i, _)| format!("sleep 3; printf '%s\\n' \"$LINE{i}\"; "))
        .collect();
    let mut command = env
        .command("sh")
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("UKPM_BIN", UKPM)
        .args([
            "-c",
            &format!("({typing}sleep 5) | script -qec \"\\\"$UKPM_BIN\\\" login {args}\" /dev/null"),
        ]);
    for (i, line) in lines.iter().enumerate() {
        command = command.env(format!("LINE{i}"), line);
    }
    command.run()
}

#[test]
fn login_prompts_for_the_password_without_echo_on_a_terminal() {
    let env = TestEnv::new();
    let registry = Registry::basic("tester", "tty-s3cret");
    let host = registry.host();

    let out = login_on_a_tty(&env, &format!("{host} -u tester"), &["tty-s3cret"]);
    out.assert_success();
    assert!(out.stdout.contains("Password:"), "{}", out.stdout);
    assert!(out.stdout.contains("logged in to"), "{}", out.stdout);
    no_secret(&out, &["tty-s3cret"]);
    let saved = String::from_utf8(env.read("docker/config.json")).unwrap();
    assert!(saved.contains(&b64("tester:tty-s3cret")), "{saved}");

    // A wrong password typed there: refused plainly, for that user, never shown, nothing saved,
    // and no advice to log in (this is the login).
    let wrong = TestEnv::new();
    let out = login_on_a_tty(&wrong, &format!("{host} -u tester"), &["wr0ng-tty-pw"]);
    out.assert_code(1);
    assert!(
        out.stdout.contains("refused the credentials for user tester"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("ukpm login"), "{}", out.stdout);
    no_secret(&out, &["wr0ng-tty-pw"]);
    assert!(!wrong.path("docker/config.json").exists());

    // --password-stdin when standard input is the terminal: not echoed either.
    let piped = TestEnv::new();
    let out = login_on_a_tty(
        &piped,
        &format!("{host} -u tester --password-stdin"),
        &["tty-s3cret"],
    );
    out.assert_success();
    no_secret(&out, &["tty-s3cret"]);

    // Ctrl-C at the password prompt is an interruption (130), not an error.
    let interrupted = TestEnv::new();
    let out = login_on_a_tty(&interrupted, &format!("{host} -u tester"), &["\x03"]);
    out.assert_code(130);
    assert!(!out.stdout.contains("error:"), "{}", out.stdout);

    // Without -u the user name is asked for too (echoed: it is no secret).
    let other = TestEnv::new();
    let out = login_on_a_tty(&other, &host, &["tester", "tty-s3cret"]);
    out.assert_success();
    assert!(
        out.stdout.contains("Username:") && out.stdout.contains("tester"),
        "{}",
        out.stdout
    );
    no_secret(&out, &["tty-s3cret"]);
}
