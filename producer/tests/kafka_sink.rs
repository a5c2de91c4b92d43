//! The producer's Kafka sink against a real Apache Kafka broker (issue 4): every tick arrives
//! once, keyed by its symbol, each symbol in one partition and in input order; and a broker
//! that does not answer is an error that says so, not a silent loss.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use stockstream_testkit::free_port;
use stockstream_testkit::kafka::KafkaBroker;
use stockstream_ticks::{Synthetic, SyntheticConfig};

#[test]
fn ticks_arrive_once_keyed_by_symbol_in_order_per_partition() {
    let broker = KafkaBroker::shared();
    let topic = broker.create_topic("sink", 3);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("ticks.jsonl");
    let config = SyntheticConfig {
        symbols: ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "IBM"]
            .map(String::from)
            .to_vec(),
        seed: 21,
        ..SyntheticConfig::default()
    };
    let lines: Vec<String> = Synthetic::new(config)
        .unwrap()
        .take(3000)
        .map(|t| String::from_utf8(t.record()).unwrap())
        .collect();
    // Two bad rows: reported and skipped, never sent.
    let mut text = lines.join("\n");
    text.push_str("\n{\"symbol\":\"AAPL\",\"ts\":1,\"price\":-5,\"volume\":1}\nnot json\n");
    std::fs::write(&input, text).unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["--input", input.to_str().unwrap(), "--speed", "max"])
        .args(["--sink", "kafka", "--bootstrap", &broker.bootstrap()])
        .args(["--topic", &topic])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");

    let messages = broker.read(&topic, lines.len() + 1, Duration::from_secs(30));
    assert_eq!(
        messages.len(),
        lines.len(),
        "exactly the valid ticks, once each"
    );
    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    let mut by_symbol: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut ordered: Vec<_> = messages.iter().collect();
    ordered.sort_by_key(|m| (m.partition, m.offset));
    for message in ordered {
        let key = String::from_utf8(message.key.clone().expect("a key")).unwrap();
        let value = String::from_utf8(message.value.clone().expect("a value")).unwrap();
        let tick: serde_json::Value = serde_json::from_str(&value).unwrap();
        assert_eq!(tick["symbol"], key.as_str(), "key = symbol");
        let partition = *partition_of.entry(key.clone()).or_insert(message.partition);
        assert_eq!(partition, message.partition, "{key} stays in one partition");
        by_symbol.entry(key).or_default().push(value);
    }
    assert!(
        partition_of
            .values()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1,
        "six symbols over three partitions use more than one: {partition_of:?}"
    );
    for (symbol, got) in &by_symbol {
        let want: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(&format!("\"symbol\":\"{symbol}\"")))
            .collect();
        assert_eq!(
            got.iter().collect::<Vec<_>>(),
            want,
            "{symbol}: input order within its partition"
        );
    }
}

#[test]
fn no_broker_is_a_clear_error_and_a_nonzero_exit() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("ticks.jsonl");
    std::fs::write(
        &input,
        "{\"symbol\":\"AAPL\",\"ts\":1700000000000,\"price\":1.5,\"volume\":1}\n",
    )
    .unwrap();
    let bootstrap = format!("127.0.0.1:{}", free_port());
    let output = Command::new(env!("CARGO_BIN_EXE_producer"))
        .args(["--input", input.to_str().unwrap()])
        .args(["--sink", "kafka", "--bootstrap", &bootstrap])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("is the broker running?"), "{log}");
}
