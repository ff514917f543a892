//! The registry file of user-defined information elements.
//!
//! A TOML file with one `[[element]]` table per element:
//!
//! ```toml
//! # QoF's TCP round-trip and retransmission elements (enterprise 6871).
//! [[element]]
//! name = "tcp_rtt_ms"
//! enterprise = 6871
//! id = 455
//! type = "unsigned"     # unsigned | signed | float | string | bytes | address
//! ```
//!
//! Names become store columns, filter keywords and export fields, so they must be lowercase
//! `[a-z][a-z0-9_]*` and must not shadow a schema field.

use flowdrill_model::{CustomField, CustomFields, CustomKind, Field};
use serde::Deserialize;

/// Why a registry file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error(
        "element '{name}': unknown type '{kind}' (use unsigned, signed, float, string, bytes or address)"
    )]
    UnknownType { name: String, kind: String },
    #[error("element '{0}': names must match [a-z][a-z0-9_]*")]
    BadName(String),
    #[error("element '{0}': the name is a built-in field; choose another")]
    ShadowsSchema(String),
    #[error("element '{0}' is declared twice")]
    Duplicate(String),
    #[error("element '{name}': id {id} is out of range (0..=32767, without the enterprise bit)")]
    BadId { name: String, id: u32 },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    element: Vec<Element>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Element {
    name: String,
    #[serde(default)]
    enterprise: u32,
    id: u32,
    #[serde(rename = "type")]
    kind: String,
}

/// Parses a registry file's text.
pub fn parse_registry(text: &str) -> Result<CustomFields, RegistryError> {
    let file: File = toml::from_str(text)?;
    let mut out = CustomFields::default();
    for e in file.element {
        let valid = e.name.starts_with(|c: char| c.is_ascii_lowercase())
            && e.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(RegistryError::BadName(e.name));
        }
        if Field::from_name(&e.name).is_some() {
            return Err(RegistryError::ShadowsSchema(e.name));
        }
        if out.by_name(&e.name).is_some() {
            return Err(RegistryError::Duplicate(e.name));
        }
        if e.id > 0x7fff {
            return Err(RegistryError::BadId {
                name: e.name,
                id: e.id,
            });
        }
        let kind = CustomKind::from_name(&e.kind).ok_or_else(|| RegistryError::UnknownType {
            name: e.name.clone(),
            kind: e.kind.clone(),
        })?;
        out.fields.push(CustomField {
            enterprise: e.enterprise,
            id: e.id as u16,
            name: e.name,
            kind,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_elements_in_order() {
        let r = parse_registry(
            r#"
            [[element]]
            name = "tcp_rtt_ms"
            enterprise = 6871
            id = 455
            type = "unsigned"
            [[element]]
            name = "app_label"
            enterprise = 35632
            id = 110
            type = "string"
            "#,
        )
        .unwrap();
        assert_eq!(r.fields.len(), 2);
        assert_eq!(r.lookup(6871, 455), Some(0));
        assert_eq!(r.by_name("app_label"), Some(1));
        assert_eq!(r.fields[1].kind, CustomKind::String);
    }

    #[test]
    fn refuses_bad_entries_with_a_reason() {
        let cases = [
            (
                "name = \"Bad\"\nid = 1\ntype = \"unsigned\"",
                "names must match",
            ),
            ("name = \"bytes\"\nid = 1\ntype = \"unsigned\"", "built-in"),
            ("name = \"x\"\nid = 1\ntype = \"quux\"", "unknown type"),
            (
                "name = \"x\"\nid = 40000\ntype = \"unsigned\"",
                "out of range",
            ),
            (
                "name = \"x\"\nid = 1\ntype = \"unsigned\"\ncolour = 3",
                "unknown field",
            ),
        ];
        for (body, want) in cases {
            let err = parse_registry(&format!("[[element]]\n{body}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{body:?}: {err}");
        }
        let dup = "[[element]]\nname=\"x\"\nid=1\ntype=\"float\"\n[[element]]\nname=\"x\"\nid=2\ntype=\"float\"";
        assert!(
            parse_registry(dup)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
