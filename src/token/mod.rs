//! Customer session tokens: shape, checksum, generation and keyed hash.
//!
//! A Polar token is a prefix (`polar_cst_` for customer sessions, `polar_mst_` for member
//! sessions), 37 characters of `[A-Za-z0-9]` and a six-character base62 CRC-32 of those 37
//! characters: 53 characters in all. [`TokenFormat::parse`] checks all of that without
//! allocating, so a malformed token is refused before any cache or store work. Stores only
//! ever see [`TokenHash`] (`HMAC-SHA256(secret, token)`), never the token.
//!
//! ```
//! use tower_customer_session::token::{TokenFormat, TokenKind};
//!
//! let format = TokenFormat::polar();
//! let token = format.generate(TokenKind::Customer).unwrap();
//! let parsed = format.parse(token.expose_secret()).unwrap();
//! assert_eq!(parsed.kind(), TokenKind::Customer);
//! assert!(format.parse("polar_cst_not-a-real-token").is_err());
//! ```

mod checksum;
mod generate;
mod hash;
mod secret;

use std::fmt;

pub(crate) use hash::DigestState;
pub use hash::{MIN_SECRET_LEN, ShortHash, TokenHash, TokenHasher};
pub use secret::SessionToken;

/// Length of the random part.
pub(crate) const RANDOM_LEN: usize = 37;
const BODY_LEN: usize = RANDOM_LEN + checksum::CHECKSUM_LEN;
/// Longest accepted prefix; keeps every token far below cookie and header limits.
const MAX_PREFIX_LEN: usize = 32;

/// Polar's customer session prefix.
pub const CUSTOMER_PREFIX: &str = "polar_cst_";
/// Polar's member session prefix.
pub const MEMBER_PREFIX: &str = "polar_mst_";

/// Which kind of session a token belongs to, from its prefix.
///
/// Written as `"customer"` or `"member"` (Polar's names for the subjects), by `Display`,
/// `FromStr` and serde alike, so a store can keep it as text:
///
/// ```
/// use tower_customer_session::token::TokenKind;
///
/// assert_eq!(TokenKind::Member.to_string(), "member");
/// assert_eq!("customer".parse::<TokenKind>(), Ok(TokenKind::Customer));
/// assert!("Member".parse::<TokenKind>().is_err());
/// assert_eq!(serde_json::to_string(&TokenKind::Member).unwrap(), r#""member""#);
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A customer session (`polar_cst_…`).
    #[default]
    Customer,
    /// A member session of a team customer (`polar_mst_…`).
    Member,
}

impl TokenKind {
    /// The kind announced by Polar's default prefixes, if `token` starts with one.
    pub fn from_polar_prefix(token: &str) -> Option<Self> {
        if token.starts_with(CUSTOMER_PREFIX) {
            Some(Self::Customer)
        } else if token.starts_with(MEMBER_PREFIX) {
            Some(Self::Member)
        } else {
            None
        }
    }

    /// `"customer"` or `"member"`, as Polar names subjects.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Member => "member",
        }
    }
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`TokenKind`] name other than `"customer"` or `"member"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown session kind: expected \"customer\" or \"member\"")]
pub struct UnknownTokenKind;

impl std::str::FromStr for TokenKind {
    type Err = UnknownTokenKind;

    /// Exact and case-sensitive, as written by `Display`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customer" => Ok(Self::Customer),
            "member" => Ok(Self::Member),
            _ => Err(UnknownTokenKind),
        }
    }
}

/// Why a presented token does not have the expected shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Neither configured prefix matches.
    #[error("unknown token prefix")]
    Prefix,
    /// The length is not prefix + 43.
    #[error("wrong token length")]
    Length,
    /// The random part or the checksum has a character outside `[A-Za-z0-9]`.
    #[error("character outside the token alphabet")]
    Alphabet,
    /// The checksum does not match the random part.
    #[error("token checksum mismatch")]
    Checksum,
}

/// Why a [`TokenFormat`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid token prefix {prefix:?}: {reason}")]
pub struct PrefixError {
    prefix: String,
    reason: &'static str,
}

/// The accepted token prefixes and the rules of the token's shape.
///
/// [`TokenFormat::polar`] (the default) accepts `polar_cst_` and `polar_mst_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFormat {
    customer_prefix: Box<str>,
    member_prefix: Box<str>,
}

impl Default for TokenFormat {
    fn default() -> Self {
        Self::polar()
    }
}

impl TokenFormat {
    /// Polar's prefixes: `polar_cst_` (customer) and `polar_mst_` (member).
    pub fn polar() -> Self {
        Self {
            customer_prefix: CUSTOMER_PREFIX.into(),
            member_prefix: MEMBER_PREFIX.into(),
        }
    }

