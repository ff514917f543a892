//! Links: the rules file that maps each flow to a link, and each link's bins, budgets and
//! retention (Netpy's `links.conf`, in TOML; format in `docs/store-format.md`).
//!
//! This module owns parsing and validating the file into [`LinksConfig`] and routing one
//! record ([`LinksConfig::route`]). Rules are tried in file order; the first rule whose every
//! condition matches wins; a condition that is absent or `"*"` matches anything. A flow no rule
//! matches goes to the link [`DEFAULT_LINK`], which always exists.
//!
//! Invariants of a validated [`LinksConfig`]: link names are unique and path-safe; every rule
//! names an existing link or drops; every link has at least one level; level 0's bin divides a
//! day; each coarser level's bin is a multiple of the level below; every level's budget per bin
//! is at least [`MIN_BIN_BUDGET`].

use crate::error::{Error, Result};
use flowdrill_model::{Addr, FlowRecord, Prefix};
use serde::Deserialize;

/// The link that takes flows no rule matches.
pub const DEFAULT_LINK: &str = "default";
/// Smallest budget of one bin file: room for the footer and the statistics.
pub const MIN_BIN_BUDGET: u64 = 64 * 1024;
const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;

/// One resolution of a link's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevelConfig {
    /// Bin length, ms.
    pub bin_ms: u64,
    /// Disk budget per hour of traffic, bytes.
    pub budget_per_hour: u64,
    /// Delete bins older than this (ms), if set.
    pub max_age_ms: Option<u64>,
    /// Keep at most this many bytes of bins (oldest deleted first), if set.
    pub max_size: Option<u64>,
}

impl LevelConfig {
    /// The budget of one bin file, bytes.
    pub fn bin_budget(&self) -> u64 {
        (self.budget_per_hour as u128 * self.bin_ms as u128 / HOUR_MS as u128) as u64
    }
}

/// A link: a name and its levels, finest (level 0) first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    pub name: String,
    pub levels: Vec<LevelConfig>,
}

/// A condition on a numeric field: any value, or one of a list.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum NumMatch {
    #[default]
    Any,
    OneOf(Vec<u64>),
}

impl NumMatch {
    fn matches(&self, v: u64) -> bool {
        match self {
            NumMatch::Any => true,
            NumMatch::OneOf(vs) => vs.contains(&v),
        }
    }
}

/// A condition on an address: any, or inside one of the prefixes.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PrefixMatch {
    #[default]
    Any,
    OneOf(Vec<Prefix>),
}

impl PrefixMatch {
    fn matches(&self, a: Addr) -> bool {
        match self {
            PrefixMatch::Any => true,
            PrefixMatch::OneOf(ps) => ps.iter().any(|p| p.contains(a)),
        }
    }
}

/// What a matching rule does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Store the flow in the link with this index in [`LinksConfig::links`].
    Link(usize),
    /// Drop the flow (counted per rule).
    Drop,
}

/// One rule of the links file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The rule's name (given, or `rule N`, 1-based) used in drop counts.
    pub name: String,
    pub exporter: PrefixMatch,
    pub engine_type: NumMatch,
    pub engine_id: NumMatch,
    pub domain: NumMatch,
    pub src: PrefixMatch,
    pub dst: PrefixMatch,
    pub next_hop: PrefixMatch,
    pub in_if: NumMatch,
    pub out_if: NumMatch,
    pub action: Action,
}

impl Rule {
    fn matches(&self, r: &FlowRecord) -> bool {
        self.exporter.matches(r.exporter)
            && self.engine_type.matches((r.domain >> 8 & 0xff) as u64)
            && self.engine_id.matches((r.domain & 0xff) as u64)
            && self.domain.matches(r.domain as u64)
            && self.src.matches(r.src_addr)
            && self.dst.matches(r.dst_addr)
            && self.next_hop.matches(r.next_hop)
            && self.in_if.matches(r.in_if as u64)
            && self.out_if.matches(r.out_if as u64)
    }
}

/// Where one record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Index into [`LinksConfig::links`].
    Link(usize),
    /// Dropped by the rule with this index into [`LinksConfig::rules`].
    Drop(usize),
}

/// A validated links file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinksConfig {
    /// Every link; [`DEFAULT_LINK`] is always among them.
    pub links: Vec<LinkConfig>,
    pub rules: Vec<Rule>,
    /// Index of [`DEFAULT_LINK`] in `links`.
    pub default_link: usize,
}

