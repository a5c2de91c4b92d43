//! Black-box tests of the Kafka bridge (issue 4) against a real Apache Kafka broker (KRaft,
//! started on loopback by `stockstream-testkit`): producer -> Kafka -> bridge -> embedded
//! chains equals the direct path; bad records are dead-lettered with their reason; kill -9
//! during a 100,000-tick stream loses nothing and ends with the outputs of a clean run; a
//! broker restart under a running bridge is ridden out.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    check_with_python, dead_letters, repo_root, stderr, transforms_with_a_trap, trap_tick_at,
    write_ticks, SAME_OUTPUTS, SAME_ROWS,
};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use stockstream_testkit::kafka::KafkaBroker;
use stockstream_testkit::unique_name;

/// The producer binary, built by `cargo test --workspace` beside this one.
fn producer_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_stockstream")).with_file_name("producer");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --release -p producer` (`make test` does)",
        path.display()
    );
    path
}

fn produce_file(broker: &KafkaBroker, topic: &str, input: &Path, speed: &str) -> Child {
    Command::new(producer_binary())
        .args(["--input", input.to_str().unwrap(), "--speed", speed])
        .args(["--sink", "kafka", "--bootstrap", &broker.bootstrap()])
        .args(["--topic", topic])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the producer runs")
}

fn wait_ok(child: Child, what: &str) -> Output {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        stderr(&output)
    );
    output
}

/// `stockstream run --kafka` on `topic` into `outputs`, with `extra` flags.
fn bridge_command(
    broker: &KafkaBroker,
    topic: &str,
    group: &str,
    outputs: &Path,
    extra: &[&str],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stockstream"));
    command
        .args(["run", "--kafka", "--no-dashboard"])
        .args(["--bootstrap", &broker.bootstrap(), "--topic", topic])
        .args(["--group", group, "--outputs", outputs.to_str().unwrap()])
        .args(extra)
        .current_dir(repo_root());
    command
}

fn clean_run(input: &Path, outputs: &Path) {
    let output = Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args(["run", "--input", input.to_str().unwrap(), "--no-dashboard"])
        .args(["--outputs", outputs.to_str().unwrap()])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}

fn checkpoint(outputs: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&fs::read_to_string(outputs.join("_checkpoint.json")).ok()?).ok()
}

fn committed_records(outputs: &Path) -> u64 {
    checkpoint(outputs).map_or(0, |c| c["offset"].as_u64().unwrap())
}

#[test]
fn producer_to_kafka_to_the_bridge_equals_the_direct_pipeline() {
    let broker = KafkaBroker::shared();
    let topic = broker.create_topic("ticks", 1);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("ticks.jsonl");
    write_ticks(&input, 20_000, 11, 50.0);
    wait_ok(
        produce_file(broker, &topic, &input, "max"),
        "producer -> kafka",
    );

    let via_kafka = tmp.path().join("via-kafka");
    let group = unique_name("group");
    let output = bridge_command(broker, &topic, &group, &via_kafka, &["--stop-at-end"])
        .output()
        .unwrap();
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("20000 records consumed, 20000 forwarded, 0 invalid"),
        "{log}"
    );
    let direct = tmp.path().join("direct");
    clean_run(&input, &direct);
    eprintln!(
        "{}",
        check_with_python(SAME_OUTPUTS, &[direct.as_path(), via_kafka.as_path()])
    );
    // Offsets are committed: the group is at the end.
    assert_eq!(
        broker.committed_offsets(&group, &topic).get(&0),
        Some(&20_000)
    );
    // Run again on the same outputs: nothing new, nothing twice.
    let again = bridge_command(broker, &topic, &group, &via_kafka, &["--stop-at-end"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("0 records consumed"),
        "{}",
        stderr(&again)
    );
    check_with_python(SAME_OUTPUTS, &[direct.as_path(), via_kafka.as_path()]);
}

