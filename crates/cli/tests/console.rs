//! The console as people use it: scripts checked against golden files, errors and exit codes,
//! managing the store from the console, and a real terminal (tmux) typing a session with
//! completion, drill-down, back, and history across runs.
//!
//! Golden files live in `tests/golden/`; `BLESS=1 cargo test -p flowdrill --test console`
//! rewrites them from the current output (review the diff before committing).

mod common;

use common::{UNSAMPLED, flowdrill, generated, tmp};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_flowdrill")
}

/// Runs `flowdrill console --store STORE EXTRA...` with `script` on standard input.
fn console(store: &Path, extra: &[&str], script: &str) -> (i32, String, String) {
    let mut args = vec!["--store", store.to_str().unwrap()];
    args.extend_from_slice(extra);
    console_args(&args, script)
}

/// Runs `flowdrill console ARGS...` with `script` on standard input.
fn console_args(args: &[&str], script: &str) -> (i32, String, String) {
    console_with(args, script, |_| {})
}

/// [`console_args`], with the command's environment adjusted by `setup` first.
fn console_with(
    args: &[&str],
    script: &str,
    setup: impl FnOnce(&mut Command),
) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.arg("console").args(args).env_remove("FLOWDRILL_STORE");
    setup(&mut cmd);
    let mut c = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

fn golden(name: &str, actual: &str) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p).unwrap_or_else(|_| {
        panic!(
            "golden file {} missing: run with BLESS=1 to create it",
            p.display()
        )
    });
    if want != actual {
        let first = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(actual.lines().count()));
        panic!(
            "output differs from {} at line {}:\n--- want\n{}\n--- got\n{}\n(BLESS=1 rewrites it)",
            p.display(),
            first + 1,
            want.lines()
                .skip(first)
                .take(5)
                .collect::<Vec<_>>()
                .join("\n"),
            actual
                .lines()
                .skip(first)
                .take(5)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

fn store(name: &str) -> PathBuf {
    let d = tmp(name);
    generated(&d, UNSAMPLED, "20000", &["--seed", "7"])
}

const SESSION: &str = "\
# A session: narrow to the last half hour, find the heavy sources, drill in, go back.
time -30m
hhh -d src -T 2 --levels 8,16,24,32
drill 1
show
back
top --by dstport -n 5
drill 443
hhh -d app -T 20
back 2
history
metric packets
hhh2 --rows src --cols app-dst -T 20 --levels 8,16,24,32
format csv
top --by proto -n 3
";

#[test]
fn a_scripted_session_prints_the_golden_transcript() {
    let s = store("console-golden");
    let (code, out, err) = console(&s, &["--echo"], SESSION);
    assert_eq!(code, 0, "{err}");
    golden("console-session.txt", &out);
    // Drilling says what it narrowed to, on standard error.
    assert!(err.contains("drill into 443: filter dst port 443"), "{err}");
    // The drill narrowed the analysis: the second table shows only port 443.
    let after = out.split("flowdrill> drill 443").nth(1).unwrap();
    let table = after.split("flowdrill> ").next().unwrap();
    assert!(table.contains("filter 'dst_port = 443'"), "{table}");
    assert!(table.contains("(1 distinct)"), "{table}");
}

#[test]
fn script_errors_stop_with_the_line_unless_told_to_go_on() {
    let s = store("console-errors");
    let script = "top -n 2\nfilter proto tcp and port\ntop -n 1\n";
    let (code, out, err) = console(&s, &[], script);
    assert_eq!(code, 2, "a syntax error is a usage error: {err}");
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("bad filter"), "{err}");
    assert_eq!(out.matches("== Top").count(), 1, "stopped at line 2: {out}");

    let (code, out, err) = console(&s, &["--keep-going"], script);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        out.matches("== Top").count(),
        2,
        "went on after line 2: {out}"
    );

    let (code, _, err) = console(&s, &[], "drill 1\n");
    assert_eq!(code, 2);
    assert!(err.contains("nothing to drill into"), "{err}");
    let (code, _, err) = console(&s, &[], "top -n 3\ndrill 9\n");
    assert_eq!(code, 2);
    assert!(err.contains("no row 9"), "{err}");
    let (code, _, err) = console(&s, &[], "back\n");
    assert_eq!(code, 2);
    assert!(err.contains("already at the first selection"), "{err}");
    let (code, _, err) = console(&s, &[], "top --by nosuchfield\n");
    assert_eq!(code, 2);
    assert!(err.contains("unknown key"), "{err}");
    let (code, _, _) = console(&s, &[], "top -n 1\nquit\ntop --by bogus\n");
    assert_eq!(code, 0, "quit ends the script");
}

