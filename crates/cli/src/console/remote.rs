//! `flowdrill console --remote URL`: analyses run by a daemon (`flowdrill serve`), as Netpy's
//! remote GUI ran them.
//!
//! The daemon's API takes the CLI's long flag names as query parameters and answers with the
//! JSON of a [`Report`], so a command line maps to one GET. Files named by flags (`--acl`,
//! series rules) are read here and sent inline: the daemon never reads a path from a request.
//! Plain HTTP/1.0 over a TCP stream is all this needs (the daemon listens on loopback, or
//! behind a TLS proxy that the user puts in front of it).

use crate::CliError;
use crate::args::{Command, SelectArgs};
use anyhow::{Context, anyhow};
use flowdrill_query::report::Report;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Remote {
    /// `host:port`
    addr: String,
    /// Path prefix before `/api/v1`, without a trailing slash.
    base: String,
    token: Option<String>,
}

impl Remote {
    pub fn new(url: &str, token: Option<String>) -> Result<Remote, CliError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            CliError::usage(anyhow!(
                "--remote {url}: give the daemon's http:// address, e.g. http://127.0.0.1:8080 (for https, use a local tunnel)"
            ))
        })?;
        let (addr, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if addr.is_empty() {
            return Err(CliError::usage(anyhow!("--remote {url}: no host")));
        }
        let addr = if addr.contains(':') && !addr.ends_with(']') {
            addr.to_string()
        } else {
            format!("{addr}:80")
        };
        Ok(Remote {
            addr,
            base: base.to_string(),
            token,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.base)
    }

    /// GET `path?query`; the body of a 200 answer, else the daemon's error message.
    fn get(&self, path: &str, query: &[(String, String)]) -> Result<Vec<u8>, CliError> {
        let mut target = format!("{}{path}", self.base);
        for (i, (k, v)) in query.iter().enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            target.push_str(&encode(k));
            target.push('=');
            target.push_str(&encode(v));
        }
        let mut s = TcpStream::connect(&self.addr)
            .with_context(|| format!("connecting to the daemon at {}", self.url()))?;
        s.set_read_timeout(Some(Duration::from_secs(120)))?;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET {target} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\n{auth}\r\n",
            self.addr
        )?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)
            .context("reading the daemon's answer")?;
        let split = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| anyhow!("the daemon's answer has no HTTP header"))?;
        let head = String::from_utf8_lossy(&resp[..split]).to_string();
        let body = resp[split + 4..].to_vec();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| anyhow!("the daemon's answer has no status: {head}"))?;
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            return Err(anyhow!("the daemon answered in chunks to an HTTP/1.0 request").into());
        }
        if status == 200 {
            return Ok(body);
        }
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                Some(
                    e.get("message")
                        .and_then(|m| m.as_str())
                        .map(String::from)
                        .unwrap_or_else(|| e.to_string()),
                )
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        let err = anyhow!("the daemon answered {status}: {msg}");
        Err(if (400..500).contains(&status) {
            CliError::usage(err)
        } else {
            CliError::from(err)
        })
    }

    pub fn links(&self) -> Result<Vec<String>, CliError> {
        let body = self.get("/api/v1/links", &[])?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).context("the daemon's links are not JSON")?;
        // Either a list of names, or objects with a `name`, possibly under `links`.
        let list = v.get("links").unwrap_or(&v);
        Ok(list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        x.as_str()
                            .or_else(|| x.get("name").and_then(|n| n.as_str()))
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    pub fn report(&self, cmd: &Command) -> Result<Report, CliError> {
        let (name, q) = params(cmd)?;
        let body = self.get(&format!("/api/v1/{name}"), &q)?;
        serde_json::from_slice(&body)
            .context("the daemon's answer is not a report")
            .map_err(CliError::from)
    }
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                o.push(b as char)
            }
            _ => o.push_str(&format!("%{b:02X}")),
        }
    }
    o
}

fn read(path: &std::path::Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} {}", path.display()))
        .map_err(CliError::from)
}

