//! Table-driven cases in the style of nfdump's `nftest.c`: one line per case, (record,
//! expression, expected match). Each case is checked four ways: the simplified predicate row-wise
//! and column-wise, the unsimplified tree row-wise, and the canonical text form read back.

use flowdrill_filter::{Expr, parse, parse_unsimplified};
use flowdrill_model::{FlowRecord, RecordColumns};

/// The records the cases name. Times are 2024-01-01 00:00:00 UTC (+1.5 s).
fn records() -> Vec<(&'static str, FlowRecord)> {
    let a = |s: &str| s.parse().unwrap();
    let t0 = 1_704_067_200_000;
    let base = FlowRecord {
        time_start: t0,
        time_end: t0 + 1500,
        sampling_rate: 1,
        exporter: a("127.0.0.1"),
        next_hop: a("0.0.0.0"),
        ..Default::default()
    };
    vec![
        // TCP over IPv4, SYN+ACK+PSH, AS numbers, interfaces, masks, a next hop.
        (
            "t4",
            FlowRecord {
                src_addr: a("192.168.1.10"),
                dst_addr: a("10.0.0.5"),
                src_port: 51515,
                dst_port: 443,
                proto: 6,
                tcp_flags: 0x1a,
                tos: 0,
                packets: 10,
                bytes: 1500,
                in_if: 3,
                out_if: 5,
                src_as: 65000,
                dst_as: 15169,
                src_mask: 24,
                dst_mask: 8,
                next_hop: a("192.168.1.1"),
                domain: 0x0102,
                ..base.clone()
            },
        ),
        // UDP over IPv6 (mDNS), ToS 184, sampled 1:100.
        (
            "u6",
            FlowRecord {
                src_addr: a("2001:db8::1"),
                dst_addr: a("ff02::fb"),
                src_port: 5353,
                dst_port: 5353,
                proto: 17,
                tos: 184,
                packets: 1,
                bytes: 80,
                in_if: 7,
                src_as: 0,
                dst_as: 0,
                next_hop: a("::"),
                sampling_rate: 100,
                ..base.clone()
            },
        ),
        // ICMP echo request: type 8 code 0 in the destination port (8*256).
        (
            "i4",
            FlowRecord {
                src_addr: a("10.1.2.3"),
                dst_addr: a("8.8.8.8"),
                dst_port: 2048,
                proto: 1,
                packets: 1,
                bytes: 84,
                ..base.clone()
            },
        ),
        // A lone SYN to SSH on a 10.10.10.0/24 host, 46-byte padded frame.
        (
            "syn",
            FlowRecord {
                src_addr: a("203.0.113.9"),
                dst_addr: a("10.10.10.10"),
                src_port: 40000,
                dst_port: 22,
                proto: 6,
                tcp_flags: 0x02,
                packets: 1,
                bytes: 46,
                ..base.clone()
            },
        ),
        // ICMPv6 neighbour solicitation: type 135 code 0.
        (
            "i6",
            FlowRecord {
                src_addr: a("fe80::1"),
                dst_addr: a("ff02::1:ff00:1"),
                dst_port: 135 * 256,
                proto: 58,
                packets: 2,
                bytes: 144,
                next_hop: a("::"),
                ..base.clone()
            },
        ),
        // GRE with large counters (suffix tests), no ports, no flags.
        (
            "gre",
            FlowRecord {
                src_addr: a("198.51.100.1"),
                dst_addr: a("198.51.100.2"),
                proto: 47,
                packets: 3_000_000,
                bytes: 5_000_000_000,
                in_if: 5,
                out_if: 3,
                ..base.clone()
            },
        ),
        // TCP with ECN flags: CWR|ECE|SYN|ACK, from an IPv4-mapped-looking v6 peer.
        (
            "ece",
            FlowRecord {
                src_addr: a("2001:db8:0:1::7"),
                dst_addr: a("2001:db8:0:2::8"),
                src_port: 443,
                dst_port: 60000,
                proto: 6,
                tcp_flags: 0xd2,
                tos: 2,
                packets: 1000,
                bytes: 1_000_000,
                ..base.clone()
            },
        ),
    ]
}

