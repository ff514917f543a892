//! The parser of nfdump's filter expressions (plus schema field names) into the predicate IR.
//!
//! Recursive descent over the tokens of [`crate::lexer`], with nfdump's precedence
//! (`not` > `and` > `or`, all left-associative):
//!
//! ```text
//! filter  := or END
//! or      := and (("or" | "||") and)*
//! and     := unary (("and" | "&&") unary)*
//! unary   := ("not" | "!") unary | "(" or ")" | term
//! term    := "any" | "ipv4" | "inet" | "ipv6" | "inet6"
//!          | "proto" [cmp] (NUMBER | NAME)
//!          | [dir] ("ip" | "host") (ADDR | "in" "[" addr_list "]")
//!          | [dir] "net" (ADDR "/" LEN | IPV4 NETMASK)
//!          | [dir] "port" ([cmp] NUMBER | "in" "[" num_list "]")
//!          | [dir] "as" ([cmp] NUMBER | "in" "[" num_list "]")
//!          | [dir] "mask" NUMBER
//!          | ["in" | "out"] "if" NUMBER
//!          | ["in"] ("packets" | "bytes") [cmp] NUMBER
//!          | ["src"] "tos" [cmp] NUMBER
//!          | "flags" (LETTERS | [cmp] NUMBER)
//!          | ("next" | "router") "ip" (ADDR | "in" "[" addr_list "]")
//!          | "icmp-type" NUMBER | "icmp-code" NUMBER
//!          | FIELD [cmp] VALUE | FIELD "in" "[" list "]" | FIELD "&" NUMBER "=" NUMBER
//!          | CUSTOM "exists" | CUSTOM [cmp] VALUE | CUSTOM "in" "[" list "]" | CUSTOM "~" STRING
//! dir     := "src" | "dst" | "src or dst" | "dst or src" | "src and dst" | "dst and src"
//! cmp     := "=" | "==" | "eq" | "!=" | "<>" | "ne" | "<" | "lt" | ">" | "gt" | "<=" | "le" | ">=" | "ge"
//! NUMBER  := decimal with optional k, M, G, T suffix (x1000 each, as nfdump) | 0x hex
//! ```
//!
//! `CUSTOM` is the name of a user-defined element of the registry given to
//! [`crate::parse_with`]; what `VALUE` is follows from the element's kind. Keywords and
//! schema field names come first: an element named like one cannot be used.
//!
//! Keywords are matched case-insensitively. The parser returns the IR *unsimplified*;
//! [`crate::parse`] simplifies it.

use crate::error::{FilterError, Position};
use crate::ir::{CmpOp, CustomTest, Expr, Float, NumTest, parse_hex_bytes};
use crate::lexer::{Tok, Token, lex, unquote};
use flowdrill_model::{
    Addr, CustomField, CustomFields, CustomKind, FIELDS, Field, Kind, Prefix, proto,
};

/// Direction qualifiers of nfdump (`dqual` in its grammar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dir {
    Unspec,
    Src,
    Dst,
    SrcOrDst,
    SrcAndDst,
    In,
    Out,
}

/// nfdump keywords whose fields the flow schema does not carry.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("mac", "the flow schema has no MAC addresses"),
    ("mpls", "the flow schema has no MPLS labels"),
    ("vlan", "the flow schema has no VLAN ids"),
    ("tun", "the flow schema has no tunnel fields"),
    ("tunip", "the flow schema has no tunnel fields"),
    (
        "flows",
        "records are flows; aggregated flow counts are not filterable",
    ),
    ("pps", "derived rates are not filterable yet"),
    ("bps", "derived rates are not filterable yet"),
    ("bpp", "derived rates are not filterable yet"),
    ("duration", "use time_end and time_start"),
    ("count", "the flow schema has no flow counter"),
    (
        "nfversion",
        "the flow schema does not keep the export version",
    ),
    ("ident", "the flow schema has no ident string"),
    ("geo", "the flow schema has no geo location"),
    ("fwdstat", "the flow schema has no forwarding status"),
    ("client", "the flow schema has no latency fields"),
    ("server", "the flow schema has no latency fields"),
    ("app", "the flow schema has no latency fields"),
    ("latency", "the flow schema has no latency fields"),
    (
        "sysid",
        "the flow schema has no exporter sysid; use exporter = ADDR",
    ),
    (
        "engine-type",
        "use domain (engine type << 8 | engine id for NetFlow v5)",
    ),
    (
        "engine-id",
        "use domain (engine type << 8 | engine id for NetFlow v5)",
    ),
    ("bgpnext", "the flow schema has no BGP next hop"),
    ("prev", "the flow schema has no adjacent AS"),
    ("previous", "the flow schema has no adjacent AS"),
    ("dir", "the flow schema has no flow direction"),
    ("flowdir", "the flow schema has no flow direction"),
    ("flowlabel", "the flow schema has no flow label"),
    ("asa", "the flow schema has no NSEL fields"),
    ("event", "the flow schema has no NSEL fields"),
    ("xevent", "the flow schema has no NSEL fields"),
    ("xip", "the flow schema has no NAT fields"),
    ("xnet", "the flow schema has no NAT fields"),
    ("xport", "the flow schema has no NAT fields"),
    ("nat", "the flow schema has no NAT fields"),
    ("nip", "the flow schema has no NAT fields"),
    ("nport", "the flow schema has no NAT fields"),
    ("vrf", "the flow schema has no VRF ids"),
    ("ingress", "the flow schema has no VRF ids"),
    ("egress", "the flow schema has no VRF ids"),
    ("pblock", "the flow schema has no NAT fields"),
    ("payload", "flows carry no payload"),
    ("content", "flows carry no payload"),
    ("regex", "flows carry no payload"),
    ("ja3", "flows carry no payload"),
    ("observation", "use domain"),
    ("pf", "the flow schema has no pf fields"),
];

/// What may start a term (for "expected" lists).
const TERM_START: &[&str] = &[
    "any",
    "proto",
    "ip",
    "host",
    "net",
    "port",
    "src",
    "dst",
    "as",
    "if",
    "in",
    "out",
    "packets",
    "bytes",
    "tos",
    "flags",
    "next",
    "router",
    "mask",
    "icmp-type",
    "icmp-code",
    "inet",
    "inet6",
    "not",
    "(",
    "a field name",
];

pub(crate) struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    /// The user-defined elements that may be named.
    custom: &'a CustomFields,
}

