//! The progress events of `--progress=json`: one JSON object per line on stderr (NDJSON), the
//! contract in docs/json.md ("Progress events"). Each object's `event` says which one it is;
//! its other fields are declared in alphabetical order, as every `--json` shape is.
//!
//! Programs that watch a long pull or push read these instead of scraping bars: which blob of
//! which package moves, how far it is, and what became of it (its verb).

use std::collections::BTreeMap;

use serde::Serialize;

/// What became of a blob, the same word people see on its finished line (`already_there` is
/// "already there").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// Downloaded from a registry in this run.
    Pulled,
    /// Downloaded, continuing bytes an earlier run left (`resumed_bytes` of them).
    Resumed,
    /// Uploaded to a registry.
    Pushed,
    /// The registry mounted it from another of its repositories: no bytes moved.
    Mounted,
    /// The store (pull) or the registry (push) had it: no bytes moved.
    AlreadyThere,
    /// Written into the store from a file (pack).
    Packed,
    /// Extracted from the store into a folder (unpack).
    Unpacked,
    /// The transfer stopped; the command's error says why.
    Failed,
}

impl Verb {
    /// The word people read.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Pulled => "pulled",
            Verb::Resumed => "resumed",
            Verb::Pushed => "pushed",
            Verb::Mounted => "mounted",
            Verb::AlreadyThere => "already there",
            Verb::Packed => "packed",
            Verb::Unpacked => "unpacked",
            Verb::Failed => "failed",
        }
    }
}

/// One progress event, written as one line.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent<'a> {
    /// A step of the operation began (`pull`, `push`, `copy`, `pack`, `unpack`, `rootfs`).
    Step {
        /// What the step says besides its references (the rootfs chosen).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<&'a str>,
        /// `plat/arch` of a pack or unpack.
        #[serde(skip_serializing_if = "Option::is_none")]
        platform: Option<&'a str>,
        /// The package the step is about (the source of a push or copy).
        #[serde(skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The rootfs a pack makes its initrd from, as classified (`folder ./rootfs`).
        #[serde(skip_serializing_if = "Option::is_none")]
        rootfs: Option<&'a str>,
        /// Which step.
        step: &'static str,
        /// Where a push or copy goes.
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<String>,
    },
    /// The operation will handle these blobs more (those no earlier plan named).
    Plan {
        /// How many blobs.
        blobs: u64,
        /// Their bytes together.
        bytes: u64,
        /// Which way they go.
        direction: &'static str,
        /// The package they belong to.
        reference: String,
    },
    /// A blob transfer began.
    Start {
        /// Its digest, when known before it is written (not while packing).
        digest: Option<String>,
        /// Which way it goes.
        direction: &'static str,
        /// Ties the transfer's later events to this one.
        id: u64,
        /// What it is to its package (`kernel`, `initrd`, `config`, `layer`...).
        kind: &'static str,
        /// The package it belongs to.
        reference: String,
        /// Its size, when known.
        total: Option<u64>,
    },
    /// How far a transfer is: at most a few per second per transfer.
    Progress {
        /// Bytes done, those an earlier run left included.
        bytes: u64,
        /// The transfer.
        id: u64,
        /// Its size, when known.
        total: Option<u64>,
    },
    /// A blob is done with: moved, or needing no transfer, or failed.
    Finish {
        /// Bytes done (0 for a blob that needed no transfer).
        bytes: u64,
        /// Its digest, when known.
        digest: Option<String>,
        /// Which way it went.
        direction: &'static str,
        /// Where a mounted blob came from (a repository of the same registry).
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<&'a str>,
        /// The transfer (a blob that needed none gets an id of its own).
        id: u64,
        /// What it is to its package.
        kind: &'static str,
        /// The package it belongs to.
        reference: String,
        /// Bytes an earlier run had already moved (not counted as moved now).
        resumed_bytes: u64,
        /// Its size, when known.
        total: Option<u64>,
        /// What became of it.
        verb: Verb,
    },
    /// The operation ended successfully: what it moved, in how long.
    Summary {
        /// Blobs finished, by verb.
        blobs: BTreeMap<Verb, u64>,
        /// Bytes moved in this run (resumed bytes not included).
        bytes: u64,
        /// `bytes` over `seconds`.
        bytes_per_second: u64,
        /// Which operation (`pull`, `push`, `copy`, `pack`, `unpack`).
        #[serde(skip_serializing_if = "Option::is_none")]
        operation: Option<&'static str>,
        /// Bytes earlier runs had moved, which this run kept.
        resumed_bytes: u64,
        /// Since the command started.
        seconds: f64,
    },
    /// The command was interrupted (Ctrl-C); it exits 130.
    Interrupted {
        /// What to do now, for people.
        message: &'a str,
        /// Whether running the same command again continues where this one stopped.
        resumable: bool,
    },
}