/// (record, expression, expected match)
#[rustfmt::skip]
const CASES: &[(&str, &str, bool)] = &[
    // any, empty, constants
    ("t4", "any", true),
    ("u6", "any", true),
    ("t4", "", true),
    ("t4", "# only a comment", true),
    ("t4", "not any", false),
    ("t4", "!any", false),
    // proto
    ("t4", "proto tcp", true),
    ("t4", "proto TCP", true),
    ("t4", "PROTO tcp", true),
    ("t4", "proto 6", true),
    ("t4", "proto udp", false),
    ("u6", "proto udp", true),
    ("u6", "proto 17", true),
    ("i4", "proto icmp", true),
    ("i4", "proto 1", true),
    ("i6", "proto icmp6", true),
    ("i6", "proto icmpv6", true),
    ("i6", "proto 58", true),
    ("i6", "proto icmp", false),
    ("gre", "proto gre", true),
    ("gre", "proto 47", true),
    ("gre", "proto esp", false),
    ("t4", "proto = 6", true),
    ("t4", "proto != 6", false),
    ("t4", "proto < 17", true),
    ("gre", "proto > 17", true),
    ("t4", "proto 0x6", true),
    ("t4", "not proto tcp", false),
    ("u6", "not proto tcp", true),
    // ports
    ("t4", "port 443", true),
    ("t4", "port 51515", true),
    ("t4", "port 80", false),
    ("t4", "dst port 443", true),
    ("t4", "src port 443", false),
    ("t4", "src port 51515", true),
    ("t4", "dst port 51515", false),
    ("t4", "src or dst port 443", true),
    ("t4", "dst or src port 443", true),
    ("t4", "src and dst port 443", false),
    ("u6", "src and dst port 5353", true),
    ("u6", "dst and src port 5353", true),
    ("t4", "port > 1023", true),
    ("t4", "dst port > 1023", false),
    ("t4", "dst port < 1024", true),
    ("t4", "dst port <= 443", true),
    ("t4", "dst port >= 443", true),
    ("t4", "dst port >= 444", false),
    ("t4", "dst port gt 442", true),
    ("t4", "dst port lt 443", false),
    ("t4", "dst port le 443", true),
    ("t4", "dst port ge 443", true),
    ("t4", "dst port eq 443", true),
    ("t4", "dst port == 443", true),
    ("t4", "dst port = 443", true),
    ("t4", "dst port != 443", false),
    ("t4", "dst port <> 443", false),
    ("t4", "dst port ne 80", true),
    ("t4", "port in [80 443]", true),
    ("t4", "port in [80, 443]", true),
    ("t4", "port in [ 80 , 8080 ]", false),
    ("t4", "dst port in [400-500]", true),
    ("t4", "dst port in [1-442, 444-65535]", false),
    ("t4", "src port in [51515]", true),
    ("t4", "dst port 0x1bb", true),
    ("t4", "dst port 1k", false),
    ("u6", "port 5353", true),
    ("syn", "dst port 22 and src port > 1023", true),
    // ports on ICMP: the destination port carries type*256+code, as nfdump
    ("i4", "port 0", true),
    ("i4", "dst port 2048", true),
    ("i4", "src port 0", true),
    ("i4", "dst port 0", false),
    ("i6", "dst port 34560", true),
    ("gre", "port 0", true),
    ("gre", "src and dst port 0", true),
    // icmp-type / icmp-code
    ("i4", "icmp-type 8", true),
    ("i4", "icmp-type 0", false),
    ("i4", "icmp-code 0", true),
    ("i4", "icmp-code 3", false),
    ("i6", "icmp-type 135", true),
    ("i6", "icmp-code 0", true),
    ("t4", "icmp-type 1", false),
    ("t4", "icmp-code 187", false),
    ("gre", "icmp-code 0", false),
    // host / ip
    ("t4", "host 192.168.1.10", true),
    ("t4", "ip 192.168.1.10", true),
    ("t4", "host 10.0.0.5", true),
    ("t4", "host 10.0.0.6", false),
    ("t4", "src host 192.168.1.10", true),
    ("t4", "dst host 192.168.1.10", false),
    ("t4", "dst ip 10.0.0.5", true),
    ("t4", "src or dst host 10.0.0.5", true),
    ("t4", "src and dst host 10.0.0.5", false),
    ("u6", "host 2001:db8::1", true),
    ("u6", "host 2001:DB8::1", true),
    ("u6", "host 2001:db8:0:0:0:0:0:1", true),
    ("u6", "dst host ff02::fb", true),
    ("u6", "src host ff02::fb", false),
    ("u6", "host 0.0.0.0", false),
    ("t4", "host ::ffff:192.168.1.10", true),
    ("t4", "ip in [10.0.0.5 1.1.1.1]", true),
    ("t4", "ip in [10.0.0.0/24]", true),
    ("t4", "ip in [10.0.1.0/24, 192.168.2.0/24]", false),
    ("t4", "src ip in [192.168.1.0/24]", true),
    ("t4", "dst ip in [192.168.1.0/24]", false),
    ("u6", "ip in [2001:db8::/32]", true),
    ("u6", "ip in [2001:db9::/32 10.0.0.0/8]", false),
    ("u6", "src ip in [2001:db8::1, 2001:db8::2]", true),
    // net
    ("t4", "net 10.0.0.0/8", true),
    ("t4", "net 10.0.0.0/16", true),
    ("t4", "net 10.0.0.0/30", false),
    ("t4", "net 10.0.0.4/30", true),
    ("t4", "net 10.0.0.7/30", true),
    ("t4", "src net 10.0.0.0/8", false),
    ("t4", "dst net 10.0.0.0/8", true),
    ("t4", "src net 192.168.0.0/16", true),
    ("t4", "src and dst net 192.168.0.0/16", false),
    ("t4", "src or dst net 192.168.0.0/16", true),
    ("t4", "net 192.168/16", true),
    ("t4", "net 192.168.1/24", true),
    ("t4", "net 10/8", true),
    ("t4", "net 172.16/12", false),
    ("t4", "net 10.0.0.0 255.0.0.0", true),
    ("t4", "src net 192.168.1.0 255.255.255.0", true),
    ("t4", "src net 192.168.2.0 255.255.255.0", false),
    ("t4", "net 10.0.0.0 / 8", true),
    ("t4", "net 0.0.0.0/0", true),
    ("t4", "net ::/0", false),
    ("u6", "net ::/0", true),
    ("u6", "net 0.0.0.0/0", false),
    ("u6", "net 2001:db8::/32", true),
    ("u6", "src net 2001:db8::/32", true),
    ("u6", "dst net 2001:db8::/32", false),
    ("u6", "dst net ff00::/8", true),
    ("u6", "net 2001:db8::/128", false),
    ("u6", "net 2001:db8::1/128", true),
    ("i6", "net fe80::/10", true),
    ("i6", "src net fe80::/64", true),
    ("i6", "net fe80::/16 and net ff02::/16", true),
    ("t4", "not net 10.0.0.0/8", false),
    ("syn", "not net 192.168.0.0/16", true),
    // address families
    ("t4", "inet", true),
    ("t4", "ipv4", true),
    ("t4", "inet6", false),
    ("t4", "ipv6", false),
    ("u6", "inet6", true),
    ("u6", "ipv6", true),
    ("u6", "inet", false),
    ("ece", "ipv6 and proto tcp", true),
    ("i4", "not inet6", true),
    // TCP flags: letters mean all of them, and imply proto tcp
    ("t4", "flags S", true),
    ("t4", "flags A", true),
    ("t4", "flags P", true),
    ("t4", "flags SA", true),
    ("t4", "flags AS", true),
    ("t4", "flags SAP", true),
    ("t4", "flags F", false),
    ("t4", "flags R", false),
    ("t4", "flags U", false),
    ("t4", "flags SF", false),
    ("t4", "flags sa", true),
    ("t4", "flags E", false),
    ("t4", "flags C", false),
    ("t4", "flags X", false),
    ("t4", "flags 26", true),
    ("t4", "flags 0x1a", true),
    ("t4", "flags = 2", false),
    ("t4", "flags > 16", true),
    ("t4", "flags < 16", false),
    ("t4", "not flags A", false),
    ("syn", "flags S", true),
    ("syn", "flags S and not flags A", true),
    ("syn", "proto tcp and flags S and not flags A", true),
    ("syn", "flags 2", true),
    ("syn", "flags SA", false),
    ("ece", "flags E", true),
    ("ece", "flags C", true),
    ("ece", "flags EC", true),
    ("ece", "flags ECSA", true),
    ("ece", "flags ECSAF", false),
    ("ece", "flags > 63", true),
    ("u6", "flags S", false),
    ("u6", "not flags S", true),
    ("u6", "not flags A", true),
    ("u6", "flags 0", false),
    ("gre", "flags 0", false),
    ("gre", "not flags 0", true),
    // counters and suffixes (x1000, as nfdump)
    ("t4", "bytes 1500", true),
    ("t4", "bytes = 1500", true),
    ("t4", "bytes > 1k", true),
    ("t4", "bytes > 1K", true),
    ("t4", "bytes < 1k", false),
    ("t4", "bytes >= 1500", true),
    ("t4", "bytes > 1500", false),
    ("t4", "bytes > 1499", true),
    ("t4", "bytes < 2k", true),
    ("t4", "bytes > 1M", false),
    ("ece", "bytes 1M", true),
    ("ece", "bytes = 1m", true),
    ("ece", "bytes > 1000k", false),
    ("ece", "bytes >= 1000k", true),
    ("gre", "bytes > 4G", true),
    ("gre", "bytes = 5g", true),
    ("gre", "bytes > 5G", false),
    ("gre", "bytes < 1T", true),
    ("gre", "packets > 2M", true),
    ("gre", "packets 3M", true),
    ("t4", "packets 10", true),
    ("t4", "packets < 10", false),
    ("t4", "packets <= 10", true),
    ("t4", "packets lt 11", true),
    ("t4", "packets gt 9", true),
    ("t4", "in packets 10", true),
    ("t4", "in bytes > 1000", true),
    ("t4", "bytes > 1000 and packets < 100", true),
    ("syn", "bytes 46", true),
    ("syn", "bytes < 64 and packets 1", true),
    // ToS
    ("t4", "tos 0", true),
    ("t4", "tos > 0", false),
    ("u6", "tos 184", true),
    ("u6", "src tos 184", true),
    ("u6", "tos >= 128", true),
    ("ece", "tos 2", true),
    ("ece", "tos eq 0", false),
    // interfaces
    ("t4", "in if 3", true),
    ("t4", "out if 5", true),
    ("t4", "in if 5", false),
    ("t4", "out if 3", false),
    ("t4", "if 3", true),
    ("t4", "if 5", true),
    ("t4", "if 4", false),
    ("gre", "in if 5 and out if 3", true),
    ("u6", "in if 7 and out if 0", true),
    // AS numbers
    ("t4", "as 65000", true),
    ("t4", "as 15169", true),
    ("t4", "src as 65000", true),
    ("t4", "dst as 65000", false),
    ("t4", "dst as 15169", true),
    ("t4", "src as > 64511", true),
    ("t4", "dst as > 64511", false),
    ("t4", "as in [1 2 15169]", true),
    ("t4", "src as in [15169]", false),
    ("t4", "src and dst as > 1000", true),
    ("u6", "as 0", true),
    ("u6", "as > 0", false),
    // next hop
    ("t4", "next ip 192.168.1.1", true),
    ("t4", "next ip 192.168.1.2", false),
    ("t4", "next ip in [192.168.1.0/24]", true),
    ("u6", "next ip ::", true),
    ("u6", "next ip 0.0.0.0", false),
    ("i4", "next ip 0.0.0.0", true),
    // exporter (nfdump's router)
    ("t4", "router ip 127.0.0.1", true),
    ("t4", "router ip 127.0.0.2", false),
    ("t4", "router ip in [127.0.0.0/8]", true),
    // masks
    ("t4", "src mask 24", true),
    ("t4", "dst mask 8", true),
    ("t4", "mask 24", true),
    ("t4", "mask 16", false),
    ("t4", "src and dst mask 24", false),
    // schema fields by name
    ("t4", "src_as > 100", true),
    ("t4", "dst_as = 15169", true),
    ("t4", "src_port = 51515", true),
    ("t4", "dst_port in [80 443]", true),
    ("t4", "dst_port in [1-1023]", true),
    ("t4", "tcp_flags & 0x12 = 0x12", true),
    ("t4", "tcp_flags & 0x01 = 0x01", false),
    ("t4", "tcp_flags = 26", true),
    ("t4", "sampling_rate = 1", true),
    ("u6", "sampling_rate = 1", false),
    ("u6", "sampling_rate >= 100", true),
    ("t4", "domain = 258", true),
    ("t4", "domain & 0xff00 = 0x100", true),
    ("t4", "in_if = 3", true),
    ("t4", "out_if != 5", false),
    ("t4", "src_mask = 24", true),
    ("t4", "dst_mask < 9", true),
    ("t4", "exporter = 127.0.0.1", true),
    ("t4", "exporter != 127.0.0.1", false),
    ("t4", "exporter in [127.0.0.0/8]", true),
    ("t4", "src_addr = 192.168.1.10", true),
    ("t4", "src_addr = 192.168.1.0/24", true),
    ("t4", "dst_addr in [10.0.0.0/8 ::/0]", true),
    ("u6", "dst_addr in [10.0.0.0/8]", false),
    ("u6", "src_addr == 2001:db8::1", true),
    ("t4", "next_hop = 192.168.1.1", true),
    ("t4", "packets = 10", true),
    ("t4", "bytes >= 1500", true),
    ("t4", "time_start = 1704067200000", true),
    ("t4", "time_start >= 2024-01-01T00:00:00", true),
    ("t4", "time_start > 2024-01-01T00:00:00", false),
    ("t4", "time_end = 2024-01-01T00:00:01.5", true),
    ("t4", "time_end < 2024-01-01T00:00:01.501", true),
    // boolean structure and precedence: not > and > or
    ("t4", "proto tcp and dst port 443", true),
    ("t4", "proto tcp and dst port 443 and not net 10.0.0.0/8", false),
    ("t4", "proto tcp and dst port 443 and not net 172.16.0.0/12", true),
    ("t4", "proto tcp && dst port 443", true),
    ("t4", "proto udp || dst port 443", true),
    ("t4", "proto udp or proto tcp and port 80", false),
    ("u6", "proto udp or proto tcp and port 80", true),
    ("t4", "(proto udp or proto tcp) and port 443", true),
    ("t4", "not proto udp and port 443", true),
    ("t4", "not (proto tcp and port 443)", false),
    ("t4", "! proto tcp || port 443", true),
    ("t4", "!(proto tcp)", false),
    ("t4", "not not proto tcp", true),
    ("t4", "not not not proto tcp", false),
    ("t4", "((proto tcp))", true),
    ("t4", "proto tcp and (port 80 or port 443) and not flags R", true),
    ("syn", "proto tcp and flags S and not flags A and dst net 10.10.10.0/24", true),
    ("syn", "(host 10.10.10.1 or host 10.10.10.10) and not port 80", true),
    ("i4", "proto icmp or proto icmp6", true),
    ("i6", "proto icmp or proto icmp6", true),
    ("t4", "proto tcp and proto udp", false),
    ("t4", "port 443 or not port 443", true),
    ("t4", "proto tcp\n and\n dst port 443", true),
    ("t4", "proto tcp # web\n and port 443", true),
    ("gre", "not (port 80 or port 443)", true),
    ("gre", "proto gre and bytes > 1G and packets > 1M and inet", true),
    ("ece", "inet6 and flags E and bytes >= 1M and src port 443", true),
];

