//! [`Collector`]: UDP receiver threads, the writer thread, the event clock that closes bins,
//! reload and shutdown.
//!
//! Threads and what they own:
//!
//! - one **receiver** per socket: the socket and the block being filled. It only drains the
//!   socket (`recvmmsg`, up to [`CollectConfig::recv_batch`] datagrams per system call) into
//!   [`Block`]s of raw datagrams from the ring ([`crate::ring`]), hands a block to the writer
//!   when it is full or [`PUBLISH_MS`] has passed, and publishes its counters. The channel is
//!   bounded: when the writer falls behind, receivers wait and the kernel's socket buffer
//!   takes the excess (what overflows it is counted by the kernel, and shown as
//!   `socket_drops`).
//! - one **writer**: a [`Decoder`] per listener (so template state is per exporter and
//!   domain, as in an import) and the [`StoreWriter`]. It decodes each block's datagrams and
//!   pushes their records one by one (no batch of decoded records is ever materialised), then
//!   gives the block back to the ring. Its event clock is the latest flow start it has seen
//!   (flows starting more than a minute after the wall clock do not move it), running on with
//!   the wall clock while no newer record comes; when `clock − close_after` crosses a bin
//!   boundary, every bin ending before it is closed and written. Records that come later for
//!   a closed bin are merged into its file (the store's late-data path).
//!
//! Acknowledged means written: a record is safe once its bin file has been renamed into place.
//! Records of open bins live in memory only; `kill -9` loses them (as nfcapd loses its open
//! file), SIGTERM/SIGINT ([`Collector::shutdown`]) writes them.

use crate::metrics::{ListenerShared, Shared, WriterShared};
use crate::ring::{Block, Pool, Receiver as Batch};
use crate::{Error, Result, io_err};
use flowdrill_model::{Addr, FlowRecord};
use flowdrill_store::{Store, StoreWriter, WriteSummary, WriterOptions};
use flowdrill_wire::{Decoder, DecoderConfig};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Receivers publish their counters, and flush a partial block, this often.
pub const PUBLISH_MS: u64 = 200;

/// After a receive call that emptied the socket, a receiver lets datagrams gather this long
/// before the next one (µs): one wake-up per batch instead of one per datagram, which is most
/// of what receiving costs at high rates. The socket buffer holds far more than this much
/// traffic (2 M records/s for 1 ms is about 250 kB).
const GATHER_US: u64 = 1000;

/// How a collector behaves; [`CollectConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct CollectConfig {
    /// UDP addresses to listen on (port 0: any free port; see [`Collector::local_addrs`]).
    pub listen: Vec<SocketAddr>,
    /// The decoders' configuration (user-defined elements, sampling overrides, caps).
    pub decoder: DecoderConfig,
    /// The store writer's options; `max_open_records` bounds the memory of each open bin.
    pub writer: WriterOptions,
    /// A bin is closed once the event clock is this far past its end (ms). Records arrive
    /// when flows end, up to the exporters' active timeout after they start: records later
    /// than this are still stored, merged into the bin's file.
    pub close_after_ms: u64,
    /// Requested socket receive buffer (SO_RCVBUF), bytes; the kernel caps it at
    /// `net.core.rmem_max` and reports twice the value.
    pub recv_buffer: usize,
    /// Datagrams taken per receive system call (`recvmmsg` on Linux; 1: one `recv_from`
    /// each).
    pub recv_batch: usize,
    /// Bytes of datagrams per block of the ring handed to the writer (at least 64 KiB).
    pub block_bytes: usize,
    /// Full blocks the channel to the writer holds: with `block_bytes`, what the collector
    /// buffers beyond the socket's receive buffer while the writer is busy.
    pub channel_blocks: usize,
}

