//! Where the outputs live: a local directory, or a prefix in an object store (`s3://`, `gs://`,
//! `az://`). Both give the same layout and the same guarantees (see [`crate::commit`]): each
//! file appears whole or not at all, named by the input range it holds; the checkpoint is what
//! makes a commit count; one writer at a time.
//!
//! On disk, a file is written under a temp name and renamed; the writer holds `flock` on
//! `.lock`. In an object store, a file is one PUT (or a completed multipart upload, for large
//! ones), so it is never visible half written; the checkpoint is replaced with a conditional
//! PUT on its ETag, and the writer holds a lease object, `_lock.json`, itself taken and renewed
//! with conditional PUTs (see [`lease`]).

mod lease;
mod object;
mod profile;

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, Checkpoint};
use crate::commit::{self, DirLock, FileProblem, FileRecord, Staged};

pub use lease::LEASE;

/// A committed file found missing or altered.
pub type DamagedFile = (FileRecord, FileProblem);

/// Where a checkpoint's record of committed files ends: the end of its last commit's
/// part-name range, and the manifest's committed lines and (on disk) bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManifestMark {
    pub commit_end: u64,
    pub len: u64,
    pub bytes: u64,
}
pub use object::{ObjectOutputs, StoreOptions};

/// The outputs root.
#[derive(Clone)]
pub enum Outputs {
    Local(PathBuf),
    Object(Arc<ObjectOutputs>),
}

impl From<PathBuf> for Outputs {
    fn from(path: PathBuf) -> Self {
        Outputs::Local(path)
    }
}

impl From<&Path> for Outputs {
    fn from(path: &Path) -> Self {
        Outputs::Local(path.to_owned())
    }
}

impl fmt::Display for Outputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outputs::Local(path) => write!(f, "{}", path.display()),
            Outputs::Object(store) => write!(f, "{}", store.url()),
        }
    }
}

impl fmt::Debug for Outputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Outputs({self})")
    }
}

/// Whether `text` names an object store (`scheme://...` with a scheme other than `file`).
pub fn is_url(text: &str) -> bool {
    text.split_once("://")
        .is_some_and(|(scheme, _)| scheme != "file" && !scheme.is_empty() && !scheme.contains('/'))
}

impl Outputs {
    /// A local path, or an object store URL, connected and checked to answer.
    pub fn open(text: &str, options: &StoreOptions) -> anyhow::Result<Self> {
        if is_url(text) {
            Ok(Outputs::Object(Arc::new(ObjectOutputs::connect(
                text, options,
            )?)))
        } else {
            let path = text.strip_prefix("file://").unwrap_or(text);
            Ok(Outputs::Local(PathBuf::from(path)))
        }
    }