/// `set engine` and `set spark-master` choose where the next analyses run, over
/// `$FLOWDRILL_ENGINE`. No Python here (`$FLOWDRILL_PYTHON` names none): an analysis sent to Spark
/// fails saying which master it tried, one that stays embedded answers.
#[test]
fn set_engine_chooses_where_the_analyses_run() {
    let s = store("console-engine");
    let script = "\
set engine spark local[1]
show
top --by proto -n 1
set engine embedded
show
top --by proto -n 1
set spark-master local[3]
set engine spark
top --by proto -n 1
unset engine
top --by proto -n 1
set engine cluster
";
    let (code, out, err) = console_with(
        &["--keep-going", "--store", s.to_str().unwrap()],
        script,
        |c| {
            c.env_remove("FLOWDRILL_SPARK_MASTER")
                .env("FLOWDRILL_ENGINE", "spark")
                .env("FLOWDRILL_PYTHON", s.with_extension("no-python"));
        },
    );
    assert_eq!(code, 2, "the last line is a usage error: {err}");
    assert!(out.contains("engine     spark (local[1])"), "{out}");
    assert!(out.contains("engine     embedded"), "{out}");
    assert!(err.contains("cannot start Spark (local[1])"), "{err}");
    assert!(err.contains("cannot start Spark (local[3])"), "{err}");
    assert_eq!(
        err.matches("cannot start Spark").count(),
        2,
        "two analyses went to Spark: {err}"
    );
    assert_eq!(
        out.matches("== Top").count(),
        2,
        "the two embedded analyses answered (set over $FLOWDRILL_ENGINE=spark): {out}"
    );
    assert!(
        err.contains("engine 'cluster': use embedded or spark"),
        "{err}"
    );
}

