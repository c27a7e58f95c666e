//! KraftKit's project file, the `Kraftfile` (spec v0.5/v0.6), as far as packing reads it:
//! the name, the runtime, the targets (short `qemu/x86_64` and long `{platform, architecture,
//! name}` forms), the rootfs, the command, the environment and the labels.
//!
//! Everything else (`unikraft:`, `libraries:`, `template:`, `volumes:`...) belongs to building
//! and is ignored here; packing only needs to know that a `unikraft:` section exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;
use ukpm_types::{Architecture, Plat};

use crate::error::{Error, Result};

/// The file names KraftKit looks for in a project folder, in its order of preference
/// (`app.DefaultFileNames`).
pub const KRAFTFILE_NAMES: [&str; 5] = [
    "kraft.yaml",
    "kraft.yml",
    "Kraftfile.yml",
    "Kraftfile.yaml",
    "Kraftfile",
];

/// A parsed `Kraftfile`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kraftfile {
    /// `spec` (or `specification`): the schema version, e.g. `v0.6`.
    pub spec: Option<String>,
    /// The project's name; the default name of its targets (Unikraft's `UK_NAME`).
    pub name: Option<String>,
    /// `runtime:`: a prebuilt runtime package whose kernel the project's rootfs runs on.
    pub runtime: Option<String>,
    /// Whether the project has a `unikraft:` section (it builds its own kernels).
    pub unikraft: bool,
    /// The targets, in file order.
    pub targets: Vec<KraftfileTarget>,
    /// `rootfs:`: a CPIO file, a folder, an image reference or a Dockerfile, as written.
    pub rootfs: Option<String>,
    /// `cmd:`, already split into words.
    pub cmd: Vec<String>,
    /// `env:` as `K=V` (a variable without a value takes the host's, as KraftKit does), in
    /// file order.
    pub env: Vec<String>,
    /// `labels:`.
    pub labels: BTreeMap<String, String>,
}

/// One entry of `targets:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KraftfileTarget {
    /// The target's own name, if it has one (else the project's name is used).
    pub name: Option<String>,
    /// The platform.
    pub platform: Plat,
    /// The architecture.
    pub architecture: Architecture,
    /// An explicit kernel path (`kernel:`), relative to the project folder.
    pub kernel: Option<PathBuf>,
    /// `kconfig:` entries, `KEY=VALUE`: the options a runtime for this target must have.
    pub kconfig: Vec<String>,
}

impl KraftfileTarget {
    /// `plat/arch`, the short form and what `--target` also accepts.
    pub fn plat_arch(&self) -> String {
        format!("{}/{}", self.platform, self.architecture)
    }
}

impl Kraftfile {
    /// Finds the Kraftfile in `dir`: the first of [`KRAFTFILE_NAMES`] that exists.
    pub fn find(dir: &Path) -> Option<PathBuf> {
        KRAFTFILE_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
    }

    /// Reads and parses the Kraftfile at `path`.
    pub fn read(path: &Path) -> Result<Kraftfile> {
        let text = fs_err::read_to_string(path).map_err(|source| Error::InputFile {
            what: "Kraftfile",
            path: path.to_path_buf(),
            source,
        })?;
        Kraftfile::parse(&text).map_err(|message| {
            Error::InvalidInput(format!("invalid Kraftfile {}: {message}", path.display()))
        })
    }

    /// Parses Kraftfile text; the error says what is wrong, without the file's name.
    pub fn parse(text: &str) -> std::result::Result<Kraftfile, String> {
        let value: Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
        let map = match value {
            Value::Mapping(map) => map,
            Value::Null => return Err("the file is empty".into()),
            _ => return Err("the top level is not a mapping".into()),
        };
        let mut out = Kraftfile::default();
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                return Err("a top-level key is not a string".into());
            };
            match key {
                "spec" | "specification" => out.spec = Some(scalar(&value, key)?),
                "name" => out.name = non_empty(scalar(&value, key)?),
                "runtime" => out.runtime = runtime(&value)?,
                "unikraft" => out.unikraft = !value.is_null(),
                "targets" => out.targets = targets(&value)?,
                "rootfs" => out.rootfs = rootfs(&value)?,
                "cmd" | "command" => out.cmd = cmd(&value)?,
                "env" => out.env = env(&value)?,
                "labels" => out.labels = labels(&value)?,
                _ => {}
            }
        }
        if let Some(spec) = &out.spec {
            let version = spec.trim_start_matches('v');
            if !["0.5", "0.6"].contains(&version) && !version.starts_with("0.") {
                return Err(format!("unsupported spec `{spec}` (expected v0.5 or v0.6)"));
            }
        }
        Ok(out)
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// A string, number or boolean as text (YAML reads `spec: 0.6` as a number).
fn scalar(value: &Value, what: &str) -> std::result::Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(format!("`{what}` must be a string")),
    }
}

