//! Black-box tests of alerts (issue 12): `stockstream run` groups anomalies into alerts, writes
//! the closed ones to outputs/alerts/, and POSTs them to a webhook, here a real HTTP receiver
//! on loopback that fails and recovers, or never answers well.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{check_with_python, repo_root, stderr};
use stockstream_pipeline::outputs::{Rows, Stream};
use stockstream_pipeline::parquet_io::read_rows;
use stockstream_pipeline::score::part_files;

/// An HTTP/1.1 receiver that answers `fail_first` requests with 503, then 200 (or 503 for
/// ever with `usize::MAX`), and keeps every body it was sent.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    requests: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hooks/T000/secret",
            listener.local_addr().unwrap()
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (kept, count) = (bodies.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                if let Some(body) = serve(stream, n >= fail_first) {
                    if n >= fail_first {
                        kept.lock().unwrap().push(body);
                    }
                }
            }
        });
        Self {
            url,
            bodies,
            requests,
        }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Reads one request and answers it.
fn serve(mut stream: TcpStream, ok: bool) -> Option<serde_json::Value> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    assert!(
        request_line.starts_with("POST /hooks/T000/secret "),
        "{request_line}"
    );
    let mut length = 0;
    let mut json = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => json = value.trim() == "application/json",
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    assert!(json, "alerts are sent as application/json");
    let status = if ok {
        "200 OK"
    } else {
        "503 Service Unavailable"
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    serde_json::from_slice(&body).ok()
}

