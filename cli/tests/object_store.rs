//! Black-box tests of `--outputs s3://bucket/prefix` (issue 14) against a real S3 server on
//! loopback (moto, `testkit::s3`): the same rows as on disk, exactly once across kill -9, one
//! writer per prefix, and clear failures when the store cannot be reached or refuses the keys.
//! The outputs are read back with pyarrow straight from the bucket.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{check_with_python, mirror_bucket, repo_root, stderr, write_ticks, SAME_OUTPUTS};
use stockstream_testkit::s3::S3Server;

/// `stockstream` with the server's credentials and nothing else of the caller's AWS setup.
fn command(server: &S3Server, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stockstream"));
    command.args(args).current_dir(repo_root());
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    // No profile files of the machine's user either.
    command
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    command.envs(server.env());
    command
}

fn run(server: &S3Server, args: &[&str]) -> Output {
    command(server, args).output().expect("stockstream runs")
}

/// The run arguments shared by every run of one test.
fn run_args<'a>(input: &'a Path, outputs: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--input",
        input.to_str().unwrap(),
        "--outputs",
        outputs,
        "--no-dashboard",
        "--batch-size",
        "512",
    ];
    args.extend_from_slice(extra);
    args
}

/// `run --synthetic` of `limit` ticks at full speed, its injected anomalies in `truth`.
fn synthetic_args<'a>(
    truth: &'a Path,
    outputs: &'a str,
    limit: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--synthetic",
        "--limit",
        limit,
        "--speed",
        "max",
        "--truth",
        truth.to_str().unwrap(),
        "--outputs",
        outputs,
    ];
    args.extend_from_slice(extra);
    args
}

/// A JSON-lines input of synthetic ticks, with a few lines that are dead-lettered.
fn input(dir: &Path, count: usize) -> std::path::PathBuf {
    let path = dir.join("ticks.jsonl");
    let mut lines = write_ticks(&path, count, 23, 20.0);
    for at in [17, count / 3, count / 2 + 5] {
        lines.insert(
            at,
            format!(r#"{{"symbol":"BAD","ts":"yesterday","price":1,"n":{at}}}"#),
        );
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_run_to_s3_equals_a_run_to_disk_and_pyarrow_reads_it_from_the_bucket() {
    let server = S3Server::shared();
    let bucket = server.create_bucket("equal");
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), 20_000);
    let disk = dir.path().join("disk");
    let extra = ["--commit-records", "3000"];
    let out = run(server, &run_args(&input, disk.to_str().unwrap(), &extra));
    assert!(out.status.success(), "{}", stderr(&out));
    let url = format!("s3://{bucket}/runs/one");
    let out = run(server, &run_args(&input, &url, &extra));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("under {url}")), "{err}");
    assert!(
        !err.contains(&server.secret_access_key),
        "a secret was printed: {err}"
    );

    let keys = server.list(&bucket, "runs/one/");
    assert!(
        keys.iter().any(|k| k == "runs/one/_checkpoint.json"),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.ends_with("_lock.json")),
        "the lock outlived the run: {keys:?}"
    );
    assert!(!keys.iter().any(|k| k.contains(".tmp")), "{keys:?}");

    let mirrored = dir.path().join("mirror");
    let read = mirror_bucket(server, &bucket, "runs/one", &mirrored);
    assert!(
        read.contains("streaming_data/enriched 20000 rows"),
        "{read}"
    );
    let same = check_with_python(SAME_OUTPUTS, &[&disk, &mirrored]);
    assert!(same.contains("dead_letter 3 identical"), "{same}");

    let out = run(server, &["verify", "--outputs", &url]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

#[test]
fn kill_9_at_random_points_then_resume_leaves_no_row_missing_or_twice() {
    let server = S3Server::shared();
    let bucket = server.create_bucket("kill");
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), 40_000);
    let disk = dir.path().join("disk");
    let extra = ["--commit-records", "700"];
    let out = run(server, &run_args(&input, disk.to_str().unwrap(), &extra));
    assert!(out.status.success(), "{}", stderr(&out));

    let url = format!("s3://{bucket}/killed");
    // Random points, printed so that a failure can be replayed.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut state = u64::from(seed) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // The killed runs replay at 250x event time: the input's 2,000 s take 8 s, so a kill within
    // 1.8 s always lands mid-run (unpaced, a fast machine finished each run before its kill).
    let paced = ["--commit-records", "700", "--speed", "250"];
    let mut kills = 0;
    for round in 0..4 {
        let delay = Duration::from_millis(300 + next() % 1500);
        eprintln!("seed {seed}: round {round}, kill -9 after {delay:?}");
        let mut child: Child = command(server, &run_args(&input, &url, &paced))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < delay && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    let out = run(server, &run_args(&input, &url, &extra));
    let err = stderr(&out);
    assert!(out.status.success(), "seed {seed}: {err}");
    assert!(kills > 0, "seed {seed}: every run finished before its kill");
    let mirrored = dir.path().join("mirror");
    mirror_bucket(server, &bucket, "killed", &mirrored);
    check_with_python(SAME_OUTPUTS, &[&disk, &mirrored]);
    let out = run(server, &["verify", "--outputs", &url]);
    assert!(out.status.success(), "seed {seed}: {}", stderr(&out));
}

