//! The checkpoint: what the last commit covered, and what a restart needs to go on exactly
//! from there. Replaced atomically after every commit's files are in place.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// File name of the checkpoint in the outputs root (a leading `_` keeps dataset readers off it).
pub const FILE_NAME: &str = "_checkpoint.json";

/// Bumped when the format changes incompatibly.
pub const FORMAT: u32 = 1;

/// Counts over the whole run, carried across restarts so the closing summary covers it all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Input records (JSON lines or CSV rows), invalid ones included.
    pub records_in: u64,
    /// Invalid records by reason code.
    pub invalid: BTreeMap<String, u64>,
    /// Records a SmartModule failed on (only with chains lacking tick-filter).
    pub failed: u64,
    /// Ticks older than their symbol's newest (flagged `late`, null statistics).
    pub late: u64,
    /// Ticks below the bars watermark on arrival (left out of every window).
    pub late_bars: u64,
    pub enriched_rows: u64,
    pub anomaly_rows: u64,
    pub bar_rows: u64,
    /// Alerts closed (rows under outputs/alerts).
    #[serde(default)]
    pub alerts: u64,
    pub files: u64,
    pub commits: u64,
}

impl Counts {
    pub fn invalid_total(&self) -> u64 {
        self.invalid.values().sum()
    }
}

/// Identifies the input read so far, so a restart on a different file is refused rather than
/// mixed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputIdentity {
    /// As given on the command line (informational).
    pub source: String,
    /// FNV-1a 64 of every record read, in order, as hex.
    pub prefix_hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// Input records covered by committed files: the next run starts at this position.
    pub offset: u64,
    /// Line (or CSV row) number of the last record covered.
    pub line: u64,
    pub input: InputIdentity,
    /// Each chain's steps and parameters, as run: a restart with other parameters is refused.
    pub chains: BTreeMap<String, String>,
    /// Newest event time committed (informational: the window state a restart rebuilds lies
    /// within a few windows before it).
    pub max_ts: Option<i64>,
    /// Records replayed into each chain's state at the last restart (informational).
    #[serde(default)]
    pub last_replay: BTreeMap<String, u64>,
    /// The input was read to its end.
    pub finished: bool,
    /// Alerts still open at this commit: a restart goes on growing them.
    #[serde(default)]
    pub open_alerts: Vec<crate::alerts::OpenAlert>,
    /// How the files are partitioned by event time; `None` until the first rows are written
    /// (`--partition auto` decides then). A resume keeps it.
    #[serde(default = "crate::dates::legacy_granularity")]
    pub partition: Option<crate::dates::Granularity>,
    /// Lines of `_manifest.jsonl` that belong to committed files (each committed file with
    /// its size and SHA-256, for `stockstream verify`; a resume checks they are all there).
    /// Kept in a file of its own, appended to, so that neither the checkpoint nor memory grows
    /// with the number of commits of an endless run.
    #[serde(default)]
    pub manifest_len: u64,
    /// Bytes of those lines.
    #[serde(default)]
    pub manifest_bytes: u64,
    /// Input positions of records a chain failed on (a WASM trap): each is dead-lettered and
    /// skipped by every chain, here and when a restart replays the input before the
    /// checkpoint, so the failure is never met again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<u64>,
    pub counts: Counts,
}

impl Checkpoint {
    /// Where this checkpoint's record of committed files ends.
    pub fn manifest_mark(&self) -> crate::store::ManifestMark {
        crate::store::ManifestMark {
            commit_end: self.offset,
            len: self.manifest_len,
            bytes: self.manifest_bytes,
        }
    }

    /// Takes the record of committed files up to `mark`.
    pub fn set_manifest_mark(&mut self, mark: crate::store::ManifestMark) {
        self.manifest_len = mark.len;
        self.manifest_bytes = mark.bytes;
    }

    /// A checkpoint read from `shown` (a path or URL, for messages).
    pub fn parse(bytes: &[u8], shown: &str) -> anyhow::Result<Self> {
        let checkpoint: Checkpoint = parse_json(bytes, shown, "stockstream checkpoint")?;
        anyhow::ensure!(
            checkpoint.format == FORMAT,
            "{shown} has format {} (this stockstream writes {FORMAT}); use another --outputs",
            checkpoint.format
        );
        Ok(checkpoint)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        json_bytes(self)
    }
}

/// A JSON state file's contents, read from `shown` (a path or URL, for messages).
pub(crate) fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    shown: &str,
    what: &str,
) -> anyhow::Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("{shown} is not a {what} ({e}); move it away to start over"))
}

/// A JSON state file's contents, pretty-printed with a final newline.
pub(crate) fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("serialisable");
    bytes.push(b'\n');
    bytes
}

/// FNV-1a 64 over records, each followed by a separator byte.
#[derive(Debug, Clone, Copy)]
pub struct PrefixHash(u64);

impl Default for PrefixHash {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl PrefixHash {
    pub fn update(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for byte in bytes.iter().chain(std::iter::once(&b'\n')) {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}
