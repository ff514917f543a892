//! The generator's own random numbers: a seeded xoshiro256++ stream, the few distributions the
//! traffic model needs (uniform, exponential, log-uniform, bounded Pareto, Zipf-like ranks) and
//! bijective permutations used to draw *distinct* addresses and (address, port) pairs without
//! remembering the ones already drawn.
//!
//! Why not `rand`: the output must stay byte-identical for a seed across dependency upgrades
//! (tests and benchmarks pin totals to a seed), and the hot path wants a handful of inlined
//! instructions per draw.

/// SplitMix64 step: used to expand a seed and as a cheap stateless hash.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256++ (Blackman & Vigna). Invariant: the state is never all zero (SplitMix64 of any
/// seed cannot produce four zero words).
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A stream for `seed`; `stream` separates independent streams of one seed (background
    /// traffic, each event) so that adding an event does not change the others.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut x = seed ^ mix64(stream.wrapping_add(0x5eed));
        let mut s = [0u64; 4];
        for w in &mut s {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *w = mix64(x);
        }
        Rng { s }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = self.s;
        let result = (s0.wrapping_add(s3)).rotate_left(23).wrapping_add(s0);
        let t = s1 << 17;
        let mut s = [s0, s1, s2 ^ s0, s3 ^ s1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        self.s = s;
        result
    }

    /// Uniform in [0, 1) with 53 bits.
    #[inline]
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    #[inline]
    pub fn f64_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) (Lemire's multiply-shift; the bias is below 2^-64 * n).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform integer in [lo, hi] (inclusive).
    #[inline]
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Exponential with the given mean.
    #[inline]
    pub fn exp(&mut self, mean: f64) -> f64 {
        -self.f64_open0().ln() * mean
    }

    /// Log-uniform in [lo, hi): scale-free durations and gaps.
    #[inline]
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo * (self.f64() * (hi / lo).ln()).exp()
    }

    /// Pareto with scale 1 and shape `alpha`, truncated (by inversion) to [1, cap].
    #[inline]
    pub fn pareto(&mut self, alpha: f64, cap: f64) -> f64 {
        // Inverse CDF of the truncated Pareto: F(x) = (1 - x^-a) / (1 - cap^-a).
        let tail = cap.powf(-alpha);
        let u = self.f64();
        (-(1.0 - u * (1.0 - tail)).ln() / alpha).exp()
    }

    /// A rank in [0, n) with P(rank = k) roughly proportional to 1/(k+1)^s (the continuous
    /// bounded power law, inverted): rank 0 is the most popular.
    #[inline]
    pub fn zipf(&mut self, n: u64, s: f64) -> u64 {
        let u = self.f64();
        let nf = n as f64 + 1.0;
        let x = if (s - 1.0).abs() < 1e-9 {
            (u * nf.ln()).exp()
        } else {
            let e = 1.0 - s;
            (u * (nf.powf(e) - 1.0) + 1.0).powf(1.0 / e)
        };
        ((x as u64).max(1) - 1).min(n - 1)
    }
}

/// Zipf-like ranks in [0, n) with P(rank = k) roughly ∝ 1/(k+1)^s, its constants computed
/// once: one `ln` and one `exp` per draw. Same law as [`Rng::zipf`].
#[derive(Clone, Copy, Debug)]
pub struct Zipf {
    n: u64,
    /// s == 1: ln(n+1); otherwise (n+1)^(1-s) - 1.
    a: f64,
    /// 1 / (1 - s), or 0 for s == 1.
    inv_e: f64,
}

impl Zipf {
    /// Invariant: `n >= 1`.
    pub fn new(n: u64, s: f64) -> Zipf {
        let nf = n as f64 + 1.0;
        if (s - 1.0).abs() < 1e-9 {
            Zipf {
                n,
                a: nf.ln(),
                inv_e: 0.0,
            }
        } else {
            let e = 1.0 - s;
            Zipf {
                n,
                a: nf.powf(e) - 1.0,
                inv_e: 1.0 / e,
            }
        }
    }

    #[inline]
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.f64();
        let x = if self.inv_e == 0.0 {
            (u * self.a).exp()
        } else {
            ((u * self.a).ln_1p() * self.inv_e).exp()
        };
        ((x as u64).max(1) - 1).min(self.n - 1)
    }
}

