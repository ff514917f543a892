//! The daemon's HTTP API as clients see it: every endpoint, bad parameters, the access token,
//! the Host and Origin checks, and paths that try to leave the embedded files.
//! (These tests live with the binary because the daemon's analyses are the CLI's.)

mod common;

use common::daemon::{Daemon, enc, request};
use common::{UNSAMPLED, generated, tmp};
use std::path::PathBuf;

fn store(name: &str) -> PathBuf {
    generated(&tmp(name), UNSAMPLED, "20000", &["--seed", "3"])
}

const TOKEN: &str = "test-token-0123456789abcdef";

#[test]
fn every_endpoint_answers_json() {
    let s = store("api-endpoints");
    let d = Daemon::start(&s, &[]);

    let h = d.get("/api/v1/health", &[]);
    assert_eq!(h.status, 200);
    assert_eq!(h.json()["status"], "ok");
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert!(h.header("transfer-encoding").is_none());
    assert_eq!(
        h.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        h.body.len()
    );

    let l = d.get("/api/v1/links", &[]).json();
    let links = l["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{l}");
    assert_eq!(links[0]["name"], "default");
    assert!(links[0]["flows"].as_u64().unwrap() >= 20000, "{l}");
    let start = links[0]["start_ms"].as_u64().unwrap();
    let end = links[0]["end_ms"].as_u64().unwrap();
    assert!(end > start && end - start >= 3_600_000, "{l}");

    let i = d.get("/api/v1/info", &[]).json();
    assert_eq!(i["start_ms"].as_u64(), Some(start));
    let analyses = i["analyses"].as_object().unwrap();
    for a in ["top", "hhh", "hhh2", "series", "dist", "compare", "scans"] {
        assert!(analyses.contains_key(a), "{i}");
    }
    let top_params: Vec<&str> = analyses["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for p in [
        "link",
        "time",
        "filter",
        "acl",
        "metric",
        "max-records",
        "exact",
        "by",
        "top",
    ] {
        assert!(top_params.contains(&p), "{top_params:?}");
    }
    assert!(!top_params.contains(&"store"), "{top_params:?}");

    let f = d
        .get(
            &format!(
                "/api/v1/filter?filter={}",
                enc("proto tcp and dst port 443")
            ),
            &[],
        )
        .json();
    assert_eq!(f["ok"], true, "{f}");
    assert!(f["canonical"].as_str().unwrap().contains("443"), "{f}");
    let f = d
        .get(
            &format!("/api/v1/filter?filter={}", enc("proto tcp and port")),
            &[],
        )
        .json();
    assert_eq!(f["ok"], false, "{f}");
    assert_eq!(f["error"]["offset"], 18, "{f}");
    assert_eq!(f["error"]["column"], 19, "{f}");

    // Every analysis, with the report's shape.
    for (q, analysis, shape) in [
        ("top?by=dstport&top=5&time=-30m", "top", "list"),
        ("hhh?dim=src&threshold=2&levels=8,16,24,32", "hhh", "tree"),
        ("hhh?dim=app&threshold=10", "hhh", "tree"),
        (
            "hhh2?rows=src&cols=dst&threshold=10&levels=8,16,24,32",
            "hhh2",
            "grid",
        ),
        ("series?categories=internet2&bin=5m", "series", "series"),
        ("dist?ignore=2", "dist", "list"),
        ("compare?time=-30m&by=dstport&top=5", "compare", "list"),
        ("scans?top=3", "scans", "list"),
    ] {
        let a = d.get(&format!("/api/v1/{q}"), &[]);
        assert_eq!(a.status, 200, "{q}: {}", a.text());
        let r = a.json();
        assert_eq!(r["meta"]["analysis"], analysis, "{q}");
        assert_eq!(r["sections"][0]["shape"]["kind"], shape, "{q}: {r}");
        assert!(
            !r["sections"][0]["rows"].as_array().unwrap().is_empty(),
            "{q}: {r}"
        );
        assert_eq!(r["meta"]["exact"], true, "{q}");
    }
    let top = d.get("/api/v1/top?by=dstport&top=5&time=-30m", &[]).json();
    assert_eq!(top["sections"][0]["rows"].as_array().unwrap().len(), 5);
    assert_eq!(
        top["meta"]["cached"], true,
        "the second ask comes from the cache"
    );
    assert!(
        top["sections"][0]["drill"][0]
            .as_str()
            .unwrap()
            .starts_with("dst port")
    );

    // An inline ACL and inline category rules (never a file name).
    let acl = "permit * * tcp * *\n";
    let a = d.get(&format!("/api/v1/top?by=proto&acl={}", enc(acl)), &[]);
    assert_eq!(a.status, 200, "{}", a.text());
    let rows = a.json()["sections"][0]["rows"].as_array().unwrap().len();
    assert_eq!(rows, 1, "only TCP is permitted: {}", a.text());
    let rules = "web: dst port 80 or dst port 443\nrest: any\n";
    let a = d.get(&format!("/api/v1/series?rules={}&bin=10m", enc(rules)), &[]);
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.text().contains("\"web\""), "{}", a.text());

    // The embedded UI.
    let p = d.get("/", &[]);
    assert_eq!(p.status, 200);
    assert!(p.text().contains("<script src=\"app.js\">"), "{}", p.text());
    let js = d.get("/app.js", &[]);
    assert_eq!(js.status, 200);
    assert!(js.body.len() > 1000);
    assert_eq!(d.get("/app.css", &[]).status, 200);
}

