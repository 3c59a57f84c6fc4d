//! Date-times as Polar writes them: Pydantic v2's RFC 3339 output in UTC.
//!
//! Pydantic prints `Z` rather than `+00:00`, writes exactly six fractional digits when the
//! microseconds are non-zero and omits the fraction entirely when they are zero. Python's
//! `datetime` only holds microseconds, so anything finer is dropped on both input and output.

use std::fmt;

use chrono::{DateTime, Datelike, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serializer, de};

/// Drop everything below the microsecond, as Python's `datetime` (and so Polar) would.
///
/// Use it on timestamps you create yourself (for example `Utc::now()`) so that a value you
/// hold compares equal to the same value after a JSON round trip.
///
/// ```
/// use chrono::{TimeZone, Timelike, Utc};
/// use tower_customer_session::model::truncate_to_micros;
///
/// let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
///     .with_nanosecond(123_456_789)
///     .unwrap();
/// assert_eq!(truncate_to_micros(t).nanosecond(), 123_456_000);
/// ```
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Display adapter producing the wire string without an intermediate allocation.
struct WireFormat<'a>(&'a DateTime<Utc>);

impl fmt::Display for WireFormat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `% 1e9` strips chrono's leap-second marker; `/ 1000` truncates (never rounds) to micros.
        let micros = self.0.nanosecond() % 1_000_000_000 / 1_000;
        write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S"))?;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        f.write_str("Z")
    }
}

/// Newtype so `Option<DateTime<Utc>>` can reuse serde's `Option` handling.
struct Wire(DateTime<Utc>);

impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(Rfc3339Visitor).map(Wire)
    }
}

/// Visitor accepting borrowed or transient strings alike, so escaped JSON input also parses.
struct Rfc3339Visitor;

impl de::Visitor<'_> for Rfc3339Visitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 date-time string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = DateTime::parse_from_rfc3339(v)
            .map(|t| truncate_to_micros(t.with_timezone(&Utc)))
            .map_err(|e| E::custom(format_args!("invalid RFC 3339 date-time {v:?}: {e}")))?;
        // An offset can push a valid RFC 3339 time into year -1 or 10000 in UTC, which the
        // wire format (four-digit years) cannot express: refuse it rather than write JSON
        // that nothing, this crate included, can read back.
        if !(0..=9999).contains(&t.year()) {
            return Err(E::custom(format_args!(
                "date-time {v:?} is outside years 0000-9999 in UTC"
            )));
        }
        Ok(t)
    }
}

/// `#[serde(with = "crate::model::timestamp")]` for `DateTime<Utc>`.
pub(crate) fn serialize<S: Serializer>(
    t: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&WireFormat(t))
}

/// `#[serde(with = "crate::model::timestamp")]` for `DateTime<Utc>`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    Wire::deserialize(deserializer).map(|w| w.0)
}

/// `#[serde(with = "crate::model::timestamp::option", default)]` for `Option<DateTime<Utc>>`.
///
/// `default` is needed on the field: with a custom `with`, serde no longer treats a missing key
/// as `None` by itself.
pub(crate) mod option {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{Wire, WireFormat};

    /// Serialize `None` as `null` (Polar always emits the key).
    pub(crate) fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serializer.collect_str(&WireFormat(t)),
            None => serializer.serialize_none(),
        }
    }

    /// Accept `null` or an RFC 3339 string.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<Wire>::deserialize(deserializer).map(|o| o.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn leap_second_keeps_microseconds_only() {
        let t = Utc
            .with_ymd_and_hms(2016, 12, 31, 23, 59, 59)
            .unwrap()
            .with_nanosecond(1_250_000_999)
            .unwrap();
        assert_eq!(WireFormat(&t).to_string(), "2016-12-31T23:59:60.250000Z");
    }
}
