//! Outputs under a prefix of an object store, through the Apache Arrow project's
//! `object_store` crate. The run's threads are synchronous; each request is driven to its end
//! on a small Tokio runtime owned here.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use sha2::{Digest, Sha256};

use super::lease::{self, Lease};
use super::profile::Profile;
use super::ManifestMark;
use crate::commit::{parse_part_name, part_name, FileProblem, FileRecord};

/// Per-commit manifest objects: `_manifest/part-<start>-<end>.jsonl` (an object store cannot
/// append to the one file the disk layout keeps).
const MANIFEST_DIR: &str = "_manifest";

/// A file up to this size is one PUT; a larger one streams as a multipart upload of parts
/// this size (S3's minimum part is 5 MiB).
const PART_BYTES: usize = 8 << 20;

/// Bytes handed to the upload at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// How to reach the store beyond what the URL and the environment say.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// An S3-compatible endpoint (`--s3-endpoint`); else `AWS_ENDPOINT_URL`, else the
    /// profile's `endpoint_url`, else AWS.
    pub s3_endpoint: Option<String>,
}

/// An outputs prefix in an object store.
pub struct ObjectOutputs {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: tokio::runtime::Runtime,
    /// Each state object's version (the checkpoint's) as last read or written (`None`: read
    /// as absent): the next save is conditional on it.
    versions: Mutex<HashMap<String, Option<UpdateVersion>>>,
}

