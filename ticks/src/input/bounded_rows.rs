//! CSV rows of bounded size. The csv crate reads a row whole before it hands it on, so one
//! runaway row (a missing closing quote, a binary file named .csv) would be held in memory at any
//! length. [`BoundedRows`] sits between the file and the CSV parser: it finds row ends as the
//! parser does and passes rows within the limit through unchanged. A longer one is replaced by
//! a one-field row, a marker no file can hold after as many line feeds as the row held, so that the
//! parser numbers the lines after it as in the file, and the reader takes the row's details
//! from [`BoundedRows::take_oversized`]. At most one row, up to the limit, is held.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

/// The start of the field that stands for an oversized row's end; a random number follows, so
/// that no file can hold it (found by fuzzing: a row that spells a fixed marker out would take
/// the place of a real one).
const MARKER_PREFIX: &str = "\0stockstream:too_large:";

/// Bytes of an oversized row kept to show in its report.
const HEAD_BYTES: usize = 200;

/// A row over the limit: its first line, its length in bytes (line ending excluded) and its
/// first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OversizedRow {
    pub(super) line: u64,
    pub(super) length: u64,
    pub(super) head: Vec<u8>,
}

/// Where the scanner is within a row, as csv-core's reader with its defaults (`,` delimiter,
/// `"` quotes doubled inside quoted fields, CR, LF or CRLF ending a row) tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: the field's end, or the first of a doubled quote.
    QuoteInQuoted,
}

pub(super) struct BoundedRows<R> {
    inner: R,
    limit: usize,
    /// The current row's bytes, up to its end or the limit.
    row: Vec<u8>,
    /// Bytes of `row` already handed to the parser.
    handed: usize,
    place: Place,
    /// The line the next row starts on (1-based; LF bytes counted, as the parser counts them).
    line: u64,
    /// Rows over the limit the parser has not been told of, oldest first.
    oversized: VecDeque<OversizedRow>,
    /// What ends the field that stands for an oversized row.
    marker: String,
}

impl<R: BufRead> BoundedRows<R> {
    pub(super) fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            limit,
            row: Vec::new(),
            handed: 0,
            place: Place::FieldStart,
            line: 1,
            oversized: VecDeque::new(),
            marker: format!("{MARKER_PREFIX}{:016x}", random_u64()),
        }
    }

    /// Whether a parsed row is the stand-in for an oversized one.
    pub(super) fn is_marker(&self, row: &csv::StringRecord) -> bool {
        row.len() == 1 && row[0].ends_with(&self.marker)
    }

    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    /// The oldest oversized row the parser has met as a marker.
    pub(super) fn take_oversized(&mut self) -> Option<OversizedRow> {
        self.oversized.pop_front()
    }

    /// Reads the next row into `row`; an oversized one leaves only its line feeds there.
    fn next_row(&mut self) -> io::Result<()> {
        self.row.clear();
        self.handed = 0;
        let first_line = self.line;
        let mut length = 0u64;
        let mut overflowed = false;
        let mut head = Vec::new();
        let mut line_feeds = 0u64;
        let mut terminated = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            let mut used = chunk.len();
            let mut ended = false;
            for (i, &byte) in chunk.iter().enumerate() {
                if byte == b'\n' {
                    line_feeds += 1;
                }
                let (place, row_end) = step(self.place, byte);
                self.place = place;
                if row_end {
                    // The terminator goes through with the row; a CRLF's LF comes with the next
                    // row as a blank line, which the parser skips, as it does here.
                    used = i + 1;
                    ended = true;
                    terminated = byte == b'\n';
                    break;
                }
                length += 1;
            }
            if !overflowed {
                if length as usize > self.limit {
                    overflowed = true;
                    self.row.extend_from_slice(&chunk[..used.min(HEAD_BYTES)]);
                    self.row.truncate(HEAD_BYTES);
                    head = std::mem::take(&mut self.row);
                } else {
                    self.row.extend_from_slice(&chunk[..used]);
                }
            }
            self.inner.consume(used);
            if ended {
                break;
            }
        }
        self.line += line_feeds;
        if overflowed {
            self.place = Place::FieldStart;
            // The line feeds inside the row, then its terminator.
            let inside = line_feeds - u64::from(terminated);
            self.row.push(b'"');
            self.row.resize(1 + inside as usize, b'\n');
            self.row.extend_from_slice(self.marker.as_bytes());
            self.row.extend_from_slice(b"\"\n");
            self.oversized.push_back(OversizedRow {
                line: first_line,
                length,
                head,
            });
        }
        Ok(())
    }
}

/// A number no input can guess: the standard library's per-process random hash keys.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x5eed);
    hasher.finish()
}

/// One byte of the row scan: the new place, and whether the byte ends the row.
fn step(place: Place, byte: u8) -> (Place, bool) {
    match (place, byte) {
        (Place::Quoted, b'"') => (Place::QuoteInQuoted, false),
        (Place::Quoted, _) => (Place::Quoted, false),
        (_, b'\n' | b'\r') => (Place::FieldStart, true),
        (_, b',') => (Place::FieldStart, false),
        (Place::FieldStart, b'"') => (Place::Quoted, false),
        (Place::QuoteInQuoted, b'"') => (Place::Quoted, false),
        _ => (Place::Unquoted, false),
    }
}

impl<R: BufRead> Read for BoundedRows<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for BoundedRows<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.handed == self.row.len() {
            self.next_row()?;
        }
        Ok(&self.row[self.handed..])
    }

    fn consume(&mut self, amount: usize) {
        self.handed = (self.handed + amount).min(self.row.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the parser gets, the oversized rows' lines and lengths, and the marker.
    fn pass(input: &[u8], limit: usize) -> (Vec<u8>, Vec<(u64, u64)>, String) {
        let mut rows = BoundedRows::new(input, limit);
        let mut out = Vec::new();
        rows.read_to_end(&mut out).unwrap();
        let found = rows.oversized.iter().map(|r| (r.line, r.length)).collect();
        (out, found, rows.marker)
    }

    #[test]
    fn rows_within_the_limit_pass_unchanged() {
        let input = b"a,b\r\n\"x\ny\",\"q\"\"\"\n1,2";
        for limit in [100, 11] {
            let (out, found, _) = pass(input, limit);
            assert_eq!((out, found), (input.to_vec(), vec![]));
        }
    }

    #[test]
    fn a_longer_row_becomes_a_marker_with_its_line_feeds_and_is_recorded() {
        let input = b"h\nshort\n\"very\nlong\nquoted\",row\nend\n";
        let (out, found, marker) = pass(input, 6);
        let marker = format!("\"\n\n{marker}\"\n");
        assert_eq!(
            out,
            [&b"h\nshort\n"[..], marker.as_bytes(), b"end\n"].concat()
        );
        assert_eq!(found, vec![(3, 22)]);
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_a_plain_byte() {
        // csv-core reads `ab"c` as the text ab"c: the row still ends at the line feed.
        let (out, found, _) = pass(b"ab\"c,d\nnext\n", 100);
        assert_eq!((out.as_slice(), found), (&b"ab\"c,d\nnext\n"[..], vec![]));
    }

    #[test]
    fn an_unterminated_quote_is_one_row_to_the_end() {
        let (out, found, marker) = pass(b"h\n\"open\nmore\nrows\n", 8);
        let marker = format!("\"\n\n\n{marker}\"\n");
        assert_eq!(out, [&b"h\n"[..], marker.as_bytes()].concat());
        assert_eq!(found, vec![(2, 16)]);
    }
}