fn run(outputs: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args([
            "run",
            "--synthetic",
            "--speed",
            "max",
            "--no-dashboard",
            "--outputs",
            outputs.to_str().unwrap(),
        ])
        .args(extra)
        .current_dir(repo_root())
        .output()
        .unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("alerts-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The ids of the closed alerts under `outputs`.
fn closed_alert_ids(outputs: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for file in part_files(outputs, Stream::Alerts).unwrap() {
        let Rows::Alerts(rows) = read_rows(&file, Stream::Alerts).unwrap() else {
            panic!("alert rows")
        };
        ids.extend(rows.into_iter().map(|r| r.id.to_string()));
    }
    ids
}

/// The alerts are exactly the anomalies grouped by the definition (pandas, here): per symbol
/// in event time, a new alert wherever the gap exceeds the cooldown. The closed ones are in
/// outputs/alerts/ (every one whose end + cooldown is before the last tick), the rest are
/// open in the checkpoint.
const ALERTS_MATCH_ANOMALIES: &str = r#"
import sys, json, glob
import pandas as pd, pyarrow.parquet as pq
out, cooldown = sys.argv[1], int(sys.argv[2])
anomalies = pd.read_parquet(f"{out}/anomalies")
anomalies["ts"] = anomalies["ts"].astype("int64") // 1_000_000 if str(anomalies["ts"].dtype).startswith("datetime64[ns") else anomalies["ts"].astype("int64")
expected = []
for symbol, group in anomalies.sort_values(["symbol", "ts"], kind="stable").groupby("symbol"):
    ts = group["ts"].to_numpy()
    z = group["z"].to_numpy()
    new = [True] + [int(b) - int(a) > cooldown for a, b in zip(ts, ts[1:])]
    starts = [i for i, n in enumerate(new) if n] + [len(ts)]
    for a, b in zip(starts, starts[1:]):
        peak = max(range(a, b), key=lambda i: (abs(z[i]), -i))
        expected.append((symbol, int(ts[a]), int(ts[b - 1]), b - a, float(z[peak])))
checkpoint = json.load(open(f"{out}/_checkpoint.json"))
open_alerts = [(a["symbol"], a["start_ts"], a["end_ts"], a["count"], a["peak"][2]) for a in checkpoint["open_alerts"]]
files = glob.glob(f"{out}/alerts/date=*/part-*.parquet")
closed = []
if files:
    table = pd.concat([pq.read_table(f).to_pandas() for f in files])
    for c in ["start_ts", "end_ts", "peak_ts"]:
        table[c] = table[c].astype("int64") // (1_000_000 if str(table[c].dtype).startswith("datetime64[ns") else 1)
    for r in table.itertuples():
        assert r.id == f"{r.symbol}@{r.start_ts}", r
        assert r.direction == ("up" if r.peak_z >= 0 else "down"), r
        assert r.severity == ("critical" if abs(r.peak_z) >= 6 else "major" if abs(r.peak_z) >= 4 else "minor"), r
        closed.append((r.symbol, r.start_ts, r.end_ts, r.count, r.peak_z))
got = sorted(closed + open_alerts)
assert got == sorted(expected), (len(got), len(expected), [x for x in got if x not in expected][:3], [x for x in expected if x not in got][:3])
last_ts = checkpoint["max_ts"]
for symbol, start, end, count, peak in closed:
    assert end + cooldown < last_ts, ("closed too early", symbol, start)
for symbol, start, end, count, peak in open_alerts:
    assert end + cooldown >= last_ts, ("left open", symbol, start)
print(f"{len(closed)} closed and {len(open_alerts)} open alerts = the {len(anomalies)} anomalies grouped with cooldown {cooldown} ms")
"#;

#[test]
fn alerts_are_the_anomalies_grouped_by_cooldown() {
    for cooldown in ["1m", "2s"] {
        let out = temp_dir(&format!("grouped-{cooldown}"));
        let output = run(&out, &["--limit", "30000", "--alert-cooldown", cooldown]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("closed alerts"),
            "{}",
            stderr(&output)
        );
        let ms = if cooldown == "1m" { "60000" } else { "2000" };
        eprintln!(
            "{}",
            check_with_python(ALERTS_MATCH_ANOMALIES, &[&out, Path::new(ms)])
        );
    }
}

#[test]
fn a_webhook_that_fails_then_recovers_gets_every_alert() {
    let receiver = Receiver::start(3);
    let out = temp_dir("recovers");
    let output = run(
        &out,
        &["--limit", "20000", "--alert-webhook", &receiver.url],
    );
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let ids = closed_alert_ids(&out);
    assert!(
        ids.len() >= 10,
        "too few alerts to test with: {}",
        ids.len()
    );
    let bodies = receiver.bodies();
    let received: BTreeSet<String> = bodies
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(received, ids, "every closed alert is delivered");
    assert_eq!(bodies.len(), ids.len(), "each once");
    assert_eq!(receiver.requests.load(Ordering::SeqCst), ids.len() + 3);
    for body in &bodies {
        let text = body["text"]
            .as_str()
            .expect("a Slack-compatible text field");
        let symbol = body["symbol"].as_str().unwrap();
        assert!(text.starts_with(&format!("{symbol}: ")), "{text}");
        assert!(body["count"].as_u64().unwrap() >= 1);
        assert_eq!(body["status"], "closed");
    }
    assert!(
        log.contains(&format!(
            "webhook: {} alerts delivered, 0 dead-lettered, 3 retries",
            ids.len()
        )),
        "{log}"
    );
    // The secret part of the URL is never printed.
    assert!(!log.contains("secret"), "{log}");
    assert!(!out.join("_alert_outbox").read_dir().unwrap().any(|_| true));
}

#[test]
fn alerts_a_webhook_refuses_are_dead_lettered_not_lost() {
    let receiver = Receiver::start(usize::MAX);
    let out = temp_dir("refuses");
    let output = run(
        &out,
        &[
            "--limit",
            "6000",
            "--alert-webhook",
            &receiver.url,
            "--alert-webhook-attempts",
            "2",
        ],
    );
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let ids = closed_alert_ids(&out);
    assert!(!ids.is_empty());
    let mut dead = BTreeSet::new();
    for entry in std::fs::read_dir(out.join("dead_letter/webhook")).unwrap() {
        for line in std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            .lines()
        {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(record["reason"], "webhook_failed");
            assert_eq!(record["attempts"], 2);
            assert!(
                record["error"].as_str().unwrap().contains("503"),
                "{record}"
            );
            dead.insert(record["alert"]["id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(dead, ids, "every undelivered alert is dead-lettered");
    assert_eq!(receiver.requests.load(Ordering::SeqCst), 2 * ids.len());
    assert!(log.contains("dead-lettered"), "{log}");
    assert!(!log.contains("secret"), "{log}");
}

#[test]
fn a_bad_webhook_url_is_refused_before_any_output() {
    let out = temp_dir("bad-url");
    let output = run(
        &out,
        &["--limit", "100", "--alert-webhook", "hooks.example/x"],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("is not an http:// or https:// URL"),
        "{}",
        stderr(&output)
    );
    assert!(!out.join("_checkpoint.json").exists());
}
