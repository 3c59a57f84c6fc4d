//! The raw token as an owned secret: the one value that must never be printed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use super::TokenKind;

/// An owned raw session token, as returned once by
/// [`SessionManager::create`](crate::SessionManager::create).
///
/// `Debug` and `Display` never show it; only [`expose_secret`](Self::expose_secret)
/// and `Serialize` (for the `201` response body) do. The buffer is zeroed on drop.
///
/// ```
/// use tower_customer_session::token::SessionToken;
///
/// let token = SessionToken::from_secret("polar_cst_secret-value".to_owned());
/// assert!(!format!("{token:?} {token}").contains("secret-value"));
/// assert_eq!(token.expose_secret(), "polar_cst_secret-value");
/// ```
#[derive(Clone)]
pub struct SessionToken(Zeroizing<String>);

impl SessionToken {
    /// Wrap a raw token string (not validated; use [`TokenFormat::parse`](super::TokenFormat::parse)
    /// to check a presented token).
    pub fn from_secret(raw: String) -> Self {
        Self(Zeroizing::new(raw))
    }

    /// The raw token. Every call site is a place the secret leaves this type.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// The kind its prefix announces under Polar's default prefixes, if any.
    pub fn kind(&self) -> Option<TokenKind> {
        TokenKind::from_polar_prefix(&self.0)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionToken").field(&"[redacted]").finish()
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted session token]")
    }
}

impl Serialize for SessionToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SessionToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from_secret)
    }
}
