//! Delivery of closed alerts to a webhook, at least once, never lost.
//!
//! A commit that closes alerts also writes them, as the request bodies to send, to a part file
//! in `outputs/_alert_outbox/`, published atomically with the commit's Parquet files. A sender
//! thread POSTs each line in order, retrying with exponential backoff; after the last attempt
//! the alert goes to `outputs/dead_letter/webhook/` with the error. A small `.sent` file beside
//! each outbox file counts the lines already delivered, so a restart (even after kill -9) goes
//! on where delivery stopped: at most the one alert in flight is sent twice, and every alert
//! carries a stable `id` for receivers that deduplicate.
//!
//! The body is the alert's JSON with a Slack-compatible `text` field first, so a Slack (or
//! Mattermost, ...) incoming-webhook URL shows a readable line as it is.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use stockstream_core::episodes::Episode;

use super::{alert_json, alert_text};
use crate::commit::parse_part_name;

/// Directory of the alerts waiting for delivery, under the outputs root (a leading `_` keeps
/// dataset readers off it).
pub const OUTBOX_DIR: &str = "_alert_outbox";
/// Directory of the alerts that could not be delivered, under the dead-letter directory.
pub const DEAD_LETTER_SUBDIR: &str = "webhook";

/// Where and how alerts are POSTed.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Attempts per alert before it is dead-lettered.
    pub attempts: u32,
    /// Wait after the first failure; doubled after each further one.
    pub first_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Time limit of one request (connect, send and answer).
    pub timeout: Duration,
}

impl WebhookConfig {
    /// Defaults: 6 attempts over about 15 s (0.5, 1, 2, 4, 8 s apart), 10 s per request.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let lower = url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"));
        anyhow::ensure!(
            rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')),
            "--alert-webhook {:?} is not an http:// or https:// URL",
            url
        );
        Ok(Self {
            url: url.to_owned(),
            attempts: 6,
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        })
    }

    /// The URL without its path and query, for logs: webhook URLs often carry a secret.
    pub fn redacted(&self) -> String {
        let scheme_end = self.url.find("://").map_or(0, |i| i + 3);
        let host_end = self.url[scheme_end..]
            .find(['/', '?'])
            .map_or(self.url.len(), |i| scheme_end + i);
        format!("{}/…", &self.url[..host_end])
    }
}

/// The request body of a closed alert: `{"text":"...", "id":..., ...}` (no tick list).
pub fn body(episode: &Episode) -> Vec<u8> {
    let json = alert_json(episode, false);
    let text = serde_json::to_string(&alert_text(episode)).expect("strings serialise");
    let mut out = Vec::with_capacity(json.len() + text.len() + 10);
    out.extend_from_slice(b"{\"text\":");
    out.extend_from_slice(text.as_bytes());
    out.push(b',');
    out.extend_from_slice(&json[1..]);
    out
}

/// What the sender did, for the run's summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: u64,
    pub dead_lettered: u64,
    /// Failed attempts that were tried again.
    pub retried: u64,
}

enum Wake {
    /// A commit published a new outbox file.
    Committed,
    /// Deliver what is there, then stop.
    Finish,
}

/// The sender thread.
pub struct WebhookSender {
    wake: Sender<Wake>,
    handle: JoinHandle<Delivery>,
}

impl WebhookSender {
    /// Starts delivering `root`'s outbox, beginning with whatever an earlier run left.
    pub fn spawn(root: &Path, config: WebhookConfig) -> Self {
        let (wake, woken) = channel();
        let root = root.to_owned();
        let handle = std::thread::Builder::new()
            .name("alert-webhook".to_owned())
            .spawn(move || deliver_loop(&root, &config, &woken))
            .expect("threads can be spawned");
        let _ = wake.send(Wake::Committed);
        Self { wake, handle }
    }

    /// Called after each commit that wrote an outbox file.
    pub fn committed(&self) {
        let _ = self.wake.send(Wake::Committed);
    }

    /// Delivers (or dead-letters) everything in the outbox, then returns the figures.
    pub fn finish(self) -> Delivery {
        let _ = self.wake.send(Wake::Finish);
        self.handle.join().unwrap_or_default()
    }
}

