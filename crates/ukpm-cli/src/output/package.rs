//! The package object, which `ls`, `pack`, `pull`, `inspect` and `unpack` print, and the
//! `ls` table.

use std::io::{self, Write};

use serde::Serialize;
use ukpm::{Package, Pulled};

use super::{escape, human_size, short_time};

/// A package (one manifest of an index) as `--json` shows it (docs/json.md, "The package
/// object").
#[derive(Serialize)]
pub struct PackageJson<'a> {
    architecture: &'a str,
    created: Option<&'a str>,
    features: &'a [String],
    index: Option<String>,
    kernel_version: Option<&'a str>,
    manifest: String,
    name: String,
    platform: &'a str,
    pulled: Option<&'a str>,
    reference: String,
    size: u64,
    tag: Option<&'a str>,
}

impl<'a> From<&'a Package> for PackageJson<'a> {
    fn from(p: &'a Package) -> Self {
        PackageJson {
            architecture: &p.platform.architecture,
            created: p.created.as_deref(),
            features: &p.platform.os_features,
            index: p.index.as_ref().map(|d| d.digest.to_string()),
            kernel_version: Some(p.platform.os_version.as_str()).filter(|v| !v.is_empty()),
            manifest: p.manifest.digest.to_string(),
            name: p.display_name(),
            platform: &p.platform.os,
            pulled: p.pulled.time(),
            reference: p.name.clone(),
            size: p.size,
            tag: p.display_tag(),
        }
    }
}

/// `ukpm ls` as a table, KraftKit's columns beside ukpm's: INDEX is the digest the name points
/// at (what `pack` prints, what `NAME@DIGEST` takes; `-` for a single-manifest image) and
/// MANIFEST the platform's own, PULLED when `pull` set the name ("3 minutes ago", `never` for
/// a package packed or loaded here, `-` where the store does not record it).
///
/// Every cell is escaped: names, platforms and times come from whoever wrote the store, and a
/// control character in one must neither reach the terminal nor skew the columns (widths are
/// those of the escaped text). An empty list is the header alone (`ls` prints nothing instead).
pub fn package_table(out: &mut dyn Write, packages: &[Package]) -> io::Result<()> {
    package_table_within(out, packages, None)
}

/// [`package_table`] in at most `columns` characters when it can be: on a terminal narrower
/// than the table, CREATED goes first, then MANIFEST, then SIZE (`-o list` and `--json` keep
/// every field); NAME, TAG, ARCH, PLAT, INDEX and PULLED always stay.
pub fn package_table_within(
    out: &mut dyn Write,
    packages: &[Package],
    columns: Option<usize>,
) -> io::Result<()> {
    let now = now();
    let header = [
        "NAME", "TAG", "ARCH", "PLAT", "INDEX", "MANIFEST", "SIZE", "CREATED", "PULLED",
    ];
    let rows: Vec<[String; 9]> = packages
        .iter()
        .map(|p| {
            [
                p.display_name(),
                p.display_tag().unwrap_or("<none>").to_string(),
                p.platform.architecture.clone(),
                p.platform.os.clone(),
                p.index.as_ref().map_or_else(|| "-".into(), |d| d.digest.short()),
                p.manifest.digest.short(),
                human_size(p.size),
                p.created.as_deref().map(short_time).unwrap_or_else(|| "-".into()),
                pulled(&p.pulled, now),
            ]
            .map(|cell| match escape(&cell) {
                // The usual case: nothing to escape, so no copy.
                std::borrow::Cow::Borrowed(_) => cell,
                std::borrow::Cow::Owned(escaped) => escaped,
            })
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut shown = [true; 9];
    let total = |shown: &[bool; 9]| -> usize {
        let kept = widths.iter().zip(shown).filter(|(_, s)| **s);
        kept.clone().map(|(w, _)| w + 2).sum::<usize>().saturating_sub(2)
    };
    if let Some(limit) = columns {
        // CREATED, MANIFEST, SIZE: the columns a narrow terminal can do without.
        for drop in [7, 5, 6] {
            if total(&shown) <= limit {
                break;
            }
            shown[drop] = false;
        }
    }
    fn keep(cells: [&str; 9], shown: [bool; 9]) -> Vec<&str> {
        cells
            .into_iter()
            .zip(shown)
            .filter(|(_, s)| *s)
            .map(|(c, _)| c)
            .collect()
    }
    let widths: Vec<usize> = widths
        .into_iter()
        .zip(shown)
        .filter(|(_, s)| *s)
        .map(|(w, _)| w)
        .collect();
    // One buffer for the whole table: ten thousand rows are one write, not ten thousand.
    let mut text = String::with_capacity((rows.len() + 1) * widths.iter().sum::<usize>() * 2);
    let mut line = |cells: &[&str]| {
        let start = text.len();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count()) + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let end = text[start..].trim_end().len() + start;
        text.truncate(end);
        text.push('\n');
    };
    line(&keep(header, shown));
    for row in &rows {
        line(&keep(row.each_ref().map(String::as_str), shown));
    }
    out.write_all(text.as_bytes())
}

/// `ukpm ls -o list`: a `key: value` block per package, blank-line separated, the table's
/// cells (escaped) with their lower-cased headers as keys; `pulled` is the time itself.
pub fn package_list(out: &mut dyn Write, packages: &[Package]) -> io::Result<()> {
    // stdout is line-buffered: one write for the whole list, not one per line.
    let mut buffered = io::BufWriter::with_capacity(64 * 1024, out);
    let out = &mut buffered;
    let now = now();
    for (i, p) in packages.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let index = p.index.as_ref().map(|d| d.digest.short());
        let cells = [
            ("name", p.display_name()),
            ("tag", p.display_tag().unwrap_or("<none>").to_string()),
            ("arch", p.platform.architecture.clone()),
            ("plat", p.platform.os.clone()),
            (
                "version",
                Some(p.platform.os_version.clone())
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "-".into()),
            ),
            ("manifest", p.manifest.digest.short()),
            ("index", index.unwrap_or_else(|| "-".into())),
            ("size", human_size(p.size)),
            (
                "created",
                p.created.as_deref().map(short_time).unwrap_or_else(|| "-".into()),
            ),
            (
                "pulled",
                match p.pulled.time() {
                    Some(t) => format!("{} ({})", short_time(t), pulled(&p.pulled, now)),
                    None => pulled(&p.pulled, now),
                },
            ),
        ];
        for (key, value) in cells {
            writeln!(out, "{key}: {}", escape(&value))?;
        }
    }
    buffered.flush()
}

