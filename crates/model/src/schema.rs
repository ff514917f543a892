//! The one schema of flow fields.
//!
//! Every field a flow record carries is declared once, in the `flow_fields!` invocation below.
//! From that one list come the [`FlowRecord`] struct, the [`Field`] enum, the [`FIELDS`] table
//! (names, kinds, units, IPFIX element ids, documentation) and the generic accessor
//! [`FlowRecord::get`]. Decoders, storage columns, filter keywords and UI names are all derived
//! from [`FIELDS`]; adding a field here is the first step of `docs/internals.md`'s checklist.

use crate::addr::Addr;
use std::fmt;

/// How a field's value is represented and compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Unsigned integer of the given width in bits (8, 16, 32 or 64).
    Unsigned(u8),
    /// IPv4 or IPv6 address ([`Addr`]).
    Address,
    /// Milliseconds since the Unix epoch, UTC.
    TimeMs,
}

/// What a field means to the analyses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Identifies the flow (addresses, ports, protocol, interfaces...): a key to group by.
    Key,
    /// A traffic measure that adds up (packets, bytes).
    Counter,
    /// A timestamp.
    Time,
    /// Describes how the record was measured (exporter, sampling rate).
    Meta,
}

/// The description of one field.
#[derive(Clone, Copy, Debug)]
pub struct FieldInfo {
    pub field: Field,
    /// The field's name: storage column, JSON key, `--by` argument.
    pub name: &'static str,
    pub kind: Kind,
    pub role: Role,
    /// The IANA IPFIX information element that fills it (the IPv4 one where there are two).
    pub ipfix_ie: Option<u16>,
    /// One line for help texts and the docs.
    pub doc: &'static str,
}

/// A value of a field, as the generic accessor returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    U64(u64),
    Addr(Addr),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U64(v) => write!(f, "{v}"),
            Value::Addr(a) => write!(f, "{a}"),
        }
    }
}

trait IntoValue {
    fn into_value(self) -> Value;
}
impl IntoValue for u8 {
    fn into_value(self) -> Value {
        Value::U64(self as u64)
    }
}
impl IntoValue for u16 {
    fn into_value(self) -> Value {
        Value::U64(self as u64)
    }
}
impl IntoValue for u32 {
    fn into_value(self) -> Value {
        Value::U64(self as u64)
    }
}
impl IntoValue for u64 {
    fn into_value(self) -> Value {
        Value::U64(self)
    }
}
impl IntoValue for Addr {
    fn into_value(self) -> Value {
        Value::Addr(self)
    }
}