/// The registry of [`Parser::new`]: no user-defined elements.
static NO_CUSTOM: CustomFields = CustomFields { fields: Vec::new() };

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Result<Parser<'a>, FilterError> {
        Parser::with_custom(src, &NO_CUSTOM)
    }

    /// A parser that also accepts the names of the elements of `custom` as fields.
    pub(crate) fn with_custom(
        src: &'a str,
        custom: &'a CustomFields,
    ) -> Result<Parser<'a>, FilterError> {
        Ok(Parser {
            src,
            toks: lex(src)?,
            i: 0,
            custom,
        })
    }

    /// Parses the whole text as one expression (unsimplified). An empty filter (only blanks
    /// and comments) is `any`, as in nfdump.
    pub(crate) fn parse_filter(mut self) -> Result<Expr, FilterError> {
        if self.peek().kind == Tok::End {
            return Ok(Expr::True);
        }
        let e = self.parse_or()?;
        let t = self.peek();
        if t.kind != Tok::End {
            let exp: &[&str] = if t.kind == Tok::RParen {
                &["end of filter (this ')' closes nothing)"]
            } else {
                &["and", "or", "end of filter"]
            };
            return Err(self.unexpected(t, exp));
        }
        Ok(e)
    }

    // ---- token helpers ----

    fn peek(&self) -> Token {
        self.peek_at(0)
    }
    fn peek_at(&self, k: usize) -> Token {
        let last = self.toks.len() - 1;
        self.toks[(self.i + k).min(last)]
    }
    fn bump(&mut self) -> Token {
        let t = self.peek();
        if t.kind != Tok::End {
            self.i += 1;
        }
        t
    }
    fn text(&self, t: Token) -> &'a str {
        &self.src[t.start..t.end]
    }
    fn is_word(&self, t: Token, w: &str) -> bool {
        t.kind == Tok::Word && self.text(t).eq_ignore_ascii_case(w)
    }
    fn word_lc(&self, t: Token) -> Option<String> {
        (t.kind == Tok::Word).then(|| self.text(t).to_ascii_lowercase())
    }
    fn pos(&self, t: Token) -> Position {
        Position::at(self.src, t.start)
    }
    fn unexpected(&self, t: Token, expected: &[&str]) -> FilterError {
        if t.kind == Tok::End {
            FilterError::UnexpectedEnd {
                at: self.pos(t),
                expected: s(expected),
            }
        } else {
            FilterError::UnexpectedToken {
                at: self.pos(t),
                found: format!("'{}'", self.text(t)),
                expected: s(expected),
            }
        }
    }
    fn expect(&mut self, kind: Tok, what: &str) -> Result<Token, FilterError> {
        let t = self.peek();
        if t.kind == kind {
            Ok(self.bump())
        } else {
            Err(self.unexpected(t, &[what]))
        }
    }
    fn is_and(&self, t: Token) -> bool {
        t.kind == Tok::AndAnd || self.is_word(t, "and")
    }
    fn is_or(&self, t: Token) -> bool {
        t.kind == Tok::OrOr || self.is_word(t, "or")
    }

    // ---- boolean structure ----

    fn parse_or(&mut self) -> Result<Expr, FilterError> {
        let mut args = vec![self.parse_and()?];
        while self.is_or(self.peek()) {
            self.bump();
            args.push(self.parse_and()?);
        }
        Ok(if args.len() == 1 {
            args.pop().expect("one")
        } else {
            Expr::or(args)
        })
    }

    fn parse_and(&mut self) -> Result<Expr, FilterError> {
        let mut args = vec![self.parse_unary()?];
        while self.is_and(self.peek()) {
            self.bump();
            args.push(self.parse_unary()?);
        }
        Ok(if args.len() == 1 {
            args.pop().expect("one")
        } else {
            Expr::and(args)
        })
    }

    fn parse_unary(&mut self) -> Result<Expr, FilterError> {
        let t = self.peek();
        if t.kind == Tok::Bang || self.is_word(t, "not") {
            self.bump();
            return Ok(Expr::not(self.parse_unary()?));
        }
        if t.kind == Tok::LParen {
            self.bump();
            let e = self.parse_or()?;
            let close = self.peek();
            if close.kind != Tok::RParen {
                return Err(self.unexpected(close, &[")", "and", "or"]));
            }
            self.bump();
            return Ok(e);
        }
        self.parse_term()
    }

    // ---- terms ----

    fn parse_dir(&mut self) -> (Dir, Option<Token>) {
        let t = self.peek();
        let Some(w) = self.word_lc(t) else {
            return (Dir::Unspec, None);
        };
        let other = match w.as_str() {
            "src" => "dst",
            "dst" => "src",
            "in" => {
                self.bump();
                return (Dir::In, Some(t));
            }
            "out" => {
                self.bump();
                return (Dir::Out, Some(t));
            }
            _ => return (Dir::Unspec, None),
        };
        self.bump();
        let (j, k) = (self.peek(), self.peek_at(1));
        if (self.is_or(j) || self.is_and(j)) && self.is_word(k, other) {
            let d = if self.is_or(j) {
                Dir::SrcOrDst
            } else {
                Dir::SrcAndDst
            };
            self.bump();
            self.bump();
            return (d, Some(t));
        }
        (if w == "src" { Dir::Src } else { Dir::Dst }, Some(t))
    }

    fn parse_term(&mut self) -> Result<Expr, FilterError> {
        let (dir, dir_tok) = self.parse_dir();
        let t = self.peek();
        let Some(w) = self.word_lc(t) else {
            let exp: &[&str] = if dir_tok.is_some() {
                &[
                    "ip", "host", "net", "port", "as", "if", "packets", "bytes", "tos", "mask",
                ]
            } else {
                TERM_START
            };
            return Err(self.unexpected(t, exp));
        };
        if matches!(w.as_str(), "and" | "or" | "not") || (dir_tok.is_some() && !is_keyword(&w)) {
            let exp: &[&str] = if dir_tok.is_some() {
                &[
                    "ip", "host", "net", "port", "as", "if", "packets", "bytes", "tos", "mask",
                ]
            } else {
                TERM_START
            };
            return Err(self.unexpected(t, exp));
        }
        // Keywords that are also schema field names take the field forms too.
        if dir_tok.is_none()
            && let Some(field) = Field::from_name(&w)
            && (self.is_word(self.peek_at(1), "in") || self.peek_at(1).kind == Tok::Amp)
        {
            self.bump();
            return self.parse_field(field);
        }
        // Which qualifiers each keyword takes; a wrong one is reported at the qualifier.
        let allowed: &[Dir] = match w.as_str() {
            "ip" | "host" | "net" | "port" | "as" | "mask" => &[
                Dir::Unspec,
                Dir::Src,
                Dir::Dst,
                Dir::SrcOrDst,
                Dir::SrcAndDst,
            ],
            "if" => &[Dir::Unspec, Dir::In, Dir::Out],
            "packets" | "bytes" => &[Dir::Unspec, Dir::In, Dir::Out],
            "tos" => &[
                Dir::Unspec,
                Dir::Src,
                Dir::Dst,
                Dir::SrcOrDst,
                Dir::SrcAndDst,
            ],
            _ => &[Dir::Unspec],
        };
        if let Some(dt) = dir_tok
            && !allowed.contains(&dir)
        {
            let exp: Vec<&str> = allowed
                .iter()
                .filter_map(|d| match d {
                    Dir::Src => Some("src"),
                    Dir::Dst => Some("dst"),
                    Dir::In => Some("in"),
                    Dir::Out => Some("out"),
                    _ => None,
                })
                .collect();
            let mut e = self.unexpected(dt, &exp);
            if let FilterError::UnexpectedToken { expected, .. } = &mut e {
                expected.push(format!("no qualifier before '{}'", self.text(t)));
            }
            return Err(e);
        }
        self.bump();
        match w.as_str() {
            "any" => Ok(Expr::True),
            "ipv4" | "inet" => Ok(Expr::Prefix {
                field: Field::SrcAddr,
                prefixes: vec![Prefix::root_v4()],
            }),
            "ipv6" | "inet6" => Ok(Expr::Prefix {
                field: Field::SrcAddr,
                prefixes: vec![Prefix::root_v6()],
            }),
            "proto" => self.parse_proto(),
            "ip" | "host" => {
                let prefixes = self.parse_hosts()?;
                Ok(dir_expand(dir, Field::SrcAddr, Field::DstAddr, |f| {
                    Expr::Prefix {
                        field: f,
                        prefixes: prefixes.clone(),
                    }
                }))
            }
            "net" => {
                let p = self.parse_net()?;
                Ok(dir_expand(dir, Field::SrcAddr, Field::DstAddr, |f| {
                    Expr::Prefix {
                        field: f,
                        prefixes: vec![p],
                    }
                }))
            }
            "port" => {
                self.parse_numeric_or_list(dir, Field::SrcPort, Field::DstPort, "a port 0..65535")
            }
            "as" => self.parse_numeric_or_list(dir, Field::SrcAs, Field::DstAs, "an AS number"),
            "mask" => {
                let (n, nt) = self.number("a prefix length 0..128")?;
                self.check_max(n, 255, nt, "a prefix length 0..255")?;
                Ok(dir_expand(dir, Field::SrcMask, Field::DstMask, |f| {
                    Expr::eq(f, n)
                }))
            }
            "if" => {
                let (n, nt) = self.number("an interface index")?;
                self.check_max(n, u32::MAX as u64, nt, "an interface index 0..4294967295")?;
                Ok(match dir {
                    Dir::In => Expr::eq(Field::InIf, n),
                    Dir::Out => Expr::eq(Field::OutIf, n),
                    _ => Expr::or(vec![Expr::eq(Field::InIf, n), Expr::eq(Field::OutIf, n)]),
                })
            }
            "packets" | "bytes" => {
                if dir == Dir::Out {
                    return Err(FilterError::Unsupported {
                        at: self.pos(dir_tok.expect("a qualifier")),
                        found: format!("out {w}"),
                        reason: "the flow schema has only one direction of counters".into(),
                    });
                }
                let field = if w == "bytes" {
                    Field::Bytes
                } else {
                    Field::Packets
                };
                let cmp = self.comparator();
                let (n, _) = self.number("a count (suffixes k, M, G, T multiply by 1000)")?;
                Ok(Expr::cmp(field, cmp, n))
            }
            "tos" => {
                if dir != Dir::Unspec && dir != Dir::Src {
                    return Err(FilterError::Unsupported {
                        at: self.pos(dir_tok.expect("a qualifier")),
                        found: format!("{} tos", self.text(dir_tok.expect("a qualifier"))),
                        reason: "the flow schema has only the source ToS byte (tos)".into(),
                    });
                }
                let cmp = self.comparator();
                let (n, nt) = self.number("a ToS value 0..255")?;
                self.check_max(n, 255, nt, "a ToS value 0..255")?;
                Ok(Expr::cmp(Field::Tos, cmp, n))
            }
            "flags" => self.parse_flags(),
            "next" => {
                let ip = self.peek();
                if self.is_word(ip, "ip") {
                    self.bump();
                    Ok(Expr::Prefix {
                        field: Field::NextHop,
                        prefixes: self.parse_hosts()?,
                    })
                } else if self.is_word(ip, "as") {
                    Err(FilterError::Unsupported {
                        at: self.pos(t),
                        found: "next as".into(),
                        reason: "the flow schema has no adjacent AS".into(),
                    })
                } else {
                    Err(self.unexpected(ip, &["ip"]))
                }
            }
            "router" => {
                // nfdump's router is the exporter's address.
                let ip = self.peek();
                if !self.is_word(ip, "ip") {
                    return Err(self.unexpected(ip, &["ip"]));
                }
                self.bump();
                Ok(Expr::Prefix {
                    field: Field::Exporter,
                    prefixes: self.parse_hosts()?,
                })
            }
            "icmp-type" | "icmp-code" => {
                let (n, nt) = self.number("an ICMP type or code 0..255")?;
                self.check_max(n, 255, nt, "an ICMP type or code 0..255")?;
                // Exporters carry ICMP type and code in the destination port: type*256+code.
                let test = if w == "icmp-type" {
                    Expr::In {
                        field: Field::DstPort,
                        ranges: vec![(n * 256, n * 256 + 255)],
                    }
                } else {
                    Expr::Bits {
                        field: Field::DstPort,
                        mask: 0xff,
                        value: n,
                    }
                };
                Ok(Expr::and(vec![
                    Expr::In {
                        field: Field::Proto,
                        ranges: vec![(proto::ICMP as u64, proto::ICMP as u64), (58, 58)],
                    },
                    test,
                ]))
            }
            _ => {
                if let Some(field) = Field::from_name(&w) {
                    return self.parse_field(field);
                }
                // Before the unsupported keywords: a user may have defined the element
                // (`vlan`, `mpls`...) that the schema lacks.
                let custom = self.custom;
                if let Some(i) = custom
                    .fields
                    .iter()
                    .position(|f| f.name.eq_ignore_ascii_case(&w))
                {
                    return self.parse_custom(i as u16, &custom.fields[i]);
                }
                if let Some((_, reason)) = UNSUPPORTED.iter().find(|(k, _)| *k == w) {
                    return Err(FilterError::Unsupported {
                        at: self.pos(t),
                        found: self.text(t).to_string(),
                        reason: reason.to_string(),
                    });
                }
                let mut expected = s(TERM_START);
                expected.pop();
                expected.extend(FIELDS.iter().map(|f| f.name.to_string()));
                expected.extend(self.custom.fields.iter().map(|f| f.name.clone()));
                Err(FilterError::UnknownField {
                    at: self.pos(t),
                    found: self.text(t).to_string(),
                    expected,
                })
            }
        }
    }

    /// An optional comparator; `=` when absent.
    fn comparator(&mut self) -> CmpOp {
        let t = self.peek();
        let op = match t.kind {
            Tok::Cmp(op) => Some(op),
            Tok::Word => match self.text(t).to_ascii_lowercase().as_str() {
                "eq" => Some(CmpOp::Eq),
                "ne" => Some(CmpOp::Ne),
                "lt" => Some(CmpOp::Lt),
                "gt" => Some(CmpOp::Gt),
                "le" => Some(CmpOp::Le),
                "ge" => Some(CmpOp::Ge),
                _ => None,
            },
            _ => None,
        };
        if op.is_some() {
            self.bump();
        }
        op.unwrap_or(CmpOp::Eq)
    }

    /// A number token: decimal with k/M/G/T suffix (x1000), or 0x hex.
    fn number(&mut self, what: &str) -> Result<(u64, Token), FilterError> {
        self.number_as(what, &format!("{what}, at most {}", u64::MAX), parse_number)
    }

    /// A number token read by `parse` (`Err(true)`: out of range, expected `range`;
    /// `Err(false)`: not a number, expected `what`).
    fn number_as<T>(
        &mut self,
        what: &str,
        range: &str,
        parse: impl Fn(&str) -> Result<T, bool>,
    ) -> Result<(T, Token), FilterError> {
        let t = self.peek();
        if t.kind != Tok::Word {
            return Err(self.unexpected(t, &[what]));
        }
        self.bump();
        let n = parse(self.text(t)).map_err(|overflow| {
            if overflow {
                FilterError::OutOfRange {
                    at: self.pos(t),
                    found: self.text(t).to_string(),
                    expected: vec![range.to_string()],
                }
            } else {
                FilterError::InvalidNumber {
                    at: self.pos(t),
                    found: self.text(t).to_string(),
                    expected: vec![what.to_string()],
                }
            }
        })?;
        Ok((n, t))
    }

    fn check_max(&self, n: u64, max: u64, t: Token, what: &str) -> Result<(), FilterError> {
        if n > max {
            return Err(FilterError::OutOfRange {
                at: self.pos(t),
                found: self.text(t).to_string(),
                expected: vec![what.to_string()],
            });
        }
        Ok(())
    }

    fn parse_proto(&mut self) -> Result<Expr, FilterError> {
        let cmp = self.comparator();
        let t = self.peek();
        if t.kind != Tok::Word {
            return Err(self.unexpected(t, &["a protocol name (tcp, udp, icmp, ...) or number"]));
        }
        self.bump();
        let text = self.text(t);
        let n = if text.starts_with(|c: char| c.is_ascii_digit()) {
            let n = parse_number(text).map_err(|overflow| {
                let (at, found, expected) = (
                    self.pos(t),
                    text.to_string(),
                    s(&["a protocol number 0..255"]),
                );
                if overflow {
                    FilterError::OutOfRange {
                        at,
                        found,
                        expected,
                    }
                } else {
                    FilterError::InvalidNumber {
                        at,
                        found,
                        expected,
                    }
                }
            })?;
            self.check_max(n, 255, t, "a protocol number 0..255")?;
            n
        } else {
            proto::from_name(text).ok_or_else(|| FilterError::UnknownProtocol {
                at: self.pos(t),
                found: text.to_string(),
            })? as u64
        };
        Ok(Expr::cmp(Field::Proto, cmp, n))
    }

    /// `flags LETTERS` (all given flags set, TCP implied) or `flags [cmp] NUMBER` (TCP
    /// implied), as nfdump.
    fn parse_flags(&mut self) -> Result<Expr, FilterError> {
        let tcp = Expr::eq(Field::Proto, proto::TCP as u64);
        let t = self.peek();
        let letters = t.kind == Tok::Word
            && !self.text(t).starts_with(|c: char| c.is_ascii_digit())
            && !matches!(
                self.word_lc(t).as_deref(),
                Some("eq" | "ne" | "lt" | "gt" | "le" | "ge")
            );
        if letters {
            self.bump();
            let mut mask = 0u64;
            for c in self.text(t).chars() {
                mask |= match c.to_ascii_uppercase() {
                    'F' => 0x01,
                    'S' => 0x02,
                    'R' => 0x04,
                    'P' => 0x08,
                    'A' => 0x10,
                    'U' => 0x20,
                    'E' => 0x40,
                    'C' => 0x80,
                    'X' => 0x3f,
                    _ => {
                        return Err(FilterError::InvalidFlags {
                            at: self.pos(t),
                            found: self.text(t).to_string(),
                        });
                    }
                };
            }
            return Ok(Expr::and(vec![
                tcp,
                Expr::Bits {
                    field: Field::TcpFlags,
                    mask,
                    value: mask,
                },
            ]));
        }
        let cmp = self.comparator();
        let (n, nt) = self.number("TCP flag letters (FSRPAUEC) or a number 0..255")?;
        self.check_max(n, 255, nt, "a flags value 0..255")?;
        Ok(Expr::and(vec![tcp, Expr::cmp(Field::TcpFlags, cmp, n)]))
    }

    /// `[cmp] NUMBER` or `in [ list ]` on a src/dst field pair.
    fn parse_numeric_or_list(
        &mut self,
        dir: Dir,
        src: Field,
        dst: Field,
        what: &str,
    ) -> Result<Expr, FilterError> {
        let max = crate::ir::field_max(src).expect("integer field");
        if self.is_word(self.peek(), "in") {
            self.bump();
            let ranges = self.parse_num_list(max, what)?;
            return Ok(dir_expand(dir, src, dst, |f| Expr::In {
                field: f,
                ranges: ranges.clone(),
            }));
        }
        let cmp = self.comparator();
        let (n, nt) = self.number(what)?;
        self.check_max(n, max, nt, what)?;
        Ok(dir_expand(dir, src, dst, |f| Expr::cmp(f, cmp, n)))
    }

    /// `[ a b-c, d ]`: numbers or ranges, separated by blanks or commas.
    fn parse_num_list(&mut self, max: u64, what: &str) -> Result<Vec<(u64, u64)>, FilterError> {
        self.parse_range_list(what, false, |t| match parse_number(t) {
            Ok(n) if n > max => Err(true),
            r => r,
        })
    }

    /// `[ a b-c, d ]` of numbers read by `parse` (see [`Parser::number_as`]); `exponent`:
    /// the numbers may have one (`1e-3`), whose `-` is no range dash.
    fn parse_range_list<T: PartialOrd + Clone>(
        &mut self,
        what: &str,
        exponent: bool,
        parse: impl Fn(&str) -> Result<T, bool>,
    ) -> Result<Vec<(T, T)>, FilterError> {
        self.expect(Tok::LBracket, "[")?;
        let mut out = Vec::new();
        loop {
            let t = self.peek();
            match t.kind {
                Tok::RBracket if !out.is_empty() => {
                    self.bump();
                    return Ok(out);
                }
                Tok::Comma if !out.is_empty() => {
                    self.bump();
                }
                Tok::Word => {
                    self.bump();
                    let text = self.text(t);
                    let bad = |overflow: bool| {
                        if overflow {
                            FilterError::OutOfRange {
                                at: self.pos(t),
                                found: text.to_string(),
                                expected: s(&[what]),
                            }
                        } else {
                            FilterError::InvalidNumber {
                                at: self.pos(t),
                                found: text.to_string(),
                                expected: vec![format!("{what} or a range a-b")],
                            }
                        }
                    };
                    let (lo, hi) = match split_range(text, exponent) {
                        Some((a, b)) => (parse(a).map_err(bad)?, parse(b).map_err(bad)?),
                        None => {
                            let n = parse(text).map_err(bad)?;
                            (n.clone(), n)
                        }
                    };
                    if lo > hi {
                        return Err(bad(true));
                    }
                    out.push((lo, hi));
                }
                _ => {
                    let exp: &[&str] = if out.is_empty() {
                        &[what]
                    } else {
                        &[what, ",", "]"]
                    };
                    return Err(self.unexpected(t, exp));
                }
            }
        }
    }

    /// After `ip`/`host`/`next ip`: one address, or `in [ addresses and prefixes ]`.
    fn parse_hosts(&mut self) -> Result<Vec<Prefix>, FilterError> {
        if self.is_word(self.peek(), "in") {
            self.bump();
            return self.parse_addr_list();
        }
        let t = self.peek();
        if t.kind != Tok::Word {
            return Err(self.unexpected(t, &["an IPv4 or IPv6 address", "in"]));
        }
        self.bump();
        Ok(vec![Prefix::host(self.full_addr(t)?)])
    }

    fn full_addr(&self, t: Token) -> Result<Addr, FilterError> {
        let text = self.text(t);
        text.parse::<Addr>()
            .map_err(|_| FilterError::InvalidAddress {
                at: self.pos(t),
                found: text.to_string(),
                reason: if text.contains(|c: char| c.is_ascii_alphabetic() && c > 'f')
                    && !text.contains(':')
                {
                    "host names are not resolved; give an address".into()
                } else {
                    "not a complete IPv4 or IPv6 address".into()
                },
                expected: s(&["an IPv4 or IPv6 address"]),
            })
    }

    /// `[ a.b.c.d  x::y/64, e.f.g.h/24 ]`
    fn parse_addr_list(&mut self) -> Result<Vec<Prefix>, FilterError> {
        self.expect(Tok::LBracket, "[")?;
        let mut out = Vec::new();
        loop {
            let t = self.peek();
            match t.kind {
                Tok::RBracket if !out.is_empty() => {
                    self.bump();
                    return Ok(out);
                }
                Tok::Comma if !out.is_empty() => {
                    self.bump();
                }
                Tok::Word => {
                    self.bump();
                    let a = self.full_addr(t)?;
                    if self.peek().kind == Tok::Slash {
                        self.bump();
                        out.push(self.prefix_len(a, t, a.family_bits() / 8)?);
                    } else {
                        out.push(Prefix::host(a));
                    }
                }
                _ => {
                    let exp: &[&str] = if out.is_empty() {
                        &["an address or prefix"]
                    } else {
                        &["an address or prefix", ",", "]"]
                    };
                    return Err(self.unexpected(t, exp));
                }
            }
        }
    }

    /// The `/LEN` after an address `a` written with `bytes` bytes (IPv4 may be abbreviated).
    fn prefix_len(&mut self, a: Addr, at: Token, bytes: u8) -> Result<Prefix, FilterError> {
        let (n, nt) = self.number("a prefix length")?;
        let max = bytes as u64 * 8;
        if n > max {
            return Err(FilterError::OutOfRange {
                at: self.pos(nt),
                found: self.text(nt).to_string(),
                expected: vec![format!("a prefix length 0..{max} for {}", self.text(at))],
            });
        }
        Ok(Prefix::new(a, n as u8))
    }

    /// After `net`: `ADDR/LEN` (IPv4 may be abbreviated: `172.16/12`) or `IPV4 NETMASK`.
    fn parse_net(&mut self) -> Result<Prefix, FilterError> {
        let t = self.peek();
        if t.kind != Tok::Word {
            return Err(self.unexpected(t, &["a network address"]));
        }
        self.bump();
        let text = self.text(t);
        let (addr, bytes) = match parse_partial_v4(text) {
            Some((a, n)) => (a, n),
            None => {
                let a = self.full_addr(t)?;
                (a, a.family_bits() / 8)
            }
        };
        let next = self.peek();
        if next.kind == Tok::Slash {
            self.bump();
            return self.prefix_len(addr, t, bytes);
        }
        if next.kind == Tok::Word && addr.is_v4() && bytes == 4 {
            self.bump();
            let mtext = self.text(next);
            let bad = |reason: &str| FilterError::InvalidAddress {
                at: self.pos(next),
                found: mtext.to_string(),
                reason: reason.to_string(),
                expected: s(&["an IPv4 netmask such as 255.255.0.0"]),
            };
            let m = mtext
                .parse::<std::net::Ipv4Addr>()
                .map_err(|_| bad("not an IPv4 netmask"))?;
            let m = u32::from(m);
            if m.leading_ones() + m.trailing_zeros() != 32 {
                return Err(bad("the netmask is not contiguous (use a prefix length)"));
            }
            return Ok(Prefix::new(addr, m.leading_ones() as u8));
        }
        let exp: &[&str] = if addr.is_v4() && bytes == 4 {
            &["/ and a prefix length", "an IPv4 netmask"]
        } else {
            &["/ and a prefix length"]
        };
        Err(self.unexpected(next, exp))
    }

    /// A schema field by name: integers take `[cmp] N`, `in [list]` or `& MASK = VALUE`;
    /// addresses take `[= | !=] ADDR[/LEN]` or `in [list]`; times also take
    /// `YYYY-MM-DDThh:mm:ss[.mmm]` (UTC).
    fn parse_field(&mut self, field: Field) -> Result<Expr, FilterError> {
        let info = field.info();
        let what = match info.kind {
            Kind::Address => "an address or prefix".to_string(),
            Kind::TimeMs => "Unix milliseconds or YYYY-MM-DDThh:mm:ss (UTC)".to_string(),
            Kind::Unsigned(b) => {
                format!(
                    "a number 0..{}",
                    crate::ir::field_max(field).expect("integer")
                ) + if b == 64 {
                    " (k, M, G, T suffixes)"
                } else {
                    ""
                }
            }
        };
        let max = crate::ir::field_max(field);
        if self.is_word(self.peek(), "in") {
            self.bump();
            return Ok(match max {
                None => Expr::Prefix {
                    field,
                    prefixes: self.parse_addr_list()?,
                },
                Some(m) => Expr::In {
                    field,
                    ranges: self.parse_num_list(m, &what)?,
                },
            });
        }
        if self.peek().kind == Tok::Amp {
            let amp = self.bump();
            if max.is_none() {
                return Err(self.mismatch(amp, info.name, &["=", "!=", "in"]));
            }
            let (mask, _) = self.number("a bit mask")?;
            let eq = self.peek();
            if eq.kind != Tok::Cmp(CmpOp::Eq) {
                return Err(self.unexpected(eq, &["="]));
            }
            self.bump();
            let (value, _) = self.number("the masked value")?;
            return Ok(Expr::Bits { field, mask, value });
        }
        match max {
            None => {
                let cmp = self.eq_or_ne(info.name, &["=", "!=", "in"])?;
                let e = Expr::Prefix {
                    field,
                    prefixes: vec![self.addr_value(&what)?],
                };
                Ok(if cmp == CmpOp::Ne { Expr::not(e) } else { e })
            }
            Some(m) => {
                let cmp = self.comparator();
                let t = self.peek();
                let n = if info.kind == Kind::TimeMs
                    && t.kind == Tok::Word
                    && let Some(ms) = parse_datetime(self.text(t))
                {
                    self.bump();
                    ms
                } else {
                    let (n, nt) = self.number(&what)?;
                    self.check_max(n, m, nt, &what)?;
                    n
                };
                Ok(Expr::cmp(field, cmp, n))
            }
        }
    }

    // ---- user-defined elements ----

    /// "`t` does not apply to field `field`, expected ...".
    fn mismatch(&self, t: Token, field: &str, expected: &[&str]) -> FilterError {
        FilterError::TypeMismatch {
            at: self.pos(t),
            found: format!("'{}'", self.text(t)),
            field: field.into(),
            expected: s(expected),
        }
    }

    /// An optional `=` or `!=` (`=` when absent); another comparator is a type error.
    fn eq_or_ne(&mut self, field: &str, expected: &[&str]) -> Result<CmpOp, FilterError> {
        let t = self.peek();
        match self.comparator() {
            c @ (CmpOp::Eq | CmpOp::Ne) => Ok(c),
            _ => Err(self.mismatch(t, field, expected)),
        }
    }

    /// `ADDR` (a host) or `ADDR/LEN`.
    fn addr_value(&mut self, what: &str) -> Result<Prefix, FilterError> {
        let t = self.peek();
        if t.kind != Tok::Word {
            return Err(self.unexpected(t, &[what]));
        }
        self.bump();
        let a = self.full_addr(t)?;
        if self.peek().kind == Tok::Slash {
            self.bump();
            self.prefix_len(a, t, a.family_bits() / 8)
        } else {
            Ok(Prefix::host(a))
        }
    }

    /// A type error when the next token is a string but `what` is expected.
    fn no_string(&self, field: &str, what: &str) -> Result<(), FilterError> {
        let t = self.peek();
        if t.kind == Tok::Str {
            return Err(self.mismatch(t, field, &[what]));
        }
        Ok(())
    }

    /// After the name of user-defined element `index`: `exists`, or the forms of its kind
    /// (numbers: `[cmp] N`, `in [list]`; strings: `[= | !=] "text"`, `~ "text"`; bytes:
    /// `[= | !=] 0x..`; addresses: `[= | !=] ADDR[/LEN]`, `in [list]`).
    fn parse_custom(&mut self, index: u16, def: &CustomField) -> Result<Expr, FilterError> {
        let name = def.name.as_str();
        let test = if self.is_word(self.peek(), "exists") {
            self.bump();
            CustomTest::Exists(def.kind)
        } else {
            match def.kind {
                CustomKind::Unsigned => CustomTest::Unsigned(self.custom_number(name)?),
                CustomKind::Signed => CustomTest::Signed(self.custom_number(name)?),
                CustomKind::Float => CustomTest::Float(self.custom_number(name)?),
                CustomKind::String => self.custom_string(name)?,
                CustomKind::Bytes => self.custom_bytes(name)?,
                CustomKind::Address => self.custom_address(name)?,
            }
        };
        Ok(Expr::Custom {
            index,
            name: def.name.clone(),
            test,
        })
    }

    /// Rejects `&`, `~` and `in` where the kind of `field` does not take them.
    fn no_operator(&self, field: &str, in_ok: bool, expected: &[&str]) -> Result<(), FilterError> {
        let t = self.peek();
        if matches!(t.kind, Tok::Amp | Tok::Tilde) || (!in_ok && self.is_word(t, "in")) {
            return Err(self.mismatch(t, field, expected));
        }
        Ok(())
    }

    fn custom_number<T: CustomNumber>(&mut self, field: &str) -> Result<NumTest<T>, FilterError> {
        if self.is_word(self.peek(), "in") {
            self.bump();
            let ranges = self.parse_range_list(T::WHAT, T::EXPONENT, T::parse)?;
            return Ok(NumTest::In { ranges });
        }
        self.no_operator(
            field,
            true,
            &["=", "!=", "<", "<=", ">", ">=", "in", "exists"],
        )?;
        let cmp = self.comparator();
        self.no_string(field, T::WHAT)?;
        let (value, _) = self.number_as(T::WHAT, T::WHAT, T::parse)?;
        Ok(NumTest::Cmp { cmp, value })
    }

    fn custom_string(&mut self, field: &str) -> Result<CustomTest, FilterError> {
        const WHAT: &str = "a quoted string such as \"text\"";
        let ops = ["=", "!=", "~", "exists"];
        let contains = self.peek().kind == Tok::Tilde;
        let cmp = if contains {
            self.bump();
            CmpOp::Eq
        } else {
            self.no_operator(field, false, &ops)?;
            self.eq_or_ne(field, &ops)?
        };
        let t = self.peek();
        let text = match t.kind {
            Tok::Str => {
                self.bump();
                unquote(self.text(t))
            }
            Tok::Word => return Err(self.mismatch(t, field, &[WHAT])),
            _ => return Err(self.unexpected(t, &[WHAT])),
        };
        Ok(if contains {
            CustomTest::Contains { text }
        } else {
            CustomTest::String { cmp, text }
        })
    }

    fn custom_bytes(&mut self, field: &str) -> Result<CustomTest, FilterError> {
        const WHAT: &str = "bytes in hex: 0x and two hex digits a byte";
        let ops = ["=", "!=", "exists"];
        self.no_operator(field, false, &ops)?;
        let cmp = self.eq_or_ne(field, &ops)?;
        self.no_string(field, WHAT)?;
        let (value, _) = self.number_as(WHAT, WHAT, |t| parse_hex_bytes(t).ok_or(false))?;
        Ok(CustomTest::Bytes { cmp, value })
    }

    fn custom_address(&mut self, field: &str) -> Result<CustomTest, FilterError> {
        const WHAT: &str = "an address or prefix";
        if self.is_word(self.peek(), "in") {
            self.bump();
            let prefixes = self.parse_addr_list()?;
            return Ok(CustomTest::AddressIn { prefixes });
        }
        let ops = ["=", "!=", "in", "exists"];
        self.no_operator(field, true, &ops)?;
        let cmp = self.eq_or_ne(field, &ops)?;
        self.no_string(field, WHAT)?;
        let prefix = self.addr_value(WHAT)?;
        Ok(CustomTest::Address { cmp, prefix })
    }
}

