//! Help, completions, the man page and `--version`, as a user meets them (issue 13, point 5):
//! the scripts load in a real bash, the page renders in real `man` and `groff` without
//! warnings, and none of them reads the config file or touches the store.

mod common;

use std::process::Command;

use common::ukpm;
use ukpm_test::{TestEnv, require_program};

/// The visible commands `ukpm --help` lists.
fn listed_commands(env: &TestEnv) -> Vec<String> {
    let out = ukpm(env).arg("--help").run();
    out.assert_success();
    out.stdout
        .lines()
        .skip_while(|line| *line != "Commands:")
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_help_has_a_paragraph_and_examples() {
    let env = TestEnv::new();
    let commands = listed_commands(&env);
    assert!(commands.len() > 20, "{commands:?}");
    for command in commands
        .iter()
        .map(String::as_str)
        .chain(["source add", "source rm", "source ls"])
    {
        let words: Vec<&str> = command.split(' ').collect();
        let out = ukpm(&env).args(&words).arg("--help").run();
        out.assert_success();
        let (description, rest) = out
            .stdout
            .split_once("\nUsage: ")
            .unwrap_or_else(|| panic!("`ukpm {command} --help` has no usage:\n{}", out.stdout));
        // The summary line, then a paragraph of its own.
        assert!(
            description.trim().split("\n\n").count() >= 2,
            "`ukpm {command} --help` has no paragraph:\n{description}"
        );
        let examples = rest
            .split_once("\nExamples:\n")
            .unwrap_or_else(|| panic!("`ukpm {command} --help` has no examples:\n{rest}"))
            .1;
        assert!(
            examples.contains(&format!("ukpm {command}")),
            "`ukpm {command} --help` has no example of itself:\n{examples}"
        );
        // -h shows the examples too.
        let short = ukpm(&env).args(&words).arg("-h").run();
        assert!(short.stdout.contains("\nExamples:\n"), "`ukpm {command} -h`");
    }
}

#[test]
fn help_wraps_to_the_terminal_width() {
    let env = TestEnv::new();
    for columns in ["60", "80", "110"] {
        let out = ukpm(&env).args(["pull", "--help"]).env("COLUMNS", columns).run();
        out.assert_success();
        let width: usize = columns.parse().unwrap();
        let widest = out.stdout.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(
            widest <= width,
            "{widest} columns in a {width}-column terminal:\n{}",
            out.stdout
        );
    }
    // Wider than 80 columns, the examples are never broken.
    let out = ukpm(&env).args(["pack", "--help"]).env("COLUMNS", "80").run();
    let examples = out.stdout.split_once("\nExamples:\n").unwrap().1;
    assert!(
        examples.lines().all(|line| line.starts_with("  ukpm ")),
        "{examples}"
    );
}

#[test]
fn typos_get_did_you_mean() {
    let env = TestEnv::new();
    let out = ukpm(&env).arg("packk").run();
    out.assert_code(2);
    assert!(out.stderr.contains("'pack'"), "{}", out.stderr);
    let out = ukpm(&env).args(["ls", "--plaat", "qemu"]).run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("a similar argument exists: '--plat'"),
        "{}",
        out.stderr
    );
}

