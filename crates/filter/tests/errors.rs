//! Error cases, one line each: (text, error kind, line, column, a string that must be among
//! the expected alternatives or in the message). Checks the text and JSON forms too.

use crate::util::registry;
use flowdrill_filter::{FilterError, acl::RuleList, parse, parse_with};

fn kind(e: &FilterError) -> &'static str {
    match e {
        FilterError::UnexpectedToken { .. } => "UnexpectedToken",
        FilterError::UnexpectedEnd { .. } => "UnexpectedEnd",
        FilterError::InvalidCharacter { .. } => "InvalidCharacter",
        FilterError::InvalidNumber { .. } => "InvalidNumber",
        FilterError::OutOfRange { .. } => "OutOfRange",
        FilterError::InvalidAddress { .. } => "InvalidAddress",
        FilterError::UnknownProtocol { .. } => "UnknownProtocol",
        FilterError::UnknownField { .. } => "UnknownField",
        FilterError::InvalidFlags { .. } => "InvalidFlags",
        FilterError::Unsupported { .. } => "Unsupported",
        FilterError::TypeMismatch { .. } => "TypeMismatch",
        FilterError::InvalidAction { .. } => "InvalidAction",
        _ => "other",
    }
}

#[rustfmt::skip]
const CASES: &[(&str, &str, usize, usize, &str)] = &[
    ("proto", "UnexpectedEnd", 1, 6, "a protocol name (tcp, udp, icmp, ...) or number"),
    ("proto tcpx", "UnknownProtocol", 1, 7, "unknown protocol"),
    ("proto 256", "OutOfRange", 1, 7, "a protocol number 0..255"),
    ("port", "UnexpectedEnd", 1, 5, "a port 0..65535"),
    ("port x", "InvalidNumber", 1, 6, "a port 0..65535"),
    ("port 65536", "OutOfRange", 1, 6, "a port 0..65535"),
    ("port 70k", "OutOfRange", 1, 6, "a port 0..65535"),
    ("port > ", "UnexpectedEnd", 1, 8, "a port 0..65535"),
    ("port in 80", "UnexpectedToken", 1, 9, "["),
    ("port in []", "UnexpectedToken", 1, 10, "a port 0..65535"),
    ("port in [80 x]", "InvalidNumber", 1, 13, "a port 0..65535 or a range a-b"),
    ("port in [80", "UnexpectedEnd", 1, 12, "]"),
    ("port in [90-80]", "OutOfRange", 1, 10, "a port 0..65535"),
    ("proto tcp and", "UnexpectedEnd", 1, 14, "proto"),
    ("proto tcp and and", "UnexpectedToken", 1, 15, "proto"),
    ("proto tcp port 80", "UnexpectedToken", 1, 11, "and"),
    ("proto tcp or", "UnexpectedEnd", 1, 13, "net"),
    ("(proto tcp", "UnexpectedEnd", 1, 11, ")"),
    ("proto tcp)", "UnexpectedToken", 1, 10, "end of filter (this ')' closes nothing)"),
    ("()", "UnexpectedToken", 1, 2, "proto"),
    ("not", "UnexpectedEnd", 1, 4, "proto"),
    ("host", "UnexpectedEnd", 1, 5, "an IPv4 or IPv6 address"),
    ("host 1.2.3", "InvalidAddress", 1, 6, "an IPv4 or IPv6 address"),
    ("host 1.2.3.4.5", "InvalidAddress", 1, 6, "not a complete"),
    ("host www.example.org", "InvalidAddress", 1, 6, "host names are not resolved"),
    ("host 300.1.1.1", "InvalidAddress", 1, 6, "an IPv4 or IPv6 address"),
    ("src host 1.2.3.4 and dst host 2001:db8:::1", "InvalidAddress", 1, 31, "an IPv4 or IPv6 address"),
    ("ip in [1.2.3.4 x]", "InvalidAddress", 1, 16, "an IPv4 or IPv6 address"),
    ("ip in [1.2.3.4/33]", "OutOfRange", 1, 16, "a prefix length 0..32"),
    ("net 10.0.0.0", "UnexpectedEnd", 1, 13, "/ and a prefix length"),
    ("net 10.0.0.0/33", "OutOfRange", 1, 14, "a prefix length 0..32"),
    ("net 10.0/24", "OutOfRange", 1, 10, "a prefix length 0..16"),
    ("net 2001:db8::/129", "OutOfRange", 1, 16, "a prefix length 0..128"),
    ("net 10.0.0.0 255.0.255.0", "InvalidAddress", 1, 14, "not contiguous"),
    ("net 10.0.0.0 255.0.0", "InvalidAddress", 1, 14, "an IPv4 netmask such as 255.255.0.0"),
    ("net 2001:db8:: ffff::", "UnexpectedToken", 1, 16, "/ and a prefix length"),
    ("net /8", "UnexpectedToken", 1, 5, "a network address"),
    ("flags Q", "InvalidFlags", 1, 7, "FSRPAUEC"),
    ("flags SAZ", "InvalidFlags", 1, 7, "FSRPAUEC"),
    ("flags 256", "OutOfRange", 1, 7, "a flags value 0..255"),
    ("flags", "UnexpectedEnd", 1, 6, "TCP flag letters (FSRPAUEC) or a number 0..255"),
    ("tos 256", "OutOfRange", 1, 5, "a ToS value 0..255"),
    ("dst tos 0", "Unsupported", 1, 1, "only the source ToS"),
    ("out bytes > 10", "Unsupported", 1, 1, "one direction of counters"),
    ("bytes > 1.5k", "InvalidNumber", 1, 9, "a count"),
    ("bytes > 99999999999999999999", "OutOfRange", 1, 9, "a count"),
    ("bytes > 20000000000000T", "OutOfRange", 1, 9, "a count"),
    ("packets", "UnexpectedEnd", 1, 8, "a count"),
    ("src if 3", "UnexpectedToken", 1, 1, "in"),
    ("in port 80", "UnexpectedToken", 1, 1, "src"),
    ("src proto tcp", "UnexpectedToken", 1, 1, "no qualifier before 'proto'"),
    ("src", "UnexpectedEnd", 1, 4, "port"),
    ("src 80", "UnexpectedToken", 1, 5, "port"),
    ("if", "UnexpectedEnd", 1, 3, "an interface index"),
    ("if 4294967296", "OutOfRange", 1, 4, "an interface index 0..4294967295"),
    ("as 4294967296", "OutOfRange", 1, 4, "an AS number"),
    ("mask 256", "OutOfRange", 1, 6, "a prefix length 0..255"),
    ("icmp-type 256", "OutOfRange", 1, 11, "an ICMP type or code 0..255"),
    ("next 1.2.3.4", "UnexpectedToken", 1, 6, "ip"),
    ("next as 5", "Unsupported", 1, 1, "adjacent AS"),
    ("vlan 5", "Unsupported", 1, 1, "VLAN"),
    ("mac 00:11:22:33:44:55", "Unsupported", 1, 1, "MAC"),
    ("duration > 10", "Unsupported", 1, 1, "time_end"),
    ("router 1.2.3.4", "UnexpectedToken", 1, 8, "ip"),
    ("engine-type 1", "Unsupported", 1, 1, "domain"),
    ("bogus 5", "UnknownField", 1, 1, "src_as"),
    ("proto tcp and src_ass > 5", "UnknownField", 1, 15, "src_as"),
    ("src_as > x", "InvalidNumber", 1, 10, "a number 0..4294967295"),
    ("src_as > 4294967296", "OutOfRange", 1, 10, "a number 0..4294967295"),
    ("src_addr > 1.2.3.4", "TypeMismatch", 1, 10, "in"),
    ("src_addr & 1 = 1", "TypeMismatch", 1, 10, "="),
    ("src_addr = 5", "InvalidAddress", 1, 12, "an IPv4 or IPv6 address"),
    ("tcp_flags & 2 2", "UnexpectedToken", 1, 15, "="),
    ("time_start > 2024-13-01T00:00:00", "InvalidNumber", 1, 14, "YYYY-MM-DDThh:mm:ss"),
    ("port 80 @", "InvalidCharacter", 1, 9, "not part of the filter language"),
    ("proto tcp and\n  port 8o", "InvalidNumber", 2, 8, "a port 0..65535"),
    ("proto tcp\nand (\n  host 1.2.3.4 or\n)", "UnexpectedToken", 4, 1, "host"),
    ("proto tcp # comment\n and bogus", "UnknownField", 2, 6, "port"),
    ("proto é", "InvalidCharacter", 1, 7, "é"),
    ("port 80 and é", "InvalidCharacter", 1, 13, "é"),
];