fn deliver_loop(root: &Path, config: &WebhookConfig, woken: &Receiver<Wake>) -> Delivery {
    let agent = ureq::AgentBuilder::new().timeout(config.timeout).build();
    let mut delivery = Delivery::default();
    loop {
        let finish = match woken.recv_timeout(Duration::from_secs(5)) {
            Ok(Wake::Finish) | Err(RecvTimeoutError::Disconnected) => true,
            Ok(Wake::Committed) | Err(RecvTimeoutError::Timeout) => false,
        };
        if let Err(e) = deliver_outbox(root, config, &agent, &mut delivery) {
            tracing::error!("alert webhook: {e:#}");
        }
        if finish {
            return delivery;
        }
    }
}

/// The outbox's part files, oldest commit first.
fn outbox_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                let (start, _) = parse_part_name(name)?;
                name.ends_with(".jsonl").then(|| (start, e.path()))
            })
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

fn progress_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().expect("a part file").to_os_string();
    name.push(".sent");
    file.with_file_name(name)
}

fn deliver_outbox(
    root: &Path,
    config: &WebhookConfig,
    agent: &ureq::Agent,
    delivery: &mut Delivery,
) -> anyhow::Result<()> {
    let dir = root.join(OUTBOX_DIR);
    for file in outbox_files(&dir)? {
        let text = fs::read_to_string(&file)?;
        let progress = progress_path(&file);
        let mut sent: usize = fs::read_to_string(&progress)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        for line in text.lines().skip(sent) {
            if !line.trim().is_empty() {
                match post(config, agent, line.as_bytes(), delivery) {
                    Ok(()) => delivery.delivered += 1,
                    Err(error) => {
                        tracing::warn!(
                            "alert webhook {}: giving up after {} attempts ({error}); the alert is kept in {}/{DEAD_LETTER_SUBDIR}/",
                            config.redacted(),
                            config.attempts,
                            crate::run::DEAD_LETTER_DIR
                        );
                        dead_letter(root, &file, line, &error, config.attempts)?;
                        delivery.dead_lettered += 1;
                    }
                }
            }
            sent += 1;
            crate::commit::replace_file(&progress, sent.to_string().as_bytes())?;
        }
        fs::remove_file(&file)?;
        let _ = fs::remove_file(&progress);
    }
    Ok(())
}

/// One alert, with retries: the error of the last attempt when all fail.
fn post(
    config: &WebhookConfig,
    agent: &ureq::Agent,
    body: &[u8],
    delivery: &mut Delivery,
) -> Result<(), String> {
    let mut wait = config.first_backoff;
    let mut attempt = 1;
    loop {
        let result = agent
            .post(&config.url)
            .set("Content-Type", "application/json")
            .send_bytes(body);
        let error = match result {
            Ok(_) => return Ok(()),
            Err(ureq::Error::Status(code, response)) => {
                format!("HTTP {code} {}", response.status_text())
            }
            Err(ureq::Error::Transport(t)) => t.to_string(),
        };
        if attempt >= config.attempts.max(1) {
            return Err(error);
        }
        tracing::debug!(attempt, "alert webhook attempt failed: {error}");
        delivery.retried += 1;
        std::thread::sleep(wait);
        wait = (wait * 2).min(config.max_backoff);
        attempt += 1;
    }
}

fn dead_letter(
    root: &Path,
    outbox_file: &Path,
    line: &str,
    error: &str,
    attempts: u32,
) -> anyhow::Result<()> {
    let dir = root
        .join(crate::run::DEAD_LETTER_DIR)
        .join(DEAD_LETTER_SUBDIR);
    fs::create_dir_all(&dir)?;
    let path = dir.join(outbox_file.file_name().expect("a part file"));
    let alert: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|_| serde_json::Value::String(line.to_owned()));
    let mut record = serde_json::to_vec(&serde_json::json!({
        "reason": "webhook_failed",
        "error": error,
        "attempts": attempts,
        "alert": alert,
    }))?;
    record.push(b'\n');
    let mut out = OpenOptions::new().create(true).append(true).open(&path)?;
    out.write_all(&record)?;
    out.sync_data()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_redacted() {
        assert!(WebhookConfig::new("ftp://x").is_err());
        assert!(WebhookConfig::new("http://").is_err());
        let config = WebhookConfig::new("https://hooks.example/services/T0/B0/secret").unwrap();
        assert_eq!(config.redacted(), "https://hooks.example/…");
        assert_eq!(
            WebhookConfig::new("http://127.0.0.1:9?k=secret")
                .unwrap()
                .redacted(),
            "http://127.0.0.1:9/…"
        );
    }
}