impl ObjectOutputs {
    /// Connects to `url` (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`)
    /// and lists the prefix once, so that a wrong endpoint, bucket or credentials fail here.
    pub fn connect(url: &str, options: &StoreOptions) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
        let prefix = ObjectPath::parse(parsed.path().trim_matches('/'))
            .with_context(|| format!("{url}: the prefix is not a valid object path"))?;
        let retry = RetryConfig {
            max_retries: 4,
            retry_timeout: Duration::from_secs(60),
            ..RetryConfig::default()
        };
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" | "s3a" => Arc::new(s3_builder(url, options).with_retry(retry).build()?),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()?,
            ),
            "az" | "azure" | "abfs" | "abfss" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()?,
            ),
            other => anyhow::bail!(
                "--outputs {url}: `{other}://` is not a supported store (s3://, gs://, az://, or a local path)"
            ),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stockstream-store")
            .enable_all()
            .build()
            .context("starting the object store's I/O threads")?;
        let outputs = Self {
            url: url.trim_end_matches('/').to_owned(),
            store,
            prefix,
            runtime,
            versions: Mutex::new(HashMap::new()),
        };
        outputs
            .block_on(outputs.store.list_with_delimiter(Some(&outputs.prefix)))
            .with_context(|| format!("cannot reach the outputs at {}", outputs.url))?;
        Ok(outputs)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub(super) fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub(super) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object at `relative` under the prefix.
    pub(super) fn path(&self, relative: &str) -> ObjectPath {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// `location` relative to the prefix, `/`-separated.
    fn relative(&self, location: &ObjectPath) -> String {
        location
            .prefix_match(&self.prefix)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| location.to_string())
    }

    pub fn lock(self: &Arc<Self>) -> anyhow::Result<Lease> {
        lease::acquire(self.clone())
    }

    /// The state object `name` (a checkpoint), remembering its version for the next
    /// [`put_state`](Self::put_state); `None` when there is none.
    pub fn get_state(&self, name: &str) -> anyhow::Result<Option<Bytes>> {
        let shown = format!("{}/{name}", self.url);
        let result = match self.block_on(self.store.get(&self.path(name))) {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                self.versions().insert(name.to_owned(), None);
                return Ok(None);
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {shown}")),
        };
        let version = UpdateVersion {
            e_tag: result.meta.e_tag.clone(),
            version: result.meta.version.clone(),
        };
        let bytes = self
            .block_on(result.bytes())
            .with_context(|| format!("cannot read {shown}"))?;
        self.versions().insert(name.to_owned(), Some(version));
        Ok(Some(bytes))
    }

    /// Replaces the state object `name` only if it is still the version this run last read
    /// or wrote (created only if it did not exist): another writer's commit in between makes
    /// this one fail rather than overwrite it.
    pub fn put_state(&self, name: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let shown = format!("{}/{name}", self.url);
        let mut versions = self.versions();
        let mode = match versions.get(name).cloned().flatten() {
            Some(v) => PutMode::Update(v),
            None => PutMode::Create,
        };
        let put = self.block_on(self.store.put_opts(
            &self.path(name),
            PutPayload::from(bytes),
            PutOptions {
                mode,
                ..PutOptions::default()
            },
        ));
        match put {
            Ok(result) => {
                versions.insert(
                    name.to_owned(),
                    Some(UpdateVersion {
                        e_tag: result.e_tag,
                        version: result.version,
                    }),
                );
                Ok(())
            }
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
            ) => anyhow::bail!(
                "another writer replaced {shown} since this run read it: this commit is not made, and the files it wrote are left for the next run to remove"
            ),
            Err(e) => Err(e).with_context(|| format!("cannot write {shown}")),
        }
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<UpdateVersion>>> {
        self.versions.lock().expect("not poisoned")
    }

    /// Whether an object exists at `relative`.
    pub fn exists(&self, relative: &str) -> anyhow::Result<bool> {
        match self.block_on(self.store.head(&self.path(relative))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot read {}/{relative}", self.url)),
        }
    }

    /// Every object under `relative`, with its size.
    pub fn list(&self, relative: &str) -> anyhow::Result<Vec<(String, u64)>> {
        let prefix = self.path(relative);
        self.block_on(async {
            let mut listing = self.store.list(Some(&prefix));
            let mut found = Vec::new();
            while let Some(meta) = listing.next().await {
                let meta = meta?;
                found.push((self.relative(&meta.location), meta.size));
            }
            Ok::<_, object_store::Error>(found)
        })
        .with_context(|| format!("cannot list {}/{relative}", self.url))
    }

    pub fn read(&self, relative: &str) -> anyhow::Result<Bytes> {
        self.block_on(async { self.store.get(&self.path(relative)).await?.bytes().await })
            .with_context(|| format!("cannot read {}/{relative}", self.url))
    }

    pub fn committed_files(&self, mark: ManifestMark) -> anyhow::Result<Vec<FileRecord>> {
        let mut segments: Vec<(u64, String)> = self
            .list(MANIFEST_DIR)?
            .into_iter()
            .filter_map(|(name, _)| {
                let (_, end) = parse_part_name(name.rsplit('/').next()?)?;
                (end <= mark.commit_end).then_some((end, name))
            })
            .collect();
        segments.sort();
        let mut records = Vec::new();
        for (_, name) in segments {
            for line in self.read(&name)?.split(|b| *b == b'\n') {
                if !line.is_empty() {
                    records.push(serde_json::from_slice(line).with_context(|| {
                        format!("{}/{name} is not a stockstream manifest", self.url)
                    })?);
                }
            }
        }
        anyhow::ensure!(
            records.len() as u64 == mark.len,
            "{}/{MANIFEST_DIR} records {} committed files, the checkpoint {}: the outputs were changed by hand",
            self.url,
            records.len(),
            mark.len
        );
        Ok(records)
    }

    pub fn check_files(
        &self,
        records: Vec<FileRecord>,
        deep: bool,
    ) -> anyhow::Result<Vec<(FileRecord, FileProblem)>> {
        let sizes: HashMap<String, u64> = self.list("")?.into_iter().collect();
        let mut problems = Vec::new();
        for record in records {
            let problem = match sizes.get(&record.path) {
                None => Some(FileProblem::Missing),
                Some(size) if *size != record.bytes => Some(FileProblem::Altered),
                Some(_) if deep && self.sha256(&record.path)? != record.sha256 => {
                    Some(FileProblem::Altered)
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                problems.push((record, problem));
            }
        }
        Ok(problems)
    }

    fn sha256(&self, relative: &str) -> anyhow::Result<String> {
        let path = self.path(relative);
        let digest = self
            .block_on(async {
                let mut body = self.store.get(&path).await?.into_stream();
                let mut hasher = Sha256::new();
                while let Some(chunk) = body.next().await {
                    hasher.update(&chunk?);
                }
                Ok::<_, object_store::Error>(hasher.finalize())
            })
            .with_context(|| format!("cannot read {}/{relative}", self.url))?;
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Deletes part objects under `dirs` (and the manifest's) whose range starts at or after
    /// `committed`: what a commit that never reached its checkpoint left.
    pub fn remove_orphans(&self, dirs: &[&str], committed: u64) -> anyhow::Result<usize> {
        let mut removed = 0;
        for dir in dirs.iter().copied().chain([MANIFEST_DIR]) {
            for (name, _) in self.list(dir)? {
                let orphan = name
                    .rsplit('/')
                    .next()
                    .and_then(parse_part_name)
                    .is_some_and(|(start, _)| start >= committed);
                if orphan {
                    match self.block_on(self.store.delete(&self.path(&name))) {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("cannot delete {}/{name}", self.url))
                        }
                    }
                }
            }
        }
        Ok(removed)
    }

    pub fn append_manifest(&self, range: (u64, u64), records: &[FileRecord]) -> anyhow::Result<()> {
        let mut text = Vec::new();
        for record in records {
            serde_json::to_writer(&mut text, record)?;
            text.push(b'\n');
        }
        let name = format!("{MANIFEST_DIR}/{}", part_name(range.0, range.1, "jsonl"));
        self.block_on(self.store.put(&self.path(&name), PutPayload::from(text)))
            .with_context(|| format!("cannot write {}/{name}", self.url))?;
        Ok(())
    }

    /// A new object at `relative`, visible once [`ObjectWriter::finish`] returns.
    pub fn writer(self: &Arc<Self>, relative: &str) -> ObjectWriter {
        let upload = object_store::buffered::BufWriter::with_capacity(
            self.store.clone(),
            self.path(relative),
            PART_BYTES,
        )
        .with_max_concurrency(2);
        ObjectWriter {
            outputs: self.clone(),
            upload: Some(upload),
            chunk: Vec::with_capacity(CHUNK_BYTES),
        }
    }
}

