//! Routes: `/api/v1/...` answers JSON, everything else is the embedded web UI.
//!
//! | path | answer |
//! |---|---|
//! | `/api/v1/health` | `{"status": "ok", "version": ...}` (no token needed) |
//! | `/api/v1/info` | the store's links with their time spans, the analyses and their parameters, the limits |
//! | `/api/v1/links` | `{"links": [{"name", "bins", "start_ms", "end_ms", ...}]}` |
//! | `/api/v1/filter?filter=TEXT` | `{"ok": true, "canonical": ...}` or `{"ok": false, "error": {message, offset, line, column, expected, found}}` |
//! | `/api/v1/{analysis}?...` | the [`Report`](flowdrill_query::report::Report) as JSON |
//!
//! Errors are `{"error": {"message": ..., "status": ...}}` with 400 for a bad parameter,
//! 401 without the right token, 403 for a foreign origin, 404 for an unknown path, 421 for a
//! `Host` that does not name the daemon, 503 when busy or too slow.

use crate::http::{Request, Response};
use crate::{ApiError, State, assets};
use serde_json::json;

/// Most bytes of query parameters (an inline ACL or rules list included).
const MAX_PARAM_BYTES: usize = 8192;

pub(crate) fn handle(state: &State, req: &Request) -> Response {
    if let Err(r) = check_host(state, req) {
        return r;
    }
    if req.method != "GET" && req.method != "HEAD" {
        let mut r = Response::error(405, "only GET and HEAD are served", None);
        r.headers.push(("Allow", "GET, HEAD".into()));
        return r;
    }
    if req.path == "/api" || req.path.starts_with("/api/") {
        let mut r = api(state, req);
        r.headers.push(("Cache-Control", "no-store".into()));
        return r;
    }
    match assets::get(&req.path) {
        Some((content_type, body)) => Response {
            status: 200,
            content_type,
            body: body.to_vec(),
            headers: vec![(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
                    .into(),
            )],
        },
        None => Response::error(404, &format!("no page at {}", req.path), None),
    }
}

/// The `Host` must name this daemon (against DNS rebinding), and a browser's `Origin`, when
/// sent, must be the daemon's own address (against other sites' pages using it).
fn check_host(state: &State, req: &Request) -> Result<(), Response> {
    let Some(host) = req.header("host") else {
        // HTTP/1.0 clients may leave it out; browsers never do.
        return Ok(());
    };
    if !host_allowed(&state.config, state.port, host) {
        return Err(Response::error(
            421,
            &format!(
                "the Host header '{host}' does not name this daemon; use http://127.0.0.1:{} (or start it with --allow-host NAME)",
                state.port
            ),
            None,
        ));
    }
    if let Some(origin) = req.header("origin") {
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|o| o.eq_ignore_ascii_case(host));
        if !own {
            return Err(Response::error(
                403,
                &format!("requests from the origin '{origin}' are not served"),
                None,
            ));
        }
    }
    Ok(())
}

/// Whether a `Host` header names the daemon listening on `port`.
fn host_allowed(config: &crate::Config, port: u16, host: &str) -> bool {
    let (name, given_port) = match host.rsplit_once(':') {
        Some((n, p)) if !p.contains(']') => (n, Some(p)),
        _ => (host, None),
    };
    if let Some(p) = given_port
        && p.parse::<u16>().ok() != Some(port)
    {
        return false;
    }
    let name = name.to_ascii_lowercase();
    let listen_ip = config.listen.ip().to_string();
    name == "localhost"
        || name == "127.0.0.1"
        || name == "[::1]"
        || name == listen_ip
        || name == format!("[{listen_ip}]")
        || config
            .allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&name))
}

/// Compares without an early exit, so that timing does not tell how much of a guess matched.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn authorized(state: &State, req: &Request) -> bool {
    let Some(token) = &state.config.token else {
        return true;
    };
    req.header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim(), token))
}

fn err(e: ApiError) -> Response {
    Response::error(e.status, &e.message, e.detail)
}

fn api(state: &State, req: &Request) -> Response {
    let Some(rest) = req.path.strip_prefix("/api/v1/") else {
        return Response::error(
            404,
            &format!("no API at {}; the API is under /api/v1/", req.path),
            None,
        );
    };
    if rest == "health" {
        return Response::json(
            200,
            &json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
        );
    }
    if !authorized(state, req) {
        let mut r = Response::error(
            401,
            "this daemon needs its access token: send 'Authorization: Bearer TOKEN' (flowdrill console --token; for the web UI open http://HOST:PORT/#token=TOKEN)",
            None,
        );
        r.headers.push(("WWW-Authenticate", "Bearer".into()));
        return r;
    }
    let total: usize = req.query.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_PARAM_BYTES {
        return Response::error(413, "the parameters are too long", None);
    }
    match rest {
        "links" => links(state),
        "info" => info(state),
        "filter" => filter(state, req),
        name if state.analyses.names().contains(&name) => analysis(state, name, req),
        _ => Response::error(
            404,
            &format!(
                "no endpoint /api/v1/{rest}; the endpoints are health, info, links, filter, {}",
                state.analyses.names().join(", ")
            ),
            None,
        ),
    }
}

