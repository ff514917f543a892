//! The receive side of the collector: datagrams drained from a socket in batches
//! (`recvmmsg(2)` on Linux) and packed into [`Block`]s, a ring of reusable buffers that the
//! receiver threads fill and the writer thread decodes and empties.
//!
//! A receiver does nothing but drain its socket: one system call brings up to
//! [`CollectConfig::recv_batch`](crate::CollectConfig::recv_batch) datagrams, which are
//! copied, back to back, into the block being filled (about 77 bytes per IPFIX record, against
//! about 160 for a decoded record). Full blocks go to the writer over a bounded channel;
//! emptied blocks come back through a shared free list ([`Pool`]), so the ring's memory is
//! allocated once and stays flat: at most (channel capacity + listeners + 1) blocks.

use flowdrill_model::Addr;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;

/// Largest UDP payload (a receive slot holds any datagram whole).
pub const MAX_DATAGRAM: usize = 65_536;

/// Datagrams received on one listener, packed back to back.
#[derive(Debug, Default)]
pub struct Block {
    /// The listener's index (its decoder on the writer thread).
    pub listener: usize,
    data: Vec<u8>,
    /// Per datagram: exporter, receive time (Unix ms), end offset in `data` (the start is the
    /// previous end).
    entries: Vec<(Addr, u64, u32)>,
}

impl Block {
    /// An empty block holding `bytes` of datagrams (at least one datagram of any size).
    pub fn new(listener: usize, bytes: usize) -> Block {
        let bytes = bytes.max(MAX_DATAGRAM);
        Block {
            listener,
            data: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(bytes / 512),
        }
    }

    /// Appends a datagram; false (and nothing appended) when it does not fit.
    #[inline]
    pub fn push(&mut self, from: Addr, recv_ms: u64, payload: &[u8]) -> bool {
        if self.data.len() + payload.len() > self.data.capacity() {
            return false;
        }
        self.data.extend_from_slice(payload);
        self.entries.push((from, recv_ms, self.data.len() as u32));
        true
    }

    /// Datagrams held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of payload held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The datagrams, in arrival order: (exporter, receive time, payload).
    pub fn iter(&self) -> impl Iterator<Item = (Addr, u64, &[u8])> + '_ {
        let mut start = 0usize;
        self.entries.iter().map(move |&(from, ms, end)| {
            let p = &self.data[start..end as usize];
            start = end as usize;
            (from, ms, p)
        })
    }

    /// Empties the block, keeping its memory.
    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }
}

/// The free list of the ring: emptied blocks waiting to be filled again.
#[derive(Debug)]
pub struct Pool {
    free: Mutex<Vec<Block>>,
    block_bytes: usize,
}

impl Pool {
    pub fn new(block_bytes: usize) -> Pool {
        Pool {
            free: Mutex::new(Vec::new()),
            block_bytes,
        }
    }

    /// An empty block for `listener`: a recycled one, else a new one.
    pub fn take(&self, listener: usize) -> Block {
        let b = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match b {
            Some(mut b) => {
                b.listener = listener;
                b
            }
            None => Block::new(listener, self.block_bytes),
        }
    }

    /// Gives a block back (emptied here).
    pub fn put(&self, mut b: Block) {
        b.clear();
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(b);
    }
}

/// One datagram as received.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub from: Option<SocketAddr>,
    pub len: usize,
    /// Larger than the slot: cut (never for UDP with 64 KiB slots; counted if it happens).
    pub truncated: bool,
}

/// Receives datagrams in batches into its slots: `recvmmsg(2)` on Linux when `batch > 1`,
/// else one `recv_from` per call.
#[derive(Debug)]
pub struct Receiver {
    slots: Vec<Box<[u8]>>,
    got: Vec<Received>,
    #[cfg(target_os = "linux")]
    headers: Option<nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>>,
}

impl Receiver {
    /// A receiver of up to `batch` datagrams per call (1: plain `recv_from`).
    pub fn new(batch: usize) -> Receiver {
        let batch = batch.max(1);
        // The slots are allocated zeroed and never written by us: only the pages the kernel
        // copies datagrams into become resident.
        let slots = (0..batch)
            .map(|_| vec![0u8; MAX_DATAGRAM].into_boxed_slice())
            .collect();
        Receiver {
            slots,
            got: Vec::with_capacity(batch),
            #[cfg(target_os = "linux")]
            headers: (batch > 1).then(|| nix::sys::socket::MultiHeaders::preallocate(batch, None)),
        }
    }

    /// Datagrams taken per call at most.
    pub fn batch(&self) -> usize {
        self.slots.len()
    }

