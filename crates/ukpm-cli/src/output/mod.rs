//! What ukpm prints on stdout: each command returns a value implementing [`Output`], and the
//! [`Printer`] writes it either for people or as the command's `--json` document (the contract
//! in docs/json.md).
//!
//! The `--json` shapes are `Serialize` structs that borrow from the command's result and are
//! built only when printed: the shapes shared by several commands live here ([`PackageJson`],
//! [`JsonPath`]), each command's own shape beside the command in `commands/`.
//!
//! The human forms print text that came from outside ukpm (names, tags, platforms, paths,
//! annotations, messages) through [`escape`] and its siblings, so that no control character
//! reaches the terminal raw; the JSON documents are exact, JSON's escaping is enough there.
//!
//! Every object's fields are declared in alphabetical order: that is the order ukpm has always
//! written them in (it used to build `serde_json::Value` maps, which sort their keys), and
//! keeping it keeps the bytes of every document unchanged.

mod escape;
mod package;
mod path;
pub mod progress;
pub mod progress_bars;

use std::io::{self, Write};

use serde::{Serialize, Serializer};

use crate::args::Format;

pub use escape::{Escaped, escape, escape_json, escape_log, escape_path};
pub use package::{PackageJson, package_list, package_table, package_table_within};
pub use path::JsonPath;

/// A command's result, printable both ways.
pub trait Output {
    /// The `--json` document: a typed view of the result, built only under `--json`.
    fn json(&self) -> impl Serialize + '_;

    /// The result for people, on stdout.
    fn human(&self, out: &mut dyn Write) -> io::Result<()>;

    /// `-o list`: one `key: value` block per item; the human form where a command has no list.
    fn list(&self, out: &mut dyn Write) -> io::Result<()> {
        self.human(out)
    }

    /// Whether the command ran and printed its result, but the result means failure (fsck
    /// found problems): ukpm then exits 1 without an error message of its own.
    fn is_failure(&self) -> bool {
        false
    }
}

/// Writing the result to stdout failed (typically `ukpm ls | head`): the reader went away,
/// which is not the command's failure. Only this error may end in a silent exit 0; a broken
/// pipe anywhere else (a socket) is a real error.
#[derive(Debug)]
pub struct StdoutClosed(pub io::Error);

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write to standard output: {}", self.0)
    }
}

impl std::error::Error for StdoutClosed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Where results go: stdout, as text, as exactly one JSON document on one line, or as that
/// document in YAML (`-o yaml`); notes for people go to stderr.
pub struct Printer {
    /// `--json`, or the command's `-o`.
    pub format: Format,
    /// `--quiet`: no notes.
    pub quiet: bool,
}

impl Printer {
    /// Writes a command's result in the chosen format.
    pub fn print(&self, output: &impl Output) -> Result<(), StdoutClosed> {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        let written = match self.format {
            Format::Json => write_json(&mut out, &output.json()),
            Format::Yaml => serde_norway::to_writer(&mut out, &output.json()).map_err(io::Error::other),
            Format::List => output.list(&mut out),
            Format::Table => output.human(&mut out),
        };
        written.and_then(|()| out.flush()).map_err(StdoutClosed)
    }

    /// A note for people on stderr (what a command chose for them), unless `--quiet`; the
    /// text is escaped by the caller.
    pub fn note(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(io::stderr().lock(), "{} {text}", crate::style::note());
        }
    }

    /// A warning on stderr: something the command did that may not be what was meant (even
    /// under `--quiet`: a surprise must not be silent). The text is escaped by the caller.
    pub fn warn(&self, text: &str) {
        let _ = writeln!(io::stderr().lock(), "{} {text}", crate::style::warning());
    }
}

/// Writes `document` as one line of JSON. Serialising cannot fail on ukpm's shapes (no maps
/// with non-string keys, paths go through [`JsonPath`]); if it ever did, it is an I/O error
/// of the output rather than a panic.
pub fn write_json(out: &mut dyn Write, document: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, document).map_err(io::Error::other)?;
    writeln!(out)
}

/// Serialises a typed document with its object keys sorted, as the documents that ukpm shows
/// parsed (`inspect`'s index, manifests and configs) are, so that every object of one output
/// has its keys in the same (alphabetical) order.
pub fn sorted_keys<T: Serialize, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serde_json::to_value(value)
        .map_err(serde::ser::Error::custom)?
        .serialize(serializer)
}

/// `2024-10-21T12:00:00Z` as `2024-10-21 12:00:00`.
pub fn short_time(t: &str) -> String {
    match ukpm::parse_rfc3339(t) {
        Some(secs) => ukpm::rfc3339(secs).trim_end_matches('Z').replace('T', " "),
        None => t.to_string(),
    }
}

/// Sizes in binary units, as `ls -h` would.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 + 1), "5.0 MiB");
    }

    #[test]
    fn sorted_keys_sorts_a_typed_document() {
        #[derive(Serialize)]
        struct Doc {
            #[serde(serialize_with = "sorted_keys")]
            inner: Inner,
        }
        #[derive(Serialize)]
        struct Inner {
            z: u8,
            a: u8,
        }
        let doc = Doc {
            inner: Inner { z: 1, a: 2 },
        };
        assert_eq!(serde_json::to_string(&doc).unwrap(), r#"{"inner":{"a":2,"z":1}}"#);
    }
}