/// The number types of user-defined elements, and how their constants are written.
trait CustomNumber: PartialOrd + Clone {
    /// What a constant looks like, for the "expected" lists.
    const WHAT: &'static str;
    /// Whether constants may have an exponent (`1e-3`).
    const EXPONENT: bool = false;
    /// `Err(true)`: out of range; `Err(false)`: not a number of this type.
    fn parse(text: &str) -> Result<Self, bool>;
}

impl CustomNumber for u64 {
    const WHAT: &'static str = "a number 0..18446744073709551615 (k, M, G, T suffixes)";
    fn parse(text: &str) -> Result<u64, bool> {
        parse_number(text)
    }
}

impl CustomNumber for i64 {
    const WHAT: &'static str =
        "a number -9223372036854775808..9223372036854775807 (k, M, G, T suffixes)";
    fn parse(text: &str) -> Result<i64, bool> {
        parse_signed(text)
    }
}

impl CustomNumber for Float {
    const WHAT: &'static str = "a number such as 1.5, -2 or 3e-3 (k, M, G, T suffixes)";
    const EXPONENT: bool = true;
    fn parse(text: &str) -> Result<Float, bool> {
        parse_float(text)
    }
}

/// Splits a list item `a-b` at its range dash: the first `-` that is not the sign of `a`
/// nor, with `exponent`, the sign of an exponent (`1e-3`). `None` for a single number.
fn split_range(text: &str, exponent: bool) -> Option<(&str, &str)> {
    let b = text.as_bytes();
    (1..b.len())
        .find(|&i| b[i] == b'-' && !(exponent && matches!(b[i - 1], b'e' | b'E')))
        .map(|i| (&text[..i], &text[i + 1..]))
}