/// User-defined elements (the registry of `util::registry`): type errors and values that do
/// not fit the element's kind.
#[rustfmt::skip]
const CUSTOM_CASES: &[(&str, &str, usize, usize, &str)] = &[
    ("rtt_us > \"5\"", "TypeMismatch", 1, 10, "a number 0..18446744073709551615"),
    ("rtt_us > x", "InvalidNumber", 1, 10, "a number 0..18446744073709551615"),
    ("rtt_us > 1.5", "InvalidNumber", 1, 10, "a number 0..18446744073709551615"),
    ("rtt_us > -1", "InvalidNumber", 1, 10, "a number 0..18446744073709551615"),
    ("rtt_us > 99999999999999999999", "OutOfRange", 1, 10, "a number 0..18446744073709551615"),
    ("rtt_us ~ \"a\"", "TypeMismatch", 1, 8, "in"),
    ("rtt_us & 1 = 1", "TypeMismatch", 1, 8, "<="),
    ("rtt_us in [1 x]", "InvalidNumber", 1, 14, "a range a-b"),
    ("rtt_us in [5-1]", "OutOfRange", 1, 12, "a number 0.."),
    ("rtt_us >", "UnexpectedEnd", 1, 9, "a number 0.."),
    ("delta < -9223372036854775809", "OutOfRange", 1, 9, "-9223372036854775808"),
    ("delta in [-1--5]", "OutOfRange", 1, 11, "-9223372036854775808"),
    ("loss > nan", "InvalidNumber", 1, 8, "a number such as 1.5"),
    ("loss > 1e999", "OutOfRange", 1, 8, "a number such as 1.5"),
    ("loss = \"1\"", "TypeMismatch", 1, 8, "a number such as 1.5"),
    ("app = 5", "TypeMismatch", 1, 7, "a quoted string such as \"text\""),
    ("app = dns", "TypeMismatch", 1, 7, "a quoted string"),
    ("app > \"a\"", "TypeMismatch", 1, 5, "~"),
    ("app in [\"a\"]", "TypeMismatch", 1, 5, "!="),
    ("app & 1 = 1", "TypeMismatch", 1, 5, "="),
    ("app =", "UnexpectedEnd", 1, 6, "a quoted string"),
    ("app ~ (", "UnexpectedToken", 1, 7, "a quoted string"),
    ("app = \"dns", "UnexpectedEnd", 1, 11, "close the string that starts at line 1, column 7"),
    ("tag = \"0a\"", "TypeMismatch", 1, 7, "bytes in hex"),
    ("tag = 0xabc", "InvalidNumber", 1, 7, "bytes in hex"),
    ("tag = 10", "InvalidNumber", 1, 7, "bytes in hex"),
    ("tag < 0x00", "TypeMismatch", 1, 5, "!="),
    ("tag in [0x00]", "TypeMismatch", 1, 5, "="),
    ("peer = \"10.0.0.1\"", "TypeMismatch", 1, 8, "an address or prefix"),
    ("peer > 10.0.0.1", "TypeMismatch", 1, 6, "in"),
    ("peer ~ \"10\"", "TypeMismatch", 1, 6, "="),
    ("peer = 10.0.0.1/33", "OutOfRange", 1, 17, "a prefix length 0..32"),
    ("peer = 10.0", "InvalidAddress", 1, 8, "an IPv4 or IPv6 address"),
    ("peer in [10.0.0.1 x]", "InvalidAddress", 1, 19, "an IPv4 or IPv6 address"),
    ("src rtt_us 5", "UnexpectedToken", 1, 5, "port"),
    ("bogus > 5", "UnknownField", 1, 1, "rtt_us"),
    ("proto tcp and\n  peerr 10.0.0.1", "UnknownField", 2, 3, "peer"),
];

