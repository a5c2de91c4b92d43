//! An S3 server on loopback: moto in server mode (PyPI `moto[server]`, installed by
//! `scripts/s3-server.sh setup` in a venv of its own), on a free port, started from the same
//! long-lived thread as the Kafka broker so it goes away with the test process.
//!
//! moto rather than S3Proxy: stockstream's one-writer guarantee rests on conditional PUTs
//! (If-None-Match to create, If-Match to replace), and S3Proxy 2.6.0 on its filesystem
//! backend ignores both (a second create-only PUT of an existing key answers 200); moto
//! answers 412 as S3 does.
//!
//! [`S3Server::shared`] serves every test of a binary, with a bucket each
//! ([`S3Server::create_bucket`]). [`S3Server::start_with_auth`] starts one that checks
//! signatures, with a user of its own, for the credential tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{free_port, spawn_with_parent_death_signal, unique_name, workspace_root};

/// An S3 server. Dropping it kills the server (its objects live in its memory).
pub struct S3Server {
    port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// Keys that the server accepts (any, unless started with auth).
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// A program of the S3 server's venv.
fn venv_program(name: &str) -> anyhow::Result<PathBuf> {
    let path = workspace_root()
        .join(".cache/s3-server/venv/bin")
        .join(name);
    anyhow::ensure!(
        path.is_file(),
        "no {}: run `scripts/s3-server.sh setup` (or `make setup-test`) first",
        path.display()
    );
    Ok(path)
}

impl S3Server {
    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static S3Server {
        static SHARED: OnceLock<S3Server> = OnceLock::new();
        SHARED.get_or_init(|| S3Server::start(None).expect("the shared S3 server starts"))
    }

    /// A server that checks every request's signature against a user it creates, with
    /// `bucket` made for that user.
    pub fn start_with_auth(bucket: &str) -> anyhow::Result<Self> {
        // The first four requests go unchecked: they create the user, its key and policy,
        // and the bucket; every later one must be signed with that key.
        let mut server = Self::start(Some(4))?;
        let script = r#"
import sys, json, boto3
endpoint, bucket = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="stockstream")
key = iam.create_access_key(UserName="stockstream")["AccessKey"]
iam.put_user_policy(UserName="stockstream", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
        let output = Command::new(venv_program("python")?)
            .args(["-c", script, &server.endpoint(), bucket])
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "creating the S3 user: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout)?;
        let mut keys = text.split_whitespace();
        server.access_key_id = keys.next().unwrap_or_default().to_owned();
        server.secret_access_key = keys.next().unwrap_or_default().to_owned();
        Ok(server)
    }

    fn start(unchecked_requests: Option<u32>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("s3-server-").tempdir()?;
        let log = dir.path().join("moto.log");
        let file = std::fs::File::create(&log)?;
        let port = free_port();
        let mut command = Command::new(venv_program("moto_server")?);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        if let Some(count) = unchecked_requests {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", count.to_string());
        }
        let child = spawn_with_parent_death_signal(command)?;
        let mut server = Self {
            port,
            child,
            log,
            _dir: dir,
            access_key_id: "stockstream-test".into(),
            secret_access_key: "stockstream-test".into(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "moto_server exited ({status}) while starting; its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if self.request("GET", "/moto-api/").is_ok() {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "moto_server did not answer on port {} within 60 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's log so far (one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new bucket with a name no other test uses (a server without auth takes unsigned
    /// requests).
    pub fn create_bucket(&self, prefix: &str) -> String {
        let name = unique_name(prefix).to_ascii_lowercase();
        let (status, body) = self
            .request("PUT", &format!("/{name}"))
            .expect("the S3 server answers");
        assert_eq!(status, 200, "creating bucket {name}: {body}");
        name
    }

    /// Keys under `prefix` in `bucket` (unsigned listing; a server without auth).
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .request("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"))
            .expect("the S3 server answers");
        assert_eq!(status, 200, "listing {bucket}: {body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }

    /// Deletes `key` from `bucket` (unsigned; a server without auth).
    pub fn delete(&self, bucket: &str, key: &str) {
        let encoded: String = key
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = self
            .request("DELETE", &format!("/{bucket}/{encoded}"))
            .expect("the S3 server answers");
        assert_eq!(status, 204, "deleting {key}: {body}");
    }

    /// The environment a client needs: credentials, region and endpoint.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
        ]
    }

    /// One HTTP/1.1 request without a body: status and body.
    fn request(&self, method: &str, target: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {response:.200}")))?;
        let body = response
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        Ok((status, body))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