#[test]
fn the_bash_completion_script_loads_and_completes() {
    let env = TestEnv::new();
    let bash = require_program("bash", "bash");
    let script = ukpm(&env).args(["completions", "bash"]).run();
    script.assert_success();
    assert!(script.stderr.is_empty(), "{}", script.stderr);
    env.write("ukpm.bash", &script.stdout, 0o644);
    let out = env
        .command(&bash)
        .arg("-c")
        .arg(format!(
            "source <({} completions bash) && complete -p ukpm",
            common::UKPM
        ))
        .run();
    out.assert_success();
    assert_eq!(
        out.stdout.trim(),
        "complete -o bashdefault -o default -o nosort -F _ukpm ukpm"
    );
    // The completion function answers as bash would call it: `ukpm pa<TAB>`, `ukpm pull --pl<TAB>`.
    let complete = |words: &str| {
        let out = env
            .command(&bash)
            .arg("-c")
            .arg(format!(
                "source ukpm.bash; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _ukpm ukpm \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ))
            .run();
        out.assert_success();
        out.stdout
    };
    let commands = complete("ukpm pa");
    assert_eq!(commands.lines().collect::<Vec<_>>(), ["pack"], "{commands}");
    let flags = complete("ukpm pull --pl");
    assert!(flags.lines().any(|l| l == "--plat"), "{flags}");
    assert!(flags.lines().any(|l| l == "--platform"), "{flags}");
    let shells = complete("ukpm completions ''");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        assert!(shells.lines().any(|l| l == shell), "{shells}");
    }
}

#[test]
fn every_shell_gets_a_script() {
    let env = TestEnv::new();
    for (shell, mark) in [
        ("zsh", "#compdef ukpm"),
        ("fish", "complete -c ukpm"),
        ("elvish", "edit:completion:arg-completer[ukpm]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = ukpm(&env).args(["completions", shell]).run();
        out.assert_success();
        assert!(out.stdout.contains(mark), "{shell}:\n{}", out.stdout);
        assert!(out.stdout.contains("pack"), "{shell}");
    }
    ukpm(&env).args(["completions", "tcsh"]).run().assert_code(2);
}

#[test]
fn the_man_page_renders_without_warnings() {
    let env = TestEnv::new();
    let man = require_program("man", "man-db");
    let groff = require_program("groff", "groff-base");
    let page = ukpm(&env).arg("man").run();
    page.assert_success();
    assert!(page.stderr.is_empty(), "{}", page.stderr);
    let file = env.write("ukpm.1", &page.stdout, 0o644);
    // groff with every warning on, as strict as it gets.
    let strict = env
        .command(&groff)
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&file)
        .run();
    strict.assert_success();
    assert!(strict.stderr.is_empty(), "groff warns:\n{}", strict.stderr);
    // What a reader sees with `man ./ukpm.1`, at 80 columns.
    let read = env
        .command(&man)
        .args(["--warnings", "-l"])
        .arg(&file)
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .run();
    read.assert_success();
    assert!(read.stderr.is_empty(), "man warns:\n{}", read.stderr);
    let text = read.stdout;
    for heading in [
        "NAME",
        "SYNOPSIS",
        "DESCRIPTION",
        "GLOBAL OPTIONS",
        "COMMANDS",
        "EXAMPLES",
        "VERSION",
    ] {
        assert!(text.lines().any(|l| l == heading), "no {heading}:\n{text}");
    }
    for command in listed_commands(&env) {
        assert!(
            text.lines().any(|l| l == format!("   ukpm {command}")),
            "no section for {command}"
        );
    }
    assert!(text.lines().any(|l| l == "   ukpm source add"));
    // A command's own options are there, the global ones only once, in their section.
    assert!(text.contains("--kernel <FILE>"), "{text}");
    assert_eq!(text.matches("--concurrency <N>").count(), 1);
    assert!(
        text.contains("    ukpm pull nginx:latest"),
        "examples keep their lines:\n{text}"
    );
}

#[test]
fn version_names_the_commit_and_the_features() {
    let env = TestEnv::new();
    let manifest_dir = env!("CARGO_MANIFEST_DIR");
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(manifest_dir)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(
            || "unknown".to_string(),
            |out| String::from_utf8_lossy(&out.stdout).trim().to_string(),
        );
    let features = if cfg!(feature = "containerd") {
        "containerd"
    } else {
        "none"
    };
    let expected = format!(
        "ukpm {} ({commit}, features: {features})",
        env!("CARGO_PKG_VERSION")
    );
    let out = ukpm(&env).arg("--version").run();
    out.assert_success();
    assert_eq!(out.stdout.trim(), expected);
    assert_ne!(commit, "unknown", "the tests run in a git checkout of ukpm");
    let out = ukpm(&env).args(["pull", "--version"]).run();
    assert!(
        out.stdout.contains(&format!("({commit}, features: {features})")),
        "{}",
        out.stdout
    );
}

#[test]
fn completions_and_man_read_no_config_and_touch_no_store() {
    let env = TestEnv::new();
    env.write("broken.json", "{ not json", 0o644);
    for args in [&["completions", "bash"][..], &["man"]] {
        let out = ukpm(&env)
            .env("UKPM_CONFIG", env.path("broken.json"))
            .env("UKPM_STORE", env.path("nowhere/store"))
            .args(args)
            .run();
        out.assert_success();
        assert!(!out.stdout.is_empty());
    }
    assert!(!env.path("nowhere").exists());
    assert!(!env.store().exists());
}

#[test]
fn a_closed_pipe_ends_completions_and_man_quietly() {
    let env = TestEnv::new();
    let bash = require_program("bash", "bash");
    // `true` has exited before ukpm starts: its first write meets a pipe nobody reads.
    for command in ["completions bash", "man"] {
        let out = env
            .command(&bash)
            .arg("-c")
            .arg(format!(
                "{{ sleep 0.3; {} {command}; }} | true; exit ${{PIPESTATUS[0]}}",
                common::UKPM
            ))
            .run();
        assert_eq!(out.code, 0, "{command}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}