fn s3_builder(url: &str, options: &StoreOptions) -> object_store::aws::AmazonS3Builder {
    use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
    // As `AmazonS3Builder::from_env`, but a variable set to the empty string counts as unset
    // (compose files pass `${AWS_ACCESS_KEY_ID:-}` through): an empty key or endpoint would
    // otherwise be used as given.
    let mut builder = AmazonS3Builder::new();
    for (name, value) in std::env::vars() {
        if name.starts_with("AWS_") && !value.is_empty() {
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
    }
    builder = builder.with_url(url);
    let profile = Profile::from_environment();
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    if !set("AWS_ACCESS_KEY_ID") {
        if let (Some(key), Some(secret)) = (&profile.access_key_id, &profile.secret_access_key) {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
            if let Some(token) = &profile.session_token {
                builder = builder.with_token(token);
            }
        }
    }
    let region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|r| !r.is_empty()))
        .or(profile.region)
        .unwrap_or_else(|| "us-east-1".to_owned());
    builder = builder.with_region(region);
    let endpoint = options
        .s3_endpoint
        .clone()
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint))
        .or(profile.endpoint_url);
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    builder
}

/// A synchronous writer of one object.
pub struct ObjectWriter {
    outputs: Arc<ObjectOutputs>,
    upload: Option<object_store::buffered::BufWriter>,
    chunk: Vec<u8>,
}

impl ObjectWriter {
    fn send_chunk(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_BYTES));
        let upload = self.upload.as_mut().expect("not finished");
        self.outputs
            .block_on(upload.put(Bytes::from(chunk)))
            .map_err(io::Error::other)
    }

    /// Uploads what is left and completes the object.
    pub fn finish(mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.send_chunk()?;
        let mut upload = self.upload.take().expect("finished once");
        let outputs = self.outputs.clone();
        outputs.block_on(upload.shutdown()).inspect_err(|_| {
            let _ = outputs.block_on(upload.abort());
        })
    }
}

impl io::Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.chunk.extend_from_slice(buf);
        if self.chunk.len() >= CHUNK_BYTES {
            self.send_chunk()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // Not finished (an error on the way): a multipart upload begun is aborted, so no
        // parts are left to pay for; a single PUT was never sent.
        if let Some(mut upload) = self.upload.take() {
            let _ = self.outputs.block_on(upload.abort());
        }
    }
}