impl Default for LinksConfig {
    /// One link, `default`, with the default levels.
    fn default() -> LinksConfig {
        LinksConfig::parse("", "<default>").expect("the empty links file is valid")
    }
}

// ---- the file as written ------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawLinkSettings,
    #[serde(default)]
    link: Vec<RawLink>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawLinkSettings {
    bin: Option<RawDuration>,
    budget: Option<RawSize>,
    max_age: Option<RawDuration>,
    max_size: Option<RawSize>,
    levels: Option<Vec<RawLevel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    name: String,
    bin: Option<RawDuration>,
    budget: Option<RawSize>,
    max_age: Option<RawDuration>,
    max_size: Option<RawSize>,
    levels: Option<Vec<RawLevel>>,
}

impl RawLink {
    fn settings(&self) -> RawLinkSettings {
        RawLinkSettings {
            bin: self.bin.clone(),
            budget: self.budget.clone(),
            max_age: self.max_age.clone(),
            max_size: self.max_size.clone(),
            levels: self.levels.clone(),
        }
    }
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    bin: RawDuration,
    budget: RawSize,
    max_age: Option<RawDuration>,
    max_size: Option<RawSize>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawNums {
    One(u64),
    Many(Vec<u64>),
    Text(String),
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawPrefixes {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Option<String>,
    exporter: Option<RawPrefixes>,
    engine_type: Option<RawNums>,
    engine_id: Option<RawNums>,
    domain: Option<RawNums>,
    src: Option<RawPrefixes>,
    dst: Option<RawPrefixes>,
    next_hop: Option<RawPrefixes>,
    in_if: Option<RawNums>,
    out_if: Option<RawNums>,
    link: Option<String>,
    #[serde(default)]
    drop: bool,
}

/// Parses `"10MB"`, `"512KiB"`, `"2GB"`, a bare number of bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        _ => return None,
    };
    let v = num * mult;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

/// Parses `"300s"`, `"5m"`, `"1h"`, `"7d"`, `"2w"`, a bare number of seconds; returns ms.
pub fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" | "min" => 60_000,
        "h" => HOUR_MS,
        "d" => DAY_MS,
        "w" => 7 * DAY_MS,
        _ => return None,
    };
    num.checked_mul(mult)
}

/// Finds `needle` (a rule or link header) in the text for error positions; (0, 0) if absent.
fn position_of_nth(text: &str, header: &str, n: usize) -> (usize, usize) {
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with(header) {
            if seen == n {
                return (i + 1, 1);
            }
            seen += 1;
        }
    }
    (0, 0)
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, header: &str, n: usize, message: String) -> Error {
        let (line, column) = if header.is_empty() {
            (0, 0)
        } else {
            position_of_nth(self.text, header, n)
        };
        Error::Rules {
            file: self.file.to_string(),
            line,
            column,
            message,
        }
    }
}

fn duration(ctx: &Ctx, at: (&str, usize), what: &str, d: &RawDuration) -> Result<u64> {
    let v = match d {
        RawDuration::Seconds(s) => s.checked_mul(1000),
        RawDuration::Text(t) => parse_duration(t),
    };
    match v {
        Some(v) if v > 0 => Ok(v),
        _ => Err(ctx.err(
            at.0,
            at.1,
            format!("{what}: expected a positive duration such as \"5m\", \"1h\", \"30d\""),
        )),
    }
}

fn size(ctx: &Ctx, at: (&str, usize), what: &str, s: &RawSize) -> Result<u64> {
    let v = match s {
        RawSize::Bytes(b) => Some(*b),
        RawSize::Text(t) => parse_size(t),
    };
    match v {
        Some(v) if v > 0 => Ok(v),
        _ => Err(ctx.err(
            at.0,
            at.1,
            format!("{what}: expected a positive size such as \"10MB\" or \"512KiB\""),
        )),
    }
}

fn nums(ctx: &Ctx, at: (&str, usize), what: &str, v: &Option<RawNums>) -> Result<NumMatch> {
    Ok(match v {
        None => NumMatch::Any,
        Some(RawNums::Text(t)) if t.trim() == "*" => NumMatch::Any,
        Some(RawNums::Text(_)) => {
            return Err(ctx.err(
                at.0,
                at.1,
                format!("{what}: expected a number, a list of numbers or \"*\""),
            ));
        }
        Some(RawNums::One(n)) => NumMatch::OneOf(vec![*n]),
        Some(RawNums::Many(ns)) => NumMatch::OneOf(ns.clone()),
    })
}