impl CollectConfig {
    /// Defaults: listen on `listen`, bins closed 5 minutes after their end, open bins capped
    /// at 1 M records each (about 160 MB; the budget usually caps them lower), 8 MiB socket
    /// buffers, 64 datagrams per receive call, a ring of 64 blocks of 256 KiB (16 MiB).
    pub fn new(listen: Vec<SocketAddr>) -> CollectConfig {
        CollectConfig {
            listen,
            decoder: DecoderConfig::default(),
            writer: WriterOptions {
                max_open_records: Some(1_000_000),
                ..WriterOptions::default()
            },
            close_after_ms: 300_000,
            recv_buffer: 8 << 20,
            recv_batch: 64,
            block_bytes: 256 << 10,
            channel_blocks: 64,
        }
    }
}

/// What a collector did, returned by [`Collector::shutdown`].
#[derive(Clone, Debug, Default)]
pub struct CollectSummary {
    pub datagrams: u64,
    pub records_decoded: u64,
    /// Every store writer's summary (one per links-file reload, in order).
    pub writes: Vec<WriteSummary>,
    /// Decoder drops by reason, all listeners.
    pub drops: std::collections::BTreeMap<String, u64>,
    /// Datagrams the kernel dropped on our sockets (where it reports them).
    pub socket_drops: u64,
}

enum Msg {
    Block(Block),
    Reload(Box<Store>),
}

/// A running collector (see the module doc).
#[derive(Debug)]
pub struct Collector {
    shared: Arc<Shared>,
    local: Vec<SocketAddr>,
    receivers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<Result<Vec<WriteSummary>>>>,
    control: Option<SyncSender<Msg>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Block(b) => write!(f, "Block({} datagrams)", b.len()),
            Msg::Reload(_) => f.write_str("Reload"),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Binds one UDP socket with a large receive buffer.
fn bind(addr: SocketAddr, recv_buffer: usize) -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind_err = |source| Error::Bind { addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_err)?;
    if addr.is_ipv6() {
        // [::]:port takes IPv4 too, as nfcapd does.
        let _ = s.set_only_v6(false);
    }
    // A smaller buffer than asked for is not an error: the metrics show what we got.
    let _ = s.set_recv_buffer_size(recv_buffer);
    s.bind(&addr.into()).map_err(bind_err)?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(PUBLISH_MS)))
        .map_err(io_err("setting the socket timeout"))?;
    Ok(s)
}

impl Collector {
    /// Binds every listener and starts the threads. Nothing is received before this returns
    /// `Ok`; a port already taken is an [`Error::Bind`].
    pub fn start(store: &Store, cfg: CollectConfig) -> Result<Collector> {
        if cfg.listen.is_empty() {
            return Err(Error::Internal("no address to listen on".into()));
        }
        let mut sockets = Vec::new();
        for &a in &cfg.listen {
            sockets.push(bind(a, cfg.recv_buffer)?);
        }
        let writer = StoreWriter::new(store, cfg.writer.clone())?;
        let mut listeners = Vec::new();
        let mut local = Vec::new();
        for s in &sockets {
            let addr = s
                .local_addr()
                .map_err(io_err("reading the socket address"))?;
            local.push(addr);
            let rcvbuf = socket2::SockRef::from(s).recv_buffer_size().unwrap_or(0);
            listeners.push(ListenerShared::new(addr, socket_inode(s), rcvbuf as u64));
        }
        let shared = Arc::new(Shared::new(listeners));
        let (tx, rx) = sync_channel::<Msg>(cfg.channel_blocks.max(1));
        let pool = Arc::new(Pool::new(cfg.block_bytes));
        let mut receivers = Vec::new();
        for (i, s) in sockets.into_iter().enumerate() {
            let (shared, tx, pool, batch) =
                (shared.clone(), tx.clone(), pool.clone(), cfg.recv_batch);
            let h = std::thread::Builder::new()
                .name(format!("flowdrill-recv-{}", local[i]))
                .spawn(move || receive(s, i, Batch::new(batch), &pool, tx, &shared))
                .map_err(io_err("starting a receiver thread"))?;
            receivers.push(h);
        }
        let decoders = (0..local.len())
            .map(|_| Decoder::new(cfg.decoder.clone()))
            .collect();
        let wshared = shared.clone();
        let (opts, lag) = (cfg.writer.clone(), cfg.close_after_ms);
        let writer = std::thread::Builder::new()
            .name("flowdrill-writer".into())
            .spawn(move || {
                let r = write_loop(writer, decoders, &pool, opts, lag, rx, &wshared);
                if r.is_err() {
                    // A writer that cannot write stops the collector.
                    wshared.stop.store(true, Ordering::SeqCst);
                }
                r
            })
            .map_err(io_err("starting the writer thread"))?;
        Ok(Collector {
            shared,
            local,
            receivers,
            writer: Some(writer),
            control: Some(tx),
        })
    }