#[test]
fn a_second_writer_on_the_same_prefix_is_refused_and_a_dead_ones_lock_is_taken_over() {
    let server = S3Server::shared();
    let bucket = server.create_bucket("writers");
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), 3_000);
    let url = format!("s3://{bucket}/shared");
    // The first run replays at event-time pace (20 ticks a second): it holds the prefix.
    let mut first = command(server, &run_args(&input, &url, &["--speed", "1"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server
        .list(&bucket, "shared/")
        .iter()
        .any(|k| k == "shared/_lock.json")
    {
        assert!(
            Instant::now() < deadline,
            "the first run never took the lock"
        );
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = run(server, &run_args(&input, &url, &[]));
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("another stockstream run is writing to {url}")),
        "{err}"
    );
    assert!(err.contains(&format!("process {}", first.id())), "{err}");

    // kill -9: the lock stays behind, but its holder is gone, so the next run takes it at once.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(server
        .list(&bucket, "shared/")
        .iter()
        .any(|k| k == "shared/_lock.json"));
    let started = Instant::now();
    let third = run(server, &run_args(&input, &url, &[]));
    let err = stderr(&third);
    assert!(third.status.success(), "{err}");
    assert!(err.contains("took over"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "waited for the lease: {err}"
    );
}

#[test]
fn a_wrong_endpoint_or_wrong_keys_fail_clearly_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path(), 500);
    let server = S3Server::start_with_auth("guarded").unwrap();
    let url = "s3://guarded/out";

    let mut wrong_keys = command(&server, &run_args(&input, url, &[]));
    wrong_keys.env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = wrong_keys.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot reach the outputs at s3://guarded/out"),
        "{err}"
    );
    assert!(err.contains("403"), "{err}");
    assert!(
        !err.contains("not-the-secret") && !err.contains(&server.secret_access_key),
        "{err}"
    );

    let mut nowhere = command(&server, &run_args(&input, url, &[]));
    let closed = format!("http://127.0.0.1:{}", stockstream_testkit::free_port());
    nowhere.args(["--s3-endpoint", &closed]);
    let out = nowhere.output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot reach the outputs") && err.contains("onnect"),
        "{err}"
    );

    // Nothing was written: the bucket is empty for the right keys, which then work.
    let listed = Command::new(repo_root().join(".cache/s3-server/venv/bin/python"))
        .args([
            "-c",
            "import sys, boto3; c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3]); print(c.list_objects_v2(Bucket='guarded')['KeyCount'])",
            &server.endpoint(),
            &server.access_key_id,
            &server.secret_access_key,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        "0",
        "{}",
        stderr(&listed)
    );
    let out = run(&server, &run_args(&input, url, &[]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn score_and_the_dashboards_history_read_the_outputs_from_the_bucket() {
    let server = S3Server::shared();
    let bucket = server.create_bucket("readers");
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let disk = dir.path().join("disk");
    let url = format!("s3://{bucket}/synthetic");
    for outputs in [disk.to_str().unwrap(), url.as_str()] {
        let args = synthetic_args(&truth, outputs, "30000", &["--no-dashboard"]);
        let out = run(server, &args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let score = |outputs: &str| {
        let out = run(
            server,
            &[
                "score",
                "--truth",
                truth.to_str().unwrap(),
                "--outputs",
                outputs,
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let from_disk = score(disk.to_str().unwrap());
    assert!(from_disk.contains("precision"), "{from_disk}");
    assert_eq!(score(&url), from_disk);

    // A run over a finished prefix resumes with nothing to do and serves the dashboard, whose
    // history comes from the bucket.
    let port = stockstream_testkit::free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut child = command(
        server,
        &synthetic_args(&truth, &url, "30000", &["--listen", &listen]),
    )
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    let stderr_pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr_pipe)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let mut history = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match seen.recv_timeout(Duration::from_secs(1)) {
            Ok(line) if line.contains("rows of history from") => history = Some(line),
            Ok(line) if line.contains("the dashboard stays") => break,
            Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let history = history.expect("the dashboard read its history");
    assert!(history.contains(&format!("under {url}")), "{history}");
}

#[test]
fn a_file_larger_than_a_part_streams_as_a_multipart_upload_and_reads_back_whole() {
    let server = S3Server::shared();
    let bucket = server.create_bucket("large");
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.jsonl");
    let disk = dir.path().join("disk");
    let url = format!("s3://{bucket}/large");
    // One commit of 300,000 ticks in one day: an enriched file of about 16 MB, two parts.
    for outputs in [disk.to_str().unwrap(), url.as_str()] {
        let extra = [
            "--rate",
            "20",
            "--commit-records",
            "10000000",
            "--no-dashboard",
        ];
        let out = run(server, &synthetic_args(&truth, outputs, "300000", &extra));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let log = server.log();
    assert!(
        log.lines().any(
            |l| l.contains(&format!("POST /{bucket}/large/streaming_data/enriched/"))
                && l.contains("?uploads")
        ),
        "no multipart upload began"
    );
    assert!(log.contains("partNumber=2"), "the file went up in one part");
    let mirrored = dir.path().join("mirror");
    let read = mirror_bucket(server, &bucket, "large", &mirrored);
    assert!(
        read.contains("streaming_data/enriched 300000 rows"),
        "{read}"
    );
    check_with_python(SAME_OUTPUTS, &[&disk, &mirrored]);
}