fn prefixes(
    ctx: &Ctx,
    at: (&str, usize),
    what: &str,
    v: &Option<RawPrefixes>,
) -> Result<PrefixMatch> {
    let list: Vec<String> = match v {
        None => return Ok(PrefixMatch::Any),
        Some(RawPrefixes::One(s)) if s.trim() == "*" => return Ok(PrefixMatch::Any),
        Some(RawPrefixes::One(s)) => vec![s.clone()],
        Some(RawPrefixes::Many(v)) => v.clone(),
    };
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        match s.trim().parse::<Prefix>() {
            Ok(p) => out.push(p),
            Err(e) => {
                return Err(ctx.err(
                    at.0,
                    at.1,
                    format!("{what}: {e}; expected a prefix such as \"192.0.2.0/24\" or \"*\""),
                ));
            }
        }
    }
    Ok(PrefixMatch::OneOf(out))
}

fn valid_link_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && !n.starts_with('.')
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn levels(
    ctx: &Ctx,
    at: (&str, usize),
    link: &str,
    s: &RawLinkSettings,
    d: &RawLinkSettings,
) -> Result<Vec<LevelConfig>> {
    let bin = match s.bin.as_ref().or(d.bin.as_ref()) {
        Some(b) => duration(ctx, at, "bin", b)?,
        None => 5 * 60_000,
    };
    let budget = match s.budget.as_ref().or(d.budget.as_ref()) {
        Some(b) => size(ctx, at, "budget", b)?,
        None => 10_000_000,
    };
    let max_age = match s.max_age.as_ref().or(d.max_age.as_ref()) {
        Some(a) => Some(duration(ctx, at, "max_age", a)?),
        None => None,
    };
    let max_size = match s.max_size.as_ref().or(d.max_size.as_ref()) {
        Some(a) => Some(size(ctx, at, "max_size", a)?),
        None => None,
    };
    let mut out = vec![LevelConfig {
        bin_ms: bin,
        budget_per_hour: budget,
        max_age_ms: max_age,
        max_size,
    }];
    match s.levels.as_ref().or(d.levels.as_ref()) {
        Some(raw) => {
            for (i, l) in raw.iter().enumerate() {
                let what = format!("levels[{i}]");
                out.push(LevelConfig {
                    bin_ms: duration(ctx, at, &format!("{what}.bin"), &l.bin)?,
                    budget_per_hour: size(ctx, at, &format!("{what}.budget"), &l.budget)?,
                    max_age_ms: match &l.max_age {
                        Some(a) => Some(duration(ctx, at, &format!("{what}.max_age"), a)?),
                        None => None,
                    },
                    max_size: match &l.max_size {
                        Some(a) => Some(size(ctx, at, &format!("{what}.max_size"), a)?),
                        None => None,
                    },
                });
            }
        }
        None => {
            // Netpy-like defaults: ×10 and ×100 fewer records per hour, in hour and day bins.
            out.push(LevelConfig {
                bin_ms: HOUR_MS.max(bin),
                budget_per_hour: budget / 10,
                max_age_ms: None,
                max_size: None,
            });
            out.push(LevelConfig {
                bin_ms: DAY_MS.max(bin),
                budget_per_hour: budget / 100,
                max_age_ms: None,
                max_size: None,
            });
        }
    }
    if !DAY_MS.is_multiple_of(out[0].bin_ms) {
        return Err(ctx.err(
            at.0,
            at.1,
            format!(
                "link '{link}': bin must divide a day (e.g. 1m, 5m, 15m, 1h), so that bins align"
            ),
        ));
    }
    for k in 1..out.len() {
        if !out[k].bin_ms.is_multiple_of(out[k - 1].bin_ms) {
            return Err(ctx.err(
                at.0,
                at.1,
                format!(
                    "link '{link}': level {k}'s bin must be a multiple of level {}'s",
                    k - 1
                ),
            ));
        }
    }
    if out.len() > 8 {
        return Err(ctx.err(
            at.0,
            at.1,
            format!("link '{link}': at most 7 coarser levels"),
        ));
    }
    for (k, l) in out.iter().enumerate() {
        if l.bin_budget() < MIN_BIN_BUDGET {
            return Err(ctx.err(
                at.0,
                at.1,
                format!(
                    "link '{link}' level {k}: a budget of {} bytes/h gives {} bytes per bin, \
                     less than the {MIN_BIN_BUDGET} a bin file needs; raise the budget or the bin",
                    l.budget_per_hour,
                    l.bin_budget()
                ),
            ));
        }
    }
    Ok(out)
}

