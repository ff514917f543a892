//! What to generate: the [`Scenario`] (seed, time span, volume, the local network, the shape
//! knobs) and the injectable [`Event`]s, with the checks that make a scenario generatable.
//!
//! A scenario is plain data: building one does no work; [`crate::records`] and the writers
//! consume it.

use flowdrill_model::{Addr, Prefix, time};
use std::ops::RangeInclusive;

/// Why a scenario cannot be generated; each message says what to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    #[error("duration_ms is 0: give the scenario a positive length")]
    EmptyDuration,
    #[error("ipv6_share {0} is outside [0, 1]")]
    Ipv6Share(f64),
    #[error("diurnal peak/trough ratio {0} must be at least 1 (1 = flat rate)")]
    DiurnalRatio(f64),
    #[error("local IPv4 network {0} must be an IPv4 prefix of length 8..=30")]
    LocalV4(Prefix),
    #[error("local IPv6 network {0} must be an IPv6 prefix of length 16..=64")]
    LocalV6(Prefix),
    #[error("event {index}: {why}")]
    Event { index: usize, why: String },
}

/// One synthetic traffic scenario. Deterministic: the same scenario gives the same records,
/// packets and datagrams, byte for byte.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// Seed of every random stream.
    pub seed: u64,
    /// Start of the background traffic, Unix ms (UTC).
    pub start_ms: u64,
    /// Length of the background traffic; flows start in `[start_ms, start_ms + duration_ms)`
    /// (long flows may end later).
    pub duration_ms: u64,
    /// Background flow records (each direction of a connection is one record). Events add
    /// their own records on top.
    pub flows: u64,
    /// Share of background sessions carried over IPv6.
    pub ipv6_share: f64,
    /// Diurnal rate: ratio of the rate at the daily peak to the rate at the daily trough
    /// (1 = flat). The rate is a sinusoid with a 24 h period.
    pub diurnal_ratio: f64,
    /// Hour of day (UTC, may be fractional) of the peak rate; the trough is 12 h later.
    pub peak_hour: f64,
    /// The local (campus) networks; everything else is "the Internet".
    pub local_v4: Prefix,
    pub local_v6: Prefix,
    /// Autonomous system of the local network.
    pub local_as: u32,
    /// Exporter address written into every record (and the source of export datagrams).
    pub exporter: Addr,
    /// Observation domain / source id; v5 uses it as engine type << 8 | engine id.
    pub domain: u32,
    /// Injected events.
    pub events: Vec<Event>,
}

/// An anomaly injected on top of the background traffic.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One source probes many (destination, port) pairs with single 40–44-byte SYN packets.
    /// Every probed pair is distinct.
    SynScan {
        at_ms: u64,
        source: Addr,
        targets: Prefix,
        ports: RangeInclusive<u16>,
        flows: u64,
        /// Probes per second.
        rate_per_s: u64,
    },
    /// Spoofed-source SYN flood: `flows` single-SYN flows from distinct random sources to
    /// one victim port, spread over `duration_ms`.
    SpoofedFlood {
        at_ms: u64,
        duration_ms: u64,
        victim: Addr,
        port: u16,
        flows: u64,
    },
    /// A burst of 1–2-packet UDP streams from distinct Internet sources to random hosts and
    /// high ports of `targets`.
    Dragonfly {
        at_ms: u64,
        duration_ms: u64,
        targets: Prefix,
        flows: u64,
    },
    /// One long TCP transfer of `bytes` (layer-3) from `src` to `dst:port`, plus its ACK
    /// stream back: two records.
    Elephant {
        at_ms: u64,
        duration_ms: u64,
        src: Addr,
        dst: Addr,
        port: u16,
        bytes: u64,
    },
}

impl Event {
    /// Start of the event, Unix ms.
    pub fn at_ms(&self) -> u64 {
        match self {
            Event::SynScan { at_ms, .. }
            | Event::SpoofedFlood { at_ms, .. }
            | Event::Dragonfly { at_ms, .. }
            | Event::Elephant { at_ms, .. } => *at_ms,
        }
    }

    /// Records this event adds.
    pub fn flow_count(&self) -> u64 {
        match self {
            Event::SynScan { flows, .. }
            | Event::SpoofedFlood { flows, .. }
            | Event::Dragonfly { flows, .. } => *flows,
            Event::Elephant { .. } => 2,
        }
    }

    /// Short name for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::SynScan { .. } => "syn-scan",
            Event::SpoofedFlood { .. } => "spoofed-flood",
            Event::Dragonfly { .. } => "dragonfly",
            Event::Elephant { .. } => "elephant",
        }
    }

    fn check(&self) -> Result<(), String> {
        match self {
            Event::SynScan {
                source,
                targets,
                ports,
                flows,
                rate_per_s,
                ..
            } => {
                if source.is_v4() != targets.is_v4() {
                    return Err("scan source and targets are of different IP families".into());
                }
                if ports.is_empty() {
                    return Err("scan port range is empty".into());
                }
                if *rate_per_s == 0 {
                    return Err("scan rate_per_s is 0".into());
                }
                let space = prefix_hosts(*targets) as u128 * ports.clone().count() as u128;
                if (*flows as u128) > space {
                    return Err(format!(
                        "{flows} probes asked but {targets} x {} ports has only {space} distinct pairs",
                        ports.clone().count()
                    ));
                }
                Ok(())
            }
            Event::SpoofedFlood { flows, .. } | Event::Dragonfly { flows, .. } => {
                if *flows > u32::MAX as u64 {
                    return Err("at most 2^32 flows per flood or burst (distinct sources)".into());
                }
                Ok(())
            }
            Event::Elephant {
                src,
                dst,
                bytes,
                duration_ms,
                ..
            } => {
                if src.is_v4() != dst.is_v4() {
                    return Err("elephant src and dst are of different IP families".into());
                }
                if *bytes < 10_000 {
                    return Err("an elephant needs at least 10 kB".into());
                }
                // Keep the gap between packets under the exporters' idle timeouts (30 s).
                if *duration_ms / 30_000 > *bytes / 1500 {
                    return Err("elephant too slow: packets would be more than 30 s apart".into());
                }
                Ok(())
            }
        }
    }
}