#[test]
fn bad_parameters_are_refused_with_a_message() {
    let s = store("api-bad");
    let d = Daemon::start(&s, &["--max-rows", "100"]);
    for (q, status, says) in [
        ("top?bogus=1", 400, "unknown parameter 'bogus'"),
        ("top?store=/tmp", 400, "unknown parameter 'store'"),
        ("top?format=csv", 400, "unknown parameter 'format'"),
        (
            "hhh?prefix-map=/etc/passwd",
            400,
            "unknown parameter 'prefix-map'",
        ),
        (
            "series?categories=/etc/passwd",
            400,
            "categories '/etc/passwd'",
        ),
        (
            "series?categories=..%2F..%2Fetc%2Fpasswd",
            400,
            "categories",
        ),
        ("top?top=abc", 400, "invalid value 'abc'"),
        ("top?top=0", 400, "give 1 to 100"),
        ("top?top=101", 400, "give 1 to 100"),
        ("top?by=nosuchfield", 400, "nosuchfield"),
        ("top?time=yesterday-ish", 400, "time range"),
        ("top?link=nosuchlink", 400, "nosuchlink"),
        ("top?metric=furlongs", 400, "furlongs"),
        ("top?exact=maybe", 400, "true or false"),
        ("top?exact=true&max-error=0.1", 400, "cannot be used with"),
        ("top?max-records=1G", 400, "limit"),
        ("top?max-records=0", 400, "at least 1"),
        ("top?by=srcip&by=dstip", 400, "give 'by' once"),
        ("hhh?threshold=0", 400, "threshold"),
        ("hhh?threshold=NaN", 400, "threshold"),
        ("hhh?dim=sideways", 400, "sideways"),
        ("hhh?levels=8,99", 400, "99"),
        ("series?bin=10ms", 400, "at least 1s"),
        ("compare?by=dstport", 400, "bounded --time"),
        ("top?acl=permit%20nonsense", 400, "ACL"),
        ("nosuch", 404, "no endpoint /api/v1/nosuch"),
        ("filter", 400, "give the filter"),
        ("filter?filter=x&other=1", 400, "unknown parameter 'other'"),
        ("top?filter=proto%09tcp%01", 400, "control characters"),
    ] {
        let a = d.get(&format!("/api/v1/{q}"), &[]);
        assert_eq!(a.status, status, "{q}: {}", a.text());
        let m = a.message();
        assert!(m.contains(says), "{q}: '{m}' does not say '{says}'");
    }
    // A bad filter: 400, with where and what.
    let a = d.get(
        &format!("/api/v1/top?filter={}", enc("proto tcp and port")),
        &[],
    );
    assert_eq!(a.status, 400);
    let e = &a.json()["error"];
    assert_eq!(e["column"], 19, "{e}");
    assert!(
        e["expected"].as_array().is_some_and(|x| !x.is_empty()),
        "{e}"
    );
    // Too long, and not GET.
    let long = "a".repeat(10_000);
    assert_eq!(
        d.get(&format!("/api/v1/top?filter={long}"), &[]).status,
        413
    );
    let a = d.raw(&request("POST", "/api/v1/top", &[("Host", &d.addr)]));
    assert_eq!(a.status, 405);
    let a = d.raw("NONSENSE\r\n\r\n");
    assert_eq!(a.status, 400);
    // The daemon still answers after all that.
    assert_eq!(d.get("/api/v1/top?top=3", &[]).status, 200);
}