/// A signed number: [`parse_number`]'s forms with an optional `-`.
fn parse_signed(text: &str) -> Result<i64, bool> {
    match text.strip_prefix('-') {
        Some(m) => {
            let m = parse_number(m)?;
            if m > 1 << 63 {
                return Err(true);
            }
            // -(2^63) is i64::MIN: the cast wraps to it and negating it leaves it.
            Ok((m as i64).wrapping_neg())
        }
        None => i64::try_from(parse_number(text)?).map_err(|_| true),
    }
}

/// A float: an optional `-`, a decimal with an optional fraction and exponent (`1.5`,
/// `.5`, `3e-3`) and an optional k/M/G/T suffix (x1000 each, applied exactly: `1.1k` is
/// 1100), or `0x` hex. NaN and infinities are not numbers here; a value too large for an f64
/// is out of range.
fn parse_float(text: &str) -> Result<Float, bool> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let x = if body.starts_with("0x") || body.starts_with("0X") {
        parse_number(body)? as f64
    } else {
        let (digits, exp) = match body.as_bytes().last() {
            Some(b'k' | b'K') => (&body[..body.len() - 1], 3),
            Some(b'm' | b'M') => (&body[..body.len() - 1], 6),
            Some(b'g' | b'G') => (&body[..body.len() - 1], 9),
            Some(b't' | b'T') => (&body[..body.len() - 1], 12),
            _ => (body, 0),
        };
        let ok = digits.starts_with(|c: char| c.is_ascii_digit() || c == '.')
            && digits.bytes().any(|b| b.is_ascii_digit())
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-'))
            && !(exp > 0 && digits.contains(['e', 'E']));
        if !ok {
            return Err(false);
        }
        // The suffix as a decimal exponent, so that the result is correctly rounded.
        let x: f64 = if exp > 0 {
            format!("{digits}e{exp}").parse()
        } else {
            digits.parse()
        }
        .map_err(|_| false)?;
        x
    };
    Float::new(if neg { -x } else { x }).ok_or(true)
}

