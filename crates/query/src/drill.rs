//! Drill-down: the filter clause that narrows a selection to one key of a result.
//!
//! Every interface drills the same way: the console's `drill 3`, a click in the web UI and a
//! `drill` field in JSON rows all come from here. A clause selects exactly the records that the
//! analysis counted under the key — for a prefix-map key that means the prefixes the key owns
//! minus the more specific prefixes that belong to someone else (longest-prefix match), and
//! for an application port class a port range.
//!
//! Invariant: `narrow(f, clause_of(key))` parsed with the filter language selects, among the
//! records `f` selects, exactly those the analysis attributed to `key` or below it.

use crate::run::{AnyKey, Dim, KeySpec};
use flowdrill_analysis::hhh::{AppKey, FIRST_HIGH_PORT, IpKey, MapKey, PortSide, PrefixMap};
use flowdrill_model::{Addr, Field, Kind, Prefix, proto};

/// The filter language's name of a field's side: `src` or `dst`.
fn side_word(field: Field) -> &'static str {
    if matches!(field, Field::DstAddr | Field::DstPort | Field::DstAs) {
        "dst"
    } else {
        "src"
    }
}

fn proto_clause(p: u8) -> String {
    let name = proto::name(p).to_ascii_lowercase();
    // Names the filter language reads back as the same number; otherwise the number.
    if proto::from_name(&name) == Some(p) {
        format!("proto {name}")
    } else {
        format!("proto {p}")
    }
}

fn addr_clause(field: Field, key: Prefix) -> String {
    let full = if key.is_v4() { 32 } else { 128 };
    match field {
        Field::SrcAddr | Field::DstAddr if key.len() == full => {
            format!("{} ip {}", side_word(field), key.addr())
        }
        Field::SrcAddr | Field::DstAddr => format!("{} net {key}", side_word(field)),
        _ if key.len() == full => format!("{} = {}", field.name(), key.addr()),
        _ => format!("{} = {key}", field.name()),
    }
}

/// The clause for a key of `top`/`compare` grouped by `spec`.
pub fn key_clause(spec: &KeySpec, key: u128) -> Option<String> {
    let f = spec.field;
    Some(match f {
        _ if f.info().kind == Kind::Address => {
            let a = Addr(key);
            let len = if a.is_v4() { spec.v4_len } else { spec.v6_len };
            addr_clause(f, Prefix::new(a, len))
        }
        Field::Proto => proto_clause(key as u8),
        Field::SrcPort | Field::DstPort => format!("{} port {key}", side_word(f)),
        Field::SrcAs | Field::DstAs => format!("{} as {key}", side_word(f)),
        Field::InIf => format!("in if {key}"),
        Field::OutIf => format!("out if {key}"),
        Field::TimeStart | Field::TimeEnd => return None,
        _ => format!("{} = {key}", f.name()),
    })
}

/// The clause for a key of a hierarchy (`hhh`, an axis of `hhh2`); `None` for the root, which
/// does not narrow.
pub fn dim_clause(dim: &Dim, key: &AnyKey) -> Option<String> {
    match (dim, key) {
        (_, AnyKey::Ip(IpKey::Any)) => None,
        (Dim::Addr { field, .. } | Dim::Map { field, .. }, AnyKey::Ip(IpKey::Net(p))) => {
            Some(addr_clause(*field, *p))
        }
        (Dim::App(_), AnyKey::App(k)) => app_clause(k),
        (Dim::Map { field, map }, AnyKey::Map(k)) => map_clause(*field, map, k),
        _ => None,
    }
}

fn port_word(side: PortSide) -> &'static str {
    match side {
        PortSide::Source => "src port",
        PortSide::Destination => "dst port",
    }
}

fn app_clause(k: &AppKey) -> Option<String> {
    Some(match *k {
        AppKey::Root => return None,
        AppKey::Proto(p) => proto_clause(p),
        AppKey::Class { proto, side, high } => {
            let cmp = if high { ">=" } else { "<" };
            format!(
                "{} and {} {cmp} {FIRST_HIGH_PORT}",
                proto_clause(proto),
                port_word(side)
            )
        }
        AppKey::Port { proto, side, port } => {
            format!("{} and {} {port}", proto_clause(proto), port_word(side))
        }
        AppKey::Flow {
            proto,
            sport,
            dport,
        } => format!(
            "{} and src port {sport} and dst port {dport}",
            proto_clause(proto)
        ),
    })
}