/// Seconds since the epoch, by the clock (a listing's "ago" is about now, whatever
/// `SOURCE_DATE_EPOCH` says).
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// KraftKit's PULLED cell: `never`, `3 minutes ago` (go-humanize's wording), `-` when the
/// store does not record pulls; a time that does not parse is shown as written.
fn pulled(pulled: &Pulled, now: i64) -> String {
    match pulled {
        Pulled::At(time) => match ukpm::parse_rfc3339(time) {
            Some(then) => ago(now - then),
            None => time.clone(),
        },
        Pulled::Never => "never".into(),
        _ => "-".into(),
    }
}

/// A duration in go-humanize's words: `now`, `1 second ago`, `3 minutes ago`, `2 weeks ago`,
/// `1 year ago`; a negative one (a clock set back) is `... from now`.
pub fn ago(seconds: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const WEEK: i64 = 7 * DAY;
    const MONTH: i64 = 30 * DAY;
    const YEAR: i64 = 365 * DAY;
    let (span, suffix) = match seconds {
        s if s < 0 => (s.saturating_neg(), "from now"),
        s => (s, "ago"),
    };
    let (n, unit) = match span {
        0 => return "now".into(),
        s if s < MINUTE => (s, "second"),
        s if s < HOUR => (s / MINUTE, "minute"),
        s if s < DAY => (s / HOUR, "hour"),
        s if s < WEEK => (s / DAY, "day"),
        s if s < MONTH => (s / WEEK, "week"),
        s if s < YEAR => (s / MONTH, "month"),
        s => (s / YEAR, "year"),
    };
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{s} {suffix}")
}

#[cfg(test)]
mod tests {
    use super::ago;

    #[test]
    fn ago_reads_like_kraftkit() {
        assert_eq!(ago(0), "now");
        assert_eq!(ago(1), "1 second ago");
        assert_eq!(ago(59), "59 seconds ago");
        assert_eq!(ago(180), "3 minutes ago");
        assert_eq!(ago(3600), "1 hour ago");
        assert_eq!(ago(2 * 86400), "2 days ago");
        assert_eq!(ago(14 * 86400), "2 weeks ago");
        assert_eq!(ago(60 * 86400), "2 months ago");
        assert_eq!(ago(800 * 86400), "2 years ago");
        assert_eq!(ago(-120), "2 minutes from now");
        assert_eq!(
            ago(i64::MIN),
            format!("{} years from now", i64::MAX / (365 * 86400))
        );
    }
}
