//! The input journal of the embedded pipeline fed from Kafka: every accepted tick, in the order
//! the pipeline read it, with the Kafka partition and offset it came from.
//!
//! It is what makes a Kafka-fed run resumable exactly. The pipeline re-reads its input's prefix
//! on a restart (to rebuild window state and check it is the same input); Kafka cannot give back
//! the same interleaving of several partitions, the journal can. It also tells where to go on
//! in each partition: one past the last offset it holds.
//!
//! Format: frames of `[len: u32 LE][partition: i32 LE][offset: i64 LE][value: len bytes]`,
//! appended. A frame cut short by a crash is removed on open.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Bytes of a frame before its value.
const HEADER: usize = 16;
/// Largest value accepted (Kafka's own default message limit is 1 MiB).
const MAX_VALUE: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the journal {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("another process is using the journal {0} (a bridge or run on the same outputs); stop it or choose another --outputs")]
    Locked(PathBuf),
    #[error("the journal {path} is damaged at byte {at}: {what}; move it away (and the outputs with it) to start over")]
    Damaged {
        path: PathBuf,
        at: u64,
        what: String,
    },
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub partition: i32,
    pub offset: i64,
    pub value: Vec<u8>,
}

/// The writing end, holding an exclusive lock on the file.
pub struct Journal {
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
    next: BTreeMap<i32, i64>,
    /// Appended since the last `sync`.
    dirty: bool,
}

