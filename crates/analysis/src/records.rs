//! Adapters from `&[FlowRecord]` to the columns the analyses take.
//!
//! The query layer reads columns straight from the store; these adapters exist for tests, small
//! inputs and examples. Each returns one owned column in record order.

use flowdrill_model::FlowRecord;

/// The traffic measure an analysis adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    Bytes,
    Packets,
    /// Each record counts as one flow.
    Flows,
}

impl Metric {
    /// The measure of one record.
    pub fn of(self, r: &FlowRecord) -> f64 {
        match self {
            Metric::Bytes => r.bytes as f64,
            Metric::Packets => r.packets as f64,
            Metric::Flows => 1.0,
        }
    }
}

/// The weight column of `records` in `metric` (exact data: no variance column).
pub fn weights(records: &[FlowRecord], metric: Metric) -> Vec<f64> {
    records.iter().map(|r| metric.of(r)).collect()
}

/// Source addresses in their `u128` form.
pub fn src_addrs(records: &[FlowRecord]) -> Vec<u128> {
    records.iter().map(|r| r.src_addr.0).collect()
}

/// Destination addresses in their `u128` form.
pub fn dst_addrs(records: &[FlowRecord]) -> Vec<u128> {
    records.iter().map(|r| r.dst_addr.0).collect()
}

/// `(protocol, source port, destination port)`: the leaves of the application hierarchies.
pub fn app_leaves(records: &[FlowRecord]) -> Vec<(u8, u16, u16)> {
    records
        .iter()
        .map(|r| (r.proto, r.src_port, r.dst_port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_record_order() {
        let recs = [
            FlowRecord {
                src_addr: "10.0.0.1".parse().unwrap(),
                dst_addr: "10.0.0.2".parse().unwrap(),
                proto: 6,
                src_port: 80,
                dst_port: 5000,
                bytes: 100,
                packets: 2,
                ..Default::default()
            },
            FlowRecord {
                bytes: 7,
                packets: 1,
                ..Default::default()
            },
        ];
        assert_eq!(weights(&recs, Metric::Bytes), [100.0, 7.0]);
        assert_eq!(weights(&recs, Metric::Packets), [2.0, 1.0]);
        assert_eq!(weights(&recs, Metric::Flows), [1.0, 1.0]);
        assert_eq!(src_addrs(&recs)[0], recs[0].src_addr.0);
        assert_eq!(dst_addrs(&recs)[0], recs[0].dst_addr.0);
        assert_eq!(app_leaves(&recs)[0], (6, 80, 5000));
    }
}
