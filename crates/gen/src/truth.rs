//! Ground truth: what the generator put into records, packets and files, counted as it went.
//! Tests and benchmarks compare what exporters, collectors and flowdrill report with it.

use crate::flows::Origin;
use crate::shape::Shape;
use flowdrill_model::FlowRecord;
use std::collections::BTreeMap;

/// Flows, packets and bytes (layer 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl Counts {
    pub fn add(&mut self, r: &FlowRecord) {
        self.flows += 1;
        self.packets += r.packets;
        self.bytes += r.bytes;
    }
}

/// The truth about one generated scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Truth {
    /// Every record.
    pub total: Counts,
    /// By IP protocol number.
    pub per_proto: BTreeMap<u8, Counts>,
    /// IPv6 records only.
    pub ipv6: Counts,
    /// Background records only.
    pub background: Counts,
    /// Per event, in `Scenario::events` order.
    pub per_event: Vec<Counts>,
    /// Bytes as an exporter counting padded Ethernet frames minus the 14-byte header sees
    /// them (softflowd on a capture whose short frames are padded to 60 bytes): each packet
    /// counts at least 46 bytes.
    pub bytes_padded_46: u64,
    /// Earliest start and latest end of any record, Unix ms (0 when empty).
    pub first_ms: u64,
    pub last_ms: u64,
    /// Bytes of the file written, when a writer produced this truth.
    pub file_bytes: u64,
    /// Frames written to a pcap, when a writer produced this truth.
    pub frames: u64,
}

impl Truth {
    pub(crate) fn new(events: usize) -> Truth {
        Truth {
            per_event: vec![Counts::default(); events],
            first_ms: u64::MAX,
            ..Truth::default()
        }
    }

    pub(crate) fn add(&mut self, origin: Origin, r: &FlowRecord, shape: &Shape) {
        self.total.add(r);
        self.per_proto.entry(r.proto).or_default().add(r);
        if !r.src_addr.is_v4() {
            self.ipv6.add(r);
        }
        match origin {
            Origin::Background => self.background.add(r),
            Origin::Event(i) => self.per_event[i].add(r),
        }
        // Invariant from the generator: every record's shape has a plan.
        if let Some(plan) = shape.plan(r.packets, r.bytes) {
            self.bytes_padded_46 += plan.padded_bytes(46);
        }
        self.first_ms = self.first_ms.min(r.time_start);
        self.last_ms = self.last_ms.max(r.time_end);
    }

    pub(crate) fn finish(&mut self) {
        if self.first_ms == u64::MAX {
            self.first_ms = 0;
        }
    }

    /// Counts of one protocol (zero when absent).
    pub fn proto(&self, p: u8) -> Counts {
        self.per_proto.get(&p).copied().unwrap_or_default()
    }
}