/// True for the words that start a term (keywords, schema field names, unsupported nfdump
/// keywords): after a qualifier, these get the "wrong qualifier" error.
fn is_keyword(w: &str) -> bool {
    TERM_START.contains(&w)
        || matches!(w, "ip" | "host" | "ipv4" | "ipv6")
        || Field::from_name(w).is_some()
        || UNSUPPORTED.iter().any(|(k, _)| *k == w)
}

/// Applies a direction qualifier to a src/dst pair of leaves.
fn dir_expand(dir: Dir, src: Field, dst: Field, leaf: impl Fn(Field) -> Expr) -> Expr {
    match dir {
        Dir::Src => leaf(src),
        Dir::Dst => leaf(dst),
        Dir::SrcAndDst => Expr::and(vec![leaf(src), leaf(dst)]),
        Dir::Unspec | Dir::SrcOrDst | Dir::In | Dir::Out => Expr::or(vec![leaf(src), leaf(dst)]),
    }
}

/// Parses a number: decimal with an optional k/M/G/T suffix (x1000 each, nfdump's scanner),
/// or `0x` hex. `Err(true)` on overflow, `Err(false)` when not a number.
pub(crate) fn parse_number(text: &str) -> Result<u64, bool> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(false);
        }
        return u64::from_str_radix(hex, 16).map_err(|_| true);
    }
    let (digits, mult) = match text.as_bytes().last() {
        Some(b'k' | b'K') => (&text[..text.len() - 1], 1_000u64),
        Some(b'm' | b'M') => (&text[..text.len() - 1], 1_000_000),
        Some(b'g' | b'G') => (&text[..text.len() - 1], 1_000_000_000),
        Some(b't' | b'T') => (&text[..text.len() - 1], 1_000_000_000_000),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(false);
    }
    digits
        .parse::<u64>()
        .map_err(|_| true)?
        .checked_mul(mult)
        .ok_or(true)
}

