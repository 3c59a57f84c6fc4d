//! Standard Webhooks signatures, as Polar signs its webhook deliveries.
//!
//! A delivery carries `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`: space-separated `v1,<base64 HMAC-SHA256>` entries over
//! `"{id}.{timestamp}.{body}"`. Entries of other versions (`v1a` asymmetric signatures) are
//! skipped; one matching `v1` entry is enough, so a sender can rotate keys by signing with
//! both. Polar does not: it switches to a new secret at once, so the receiver may hold
//! several secrets and accept a match under any of them.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";
/// Polar's ids are UUIDs; anything far longer is not one of its deliveries.
const MAX_ID_LEN: usize = 256;

/// The key webhook signatures are checked with. `Debug` never shows it.
///
/// ```
/// use tower_customer_session::webhooks::WebhookSecret;
///
/// // What Polar's dashboard shows: used verbatim, as Polar's SDKs do.
/// let polar = WebhookSecret::polar("polar_whs_example").unwrap();
/// // A Standard Webhooks secret: `whsec_` + base64 of the key.
/// let standard = WebhookSecret::standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
/// assert_eq!(
///     standard.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#),
///     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
/// );
/// assert!(!format!("{polar:?}").contains("example"));
/// ```
#[derive(Clone)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

/// Why a webhook secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookSecretError {
    /// The secret is empty: anyone could sign with it.
    #[error("the webhook secret is empty")]
    Empty,
    /// A Standard Webhooks secret whose part after `whsec_` is not base64.
    #[error("the webhook secret is not base64 after its whsec_ prefix")]
    NotBase64,
}

/// Why a delivery's signature was refused. The messages are safe to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// A `webhook-*` header is absent.
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    /// A `webhook-*` header is repeated, not text, or not in its format.
    #[error("the {0} header is malformed")]
    InvalidHeader(&'static str),
    /// `webhook-timestamp` is further from now than the tolerance: a replay, or a clock off.
    #[error("the webhook-timestamp is outside the accepted window")]
    Stale,
    /// No `v1` signature matches the body under the configured secret (any of them).
    #[error("no webhook signature matches")]
    NoMatch,
}

impl WebhookSecret {
    /// The secret as Polar's dashboard shows it (e.g. `polar_whs_…`), used as Polar's SDKs
    /// use it: they base64-encode the configured string and hand it to a Standard Webhooks
    /// verifier, which decodes it again, so the HMAC key is the string's UTF-8 bytes, any
    /// prefix included. A `whsec_` at its start is part of the key, not stripped.
    ///
    /// # Errors
    ///
    /// [`WebhookSecretError::Empty`] for an empty string.
    ///
    /// ```
    /// use tower_customer_session::webhooks::{WebhookSecret, WebhookSecretError};
    ///
    /// assert_eq!(WebhookSecret::polar("").unwrap_err(), WebhookSecretError::Empty);
    /// // The same key as the Standard Webhooks secret holding its base64:
    /// let polar = WebhookSecret::polar("whsec_abc").unwrap();
    /// let standard = WebhookSecret::standard("d2hzZWNfYWJj").unwrap(); // base64("whsec_abc")
    /// assert_eq!(polar.sign("id", 1, b"{}"), standard.sign("id", 1, b"{}"));
    /// ```
    pub fn polar(secret: &str) -> Result<Self, WebhookSecretError> {
        if secret.is_empty() {
            return Err(WebhookSecretError::Empty);
        }
        Ok(Self(Zeroizing::new(secret.as_bytes().to_vec())))
    }