impl Journal {
    /// Opens (or creates) the journal, drops a torn last frame, and returns it with a reader
    /// over the entries it already holds.
    pub fn open(path: &Path) -> Result<(Self, JournalReader), JournalError> {
        let io_error = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io_error)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error)?;
        lock(&file).map_err(|_| JournalError::Locked(path.to_owned()))?;
        let mut scan = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io_error)?);
        let mut good_bytes = 0u64;
        let mut len = 0u64;
        let mut next = BTreeMap::new();
        loop {
            match read_frame(&mut scan, path, good_bytes) {
                Ok(Some((entry, size))) => {
                    good_bytes += size;
                    len += 1;
                    next.insert(entry.partition, entry.offset + 1);
                }
                Ok(None) => break,
                Err(FrameError::Torn) => {
                    tracing::warn!(
                        "journal {}: dropping a frame cut short at byte {good_bytes} (the process was stopped while writing it)",
                        path.display()
                    );
                    break;
                }
                Err(FrameError::Bad(e)) => return Err(e),
            }
        }
        file.set_len(good_bytes).map_err(io_error)?;
        let mut out = file.try_clone().map_err(io_error)?;
        out.seek(SeekFrom::End(0)).map_err(io_error)?;
        let reader_file = File::open(path).map_err(io_error)?;
        Ok((
            Self {
                path: path.to_owned(),
                out: BufWriter::with_capacity(1 << 20, out),
                len,
                next,
                dirty: false,
            },
            JournalReader {
                path: path.to_owned(),
                input: BufReader::with_capacity(1 << 20, reader_file),
                remaining: len,
                at: 0,
            },
        ))
    }

    /// Entries in the journal.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Per partition, the offset after the last one journaled.
    pub fn next_offsets(&self) -> &BTreeMap<i32, i64> {
        &self.next
    }

    /// Appends an entry (buffered: [`flush`](Self::flush) or [`sync`](Self::sync) to write).
    pub fn append(&mut self, partition: i32, offset: i64, value: &[u8]) -> io::Result<()> {
        if value.len() > MAX_VALUE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a record of {} bytes is too large to journal", value.len()),
            ));
        }
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&(value.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&partition.to_le_bytes());
        header[8..].copy_from_slice(&offset.to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(value)?;
        self.len += 1;
        self.next.insert(partition, offset + 1);
        self.dirty = true;
        Ok(())
    }

    /// Hands what is buffered to the operating system (survives the process being killed).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Makes every appended entry durable (survives the machine going down).
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        if self.dirty {
            self.out.get_ref().sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A reader over every entry the journal holds now, from the first (written through
    /// first): the input read again when the pipeline restarts its chains in-process.
    pub fn reader(&mut self) -> Result<JournalReader, JournalError> {
        let io_error = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.out.flush().map_err(io_error)?;
        let file = File::open(&self.path).map_err(io_error)?;
        Ok(JournalReader {
            path: self.path.clone(),
            input: BufReader::with_capacity(1 << 20, file),
            remaining: self.len,
            at: 0,
        })
    }
}

/// Reads the entries a journal held when it was opened, from the first.
pub struct JournalReader {
    path: PathBuf,
    input: BufReader<File>,
    remaining: u64,
    at: u64,
}

impl JournalReader {
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Iterator for JournalReader {
    type Item = Result<Entry, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match read_frame(&mut self.input, &self.path, self.at) {
            Ok(Some((entry, size))) => {
                self.at += size;
                Some(Ok(entry))
            }
            // The scan on open found this frame whole: anything else is damage since then.
            Ok(None) | Err(FrameError::Torn) => Some(Err(JournalError::Damaged {
                path: self.path.clone(),
                at: self.at,
                what: "it ends before the entries it held when opened".into(),
            })),
            Err(FrameError::Bad(e)) => Some(Err(e)),
        }
    }
}

enum FrameError {
    /// The file ends inside a frame.
    Torn,
    Bad(JournalError),
}

/// Reads one frame: `None` at a clean end of file.
fn read_frame(
    input: &mut impl Read,
    path: &Path,
    at: u64,
) -> Result<Option<(Entry, u64)>, FrameError> {
    let mut header = [0u8; HEADER];
    match read_full(input, &mut header) {
        Ok(0) => return Ok(None),
        Ok(n) if n < HEADER => return Err(FrameError::Torn),
        Ok(_) => {}
        Err(source) => {
            return Err(FrameError::Bad(JournalError::Io {
                path: path.to_owned(),
                source,
            }))
        }
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let partition = i32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let offset = i64::from_le_bytes(header[8..].try_into().expect("8 bytes"));
    if len > MAX_VALUE || partition < 0 || offset < 0 {
        return Err(FrameError::Bad(JournalError::Damaged {
            path: path.to_owned(),
            at,
            what: format!("a frame claims {len} bytes, partition {partition}, offset {offset}"),
        }));
    }
    let mut value = vec![0u8; len];
    match read_full(input, &mut value) {
        Ok(n) if n < len => Err(FrameError::Torn),
        Ok(_) => Ok(Some((
            Entry {
                partition,
                offset,
                value,
            },
            (HEADER + len) as u64,
        ))),
        Err(source) => Err(FrameError::Bad(JournalError::Io {
            path: path.to_owned(),
            source,
        })),
    }
}

/// Reads until `buf` is full or the input ends; the number of bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn lock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; the lock goes with the descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_in_order_with_next_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/journal.bin");
        {
            let (mut journal, old) = Journal::open(&path).unwrap();
            assert_eq!(old.remaining(), 0);
            journal.append(0, 5, b"a").unwrap();
            journal.append(1, 7, b"").unwrap();
            journal.append(0, 6, b"ccc").unwrap();
            journal.sync().unwrap();
        }
        let (journal, old) = Journal::open(&path).unwrap();
        assert_eq!(journal.len(), 3);
        assert_eq!(
            journal.next_offsets().clone(),
            BTreeMap::from([(0, 7), (1, 8)])
        );
        let entries: Vec<Entry> = old.map(Result::unwrap).collect();
        assert_eq!(
            entries,
            vec![
                Entry {
                    partition: 0,
                    offset: 5,
                    value: b"a".to_vec()
                },
                Entry {
                    partition: 1,
                    offset: 7,
                    value: vec![]
                },
                Entry {
                    partition: 0,
                    offset: 6,
                    value: b"ccc".to_vec()
                },
            ]
        );
    }

    #[test]
    fn a_torn_last_frame_is_dropped_and_writing_goes_on_after_the_last_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        // Frames of 21 and 26 bytes: cut inside the second one's value, then its header.
        for cut_back in [3, 19] {
            let _ = std::fs::remove_file(&path);
            {
                let (mut journal, _) = Journal::open(&path).unwrap();
                journal.append(0, 0, b"whole").unwrap();
                journal.append(0, 1, b"torn-value").unwrap();
                journal.flush().unwrap();
            }
            let full = std::fs::metadata(&path).unwrap().len();
            assert_eq!(full, 47);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(full - cut_back)
                .unwrap();
            let (mut journal, old) = Journal::open(&path).unwrap();
            assert_eq!(journal.len(), 1, "cut {cut_back} bytes short");
            assert_eq!(journal.next_offsets().get(&0), Some(&1));
            assert_eq!(old.count(), 1);
            journal.append(0, 1, b"again").unwrap();
            journal.flush().unwrap();
            drop(journal);
            let (journal, old) = Journal::open(&path).unwrap();
            assert_eq!(journal.len(), 2);
            let values: Vec<Vec<u8>> = old.map(|e| e.unwrap().value).collect();
            assert_eq!(values, vec![b"whole".to_vec(), b"again".to_vec()]);
        }
    }

    #[test]
    fn a_reader_sees_every_entry_written_so_far_while_writing_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.append(0, 0, b"first").unwrap();
        journal.append(1, 0, b"second").unwrap();
        // Not flushed yet: the reader flushes first.
        let values = |journal: &mut Journal| -> Vec<Vec<u8>> {
            journal
                .reader()
                .unwrap()
                .map(|e| e.unwrap().value)
                .collect()
        };
        assert_eq!(
            values(&mut journal),
            vec![b"first".to_vec(), b"second".to_vec()]
        );
        journal.append(0, 1, b"third").unwrap();
        assert_eq!(values(&mut journal).len(), 3);
        assert_eq!(journal.next_offsets().get(&0), Some(&2));
    }

    #[test]
    fn damage_is_an_error_not_a_silent_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        std::fs::write(&path, [0xff; 40]).unwrap();
        let err = Journal::open(&path).err().expect("damaged");
        assert!(err.to_string().contains("damaged at byte 0"), "{err}");
    }

    #[test]
    fn one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.bin");
        let _first = Journal::open(&path).unwrap();
        let err = Journal::open(&path).err().expect("locked");
        assert!(matches!(err, JournalError::Locked(_)), "{err}");
    }
}
