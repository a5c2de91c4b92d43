//! Invalid rows: reported with their line and reason, counted by reason, and written to the
//! dead-letter file as JSON lines `{"line":..,"reason":..,"code":..,"raw":..}`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Invalid rows reported in full on the log; the rest are only counted (and dead-lettered).
pub const REPORT_FIRST: u64 = 50;

/// The invalid rows of a run.
pub struct Rejects {
    counts: BTreeMap<&'static str, u64>,
    total: u64,
    file: Option<(PathBuf, BufWriter<File>)>,
}

impl Rejects {
    /// Without a file: rows are reported and counted only.
    pub fn new() -> Self {
        Self {
            counts: BTreeMap::new(),
            total: 0,
            file: None,
        }
    }

    /// Dead-letters rows to `path` (created or truncated).
    pub fn with_file(path: &Path) -> io::Result<Self> {
        let file = File::create(path)?;
        Ok(Self {
            file: Some((path.to_owned(), BufWriter::new(file))),
            ..Self::new()
        })
    }

    /// Records one invalid row.
    pub fn reject(
        &mut self,
        line: u64,
        code: &'static str,
        reason: &str,
        raw: &str,
    ) -> io::Result<()> {
        self.total += 1;
        *self.counts.entry(code).or_default() += 1;
        if self.total <= REPORT_FIRST {
            tracing::warn!("line {line}: {reason} [{code}]");
            if self.total == REPORT_FIRST {
                tracing::warn!(
                    "further invalid rows are counted{} but not shown",
                    if self.file.is_some() {
                        " and dead-lettered"
                    } else {
                        ""
                    }
                );
            }
        }
        if let Some((_, out)) = &mut self.file {
            // Fields in this order: line, reason, code, raw.
            write!(out, "{{\"line\":{line},\"reason\":")?;
            serde_json::to_writer(&mut *out, reason)?;
            write!(out, ",\"code\":\"{code}\",\"raw\":")?;
            serde_json::to_writer(&mut *out, raw)?;
            out.write_all(b"}\n")?;
        }
        Ok(())
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Counts by reason code.
    pub fn counts(&self) -> &BTreeMap<&'static str, u64> {
        &self.counts
    }

    /// The dead-letter file, if any.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(p, _)| p.as_path())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some((_, out)) => out.flush(),
            None => Ok(()),
        }
    }
}

impl Default for Rejects {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_and_writes_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let mut rejects = Rejects::with_file(&path).unwrap();
        rejects
            .reject(
                3,
                "bad_price",
                "price must be > 0, got -1",
                "{\"price\":-1}",
            )
            .unwrap();
        rejects
            .reject(7, "bad_ts", "timestamp \"x\"", "A,x,1")
            .unwrap();
        rejects
            .reject(9, "bad_price", "price \"abc\" is not a number", "A,1,abc")
            .unwrap();
        rejects.flush().unwrap();
        assert_eq!(rejects.total(), 3);
        assert_eq!(rejects.counts()["bad_price"], 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"line\":3,\"reason\":\"price must be > 0, got -1\",\"code\":\"bad_price\",\"raw\":"), "{text}");
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["line"], 3);
        assert_eq!(rows[0]["raw"], "{\"price\":-1}");
        assert_eq!(rows[1]["code"], "bad_ts");
    }
}
