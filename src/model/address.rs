//! Postal address (`server/polar/kit/address.py`).

use serde::{Deserialize, Serialize};

/// A billing address. Only `country` is required.
///
/// All six keys are always serialized, `null` included, as Polar does; a missing optional key
/// on input is read as `None`.
///
/// ```
/// use tower_customer_session::model::Address;
///
/// let a = Address::new("FR");
/// assert_eq!(
///     serde_json::to_string(&a).unwrap(),
///     r#"{"line1":null,"line2":null,"postal_code":null,"city":null,"state":null,"country":"FR"}"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    /// First street line.
    pub line1: Option<String>,
    /// Second street line.
    pub line2: Option<String>,
    /// Postal or ZIP code.
    pub postal_code: Option<String>,
    /// City.
    pub city: Option<String>,
    /// State or region. Polar writes ISO 3166-2 (`"US-CA"`, `"CA-QC"`) for the US and Canada and
    /// free text elsewhere; this type does not validate it.
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2 country code, uppercase on output from Polar (not validated here).
    pub country: String,
}

impl Address {
    /// An address holding only a country.
    pub fn new(country: impl Into<String>) -> Self {
        Self {
            line1: None,
            line2: None,
            postal_code: None,
            city: None,
            state: None,
            country: country.into(),
        }
    }
}
