//! `flowdrill serve`: the analysis engine in a long-running process, with an HTTP JSON API
//! and the web UI embedded in the binary.
//!
//! # Brief overview
//!
//! - [`Server`] binds a listener ([`Server::bind`]) and answers requests ([`Server::run`]), one
//!   thread per connection up to [`Limits::max_connections`].
//! - [`Analyses`] is how the daemon runs an analysis from query parameters. The binary
//!   implements it with the CLI's own argument parser, so the CLI, the console and the daemon
//!   take the same parameters (the long flag names) and cannot drift apart.
//! - [`api`] routes requests: `/api/v1/{health,info,links,filter,<analysis>}`, and the UI's
//!   files at `/`.
//!
//! ```text
//!  browser / console --remote ──GET──▶ http::read_request ─▶ api::handle
//!                                          │ host check, token, route
//!                                          ▼
//!                      slot (Limits::slots) ─▶ Analyses::run(engine, name, params)
//!                                          │ timeout: Limits::timeout
//!                                          ▼
//!                             Report as JSON, or {"error": {"message": ...}}
//! ```
//!
//! # Security
//!
//! The daemon binds to loopback unless told otherwise, and then only with an access token
//! ([`Server::bind`] refuses otherwise). Every request's `Host` must name the daemon (a DNS
//! rebinding page cannot talk to it) and a browser's `Origin`, when sent, must be the daemon's
//! own. No part of a request names a file: the UI's files are compiled in, and the analyses
//! read only the store the daemon was started on.

pub mod api;
mod assets;
pub mod http;

use flowdrill_query::Engine;
use flowdrill_query::report::Report;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Bounds on what requests may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Analyses running at once; more wait up to `queue_wait` for a slot, then get 503.
    pub slots: usize,
    /// Longest wait for a slot.
    pub queue_wait: Duration,
    /// Longest an analysis may take before the request is answered with 503 (the analysis
    /// finishes in the background and keeps its slot until then, so a flood of slow queries
    /// cannot pile up).
    pub timeout: Duration,
    /// Most rows of any section of an answer, and the largest `top` a request may ask.
    pub max_rows: usize,
    /// Largest `max-records` a request may ask for.
    pub max_records: u64,
    /// Open connections; beyond it new ones are answered 503 at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            slots: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            queue_wait: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_rows: 5000,
            max_records: 5_000_000,
            max_connections: 64,
        }
    }
}

/// How the daemon is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Required as `Authorization: Bearer TOKEN` on `/api/` requests when set; required to
    /// listen on anything but loopback.
    pub token: Option<String>,
    /// Host names (besides localhost and the listen address) that requests may name in
    /// their `Host` header, e.g. the name of a reverse proxy.
    pub allowed_hosts: Vec<String>,
    pub limits: Limits,
}

/// An error answer of the API: an HTTP status and a message that says what to change.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// Extra fields of the error object (e.g. a filter error's position).
    pub detail: Option<serde_json::Value>,
}

impl ApiError {
    /// The request is wrong (a parameter, a filter, a time range): 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            message: message.into(),
            detail: None,
        }
    }
    /// The daemon failed (the store could not be read): 500.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 500,
            message: message.into(),
            detail: None,
        }
    }
}

/// Runs analyses from query parameters. Implemented by the binary over the CLI's parser.
pub trait Analyses: Send + Sync {
    /// The analyses served at `/api/v1/{name}`.
    fn names(&self) -> Vec<&'static str>;
    /// The parameters `name` takes (long flag names), for `/api/v1/info` and error messages.
    fn params(&self, name: &str) -> Vec<String>;
    /// Runs `name` with `params` (already checked to be among [`Analyses::params`]).
    /// Must not read files named by a parameter.
    fn run(
        &self,
        engine: &Engine,
        name: &str,
        params: &[(String, String)],
        limits: &Limits,
    ) -> Result<Report, ApiError>;
}

/// Mistakes in starting the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(
        "listening on {0} (not loopback) needs an access token: give --token, or let flowdrill serve generate one"
    )]
    TokenRequired(SocketAddr),
    #[error("the access token must be at least 16 characters of letters, digits, '-' or '_'")]
    WeakToken,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A counting semaphore: analyses in flight.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

/// A held slot, given back on drop.
#[derive(Debug)]
struct Slot(Arc<Slots>);

