//! Customer metadata: Polar's `MetadataOutputType`, `{string: string | integer | number | boolean}`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Merchant-defined metadata attached to a customer; `{}` when empty.
///
/// Keys keep the order they were inserted (or read) in, and serialize in that order, as
/// Polar's do: a customer read from Polar and written back out is byte-for-byte the same.
/// Equality ignores order, as for any map.
///
/// ```
/// use tower_customer_session::model::{Metadata, MetadataValue};
///
/// let metadata: Metadata = serde_json::from_str(r#"{"plan":"pro","seats":5,"beta":true}"#).unwrap();
/// assert_eq!(serde_json::to_string(&metadata).unwrap(), r#"{"plan":"pro","seats":5,"beta":true}"#);
/// assert_eq!(metadata["seats"], MetadataValue::Int(5));
/// ```
pub type Metadata = indexmap::IndexMap<String, MetadataValue>;

/// One metadata value. Serialized as the bare JSON value, so `1`, `1.5`, `"1"` and `true`
/// each keep their JSON type through a round trip.
///
/// ```
/// use tower_customer_session::model::MetadataValue;
///
/// let v: MetadataValue = serde_json::from_str("5").unwrap();
/// assert_eq!(v, MetadataValue::Int(5));
/// assert_eq!(MetadataValue::from("pro").to_string(), "pro");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetadataValue {
    /// A JSON boolean.
    Bool(bool),
    /// A JSON integer. Tried before `Float` so whole numbers stay integers.
    Int(i64),
    /// A JSON number with a fraction or exponent (or an integer outside the `i64` range).
    Float(f64),
    /// A JSON string.
    String(String),
}

impl From<&str> for MetadataValue {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}

impl From<String> for MetadataValue {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}

impl From<i64> for MetadataValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<f64> for MetadataValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}

impl From<bool> for MetadataValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// Strings print without quotes; floats always show a fractional part or exponent
/// (`1.0`, not `1`) so they stay distinguishable from integers.
impl fmt::Display for MetadataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(v) => write!(f, "{v}"),
            Self::Int(v) => write!(f, "{v}"),
            // `Debug` for f64 is the shortest round-trip form and keeps the `.0`.
            Self::Float(v) => write!(f, "{v:?}"),
            Self::String(v) => f.write_str(v),
        }
    }
}
