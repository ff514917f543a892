//! A group's flows, packets and bytes as one 96-bit integer, for `top` over unsampled records.
//!
//! `top` by address is a group-by whose tables are most of its memory and of its time: each
//! record lands in a random slot of a table larger than the caches. With the three sums as
//! separate integers (4 + 8 + 8 bytes) an IPv4 slot takes 24 bytes and an IPv6 one 48; packed
//! into 96 bits they take 16 and 32, and a slot never straddles two cache lines (`top
//! srcip` over 5 M records: tables from 41 to 27 MB).
//!
//! **Why the fields cannot overflow.** The bits of each field come from the totals of the
//! bins the query reads ([`Layout::for_totals`]): a field holds `workers` times the total of
//! its metric. Each worker checks that the records it added stay within its share of that
//! ([`Tally::add`]), so that all workers together (and so any one group, whichever worker
//! adds its records) stay within the field even when the catalog's totals are wrong; a
//! worker that goes past its share makes the query run again with separate sums. Adding two
//! packed sums is then one 96-bit addition, whose fields never carry into each other.

/// A 96-bit unsigned integer: bytes in the low bits, then packets, then flows (see
/// [`Layout`]). Packed to 4-byte alignment so that after a 4-byte key a slot takes 16 bytes.
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Packed {
    lo: u64,
    hi: u32,
}

impl Packed {
    fn from_u128(v: u128) -> Packed {
        Packed {
            lo: v as u64,
            hi: (v >> 64) as u32,
        }
    }

    fn get(self) -> u128 {
        u128::from(self.hi) << 64 | u128::from(self.lo)
    }

    /// Adds `o` (modulo 2^96; [`Layout`] keeps every sum below that).
    #[inline]
    pub(crate) fn add(&mut self, o: Packed) {
        let (lo, carry) = { self.lo }.overflowing_add(o.lo);
        self.lo = lo;
        self.hi = { self.hi }
            .wrapping_add(o.hi)
            .wrapping_add(u32::from(carry));
    }
}

/// Where the fields of a [`Packed`] sum are: bytes in bits `0..packets_at`, packets in
/// `packets_at..flows_at`, flows from `flows_at` up to bit 96; and how much of each metric
/// one worker may add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    packets_at: u32,
    flows_at: u32,
    /// A worker's share of each field's room: records (each at most one flow), packets, bytes.
    share: [u128; 3],
}

/// Bits that hold `v`.
fn bits(v: u128) -> u32 {
    128 - v.leading_zeros()
}

impl Layout {
    /// The layout for a query over bins that hold `records`, `packets` and `bytes` in all,
    /// read by `workers` workers: each field holds `workers` times its total, so that a worker
    /// may add up to the total by itself. `None` when the three do not fit in 96 bits.
    pub(crate) fn for_totals(
        records: u64,
        packets: u64,
        bytes: u64,
        workers: usize,
    ) -> Option<Layout> {
        let w = workers.max(1) as u128;
        let [fb, pb, bb] = [records, packets, bytes].map(|t| bits(u128::from(t) * w));
        if fb + pb + bb > 96 {
            return None;
        }
        let room = |b: u32| ((1u128 << b) - 1) / w;
        Some(Layout {
            packets_at: bb,
            flows_at: bb + pb,
            share: [room(fb), room(pb), room(bb)],
        })
    }

    /// One record: its bytes, packets, and whether it counts as a flow. Its values must be
    /// within the fields (as the records that [`Tally::add`] accepted are).
    #[inline]
    pub(crate) fn pack(&self, bytes: u64, packets: u64, flow: bool) -> Packed {
        Packed::from_u128(
            u128::from(bytes)
                | u128::from(packets) << self.packets_at
                | u128::from(flow) << self.flows_at,
        )
    }

    /// Field `i` of a sum: 0 flows, 1 packets, 2 bytes (the order of [`Layout::unpack`]).
    #[inline]
    pub(crate) fn field(&self, p: Packed, i: usize) -> u64 {
        let (from, to) = match i {
            0 => (self.flows_at, 96),
            1 => (self.packets_at, self.flows_at),
            _ => (0, self.packets_at),
        };
        ((p.get() >> from) & ((1u128 << (to - from)) - 1)) as u64
    }

    /// Flows, packets and bytes of a sum.
    pub(crate) fn unpack(&self, p: Packed) -> [u64; 3] {
        [0, 1, 2].map(|i| self.field(p, i))
    }
}

/// What one worker has added to packed sums: records, packets and bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally([u128; 3]);

