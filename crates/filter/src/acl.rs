//! Netpy's ACL rule lists: ordered rules, first match wins, each rule compiled to the same
//! predicate IR as the expression language.
//!
//! Text form, one rule per line (blank lines and `#` comments ignored):
//!
//! ```text
//! # ACTION  SRC          DST          PROTO  SPORTS  DPORTS
//! web       0.0.0.0/0    10.0.0.0/8   tcp    *       80,443,8000-8080
//! deny      192.0.2.7    *            *      *       *
//! permit    *            *            udp    *       53
//! ```
//!
//! - ACTION: `permit`, `deny` or any other label of `[A-Za-z0-9_-]`.
//! - SRC, DST: `*` (any address of either family), an address (a host) or a prefix.
//!   Like everywhere in flowdrill, `0.0.0.0/0` is "any IPv4" and `::/0` "any IPv6".
//! - PROTO: `*`, a protocol name (`tcp`, `udp`, `icmp`, ...) or number.
//! - SPORTS, DPORTS: `*` or a comma-separated list of ports and ranges `a-b`. Ports are
//!   compared as the record carries them: for ICMP the destination port is type*256+code.
//!
//! A record's class is the action of the first rule it matches; a record no rule matches has
//! none. [`RuleList::selecting`] turns "first matching rule has action X" into one [`Expr`],
//! so an ACL can be used wherever a filter can.

use crate::error::{FilterError, Position};
use crate::eval::Bitmap;
use crate::ir::Expr;
use flowdrill_model::{ColumnSource, Field, FlowRecord, Prefix, proto};
use std::fmt;

/// What a rule does with the records it matches first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Permit,
    Deny,
    /// Any other label, e.g. a traffic class name.
    Label(String),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Permit => f.write_str("permit"),
            Action::Deny => f.write_str("deny"),
            Action::Label(l) => f.write_str(l),
        }
    }
}

/// One rule. `None` fields are wildcards (`*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    pub src: Option<Prefix>,
    pub dst: Option<Prefix>,
    pub proto: Option<u8>,
    pub src_ports: Option<Vec<(u16, u16)>>,
    pub dst_ports: Option<Vec<(u16, u16)>>,
    /// The line (1-based) the rule was read from.
    pub line: usize,
}

impl Rule {
    /// The rule's match condition (ignoring earlier rules), simplified.
    pub fn to_expr(&self) -> Expr {
        let mut args = Vec::new();
        if let Some(p) = self.src {
            args.push(Expr::Prefix {
                field: Field::SrcAddr,
                prefixes: vec![p],
            });
        }
        if let Some(p) = self.dst {
            args.push(Expr::Prefix {
                field: Field::DstAddr,
                prefixes: vec![p],
            });
        }
        if let Some(p) = self.proto {
            args.push(Expr::eq(Field::Proto, p as u64));
        }
        for (field, ports) in [
            (Field::SrcPort, &self.src_ports),
            (Field::DstPort, &self.dst_ports),
        ] {
            if let Some(r) = ports {
                args.push(Expr::In {
                    field,
                    ranges: r.iter().map(|&(a, b)| (a as u64, b as u64)).collect(),
                });
            }
        }
        Expr::and(args).simplify()
    }
}

impl fmt::Display for Rule {
    /// The rule in its text form (reads back to the same rule).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = |p: &Option<Prefix>| p.map_or("*".to_string(), |p| p.to_string());
        let ports = |p: &Option<Vec<(u16, u16)>>| match p {
            None => "*".to_string(),
            Some(r) => r
                .iter()
                .map(|&(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        write!(
            f,
            "{} {} {} {} {} {}",
            self.action,
            addr(&self.src),
            addr(&self.dst),
            self.proto
                .map_or("*".to_string(), |p| proto::name(p).to_lowercase()),
            ports(&self.src_ports),
            ports(&self.dst_ports)
        )
    }
}

/// An ordered rule list; the first matching rule decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleList {
    pub rules: Vec<Rule>,
    /// `rules[i].to_expr()`, computed once.
    exprs: Vec<Expr>,
}

const COLUMNS: [&str; 6] = [
    "an action (permit, deny or a label)",
    "a source prefix or *",
    "a destination prefix or *",
    "a protocol or *",
    "source ports or *",
    "destination ports or *",
];

impl RuleList {
    /// Builds a list from rules.
    pub fn new(rules: Vec<Rule>) -> RuleList {
        let exprs = rules.iter().map(Rule::to_expr).collect();
        RuleList { rules, exprs }
    }