/// `runtime: nginx:1.25`, or `runtime: {name: nginx, version: 1.25}`.
fn runtime(value: &Value) -> std::result::Result<Option<String>, String> {
    match value {
        Value::Mapping(map) => {
            let name = map.get("name").or_else(|| map.get("source"));
            let Some(name) = name else {
                return Err("`runtime` has no `name`".into());
            };
            let name = scalar(name, "runtime.name")?;
            Ok(match map.get("version") {
                Some(v) if !v.is_null() => Some(format!("{name}:{}", scalar(v, "runtime.version")?)),
                _ => non_empty(name),
            })
        }
        other => Ok(non_empty(scalar(other, "runtime")?)),
    }
}

/// `rootfs: ./rootfs`, or `rootfs: {source: ./rootfs}`.
fn rootfs(value: &Value) -> std::result::Result<Option<String>, String> {
    match value {
        Value::Mapping(map) => match map.get("source") {
            Some(source) => Ok(non_empty(scalar(source, "rootfs.source")?)),
            None => Err("`rootfs` has no `source`".into()),
        },
        other => Ok(non_empty(scalar(other, "rootfs")?)),
    }
}

/// `cmd: "/bin/app -c 'a b'"` (split into shell words) or `cmd: ["/bin/app", "-c"]`.
fn cmd(value: &Value) -> std::result::Result<Vec<String>, String> {
    match value {
        Value::Sequence(items) => items.iter().map(|v| scalar(v, "cmd")).collect(),
        Value::Null => Ok(Vec::new()),
        other => split_shell_words(&scalar(other, "cmd")?).map_err(|e| format!("`cmd`: {e}")),
    }
}

/// `env: {K: V}` or `env: ["K=V", "K"]`.
fn env(value: &Value) -> std::result::Result<Vec<String>, String> {
    match value {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| {
                let k = scalar(k, "env")?;
                Ok(match v {
                    Value::Null => k,
                    v => format!("{k}={}", scalar(v, "env value")?),
                })
            })
            .collect(),
        Value::Sequence(items) => items.iter().map(|v| scalar(v, "env")).collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err("`env` must be a mapping or a list".into()),
    }
}

fn labels(value: &Value) -> std::result::Result<BTreeMap<String, String>, String> {
    match value {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| Ok((scalar(k, "labels")?, scalar(v, "label value")?)))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|v| {
                let item = scalar(v, "labels")?;
                match item.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                    _ => Err(format!("label `{item}` is not K=V")),
                }
            })
            .collect(),
        Value::Null => Ok(BTreeMap::new()),
        _ => Err("`labels` must be a mapping".into()),
    }
}

fn targets(value: &Value) -> std::result::Result<Vec<KraftfileTarget>, String> {
    let items = match value {
        Value::Sequence(items) => items,
        Value::Null => return Ok(Vec::new()),
        _ => return Err("`targets` must be a list".into()),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| target(item).map_err(|e| format!("target {}: {e}", i + 1)))
        .collect()
}