impl Tally {
    /// Counts `records` records of `packets` packets and `bytes` bytes in all; `false` when
    /// the worker's total goes past its share of `layout` (its sums may then have overflowed).
    #[must_use]
    pub(crate) fn add(
        &mut self,
        layout: &Layout,
        records: u64,
        packets: u128,
        bytes: u128,
    ) -> bool {
        for (t, v) in self.0.iter_mut().zip([u128::from(records), packets, bytes]) {
            *t = t.saturating_add(v);
        }
        self.0.iter().zip(layout.share).all(|(&t, room)| t <= room)
    }
}

/// The sum of `v`, whatever its values: halves of 32 bits summed apart (each sum of at most
/// 2^32 of them fits 64 bits), which vectorizes, where a sum in 128 bits would not.
pub(crate) fn sum_wide(v: &[u64]) -> u128 {
    v.chunks(1 << 30)
        .map(|c| {
            let (mut lo, mut hi) = (0u64, 0u64);
            for &x in c {
                lo += x & 0xffff_ffff;
                hi += x >> 32;
            }
            (u128::from(hi) << 32) + u128::from(lo)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn sums_unpack_to_the_sums_of_the_fields() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let n = rng.random_range(1..200usize);
            let recs: Vec<(u64, u64, bool)> = (0..n)
                .map(|_| {
                    let width = rng.random_range(1..40);
                    let b: u64 = rng.random_range(0..1u64 << width);
                    (
                        b,
                        rng.random_range(0..=b.min(1 << 20)),
                        rng.random_bool(0.7),
                    )
                })
                .collect();
            let bytes: u64 = recs.iter().map(|r| r.0).sum();
            let packets: u64 = recs.iter().map(|r| r.1).sum();
            let flows = recs.iter().filter(|r| r.2).count() as u64;
            let workers = rng.random_range(1..5);
            let l = Layout::for_totals(n as u64, packets, bytes, workers).expect("fits");
            // Added in two parts, then combined, as two workers' tables are.
            let (mut a, mut b) = (Packed::default(), Packed::default());
            let mut tally = Tally::default();
            for (i, &(by, p, f)) in recs.iter().enumerate() {
                assert!(tally.add(&l, 1, u128::from(p), u128::from(by)));
                if i % 3 == 0 {
                    a.add(l.pack(by, p, f))
                } else {
                    b.add(l.pack(by, p, f))
                }
            }
            a.add(b);
            assert_eq!(l.unpack(a), [flows, packets, bytes]);
            assert_eq!([0, 1, 2].map(|i| l.field(a, i)), [flows, packets, bytes]);
        }
    }

    #[test]
    fn the_fields_take_their_totals_room_for_every_worker() {
        // 2 workers: each field one bit wider than its total needs.
        let l = Layout::for_totals(5_000_000, 51_186_635, 34_049_120_284, 2).expect("fits");
        assert_eq!((l.packets_at, l.flows_at), (36, 36 + 27));
        assert!(l.share[2] >= 34_049_120_284 && l.share[2] < 2 * 34_049_120_284 + 1);
        // The largest values of each field, summed by every worker, do not carry over.
        let mut s = Packed::default();
        for _ in 0..2 {
            s.add(l.pack(l.share[2] as u64, l.share[1] as u64, false));
        }
        let [f, p, b] = l.unpack(s);
        assert_eq!((f, p, b), (0, 2 * l.share[1] as u64, 2 * l.share[2] as u64));
        // Too much for 96 bits; nothing at all.
        assert_eq!(
            Layout::for_totals(u32::MAX as u64, 1 << 40, 1 << 50, 2),
            None
        );
        let z = Layout::for_totals(0, 0, 0, 2).expect("fits");
        assert_eq!(z.unpack(Packed::default()), [0, 0, 0]);
    }

    #[test]
    fn a_worker_past_its_share_is_refused() {
        let l = Layout::for_totals(10, 100, 1000, 2).expect("fits");
        let mut t = Tally::default();
        assert!(t.add(&l, 10, 100, 1000));
        // Within the room the rounding to whole bits leaves, then past it.
        let room = l.share;
        assert!(t.add(&l, 0, 0, room[2] - 1000));
        assert!(!t.add(&l, 0, 0, 1));
        let mut t = Tally::default();
        assert!(!t.add(&l, room[0] as u64 + 1, 0, 0));
        let mut t = Tally::default();
        assert!(!t.add(&l, 0, room[1] + 1, 0));
    }

    #[test]
    fn wide_sums_do_not_overflow() {
        let v = vec![u64::MAX; 1000];
        assert_eq!(sum_wide(&v), 1000 * u128::from(u64::MAX));
        let v: Vec<u64> = (0..5000).map(|i| i * 0x1_0000_0001).collect();
        assert_eq!(sum_wide(&v), v.iter().map(|&x| u128::from(x)).sum::<u128>());
        assert_eq!(sum_wide(&[]), 0);
    }
}
