//! User-defined information elements.
//!
//! Exporters such as QoF or YAF send elements that no collector knows ("we just made them
//! up"). A registry (enterprise number, element id, name, type) names them; decoders then put
//! their values in [`crate::FlowRecord::extra`], the store keeps them as extra columns and the
//! filters and exports can use them by name. The registry file format (TOML) is parsed by the
//! interfaces; this module only holds the types, so every stage agrees on them.

use std::fmt;

/// The type of a user-defined element's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CustomKind {
    /// Unsigned integer, 1 to 8 bytes on the wire (reduced-size encoding allowed).
    Unsigned,
    /// Signed integer, 1 to 8 bytes on the wire.
    Signed,
    /// IEEE float, 4 or 8 bytes on the wire.
    Float,
    /// UTF-8 string (invalid bytes are replaced).
    String,
    /// Opaque bytes, shown as hex.
    Bytes,
    /// IPv4 or IPv6 address (4 or 16 bytes on the wire).
    Address,
}

impl CustomKind {
    /// The kind's canonical name, which [`CustomKind::from_name`] reads back.
    pub fn name(self) -> &'static str {
        match self {
            CustomKind::Unsigned => "unsigned",
            CustomKind::Signed => "signed",
            CustomKind::Float => "float",
            CustomKind::String => "string",
            CustomKind::Bytes => "bytes",
            CustomKind::Address => "address",
        }
    }
    /// The kind named `s`: a canonical name or an IPFIX type name (`unsigned32`, `octetArray`,
    /// `ipv4Address`, ...).
    pub fn from_name(s: &str) -> Option<CustomKind> {
        Some(match s {
            "unsigned" | "u64" | "unsigned64" | "unsigned32" | "unsigned16" | "unsigned8" => {
                CustomKind::Unsigned
            }
            "signed" | "i64" | "signed64" | "signed32" | "signed16" | "signed8" => {
                CustomKind::Signed
            }
            "float" | "f64" | "float64" | "float32" => CustomKind::Float,
            "string" => CustomKind::String,
            "bytes" | "octetArray" => CustomKind::Bytes,
            "address" | "ipv4Address" | "ipv6Address" => CustomKind::Address,
            _ => return None,
        })
    }
}

/// One user-defined element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomField {
    /// Private enterprise number (0 for IANA elements a user wants kept as a named field).
    pub enterprise: u32,
    /// Element id, without the enterprise bit.
    pub id: u16,
    /// Field name used by the store, filters and exports (lowercase, `[a-z0-9_]`).
    pub name: String,
    pub kind: CustomKind,
}

/// The registry in force: the position of an element in `fields` is its index in
/// [`crate::FlowRecord::extra`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomFields {
    pub fields: Vec<CustomField>,
}

impl CustomFields {
    /// The index of the element `(enterprise, id)`, if registered.
    pub fn lookup(&self, enterprise: u32, id: u16) -> Option<u16> {
        self.fields
            .iter()
            .position(|f| f.enterprise == enterprise && f.id == id)
            .map(|i| i as u16)
    }
    pub fn by_name(&self, name: &str) -> Option<u16> {
        self.fields
            .iter()
            .position(|f| f.name == name)
            .map(|i| i as u16)
    }
}

/// A decoded value of a user-defined element.
#[derive(Clone, Debug, PartialEq)]
pub enum CustomValue {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    String(Box<str>),
    Bytes(Box<[u8]>),
    Address(crate::Addr),
}

impl fmt::Display for CustomKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for CustomValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CustomValue::Unsigned(v) => write!(f, "{v}"),
            CustomValue::Signed(v) => write!(f, "{v}"),
            CustomValue::Float(v) => write!(f, "{v}"),
            CustomValue::String(s) => f.write_str(s),
            CustomValue::Bytes(b) => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
            CustomValue::Address(a) => write!(f, "{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_read_back() {
        for k in [
            CustomKind::Unsigned,
            CustomKind::Signed,
            CustomKind::Float,
            CustomKind::String,
            CustomKind::Bytes,
            CustomKind::Address,
        ] {
            assert_eq!(CustomKind::from_name(k.name()), Some(k));
            assert_eq!(k.to_string(), k.name());
        }
    }
}
