//! Addresses and prefixes.
//!
//! Every address is kept as one `u128`: IPv6 as is, IPv4 in its IPv4-mapped form
//! (`::ffff:a.b.c.d`). One representation keeps records `Copy`, makes hashing and prefix
//! arithmetic the same for both families, and lets a single column hold either.
//!
//! A [`Prefix`] length is counted in the address's own family: `10.0.0.0/8` has length 8,
//! not 104. `Prefix::root_v4()` (`0.0.0.0/0`) and `Prefix::root_v6()` (`::/0`) are distinct.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

const V4_MAPPED: u128 = 0xffff_0000_0000;
const V4_MAPPED_MASK: u128 = !0xffff_ffffu128;

/// An IPv4 or IPv6 address, IPv4 stored IPv4-mapped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr(pub u128);

impl Addr {
    /// The unspecified IPv4 address `0.0.0.0` (mapped), used where a field is absent.
    pub const UNSPECIFIED_V4: Addr = Addr(V4_MAPPED);

    pub const fn from_v4_u32(v: u32) -> Addr {
        Addr(V4_MAPPED | v as u128)
    }
    pub const fn from_v4_octets(o: [u8; 4]) -> Addr {
        Addr::from_v4_u32(u32::from_be_bytes(o))
    }
    pub const fn from_v6_octets(o: [u8; 16]) -> Addr {
        Addr(u128::from_be_bytes(o))
    }
    /// True for IPv4 (IPv4-mapped) addresses.
    pub const fn is_v4(self) -> bool {
        self.0 & V4_MAPPED_MASK == V4_MAPPED
    }
    /// The IPv4 address as a `u32`, if this is IPv4.
    pub const fn v4(self) -> Option<u32> {
        if self.is_v4() {
            Some(self.0 as u32)
        } else {
            None
        }
    }
    /// Bits in this address's family: 32 or 128.
    pub const fn family_bits(self) -> u8 {
        if self.is_v4() { 32 } else { 128 }
    }
    /// True when the address is all zeros in its family (0.0.0.0 or ::).
    pub const fn is_unspecified(self) -> bool {
        self.0 == 0 || self.0 == V4_MAPPED
    }
    pub fn to_ip(self) -> IpAddr {
        match self.v4() {
            Some(v) => IpAddr::V4(Ipv4Addr::from(v)),
            None => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }
    /// The address with only its first `len` bits (in its family) kept.
    pub fn masked(self, len: u8) -> Addr {
        let fam = self.family_bits();
        let len = len.min(fam);
        let host_bits = (fam - len) as u32;
        if host_bits == 0 {
            return self;
        }
        let mask = if host_bits >= 128 {
            0
        } else {
            !0u128 << host_bits
        };
        if self.is_v4() {
            let m4 = mask as u32;
            Addr::from_v4_u32(self.0 as u32 & m4)
        } else {
            Addr(self.0 & mask)
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(v4) => Addr::from_v4_octets(v4.octets()),
            IpAddr::V6(v6) => Addr::from_v6_octets(v6.octets()),
        }
    }
}
impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Addr {
        Addr::from_v4_octets(ip.octets())
    }
}
impl From<Ipv6Addr> for Addr {
    fn from(ip: Ipv6Addr) -> Addr {
        Addr::from_v6_octets(ip.octets())
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_ip(), f)
    }
}
impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not an address or prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrParseError {
    #[error("'{0}' is not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("prefix length '{0}' is not a number")]
    BadLength(String),
    #[error("prefix length {len} is longer than the {bits} bits of the address")]
    TooLong { len: u32, bits: u8 },
}

impl FromStr for Addr {
    type Err = AddrParseError;
    fn from_str(s: &str) -> Result<Addr, AddrParseError> {
        s.parse::<IpAddr>()
            .map(Addr::from)
            .map_err(|_| AddrParseError::BadAddress(s.to_string()))
    }
}

/// An address prefix, `addr/len`, with `len` counted in the address's own family.
/// Invariant: the host bits of `addr` are zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: Addr,
    len: u8,
}

impl Prefix {
    /// The prefix of length `len` containing `addr` (host bits are cleared; `len` is clamped).
    pub fn new(addr: Addr, len: u8) -> Prefix {
        let len = len.min(addr.family_bits());
        Prefix {
            addr: addr.masked(len),
            len,
        }
    }
    pub const fn root_v4() -> Prefix {
        Prefix {
            addr: Addr::UNSPECIFIED_V4,
            len: 0,
        }
    }
    pub const fn root_v6() -> Prefix {
        Prefix {
            addr: Addr(0),
            len: 0,
        }
    }
    /// A host prefix (/32 or /128).
    pub fn host(addr: Addr) -> Prefix {
        Prefix {
            addr,
            len: addr.family_bits(),
        }
    }
    pub const fn addr(self) -> Addr {
        self.addr
    }
    pub const fn len(self) -> u8 {
        self.len
    }
    pub const fn is_v4(self) -> bool {
        self.addr.is_v4()
    }
    /// True for a zero-length prefix (a family's root); named for clippy's `len`/`is_empty` pair.
    pub const fn is_empty(self) -> bool {
        self.len == 0
    }
    pub fn contains(self, a: Addr) -> bool {
        a.is_v4() == self.addr.is_v4() && a.masked(self.len) == self.addr
    }
    pub fn contains_prefix(self, other: Prefix) -> bool {
        other.len >= self.len && self.contains(other.addr)
    }
    /// The enclosing prefix one bit shorter, or `None` at the root.
    pub fn parent(self) -> Option<Prefix> {
        (self.len > 0).then(|| Prefix::new(self.addr, self.len - 1))
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}
impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Prefix {
    type Err = AddrParseError;
    /// `a.b.c.d/n`, `x::/n`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Prefix, AddrParseError> {
        match s.split_once('/') {
            None => Ok(Prefix::host(s.parse()?)),
            Some((a, l)) => {
                let addr: Addr = a.parse()?;
                let len: u32 = l
                    .parse()
                    .map_err(|_| AddrParseError::BadLength(l.to_string()))?;
                let bits = addr.family_bits();
                if len > bits as u32 {
                    return Err(AddrParseError::TooLong { len, bits });
                }
                Ok(Prefix::new(addr, len as u8))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trips_through_the_mapped_form() {
        let a: Addr = "10.1.2.3".parse().unwrap();
        assert!(a.is_v4());
        assert_eq!(a.v4(), Some(0x0a01_0203));
        assert_eq!(a.to_string(), "10.1.2.3");
        let b: Addr = "2001:db8::1".parse().unwrap();
        assert!(!b.is_v4());
        assert_eq!(b.to_string(), "2001:db8::1");
    }

    #[test]
    fn prefixes_mask_and_contain() {
        let p: Prefix = "10.0.0.77/24".parse().unwrap();
        assert_eq!(p.to_string(), "10.0.0.0/24");
        assert!(p.contains("10.0.0.1".parse().unwrap()));
        assert!(!p.contains("10.0.1.1".parse().unwrap()));
        assert!(!p.contains("::ffff:10.0.0.1:0".parse().unwrap_or(Addr(0))));
        let root = Prefix::root_v4();
        assert!(root.contains("1.2.3.4".parse().unwrap()));
        assert!(!root.contains("2001:db8::1".parse().unwrap()));
        assert_eq!(
            Prefix::new("10.0.0.3".parse().unwrap(), 31).to_string(),
            "10.0.0.2/31"
        );
        let v6: Prefix = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert_eq!(v6.parent().unwrap().to_string(), "2001:db8::/31");
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert_eq!(Prefix::root_v4().parent(), None);
    }
}