    /// Custom prefixes, e.g. for a sandbox that must never accept production tokens.
    ///
    /// Each prefix is 1 to 32 characters of `[A-Za-z0-9_-]`, and neither may be a prefix
    /// of the other.
    ///
    /// ```
    /// use tower_customer_session::token::{TokenFormat, TokenKind};
    ///
    /// let format = TokenFormat::new("acme_cst_", "acme_mst_").unwrap();
    /// let token = format.generate(TokenKind::Member).unwrap();
    /// assert!(token.expose_secret().starts_with("acme_mst_"));
    /// assert!(TokenFormat::new("bad prefix", "acme_mst_").is_err());
    /// ```
    pub fn new(
        customer_prefix: impl Into<String>,
        member_prefix: impl Into<String>,
    ) -> Result<Self, PrefixError> {
        let customer_prefix = customer_prefix.into();
        let member_prefix = member_prefix.into();
        for prefix in [&customer_prefix, &member_prefix] {
            check_prefix(prefix)?;
        }
        if customer_prefix.starts_with(member_prefix.as_str())
            || member_prefix.starts_with(customer_prefix.as_str())
        {
            return Err(PrefixError {
                prefix: member_prefix,
                reason: "one prefix may not start with the other",
            });
        }
        Ok(Self {
            customer_prefix: customer_prefix.into(),
            member_prefix: member_prefix.into(),
        })
    }

    /// The prefix for tokens of `kind`.
    pub fn prefix(&self, kind: TokenKind) -> &str {
        match kind {
            TokenKind::Customer => &self.customer_prefix,
            TokenKind::Member => &self.member_prefix,
        }
    }

    /// Longest token this format can accept.
    pub fn max_len(&self) -> usize {
        self.customer_prefix.len().max(self.member_prefix.len()) + BODY_LEN
    }

    /// Check the shape of `raw`: prefix, length, alphabet and checksum. No allocation.
    pub fn parse<'a>(&self, raw: &'a str) -> Result<Token<'a>, TokenError> {
        self.parse_bytes(raw.as_bytes())
    }

    /// [`parse`](Self::parse) on header bytes, so the request path needs no prior UTF-8 or
    /// grammar scan: a token that passes is ASCII alphanumeric after an ASCII prefix.
    pub(crate) fn parse_bytes<'a>(&self, raw: &'a [u8]) -> Result<Token<'a>, TokenError> {
        let (kind, body) = if let Some(body) = raw.strip_prefix(self.customer_prefix.as_bytes()) {
            (TokenKind::Customer, body)
        } else if let Some(body) = raw.strip_prefix(self.member_prefix.as_bytes()) {
            (TokenKind::Member, body)
        } else {
            return Err(TokenError::Prefix);
        };
        let Ok(body) = <&[u8; BODY_LEN]>::try_from(body) else {
            return Err(TokenError::Length);
        };
        if !alphanumeric(body) {
            return Err(TokenError::Alphabet);
        }
        let (random, sum) = body.split_at(RANDOM_LEN);
        if checksum::checksum(random) != sum {
            return Err(TokenError::Checksum);
        }
        let raw = std::str::from_utf8(raw).map_err(|_| TokenError::Alphabet)?;
        Ok(Token { raw, kind })
    }

    /// A fresh token of `kind` from the OS CSPRNG (about 220 bits of entropy).
    pub fn generate(&self, kind: TokenKind) -> Result<SessionToken, getrandom::Error> {
        generate::generate(self.prefix(kind))
    }
}

/// `[A-Za-z0-9]` for every byte. No early exit: over a fixed length the compiler turns this
/// into a few vector compares, where a branch per byte cost about a tenth of a cache hit.
fn alphanumeric(body: &[u8; BODY_LEN]) -> bool {
    body.iter().fold(true, |ok, &b| {
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        ok & (letter | digit)
    })
}

fn check_prefix(prefix: &str) -> Result<(), PrefixError> {
    let reason = if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        "length must be 1 to 32"
    } else if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "allowed characters are A-Z, a-z, 0-9, '_' and '-'"
    } else {
        return Ok(());
    };
    Err(PrefixError {
        prefix: prefix.to_owned(),
        reason,
    })
}

/// A presented token whose shape has been checked. It borrows the request; `Debug` and
/// `Display` show only its kind.
#[derive(Clone, Copy)]
pub struct Token<'a> {
    raw: &'a str,
    kind: TokenKind,
}

impl<'a> Token<'a> {
    /// The kind its prefix announces.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The raw token, for hashing.
    pub fn expose_secret(&self) -> &'a str {
        self.raw
    }
}

impl fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind)
            .field("raw", &"[redacted]")
            .finish()
    }
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted {} session token]", self.kind.as_str())
    }
}

/// Whether `value` matches RFC 6750's `b64token`:
/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(value: &[u8]) -> bool {
    let body_len = value.len() - value.iter().rev().take_while(|&&b| b == b'=').count();
    body_len > 0 && value[..body_len].iter().all(|&b| B64TOKEN[b as usize])
}

/// `b64token` body characters, as a table: one load per byte on the request path.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests;
