//! A `flowdrill serve` child process for tests, and a raw HTTP client to talk to it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running daemon; killed when dropped.
pub struct Daemon {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
}

impl Daemon {
    /// Starts `flowdrill --store STORE serve --listen 127.0.0.1:0 EXTRA...` and waits until it
    /// listens.
    pub fn start(store: &Path, extra: &[&str]) -> Daemon {
        let dir = store.parent().unwrap();
        let file = dir.join(format!("address-{}", extra.join("_").replace('/', "_")));
        let _ = std::fs::remove_file(&file);
        let child = Command::new(env!("CARGO_BIN_EXE_flowdrill"))
            .args(["--quiet", "--store", store.to_str().unwrap(), "serve"])
            .args(["--listen", "127.0.0.1:0", "--address-file"])
            .arg(&file)
            .args(extra)
            .env_remove("FLOWDRILL_STORE")
            .env_remove("FLOWDRILL_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("flowdrill serve starts");
        let mut d = Daemon {
            child,
            addr: String::new(),
        };
        let t0 = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&file)
                && s.ends_with('\n')
            {
                d.addr = s.trim().trim_start_matches("http://").to_string();
                break;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("flowdrill serve exited early: {st}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "flowdrill serve did not start listening within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// GET `target` with the default Host header and `headers`.
    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Answer {
        let host = self.addr.clone();
        let mut all = vec![("Host", host.as_str())];
        all.extend_from_slice(headers);
        self.raw(&request("GET", target, &all))
    }

    /// Sends `req` as it is; the answer.
    pub fn raw(&self, req: &str) -> Answer {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        Answer::parse(&buf)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/1.0 request.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> String {
    let mut r = format!("{method} {target} HTTP/1.0\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r
}

/// A parsed HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `name: value` lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    fn parse(buf: &[u8]) -> Answer {
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(buf)));
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Answer {
            status,
            headers,
            body: buf[split + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The error message of an error answer.
    pub fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}", self.text()))
            .to_string()
    }
}

/// Percent-encodes a query component.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