#[test]
fn the_token_is_required_when_set() {
    let s = store("api-token");
    let d = Daemon::start(&s, &["--token", TOKEN]);
    let bearer = format!("Bearer {TOKEN}");
    for path in [
        "/api/v1/top",
        "/api/v1/links",
        "/api/v1/info",
        "/api/v1/filter?filter=any",
    ] {
        let a = d.get(path, &[]);
        assert_eq!(a.status, 401, "{path}");
        assert!(a.message().contains("access token"), "{}", a.text());
        assert_eq!(a.header("www-authenticate"), Some("Bearer"));
        let a = d.get(
            path,
            &[("Authorization", "Bearer wrong-token-0123456789ab")],
        );
        assert_eq!(a.status, 401, "{path}");
        let a = d.get(path, &[("Authorization", &TOKEN[..10])]);
        assert_eq!(a.status, 401, "{path}");
        let a = d.get(path, &[("Authorization", &bearer)]);
        assert_eq!(a.status, 200, "{path}: {}", a.text());
    }
    // Health and the UI's files need no token (they hold no data).
    assert_eq!(d.get("/api/v1/health", &[]).status, 200);
    assert_eq!(d.get("/", &[]).status, 200);
}

#[test]
fn a_weak_token_or_a_bad_address_is_a_usage_error() {
    let s = store("api-weak");
    for args in [
        vec!["--token", "short"],
        vec!["--token", "has spaces in it 0123456789"],
        vec!["--listen", "nowhere"],
    ] {
        let mut all = vec!["--quiet", "--store", s.to_str().unwrap(), "serve"];
        all.extend(args.iter().copied());
        let o = common::flowdrill(&all);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn foreign_hosts_and_origins_are_refused() {
    let s = store("api-host");
    let d = Daemon::start(&s, &["--allow-host", "flows.example.net"]);
    let port = d.addr.rsplit(':').next().unwrap().to_string();
    let ok_hosts = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("flows.example.net:{port}"),
        "localhost".to_string(),
    ];
    for h in &ok_hosts {
        let a = d.raw(&request("GET", "/api/v1/health", &[("Host", h)]));
        assert_eq!(a.status, 200, "{h}");
    }
    for h in [
        format!("evil.example:{port}"),
        "127.0.0.1:1".to_string(),
        format!("127.0.0.1.evil.example:{port}"),
    ] {
        let a = d.raw(&request("GET", "/api/v1/links", &[("Host", &h)]));
        assert_eq!(a.status, 421, "{h}: {}", a.text());
        let a = d.raw(&request("GET", "/", &[("Host", &h)]));
        assert_eq!(a.status, 421, "{h}");
    }
    let a = d.get("/api/v1/links", &[("Origin", "http://evil.example")]);
    assert_eq!(a.status, 403, "{}", a.text());
    let own = format!("http://{}", d.addr);
    assert_eq!(d.get("/api/v1/links", &[("Origin", &own)]).status, 200);
}

#[test]
fn no_path_reaches_the_file_system() {
    let s = store("api-paths");
    let d = Daemon::start(&s, &[]);
    for p in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fetc%2fpasswd",
        "/api/v1/../../../../etc/passwd",
        "/api/v1/..%2f..%2fCargo.toml",
        "/app.js/../../Cargo.toml",
        "/index.html%00.js",
        "/store/store.toml",
        "/links.toml",
        "//etc/passwd",
        "/api/v1/%2e%2e",
        "/web/src/main.ts",
    ] {
        let a = d.get(p, &[]);
        assert!(a.status == 404 || a.status == 400, "{p}: {}", a.status);
        let t = a.text();
        assert!(!t.contains("root:"), "{p}: {t}");
        assert!(!t.contains("[defaults]"), "{p}: {t}");
        assert!(!t.contains("[package]"), "{p}: {t}");
    }
    // A request line that is not a path.
    let a = d.raw(&request("GET", "http://evil/etc/passwd", &[]));
    assert_eq!(a.status, 400);
    let a = d.raw(&request("GET", "*", &[]));
    assert_eq!(a.status, 400);
}

#[test]
fn the_daemons_own_prefix_map_labels_hhh() {
    let dir = tmp("api-prefix-map");
    let s = generated(&dir, UNSAMPLED, "20000", &["--seed", "3"]);
    let map = dir.join("map.csv");
    std::fs::write(&map, "prefix,asn,organisation\n10.20.0.0/16,64500,Campus\n").unwrap();
    let d = Daemon::start(&s, &["--prefix-map", map.to_str().unwrap()]);
    let a = d.get("/api/v1/hhh?dim=src-map&threshold=5", &[]);
    assert_eq!(a.status, 200, "{}", a.text());
    let r = a.json();
    assert_eq!(r["sections"][0]["rows"][0][0]["Str"], "10.20.0.0/16", "{r}");
    let a = d.get("/api/v1/hhh?dim=src&threshold=5&levels=8,16,24,32", &[]);
    assert!(a.text().contains("Campus"), "{}", a.text());
    // A bad map is a start-up error.
    std::fs::write(&map, "not a prefix,1,x\n").unwrap();
    let o = common::flowdrill(&[
        "--store",
        s.to_str().unwrap(),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--prefix-map",
        map.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}