/// Records whose longest match in `map` is one of the prefixes `owned` selects.
fn map_clause(field: Field, map: &PrefixMap, k: &MapKey) -> Option<String> {
    let owned = |p: &Prefix, asn: u32, org: &str| match k {
        MapKey::Root => true,
        MapKey::Org(o) => **o == *org,
        MapKey::As(a) => *a == asn,
        MapKey::Net(n) => n == p,
        MapKey::Unknown => false,
    };
    if matches!(k, MapKey::Root) {
        return None;
    }
    let mut yes = Vec::new();
    let mut no = Vec::new();
    for (p, asn, org) in map.entries() {
        if owned(&p, asn, &org) {
            yes.push(p);
        } else {
            no.push(p);
        }
    }
    let word = format!("{} ip", side_word(field));
    let list = |v: &[Prefix]| {
        let mut v: Vec<Prefix> = v.to_vec();
        v.sort_by_key(|p| (!p.is_v4(), p.addr().0, p.len()));
        v.iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    if matches!(k, MapKey::Unknown) {
        return Some(format!("not {word} in [{}]", list(&no)));
    }
    if yes.is_empty() {
        return Some("not any".to_string());
    }
    // More specific prefixes of other owners inside an owned one take their addresses away.
    let carved: Vec<Prefix> = no
        .into_iter()
        .filter(|q| yes.iter().any(|p| p.contains_prefix(*q) && p != q))
        .collect();
    let mut s = format!("{word} in [{}]", list(&yes));
    if !carved.is_empty() {
        s = format!("{s} and not {word} in [{}]", list(&carved));
    }
    Some(s)
}

/// `filter` narrowed by `clause`: both must hold.
pub fn narrow(filter: &str, clause: &str) -> String {
    let f = filter.trim();
    if f.is_empty() || f == "any" {
        clause.to_string()
    } else {
        format!("({f}) and ({clause})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Dim, KeySpec};
    use flowdrill_analysis::hhh::{IpLevels, PrefixMapRow};
    use std::sync::Arc;

    fn pfx(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn top_keys_become_the_filter_words_users_know() {
        let src24 = KeySpec::parse("srcip/24").unwrap();
        assert_eq!(
            key_clause(&src24, pfx("10.1.2.77/32").addr().0).unwrap(),
            "src net 10.1.2.0/24".to_string()
        );
        let dst = KeySpec::parse("dstip").unwrap();
        assert_eq!(
            key_clause(&dst, pfx("2001:db8::1/128").addr().0).unwrap(),
            "dst ip 2001:db8::1"
        );
        let port = KeySpec::parse("dstport").unwrap();
        assert_eq!(key_clause(&port, 443).unwrap(), "dst port 443");
        let pr = KeySpec::parse("proto").unwrap();
        assert_eq!(key_clause(&pr, 6).unwrap(), "proto tcp");
        assert_eq!(key_clause(&pr, 253).unwrap(), "proto 253");
        let inif = KeySpec::parse("inif").unwrap();
        assert_eq!(key_clause(&inif, 3).unwrap(), "in if 3");
    }

    #[test]
    fn application_keys_narrow_to_their_ports() {
        let d = Dim::App(PortSide::Source);
        let class = AnyKey::App(AppKey::Class {
            proto: 17,
            side: PortSide::Source,
            high: true,
        });
        assert_eq!(
            dim_clause(&d, &class).unwrap(),
            "proto udp and src port >= 1024"
        );
        let flow = AnyKey::App(AppKey::Flow {
            proto: 6,
            sport: 80,
            dport: 5000,
        });
        assert_eq!(
            dim_clause(&d, &flow).unwrap(),
            "proto tcp and src port 80 and dst port 5000"
        );
        assert_eq!(dim_clause(&d, &AnyKey::App(AppKey::Root)), None);
    }

    #[test]
    fn prefix_map_keys_carve_out_other_owners_more_specific_prefixes() {
        let rows = [
            ("10.0.0.0/8", 1, "Big"),
            ("10.5.0.0/16", 2, "Small"),
            ("192.0.2.0/24", 1, "Big"),
        ]
        .map(|(p, a, o)| PrefixMapRow {
            prefix: pfx(p),
            asn: a,
            org: o.to_string(),
        });
        let map = PrefixMap::new(&rows).unwrap();
        let d = Dim::Map {
            field: Field::DstAddr,
            map,
        };
        assert_eq!(
            dim_clause(&d, &AnyKey::Map(MapKey::Org(Arc::from("Big")))).unwrap(),
            "dst ip in [10.0.0.0/8 192.0.2.0/24] and not dst ip in [10.5.0.0/16]"
        );
        assert_eq!(
            dim_clause(&d, &AnyKey::Map(MapKey::As(2))).unwrap(),
            "dst ip in [10.5.0.0/16]"
        );
        assert_eq!(
            dim_clause(&d, &AnyKey::Map(MapKey::Unknown)).unwrap(),
            "not dst ip in [10.0.0.0/8 10.5.0.0/16 192.0.2.0/24]"
        );
        let src = Dim::Addr {
            field: Field::SrcAddr,
            levels: IpLevels::default(),
        };
        assert_eq!(dim_clause(&src, &AnyKey::Ip(IpKey::Any)), None);
    }

    #[test]
    fn narrowing_keeps_the_old_filter_and_adds_the_clause() {
        assert_eq!(narrow("", "proto tcp"), "proto tcp");
        assert_eq!(narrow("any", "proto tcp"), "proto tcp");
        assert_eq!(
            narrow("src port 53 or dst port 53", "proto udp"),
            "(src port 53 or dst port 53) and (proto udp)"
        );
    }
}