impl LinksConfig {
    /// Parses and validates a links file; `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<LinksConfig> {
        let ctx = Ctx { text, file };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let before = &text[..span.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    (line, column)
                }
                None => (0, 0),
            };
            Error::Rules {
                file: file.to_string(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        let mut links = Vec::new();
        for (i, l) in raw.link.iter().enumerate() {
            let at = ("[[link]]", i);
            if !valid_link_name(&l.name) {
                return Err(ctx.err(
                    at.0,
                    at.1,
                    format!(
                        "link name '{}' must be 1-64 characters of letters, digits, '_', '-', '.'",
                        l.name
                    ),
                ));
            }
            if links.iter().any(|x: &LinkConfig| x.name == l.name) {
                return Err(ctx.err(at.0, at.1, format!("link '{}' is declared twice", l.name)));
            }
            links.push(LinkConfig {
                name: l.name.clone(),
                levels: levels(&ctx, at, &l.name, &l.settings(), &raw.defaults)?,
            });
        }
        let default_link = match links.iter().position(|l| l.name == DEFAULT_LINK) {
            Some(i) => i,
            None => {
                links.push(LinkConfig {
                    name: DEFAULT_LINK.to_string(),
                    levels: levels(
                        &ctx,
                        ("[defaults]", 0),
                        DEFAULT_LINK,
                        &RawLinkSettings::default(),
                        &raw.defaults,
                    )?,
                });
                links.len() - 1
            }
        };
        let mut rules = Vec::new();
        for (i, r) in raw.rule.iter().enumerate() {
            let at = ("[[rule]]", i);
            let action = match (&r.link, r.drop) {
                (Some(_), true) => {
                    return Err(ctx.err(
                        at.0,
                        at.1,
                        "a rule either sends flows to a link or drops them: remove `link` or `drop`"
                            .into(),
                    ));
                }
                (None, false) => {
                    return Err(ctx.err(
                        at.0,
                        at.1,
                        "a rule needs `link = \"NAME\"` or `drop = true`".into(),
                    ));
                }
                (None, true) => Action::Drop,
                (Some(name), false) => match links.iter().position(|l| &l.name == name) {
                    Some(k) => Action::Link(k),
                    None => {
                        return Err(ctx.err(
                            at.0,
                            at.1,
                            format!(
                                "link '{name}' is not declared; add a [[link]] with name = \"{name}\""
                            ),
                        ));
                    }
                },
            };
            rules.push(Rule {
                name: r.name.clone().unwrap_or_else(|| format!("rule {}", i + 1)),
                exporter: prefixes(&ctx, at, "exporter", &r.exporter)?,
                engine_type: nums(&ctx, at, "engine_type", &r.engine_type)?,
                engine_id: nums(&ctx, at, "engine_id", &r.engine_id)?,
                domain: nums(&ctx, at, "domain", &r.domain)?,
                src: prefixes(&ctx, at, "src", &r.src)?,
                dst: prefixes(&ctx, at, "dst", &r.dst)?,
                next_hop: prefixes(&ctx, at, "next_hop", &r.next_hop)?,
                in_if: nums(&ctx, at, "in_if", &r.in_if)?,
                out_if: nums(&ctx, at, "out_if", &r.out_if)?,
                action,
            });
        }
        Ok(LinksConfig {
            links,
            rules,
            default_link,
        })
    }

    /// The first matching rule's decision, or the default link.
    pub fn route(&self, r: &FlowRecord) -> Route {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.matches(r) {
                return match rule.action {
                    Action::Link(k) => Route::Link(k),
                    Action::Drop => Route::Drop(i),
                };
            }
        }
        Route::Link(self.default_link)
    }

    /// The link called `name`.
    pub fn link(&self, name: &str) -> Option<&LinkConfig> {
        self.links.iter().find(|l| l.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[defaults]
bin = "5m"
budget = "10MB"

[[link]]
name = "campus"
budget = "20MB"
max_age = "30d"

[[link]]
name = "dorms"
levels = [ { bin = "1h", budget = "2MB", max_age = "365d" } ]

[[rule]]
name = "backbone"
exporter = "192.0.2.0/24"
in_if = [5, 6]
drop = true

[[rule]]
exporter = "192.0.2.1"
engine_type = 0
engine_id = 1
link = "campus"

[[rule]]
src = ["10.8.0.0/16", "2001:db8:8::/48"]
out_if = "*"
link = "dorms"
"#;

    fn rec(exporter: &str, domain: u32, src: &str, in_if: u32) -> FlowRecord {
        FlowRecord {
            exporter: exporter.parse().unwrap(),
            domain,
            src_addr: src.parse().unwrap(),
            in_if,
            ..Default::default()
        }
    }

    #[test]
    fn the_first_matching_rule_wins_and_unmatched_flows_go_to_default() {
        let c = LinksConfig::parse(EXAMPLE, "links.toml").unwrap();
        let name = |r: Route| match r {
            Route::Link(k) => c.links[k].name.clone(),
            Route::Drop(i) => format!("drop:{}", c.rules[i].name),
        };
        let cases = [
            (rec("192.0.2.1", 1, "10.8.1.1", 5), "drop:backbone"),
            (rec("192.0.2.1", 1, "10.8.1.1", 7), "campus"),
            (rec("192.0.2.1", 2, "10.8.1.1", 7), "dorms"),
            (rec("192.0.2.1", 0x101, "10.9.1.1", 7), "default"),
            (rec("198.51.100.1", 1, "2001:db8:8::5", 5), "dorms"),
            (rec("198.51.100.1", 1, "10.9.0.1", 5), "default"),
        ];
        for (r, want) in cases {
            assert_eq!(name(c.route(&r)), want, "{r:?}");
        }
    }

    #[test]
    fn levels_default_and_override() {
        let c = LinksConfig::parse(EXAMPLE, "links.toml").unwrap();
        let campus = c.link("campus").unwrap();
        assert_eq!(campus.levels.len(), 3);
        assert_eq!(campus.levels[0].budget_per_hour, 20_000_000);
        assert_eq!(campus.levels[0].bin_budget(), 20_000_000 / 12);
        assert_eq!(campus.levels[0].max_age_ms, Some(30 * DAY_MS));
        assert_eq!(campus.levels[1].budget_per_hour, 2_000_000);
        assert_eq!(campus.levels[2].bin_ms, DAY_MS);
        let dorms = c.link("dorms").unwrap();
        assert_eq!(dorms.levels.len(), 2);
        assert_eq!(dorms.levels[1].max_age_ms, Some(365 * DAY_MS));
        assert_eq!(LinksConfig::default().links[0].name, DEFAULT_LINK);
    }

    #[test]
    fn mistakes_are_reported_with_a_position_and_a_fix() {
        let cases: &[(&str, usize, &str)] = &[
            ("[[rule]]\nlink = \"nope\"\n", 1, "add a [[link]]"),
            ("[[rule]]\nsrc = \"10.0.0.0/8\"\n", 1, "needs `link"),
            (
                "[[link]]\nname = \"a\"\n[[rule]]\nsrc = \"10.0.0.0/33\"\nlink = \"a\"\n",
                3,
                "prefix",
            ),
            ("[[link]]\nname = \"a/b\"\n", 1, "link name"),
            ("[[link]]\nname = \"a\"\nbin = \"7m\"\n", 1, "divide a day"),
            (
                "[[link]]\nname = \"a\"\nbudget = \"100KB\"\n",
                1,
                "raise the budget",
            ),
            ("[defaults]\nbudget = \"ten\"\n", 1, "positive size"),
            (
                "[[rule]]\nin_if = \"x\"\ndrop = true\n",
                1,
                "list of numbers",
            ),
            ("[[rule]]\ncolour = 1\n", 2, "unknown field"),
        ];
        for (text, line, needle) in cases {
            match LinksConfig::parse(text, "l.toml") {
                Err(Error::Rules {
                    line: l, message, ..
                }) => {
                    assert!(message.contains(needle), "{text:?}: {message}");
                    assert_eq!(l, *line, "{text:?}: {message}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("512KiB"), Some(524_288));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("1XB"), None);
        assert_eq!(parse_duration("5m"), Some(300_000));
        assert_eq!(parse_duration("1d"), Some(DAY_MS));
        assert_eq!(parse_duration("90"), Some(90_000));
        assert_eq!(parse_duration("5 parsecs"), None);
    }
}
