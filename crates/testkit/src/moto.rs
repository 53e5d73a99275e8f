//! A throwaway S3 server: moto (`pip install 'moto[server]'`) on 127.0.0.1, in memory, killed
//! on drop. moto accepts any credentials and honours conditional puts (`If-None-Match: *`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vtool_transfer::S3Config;

use crate::sshd::free_port;

/// Credentials moto accepts (it checks none).
const KEY_ID: &str = "vtool-test";
const SECRET: &str = "vtool-test-secret";

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Start moto and wait until it answers.
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// Start moto checking credentials after the first `free` requests (the readiness probe
    /// is one, creating a bucket another); from then on the test key is refused as an
    /// unknown access key (403).
    pub fn start_checking_keys(free: u32) -> Moto {
        Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string())])
    }

    fn start_with(env: &[(&str, String)]) -> Moto {
        let port = free_port();
        // `python3 -m` rather than the `moto_server` script, which a pyenv shim may not show.
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 -m moto.server (pip install 'moto[server]')");
        let mut moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while moto.request("GET", "/", &[]).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited early ({status}): is it installed? pip install 'moto[server]'");
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a bucket (plain HTTP; moto checks no signature).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, _) = self
            .request("PUT", &format!("/{bucket}"), &[])
            .expect("create bucket");
        assert_eq!(status, 200, "creating bucket {bucket}");
    }

    /// Create a bucket with Object Lock enabled (which makes it versioned).
    pub fn create_locked_bucket(&self, bucket: &str) {
        let (status, _) = self
            .request(
                "PUT",
                &format!("/{bucket}"),
                &["x-amz-bucket-object-lock-enabled: true"],
            )
            .expect("create bucket");
        assert_eq!(status, 200, "creating locked bucket {bucket}");
    }

    /// The retention date of `bucket/key` as a HEAD shows it, if it has one.
    pub fn retain_until(&self, bucket: &str, key: &str) -> Option<String> {
        let (status, head) = self
            .request("HEAD", &format!("/{bucket}/{key}"), &[])
            .expect("HEAD");
        assert_eq!(status, 200, "HEAD {bucket}/{key}");
        head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-amz-object-lock-retain-until-date")
                .then(|| value.trim().to_string())
        })
    }

    /// How many versions of objects (delete markers not counted) `bucket` holds under `prefix`.
    pub fn versions(&self, bucket: &str, prefix: &str) -> usize {
        let (status, body) = self
            .request("GET", &format!("/{bucket}?versions&prefix={prefix}"), &[])
            .expect("list versions");
        assert_eq!(status, 200, "list versions of {bucket}");
        body.matches("<Version>").count()
    }

    /// A backend configuration for `bucket/prefix` on this server.
    pub fn config(&self, bucket: &str, prefix: &str) -> S3Config {
        let mut config = S3Config::new(bucket, prefix);
        config.endpoint = Some(self.endpoint());
        config.path_style = true;
        config.static_key = Some((KEY_ID.into(), SECRET.into()));
        config
    }

    /// The environment a `vtool` process needs for `s3://` URLs on this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VTOOL_S3_ENDPOINT", self.endpoint()),
            ("VTOOL_S3_PATH_STYLE", "1".into()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Send one request without a body; the response's status code and its whole text.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
    ) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        // moto checks no signature, but answers requests without one as anonymous ones.
        let auth = format!(
            "Authorization: AWS4-HMAC-SHA256 Credential={KEY_ID}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\n"
        );
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n{auth}{extra}Connection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))?;
        Ok((status, response))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