/// `qemu/x86_64`, or `{platform|plat: qemu, architecture|arch: x86_64, name: NAME}` (whose
/// platform may also be `qemu/x86_64`).
fn target(value: &Value) -> std::result::Result<KraftfileTarget, String> {
    match value {
        Value::String(short) => {
            let (plat, arch) = short
                .split_once('/')
                .ok_or_else(|| format!("`{short}` is not PLAT/ARCH"))?;
            Ok(KraftfileTarget {
                name: None,
                platform: plat.parse().map_err(|e| format!("{e}"))?,
                architecture: arch.parse().map_err(|e| format!("{e}"))?,
                kernel: None,
                kconfig: Vec::new(),
            })
        }
        Value::Mapping(map) => {
            let mut name = None;
            let mut platform = None;
            let mut architecture = None;
            let mut kernel = None;
            let mut kconfig = Vec::new();
            for (key, value) in map {
                match key.as_str().unwrap_or_default() {
                    "name" => name = non_empty(scalar(value, "name")?),
                    "platform" | "plat" => {
                        let text = scalar(value, "platform")?;
                        let plat = match text.split_once('/') {
                            Some((plat, arch)) => {
                                architecture = Some(arch.parse::<Architecture>().map_err(|e| e.to_string())?);
                                plat.to_string()
                            }
                            None => text,
                        };
                        platform = Some(plat.parse::<Plat>().map_err(|e| e.to_string())?);
                    }
                    "architecture" | "arch" => {
                        architecture = Some(
                            scalar(value, "architecture")?
                                .parse::<Architecture>()
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    "kernel" => kernel = non_empty(scalar(value, "kernel")?).map(PathBuf::from),
                    "kconfig" => kconfig = kconfig_entries(value)?,
                    _ => {}
                }
            }
            Ok(KraftfileTarget {
                name,
                platform: platform.ok_or("no platform")?,
                architecture: architecture.ok_or("no architecture")?,
                kernel,
                kconfig,
            })
        }
        _ => Err("a target is `PLAT/ARCH` or a mapping".into()),
    }
}

/// `kconfig: {KEY: y}` or `kconfig: ["KEY=y"]`, as `KEY=VALUE`.
fn kconfig_entries(value: &Value) -> std::result::Result<Vec<String>, String> {
    match value {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| Ok(format!("{}={}", scalar(k, "kconfig")?, kconfig_value(v)?)))
            .collect(),
        Value::Sequence(items) => items.iter().map(|v| scalar(v, "kconfig")).collect(),
        Value::Null => Ok(Vec::new()),
        _ => Err("`kconfig` must be a mapping or a list".into()),
    }
}

/// YAML reads `y` as a string but `true` as a boolean; kconfig wants `y`/`n`.
fn kconfig_value(value: &Value) -> std::result::Result<String, String> {
    Ok(match value {
        Value::Bool(true) => "y".into(),
        Value::Bool(false) => "n".into(),
        other => scalar(other, "kconfig value")?,
    })
}

/// Splits `text` into words as a POSIX shell does (what KraftKit's go-shellwords does for a
/// `cmd` string): blanks separate words; single quotes keep everything; double quotes keep
/// everything but `\"`, `\\`, `\$` and `` \` `` escapes; a backslash outside quotes escapes the
/// next character.
///
/// Unlike go-shellwords, an unquoted `;`, `&`, `|`, `<` or `>` is kept as part of a word
/// instead of silently ending the command there (KraftKit then dropped the rest).
pub fn split_shell_words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated single quote in `{text}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unterminated double quote in `{text}`")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unterminated double quote in `{text}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => word.push('\\'),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Kraftfile {
        Kraftfile::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn short_targets() {
        let k = parse(
            "spec: v0.6\nname: helloworld\nunikraft:\n  version: stable\ntargets:\n- qemu/x86_64\n- fc/arm64\n- kvm/amd64\n",
        );
        assert_eq!(k.spec.as_deref(), Some("v0.6"));
        assert_eq!(k.name.as_deref(), Some("helloworld"));
        assert!(k.unikraft);
        assert_eq!(
            k.targets
                .iter()
                .map(KraftfileTarget::plat_arch)
                .collect::<Vec<_>>(),
            ["qemu/x86_64", "fc/arm64", "qemu/x86_64"]
        );
        assert!(k.targets.iter().all(|t| t.name.is_none()));
    }

    #[test]
    fn long_targets_in_every_spelling() {
        let k = parse(
            "specification: '0.5'\nname: app\nunikraft: stable\ntargets:\n\
             - name: one\n  platform: qemu\n  architecture: x86_64\n\
             - plat: firecracker\n  arch: aarch64\n\
             - platform: xen/arm64\n  name: three\n  kconfig:\n    CONFIG_X: y\n    CONFIG_B: true\n\
             - {plat: qemu, arch: arm, kernel: out/k, kconfig: [CONFIG_Y=n]}\n",
        );
        assert_eq!(k.spec.as_deref(), Some("0.5"));
        let t = &k.targets;
        assert_eq!(t[0].name.as_deref(), Some("one"));
        assert_eq!(t[0].plat_arch(), "qemu/x86_64");
        assert_eq!(t[1].name, None);
        assert_eq!(t[1].plat_arch(), "fc/arm64");
        assert_eq!(t[2].plat_arch(), "xen/arm64");
        assert_eq!(t[2].kconfig, ["CONFIG_X=y", "CONFIG_B=y"]);
        assert_eq!(t[3].plat_arch(), "qemu/arm");
        assert_eq!(t[3].kernel.as_deref(), Some(Path::new("out/k")));
        assert_eq!(t[3].kconfig, ["CONFIG_Y=n"]);
    }

    #[test]
    fn runtime_projects() {
        let k = parse(
            "spec: v0.6\nruntime: nginx:1.25\nrootfs: ./rootfs\ncmd: [\"/usr/bin/nginx\", \"-c\", \"/etc/nginx.conf\"]\n",
        );
        assert_eq!(k.runtime.as_deref(), Some("nginx:1.25"));
        assert!(!k.unikraft);
        assert_eq!(k.rootfs.as_deref(), Some("./rootfs"));
        assert_eq!(k.cmd, ["/usr/bin/nginx", "-c", "/etc/nginx.conf"]);
        assert!(k.targets.is_empty());
        let k =
            parse("runtime:\n  name: unikraft.org/base\n  version: latest\nrootfs:\n  source: Dockerfile\n");
        assert_eq!(k.runtime.as_deref(), Some("unikraft.org/base:latest"));
        assert_eq!(k.rootfs.as_deref(), Some("Dockerfile"));
    }

    #[test]
    fn cmd_string_is_split_into_shell_words() {
        let k = parse("cmd: /helloworld --greeting 'hi & bye' \"a \\\"b\\\"\" c\\ d\n");
        assert_eq!(k.cmd, ["/helloworld", "--greeting", "hi & bye", "a \"b\"", "c d"]);
        let k = parse("cmd: \"/bin/app > out ; x\"\n");
        assert_eq!(k.cmd, ["/bin/app", ">", "out", ";", "x"]);
        assert!(Kraftfile::parse("cmd: \"/bin/app 'open\"\n").is_err());
    }

    #[test]
    fn env_as_map_or_list_and_labels() {
        let k = parse("env:\n  PATH: /usr/bin\n  N: 3\n  HOME:\nlabels:\n  org.example.team: demo\n  n: 1\n");
        assert_eq!(k.env, ["PATH=/usr/bin", "N=3", "HOME"]);
        assert_eq!(k.labels.get("org.example.team").map(String::as_str), Some("demo"));
        assert_eq!(k.labels.get("n").map(String::as_str), Some("1"));
        let k = parse("env: [A=1, B=two]\nlabels: [x=y]\n");
        assert_eq!(k.env, ["A=1", "B=two"]);
        assert_eq!(k.labels.get("x").map(String::as_str), Some("y"));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, wanted) in [
            ("", "empty"),
            ("- a\n- b\n", "not a mapping"),
            ("targets:\n- qemu\n", "PLAT/ARCH"),
            ("targets:\n- qemu/sparc\n", "sparc"),
            ("targets:\n- {plat: qemu}\n", "no architecture"),
            ("targets:\n- {arch: x86_64}\n", "no platform"),
            ("targets: qemu/x86_64\n", "must be a list"),
            ("spec: v2.0\n", "unsupported spec"),
            ("env: 3\n", "env"),
            ("name: [a\n", ""),
        ] {
            let err = Kraftfile::parse(text).unwrap_err();
            assert!(err.contains(wanted), "{text:?}: {err}");
        }
    }

    #[test]
    fn unknown_sections_are_ignored() {
        let k = parse(
            "spec: v0.6\nname: x\nlibraries:\n  musl: stable\ntemplate: foo\nvolumes: [./a:/a]\ntargets: [qemu/x86_64]\n",
        );
        assert_eq!(k.targets.len(), 1);
    }

    #[test]
    fn shell_words() {
        assert_eq!(split_shell_words("").unwrap(), Vec::<String>::new());
        assert_eq!(split_shell_words("  a  b\t").unwrap(), ["a", "b"]);
        assert_eq!(split_shell_words("''").unwrap(), [""]);
        assert_eq!(split_shell_words("a'b c'd").unwrap(), ["ab cd"]);
        assert_eq!(split_shell_words(r#""\n""#).unwrap(), [r"\n"]);
        assert!(split_shell_words("\"x").is_err());
    }
}