/// An IPv4 address with one to four octets (`10`, `172.16`, `192.168.1`), zero-filled, and
/// the number of octets given. `None` for anything else.
fn parse_partial_v4(text: &str) -> Option<(Addr, u8)> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > 4 || text.contains(':') {
        return None;
    }
    let mut o = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        o[i] = p.parse().ok()?;
    }
    Some((Addr::from_v4_octets(o), parts.len() as u8))
}

/// `YYYY-MM-DDThh:mm:ss[.mmm]` (UTC) to Unix ms.
fn parse_datetime(text: &str) -> Option<u64> {
    let (date, time) = text.split_once(['T', 't'])?;
    let d: Vec<&str> = date.split('-').collect();
    let (time, ms) = match time.split_once('.') {
        Some((t, f)) if !f.is_empty() && f.len() <= 3 && f.bytes().all(|b| b.is_ascii_digit()) => {
            (t, f.parse::<u64>().ok()? * 10u64.pow(3 - f.len() as u32))
        }
        Some(_) => return None,
        None => (time, 0),
    };
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let num = |s: &str, max: u32| -> Option<u32> {
        let v: u32 = s.parse().ok()?;
        (v <= max).then_some(v)
    };
    let y: i64 = d[0].parse().ok()?;
    let (mo, da) = (num(d[1], 12)?, num(d[2], 31)?);
    let (h, mi, se) = (num(t[0], 23)?, num(t[1], 59)?, num(t[2], 60)?);
    if !(1970..=9999).contains(&y) || mo == 0 || da == 0 {
        return None;
    }
    Some(flowdrill_model::time::ms_from_civil(y, mo, da, h, mi, se) + ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_take_nfdump_suffixes() {
        assert_eq!(parse_number("1k"), Ok(1000));
        assert_eq!(parse_number("2M"), Ok(2_000_000));
        assert_eq!(parse_number("3g"), Ok(3_000_000_000));
        assert_eq!(parse_number("1T"), Ok(1_000_000_000_000));
        assert_eq!(parse_number("0x1F"), Ok(31));
        assert_eq!(parse_number("x"), Err(false));
        assert_eq!(parse_number("k"), Err(false));
        assert_eq!(parse_number("99999999999999999999"), Err(true));
        assert_eq!(parse_number("18446744073709552G"), Err(true));
    }

    #[test]
    fn partial_ipv4_and_datetimes() {
        assert_eq!(
            parse_partial_v4("172.16"),
            Some(("172.16.0.0".parse().unwrap(), 2))
        );
        assert_eq!(parse_partial_v4("1.2.3.4.5"), None);
        assert_eq!(parse_partial_v4("::1"), None);
        assert_eq!(
            parse_datetime("2024-01-01T00:00:01.5"),
            Some(1_704_067_201_500)
        );
        assert_eq!(parse_datetime("2024-13-01T00:00:00"), None);
        assert_eq!(parse_datetime("2024-01-01"), None);
    }

    #[test]
    fn qualifiers_combine_with_or_and_and() {
        let p = |s: &str| Parser::new(s).unwrap().parse_filter().unwrap().simplify();
        assert_eq!(
            p("src and dst port 80"),
            Expr::and(vec![
                Expr::eq(Field::SrcPort, 80),
                Expr::eq(Field::DstPort, 80)
            ])
        );
        assert_eq!(p("dst or src port 80"), p("port 80"));
        assert_eq!(
            p("src port 1 or dst port 2").to_string(),
            "src_port = 1 or dst_port = 2"
        );
    }

    #[test]
    fn signed_and_float_constants() {
        assert_eq!(parse_signed("-5k"), Ok(-5000));
        assert_eq!(parse_signed("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_signed("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_signed("9223372036854775808"), Err(true));
        assert_eq!(parse_signed("-9223372036854775809"), Err(true));
        assert_eq!(parse_signed("--5"), Err(false));
        assert_eq!(parse_signed("-0x10"), Ok(-16));
        let f = |t: &str| parse_float(t).map(Float::get);
        assert_eq!(f("1.5"), Ok(1.5));
        assert_eq!(f("-.5"), Ok(-0.5));
        assert_eq!(f("1.1k"), Ok(1100.0));
        assert_eq!(f("3e-3"), Ok(0.003));
        assert_eq!(f("2M"), Ok(2e6));
        assert_eq!(f("0x10"), Ok(16.0));
        assert_eq!(f("-0"), Ok(0.0));
        assert_eq!(f("1e400"), Err(true));
        for bad in [
            "nan", "inf", "-inf", "e5", "1e3k", "1.5x", "", "-", "1-2", ".",
        ] {
            assert_eq!(f(bad), Err(false), "{bad}");
        }
        assert_eq!(split_range("-5--1", false), Some(("-5", "-1")));
        assert_eq!(split_range("0xe-0x10", false), Some(("0xe", "0x10")));
        assert_eq!(split_range("1e-3-2", true), Some(("1e-3", "2")));
        assert_eq!(split_range("-5", false), None);
    }
}
