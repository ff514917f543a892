//! IP protocol numbers and their names, as nfdump and the filter language spell them.

pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const GRE: u8 = 47;
pub const ESP: u8 = 50;
pub const ICMP6: u8 = 58;
pub const SCTP: u8 = 132;

const NAMES: &[(u8, &str)] = &[
    (1, "ICMP"),
    (2, "IGMP"),
    (4, "IPIP"),
    (6, "TCP"),
    (17, "UDP"),
    (41, "IPv6"),
    (47, "GRE"),
    (50, "ESP"),
    (51, "AH"),
    (58, "ICMP6"),
    (89, "OSPF"),
    (103, "PIM"),
    (112, "VRRP"),
    (132, "SCTP"),
];

/// The protocol's usual name, or its number.
pub fn name(p: u8) -> std::borrow::Cow<'static, str> {
    match NAMES.iter().find(|(n, _)| *n == p) {
        Some((_, s)) => (*s).into(),
        None => p.to_string().into(),
    }
}

/// A protocol by name (case-insensitive) or number.
pub fn from_name(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return Some(n);
    }
    let s = s.to_ascii_uppercase();
    let s = if s == "ICMPV6" {
        "ICMP6".to_string()
    } else {
        s
    };
    NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(&s))
        .map(|(p, _)| *p)
}

/// True for protocols whose records carry ports.
pub fn has_ports(p: u8) -> bool {
    matches!(
        p,
        TCP | UDP | SCTP | 33 /* DCCP */ | 136 /* UDP-Lite */
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_round_trip() {
        assert_eq!(super::name(6), "TCP");
        assert_eq!(super::name(250), "250");
        assert_eq!(super::from_name("udp"), Some(17));
        assert_eq!(super::from_name("icmpv6"), Some(58));
        assert_eq!(super::from_name("99"), Some(99));
        assert_eq!(super::from_name("nope"), None);
    }
}