/// ACL rule lists: (text, kind, line, column, expected or message part).
#[rustfmt::skip]
const ACL_CASES: &[(&str, &str, usize, usize, &str)] = &[
    ("permit * * tcp *", "UnexpectedEnd", 1, 17, "destination ports or *"),
    ("permit", "UnexpectedEnd", 1, 7, "a source prefix or *"),
    ("permit * * tcp * 80 x", "UnexpectedToken", 1, 21, "end of rule"),
    ("permit 10.0.0.0/33 * tcp * 80", "InvalidAddress", 1, 8, "a source prefix or *"),
    ("permit * host tcp * 80", "InvalidAddress", 1, 10, "a destination prefix or *"),
    ("permit * * tcpp * 80", "UnknownProtocol", 1, 12, "unknown protocol"),
    ("permit * * 300 * 80", "OutOfRange", 1, 12, "a protocol number 0..255"),
    ("permit * * tcp x 80", "InvalidNumber", 1, 16, "source ports or *: a port, a range a-b or *"),
    ("permit * * tcp * 80,443,9x", "InvalidNumber", 1, 25, "destination ports"),
    ("permit * * tcp * 70000", "OutOfRange", 1, 18, "a port 0..65535"),
    ("permit * * tcp * 90-80", "OutOfRange", 1, 18, "a <= b"),
    ("# header\npermit * * tcp * 80\nw@b * * * * *", "InvalidAction", 3, 1, "not a valid action"),
    ("web * * * * *\n\n  deny 1.2.3.4 * udp * 53,\n", "InvalidNumber", 3, 27, "destination ports"),
];