    /// The addresses the sockets are bound to (with the ports chosen for port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }

    /// The shared counters (for [`crate::metrics::render`] and [`crate::metrics::serve`]).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The metrics in Prometheus text format.
    pub fn metrics(&self) -> String {
        crate::metrics::render(&self.shared)
    }

    /// False once the collector has stopped by itself (the writer failed: see
    /// [`Collector::shutdown`] for the error).
    pub fn is_running(&self) -> bool {
        !self.shared.stop.load(Ordering::SeqCst)
    }

    /// Switches to the links rules of `store` (re-opened by the caller): the open bins are
    /// written under the old rules, records from now on go through the new ones; a bin that
    /// gets records under both is merged.
    pub fn reload(&self, store: Store) -> Result<()> {
        let tx = self.control.as_ref().expect("present until shutdown");
        tx.send(Msg::Reload(Box::new(store)))
            .map_err(|_| Error::Internal("the writer thread has stopped".into()))
    }

    /// Stops receiving, decodes what is buffered (the ring's blocks), writes every open bin,
    /// and returns what was done (or the writer's error).
    pub fn shutdown(mut self) -> Result<CollectSummary> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for h in self.receivers.drain(..) {
            h.join()
                .map_err(|_| Error::Internal("a receiver thread panicked".into()))?;
        }
        self.control = None;
        let writes = self
            .writer
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| Error::Internal("the writer thread panicked".into()))??;
        let mut s = CollectSummary {
            writes,
            ..CollectSummary::default()
        };
        for l in &self.shared.listeners {
            let st = l.decode.lock().unwrap_or_else(|e| e.into_inner());
            s.datagrams += l.received.load(Ordering::Relaxed);
            s.records_decoded += st.records;
            for (k, v) in &st.drops {
                *s.drops.entry((*k).to_string()).or_default() += v;
            }
            s.socket_drops += l.socket_drops().unwrap_or(0);
        }
        Ok(s)
    }
}

#[cfg(unix)]
fn socket_inode(s: &UdpSocket) -> Option<u64> {
    use std::os::fd::AsRawFd;
    crate::procnet::socket_inode(s.as_raw_fd())
}

#[cfg(not(unix))]
fn socket_inode(_: &UdpSocket) -> Option<u64> {
    None
}