fn links_json(state: &State) -> Vec<serde_json::Value> {
    let store = state.engine.store();
    store
        .links()
        .into_iter()
        .map(|name| {
            let bins: Vec<_> = store.all_bins().iter().filter(|b| b.link == name).collect();
            let finest = bins.iter().map(|b| b.level).min();
            let fine = || bins.iter().filter(|b| Some(b.level) == finest);
            let mut levels: Vec<u8> = bins.iter().map(|b| b.level).collect();
            levels.sort_unstable();
            levels.dedup();
            json!({
                "name": name,
                "bins": bins.len(),
                "levels": levels,
                "start_ms": fine().map(|b| b.start).min(),
                "end_ms": fine().map(|b| b.end).max(),
                "flows": fine().map(|b| b.flows).sum::<u64>(),
                "packets": fine().map(|b| b.packets).sum::<u64>(),
                "bytes": fine().map(|b| b.bytes).sum::<u64>(),
                "records": fine().map(|b| b.records_after).sum::<u64>(),
            })
        })
        .collect()
}

fn links(state: &State) -> Response {
    Response::json(200, &json!({ "links": links_json(state) }))
}

fn info(state: &State) -> Response {
    let links = links_json(state);
    let span = |k: &str, min: bool| {
        let it = links.iter().filter_map(|l| l[k].as_u64());
        if min { it.min() } else { it.max() }
    };
    let analyses: serde_json::Map<String, serde_json::Value> = state
        .analyses
        .names()
        .into_iter()
        .map(|n| (n.to_string(), json!(state.analyses.params(n))))
        .collect();
    let l = &state.config.limits;
    Response::json(
        200,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "links": links,
            "start_ms": span("start_ms", true),
            "end_ms": span("end_ms", false),
            "anchor_ms": state.engine.anchor(&[]),
            "analyses": analyses,
            "limits": {
                "slots": l.slots,
                "timeout_ms": l.timeout.as_millis() as u64,
                "max_rows": l.max_rows,
                "max_records": l.max_records,
            },
            "skipped": state.engine.store().skipped().iter()
                .map(|s| s.reason.to_string()).collect::<Vec<_>>(),
        }),
    )
}

fn filter(state: &State, req: &Request) -> Response {
    let mut text = None;
    for (k, v) in &req.query {
        match k.as_str() {
            "filter" if text.is_none() => text = Some(v.as_str()),
            "filter" => return Response::error(400, "give 'filter' once", None),
            _ => {
                return Response::error(
                    400,
                    &format!("unknown parameter '{k}'; /api/v1/filter takes 'filter'"),
                    None,
                );
            }
        }
    }
    let Some(text) = text else {
        return Response::error(400, "give the filter to check as 'filter'", None);
    };
    match flowdrill_query::parse_filter(text, state.custom_fields()) {
        Ok(e) => Response::json(200, &json!({"ok": true, "canonical": e.to_string()})),
        Err(e) => Response::json(200, &json!({"ok": false, "error": e.to_json()})),
    }
}

fn analysis(state: &State, name: &str, req: &Request) -> Response {
    let known = state.analyses.params(name);
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in &req.query {
        if !known.iter().any(|p| p == k) {
            return Response::error(
                400,
                &format!(
                    "unknown parameter '{k}' for {name}; it takes {}",
                    known.join(", ")
                ),
                None,
            );
        }
        if seen.contains(&k.as_str()) {
            return Response::error(400, &format!("give '{k}' once"), None);
        }
        if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Response::error(400, &format!("'{k}' holds control characters"), None);
        }
        seen.push(k);
    }
    // A bad filter is answered with its position, for the UI to point at.
    if let Some((_, f)) = req.query.iter().find(|(k, _)| k == "filter")
        && let Err(e) = flowdrill_query::parse_filter(f, state.custom_fields())
    {
        return Response::error(
            400,
            &format!("bad filter: {}", e.message()),
            Some(e.to_json()),
        );
    }
    match state.run_bounded(name, req.query.clone()) {
        Ok(mut report) => {
            let max = state.config.limits.max_rows;
            for s in &mut report.sections {
                if s.rows.len() > max {
                    s.rows.truncate(max);
                    s.drill.truncate(max);
                    s.title.push_str(&format!(" (first {max} rows)"));
                }
            }
            match serde_json::to_value(&report) {
                Ok(v) => Response::json(200, &v),
                Err(e) => Response::error(500, &format!("internal error: {e}"), None),
            }
        }
        Err(e) => err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Limits};

    fn config(listen: &str, allowed: &[&str]) -> Config {
        Config {
            listen: listen.parse().unwrap(),
            token: None,
            allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
            limits: Limits::default(),
        }
    }

    #[test]
    fn only_hosts_that_name_the_daemon_are_allowed() {
        let c = config("127.0.0.1:8080", &["flows.example.net"]);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "localhost",
            "[::1]",
            "flows.example.net:8080",
        ] {
            assert!(host_allowed(&c, 8080, ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1.evil.example:8080",
            "localhost:notaport",
            "",
            "flows.example.net.evil:8080",
        ] {
            assert!(!host_allowed(&c, 8080, bad), "{bad}");
        }
        let v6 = config("[::1]:9000", &[]);
        assert!(host_allowed(&v6, 9000, "[::1]:9000"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abcdefghijklmnop", "abcdefghijklmnop"));
        assert!(!same("abcdefghijklmnop", "abcdefghijklmnoq"));
        assert!(!same("abcdefghijklmnop", "abcdefghijklmno"));
        assert!(!same("", "a"));
    }
}
