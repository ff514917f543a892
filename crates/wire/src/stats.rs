//! Counters of what the decoders saw and what they dropped, and why.
//!
//! [`DecodeStats`] is filled by [`crate::Decoder`]; it is plain data so a collector can print
//! it, serialise it or diff two snapshots. Every drop is counted under a fixed reason string
//! (the `reason()` of the module error that caused it); the unit of each count is given by the
//! reason's prefix: `datagram: ...` counts datagrams, `set: ...` counts sets (or the rest of a
//! message from the bad set on), `record: ...` counts records, `template: ...` counts template
//! records.

use flowdrill_model::Addr;
use std::collections::BTreeMap;

/// Datagrams and flow records decoded for one protocol version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VersionStats {
    pub datagrams: u64,
    pub records: u64,
}

/// Counters for one exporter (the datagram's source address).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExporterStats {
    pub datagrams: u64,
    pub records: u64,
    /// Drops of any reason charged to this exporter.
    pub drops: u64,
    /// Sequence numbers that were not the expected next one (summed over its domains).
    pub sequence_gaps: u64,
}

/// Everything the decoder counted since it was created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Datagrams handed to `decode`, valid or not.
    pub datagrams: u64,
    /// Flow records produced (options records excluded).
    pub records: u64,
    pub v5: VersionStats,
    pub v9: VersionStats,
    pub ipfix: VersionStats,
    pub sflow: VersionStats,
    /// Template and options template records accepted (new or refreshed).
    pub templates_seen: u64,
    /// Of which options templates.
    pub options_templates_seen: u64,
    /// Templates whose definition changed under the same id (replaced).
    pub templates_replaced: u64,
    /// Templates withdrawn by the exporter (IPFIX withdrawal records).
    pub templates_withdrawn: u64,
    /// Templates evicted because the cache was full (`max_templates`).
    pub templates_evicted: u64,
    /// Templates in the cache now.
    pub templates_active: u64,
    /// Options data records (sampler tables, system init time...) consumed.
    pub options_records: u64,
    /// Data sets held because their template had not arrived, and of those, the ones later
    /// decoded when it came.
    pub pending_sets: u64,
    pub pending_sets_resolved: u64,
    /// Sequence numbers that were not the expected next one, all exporters.
    pub sequence_gaps: u64,
    /// Per exporter; at most `DecoderConfig::max_exporters` entries, the rest are summed
    /// under `exporters_untracked`.
    pub exporters: BTreeMap<Addr, ExporterStats>,
    pub exporters_untracked: ExporterStats,
    /// Drop reason -> count (see the module doc for units).
    pub drops: BTreeMap<&'static str, u64>,
    /// Sum of `drops` (kept so callers need not add up the map).
    pub drops_total: u64,
}

impl DecodeStats {
    /// Adds `n` to the drop counter of `reason`.
    pub fn drop(&mut self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.drops.entry(reason).or_insert(0) += n;
            self.drops_total += n;
        }
    }
    /// Total of all drop counters (mixed units; for "anything dropped?" checks).
    pub fn total_drops(&self) -> u64 {
        self.drops_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_add_up_by_reason_and_zero_is_not_recorded() {
        let mut s = DecodeStats::default();
        s.drop("datagram: unknown version", 1);
        s.drop("datagram: unknown version", 2);
        s.drop("record: truncated", 0);
        assert_eq!(s.drops.get("datagram: unknown version"), Some(&3));
        assert!(!s.drops.contains_key("record: truncated"));
        assert_eq!(s.total_drops(), 3);
    }
}
