//! A real S3-compatible server for a test (Garage on 127.0.0.1, by `scripts/s3-test-server.sh`),
//! stopped when the test's handle is dropped, and `gdt` commands pointed at it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A running server with one bucket, and the directory its data lives in.
pub struct S3Server {
    dir: tempfile::TempDir,
    /// The `AWS_*` variables that reach it.
    pub env: Vec<(String, String)>,
    pub bucket: String,
}

fn script(args: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/s3-test-server.sh");
    Command::new(script)
        .args(args)
        // The server stops by itself after this long even if the test is killed.
        .env("GDT_S3_TEST_SERVER_SECONDS", "900")
        .output()
        .expect("scripts/s3-test-server.sh runs")
}

impl S3Server {
    /// Starts a fresh server (about a second). Fails, naming the fix, when Garage is not
    /// installed: `scripts/setup.sh` (run by `make test`) installs it.
    pub fn start() -> S3Server {
        let dir = tempfile::tempdir().unwrap();
        let o = script(&["start", dir.path().to_str().unwrap()]);
        assert!(
            o.status.success(),
            "starting the S3 test server: {}",
            crate::common::text(&o)
        );
        let env: Vec<(String, String)> = crate::common::stdout(&o)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let bucket = env
            .iter()
            .find(|(k, _)| k == "GDT_S3_BUCKET")
            .expect("a bucket")
            .1
            .clone();
        S3Server { dir, env, bucket }
    }

    /// Stops it (its objects are kept for [`S3Server::restart`]).
    pub fn stop(&self) {
        let o = script(&["stop", self.dir.path().to_str().unwrap()]);
        assert!(o.status.success(), "{}", crate::common::text(&o));
    }

    /// Starts it again after [`S3Server::stop`]: the same port, key and objects.
    pub fn restart(&self) {
        let o = script(&["start", self.dir.path().to_str().unwrap()]);
        assert!(o.status.success(), "{}", crate::common::text(&o));
    }

    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// A variable of its environment.
    pub fn var(&self, name: &str) -> &str {
        &self
            .env
            .iter()
            .find(|(k, _)| k == name)
            .expect("set by the script")
            .1
    }

    /// The `gdt` binary with this server's variables (and short retries: a test that stops
    /// the server waits seconds, not a minute).
    pub fn gdt(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gdt"));
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("GDT_STORAGE_RETRY_SECONDS", "3");
        c
    }

    /// Runs `gdt ARGS` against this server.
    pub fn run(&self, args: &[&str]) -> Output {
        self.gdt().args(args).output().expect("gdt runs")
    }

    /// The prefix `url` of this server, for reading objects from the test itself.
    pub fn objects(&self, url: &str) -> gdt_formats::storage::ObjectDir {
        let options = [
            ("aws_endpoint", "AWS_ENDPOINT_URL"),
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("aws_region", "AWS_REGION"),
        ]
        .map(|(key, var)| (key.to_string(), self.var(var).to_string()));
        gdt_formats::storage::ObjectDir::open_with(url, &options).unwrap()
    }

    /// Every object below `url`, name (relative to it) and bytes.
    #[cfg_attr(not(feature = "ffmpeg"), allow(dead_code))] // only the packing tests compare objects
    pub fn download(&self, url: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
        let objects = self.objects(url);
        objects
            .list()
            .unwrap()
            .into_iter()
            .map(|(name, _)| {
                let bytes = objects.read(&name).unwrap().expect("listed").to_vec();
                (name, bytes)
            })
            .collect()
    }

    /// Where its data is (for tests that look at the server's side).
    #[allow(dead_code)]
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = script(&["stop", self.dir.path().to_str().unwrap()]);
    }
}

/// Waits for `child` up to `limit`, killing it past that; its exit status, or `None` when it
/// was killed.
#[allow(dead_code)]
pub fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