fn check(
    text: &str,
    err: FilterError,
    (want_kind, line, col, needle): (&str, usize, usize, &str),
) -> Option<String> {
    let p = err.position().expect("user errors have a position");
    let j = err.to_json();
    let expected: Vec<String> = err.expected().to_vec();
    let rendered = err.render(text);
    let problems = [
        (kind(&err) != want_kind).then(|| format!("kind {} != {want_kind}", kind(&err))),
        ((p.line, p.column) != (line, col))
            .then(|| format!("at {}:{} != {line}:{col}", p.line, p.column)),
        (!expected.iter().any(|x| x.contains(needle)) && !err.to_string().contains(needle))
            .then(|| format!("{needle:?} is neither expected ({expected:?}) nor in the message")),
        (j["line"] != p.line || j["column"] != p.column || j["offset"] != p.offset)
            .then(|| format!("JSON position {j}")),
        (j["expected"].as_array().map(|a| a.len()) != Some(expected.len()))
            .then(|| format!("JSON expected {j}")),
        (!rendered
            .lines()
            .last()
            .is_some_and(|l| l.ends_with('^') && l.chars().count() == 4 + p.column))
        .then(|| format!("caret misplaced:\n{rendered}")),
    ];
    let problems: Vec<String> = problems.into_iter().flatten().collect();
    (!problems.is_empty()).then(|| format!("{text:?}: {err}: {}", problems.join("; ")))
}

#[test]
fn errors_name_position_found_and_expected() {
    let mut failures = Vec::new();
    for &(text, k, line, col, needle) in CASES {
        match parse(text) {
            Ok(e) => failures.push(format!("{text:?}: parsed as {e}")),
            Err(err) => failures.extend(check(text, err, (k, line, col, needle))),
        }
    }
    let reg = registry();
    for &(text, k, line, col, needle) in CUSTOM_CASES {
        match parse_with(text, &reg) {
            Ok(e) => failures.push(format!("{text:?}: parsed as {e}")),
            Err(err) => failures.extend(check(text, err, (k, line, col, needle))),
        }
    }
    for &(text, k, line, col, needle) in ACL_CASES {
        match RuleList::parse(text) {
            Ok(l) => failures.push(format!("{text:?}: parsed as {l:?}")),
            Err(err) => failures.extend(check(text, err, (k, line, col, needle))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing error cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_json_form_has_the_ui_fields() {
    let err = parse("proto tcp and\n  port 8o").unwrap_err();
    let j = err.to_json();
    assert_eq!(j["line"], 2);
    assert_eq!(j["column"], 8);
    assert_eq!(j["offset"], 21);
    assert_eq!(j["found"], "8o");
    assert_eq!(j["expected"], serde_json::json!(["a port 0..65535"]));
    assert_eq!(
        j["message"],
        "'8o' is not a number, expected a port 0..65535"
    );
    assert_eq!(
        err.render("proto tcp and\n  port 8o"),
        "error: '8o' is not a number, expected a port 0..65535\n  at line 2, column 8:\n      port 8o\n           ^"
    );
}
