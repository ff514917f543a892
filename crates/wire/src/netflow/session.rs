//! Template state for NetFlow v9 and IPFIX: what must be remembered between datagrams.
//!
//! - The template cache maps `(exporter address, observation domain / source id, template id)`
//!   to a compiled [`Plan`]. It holds at most `max_templates` plans over all exporters; when a
//!   new template would exceed that, the oldest inserted one is evicted (counted). A template
//!   re-sent unchanged is only counted (no recompilation); a changed one replaces the old plan.
//! - Per domain: the sampler table from options data (sampler / selector id -> rate), the
//!   default sampling rate, `systemInitTimeMilliseconds`, and the next expected sequence
//!   number. At most `max_domains` domains are kept.
//! - Data sets whose template has not arrived yet wait in a FIFO queue holding at most
//!   `max_pending_bytes` of set bodies; they are decoded as soon as their template arrives.
//!   Overflow drops the oldest sets; [`Session::finish`] drops what is left ("no template").

use super::template::{self, Plan, Scratch, TemplateRecord, TimeForm};
use super::{Flavor, MessageCtx};
use crate::stats::DecodeStats;
use flowdrill_model::{Addr, CustomFields, FlowRecord};
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;

type Hasher = foldhash::fast::RandomState;
/// `(exporter, domain)`.
pub type DomainKey = (Addr, u32);
/// `(exporter, domain, template id)`.
pub type TemplateKey = (Addr, u32, u16);

/// Distinct sampler ids remembered per domain (a table flood cannot grow memory further).
pub const MAX_SAMPLERS: usize = 256;

/// Limits of the session's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_templates: usize,
    pub max_pending_bytes: usize,
    pub max_domains: usize,
}

/// What is known about one observation domain / source id of one exporter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainState {
    /// (sampler id, rate), at most [`MAX_SAMPLERS`].
    pub samplers: Vec<(u64, u32)>,
    /// Rate from options data that named no sampler.
    pub default_rate: Option<u32>,
    pub sys_init_ms: Option<u64>,
    /// The sequence number the next message should carry.
    pub next_seq: Option<u32>,
}

impl DomainState {
    fn sampler_rate(&self, id: u64) -> Option<u32> {
        self.samplers.iter().find(|s| s.0 == id).map(|s| s.1)
    }
    fn set_sampler(&mut self, id: u64, rate: u32) {
        if let Some(s) = self.samplers.iter_mut().find(|s| s.0 == id) {
            s.1 = rate;
        } else if self.samplers.len() < MAX_SAMPLERS {
            self.samplers.push((id, rate));
        }
    }
}

#[derive(Debug)]
struct Pending {
    key: TemplateKey,
    flavor: Flavor,
    ctx: MessageCtx,
    rate_override: Option<u32>,
    body: Box<[u8]>,
}

/// The template cache, domain table and pending queue of one decoder.
#[derive(Debug)]
pub struct Session {
    limits: Limits,
    custom: CustomFields,
    templates: HashMap<TemplateKey, (Arc<Plan>, u64), Hasher>,
    /// Insertion order for eviction: `(key, generation)`; entries whose generation no longer
    /// matches the cache are stale and skipped.
    order: VecDeque<(TemplateKey, u64)>,
    generation: u64,
    domains: HashMap<DomainKey, DomainState, Hasher>,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
}

impl Session {
    pub fn new(limits: Limits, custom: CustomFields) -> Session {
        Session {
            limits,
            custom,
            templates: HashMap::default(),
            order: VecDeque::new(),
            generation: 0,
            domains: HashMap::default(),
            pending: VecDeque::new(),
            pending_bytes: 0,
        }
    }

    /// The compiled plan of a template, if cached.
    pub fn plan(&self, key: TemplateKey) -> Option<&Arc<Plan>> {
        self.templates.get(&key).map(|e| &e.0)
    }

    /// The state of a domain, if any was recorded.
    pub fn domain(&self, key: DomainKey) -> Option<&DomainState> {
        self.domains.get(&key)
    }