/// A receiver thread: datagrams in, blocks of raw datagrams out, until the stop flag.
fn receive(
    sock: UdpSocket,
    index: usize,
    mut rx: Batch,
    pool: &Pool,
    tx: SyncSender<Msg>,
    shared: &Shared,
) {
    let me = &shared.listeners[index];
    let mut block = pool.take(index);
    let mut last_publish = Instant::now();
    let publish_every = Duration::from_millis(PUBLISH_MS);
    let (mut datagrams, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    // Hands the block to the writer (false: the writer has stopped).
    let send = |block: &mut Block| -> bool {
        if block.is_empty() {
            return true;
        }
        let full = std::mem::replace(block, pool.take(index));
        tx.send(Msg::Block(full)).is_ok()
    };
    let batch = rx.batch();
    'outer: loop {
        match rx.recv(&sock) {
            Ok(n) => {
                let now = now_ms();
                for i in 0..n {
                    let (g, payload) = rx.datagram(i);
                    datagrams += 1;
                    bytes += g.len as u64;
                    let (Some(from), false) = (g.from, g.truncated) else {
                        errors += 1;
                        continue;
                    };
                    let exporter = Addr::from(from.ip().to_canonical());
                    if !block.push(exporter, now, payload) {
                        if !send(&mut block) {
                            break 'outer;
                        }
                        block.push(exporter, now, payload);
                    }
                }
                if n < batch {
                    std::thread::sleep(Duration::from_micros(GATHER_US));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => errors += 1,
        }
        if last_publish.elapsed() >= publish_every {
            last_publish = Instant::now();
            me.publish_received(datagrams, bytes, errors);
            if !send(&mut block) {
                break;
            }
            if shared.stop.load(Ordering::SeqCst) {
                break;
            }
        }
    }
    let _ = send(&mut block);
    me.publish_received(datagrams, bytes, errors);
}

/// The event clock: the latest flow start seen, running on with the wall clock.
struct Clock {
    /// Event time at `anchor_wall` (Unix ms).
    event: u64,
    anchor: Instant,
}

impl Clock {
    fn now(&self) -> u64 {
        if self.event == 0 {
            return 0;
        }
        self.event + self.anchor.elapsed().as_millis() as u64
    }
    /// A record starting at `t`; `wall` is the wall clock (flows from the future beyond a
    /// minute do not move the clock: one bad exporter clock must not close every bin).
    #[inline]
    fn see(&mut self, t: u64, wall: u64) {
        if t > self.event && t <= wall.saturating_add(60_000) && t > self.now() {
            self.event = t;
            self.anchor = Instant::now();
        }
    }
}

fn write_loop(
    mut w: StoreWriter,
    mut decoders: Vec<Decoder>,
    pool: &Pool,
    opts: WriterOptions,
    lag: u64,
    rx: Receiver<Msg>,
    shared: &Shared,
) -> Result<Vec<WriteSummary>> {
    let mut done = Vec::new();
    // The records of one datagram (reused: no allocation per datagram).
    let mut out: Vec<FlowRecord> = Vec::with_capacity(256);
    let mut clock = Clock {
        event: 0,
        anchor: Instant::now(),
    };
    // The watermark is applied when it crosses a multiple of this (the finest level-0 bin of
    // any link), so late records of an old bin are merged once per bin period, not per tick.
    let step = |w: &StoreWriter| w.min_bin_ms().max(1);
    let mut step_ms = step(&w);
    let mut applied = 0u64;
    let mut last_tick = Instant::now();
    let tick = Duration::from_millis(PUBLISH_MS);
    loop {
        match rx.recv_timeout(tick) {
            Ok(Msg::Block(b)) => {
                let wall = now_ms();
                let dec = &mut decoders[b.listener];
                for (from, recv_ms, payload) in b.iter() {
                    dec.decode(from, recv_ms, payload, &mut out);
                    for r in out.drain(..) {
                        clock.see(r.time_start, wall);
                        w.push(r)?;
                    }
                }
                pool.put(b);
            }
            Ok(Msg::Reload(store)) => {
                let old = std::mem::replace(&mut w, StoreWriter::new(&store, opts.clone())?);
                done.push(old.finish()?);
                step_ms = step(&w);
                applied = 0;
                shared.writer_finished(done.last().expect("pushed above"), true);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= tick {
            last_tick = Instant::now();
            let wm = clock.now().saturating_sub(lag);
            if wm / step_ms > applied / step_ms {
                applied = wm;
                w.advance(wm)?;
                shared.writer_bins(&w.summary());
            }
            shared.writer_state(&WriterShared::snapshot(&w));
            for (l, d) in shared.listeners.iter().zip(&decoders) {
                l.publish_decoded(d.stats());
            }
        }
    }
    // Data still waiting for a template can no longer be decoded: counted as dropped.
    for (l, d) in shared.listeners.iter().zip(&mut decoders) {
        d.finish(&mut out);
        l.publish_decoded(d.stats());
    }
    let last = w.finish()?;
    shared.writer_finished(&last, false);
    done.push(last);
    Ok(done)
}