    /// The local directory, if the outputs are on disk.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Outputs::Local(path) => Some(path),
            Outputs::Object(_) => None,
        }
    }

    /// The local directory, or an error saying that `what` needs one.
    pub fn require_local(&self, what: &str) -> anyhow::Result<&Path> {
        self.local().ok_or_else(|| {
            anyhow::anyhow!(
                "{what} needs the outputs on a local disk; {self} is in an object store"
            )
        })
    }

    /// `relative` under the outputs, for messages.
    pub fn display_join(&self, relative: &str) -> String {
        match self {
            Outputs::Local(path) => path.join(relative).display().to_string(),
            Outputs::Object(store) => format!("{}/{relative}", store.url()),
        }
    }

    /// Takes the outputs for one writer; refused while another holds them.
    pub fn lock(&self) -> anyhow::Result<OutputsLock> {
        Ok(match self {
            Outputs::Local(path) => OutputsLock::Local(DirLock::acquire(path)?),
            Outputs::Object(store) => OutputsLock::Object(store.lock()?),
        })
    }

    /// The last commit's checkpoint, if any. In an object store, later saves are conditional
    /// on the version read here.
    pub fn load_checkpoint(&self) -> anyhow::Result<Option<Checkpoint>> {
        match self.read_state(checkpoint::FILE_NAME)? {
            Some(bytes) => {
                Checkpoint::parse(&bytes, &self.display_join(checkpoint::FILE_NAME)).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Replaces the checkpoint: the step that makes a commit count.
    pub fn save_checkpoint(&self, checkpoint: &Checkpoint) -> anyhow::Result<()> {
        self.write_state(checkpoint::FILE_NAME, checkpoint.to_bytes())
    }

    /// A JSON state file (`what` names it in messages); `None` when there is none.
    pub fn load_json<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        what: &str,
    ) -> anyhow::Result<Option<T>> {
        match self.read_state(name)? {
            Some(bytes) => checkpoint::parse_json(&bytes, &self.display_join(name), what).map(Some),
            None => Ok(None),
        }
    }

    /// Replaces a JSON state file (atomically on disk; conditionally in an object store).
    pub fn save_json<T: serde::Serialize>(&self, name: &str, value: &T) -> anyhow::Result<()> {
        self.write_state(name, checkpoint::json_bytes(value))
    }

    /// The Parquet part files under `dir` (relative, at any depth), in name order: partition,
    /// then input range.
    pub fn part_files(&self, dir: &str) -> anyhow::Result<Vec<String>> {
        let is_part = |relative: &str| {
            let name = relative.rsplit('/').next().unwrap_or_default();
            name.starts_with("part-") && name.ends_with(".parquet")
        };
        let mut files: Vec<String> = match self {
            Outputs::Local(root) => {
                let mut files = Vec::new();
                let mut stack = vec![root.join(dir)];
                while let Some(current) = stack.pop() {
                    let entries = match std::fs::read_dir(&current) {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => anyhow::bail!("cannot read {}: {e}", current.display()),
                    };
                    for entry in entries {
                        let entry = entry?;
                        if entry.file_type()?.is_dir() {
                            stack.push(entry.path());
                        } else {
                            files.push(commit::relative_name(root, &entry.path()));
                        }
                    }
                }
                files
            }
            Outputs::Object(store) => store.list(dir)?.into_iter().map(|(name, _)| name).collect(),
        };
        files.retain(|f| is_part(f));
        files.sort();
        Ok(files)
    }

    /// The whole contents of the file at `relative`.
    pub fn read(&self, relative: &str) -> anyhow::Result<bytes::Bytes> {
        match self {
            Outputs::Local(root) => std::fs::read(root.join(relative))
                .map(bytes::Bytes::from)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", self.display_join(relative))),
            Outputs::Object(store) => store.read(relative),
        }
    }

    /// Whether a file exists at `relative`.
    pub fn exists(&self, relative: &str) -> anyhow::Result<bool> {
        match self {
            Outputs::Local(root) => Ok(root.join(relative).exists()),
            Outputs::Object(store) => store.exists(relative),
        }
    }

    fn read_state(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Outputs::Local(root) => match std::fs::read(root.join(name)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(anyhow::anyhow!(
                    "cannot read {}: {e}",
                    self.display_join(name)
                )),
            },
            Outputs::Object(store) => Ok(store.get_state(name)?.map(|b| b.to_vec())),
        }
    }

    fn write_state(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Outputs::Local(root) => commit::replace_file(&root.join(name), &bytes)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", self.display_join(name))),
            Outputs::Object(store) => store.put_state(name, bytes),
        }
    }

    /// The files a checkpoint counts as committed (its `mark`), after cutting off what a commit
    /// that never reached its checkpoint added to the manifest.
    pub fn committed_files(&self, mark: ManifestMark) -> anyhow::Result<Vec<FileRecord>> {
        match self {
            Outputs::Local(path) => {
                commit::trim_manifest(path, mark.bytes)
                    .with_context(|| format!("trimming {}", commit::MANIFEST))?;
                commit::read_manifest(path, mark.len)
                    .and_then(Iterator::collect)
                    .with_context(|| format!("reading {}", self.display_join(commit::MANIFEST)))
            }
            Outputs::Object(store) => store.committed_files(mark),
        }
    }

    /// The committed files (see [`committed_files`](Self::committed_files)) that are missing
    /// or altered, checked by size: what a resume checks on every start. On disk the manifest
    /// is streamed, so memory does not grow with the number of commits.
    pub fn damaged_committed_files(
        &self,
        mark: ManifestMark,
    ) -> anyhow::Result<Vec<(FileRecord, FileProblem)>> {
        match self {
            Outputs::Local(path) => {
                commit::trim_manifest(path, mark.bytes)
                    .with_context(|| format!("trimming {}", commit::MANIFEST))?;
                commit::read_manifest(path, mark.len)
                    .and_then(|records| commit::check_files(path, records, false))
                    .with_context(|| format!("checking the files of {self}"))
            }
            Outputs::Object(store) => store.check_files(store.committed_files(mark)?, false),
        }
    }

    /// Every file a checkpoint (`name`, counting `files` files) records as committed, and which
    /// are missing or altered by SHA-256: what `stockstream verify` reports.
    pub fn verify_committed(
        &self,
        mark: ManifestMark,
        name: &str,
        files: u64,
    ) -> anyhow::Result<(Vec<FileRecord>, Vec<DamagedFile>)> {
        anyhow::ensure!(
            mark.len > 0 || files == 0,
            "{} predates the record of committed files: nothing to check against",
            self.display_join(name)
        );
        let records = self.committed_files(mark)?;
        anyhow::ensure!(
            records.len() as u64 == mark.len,
            "the record of files in {self} is shorter than its checkpoint says ({} of {} lines)",
            records.len(),
            mark.len
        );
        let problems = self.check_files(records.clone(), true)?;
        Ok((records, problems))
    }

    /// Refuses to go on over committed files that are missing or altered (checked by size, on
    /// every start): that would report success with a hole in the outputs. `start_over` says
    /// how to start afresh.
    pub fn refuse_damaged(&self, mark: ManifestMark, start_over: &str) -> anyhow::Result<()> {
        let problems = self.damaged_committed_files(mark)?;
        if let Some((first, _)) = problems.first() {
            anyhow::bail!(
                "{} of the files committed in {self} are missing or altered (the first: {}); going on would leave a hole in the outputs. `stockstream verify --outputs {self}` lists them; restore them, or {start_over}",
                problems.len(),
                first.path,
            );
        }
        Ok(())
    }

    /// Which of `records` are missing or altered: by size (cheap enough for every start), and
    /// by SHA-256 as well when `deep`.
    pub fn check_files(
        &self,
        records: Vec<FileRecord>,
        deep: bool,
    ) -> anyhow::Result<Vec<(FileRecord, FileProblem)>> {
        match self {
            Outputs::Local(path) => commit::check_files(path, records.into_iter().map(Ok), deep)
                .with_context(|| format!("checking the files of {self}")),
            Outputs::Object(store) => store.check_files(records, deep),
        }
    }

    /// Deletes what an unfinished commit left under `dirs` (relative): part files whose range
    /// starts at or after `committed`, and temp files. Creates the directories on disk.
    pub fn remove_orphans(&self, dirs: &[&str], committed: u64) -> anyhow::Result<usize> {
        match self {
            Outputs::Local(root) => {
                let paths: Vec<PathBuf> = dirs.iter().map(|d| root.join(d)).collect();
                let removed = commit::remove_orphans(&paths, committed)
                    .with_context(|| format!("removing unfinished commits in {self}"))?;
                for dir in &paths {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                Ok(removed)
            }
            Outputs::Object(store) => store.remove_orphans(dirs, committed),
        }
    }

    /// A new commit's files.
    pub fn stage(&self) -> Staging {
        match self {
            Outputs::Local(root) => Staging::Local {
                root: root.clone(),
                staged: Staged::default(),
            },
            Outputs::Object(store) => Staging::Object(store.clone()),
        }
    }

    /// Records a commit's files (`range`: the commit's part-name range) in the manifest, before
    /// its checkpoint, and moves the checkpoint-to-be's `mark` past them.
    pub fn append_manifest(
        &self,
        mark: &mut ManifestMark,
        range: (u64, u64),
        records: &[FileRecord],
    ) -> anyhow::Result<()> {
        mark.commit_end = range.1;
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Outputs::Local(root) => {
                mark.bytes = commit::append_manifest(root, mark.bytes, records)
                    .with_context(|| format!("writing {}", commit::MANIFEST))?;
            }
            Outputs::Object(store) => store.append_manifest(range, records)?,
        }
        mark.len += records.len() as u64;
        Ok(())
    }
}