/// (expression, canonical text of its simplified predicate): the parser's tree and the
/// simplifier, checked as text (reviewed by hand when added).
#[rustfmt::skip]
const PARSES_TO: &[(&str, &str)] = &[
    ("proto tcp", "proto = 6"),
    ("proto 6", "proto = 6"),
    ("not proto tcp", "proto != 6"),
    ("proto tcp or proto udp", "proto in [6 17]"),
    ("proto tcp and proto tcp", "proto = 6"),
    ("proto tcp and proto udp", "not any"),
    ("port 80", "src_port = 80 or dst_port = 80"),
    ("src port 80", "src_port = 80"),
    ("dst port 80", "dst_port = 80"),
    ("src and dst port 80", "src_port = 80 and dst_port = 80"),
    ("port in [80 443]", "src_port in [80 443] or dst_port in [80 443]"),
    ("port in [80 81 82]", "src_port in [80-82] or dst_port in [80-82]"),
    ("dst port > 1023", "dst_port > 1023"),
    ("dst port >= 65535", "dst_port = 65535"),
    ("dst port > 65535", "not any"),
    ("port < 1", "src_port = 0 or dst_port = 0"),
    ("not port < 5", "not (src_port < 5 or dst_port < 5)"),
    ("dst port != 443", "dst_port != 443"),
    ("dst port 80 or dst port 443", "dst_port in [80 443]"),
    ("dst port < 1024 or dst port >= 1024", "any"),
    ("dst port > 1000 and dst port < 2000", "dst_port in [1001-1999]"),
    ("dst port in [1-100] and dst port in [50-200]", "dst_port in [50-100]"),
    ("host 10.0.0.1", "src_addr in [10.0.0.1/32] or dst_addr in [10.0.0.1/32]"),
    ("src host 2001:db8::1", "src_addr in [2001:db8::1/128]"),
    ("ip in [10.0.0.1 10.0.0.0/8]", "src_addr in [10.0.0.0/8] or dst_addr in [10.0.0.0/8]"),
    ("net 172.16/12", "src_addr in [172.16.0.0/12] or dst_addr in [172.16.0.0/12]"),
    ("net 10.1.2.3 255.255.0.0", "src_addr in [10.1.0.0/16] or dst_addr in [10.1.0.0/16]"),
    ("src net 10.0.0.0/8 or src net 10.1.0.0/16", "src_addr in [10.0.0.0/8]"),
    ("src net 10.0.0.0/8 and src net 10.1.0.0/16", "src_addr in [10.1.0.0/16]"),
    ("src net 10.0.0.0/8 and src net 11.0.0.0/8", "not any"),
    ("inet", "src_addr in [0.0.0.0/0]"),
    ("inet6", "src_addr in [::/0]"),
    ("inet and inet6", "not any"),
    ("inet or inet6", "any"),
    ("flags SA", "proto = 6 and tcp_flags & 0x12 = 0x12"),
    ("flags X", "proto = 6 and tcp_flags & 0x3f = 0x3f"),
    ("flags 0", "proto = 6 and tcp_flags = 0"),
    ("not flags A", "not (proto = 6 and tcp_flags & 0x10 = 0x10)"),
    ("flags S and not flags A", "proto = 6 and tcp_flags & 0x2 = 0x2 and not tcp_flags & 0x10 = 0x10"),
    ("proto udp and flags S", "not any"),
    ("bytes > 1M", "bytes > 1000000"),
    ("packets < 10 and packets < 10", "packets < 10"),
    ("bytes >= 0", "any"),
    ("tos 0", "tos = 0"),
    ("in if 3", "in_if = 3"),
    ("if 3", "in_if = 3 or out_if = 3"),
    ("as 65000", "src_as = 65000 or dst_as = 65000"),
    ("next ip 10.0.0.1", "next_hop in [10.0.0.1/32]"),
    ("router ip 127.0.0.1", "exporter in [127.0.0.1/32]"),
    ("mask 24", "src_mask = 24 or dst_mask = 24"),
    ("icmp-type 3", "proto in [1 58] and dst_port in [768-1023]"),
    ("icmp-code 1", "proto in [1 58] and dst_port & 0xff = 0x1"),
    ("any", "any"),
    ("not any", "not any"),
    ("any or proto tcp", "any"),
    ("not any and proto tcp", "not any"),
    ("not not port 80", "src_port = 80 or dst_port = 80"),
    ("not (proto tcp and port 80)", "not (proto = 6 and (src_port = 80 or dst_port = 80))"),
    ("proto tcp and (port 80 or port 443)", "proto = 6 and (src_port in [80 443] or dst_port in [80 443])"),
    ("proto udp or proto tcp and port 53", "proto = 17 or proto = 6 and (src_port = 53 or dst_port = 53)"),
    ("src_as > 100", "src_as > 100"),
    ("sampling_rate = 1", "sampling_rate = 1"),
    ("tcp_flags & 0x12 = 0x12", "tcp_flags & 0x12 = 0x12"),
    ("tcp_flags & 0x12 = 0x1", "not any"),
    ("exporter != 10.0.0.1", "not exporter in [10.0.0.1/32]"),
    ("time_start >= 2024-01-01T00:00:00", "time_start >= 1704067200000"),
    ("proto in [6 17]", "proto in [6 17]"),
    ("bytes in [0-99]", "bytes <= 99"),
];

