//! The object store backend against a real S3 server (moto, `testkit::s3`): what keeps two
//! writers from both committing, below the lease that normally stops the second one first.

use std::collections::BTreeMap;

use stockstream_pipeline::checkpoint::{Checkpoint, Counts, InputIdentity, FORMAT};
use stockstream_pipeline::store::{Outputs, StoreOptions};
use stockstream_testkit::s3::S3Server;

fn connect(server: &S3Server, url: &str) -> Outputs {
    for (name, value) in server.env() {
        std::env::set_var(name, value);
    }
    Outputs::open(url, &StoreOptions::default()).expect("the store answers")
}

fn checkpoint(offset: u64) -> Checkpoint {
    Checkpoint {
        format: FORMAT,
        offset,
        line: offset,
        input: InputIdentity {
            source: "test".into(),
            prefix_hash: "0".into(),
        },
        chains: BTreeMap::new(),
        max_ts: None,
        last_replay: BTreeMap::new(),
        finished: false,
        open_alerts: Vec::new(),
        partition: None,
        manifest_len: 0,
        manifest_bytes: 0,
        skipped: Vec::new(),
        counts: Counts::default(),
    }
}

#[test]
fn a_checkpoint_is_replaced_only_by_the_writer_that_read_its_version() {
    let server = S3Server::shared();
    let bucket = server.create_bucket("conditional");
    let url = format!("s3://{bucket}/outputs");
    let first = connect(server, &url);
    let second = connect(server, &url);

    // Both find no checkpoint; the first to create it wins.
    assert!(first.load_checkpoint().unwrap().is_none());
    assert!(second.load_checkpoint().unwrap().is_none());
    first.save_checkpoint(&checkpoint(10)).unwrap();
    let refused = second.save_checkpoint(&checkpoint(99)).unwrap_err();
    assert!(
        refused.to_string().contains("another writer replaced"),
        "{refused:#}"
    );

    // Each replaces the version it read, and nothing else.
    assert_eq!(second.load_checkpoint().unwrap().unwrap().offset, 10);
    first.save_checkpoint(&checkpoint(20)).unwrap();
    assert!(second.save_checkpoint(&checkpoint(98)).is_err());
    first.save_checkpoint(&checkpoint(30)).unwrap();
    assert_eq!(second.load_checkpoint().unwrap().unwrap().offset, 30);
    second.save_checkpoint(&checkpoint(40)).unwrap();
    assert!(first.save_checkpoint(&checkpoint(97)).is_err());
    assert_eq!(first.load_checkpoint().unwrap().unwrap().offset, 40);
}

#[test]
fn the_lease_refuses_a_second_holder_and_is_released_on_drop() {
    let server = S3Server::shared();
    let bucket = server.create_bucket("lease");
    let outputs = connect(server, &format!("s3://{bucket}/outputs"));
    let held = outputs.lock().unwrap();
    held.check().unwrap();
    // The same process is alive and on this host: a second lock is refused, not taken over.
    let refused = outputs.lock().err().expect("a second holder is refused");
    assert!(
        refused
            .to_string()
            .contains("another stockstream run is writing to"),
        "{refused:#}"
    );
    drop(held);
    assert!(server.list(&bucket, "outputs/").is_empty());
    outputs.lock().unwrap();
}