/// Held while a run writes; released on drop (or by the kernel / the lease's lapse if the
/// process dies).
pub enum OutputsLock {
    Local(DirLock),
    Object(lease::Lease),
}

impl OutputsLock {
    /// Fails if the lock was lost (an object store's lease taken over after it lapsed): the
    /// commit must not go on.
    pub fn check(&self) -> anyhow::Result<()> {
        match self {
            OutputsLock::Local(_) => Ok(()),
            OutputsLock::Object(lease) => lease.check(),
        }
    }
}

/// The files of one commit being written.
pub enum Staging {
    Local { root: PathBuf, staged: Staged },
    Object(Arc<ObjectOutputs>),
}

impl Staging {
    /// Starts the file at `relative` (`/`-separated, under the outputs root).
    pub fn create(&mut self, relative: &str) -> anyhow::Result<OutputFile> {
        let file = match self {
            Staging::Local { root, staged } => {
                let path = root.join(relative);
                Sink::Local(
                    staged
                        .create(path.clone())
                        .with_context(|| format!("cannot write {}", path.display()))?,
                )
            }
            Staging::Object(store) => Sink::Object(Box::new(store.writer(relative))),
        };
        Ok(OutputFile {
            relative: relative.to_owned(),
            sink: file,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    /// Makes the finished files visible under their final names (on disk: durable, then
    /// renamed; in an object store each became visible when it was finished).
    pub fn publish(self) -> anyhow::Result<()> {
        match self {
            Staging::Local { root, staged } => staged
                .publish(&root)
                .with_context(|| format!("publishing files in {}", root.display())),
            Staging::Object(_) => Ok(()),
        }
    }
}

enum Sink {
    Local(BufWriter<std::fs::File>),
    Object(Box<object::ObjectWriter>),
}

/// One output file being written; its size and SHA-256 are taken as it is written.
pub struct OutputFile {
    relative: String,
    sink: Sink,
    hasher: Sha256,
    bytes: u64,
}

impl OutputFile {
    /// Path under the outputs root.
    pub fn relative(&self) -> &str {
        &self.relative
    }

    /// Completes the file (in an object store, its upload) and returns what the manifest
    /// keeps of it.
    pub fn finish(self) -> anyhow::Result<FileRecord> {
        let relative = self.relative;
        match self.sink {
            Sink::Local(mut out) => out.flush(),
            Sink::Object(out) => out.finish(),
        }
        .with_context(|| format!("writing {relative}"))?;
        let sha256 = self
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(FileRecord {
            path: relative,
            bytes: self.bytes,
            sha256,
        })
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.sink {
            Sink::Local(out) => out.write(buf)?,
            Sink::Object(out) => out.write(buf)?,
        };
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Completing the file is `finish`'s: a flush here would upload a part early.
        match &mut self.sink {
            Sink::Local(out) => out.flush(),
            Sink::Object(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart() {
        assert!(is_url("s3://bucket/prefix"));
        assert!(is_url("gs://bucket"));
        assert!(is_url("az://container/a/b"));
        assert!(!is_url("outputs"));
        assert!(!is_url("/tmp/out"));
        assert!(!is_url("file:///tmp/out"));
        assert!(!is_url("dir/with://colon"));
    }

    #[test]
    fn a_local_file_records_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = Outputs::from(dir.path());
        let mut staging = outputs.stage();
        let mut file = staging.create("a/part.jsonl").unwrap();
        file.write_all(b"{}\n").unwrap();
        let record = file.finish().unwrap();
        assert!(!dir.path().join("a/part.jsonl").exists());
        staging.publish().unwrap();
        assert_eq!(record.bytes, 3);
        assert_eq!(
            (record.bytes, record.sha256),
            commit::digest(&dir.path().join("a/part.jsonl")).unwrap()
        );
    }
}