#[test]
fn import_and_expire_work_from_the_console() {
    let d = tmp("console-import");
    let capture = d.join("in.pcap");
    let o = flowdrill(&[
        "--quiet",
        "generate",
        "--kind",
        "ipfix",
        "--flows",
        "3000",
        "--duration",
        "20m",
        "--no-events",
        "-o",
        capture.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let store = d.join("store");
    let links = d.join("links.toml");
    std::fs::write(&links, UNSAMPLED).unwrap();
    let script = format!(
        "format json\nimport --links {} {}\ntop --by proto -n 5 --exact\nexpire --older-than 1s\ntop --by proto\n",
        links.display(),
        capture.display()
    );
    let (code, out, err) = console(&store, &["--quiet"], &script);
    assert_eq!(code, 0, "{err}");
    // Two JSON reports: the first sees the imported records, the second none (expired).
    let reports: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<serde_json::Value>()
        .map(|v| v.unwrap())
        .filter(|v| v.get("meta").is_some())
        .collect();
    assert_eq!(reports.len(), 2, "{out}");
    let records = |r: &serde_json::Value| r["meta"]["records"].as_u64().unwrap();
    assert!(records(&reports[0]) > 3000, "{}", reports[0]["meta"]);
    assert_eq!(records(&reports[1]), 0, "{}", reports[1]["meta"]);
}

// ---------------------------------------------------------------------------------------------
// A real terminal

struct Tmux {
    session: String,
    socket: PathBuf,
}

impl Tmux {
    fn start(name: &str, dir: &Path, cmd: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tmux is missing on CI (scripts/setup-deps installs it)"
            );
            eprintln!("SKIPPED: tmux is not installed");
            return None;
        }
        let t = Tmux {
            session: format!("fd{}{name}", std::process::id()),
            socket: dir.join("tmux.sock"),
        };
        let st = t
            .tmux()
            .args([
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "60",
                "-s",
                &t.session,
            ])
            .arg(cmd)
            .status()
            .unwrap();
        assert!(st.success(), "tmux new-session failed");
        Some(t)
    }
    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.socket);
        c
    }
    fn keys(&self, keys: &[&str]) {
        let st = self
            .tmux()
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .unwrap();
        assert!(st.success());
    }
    fn screen(&self) -> String {
        let o = self
            .tmux()
            .args([
                "capture-pane",
                "-p",
                "-J",
                "-S",
                "-2000",
                "-t",
                &self.session,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).to_string()
    }
    /// Waits until the screen satisfies `f` (at most 20 s); the screen.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let t0 = Instant::now();
        loop {
            let s = self.screen();
            if f(&s) {
                return s;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                panic!("waited 20 s for {what}; the screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    /// Waits for `what` on the screen, then for the prompt under it (the command finished).
    fn done(&self, what: &str) -> String {
        self.ready(what, |s| s.contains(what))
    }
    /// Waits until the screen satisfies `f` and the console shows its prompt
    /// again. Tests type only then: keys that arrive while the line editor
    /// starts up can be taken for its reply to the cursor-position query
    /// (rustyline reads that reply from the same input) and lost; a person
    /// sees the prompt before typing.
    fn ready(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        self.wait(what, |s| {
            f(s) && s.lines().rev().find(|l| !l.trim().is_empty()) == Some("flowdrill> ")
        })
    }
    fn alive(&self) -> bool {
        self.tmux()
            .args(["has-session", "-t", &self.session])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux().arg("kill-server").status();
    }
}

#[test]
fn a_person_at_a_terminal_completes_drills_goes_back_and_finds_the_history_next_time() {
    let s = store("console-tty");
    let dir = tmp("console-tty-run");
    let hist = dir.join("history");
    let cmd = format!(
        "{} console --store {} --history {}",
        bin(),
        s.display(),
        hist.display()
    );
    let Some(t) = Tmux::start("a", &dir, &cmd) else {
        return;
    };
    t.wait("the greeting", |s| s.contains("flowdrill> "));
    // Tab completes the command and the field.
    t.keys(&["hh", "Tab"]);
    t.wait("completion of hh", |s| s.contains("flowdrill> hhh"));
    t.keys(&["Tab"]);
    t.wait("the candidates hhh and hhh2", |s| s.contains("hhh2"));
    t.keys(&["C-u"]);
    t.keys(&["top --by dstp", "Tab"]);
    t.wait("completion of dstp", |s| s.contains("top --by dstport"));
    t.keys(&[" -n 4", "Enter"]);
    let s1 = t.ready("the top table", |s| {
        s.contains("== Top 4 dst_port by bytes")
    });
    assert!(s1.contains("rank"), "{s1}");
    // Drill into the first row by number; the filter shows it.
    t.keys(&["drill 1", "Enter"]);
    let s2 = t.ready("the drilled table", |s| {
        s.matches("== Top 4 dst_port").count() >= 2
    });
    assert!(s2.contains("drill into"), "{s2}");
    t.keys(&["show", "Enter"]);
    t.ready("the narrowed filter", |s| {
        s.lines()
            .any(|l| l.starts_with("filter") && l.contains("dst port"))
    });
    t.keys(&["back", "Enter"]);
    t.ready("the table after back", |s| {
        s.matches("== Top 4 dst_port").count() >= 3
    });
    t.keys(&["show", "Enter"]);
    t.wait("the filter gone after back", |s| {
        s.lines().rev().find(|l| l.starts_with("filter")) == Some("filter     (none)")
    });
    // Keys of the last result complete after `drill`.
    t.keys(&["C-l"]);
    t.keys(&["hhh -d app -T 30", "Enter"]);
    t.ready("the app tree", |s| {
        s.contains("Hierarchical heavy hitters of app")
    });
    t.keys(&["drill T", "Tab"]);
    t.wait("a key completed", |s| {
        // A key with spaces is completed quoted, ready to run.
        s.lines()
            .any(|l| l.starts_with("flowdrill> drill 'TCP ") && l.ends_with('\''))
    });
    t.keys(&["Enter"]);
    t.done("drill into TCP ");
    t.keys(&["C-d"]);
    let t0 = Instant::now();
    while t.alive() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let h = std::fs::read_to_string(&hist).expect("the history was saved");
    assert!(h.contains("top --by dstport -n 4"), "{h}");
    assert!(h.contains("drill 1"), "{h}");
    drop(t);

    // Next run: Up recalls the last command of the previous one.
    let t = Tmux::start("b", &dir, &cmd).unwrap();
    t.wait("the greeting", |s| s.contains("flowdrill> "));
    t.keys(&["Up"]);
    t.wait("the previous run's last command", |s| {
        s.contains("flowdrill> drill 'TCP ")
    });
    t.keys(&["Up"]);
    t.wait("the one before it", |s| {
        s.contains("flowdrill> hhh -d app -T 30")
    });
    t.keys(&["C-u", "quit", "Enter"]);
}

/// Drops the cache marker: which of two runs over one store answers from the result cache
/// depends on their order.
fn uncached(s: &str) -> String {
    s.replace(" | cached", "")
}

#[test]
fn a_remote_console_prints_what_the_local_one_prints() {
    let s = store("console-remote");
    let d = common::daemon::Daemon::start(&s, &[]);
    let (code, local, err) = console(&s, &["--quiet", "--echo", "-f", "-"], SESSION);
    assert_eq!(code, 0, "{err}");
    let url = d.url();
    let (code, remote, err) =
        console_args(&["--remote", &url, "--quiet", "--echo", "-f", "-"], SESSION);
    assert_eq!(code, 0, "{err}");
    assert!(remote.contains("== Hierarchical heavy hitters"), "{remote}");
    assert_eq!(uncached(&remote), uncached(&local));
}