macro_rules! flow_fields {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident $name:ident : $ty:ty = $kind:expr, $role:ident, $ie:expr;
    )*) => {
        /// One flow: the fixed fields of the schema plus the values of user-defined elements.
        ///
        /// Counters (`packets`, `bytes`) are already renormalised by `sampling_rate` when a
        /// decoder knows the exporter's packet sampling rate.
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct FlowRecord {
            $( $(#[doc = $doc])+ pub $name: $ty, )*
            /// Values of user-defined information elements, as (index into the
            /// [`crate::CustomFields`] registry in force, value). Empty (and unallocated) when
            /// no user-defined element was decoded.
            pub extra: Vec<(u16, crate::CustomValue)>,
        }

        /// A field of the schema.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field { $( $variant, )* }

        /// Every field, in schema order.
        pub const FIELDS: &[FieldInfo] = &[
            $( FieldInfo {
                field: Field::$variant,
                name: stringify!($name),
                kind: $kind,
                role: Role::$role,
                ipfix_ie: $ie,
                doc: concat!($($doc),+),
            }, )*
        ];

        impl FlowRecord {
            /// The value of one field, generically (fast paths use the struct fields).
            pub fn get(&self, field: Field) -> Value {
                match field { $( Field::$variant => IntoValue::into_value(self.$name), )* }
            }
        }
    };
}

flow_fields! {
    /// Start of the flow, Unix ms (UTC).
    TimeStart time_start: u64 = Kind::TimeMs, Time, Some(152);
    /// End of the flow (last packet), Unix ms (UTC).
    TimeEnd time_end: u64 = Kind::TimeMs, Time, Some(153);
    /// Source address.
    SrcAddr src_addr: Addr = Kind::Address, Key, Some(8);
    /// Destination address.
    DstAddr dst_addr: Addr = Kind::Address, Key, Some(12);
    /// Source transport port (0 where the protocol has none).
    SrcPort src_port: u16 = Kind::Unsigned(16), Key, Some(7);
    /// Destination transport port; for ICMP, type*256+code as exporters send it.
    DstPort dst_port: u16 = Kind::Unsigned(16), Key, Some(11);
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6...).
    Proto proto: u8 = Kind::Unsigned(8), Key, Some(4);
    /// Union of the TCP flags seen in the flow.
    TcpFlags tcp_flags: u8 = Kind::Unsigned(8), Key, Some(6);
    /// IP type of service / traffic class byte.
    Tos tos: u8 = Kind::Unsigned(8), Key, Some(5);
    /// Packets (renormalised for packet sampling).
    Packets packets: u64 = Kind::Unsigned(64), Counter, Some(2);
    /// Layer-3 bytes (renormalised for packet sampling).
    Bytes bytes: u64 = Kind::Unsigned(64), Counter, Some(1);
    /// SNMP index of the input interface.
    InIf in_if: u32 = Kind::Unsigned(32), Key, Some(10);
    /// SNMP index of the output interface.
    OutIf out_if: u32 = Kind::Unsigned(32), Key, Some(14);
    /// Source autonomous system.
    SrcAs src_as: u32 = Kind::Unsigned(32), Key, Some(16);
    /// Destination autonomous system.
    DstAs dst_as: u32 = Kind::Unsigned(32), Key, Some(17);
    /// Source prefix length from the routing table, when exported.
    SrcMask src_mask: u8 = Kind::Unsigned(8), Key, Some(9);
    /// Destination prefix length from the routing table, when exported.
    DstMask dst_mask: u8 = Kind::Unsigned(8), Key, Some(13);
    /// IP next hop.
    NextHop next_hop: Addr = Kind::Address, Key, Some(15);
    /// Address of the exporter (router or probe) that sent the record.
    Exporter exporter: Addr = Kind::Address, Meta, Some(130);
    /// Observation domain (IPFIX), source id (v9), engine type << 8 | engine id (v5), sub-agent (sFlow).
    Domain domain: u32 = Kind::Unsigned(32), Meta, Some(149);
    /// Packet sampling rate the counters were multiplied by (1 = unsampled).
    SamplingRate sampling_rate: u32 = Kind::Unsigned(32), Meta, Some(34);
    /// 1 on the later pieces of a flow that the store split across time bins, 0 on the piece
    /// that holds the flow's start (and on every unsplit flow): a flow is counted once.
    Continued continued: u8 = Kind::Unsigned(8), Meta, None;
}

impl Field {
    /// The schema entry of this field.
    pub fn info(self) -> &'static FieldInfo {
        &FIELDS[self as usize]
    }
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// Looks a field up by its schema name.
    pub fn from_name(name: &str) -> Option<Field> {
        FIELDS.iter().find(|f| f.name == name).map(|f| f.field)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_enum_order_and_names_are_unique() {
        for (i, info) in FIELDS.iter().enumerate() {
            assert_eq!(info.field as usize, i, "{}", info.name);
            assert_eq!(Field::from_name(info.name), Some(info.field));
        }
        let mut names: Vec<_> = FIELDS.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
    }

    #[test]
    fn the_generic_accessor_reads_the_struct() {
        let r = FlowRecord {
            src_port: 443,
            bytes: 1500,
            src_addr: "192.0.2.1".parse().unwrap(),
            ..Default::default()
        };
        assert_eq!(r.get(Field::SrcPort), Value::U64(443));
        assert_eq!(r.get(Field::Bytes), Value::U64(1500));
        assert_eq!(r.get(Field::SrcAddr).to_string(), "192.0.2.1");
        assert_eq!(Field::DstPort.info().ipfix_ie, Some(11));
    }
}
