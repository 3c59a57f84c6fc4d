//! Tax ids: Polar's `[value, TaxIDFormat]` pair (`server/polar/tax/tax_id.py`).

use std::fmt;

use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `TaxIDFormat` enum of Polar's OpenAPI spec (76 values), in the spec's order.
///
/// They mirror Stripe's tax id types plus the Polar-only `mu_tan`. The set grows over time,
/// which is why [`TaxIdFormat`] also accepts values not listed here.
pub const KNOWN_TAX_ID_FORMATS: &[&str] = &[
    "ad_nrt",
    "ae_trn",
    "ar_cuit",
    "au_abn",
    "au_arn",
    "bg_uic",
    "bh_vat",
    "bo_tin",
    "br_cnpj",
    "br_cpf",
    "ca_bn",
    "ca_gst_hst",
    "ca_pst_bc",
    "ca_pst_mb",
    "ca_pst_sk",
    "ca_qst",
    "ch_uid",
    "ch_vat",
    "cl_tin",
    "cn_tin",
    "co_nit",
    "cr_tin",
    "de_stn",
    "do_rcn",
    "ec_ruc",
    "eg_tin",
    "es_cif",
    "eu_oss_vat",
    "eu_vat",
    "gb_vat",
    "ge_vat",
    "hk_br",
    "hr_oib",
    "hu_tin",
    "id_npwp",
    "il_vat",
    "in_gst",
    "is_vat",
    "jp_cn",
    "jp_rn",
    "jp_trn",
    "ke_pin",
    "kr_brn",
    "kz_bin",
    "li_uid",
    "mk_vat",
    "mx_rfc",
    "my_frp",
    "my_itn",
    "my_sst",
    "ng_tin",
    "no_vat",
    "no_voec",
    "nz_gst",
    "om_vat",
    "pe_ruc",
    "ph_tin",
    "ro_tin",
    "rs_pib",
    "ru_inn",
    "ru_kpp",
    "sa_vat",
    "sg_gst",
    "sg_uen",
    "si_tin",
    "sv_nit",
    "th_vat",
    "tr_tin",
    "tw_vat",
    "ua_vat",
    "us_ein",
    "uy_ruc",
    "ve_rif",
    "vn_tin",
    "za_vat",
    "mu_tan",
];

/// A tax id format such as `"eu_vat"` or `"us_ein"`.
///
/// An open set: any string parses, so a format Polar adds later does not break
/// deserialization. Use [`is_known`](Self::is_known) to check it against
/// [`KNOWN_TAX_ID_FORMATS`].
///
/// ```
/// use tower_customer_session::model::TaxIdFormat;
///
/// assert!(TaxIdFormat::new("eu_vat").is_known());
/// assert!(!TaxIdFormat::new("xx_new").is_known());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaxIdFormat(String);

impl TaxIdFormat {
    /// Wrap a format string as is (not validated).
    pub fn new(format: impl Into<String>) -> Self {
        Self(format.into())
    }

    /// The format string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is one of [`KNOWN_TAX_ID_FORMATS`] (case-sensitive, as on the wire).
    pub fn is_known(&self) -> bool {
        KNOWN_TAX_ID_FORMATS.contains(&self.0.as_str())
    }
}

impl fmt::Display for TaxIdFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A customer's tax id, serialized as the 2-element JSON array `[value, format]`.
///
/// ```
/// use tower_customer_session::model::TaxId;
///
/// let id: TaxId = serde_json::from_str(r#"["911144442","us_ein"]"#).unwrap();
/// assert_eq!(id.value, "911144442");
/// assert_eq!(id.format.as_str(), "us_ein");
/// assert!(serde_json::from_str::<TaxId>(r#"["911144442"]"#).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaxId {
    /// The id itself, e.g. `"911144442"`.
    pub value: String,
    /// Its format, e.g. `us_ein`.
    pub format: TaxIdFormat,
}

impl TaxId {
    /// Pair a value with its format.
    pub fn new(value: impl Into<String>, format: TaxIdFormat) -> Self {
        Self {
            value: value.into(),
            format,
        }
    }
}

impl Serialize for TaxId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.value)?;
        tuple.serialize_element(&self.format)?;
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for TaxId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_tuple(2, TaxIdVisitor)
    }
}

/// Reads the pair and then drains the sequence, so longer arrays are rejected with their
/// real length instead of a generic "trailing characters" error.
struct TaxIdVisitor;

impl<'de> Visitor<'de> for TaxIdVisitor {
    type Value = TaxId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 2-element array [value, format]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TaxId, A::Error> {
        let value: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let format: TaxIdFormat = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let mut len = 2;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len += 1;
        }
        if len != 2 {
            return Err(de::Error::invalid_length(len, &self));
        }
        Ok(TaxId { value, format })
    }
}
