//! Fan-out benchmark of the dashboard server: N WebSocket clients (default 100), each following
//! every symbol, while derived ticks come in at R ticks/s (default 100,000) for S seconds.
//! Prints the server's push latency (batch in -> update written to a client: p50/p99/max from
//! the clients' side), the messages and ticks delivered, and the CPU time of the server's own
//! threads (not the clients').
//!
//!     cargo bench -p stockstream-dashboard --bench fanout [-- CLIENTS RATE SECONDS]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use stockstream_dashboard::hub::Retention;
use stockstream_dashboard::{Dashboard, DashboardConfig};
use stockstream_pipeline::dashboard::DerivedBatch;
use stockstream_pipeline::Stream;
use tokio_tungstenite::tungstenite::Message;

const SYMBOLS: [&str; 5] = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA"];
/// Batches per second the feed is cut into (the pipeline hands over a batch per chain call).
const BATCHES_PER_SECOND: u64 = 50;

/// CPU seconds (user + system) of this process's threads whose names start with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: utime and stime are the 12th and 13th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 12 {
            total +=
                fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        }
    }
    total as f64 / ticks_per_second
}

fn record(symbol: &str, ts: i64, price: f64) -> Vec<u8> {
    format!(
        r#"{{"symbol":"{symbol}","ts":{ts},"price":{price:?},"volume":1,"sma":{price:?},"count":1,"vwap":{price:?},"prev_mean":null,"prev_std":null,"prev_count":0,"z":null,"anomaly":false,"late":false}}"#
    )
    .into_bytes()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let clients: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let rate: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);

    let mut config = DashboardConfig::new(std::env::temp_dir());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.retention = Retention::default();
    let dashboard = Dashboard::start(config).expect("the dashboard starts");
    let addr = dashboard.addr();
    let started = Instant::now();

    // The clients run on a runtime of their own, on threads named apart from the server's.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();
    let per_batch = (rate / BATCHES_PER_SECOND).max(1);
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    let ticks_received = Arc::new(AtomicU64::new(0));
    let messages = Arc::new(AtomicU64::new(0));
    let connected = Arc::new(AtomicU64::new(0));
    for _ in 0..clients {
        let latencies = latencies.clone();
        let ticks_received = ticks_received.clone();
        let messages = messages.clone();
        let connected = connected.clone();
        runtime.spawn(async move {
            let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
                .await
                .expect("connects");
            let subscribe = format!(
                r#"{{"type":"subscribe","symbols":{}}}"#,
                serde_json::to_string(&SYMBOLS).unwrap()
            );
            socket.send(Message::Text(subscribe.into())).await.unwrap();
            connected.fetch_add(1, Ordering::Relaxed);
            let mut local = Vec::new();
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let now = started.elapsed().as_micros() as u64;
                // A cheap read (the clients share the machine with the server): every tick
                // of a batch carries the batch's send time as its ts, the first row's is read.
                if !text.starts_with(r#"{"type":"update""#) {
                    continue;
                }
                messages.fetch_add(1, Ordering::Relaxed);
                let Some(at) = text.find(":[[") else { continue };
                let digits: String = text[at + 3..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                let newest_sent: u64 = digits.parse().unwrap_or(0);
                // Every update is one batch of `per_batch` ticks over the followed symbols.
                ticks_received.fetch_add(per_batch, Ordering::Relaxed);
                local.push(now.saturating_sub(newest_sent));
                if local.len() >= 16 {
                    latencies.lock().unwrap().append(&mut local);
                }
            }
        });
    }
    while connected.load(Ordering::Relaxed) < clients as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));

    let feed = dashboard.feed();
    let interval = Duration::from_secs(1) / BATCHES_PER_SECOND as u32;
    let cpu_before = thread_cpu("dashboard");
    let feed_start = Instant::now();
    let mut sent = 0u64;
    let mut dropped = 0u64;
    let total_batches = seconds * BATCHES_PER_SECOND;
    let mut prices = [100.0f64; SYMBOLS.len()];
    for b in 0..total_batches {
        let due = feed_start + interval * b as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent_micros = started.elapsed().as_micros() as u64;
        let records = (0..per_batch)
            .map(|i| {
                let s = (i as usize) % SYMBOLS.len();
                prices[s] += 0.01;
                // The send time stands in for ts so the client side can measure latency.
                record(SYMBOLS[s], sent_micros as i64 + 1, prices[s])
            })
            .collect();
        match feed.try_send(Arc::new(DerivedBatch {
            stream: Stream::Enriched,
            first_offset: sent,
            records,
        })) {
            Ok(()) => sent += per_batch,
            Err(_) => dropped += per_batch,
        }
    }
    let feed_elapsed = feed_start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let cpu = thread_cpu("dashboard") - cpu_before;
    let wall = feed_start.elapsed().as_secs_f64();

    let mut all = std::mem::take(&mut *latencies.lock().unwrap());
    all.sort_unstable();
    let pick = |q: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        all[((q * all.len() as f64) as usize).min(all.len() - 1)] as f64 / 1000.0
    };
    let server = &dashboard.hub().metrics;
    println!(
        "dashboard fan-out: {clients} clients, {rate} ticks/s offered for {seconds} s in {BATCHES_PER_SECOND} batches/s ({:.1} s to feed)",
        feed_elapsed.as_secs_f64()
    );
    println!(
        "  ticks fed {sent} (dropped by the feed queue: {dropped}); ticks delivered {} (= {:.1}% of fed x clients); update messages {}",
        ticks_received.load(Ordering::Relaxed),
        100.0 * ticks_received.load(Ordering::Relaxed) as f64 / (sent as f64 * clients as f64).max(1.0),
        messages.load(Ordering::Relaxed)
    );
    println!(
        "  push latency, batch in -> update parsed by a client (n = {}): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        pick(0.5),
        pick(0.99),
        all.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)
    );
    println!(
        "  server-side push latency (batch in -> written to the socket): p50 <= {:.2} ms, p99 <= {:.2} ms; lag snapshots {}",
        server.push_latency.quantile(0.5).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        server.push_latency.quantile(0.99).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
        server.lagged_snapshots.load(Ordering::Relaxed)
    );
    println!(
        "  server CPU (its own threads): {cpu:.2} s over {wall:.1} s = {:.0}% of one core",
        100.0 * cpu / wall
    );
    runtime.shutdown_background();
}
