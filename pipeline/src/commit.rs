//! Files that appear whole or not at all, named by the input range they hold.
//!
//! A commit covers the input records `[start, end)` (positions in the input, counting every
//! record and unreadable row). Each of its files is named `part-<start>-<end>.<ext>` (20-digit
//! zero-padded, so name order is input order) and written as a hidden temp file
//! (`.part-...tmp`) beside its final name; once every file of the commit is written, they are
//! flushed to disk, renamed into place, the directories flushed, and only then is the
//! checkpoint replaced (the same way), which is what makes the commit count. A crash before
//! that leaves files whose range starts at or after the checkpoint's offset: the next run
//! deletes them as orphans and writes that range again, so no row is ever written twice and a
//! reader never sees a partial file (dataset readers skip names starting with `.` or `_`).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Width of the offsets in file names.
const OFFSET_DIGITS: usize = 20;

/// `part-<start>-<end>.<ext>`.
pub fn part_name(start: u64, end: u64, ext: &str) -> String {
    format!("part-{start:0w$}-{end:0w$}.{ext}", w = OFFSET_DIGITS)
}

/// The input range of a `part-<start>-<end>.<ext>` name.
pub fn parse_part_name(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("part-")?;
    let (range, _ext) = rest.split_once('.')?;
    let (start, end) = range.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

fn temp_name(name: &str) -> String {
    format!(".{name}.{}.tmp", std::process::id())
}

fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// A committed file as the checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRecord {
    /// Path under the outputs root, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
}

/// `path` under `root`, `/`-separated.
pub(crate) fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Size and SHA-256 (hex) of a file.
pub fn digest(path: &Path) -> io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok((bytes, hex))
}

/// The record of committed files, one JSON line each, next to the checkpoint.
pub const MANIFEST: &str = "_manifest.jsonl";

/// Cuts the manifest under `root` back to its committed `bytes` (lines of a commit that crashed
/// before its checkpoint), then appends `records` and makes them durable, before the checkpoint
/// that counts them is written. Returns the manifest's new length in bytes.
pub fn append_manifest(root: &Path, bytes: u64, records: &[FileRecord]) -> io::Result<u64> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(MANIFEST))?;
    if file.metadata()?.len() != bytes {
        file.set_len(bytes)?;
    }
    let mut text = Vec::new();
    for record in records {
        serde_json::to_writer(&mut text, record)?;
        text.push(b'\n');
    }
    file.write_all(&text)?;
    file.sync_data()?;
    Ok(bytes + text.len() as u64)
}

