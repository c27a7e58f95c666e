//! Text from outside ukpm made safe for a terminal. A registry's error message, a file name in
//! a layer, an annotation, a tag or a kconfig value in a store someone else wrote: any of them
//! may hold an escape sequence that retitles the window, moves the cursor, rewrites the line
//! (`\r`), rings the bell, or a bidi override that makes the text read differently than it is.
//! Every printer for people (stdout's human forms and everything on stderr) passes such text
//! through [`escape`] (or [`escape_bytes`] for names that are bytes), so none of it reaches
//! the terminal raw. `--json` output is not escaped here: JSON's own escaping keeps it exact.
//!
//! The escaped form is unambiguous, so two different names never print the same: `\` is
//! doubled; tab, newline and carriage return are `\t`, `\n`, `\r`; other C0 controls and DEL
//! are `\xNN`; C1 controls and invisible formatting characters (bidi overrides and isolates,
//! zero-width characters, line and paragraph separators, the BOM, tag characters) are
//! `\u{NNNN}`; and bytes that are not UTF-8 are `\xNN`, never U+FFFD.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::path::Path;

/// `text` with every control and invisible formatting character escaped (see the module
/// docs); borrowed unchanged when there is nothing to escape, which is the usual case.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// `bytes` (a file name, which on Linux is any bytes but `/` and NUL) as text: the UTF-8
/// parts escaped as [`escape`] does, each byte that is not UTF-8 as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return escape(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

/// A path for people: its exact bytes, escaped as [`escape_bytes`] does (not
/// `Path::display`, which turns every invalid byte into the same U+FFFD).
pub fn escape_path(path: &Path) -> Cow<'_, str> {
    escape_bytes(path.as_os_str().as_encoded_bytes())
}

/// JSON text (a document pretty-printed for people, as `inspect` shows it) made safe the same
/// way while staying JSON: serde_json already writes C0 controls, `"` and `\` in strings as
/// escapes, so what is left raw (DEL, C1 controls, invisible formatting characters) is written
/// as JSON's own `\uNNNN`. Newlines outside strings are the layout and stay.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    let raw = |c: char| c != '\\' && c != '\n' && needs_escape(c);
    if !json.chars().any(raw) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if raw(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A line of ukpm's log (`-v`, warnings; tracing's output) made safe: tracing escapes ESC, BEL
/// and C1 controls in the values it prints, but not a carriage return, the other C0 controls
/// or invisible formatting characters (a foreign ref name may hold any of them); those are
/// escaped here as [`escape`] does. ESC, newline and tab are left alone: they are tracing's
/// own colours and layout (an ESC inside a value is already escaped).
pub fn escape_log(text: &str) -> Cow<'_, str> {
    let raw = |c: char| !matches!(c, '\x1b' | '\n' | '\t' | '\\') && needs_escape(c);
    if !text.chars().any(raw) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut buf = [0u8; 4];
    for c in text.chars() {
        if raw(c) {
            push_escaped(&mut out, c.encode_utf8(&mut buf));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Formats a value, then escapes it: `format!("{}", Escaped(&message))`.
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.0.to_string()))
    }
}

fn needs_escape(c: char) -> bool {
    c == '\\' || c.is_control() || is_invisible_format(c)
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Characters that show nothing (or change how the text around them is shown) and so can make
/// a name or a message read as something it is not: bidi embeddings, overrides, isolates and
/// marks (U+202E turns `txt.exe` around), zero-width characters, line and paragraph
/// separators, the BOM, interlinear annotations and tag characters.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn log_lines_keep_their_colours_and_lose_carriage_returns_and_bidi() {
        let line = "\x1b[33m WARN\x1b[0m skipping a ref name=bad\rname\u{202e}x \\x1b\n";
        assert_eq!(
            escape_log(line),
            "\x1b[33m WARN\x1b[0m skipping a ref name=bad\\rname\\u{202e}x \\x1b\n"
        );
        assert!(matches!(escape_log("\x1b[2m plain\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["unikraft.org/nginx:1.25", "café ünïcödé 日本", "a b-c_d.e/f", ""] {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn controls_are_shown_escaped() {
        let vectors = [
            ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
            ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
            ("progress\rdone", "progress\\rdone"),
            ("two\nlines", "two\\nlines"),
            ("tab\there", "tab\\there"),
            ("nul\0", "nul\\x00"),
            ("del\x7f", "del\\x7f"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("c1 \u{85} nel", "c1 \\u{85} nel"),
            ("exe.\u{202e}txt", "exe.\\u{202e}txt"),
            ("\u{2066}isolate\u{2069}", "\\u{2066}isolate\\u{2069}"),
            ("zero\u{200b}width", "zero\\u{200b}width"),
            ("line\u{2028}sep", "line\\u{2028}sep"),
            ("\u{feff}bom", "\\u{feff}bom"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
            ("back\\slash", "back\\\\slash"),
        ];
        for (raw, shown) in vectors {
            assert_eq!(escape(raw), shown, "{raw:?}");
            assert!(!escape(raw).chars().any(|c| c.is_control()), "{raw:?}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_shown_as_hex() {
        assert_eq!(escape_bytes(b"caf\xe9"), "caf\\xe9");
        assert_eq!(escape_bytes(b"d\xff\xfe/inner"), "d\\xff\\xfe/inner");
        assert_eq!(escape_bytes(b"\xe9\r\x1b"), "\\xe9\\r\\x1b");
        assert_eq!(escape_bytes("é".as_bytes()), "é");
        // A truncated sequence is its bytes, not U+FFFD.
        assert_eq!(escape_bytes(b"\xe2\x82"), "\\xe2\\x82");
        let path = Path::new(OsStr::from_bytes(b"out/unikraft/caf\xe9.txt"));
        assert_eq!(escape_path(path), "out/unikraft/caf\\xe9.txt");
    }

    #[test]
    fn different_names_never_print_the_same() {
        let names: [&[u8]; 8] = [
            b"caf\xe9",
            "caf\u{fffd}".as_bytes(),
            b"caf\\xe9",
            b"caf\\\\xe9",
            b"a\x1b",
            b"a\\x1b",
            b"a\r",
            b"a\\r",
        ];
        let shown: std::collections::HashSet<String> =
            names.iter().map(|n| escape_bytes(n).into_owned()).collect();
        assert_eq!(shown.len(), names.len(), "{shown:?}");
    }

    #[test]
    fn json_for_people_stays_json_and_shows_no_controls() {
        let value = serde_json::json!({
            "org.example/title": "exe.\u{202e}txt",
            "bell": "\u{7}\u{1b}]0;pwned\u{7}",
            "c1": "\u{9b}31m\u{7f}",
            "tag": "\u{e0041}",
            "path": "a\\b",
        });
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let shown = escape_json(&pretty);
        assert!(
            !shown
                .chars()
                .any(|c| c != '\n' && (c.is_control() || is_invisible_format(c))),
            "{shown}"
        );
        assert!(shown.contains("exe.\\u202etxt"), "{shown}");
        assert!(shown.contains("\\udb40\\udc41"), "{shown}");
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, value);
        let plain = serde_json::to_string_pretty(&serde_json::json!({"a": "b\\c"})).unwrap();
        assert!(matches!(escape_json(&plain), Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_formats_then_escapes() {
        assert_eq!(Escaped("a\x1bb").to_string(), "a\\x1bb");
        assert_eq!(format!("[{}]", Escaped(42)), "[42]");
    }
}