    /// Waits for at least one datagram (up to the socket's read timeout) and takes every
    /// datagram queued, up to the batch size; returns how many ([`Receiver::datagram`]).
    pub fn recv(&mut self, sock: &UdpSocket) -> std::io::Result<usize> {
        self.got.clear();
        #[cfg(target_os = "linux")]
        if self.headers.is_some() {
            return self.recv_many(sock);
        }
        let (len, from) = sock.recv_from(&mut self.slots[0])?;
        self.got.push(Received {
            from: Some(from),
            len,
            truncated: false,
        });
        Ok(1)
    }

    #[cfg(target_os = "linux")]
    fn recv_many(&mut self, sock: &UdpSocket) -> std::io::Result<usize> {
        use nix::sys::socket::{MsgFlags, recvmmsg};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;
        let headers = self.headers.as_mut().expect("checked by the caller");
        let mut iovs: Vec<[IoSliceMut<'_>; 1]> = self
            .slots
            .iter_mut()
            .map(|s| [IoSliceMut::new(&mut s[..])])
            .collect();
        // MSG_WAITFORONE: block (up to SO_RCVTIMEO) for the first datagram only, then take
        // what is queued without waiting.
        let res = recvmmsg(
            sock.as_raw_fd(),
            headers,
            iovs.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(std::io::Error::from)?;
        for m in res {
            let from = m.address.and_then(|a| {
                if let Some(v4) = a.as_sockaddr_in() {
                    Some(SocketAddr::from((v4.ip(), v4.port())))
                } else {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
                }
            });
            self.got.push(Received {
                from,
                len: m.bytes.min(MAX_DATAGRAM),
                truncated: m.flags.contains(MsgFlags::MSG_TRUNC),
            });
        }
        Ok(self.got.len())
    }

    /// The `i`-th datagram of the last [`Receiver::recv`]: what is known of it, and its
    /// payload.
    pub fn datagram(&self, i: usize) -> (Received, &[u8]) {
        let g = self.got[i];
        (g, &self.slots[i][..g.len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_block_packs_datagrams_in_order_and_refuses_what_does_not_fit() {
        let mut b = Block::new(3, 0);
        assert_eq!(b.data.capacity(), MAX_DATAGRAM);
        let a: Addr = "192.0.2.1".parse().unwrap();
        assert!(b.push(a, 7, &[1, 2, 3]));
        assert!(b.push(a, 8, &[]));
        assert!(b.push(a, 9, &[4; 1000]));
        assert!(!b.push(a, 10, &vec![5; MAX_DATAGRAM]));
        let got: Vec<(u64, Vec<u8>)> = b.iter().map(|(_, t, p)| (t, p.to_vec())).collect();
        assert_eq!(
            got,
            vec![(7, vec![1, 2, 3]), (8, vec![]), (9, vec![4; 1000])]
        );
        assert_eq!((b.len(), b.bytes(), b.listener), (3, 1003, 3));
        let pool = Pool::new(0);
        pool.put(b);
        let b = pool.take(1);
        assert!(b.is_empty() && b.listener == 1 && b.data.capacity() == MAX_DATAGRAM);
    }

    /// The batched path (recvmmsg) and the plain one receive the same datagrams, whole, with
    /// their senders.
    #[test]
    fn batched_and_single_receives_get_the_same_datagrams() {
        for batch in [1, 16] {
            let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
            rx.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            // Room for every datagram: none may be dropped before it is read.
            let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(4 << 20);
            let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
            let sent: Vec<Vec<u8>> = (0..50u32)
                .map(|i| {
                    let n = [1, 1400, 9000, 20_000][i as usize % 4];
                    (0..n).map(|j| (i as usize * 31 + j) as u8).collect()
                })
                .collect();
            for d in &sent {
                tx.send_to(d, rx.local_addr().unwrap()).unwrap();
            }
            let mut r = Receiver::new(batch);
            let mut got = Vec::new();
            let mut calls = 0;
            while got.len() < sent.len() {
                let n = r.recv(&rx).expect("datagrams were sent");
                calls += 1;
                for i in 0..n {
                    let (g, p) = r.datagram(i);
                    assert!(!g.truncated);
                    assert_eq!(g.from, Some(tx.local_addr().unwrap()));
                    got.push(p.to_vec());
                }
            }
            assert_eq!(got, sent, "batch {batch}");
            if batch == 1 {
                assert_eq!(calls, 50);
            } else if cfg!(target_os = "linux") {
                assert!(calls < 50, "recvmmsg took {calls} calls for 50 datagrams");
            }
        }
    }
}