/// A bijection of [0, n) onto itself, keyed: draws distinct values by index without memory.
///
/// Built as an invertible mix on the smallest power-of-two domain covering `n`, with cycle
/// walking (values ≥ n are mapped again), so every index in [0, n) maps to a distinct value
/// in [0, n). The expected number of rounds per call is below 2.
#[derive(Clone, Copy, Debug)]
pub struct Permutation {
    n: u64,
    bits: u32,
    mask: u64,
    keys: [u64; 3],
}

impl Permutation {
    /// Invariant: `n >= 1`.
    pub fn new(n: u64, key: u64) -> Permutation {
        assert!(n >= 1, "a permutation needs a non-empty domain");
        let bits = (64 - (n - 1).leading_zeros()).max(2);
        let mask = if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let keys = [mix64(key) | 1, mix64(key ^ 1), mix64(key ^ 2) | 1];
        Permutation {
            n,
            bits,
            mask,
            keys,
        }
    }

    #[inline]
    fn round(&self, mut x: u64) -> u64 {
        // Each step is a bijection on `bits`-bit words: odd multiply, add, xor-shift right.
        let h = self.bits / 2;
        x = x.wrapping_mul(self.keys[0]) & self.mask;
        x = (x.wrapping_add(self.keys[1])) & self.mask;
        x ^= x >> h;
        x = x.wrapping_mul(self.keys[2]) & self.mask;
        x ^= x >> h.max(1).min(self.bits - 1);
        x
    }

    /// The image of `i` (invariant: `i < n`).
    #[inline]
    pub fn apply(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        let mut x = self.round(i);
        while x >= self.n {
            x = self.round(x);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_deterministic_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 0).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 0).next_u64(), Rng::new(7, 1).next_u64());
        assert_ne!(Rng::new(7, 0).next_u64(), Rng::new(8, 0).next_u64());
    }

    #[test]
    fn uniform_draws_have_the_right_mean() {
        let mut r = Rng::new(1, 1);
        let n = 200_000;
        let mean = (0..n).map(|_| r.f64()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "{mean}");
        let mean_exp = (0..n).map(|_| r.exp(3.0)).sum::<f64>() / n as f64;
        assert!((mean_exp - 3.0).abs() < 0.05, "{mean_exp}");
        assert!((0..n).all(|_| r.below(10) < 10));
    }

    #[test]
    fn pareto_tail_follows_its_shape() {
        let mut r = Rng::new(2, 2);
        let n = 400_000;
        let over10 = (0..n).filter(|_| r.pareto(1.2, 1e9) >= 10.0).count() as f64 / n as f64;
        let expected = 10f64.powf(-1.2);
        assert!((over10 - expected).abs() < 0.003, "{over10} vs {expected}");
    }

    #[test]
    fn zipf_ranks_are_heavy_headed_and_in_range() {
        let mut r = Rng::new(3, 3);
        let n = 100_000;
        let mut counts = vec![0u32; 1000];
        for _ in 0..n {
            counts[r.zipf(1000, 1.0) as usize] += 1;
        }
        // P(rank 0) = ln 2 / ln 1001 ≈ 0.100 for the continuous law.
        let p0 = counts[0] as f64 / n as f64;
        assert!((p0 - 2f64.ln() / 1001f64.ln()).abs() < 0.01, "{p0}");
        assert!(counts[0] > counts[10] && counts[10] > counts[500]);
    }

    #[test]
    fn the_precomputed_zipf_draws_the_same_law() {
        for s in [0.9, 1.0, 1.3] {
            let (mut a, mut b) = (Rng::new(4, 4), Rng::new(4, 4));
            let z = Zipf::new(5000, s);
            for _ in 0..1000 {
                let (x, y) = (a.zipf(5000, s) as i64, z.sample(&mut b) as i64);
                // Same uniform, same inverse CDF up to float rounding.
                assert!((x - y).abs() <= 1, "s={s}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn permutations_are_bijections() {
        for n in [1u64, 2, 3, 7, 100, 1000, 4096, 5000] {
            let p = Permutation::new(n, n * 31);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let v = p.apply(i);
                assert!(v < n);
                assert!(!seen[v as usize], "n={n} repeats {v}");
                seen[v as usize] = true;
            }
        }
    }
}