    /// A Standard Webhooks secret: base64 of the key, optionally prefixed with `whsec_`.
    ///
    /// # Errors
    ///
    /// [`WebhookSecretError::NotBase64`] or [`WebhookSecretError::Empty`].
    ///
    /// ```
    /// use tower_customer_session::webhooks::WebhookSecret;
    ///
    /// assert!(WebhookSecret::standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    /// assert!(WebhookSecret::standard("whsec_not base64!").is_err());
    /// ```
    pub fn standard(secret: &str) -> Result<Self, WebhookSecretError> {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| WebhookSecretError::NotBase64)?;
        if key.is_empty() {
            return Err(WebhookSecretError::Empty);
        }
        Ok(Self(Zeroizing::new(key)))
    }

    /// The `webhook-signature` value a sender puts on `body`: `v1,<base64>`, for senders and
    /// tests.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let digest = self.digest(id, &timestamp.to_string(), body);
        format!("v1,{}", STANDARD.encode(digest))
    }

    /// Check a delivery's headers and raw body at Unix time `now`, allowing its timestamp to
    /// be `tolerance_secs` away from `now` either way.
    ///
    /// # Errors
    ///
    /// The first [`SignatureError`] found: headers, then the timestamp, then the signatures.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use tower_customer_session::webhooks::{SignatureError, WebhookSecret};
    ///
    /// let secret = WebhookSecret::polar("polar_whs_example").unwrap();
    /// let body = br#"{"type":"customer.updated","data":{"id":"x"}}"#;
    /// let mut headers = HeaderMap::new();
    /// headers.insert("webhook-id", "msg_1".parse().unwrap());
    /// headers.insert("webhook-timestamp", "1700000000".parse().unwrap());
    /// headers.insert("webhook-signature", secret.sign("msg_1", 1700000000, body).parse().unwrap());
    /// assert_eq!(secret.verify(&headers, body, 1700000060, 300), Ok(()));
    /// assert_eq!(secret.verify(&headers, b"{}", 1700000060, 300), Err(SignatureError::NoMatch));
    /// assert_eq!(secret.verify(&headers, body, 1700000400, 300), Err(SignatureError::Stale));
    /// ```
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
        tolerance_secs: i64,
    ) -> Result<(), SignatureError> {
        verify_any(
            std::slice::from_ref(self),
            headers,
            body,
            now,
            tolerance_secs,
        )
        .map(|_| ())
    }

    fn digest(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

/// A delivery whose signature matched: its `webhook-id` and `webhook-timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verified<'a> {
    pub(super) id: &'a str,
    pub(super) sent: i64,
}

/// [`WebhookSecret::verify`] with several secrets: one `v1` entry matching under any of
/// them is enough.
pub(super) fn verify_any<'a>(
    secrets: &[WebhookSecret],
    headers: &'a HeaderMap,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<Verified<'a>, SignatureError> {
    let id = header(headers, ID)?;
    let timestamp = header(headers, TIMESTAMP)?;
    let signatures = header(headers, SIGNATURE)?;
    // A `.` in the id would let `id.timestamp` be split two ways.
    if id.is_empty() || id.len() > MAX_ID_LEN || id.contains('.') {
        return Err(SignatureError::InvalidHeader(ID));
    }
    let sent = parse_timestamp(timestamp).ok_or(SignatureError::InvalidHeader(TIMESTAMP))?;
    if now.abs_diff(sent) > tolerance_secs.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected: Vec<[u8; 32]> = secrets
        .iter()
        .map(|secret| secret.digest(id, timestamp, body))
        .collect();
    let mut matched = false;
    for entry in signatures.split(' ').filter(|e| !e.is_empty()) {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        let Ok(candidate) = STANDARD.decode(encoded) else {
            continue;
        };
        for expected in &expected {
            // Lengths are public (32 bytes); the contents are compared in constant time.
            matched |= candidate.len() == expected.len() && bool::from(candidate.ct_eq(expected));
        }
    }
    if matched {
        Ok(Verified { id, sent })
    } else {
        Err(SignatureError::NoMatch)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// The one value of `name`, as text.
fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(SignatureError::MissingHeader(name))?;
    if values.next().is_some() {
        return Err(SignatureError::InvalidHeader(name));
    }
    value
        .to_str()
        .map_err(|_| SignatureError::InvalidHeader(name))
}

/// Unix seconds written as plain digits, as Standard Webhooks sends them.
fn parse_timestamp(value: &str) -> Option<i64> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_plain_digits() {
        assert_eq!(parse_timestamp("1614265330"), Some(1614265330));
        for bad in ["", "-1", "+1", "1.5", " 1", "1e9", "9999999999999"] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