fn selection(s: &SelectArgs, q: &mut Vec<(String, String)>) -> Result<(), CliError> {
    let mut kv = |k: &str, v: String| q.push((k.to_string(), v));
    if !s.link.is_empty() {
        kv("link", s.link.join(","));
    }
    kv("time", s.time.clone());
    if let Some(f) = &s.filter {
        kv("filter", f.clone());
    }
    if let Some(p) = &s.acl {
        kv("acl", read(p, "ACL")?);
    }
    kv("metric", super::state::metric_name(s.metric).into());
    if let Some(n) = &s.max_records {
        kv("max-records", n.clone());
    }
    if s.exact {
        kv("exact", "true".into());
    }
    if let Some(e) = s.max_error {
        kv("max-error", e.to_string());
    }
    if s.no_cache {
        kv("no-cache", "true".into());
    }
    Ok(())
}

fn hierarchy(
    h: &crate::args::HierarchyArgs,
    q: &mut Vec<(String, String)>,
) -> Result<(), CliError> {
    q.push(("threshold".into(), h.threshold.to_string()));
    let join = |v: &[u8]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    if !h.levels.is_empty() {
        q.push(("levels".into(), join(&h.levels)));
    }
    if !h.levels6.is_empty() {
        q.push(("levels6".into(), join(&h.levels6)));
    }
    if h.prefix_map.is_some() {
        return Err(CliError::usage(anyhow!(
            "--prefix-map names a file here; a daemon uses the prefix map it was started with (flowdrill serve --prefix-map)"
        )));
    }
    Ok(())
}

/// Query parameters, in order.
type Query = Vec<(String, String)>;

/// The API path and query of an analysis command.
pub fn params(cmd: &Command) -> Result<(&'static str, Query), CliError> {
    let mut q = Vec::new();
    let kv = |q: &mut Vec<(String, String)>, k: &str, v: String| q.push((k.to_string(), v));
    let name = match cmd {
        Command::Top(a) => {
            selection(&a.sel, &mut q)?;
            kv(&mut q, "by", a.by.clone());
            kv(&mut q, "top", a.n.to_string());
            "top"
        }
        Command::Hhh(a) => {
            selection(&a.sel, &mut q)?;
            kv(&mut q, "dim", a.dim.clone());
            hierarchy(&a.h, &mut q)?;
            "hhh"
        }
        Command::Hhh2(a) => {
            selection(&a.sel, &mut q)?;
            kv(&mut q, "rows", a.rows.clone());
            kv(&mut q, "cols", a.cols.clone());
            hierarchy(&a.h, &mut q)?;
            "hhh2"
        }
        Command::Series(a) => {
            selection(&a.sel, &mut q)?;
            match a.categories.as_str() {
                "internet2" | "apps" | "brownlee" | "classes" | "proto" | "protocols" => {
                    kv(&mut q, "categories", a.categories.clone())
                }
                path => kv(&mut q, "rules", read(path.as_ref(), "category rules")?),
            }
            if let Some(b) = &a.bin {
                kv(&mut q, "bin", b.clone());
            }
            kv(&mut q, "value", a.value.clone());
            if !a.local.is_empty() {
                kv(&mut q, "local", a.local.join(","));
            }
            "series"
        }
        Command::Dist(a) => {
            selection(&a.sel, &mut q)?;
            kv(&mut q, "ignore", a.ignore.to_string());
            "dist"
        }
        Command::Compare(a) => {
            selection(&a.sel, &mut q)?;
            if let Some(t) = &a.before_time {
                kv(&mut q, "before-time", t.clone());
            }
            if !a.before_link.is_empty() {
                kv(&mut q, "before-link", a.before_link.join(","));
            }
            kv(&mut q, "by", a.by.clone());
            kv(&mut q, "top", a.n.to_string());
            "compare"
        }
        Command::Scans(a) => {
            selection(&a.sel, &mut q)?;
            kv(&mut q, "top", a.n.to_string());
            "scans"
        }
        _ => {
            return Err(CliError::usage(anyhow!(
                "a remote console runs analyses only"
            )));
        }
    };
    Ok((name, q))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_queries_are_formed_for_the_daemon() {
        let r = Remote::new("http://127.0.0.1:9000/flows/", None).unwrap();
        assert_eq!(r.url(), "http://127.0.0.1:9000/flows");
        assert!(Remote::new("https://x", None).is_err());
        assert_eq!(
            encode("proto tcp and port 80/x"),
            "proto%20tcp%20and%20port%2080%2Fx"
        );
    }
}
