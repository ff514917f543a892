//! Cuts one fuzz input into datagrams: each starts with a 2-byte big-endian length; the
//! last takes what is left.

pub fn split(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() > 2 && out.len() < 64 {
        let n = (u16::from_be_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
        out.push(&data[2..2 + n]);
        data = &data[2 + n..];
    }
    if !data.is_empty() {
        out.push(data);
    }
    out
}
