//! LZO1X decompression, for nfcapd files written with `nfdump -z` (nfdump 1.7.1's default
//! compression; nfdump compresses each block with miniLZO's `lzo1x_1`).
//!
//! This module owns only the decoder; it is written from the LZO1X stream format, with a bounds
//! check on every read and write: a corrupt stream gives an [`Error`], never a panic, and the
//! output never grows beyond the caller's limit.
//!
//! ```text
//!  stream:  [first byte > 17: a literal run of (byte - 17)] { instruction } end marker 0x11 0x00 0x00
//!
//!  instruction byte t, by range (after a literal run of 4+ bytes, "state 0"):
//!    0..15   literal run: 3 + t bytes (t = 0: 18 + 255 per zero byte + next byte)
//!            (directly after a run: a 3-byte match at distance 2049 + (t >> 2) + (next << 2))
//!   16..31   M4: distance 16384 + ((t & 8) << 11) + (LE16 >> 2), length 2 + (t & 7 or extended)
//!   32..63   M3: distance 1 + (LE16 >> 2), length 2 + (t & 31 or extended)
//!   64..255  M2: distance 1 + ((t >> 2) & 7) + (next << 3), length (t >> 5) + 1
//!    0..15   after a match (state 1..3): M1, 2 bytes at distance 1 + (t >> 2) + (next << 2)
//!  the low 2 bits of a match's last distance byte = literals (0..3) that follow it.
//! ```

/// Why an LZO1X stream could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ends inside an instruction, literal run or before the end marker.
    #[error("input ends at byte {at} inside an instruction")]
    InputOverrun { at: usize },
    /// A match points before the start of the output.
    #[error("match at input byte {at} looks back {distance} bytes, only {available} written")]
    LookBehind {
        at: usize,
        distance: usize,
        available: usize,
    },
    /// The output would exceed the caller's limit.
    #[error("output exceeds the limit of {limit} bytes")]
    OutputOverrun { limit: usize },
    /// Bytes follow the end marker.
    #[error("{extra} bytes follow the end marker")]
    TrailingInput { extra: usize },
}

/// Input cursor with checked reads.
struct In<'a> {
    b: &'a [u8],
    at: usize,
}

impl In<'_> {
    fn byte(&mut self) -> Result<u8, Error> {
        let v = *self
            .b
            .get(self.at)
            .ok_or(Error::InputOverrun { at: self.at })?;
        self.at += 1;
        Ok(v)
    }
    /// `base` + 255 per zero byte + the first non-zero byte (LZO's extended length).
    fn extended(&mut self, base: usize) -> Result<usize, Error> {
        let mut t = base;
        loop {
            match self.byte()? {
                0 => t += 255,
                b => return Ok(t + b as usize),
            }
            // A run of zeros longer than any real block is corruption.
            if t > 1 << 30 {
                return Err(Error::InputOverrun { at: self.at });
            }
        }
    }
    fn literals(&mut self, n: usize, out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
        if out.len() + n > limit {
            return Err(Error::OutputOverrun { limit });
        }
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or(Error::InputOverrun { at: self.b.len() })?;
        out.extend_from_slice(&self.b[self.at..end]);
        self.at = end;
        Ok(())
    }
}

/// Copies `len` bytes from `distance` back; overlapping copies repeat the pattern, as LZ77 does.
fn copy_match(
    out: &mut Vec<u8>,
    distance: usize,
    len: usize,
    at: usize,
    limit: usize,
) -> Result<(), Error> {
    if distance == 0 || distance > out.len() {
        return Err(Error::LookBehind {
            at,
            distance,
            available: out.len(),
        });
    }
    if out.len() + len > limit {
        return Err(Error::OutputOverrun { limit });
    }
    let start = out.len() - distance;
    if distance >= len {
        out.extend_from_within(start..start + len);
    } else {
        for i in 0..len {
            let b = out[start + i];
            out.push(b);
        }
    }
    Ok(())
}

