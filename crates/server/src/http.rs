//! The little HTTP the daemon speaks: one GET request per connection (HTTP/1.0 or 1.1),
//! answered with `Content-Length` and `Connection: close` — never chunked, so HTTP/1.0
//! clients such as the console's remote mode read it as it is.
//!
//! Limits: the request head is at most [`MAX_HEAD`] bytes and must arrive within the read
//! timeout the caller set on the stream; a body is never read.

use std::io::{BufRead, BufReader, Read, Write};

/// Longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// The query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request head could not be read; answered with 400 (or not at all for I/O).
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("reading the request: {0}")]
    Io(#[from] std::io::Error),
    #[error("the request head is longer than {MAX_HEAD} bytes")]
    TooLong,
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Reads and parses a request head from `s`.
pub fn read_request(s: impl Read) -> Result<Request, HeadError> {
    let mut r = BufReader::new(s.take(MAX_HEAD as u64 + 1));
    let mut lines = Vec::new();
    let mut total = 0usize;
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        total += n;
        if total > MAX_HEAD {
            return Err(HeadError::TooLong);
        }
        if n == 0 {
            return Err(HeadError::Malformed(
                "the connection closed mid-head".into(),
            ));
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerated: blank lines before the request line
            }
            break;
        }
        let line = String::from_utf8(line)
            .map_err(|_| HeadError::Malformed("the head is not UTF-8".into()))?;
        lines.push(line);
    }
    let mut first = lines[0].split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Err(HeadError::Malformed(format!(
            "bad request line '{}'",
            lines[0]
        )));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HeadError::Malformed(format!(
            "unsupported version {version}"
        )));
    }
    let (raw_path, raw_query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    if !raw_path.starts_with('/') {
        return Err(HeadError::Malformed(format!(
            "the target '{target}' is not a path"
        )));
    }
    let path = decode(raw_path, false)
        .ok_or_else(|| HeadError::Malformed("bad percent-encoding in the path".into()))?;
    let mut query = Vec::new();
    for part in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let k = decode(k, true)
            .ok_or_else(|| HeadError::Malformed("bad percent-encoding in the query".into()))?;
        let v = decode(v, true)
            .ok_or_else(|| HeadError::Malformed("bad percent-encoding in the query".into()))?;
        query.push((k, v));
    }
    let mut headers = Vec::new();
    for l in &lines[1..] {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| HeadError::Malformed(format!("bad header line '{l}'")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path,
        query,
        headers,
    })
}

/// Percent-decodes; `+` is a space in a query. `None` for a bad escape or non-UTF-8 result.
pub fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// An answer: status, content type, body, extra headers.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Response {
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()),
            headers: Vec::new(),
        }
    }

    /// `{"error": {"message": ..., ...detail}}`
    pub fn error(status: u16, message: &str, detail: Option<serde_json::Value>) -> Response {
        let mut e = serde_json::Map::new();
        e.insert("message".into(), message.into());
        e.insert("status".into(), status.into());
        if let Some(serde_json::Value::Object(d)) = detail {
            for (k, v) in d {
                e.entry(k).or_insert(v);
            }
        }
        Response::json(status, &serde_json::json!({ "error": e }))
    }

    /// Writes the answer; `head_only` leaves the body out (HEAD).
    pub fn write(&self, mut w: impl Write, head_only: bool) -> std::io::Result<()> {
        let mut h = format!(
            "HTTP/1.0 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\
             X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (k, v) in &self.headers {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        w.write_all(h.as_bytes())?;
        if !head_only {
            w.write_all(&self.body)?;
        }
        w.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Request Entity Too Large",
        421 => "Misdirected Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_is_parsed_and_decoded() {
        let r = read_request(
            &b"GET /api/v1/top?filter=proto+tcp%20and%20port%2080&time=-1h HTTP/1.0\r\nHost: 127.0.0.1:1\r\n\r\n"[..],
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/api/v1/top");
        assert_eq!(
            r.query,
            vec![
                ("filter".to_string(), "proto tcp and port 80".to_string()),
                ("time".to_string(), "-1h".to_string())
            ]
        );
        assert_eq!(r.header("host"), Some("127.0.0.1:1"));
    }

    #[test]
    fn bad_heads_are_refused() {
        assert!(read_request(&b"GET /x%zz HTTP/1.0\r\n\r\n"[..]).is_err());
        assert!(read_request(&b"GET x HTTP/1.0\r\n\r\n"[..]).is_err());
        assert!(read_request(&b"GET / SPDY/3\r\n\r\n"[..]).is_err());
        assert!(read_request(&b"GET / HTTP/1.0\r\nnocolon\r\n\r\n"[..]).is_err());
        let long = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(
            read_request(long.as_bytes()),
            Err(HeadError::TooLong)
        ));
        assert!(read_request(&b"GET / HTTP/1.0\r\n"[..]).is_err());
    }
}
