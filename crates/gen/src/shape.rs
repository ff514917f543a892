//! How a flow's packets look: the per-packet sizes and TCP flags that add up to a record's
//! `packets`, `bytes` and `tcp_flags`. The record generator picks a [`Shape`]; the packet
//! writer and the ground truth read sizes back from it, so the three always agree.
//!
//! Size plan of a flow of `n` packets and `B` bytes: packet 0 is `first` bytes; packets
//! `1..n` are `small` bytes each, plus the extra `E = B - first - (n-1)*small` poured greedily
//! from packet 1 on, filling each to `max`. Invariant (checked by [`Shape::plan`]):
//! `n == 1 ⇒ B == first`, otherwise `0 ≤ E ≤ (n-1)*(max-small)`; every size lies within the
//! protocol's header size and `max ≤ 1500`.

/// Per-flow packet shape. TCP flags: packet 0 carries `first_flags`, the last packet (when
/// `n ≥ 2`) `last_flags`, the ones between `mid_flags`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Shape {
    pub first: u16,
    pub small: u16,
    pub max: u16,
    pub first_flags: u8,
    pub mid_flags: u8,
    pub last_flags: u8,
}

/// The resolved sizes of one flow's packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizePlan {
    pub n: u64,
    pub first: u16,
    pub small: u16,
    pub max: u16,
    /// Packets `1..=full` are `max` bytes.
    pub full: u64,
    /// Packet `full + 1` (if `< n`) carries `small + rem` bytes.
    pub rem: u16,
}

impl Shape {
    /// The union of the flags of `n` packets.
    pub fn flags_union(&self, n: u64) -> u8 {
        let mut f = self.first_flags;
        if n >= 2 {
            f |= self.last_flags;
        }
        if n >= 3 {
            f |= self.mid_flags;
        }
        f
    }

    /// Flags of packet `i` of `n`.
    #[inline]
    pub fn flags_of(&self, i: u64, n: u64) -> u8 {
        if i == 0 {
            self.first_flags
        } else if i + 1 == n {
            self.last_flags
        } else {
            self.mid_flags
        }
    }

    /// The size plan for `n` packets of `bytes` total, or `None` when the shape cannot
    /// produce them (a generator bug: callers treat it as an internal error).
    pub fn plan(&self, n: u64, bytes: u64) -> Option<SizePlan> {
        if n == 0 || self.max > 1500 || self.first > 1500 || self.small > self.max {
            return None;
        }
        if n == 1 {
            return (bytes == self.first as u64).then_some(SizePlan {
                n,
                first: self.first,
                small: self.small,
                max: self.max,
                full: 0,
                rem: 0,
            });
        }
        let base = self.first as u64 + (n - 1) * self.small as u64;
        let extra = bytes.checked_sub(base)?;
        let room = (self.max - self.small) as u64;
        if room == 0 {
            return (extra == 0).then_some(SizePlan {
                n,
                first: self.first,
                small: self.small,
                max: self.max,
                full: 0,
                rem: 0,
            });
        }
        if extra > (n - 1) * room {
            return None;
        }
        Some(SizePlan {
            n,
            first: self.first,
            small: self.small,
            max: self.max,
            full: extra / room,
            rem: (extra % room) as u16,
        })
    }
}

impl SizePlan {
    /// Size of packet `i` (layer-3 bytes).
    #[inline]
    pub fn size(&self, i: u64) -> u16 {
        if i == 0 {
            self.first
        } else if i <= self.full {
            self.max
        } else if i == self.full + 1 {
            self.small + self.rem
        } else {
            self.small
        }
    }

    /// Sum over packets of `max(size, floor)`: what an exporter that counts padded frames
    /// (softflowd: frame minus 14-byte Ethernet header, frames padded to 60) reports with
    /// `floor = 46`.
    pub fn padded_bytes(&self, floor: u16) -> u64 {
        let lift = |s: u16| s.max(floor) as u64;
        let mut total = lift(self.first);
        if self.n == 1 {
            return total;
        }
        let rest = self.n - 1;
        let full = self.full.min(rest);
        total += full * lift(self.max);
        let mut smalls = rest - full;
        if smalls > 0 {
            total += lift(self.small + self.rem);
            smalls -= 1;
        }
        total + smalls * lift(self.small)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_sum(p: &SizePlan, floor: u16) -> (u64, u64) {
        (0..p.n).fold((0, 0), |(a, b), i| {
            let s = p.size(i);
            (a + s as u64, b + s.max(floor) as u64)
        })
    }

    #[test]
    fn plans_add_up_to_the_record_and_respect_the_bounds() {
        let shape = Shape {
            first: 60,
            small: 40,
            max: 1500,
            ..Shape::default()
        };
        for n in 1..40u64 {
            let lo = 60 + (n - 1) * 40;
            let hi = 60 + (n - 1) * 1500;
            for bytes in [lo, lo + 1, (lo + hi) / 2, hi - 1, hi] {
                if n == 1 && bytes != 60 {
                    assert!(shape.plan(n, bytes).is_none());
                    continue;
                }
                let p = shape.plan(n, bytes).unwrap();
                let (sum, padded) = naive_sum(&p, 46);
                assert_eq!(sum, bytes, "n={n}");
                assert_eq!(p.padded_bytes(46), padded, "n={n} bytes={bytes}");
                assert!((0..n).all(|i| (40..=1500).contains(&p.size(i))));
            }
            assert!(shape.plan(n, hi + 1).is_none());
            if n > 1 {
                assert!(shape.plan(n, lo - 1).is_none());
            }
        }
    }

    #[test]
    fn flags_union_matches_the_packets() {
        let s = Shape {
            first_flags: 0x02,
            mid_flags: 0x18,
            last_flags: 0x11,
            ..Shape::default()
        };
        for n in 1..5 {
            let u = (0..n).fold(0, |a, i| a | s.flags_of(i, n));
            assert_eq!(s.flags_union(n), u);
        }
    }
}
