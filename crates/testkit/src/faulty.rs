//! An HTTP proxy in front of an S3 server that injects the faults object stores and networks
//! produce: 503 SlowDown, connections reset before or after the server handled the request,
//! and response bodies cut short. One request per connection (it answers `Connection:
//! close`), which every HTTP client copes with.
//!
//! Every `every`-th request gets the next fault of [`Fault::ALL`], in turn; the others pass
//! through unchanged. [`FaultyProxy::injected`] counts what was done, so a test can show that
//! its faults happened.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `503 SlowDown`, the request never reaching the server.
    SlowDown,
    /// The connection closed before the request reached the server.
    ResetBefore,
    /// The server handled the request (a PUT is stored), then the connection closed
    /// without its answer.
    ResetAfter,
    /// The answer's head, then half its body, then the connection closed.
    Truncate,
}

impl Fault {
    pub const ALL: [Fault; 4] = [
        Fault::SlowDown,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Truncate,
    ];
}

struct Shared {
    upstream: u16,
    every: usize,
    requests: AtomicUsize,
    injected: Mutex<Vec<(Fault, String)>>,
    stop: AtomicBool,
}

pub struct FaultyProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultyProxy {
    /// Listen on a free loopback port and forward to `127.0.0.1:upstream`.
    pub fn start(upstream: u16, every: usize) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            upstream,
            every: every.max(1),
            requests: AtomicUsize::new(0),
            injected: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(&s, client);
                });
            }
        });
        FaultyProxy { port, shared }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many faults of `kind` were injected.
    pub fn injected(&self, kind: Fault) -> usize {
        self.lock().iter().filter(|(k, _)| *k == kind).count()
    }

    /// Every fault injected, with the request line it hit.
    pub fn log(&self) -> Vec<(Fault, String)> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Fault, String)>> {
        self.shared
            .injected
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Read one HTTP message head (through the blank line) and, by its Content-Length, its body.
fn read_message(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buf[..n]);
    };
    let head = data[..head_end].to_vec();
    let length = String::from_utf8_lossy(&head)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = data[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&buf[..n]);
    }
    Ok((head, body))
}

/// The head with any `Connection` header replaced by `Connection: close`.
fn closing(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let is_connection = line
            .split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("connection"));
        if !is_connection {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn serve(shared: &Shared, mut client: TcpStream) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, body) = read_message(&mut client)?;
    let request_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let n = shared.requests.fetch_add(1, Ordering::SeqCst);
    let fault = (n % shared.every == shared.every - 1)
        .then(|| Fault::ALL[(n / shared.every) % Fault::ALL.len()]);
    let record = |kind: Fault| {
        shared
            .injected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((kind, request_line.clone()));
    };
    match fault {
        Some(Fault::SlowDown) => {
            record(Fault::SlowDown);
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            write!(
                client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            )?;
            return client.shutdown(Shutdown::Both);
        }
        Some(Fault::ResetBefore) => {
            record(Fault::ResetBefore);
            return client.shutdown(Shutdown::Both);
        }
        _ => {}
    }
    let mut upstream = TcpStream::connect(("127.0.0.1", shared.upstream))?;
    upstream.set_read_timeout(Some(Duration::from_secs(60)))?;
    upstream.write_all(&closing(&head))?;
    upstream.write_all(&body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    let body_at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |i| i + 4);
    match fault {
        Some(Fault::Truncate) if answer.len() > body_at + 1 => {
            record(Fault::Truncate);
            let cut = body_at + (answer.len() - body_at) / 2;
            client.write_all(&answer[..cut])?;
            client.shutdown(Shutdown::Both)
        }
        // A bodiless answer (HEAD, 204) cannot be cut: drop it whole instead.
        Some(Fault::Truncate | Fault::ResetAfter) => {
            record(Fault::ResetAfter);
            client.shutdown(Shutdown::Both)
        }
        _ => {
            client.write_all(&closing(&answer[..body_at]))?;
            client.write_all(&answer[body_at..])?;
            client.shutdown(Shutdown::Both)
        }
    }
}