    /// Parses the text form (see the module documentation). Errors carry the position in
    /// `text` (offset, line, column).
    pub fn parse(text: &str) -> Result<RuleList, FilterError> {
        let mut rules = Vec::new();
        let mut line_start = 0;
        for (ln, line) in text.split('\n').enumerate() {
            let body = line.split('#').next().unwrap_or("");
            let words: Vec<(usize, &str)> = split_words(body)
                .map(|(o, w)| (line_start + o, w))
                .collect();
            let line_end = line_start + body.trim_end().len();
            line_start += line.len() + 1;
            if words.is_empty() {
                continue;
            }
            if words.len() < 6 {
                return Err(FilterError::UnexpectedEnd {
                    at: Position::at(text, line_end),
                    expected: vec![COLUMNS[words.len()].to_string()],
                });
            }
            if let Some(&(o, w)) = words.get(6) {
                return Err(FilterError::UnexpectedToken {
                    at: Position::at(text, o),
                    found: format!("'{w}'"),
                    expected: vec!["end of rule (a rule has 6 columns)".into()],
                });
            }
            let at = |i: usize| Position::at(text, words[i].0);
            let action = match words[0].1 {
                w if w.eq_ignore_ascii_case("permit") => Action::Permit,
                w if w.eq_ignore_ascii_case("deny") => Action::Deny,
                w if w
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    Action::Label(w.to_string())
                }
                w => {
                    return Err(FilterError::InvalidAction {
                        at: at(0),
                        found: w.to_string(),
                    });
                }
            };
            let prefix = |i: usize| -> Result<Option<Prefix>, FilterError> {
                let w = words[i].1;
                if w == "*" {
                    return Ok(None);
                }
                w.parse::<Prefix>()
                    .map(Some)
                    .map_err(|e| FilterError::InvalidAddress {
                        at: at(i),
                        found: w.to_string(),
                        reason: e.to_string(),
                        expected: vec![COLUMNS[i].to_string()],
                    })
            };
            let src = prefix(1)?;
            let dst = prefix(2)?;
            let proto = match words[3].1 {
                "*" => None,
                w => Some(if w.bytes().all(|b| b.is_ascii_digit()) {
                    w.parse::<u8>().map_err(|_| FilterError::OutOfRange {
                        at: at(3),
                        found: w.to_string(),
                        expected: vec!["a protocol number 0..255".into()],
                    })
                } else {
                    proto::from_name(w).ok_or_else(|| FilterError::UnknownProtocol {
                        at: at(3),
                        found: w.to_string(),
                    })
                }?),
            };
            let src_ports = parse_ports(text, words[4], COLUMNS[4])?;
            let dst_ports = parse_ports(text, words[5], COLUMNS[5])?;
            rules.push(Rule {
                action,
                src,
                dst,
                proto,
                src_ports,
                dst_ports,
                line: ln + 1,
            });
        }
        Ok(RuleList::new(rules))
    }

    /// The index of the first rule `r` matches.
    pub fn first_match(&self, r: &FlowRecord) -> Option<usize> {
        self.exprs.iter().position(|e| e.matches(r))
    }

    /// The action of the first rule `r` matches.
    pub fn classify(&self, r: &FlowRecord) -> Option<&Action> {
        self.first_match(r).map(|i| &self.rules[i].action)
    }

    /// Column-wise [`RuleList::first_match`]: for each record of the batch, the index of the
    /// first rule it matches.
    pub fn first_matches<S: ColumnSource + ?Sized>(
        &self,
        src: &S,
    ) -> Result<Vec<Option<u32>>, FilterError> {
        let mut out = vec![None; src.len()];
        let mut left = Bitmap::ones(src.len());
        for (i, e) in self.exprs.iter().enumerate() {
            if left.count_ones() == 0 {
                break;
            }
            // Only records no earlier rule took are evaluated (and can be taken).
            let new = e.select_within(src, Some(&left))?;
            left.and_not_with(&new);
            for r in new.iter_ones() {
                out[r] = Some(i as u32);
            }
        }
        Ok(out)
    }

    /// The predicate "the first rule this record matches has an action `keep` accepts", as
    /// one expression: `r_i and not r_0 and ... and not r_{i-1}` for each such rule `i`.
    pub fn selecting(&self, keep: impl Fn(&Action) -> bool) -> Expr {
        let mut alts = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if keep(&rule.action) {
                let mut conj = vec![self.exprs[i].clone()];
                conj.extend(self.exprs[..i].iter().map(|e| Expr::not(e.clone())));
                alts.push(Expr::and(conj));
            }
        }
        Expr::or(alts).simplify()
    }

    /// Records whose first matching rule is `permit`.
    pub fn permitted(&self) -> Expr {
        self.selecting(|a| *a == Action::Permit)
    }
}

/// Whitespace-separated words of a line with their byte offsets.
fn split_words(line: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = 0;
    std::iter::from_fn(move || {
        let s = &line[rest..];
        let start = s.find(|c: char| !c.is_whitespace())?;
        let len = s[start..]
            .find(char::is_whitespace)
            .unwrap_or(s.len() - start);
        let out = (rest + start, &s[start..start + len]);
        rest += start + len;
        Some(out)
    })
}

