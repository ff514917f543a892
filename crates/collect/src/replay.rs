//! The replayer (`flowdrill replay`): the export datagrams of a capture, sent again over UDP
//! at a chosen rate, to load-test a collector (ours or nfcapd) on 127.0.0.1.
//!
//! [`load`] reads a pcap or pcapng (gzip'd or not) and keeps the UDP payloads in capture
//! order, with the number of flow records each carries (decoded once with the
//! [`flowdrill_wire::Decoder`], so a rate in records/s is exact). [`replay`] sends them to one
//! or more destinations (each datagram to every destination, so two collectors receive the
//! same stream), paced to records/s or datagrams/s, looping as asked.

use crate::{Error, Result, io_err};
use flowdrill_ingest::pcap::PcapReader;
use flowdrill_wire::{Decoder, DecoderConfig};
use std::io::{BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One export datagram of a capture.
#[derive(Clone, Debug)]
pub struct Datagram {
    pub payload: Vec<u8>,
    /// Flow records it carries (data decoded late, when its template came, counts on the
    /// template's datagram).
    pub records: u32,
}

/// How fast to send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// Flow records per second.
    Records(f64),
    /// Datagrams per second (per destination).
    Datagrams(f64),
    /// As fast as the socket takes them.
    Unlimited,
}

/// What to replay, where, how fast and how long.
#[derive(Clone, Debug)]
pub struct ReplayConfig {
    pub to: Vec<SocketAddr>,
    pub rate: Rate,
    /// Passes over the capture (0: until `duration` ends or the stop flag).
    pub loops: u64,
    pub duration: Option<Duration>,
}

/// What was sent (per destination: every destination gets the same).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplaySummary {
    pub datagrams: u64,
    pub records: u64,
    pub bytes: u64,
    /// Sends the kernel refused (ENOBUFS and the like); those datagrams were not sent.
    pub send_errors: u64,
    pub seconds: f64,
}

/// Reads the UDP payloads of a capture of exports, counting the records of each.
pub fn load(path: &Path) -> Result<Vec<Datagram>> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(io_err(format!("opening {name}")))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut magic = [0u8; 2];
    let n = r
        .read(&mut magic)
        .map_err(io_err(format!("reading {name}")))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let input: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(head.chain(r)))
    } else {
        Box::new(head.chain(r))
    };
    let cap_err = |m: String| Error::Capture {
        path: name.clone(),
        message: m,
    };
    let mut rd = PcapReader::new(input).map_err(|e| cap_err(e.to_string()))?;
    let mut dec = Decoder::new(DecoderConfig::default());
    let mut out = Vec::new();
    let mut v = Vec::new();
    loop {
        match rd.next_packet() {
            Ok(Some(p)) => {
                let Ok(pi) = flowdrill_wire::packet::parse(p.linktype, p.data) else {
                    continue;
                };
                if pi.proto != 17 || pi.non_first_fragment {
                    continue;
                }
                let payload = p.data[pi.l4_payload.clone()].to_vec();
                out.clear();
                dec.decode(pi.src, p.ts_ns / 1_000_000, &payload, &mut out);
                v.push(Datagram {
                    payload,
                    records: out.len() as u32,
                });
            }
            Ok(None) => break,
            Err(e) => {
                if v.is_empty() {
                    return Err(cap_err(e.to_string()));
                }
                break; // a cut capture: replay what was read
            }
        }
    }
    if v.is_empty() {
        return Err(cap_err("no UDP datagram in the capture".into()));
    }
    Ok(v)
}