/// Cuts the manifest back to its committed `bytes`, if a crash left more (on start).
pub fn trim_manifest(root: &Path, bytes: u64) -> io::Result<()> {
    let path = root.join(MANIFEST);
    match fs::metadata(&path) {
        Ok(meta) if meta.len() > bytes => {
            OpenOptions::new().write(true).open(&path)?.set_len(bytes)
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The first `lines` records of the manifest under `root`, one at a time.
pub fn read_manifest(
    root: &Path,
    lines: u64,
) -> io::Result<impl Iterator<Item = io::Result<FileRecord>>> {
    use std::io::BufRead;
    let path = root.join(MANIFEST);
    let reader: Box<dyn BufRead> = match File::open(&path) {
        Ok(file) => Box::new(io::BufReader::new(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound && lines == 0 => Box::new(io::empty()),
        Err(e) => return Err(e),
    };
    Ok(reader.lines().take(lines as usize).map(|line| {
        serde_json::from_str(&line?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }))
}

/// What is wrong with one recorded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileProblem {
    Missing,
    /// Another size or checksum than committed.
    Altered,
}

/// Checks recorded files against the disk: only their presence and size when `deep` is
/// false (cheap enough for every start), their SHA-256 as well when it is true.
pub fn check_files(
    root: &Path,
    records: impl IntoIterator<Item = io::Result<FileRecord>>,
    deep: bool,
) -> io::Result<Vec<(FileRecord, FileProblem)>> {
    let mut problems = Vec::new();
    for record in records {
        let record = record?;
        let path = root.join(&record.path);
        let problem = match fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Some(FileProblem::Missing),
            Err(e) => return Err(e),
            Ok(meta) if meta.len() != record.bytes => Some(FileProblem::Altered),
            Ok(_) if deep && digest(&path)?.1 != record.sha256 => Some(FileProblem::Altered),
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            problems.push((record, problem));
        }
    }
    Ok(problems)
}

/// Files being written for one commit.
#[derive(Default)]
pub struct Staged {
    /// (temp path, final path)
    files: Vec<(PathBuf, PathBuf)>,
    dirs: BTreeSet<PathBuf>,
}

impl Staged {
    /// Creates the temp file for `final_path` (and its directory).
    pub fn create(&mut self, final_path: PathBuf) -> io::Result<BufWriter<File>> {
        let dir = final_path
            .parent()
            .expect("output files live in a directory")
            .to_owned();
        fs::create_dir_all(&dir)?;
        let name = final_path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("names are UTF-8");
        let temp = dir.join(temp_name(name));
        let file = File::create(&temp)?;
        self.files.push((temp, final_path));
        self.dirs.insert(dir);
        Ok(BufWriter::with_capacity(1 << 16, file))
    }

    /// Makes every staged file durable, then renames them into place and makes the renames
    /// durable.
    pub fn publish(self, root: &Path) -> io::Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let sync = Durability::for_count(self.files.len());
        sync.files(root, self.files.iter().map(|(temp, _)| temp.as_path()))?;
        for (temp, final_path) in &self.files {
            fs::rename(temp, final_path)?;
        }
        sync.dirs(root, self.dirs.iter().map(PathBuf::as_path))
    }
}

/// How to make many new files durable: one fsync each, or (Linux, many files) one `syncfs`
/// for the whole file system, which costs about as much as a single fsync.
#[derive(Clone, Copy)]
enum Durability {
    EachFile,
    #[cfg(target_os = "linux")]
    WholeFileSystem,
}

impl Durability {
    fn for_count(count: usize) -> Self {
        #[cfg(target_os = "linux")]
        if count > 8 {
            return Durability::WholeFileSystem;
        }
        let _ = count;
        Durability::EachFile
    }

    fn files<'a>(self, root: &Path, files: impl Iterator<Item = &'a Path>) -> io::Result<()> {
        match self {
            Durability::EachFile => {
                for path in files {
                    File::open(path)?.sync_all()?;
                }
                Ok(())
            }
            #[cfg(target_os = "linux")]
            Durability::WholeFileSystem => syncfs(root),
        }
    }

    fn dirs<'a>(self, root: &Path, dirs: impl Iterator<Item = &'a Path>) -> io::Result<()> {
        match self {
            Durability::EachFile => {
                for dir in dirs {
                    sync_dir(dir)?;
                    // A partition directory made by this commit needs its parent's entry too.
                    if let Some(parent) = dir.parent() {
                        sync_dir(parent)?;
                    }
                }
                Ok(())
            }
            #[cfg(target_os = "linux")]
            Durability::WholeFileSystem => syncfs(root),
        }
    }
}

#[cfg(target_os = "linux")]
fn syncfs(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = File::open(path)?;
    // SAFETY: a plain system call on a file descriptor we own for the duration of the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Flushes a directory's entries (new and renamed names) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Replaces `path` with `bytes` atomically and durably (temp file, fsync, rename, fsync dir).
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("a file in a directory");
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("UTF-8 name");
    let temp = dir.join(temp_name(name));
    {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temp, path)?;
    sync_dir(dir)
}

/// Deletes what an unfinished commit left: temp files, and part files whose range starts at or
/// after `committed` (the checkpoint's offset). Returns how many files were removed.
pub fn remove_orphans(dirs: &[PathBuf], committed: u64) -> io::Result<usize> {
    let mut removed = 0;
    for dir in dirs {
        removed += remove_orphans_in(dir, committed)?;
    }
    Ok(removed)
}

fn remove_orphans_in(dir: &Path, committed: u64) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if entry.file_type()?.is_dir() {
            removed += remove_orphans_in(&path, committed)?;
            // Leave no empty partition behind; a non-empty one fails harmlessly.
            let _ = fs::remove_dir(&path);
            continue;
        }
        let orphan = is_temp_name(name)
            || parse_part_name(name).is_some_and(|(start, _)| start >= committed);
        if orphan {
            fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// An exclusive lock on an outputs directory, held while a run writes to it (released by the
/// kernel if the process dies, so a kill -9 never leaves a stale lock).
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn acquire(root: &Path) -> anyhow::Result<Self> {
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create the outputs directory {}", root.display()))?;
        let path = root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: flock on a descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc != 0 {
                anyhow::bail!(
                    "another stockstream run is writing to {} (lock {} is held); stop it or choose another --outputs",
                    root.display(),
                    path.display()
                );
            }
        }
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_input_order_and_parse_back() {
        let a = part_name(9, 10, "parquet");
        let b = part_name(10, 200, "parquet");
        assert!(a < b);
        assert_eq!(parse_part_name(&b), Some((10, 200)));
        assert_eq!(parse_part_name("notes.txt"), None);
    }

    #[test]
    fn orphans_of_an_unfinished_commit_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("date=2020-01-01");
        fs::create_dir_all(&part).unwrap();
        for (s, e) in [(0, 10), (10, 20), (20, 30)] {
            File::create(part.join(part_name(s, e, "parquet"))).unwrap();
        }
        File::create(part.join(temp_name("part-x"))).unwrap();
        File::create(part.join("README")).unwrap();
        let removed = remove_orphans(&[dir.path().to_owned()], 20).unwrap();
        assert_eq!(removed, 2);
        let mut left: Vec<_> = fs::read_dir(&part)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "README".to_owned(),
                part_name(0, 10, "parquet"),
                part_name(10, 20, "parquet")
            ]
        );
    }

    #[test]
    fn staged_files_appear_only_when_published() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Staged::default();
        let target = dir.path().join("a").join(part_name(0, 1, "jsonl"));
        let mut w = staged.create(target.clone()).unwrap();
        w.write_all(b"{}\n").unwrap();
        w.flush().unwrap();
        drop(w);
        assert!(!target.exists());
        staged.publish(dir.path()).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"{}\n");
    }
}