#[test]
fn malformed_truncated_and_non_json_records_are_dead_lettered_and_the_bridge_goes_on() {
    let broker = KafkaBroker::shared();
    let topic = broker.create_topic("dirty", 2);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("log_level", "3")
        .create()
        .unwrap();
    let good = |i: i64| {
        format!(
            r#"{{"symbol":"AAPL","ts":{},"price":{}.5,"volume":10}}"#,
            1_700_000_000_000 + i * 1000,
            100 + i
        )
    };
    let bad: Vec<(&str, Option<&[u8]>)> = vec![
        ("not_json", Some(b"hello, kafka".as_slice())),
        (
            "truncated",
            Some(br#"{"symbol":"AAPL","ts":1700000000000,"pri"#.as_slice()),
        ),
        (
            "bad_price",
            Some(br#"{"symbol":"AAPL","ts":1700000000000,"price":-1,"volume":1}"#.as_slice()),
        ),
        (
            "missing",
            Some(br#"{"symbol":"AAPL","price":1.0,"volume":1}"#.as_slice()),
        ),
        ("binary", Some(b"\xff\xfe\x00garbage".as_slice())),
        ("empty", None),
    ];
    let mut sent_good = 0;
    for (i, (name, value)) in bad.iter().enumerate() {
        for j in 0..50 {
            let value = good(i as i64 * 50 + j);
            producer
                .send(BaseRecord::to(&topic).key("AAPL").payload(&value))
                .unwrap();
            sent_good += 1;
        }
        let mut record = BaseRecord::<str, [u8]>::to(&topic).key(*name);
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer.send(record).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let outputs = tmp.path().join("out");
    let group = unique_name("group");
    let output = bridge_command(broker, &topic, &group, &outputs, &["--stop-at-end"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "{} records consumed, {sent_good} forwarded, 6 invalid",
            sent_good + 6
        )),
        "{log}"
    );
    for reason in [
        "not_json=",
        "empty_record=1",
        "bad_price=1",
        "missing_field=1",
        "not_utf8=1",
    ] {
        assert!(log.contains(reason), "{reason} missing from: {log}");
    }
    // Each bad record is reported with where it came from and why.
    assert!(log.contains("invalid record ("), "{log}");
    let counts = &checkpoint(&outputs).unwrap()["counts"];
    assert_eq!(counts["enriched_rows"], sent_good, "{counts}");

    let dead = broker.read(&format!("{topic}.dlq"), 6, Duration::from_secs(30));
    assert_eq!(dead.len(), 6, "{dead:?}");
    let mut names: Vec<String> = dead
        .iter()
        .map(|m| String::from_utf8(m.key.clone().unwrap()).unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = bad.iter().map(|(n, _)| n.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
    for message in &dead {
        let name = String::from_utf8(message.key.clone().unwrap()).unwrap();
        let (_, value) = bad.iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(
            message.value.as_deref(),
            *value,
            "{name}: the record as it was"
        );
        assert!(
            !message.headers["stockstream.reason"].is_empty(),
            "{message:?}"
        );
        assert_eq!(message.headers["stockstream.topic"], topic);
        assert!(message.headers.contains_key("stockstream.offset"));
        assert!(message.headers.contains_key("stockstream.partition"));
    }
    let codes: Vec<&str> = dead
        .iter()
        .map(|m| m.headers["stockstream.code"].as_str())
        .collect();
    assert!(
        codes.contains(&"empty_record") && codes.contains(&"bad_price"),
        "{codes:?}"
    );
    // Every offset, the bad ones' too, is committed.
    let committed: i64 = broker.committed_offsets(&group, &topic).values().sum();
    assert_eq!(committed, sent_good + 6);
}

/// Kill -9 the bridge at random points while a 100,000-tick stream is being produced;
/// restarted, it loses nothing, and its outputs equal a clean run's.
#[test]
fn kill_9_during_a_100k_tick_stream_loses_nothing() {
    let broker = KafkaBroker::shared();
    let topic = broker.create_topic("stream", 1);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("ticks.jsonl");
    write_ticks(&input, 100_000, 7, 50.0);
    // 50 ticks/s of event time at 400x: the stream lasts about 5 s.
    let producing = produce_file(broker, &topic, &input, "400");
    let outputs = tmp.path().join("killed");
    let group = unique_name("group");
    let mut kills = 0;
    let mut seed = 0x9e37_79b9_u64;
    let started = Instant::now();
    while kills < 4 {
        assert!(started.elapsed() < Duration::from_secs(240), "too slow");
        let log = tmp.path().join(format!("bridge-{kills}.log"));
        let mut child = bridge_command(
            broker,
            &topic,
            &group,
            &outputs,
            &["--commit-interval", "300ms", "--commit-records", "5000"],
        )
        .env("RUST_LOG", "stockstream_pipeline=info")
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
        // Wait for it to start processing, then let it run a random while.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("processing from record")
        {
            assert!(
                Instant::now() < deadline,
                "{}",
                fs::read_to_string(&log).unwrap()
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "{}",
                fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(300 + seed % 1200));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    wait_ok(producing, "producer -> kafka");
    let output = bridge_command(broker, &topic, &group, &outputs, &["--stop-at-end"])
        .env("RUST_LOG", "stockstream_pipeline=info")
        .output()
        .unwrap();
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("resuming after record"), "{log}");
    assert_eq!(committed_records(&outputs), 100_000);
    assert_eq!(
        broker.committed_offsets(&group, &topic).get(&0),
        Some(&100_000)
    );
    let clean = tmp.path().join("clean");
    clean_run(&input, &clean);
    eprintln!(
        "{}",
        check_with_python(SAME_OUTPUTS, &[clean.as_path(), outputs.as_path()])
    );
}

#[test]
fn a_broker_restart_under_a_running_bridge_is_ridden_out() {
    let mut broker = KafkaBroker::start().expect("a broker of this test's own");
    let topic = broker.create_topic("restart", 1);
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first.jsonl");
    let second = tmp.path().join("second.jsonl");
    let lines = write_ticks(&tmp.path().join("all.jsonl"), 2_000, 3, 50.0);
    fs::write(&first, lines[..1000].join("\n") + "\n").unwrap();
    fs::write(&second, lines[1000..].join("\n") + "\n").unwrap();
    let outputs = tmp.path().join("out");
    let log = tmp.path().join("bridge.log");
    let mut bridge = bridge_command(
        &broker,
        &topic,
        "restart-group",
        &outputs,
        &["--commit-interval", "200ms"],
    )
    .stdout(Stdio::null())
    .stderr(fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let wait_for = |records: u64, bridge: &mut Child| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while committed_records(&outputs) < records {
            let text = fs::read_to_string(&log).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "stuck at {}: {text}",
                committed_records(&outputs)
            );
            assert!(
                bridge.try_wait().unwrap().is_none(),
                "the bridge exited: {text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_ok(produce_file(&broker, &topic, &first, "max"), "first half");
    wait_for(1000, &mut bridge);
    broker.restart().expect("the broker restarts");
    wait_ok(produce_file(&broker, &topic, &second, "max"), "second half");
    wait_for(2000, &mut bridge);
    // SIGTERM: a clean stop, everything committed.
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(bridge.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = bridge.wait().unwrap();
    let text = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{text}");
    assert!(
        text.contains("2000 records consumed, 2000 forwarded"),
        "{text}"
    );
    assert_eq!(committed_records(&outputs), 2000);
    assert_eq!(
        broker.committed_offsets("restart-group", &topic).get(&0),
        Some(&2000)
    );
}

/// A record a chain traps on, arriving through Kafka (#13): the chains (here with the test
/// fixture trap-on-symbol, a module with a bug) trap on a valid tick of TRAP. `run --kafka`
/// reads the batch again from the bridge's journal, one record at a time, dead-letters the
/// record and goes on; the next run, on more of the topic, does not meet it again. The
/// outputs are those of a run over the ticks without it.
#[test]
fn a_record_the_chains_trap_on_through_kafka_is_dead_lettered_and_never_met_again() {
    let broker = KafkaBroker::shared();
    let topic = broker.create_topic("trap", 1);
    let tmp = tempfile::tempdir().unwrap();
    let clean_input = tmp.path().join("clean.jsonl");
    let clean = write_ticks(&clean_input, 3_000, 41, 20.0);
    let transforms = transforms_with_a_trap(tmp.path());
    let mut lines = clean.clone();
    lines.insert(2_100, trap_tick_at(&clean[2_100]));
    lines.insert(900, trap_tick_at(&clean[900]));
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("log_level", "3")
        .create()
        .unwrap();
    let send = |lines: &[String]| {
        for line in lines {
            producer
                .send(BaseRecord::<str, str>::to(&topic).payload(line))
                .unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    };
    let outputs = tmp.path().join("out");
    let group = unique_name("group");
    let flags = [
        "--stop-at-end",
        "--transforms-dir",
        transforms.to_str().unwrap(),
        "--batch-size",
        "256",
        "--commit-records",
        "500",
    ];
    let run = || {
        let output = bridge_command(broker, &topic, &group, &outputs, &flags)
            .output()
            .unwrap();
        let log = stderr(&output);
        assert!(output.status.success(), "{log}");
        log
    };

    send(&lines[..1_500]);
    let first = run();
    assert!(first.contains("failed on this record"), "{first}");
    assert!(first.contains("WASM trap"), "{first}");
    assert!(first.contains("1 failed"), "{first}");
    send(&lines[1_500..]);
    let second = run();
    // The summary counts the input's failed records; only the new one was met this run.
    assert!(second.contains("2 failed"), "{second}");
    assert_eq!(
        second.matches("failed on this record").count(),
        1,
        "met again? {second}"
    );
    assert!(second.contains("line 2102: "), "{second}");

    let mut dead: Vec<String> = dead_letters(&outputs)
        .iter()
        .map(|record| {
            assert_eq!(record["reason"], "module_failed", "{record}");
            record["record"].as_str().unwrap().to_owned()
        })
        .collect();
    dead.sort();
    let mut want = vec![lines[900].clone(), lines[2_101].clone()];
    want.sort();
    assert_eq!(dead, want);

    let reference = tmp.path().join("reference");
    let output = Command::new(env!("CARGO_BIN_EXE_stockstream"))
        .args([
            "run",
            "--input",
            clean_input.to_str().unwrap(),
            "--no-dashboard",
        ])
        .args(["--transforms-dir", transforms.to_str().unwrap()])
        .args(["--outputs", reference.to_str().unwrap()])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    check_with_python(SAME_ROWS, &[reference.as_path(), outputs.as_path()]);
}