/// Sends `datagrams` as `cfg` says, until done or `stop`.
pub fn replay(
    datagrams: &[Datagram],
    cfg: &ReplayConfig,
    stop: &AtomicBool,
) -> Result<ReplaySummary> {
    if cfg.to.is_empty() || datagrams.is_empty() {
        return Ok(ReplaySummary::default());
    }
    let any: SocketAddr = if cfg.to[0].is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    let sock = UdpSocket::bind(any).map_err(io_err("binding the sending socket"))?;
    let _ = socket2::SockRef::from(&sock).set_send_buffer_size(4 << 20);
    let mut s = ReplaySummary::default();
    let t0 = Instant::now();
    let mut pass = 0u64;
    // Pacing: `units` (records or datagrams) sent so far must not run ahead of rate × time.
    let (per_s, by_records) = match cfg.rate {
        Rate::Records(r) => (r, true),
        Rate::Datagrams(d) => (d, false),
        Rate::Unlimited => (f64::INFINITY, false),
    };
    let mut units = 0u64;
    let mut sender = Sender::new(SEND_BATCH);
    'outer: loop {
        for chunk in datagrams.chunks(SEND_BATCH) {
            for to in &cfg.to {
                s.send_errors += sender.send(&sock, chunk, *to);
            }
            for d in chunk {
                s.datagrams += 1;
                s.records += d.records as u64;
                s.bytes += d.payload.len() as u64;
                units += if by_records { d.records as u64 } else { 1 };
            }
            if per_s.is_finite() && per_s > 0.0 {
                let due = Duration::from_secs_f64(units as f64 / per_s);
                let now = t0.elapsed();
                if due > now + Duration::from_micros(500) {
                    std::thread::sleep(due - now);
                }
            }
            if stop.load(Ordering::Relaxed) || cfg.duration.is_some_and(|d| t0.elapsed() >= d) {
                break 'outer;
            }
        }
        pass += 1;
        if cfg.loops != 0 && pass >= cfg.loops {
            break;
        }
        if cfg.duration.is_some_and(|d| t0.elapsed() >= d) || stop.load(Ordering::Relaxed) {
            break;
        }
    }
    s.seconds = t0.elapsed().as_secs_f64();
    Ok(s)
}

/// Datagrams per send system call (`sendmmsg` on Linux): the sender shares the cores with
/// the collectors it loads, so it should spend as little as it can.
const SEND_BATCH: usize = 16;

/// Sends datagrams to one destination: `sendmmsg(2)` on Linux, `send_to` each elsewhere.
struct Sender {
    #[cfg(target_os = "linux")]
    headers: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

impl Sender {
    fn new(batch: usize) -> Sender {
        let _ = batch;
        Sender {
            #[cfg(target_os = "linux")]
            headers: nix::sys::socket::MultiHeaders::preallocate(batch, None),
        }
    }

    /// Sends every datagram of `chunk` to `to`; returns how many the kernel refused.
    #[cfg(target_os = "linux")]
    fn send(&mut self, sock: &UdpSocket, chunk: &[Datagram], to: SocketAddr) -> u64 {
        use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmmsg};
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;
        let addr = SockaddrStorage::from(to);
        let mut errors = 0;
        let mut rest = chunk;
        while !rest.is_empty() {
            let iovs: Vec<[IoSlice<'_>; 1]> =
                rest.iter().map(|d| [IoSlice::new(&d.payload)]).collect();
            let addrs = vec![Some(addr); rest.len()];
            let r = sendmmsg(
                sock.as_raw_fd(),
                &mut self.headers,
                &iovs,
                &addrs,
                [] as [ControlMessage<'_>; 0],
                MsgFlags::empty(),
            );
            match r.map(|res| res.count()) {
                Ok(n) if n > 0 => rest = &rest[n.min(rest.len())..],
                // The first datagram was refused (ENOBUFS and the like): counted, skipped.
                _ => {
                    errors += 1;
                    rest = &rest[1..];
                }
            }
        }
        errors
    }

    #[cfg(not(target_os = "linux"))]
    fn send(&mut self, sock: &UdpSocket, chunk: &[Datagram], to: SocketAddr) -> u64 {
        chunk
            .iter()
            .filter(|d| sock.send_to(&d.payload, to).is_err())
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_replay_sends_every_datagram_at_about_the_rate() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let dg: Vec<Datagram> = (0..50u8)
            .map(|i| Datagram {
                payload: vec![i; 100],
                records: 10,
            })
            .collect();
        let cfg = ReplayConfig {
            to: vec![rx.local_addr().unwrap()],
            rate: Rate::Records(5000.0),
            loops: 2,
            duration: None,
        };
        let s = replay(&dg, &cfg, &AtomicBool::new(false)).unwrap();
        assert_eq!((s.datagrams, s.records, s.bytes), (100, 1000, 10_000));
        // 1000 records at 5000/s: 0.2 s.
        assert!(s.seconds >= 0.18 && s.seconds < 2.0, "{}", s.seconds);
        let mut buf = [0u8; 200];
        let mut got = 0;
        while let Ok(n) = rx.recv(&mut buf) {
            assert_eq!(n, 100);
            got += 1;
        }
        assert_eq!(got, 100);
    }
}