    /// Bytes of data sets waiting for their template.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    fn domain_mut(&mut self, key: DomainKey, stats: &mut DecodeStats) -> &mut DomainState {
        if !self.domains.contains_key(&key)
            && self.domains.len() >= self.limits.max_domains
            && let Some(victim) = self.domains.keys().next().copied()
        {
            self.domains.remove(&victim);
            stats.drop("state: domain table full, domain forgotten", 1);
        }
        self.domains.entry(key).or_default()
    }

    /// Checks a message's sequence number against the expected one and records the next.
    pub fn sequence(
        &mut self,
        key: DomainKey,
        seq: u32,
        next: Option<u32>,
        stats: &mut DecodeStats,
    ) -> bool {
        let d = self.domain_mut(key, stats);
        let gap = matches!(d.next_seq, Some(want) if want != seq);
        d.next_seq = next;
        if gap {
            stats.sequence_gaps += 1;
        }
        gap
    }

    /// Handles one template or options template set. Returns nothing: accepted templates
    /// are cached (and pending data for them decoded into `out`), bad records counted.
    #[allow(clippy::too_many_arguments)]
    pub fn template_set(
        &mut self,
        flavor: Flavor,
        exporter: Addr,
        domain: u32,
        options: bool,
        body: &[u8],
        out: &mut Vec<FlowRecord>,
        stats: &mut DecodeStats,
    ) {
        let mut pos = 0;
        while let Some(r) = template::parse_record(flavor, options, body, pos) {
            let (rec, next) = match r {
                Ok(x) => x,
                Err(e) => {
                    // The rest of the set cannot be delimited any more.
                    stats.drop(e.reason(), 1);
                    return;
                }
            };
            pos = next;
            match rec {
                TemplateRecord::Define(def) => {
                    let key = (exporter, domain, def.id);
                    stats.templates_seen += 1;
                    if def.options {
                        stats.options_templates_seen += 1;
                    }
                    if let Some((old, _)) = self.templates.get(&key)
                        && old.fields == def.fields
                        && old.options == def.options
                    {
                        continue; // a refresh
                    }
                    match Plan::compile(flavor, &def, &self.custom) {
                        Ok(plan) => self.insert(key, plan, stats),
                        Err(e) => {
                            stats.drop(e.reason(), 1);
                            // A template that cannot be used replaces nothing usable.
                            if self.templates.remove(&key).is_some() {
                                stats.templates_withdrawn += 1;
                            }
                            continue;
                        }
                    }
                    self.resolve_pending(key, out, stats);
                }
                TemplateRecord::Withdraw(id) => {
                    if self.templates.remove(&(exporter, domain, id)).is_some() {
                        stats.templates_withdrawn += 1;
                    }
                }
                TemplateRecord::WithdrawAll { options } => {
                    let before = self.templates.len();
                    self.templates.retain(|k, (p, _)| {
                        !(k.0 == exporter && k.1 == domain && p.options == options)
                    });
                    stats.templates_withdrawn += (before - self.templates.len()) as u64;
                }
            }
        }
        stats.templates_active = self.templates.len() as u64;
    }

    fn insert(&mut self, key: TemplateKey, plan: Plan, stats: &mut DecodeStats) {
        if let Some(e) = self.templates.get_mut(&key) {
            e.0 = Arc::new(plan);
            stats.templates_replaced += 1;
            return;
        }
        while self.templates.len() >= self.limits.max_templates.max(1) {
            let Some((victim, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .templates
                .get(&victim)
                .is_some_and(|e| e.1 == generation)
            {
                self.templates.remove(&victim);
                stats.templates_evicted += 1;
            }
        }
        self.generation += 1;
        self.templates
            .insert(key, (Arc::new(plan), self.generation));
        self.order.push_back((key, self.generation));
        // Withdrawals leave stale order entries; keep the queue proportional to the cache.
        if self.order.len() > 2 * self.templates.len() + 64 {
            let templates = &self.templates;
            self.order
                .retain(|(k, g)| templates.get(k).is_some_and(|e| e.1 == *g));
        }
        stats.templates_active = self.templates.len() as u64;
    }

    fn resolve_pending(
        &mut self,
        key: TemplateKey,
        out: &mut Vec<FlowRecord>,
        stats: &mut DecodeStats,
    ) {
        if self.pending.is_empty() || !self.pending.iter().any(|p| p.key == key) {
            return;
        }
        let mut keep = VecDeque::with_capacity(self.pending.len());
        let mut ready = Vec::new();
        for p in self.pending.drain(..) {
            if p.key == key {
                ready.push(p);
            } else {
                keep.push_back(p);
            }
        }
        self.pending = keep;
        for p in ready {
            self.pending_bytes -= p.body.len();
            stats.pending_sets_resolved += 1;
            self.data_set(p.flavor, p.key, &p.body, p.ctx, p.rate_override, out, stats);
        }
    }

    /// Decodes one data set. Returns the number of data records it held (flow and options
    /// records), or `None` when the set was queued waiting for its template.
    #[allow(clippy::too_many_arguments)]
    pub fn data_set(
        &mut self,
        flavor: Flavor,
        key: TemplateKey,
        body: &[u8],
        ctx: MessageCtx,
        rate_override: Option<u32>,
        out: &mut Vec<FlowRecord>,
        stats: &mut DecodeStats,
    ) -> Option<usize> {
        let Some((plan, _)) = self.templates.get(&key) else {
            self.hold(key, flavor, ctx, rate_override, body, stats);
            return None;
        };
        let plan = Arc::clone(plan);
        let (exporter, domain_id, _) = key;
        let dom = self.domain_mut((exporter, domain_id), stats);
        if plan.options {
            let res = plan.for_each_record(body, &FlowRecord::default(), |_, s| {
                if let Some(rate) = s.own_rate() {
                    if s.sampler > 0 {
                        dom.set_sampler(s.sampler - 1, rate);
                    } else {
                        dom.default_rate = Some(rate);
                    }
                }
                if s.sys_init_ms > 0 {
                    dom.sys_init_ms = Some(s.sys_init_ms);
                }
            });
            let n = res.unwrap_or_else(|n| {
                stats.drop("set: variable-length record overruns set", 1);
                n
            });
            stats.options_records += n as u64;
            return Some(n);
        }
        let blank_addr = if plan.v6 {
            Addr::default()
        } else {
            Addr::UNSPECIFIED_V4
        };
        let blank = FlowRecord {
            src_addr: blank_addr,
            dst_addr: blank_addr,
            next_hop: blank_addr,
            exporter,
            domain: domain_id,
            ..Default::default()
        };
        let dom: &DomainState = dom;
        let before = out.len();
        // When no record can name its own rate, the rate is the same for the whole set.
        let set_rate = if plan.per_record_sampling() {
            rate_override
        } else {
            Some(rate_override.or(dom.default_rate).unwrap_or(1).max(1))
        };
        let res = plan.decode_into(body, &blank, out, |rec, s| {
            finish_record(flavor, &plan, ctx, set_rate, dom, rec, s);
        });
        if res.is_err() {
            stats.drop("set: variable-length record overruns set", 1);
        }
        Some(out.len() - before)
    }

    fn hold(
        &mut self,
        key: TemplateKey,
        flavor: Flavor,
        ctx: MessageCtx,
        rate_override: Option<u32>,
        body: &[u8],
        stats: &mut DecodeStats,
    ) {
        if body.len() > self.limits.max_pending_bytes {
            stats.drop("set: no template (too large to hold)", 1);
            return;
        }
        stats.pending_sets += 1;
        self.pending_bytes += body.len();
        self.pending.push_back(Pending {
            key,
            flavor,
            ctx,
            rate_override,
            body: body.into(),
        });
        while self.pending_bytes > self.limits.max_pending_bytes {
            let Some(old) = self.pending.pop_front() else {
                break;
            };
            self.pending_bytes -= old.body.len();
            stats.drop("set: no template (pending queue full)", 1);
        }
    }

    /// End of input: data still waiting for a template is dropped and counted.
    pub fn finish(&mut self, stats: &mut DecodeStats) {
        stats.drop("set: no template", self.pending.len() as u64);
        self.pending.clear();
        self.pending_bytes = 0;
    }
}

/// Turns the raw per-record values into schema fields: times, ICMP type/code, next hop
/// fallback and sampling renormalisation. `rate_override` is the set's rate when it is
/// known for the whole set (configured override, or no per-record sampling elements).
#[inline(always)]
fn finish_record(
    flavor: Flavor,
    plan: &Plan,
    ctx: MessageCtx,
    rate_override: Option<u32>,
    dom: &DomainState,
    rec: &mut FlowRecord,
    s: &Scratch,
) {
    let boot = match flavor {
        Flavor::V9 => ctx.boot_ms(),
        Flavor::Ipfix => {
            if s.sys_init_ms > 0 {
                Some(s.sys_init_ms)
            } else {
                dom.sys_init_ms
            }
        }
    };
    let mut start = plan.start_form.to_ms(s.start, ctx.export_ms, boot);
    if plan.start_form == TimeForm::Uptime && plan.end_form == TimeForm::Uptime {
        let wrap = super::v5::uptime_wrap(s.start as u32, s.end as u32);
        start = start.map(|t| t.wrapping_sub(wrap));
    }
    let end = plan.end_form.to_ms(s.end, ctx.export_ms, boot);
    // Absent or unconvertible times fall back to the other end, then to the export time.
    rec.time_start = start.or(end).unwrap_or(ctx.export_ms);
    rec.time_end = end.unwrap_or(rec.time_start);
    if s.icmp != 0 && (rec.proto == 1 || rec.proto == 58) {
        // nfdump's convention: type*256+code in the destination port, no source port.
        rec.dst_port = s.icmp as u16;
        rec.src_port = 0;
    }
    if rec.next_hop.is_unspecified() && !Addr(s.bgp_next_hop).is_unspecified() {
        rec.next_hop = Addr(s.bgp_next_hop);
    }
    let rate = rate_override
        .or_else(|| s.own_rate())
        .or_else(|| {
            if s.sampler > 0 {
                dom.sampler_rate(s.sampler - 1)
            } else {
                None
            }
        })
        .or(dom.default_rate)
        .unwrap_or(1)
        .max(1);
    rec.sampling_rate = rate;
    if rate > 1 {
        rec.packets = rec.packets.saturating_mul(rate as u64);
        rec.bytes = rec.bytes.saturating_mul(rate as u64);
    }
}