#[test]
fn expressions_parse_to_their_canonical_predicates() {
    let mut failures = Vec::new();
    for (text, want) in PARSES_TO {
        match parse(text) {
            Ok(e) if e.to_string() == *want => {}
            Ok(e) => failures.push(format!("{text:?}: got {:?}, want {want:?}", e.to_string())),
            Err(e) => failures.push(format!("{text:?}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_case_matches_row_wise_column_wise_and_after_reprinting() {
    assert!(CASES.len() >= 300, "{} cases", CASES.len());
    let recs = records();
    let batch: Vec<FlowRecord> = recs.iter().map(|(_, r)| r.clone()).collect();
    let cols = RecordColumns::from_records(&batch);
    let mut failures = Vec::new();
    for (name, text, want) in CASES {
        let idx = recs
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no record {name}"));
        let r = &recs[idx].1;
        let e: Expr = match parse(text) {
            Ok(e) => e,
            Err(err) => {
                failures.push(format!("{name} {text:?}: does not parse: {err}"));
                continue;
            }
        };
        let row = e.matches(r);
        let col = e.select(&cols).expect("all columns present").get(idx);
        let raw = parse_unsimplified(text).expect("parses").matches(r);
        let printed = e.to_string();
        let reread = parse(&printed);
        if row != *want || col != *want || raw != *want {
            failures.push(format!(
                "{name} {text:?}: want {want}, row {row}, column {col}, unsimplified {raw}; IR {printed}"
            ));
        }
        if reread.as_ref() != Ok(&e) {
            failures.push(format!(
                "{name} {text:?}: canonical form {printed:?} reads back as {reread:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