/// `*` or `a,b-c,...` with byte positions of each item for errors.
fn parse_ports(
    text: &str,
    (off, w): (usize, &str),
    what: &str,
) -> Result<Option<Vec<(u16, u16)>>, FilterError> {
    if w == "*" {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut o = off;
    for item in w.split(',') {
        let at = Position::at(text, o);
        o += item.len() + 1;
        let num = |s: &str| -> Result<u16, FilterError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FilterError::InvalidNumber {
                    at,
                    found: if item.is_empty() { w } else { item }.to_string(),
                    expected: vec![format!("{what}: a port, a range a-b or *")],
                });
            }
            s.parse::<u16>().map_err(|_| FilterError::OutOfRange {
                at,
                found: item.to_string(),
                expected: vec!["a port 0..65535".into()],
            })
        };
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let n = num(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(FilterError::OutOfRange {
                at,
                found: item.to_string(),
                expected: vec!["a range a-b with a <= b".into()],
            });
        }
        out.push((lo, hi));
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowdrill_model::RecordColumns;

    const LIST: &str = "# a small list\n\
        web 0.0.0.0/0 10.0.0.0/8 tcp * 80,443,8000-8080\n\
        \n\
        deny 192.0.2.7 * * * *   # one bad host\n\
        permit * * udp * 53\n";

    fn rec(src: &str, dst: &str, proto: u8, dport: u16) -> FlowRecord {
        FlowRecord {
            src_addr: src.parse().unwrap(),
            dst_addr: dst.parse().unwrap(),
            proto,
            dst_port: dport,
            ..Default::default()
        }
    }

    #[test]
    fn rules_parse_and_print_back() {
        let l = RuleList::parse(LIST).unwrap();
        assert_eq!(l.rules.len(), 3);
        assert_eq!(l.rules[0].line, 2);
        assert_eq!(l.rules[1].line, 4);
        assert_eq!(
            l.rules[0].to_string(),
            "web 0.0.0.0/0 10.0.0.0/8 tcp * 80,443,8000-8080"
        );
        let again = RuleList::parse(
            &l.rules
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        assert_eq!(
            again.rules.iter().map(|r| r.to_expr()).collect::<Vec<_>>(),
            l.rules.iter().map(|r| r.to_expr()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_first_matching_rule_wins_row_and_column_wise() {
        let l = RuleList::parse(LIST).unwrap();
        let recs = vec![
            rec("192.0.2.7", "10.1.1.1", 6, 443),  // web, before deny
            rec("192.0.2.7", "8.8.8.8", 17, 53),   // deny, before permit
            rec("1.1.1.1", "8.8.8.8", 17, 53),     // permit
            rec("1.1.1.1", "10.1.1.1", 6, 22),     // nothing
            rec("2001:db8::1", "10.1.1.1", 6, 80), // web needs an IPv4 source
        ];
        let want = vec![Some(0), Some(1), Some(2), None, None];
        let rows: Vec<Option<usize>> = recs.iter().map(|r| l.first_match(r)).collect();
        assert_eq!(rows, want);
        let cols = l
            .first_matches(&RecordColumns::from_records(&recs))
            .unwrap();
        assert_eq!(
            cols,
            want.iter().map(|o| o.map(|i| i as u32)).collect::<Vec<_>>()
        );
        assert_eq!(l.classify(&recs[0]), Some(&Action::Label("web".into())));
        let permitted = l.permitted();
        // Rule 0 needs TCP, rule 2 UDP: only the deny rule constrains the permit rule.
        assert_eq!(
            permitted.to_string(),
            "proto = 17 and dst_port = 53 and not src_addr in [192.0.2.7/32]"
        );
        let sel: Vec<bool> = recs.iter().map(|r| permitted.matches(r)).collect();
        assert_eq!(sel, vec![false, false, true, false, false]);
    }

    #[test]
    fn errors_point_into_the_list() {
        let e = RuleList::parse("permit * * tcp * 80\nweb 10.0.0.0/33 * * * *").unwrap_err();
        let p = e.position().unwrap();
        assert_eq!((p.line, p.column), (2, 5));
        assert!(matches!(e, FilterError::InvalidAddress { .. }));
        let e = RuleList::parse("permit * * tcp *").unwrap_err();
        assert_eq!(e.position().unwrap().column, 17);
        assert_eq!(e.expected(), &["destination ports or *".to_string()]);
        let e = RuleList::parse("permit * * tcp * 80,9x").unwrap_err();
        assert_eq!(e.position().unwrap().column, 21);
        let e = RuleList::parse("permit * * tcp * 80 extra").unwrap_err();
        assert_eq!(e.position().unwrap().column, 21);
        let e = RuleList::parse("per!mit * * tcp * 80").unwrap_err();
        assert!(matches!(e, FilterError::InvalidAction { .. }));
        let e = RuleList::parse("deny * * bogus * *").unwrap_err();
        assert!(matches!(e, FilterError::UnknownProtocol { .. }));
        let e = RuleList::parse("deny * * * 90-80 *").unwrap_err();
        assert!(matches!(e, FilterError::OutOfRange { .. }));
    }
}