/// Number of host addresses drawn from a prefix: the whole prefix, at most 2^32.
pub(crate) fn prefix_hosts(p: Prefix) -> u64 {
    let bits = p.addr().family_bits() - p.len();
    if bits >= 32 { 1u64 << 32 } else { 1u64 << bits }
}

impl Default for Scenario {
    /// One quiet hour from 2024-01-01 00:00 UTC, 10 000 flows, no events.
    fn default() -> Scenario {
        Scenario {
            seed: 1,
            start_ms: time::ms_from_civil(2024, 1, 1, 0, 0, 0),
            duration_ms: 3_600_000,
            flows: 10_000,
            ipv6_share: 0.10,
            diurnal_ratio: 4.0,
            peak_hour: 14.0,
            local_v4: Prefix::new(Addr::from_v4_octets([10, 20, 0, 0]), 16),
            local_v6: Prefix::new(
                Addr::from_v6_octets([
                    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ]),
                48,
            ),
            local_as: 64_500,
            exporter: Addr::from_v4_octets([10, 20, 0, 1]),
            domain: 1,
            events: Vec::new(),
        }
    }
}

impl Scenario {
    /// The demo: one hour from 2024-01-01 00:00 UTC, 200 000 background flows and all four
    /// events (a scan of a /24 at 00:10, a 30 000-source SYN flood at 00:20, a dragonfly burst
    /// at 00:35 and a 2 GB rsync backup from 00:05 to 00:45).
    pub fn demo() -> Scenario {
        let base = Scenario {
            flows: 200_000,
            ..Scenario::default()
        };
        let t0 = base.start_ms;
        let min = 60_000;
        let v4 = |o: [u8; 4]| Addr::from_v4_octets(o);
        Scenario {
            events: vec![
                Event::SynScan {
                    at_ms: t0 + 10 * min,
                    source: v4([203, 0, 113, 66]),
                    targets: Prefix::new(v4([10, 20, 7, 0]), 24),
                    ports: 1..=1024,
                    flows: 5_000,
                    rate_per_s: 100,
                },
                Event::SpoofedFlood {
                    at_ms: t0 + 20 * min,
                    duration_ms: 2 * min,
                    victim: v4([10, 20, 1, 80]),
                    port: 443,
                    flows: 30_000,
                },
                Event::Dragonfly {
                    at_ms: t0 + 35 * min,
                    duration_ms: 30_000,
                    targets: base.local_v4,
                    flows: 3_000,
                },
                Event::Elephant {
                    at_ms: t0 + 5 * min,
                    duration_ms: 40 * min,
                    src: v4([10, 20, 3, 9]),
                    dst: v4([198, 51, 100, 20]),
                    port: 873,
                    bytes: 2_000_000_000,
                },
            ],
            ..base
        }
    }

    /// Checks the scenario can be generated.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.duration_ms == 0 {
            return Err(ScenarioError::EmptyDuration);
        }
        if !(0.0..=1.0).contains(&self.ipv6_share) {
            return Err(ScenarioError::Ipv6Share(self.ipv6_share));
        }
        if !(self.diurnal_ratio >= 1.0 && self.diurnal_ratio.is_finite()) {
            return Err(ScenarioError::DiurnalRatio(self.diurnal_ratio));
        }
        if !self.local_v4.is_v4() || !(8..=30).contains(&self.local_v4.len()) {
            return Err(ScenarioError::LocalV4(self.local_v4));
        }
        if self.local_v6.is_v4() || !(16..=64).contains(&self.local_v6.len()) {
            return Err(ScenarioError::LocalV6(self.local_v6));
        }
        for (index, e) in self.events.iter().enumerate() {
            e.check()
                .map_err(|why| ScenarioError::Event { index, why })?;
        }
        Ok(())
    }

    /// Total records: background plus every event's.
    pub fn total_flows(&self) -> u64 {
        self.flows + self.events.iter().map(Event::flow_count).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_valid_and_has_all_four_events() {
        let d = Scenario::demo();
        d.validate().unwrap();
        let kinds: Vec<_> = d.events.iter().map(Event::kind).collect();
        assert_eq!(
            kinds,
            ["syn-scan", "spoofed-flood", "dragonfly", "elephant"]
        );
        assert_eq!(d.total_flows(), 200_000 + 5_000 + 30_000 + 3_000 + 2);
        assert_eq!(time::format_ms(d.start_ms), "2024-01-01 00:00:00.000");
    }

    #[test]
    fn bad_scenarios_say_what_is_wrong() {
        let s = Scenario {
            ipv6_share: 1.5,
            ..Scenario::default()
        };
        assert_eq!(s.validate(), Err(ScenarioError::Ipv6Share(1.5)));
        let s = Scenario {
            events: vec![Event::SynScan {
                at_ms: 0,
                source: Addr::from_v4_u32(1),
                targets: "10.0.0.0/30".parse().unwrap(),
                ports: 1..=2,
                flows: 9,
                rate_per_s: 10,
            }],
            ..Scenario::default()
        };
        let e = s.validate().unwrap_err();
        assert!(e.to_string().contains("8 distinct pairs"), "{e}");
        let s = Scenario {
            duration_ms: 0,
            ..Scenario::default()
        };
        assert_eq!(s.validate(), Err(ScenarioError::EmptyDuration));
    }
}