impl Slots {
    fn acquire(self: &Arc<Self>, wait: Duration) -> Option<Slot> {
        let g = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let (mut g, _) = self
            .cv
            .wait_timeout_while(g, wait, |n| *n == 0)
            .unwrap_or_else(|e| e.into_inner());
        if *g == 0 {
            return None;
        }
        *g -= 1;
        Some(Slot(self.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// What every connection thread shares.
pub(crate) struct State {
    pub config: Config,
    pub port: u16,
    pub engine: Arc<Engine>,
    pub analyses: Arc<dyn Analyses>,
    slots: Arc<Slots>,
    connections: AtomicUsize,
    custom: std::sync::OnceLock<flowdrill_model::CustomFields>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl State {
    /// The store's user-defined elements, read once (filters may name them).
    pub fn custom_fields(&self) -> &flowdrill_model::CustomFields {
        self.custom.get_or_init(|| self.engine.custom_fields())
    }

    /// Runs `name` in a slot, within the time limit.
    pub fn run_bounded(
        &self,
        name: &str,
        params: Vec<(String, String)>,
    ) -> Result<Report, ApiError> {
        let limits = &self.config.limits;
        let slot = self
            .slots
            .acquire(limits.queue_wait)
            .ok_or_else(|| ApiError {
                status: 503,
                message: format!(
                    "busy: {} analyses are running; try again shortly",
                    limits.slots
                ),
                detail: None,
            })?;
        let (tx, rx) = std::sync::mpsc::channel();
        let engine = self.engine.clone();
        let analyses = self.analyses.clone();
        let name_owned = name.to_string();
        let limits_owned = limits.clone();
        std::thread::spawn(move || {
            let r = analyses.run(&engine, &name_owned, &params, &limits_owned);
            drop(slot);
            let _ = tx.send(r);
        });
        match rx.recv_timeout(limits.timeout) {
            Ok(r) => r,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(ApiError {
                status: 503,
                message: format!(
                    "the analysis took longer than {} s: narrow the time range or the filter, or lower max-records",
                    limits.timeout.as_secs_f64()
                ),
                detail: None,
            }),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(ApiError::internal(
                "internal error: the analysis stopped without an answer (please report this bug)",
            )),
        }
    }
}

/// The daemon: a bound listener and what its requests share.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

/// A strong enough token: long, and safe to put in a header.
fn token_ok(t: &str) -> bool {
    t.len() >= 16
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Server {
    /// Binds the listener. Refuses a non-loopback address without a token.
    pub fn bind(
        config: Config,
        engine: Engine,
        analyses: Arc<dyn Analyses>,
    ) -> Result<Server, ServeError> {
        if !config.listen.ip().is_loopback() && config.token.is_none() {
            return Err(ServeError::TokenRequired(config.listen));
        }
        if let Some(t) = &config.token
            && !token_ok(t)
        {
            return Err(ServeError::WeakToken);
        }
        let listener = TcpListener::bind(config.listen).map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(config.listen.port());
        let slots = Arc::new(Slots {
            free: Mutex::new(config.limits.slots.max(1)),
            cv: Condvar::new(),
        });
        Ok(Server {
            listener,
            state: Arc::new(State {
                config,
                port,
                engine: Arc::new(engine),
                analyses,
                slots,
                connections: AtomicUsize::new(0),
                custom: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The address listened on (the port is the real one when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// Answers connections until the process ends.
    pub fn run(self) {
        for conn in self.listener.incoming() {
            let Ok(stream) = conn else { continue };
            let state = self.state.clone();
            let n = state.connections.fetch_add(1, Ordering::SeqCst);
            if n >= state.config.limits.max_connections {
                state.connections.fetch_sub(1, Ordering::SeqCst);
                let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
                let _ = http::Response::error(503, "too many connections; try again", None)
                    .write(&stream, false);
                continue;
            }
            std::thread::spawn(move || {
                serve_connection(&state, stream);
                state.connections.fetch_sub(1, Ordering::SeqCst);
            });
        }
    }
}

fn serve_connection(state: &State, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let (resp, head_only) = match http::read_request(&stream) {
        Ok(req) => (api::handle(state, &req), req.method == "HEAD"),
        Err(http::HeadError::Io(_)) => return,
        Err(e) => (http::Response::error(400, &e.to_string(), None), false),
    };
    let _ = resp.write(&stream, head_only);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// A random access token (128 bits from the OS, as hex).
pub fn generate_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct NoAnalyses;

    impl Analyses for NoAnalyses {
        fn names(&self) -> Vec<&'static str> {
            Vec::new()
        }
        fn params(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
        fn run(
            &self,
            _: &Engine,
            _: &str,
            _: &[(String, String)],
            _: &Limits,
        ) -> Result<Report, ApiError> {
            Err(ApiError::internal("no analyses here"))
        }
    }

    fn engine(name: &str) -> Engine {
        let d =
            std::env::temp_dir().join(format!("flowdrill-server-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        Engine::new(flowdrill_store::Store::create(&d).unwrap(), 0)
    }

    fn config(listen: &str, token: Option<&str>) -> Config {
        Config {
            listen: listen.parse().unwrap(),
            token: token.map(String::from),
            allowed_hosts: Vec::new(),
            limits: Limits::default(),
        }
    }

    #[test]
    fn beyond_loopback_a_strong_token_is_required() {
        let e = Server::bind(config("0.0.0.0:0", None), engine("a"), Arc::new(NoAnalyses));
        assert!(matches!(e, Err(ServeError::TokenRequired(_))), "{e:?}");
        let e = Server::bind(
            config("127.0.0.1:0", Some("short")),
            engine("b"),
            Arc::new(NoAnalyses),
        );
        assert!(matches!(e, Err(ServeError::WeakToken)), "{e:?}");
        let s = Server::bind(
            config("127.0.0.1:0", None),
            engine("c"),
            Arc::new(NoAnalyses),
        )
        .unwrap();
        assert!(s.local_addr().ip().is_loopback());
        assert_ne!(s.local_addr().port(), 0);
    }

    #[test]
    fn slots_bound_the_analyses_running_at_once() {
        let slots = Arc::new(Slots {
            free: Mutex::new(2),
            cv: Condvar::new(),
        });
        let a = slots.acquire(Duration::ZERO).unwrap();
        let _b = slots.acquire(Duration::ZERO).unwrap();
        assert!(slots.acquire(Duration::from_millis(10)).is_none());
        drop(a);
        assert!(slots.acquire(Duration::ZERO).is_some());
    }

    #[test]
    fn generated_tokens_are_strong_and_differ() {
        let a = generate_token().unwrap();
        let b = generate_token().unwrap();
        assert!(token_ok(&a), "{a}");
        assert_ne!(a, b);
    }
}
