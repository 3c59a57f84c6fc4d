//! [`PortalUrl`]: the customer portal link, which carries the raw token.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// The query parameter Polar's `customer_portal_url` carries the token in.
pub(crate) const TOKEN_PARAM: &str = "customer_session_token";

/// Everything but RFC 3986's unreserved characters is escaped, as Polar writes the email.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `customer_portal_url`: a link to the customer portal with the raw token in its query.
///
/// It is as secret as the token: `Debug` redacts it, the buffer is wiped on drop, and only
/// [`expose_secret`](Self::expose_secret) and `Serialize` (a plain JSON string, for the
/// `201` body) show it.
///
/// ```
/// use tower_customer_session::model::PortalUrl;
///
/// let url = PortalUrl::from_secret("https://shop.example/portal?customer_session_token=polar_cst_x".to_owned());
/// assert!(!format!("{url:?}").contains("polar_cst_x"));
/// assert_eq!(serde_json::to_value(&url).unwrap(), url.expose_secret());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PortalUrl(Zeroizing<String>);

impl PortalUrl {
    /// Wrap a link that already holds a token.
    pub fn from_secret(url: String) -> Self {
        Self(Zeroizing::new(url))
    }

    /// `base?customer_session_token=…&email=…`, as Polar builds it, in one buffer sized up
    /// front so that no reallocation leaves an unwiped copy of the token behind.
    pub(crate) fn build(base: &str, token: &str, email: Option<&str>) -> Self {
        let email_len = email.map_or(0, |e| "&email=".len() + 3 * e.len());
        let mut url =
            String::with_capacity(base.len() + 1 + TOKEN_PARAM.len() + 1 + token.len() + email_len);
        url.push_str(base);
        url.push(if base.contains('?') { '&' } else { '?' });
        url.push_str(TOKEN_PARAM);
        url.push('=');
        url.push_str(token);
        if let Some(email) = email {
            url.push_str("&email=");
            url.extend(utf8_percent_encode(email, QUERY_VALUE));
        }
        debug_assert!(url.len() <= url.capacity());
        Self::from_secret(url)
    }

    /// The link, token included. Every call site is a place the secret leaves this type.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PortalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PortalUrl").field(&"[redacted]").finish()
    }
}

impl Serialize for PortalUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PortalUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from_secret)
    }
}

#[cfg(test)]
mod tests {
    use super::PortalUrl;

    #[test]
    fn encodes_the_email_like_polar() {
        let url = PortalUrl::build(
            "https://polar.sh/my-org/portal",
            "polar_cst_x",
            Some("customer+tag@example.com"),
        );
        assert_eq!(
            url.expose_secret(),
            "https://polar.sh/my-org/portal?customer_session_token=polar_cst_x&email=customer%2Btag%40example.com"
        );
        let url = PortalUrl::build("/portal?a=1", "t", None);
        assert_eq!(url.expose_secret(), "/portal?a=1&customer_session_token=t");
    }

    #[test]
    fn the_buffer_never_grows() {
        // A grown buffer is a copy of the token left unwiped in freed memory.
        for email in [None, Some(""), Some("a@b.c"), Some("ü\u{1F600}@x.example")] {
            let url = PortalUrl::build("https://shop.example/portal", "polar_cst_x", email);
            let expected = "https://shop.example/portal".len()
                + "?customer_session_token=polar_cst_x".len()
                + email.map_or(0, |e| "&email=".len() + 3 * e.len());
            assert_eq!(url.0.capacity(), expected, "{email:?}");
        }
    }
}