/// Decompresses one LZO1X stream into `out` (cleared first), producing at most `limit` bytes.
pub fn decompress(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
    out.clear();
    let mut ip = In { b: input, at: 0 };
    // What the decoder expects next. `Run` after an instruction whose trailing-literal bits were
    // zero; `FirstAfterRun` directly after a literal run of 4+ bytes.
    let mut t: usize;
    let mut after_run;
    let first = *input.first().ok_or(Error::InputOverrun { at: 0 })?;
    if first > 17 {
        ip.at = 1;
        let n = first as usize - 17;
        ip.literals(n, out, limit)?;
        if n < 4 {
            // A short first run behaves as the literals that trail a match.
            t = ip.byte()? as usize;
            after_run = false;
        } else {
            t = ip.byte()? as usize;
            after_run = true;
        }
    } else {
        t = ip.byte()? as usize;
        if t < 16 {
            let n = if t == 0 { ip.extended(15)? } else { t };
            ip.literals(n + 3, out, limit)?;
            t = ip.byte()? as usize;
            after_run = true;
        } else {
            after_run = false;
        }
    }
    loop {
        let at = ip.at;
        if t >= 64 {
            let d = 1 + ((t >> 2) & 7) + ((ip.byte()? as usize) << 3);
            copy_match(out, d, (t >> 5) + 1, at, limit)?;
        } else if t >= 32 {
            let len = match t & 31 {
                0 => ip.extended(31)?,
                n => n,
            };
            let lo = ip.byte()? as usize;
            let hi = ip.byte()? as usize;
            let d = 1 + ((lo | hi << 8) >> 2);
            copy_match(out, d, len + 2, at, limit)?;
        } else if t >= 16 {
            let high = (t & 8) << 11;
            let len = match t & 7 {
                0 => ip.extended(7)?,
                n => n,
            };
            let lo = ip.byte()? as usize;
            let hi = ip.byte()? as usize;
            let d = high + ((lo | hi << 8) >> 2);
            if d == 0 {
                // End marker (M4 with distance 0).
                return if ip.at == input.len() {
                    Ok(())
                } else {
                    Err(Error::TrailingInput {
                        extra: input.len() - ip.at,
                    })
                };
            }
            copy_match(out, d + 0x4000, len + 2, at, limit)?;
        } else if after_run {
            let d = 1 + 0x0800 + (t >> 2) + ((ip.byte()? as usize) << 2);
            copy_match(out, d, 3, at, limit)?;
        } else {
            let d = 1 + (t >> 2) + ((ip.byte()? as usize) << 2);
            copy_match(out, d, 2, at, limit)?;
        }
        // The low two bits of the match's last distance byte: literals that follow.
        let trailing = (input[ip.at - 2] & 3) as usize;
        if trailing == 0 {
            t = ip.byte()? as usize;
            if t < 16 {
                let n = if t == 0 { ip.extended(15)? } else { t };
                ip.literals(n + 3, out, limit)?;
                t = ip.byte()? as usize;
                after_run = true;
            } else {
                after_run = false;
            }
        } else {
            ip.literals(trailing, out, limit)?;
            t = ip.byte()? as usize;
            after_run = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        decompress(input, &mut out, 1 << 20).map(|()| out)
    }

    #[test]
    fn streams_table() {
        // (stream, expected output)
        let cases: &[(&[u8], &[u8])] = &[
            // A first literal run of 5, then the end marker.
            (&[22, b'h', b'e', b'l', b'l', b'o', 0x11, 0, 0], b"hello"),
            // "abc" then an M2 match: distance 3, length 6.
            (
                &[20, b'a', b'b', b'c', 0xA8, 0x00, 0x11, 0, 0],
                b"abcabcabc",
            ),
            // A short first run (2 literals) is followed directly by a match instruction:
            // M2 distance 2, length 4, then 1 trailing literal 'z', then the end.
            (&[19, b'x', b'y', 0x65, 0x00, b'z', 0x11, 0, 0], b"xyxyxyz"),
        ];
        for (i, (input, want)) in cases.iter().enumerate() {
            assert_eq!(run(input).as_deref(), Ok(*want), "case {i}");
        }
    }

    #[test]
    fn a_state_zero_run_and_an_m3_match() {
        // t = 1: a run of 4 literals; M3 (t = 32 + 4 → length 6), distance 1 + (0x000C >> 2) = 4.
        let s = [0x01, b'w', b'x', b'y', b'z', 0x24, 0x0C, 0x00, 0x11, 0, 0];
        assert_eq!(run(&s).unwrap(), b"wxyzwxyzwx");
    }

    #[test]
    fn corrupt_streams_give_errors() {
        type Case<'a> = (&'a [u8], fn(&Error) -> bool);
        let cases: &[Case] = &[
            (&[], |e| matches!(e, Error::InputOverrun { .. })),
            (&[22, b'h', b'e'], |e| {
                matches!(e, Error::InputOverrun { .. })
            }),
            (&[20, b'a', b'b', b'c', 0xA8, 0x10, 0x11, 0, 0], |e| {
                matches!(e, Error::LookBehind { .. })
            }),
            (&[22, b'h', b'e', b'l', b'l', b'o', 0x11, 0, 0, 9], |e| {
                matches!(e, Error::TrailingInput { extra: 1 })
            }),
        ];
        for (input, ok) in cases {
            let e = run(input).unwrap_err();
            assert!(ok(&e), "{input:?}: {e}");
        }
        let mut out = Vec::new();
        assert_eq!(
            decompress(&[20, b'a', b'b', b'c', 0xA8, 0x00, 0x11, 0, 0], &mut out, 5),
            Err(Error::OutputOverrun { limit: 5 })
        );
    }

    #[test]
    fn no_panic_on_any_byte_flip() {
        let s = [0x01, b'w', b'x', b'y', b'z', 0x24, 0x0C, 0x00, 0x11, 0, 0];
        for i in 0..s.len() {
            for v in [0u8, 1, 3, 15, 16, 17, 31, 32, 63, 64, 255] {
                let mut m = s;
                m[i] = v;
                let _ = run(&m);
            }
        }
    }
}
