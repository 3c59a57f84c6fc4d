//! The checks a cached or freshly loaded session must pass on every request, and the one
//! a record passes once, when the store returns it.

use subtle::ConstantTimeEq;

use crate::cache::CachedSession;
use crate::reject::InvalidToken;
use crate::token::{TokenFormat, TokenHash, TokenKind};

/// Whether the presented token carries the prefix of the stored session's kind.
///
/// The HMAC covers the whole token, prefix included, so a session issued as a customer
/// session is never found under a member token, nor the reverse. A mismatch means the store
/// returned a record of the other kind: a buggy or hand-edited store. The record's kind
/// (and member) decide the session's rights, so a member token resolving to a customer
/// session would act as the owner; it is refused instead. Checked once, before the record
/// is cached: the cache is keyed by that same hash, so only this token can ever hit it.
pub(crate) fn kind_matches(format: &TokenFormat, presented: &str, stored: TokenKind) -> bool {
    // The prefixes are valid and neither starts the other, so this is the parsed kind.
    presented.starts_with(format.prefix(stored))
}

/// Constant-time digest match, then expiry (`now >= expires_at` is expired, in
/// microseconds, the precision of the wire format), then the
/// customer's deletion. The cache's own timers are never trusted for any of these.
pub(crate) fn verify(
    entry: &CachedSession,
    presented: &TokenHash,
    now_micros: i64,
) -> Result<(), InvalidToken> {
    Facts::of(entry, presented).verify(now_micros)
}

/// What [`verify`] judges, copied out of a cached session, so that a cache hit can take it
/// under the cache's lock and read the clock after letting go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts {
    digest_matches: bool,
    expires_at_micros: i64,
    customer_active: bool,
}

impl Facts {
    pub(crate) fn of(entry: &CachedSession, presented: &TokenHash) -> Self {
        Self {
            // Fixed-size digests: no length short-circuit, no early exit on the first
            // differing byte.
            digest_matches: bool::from(entry.presented.ct_eq(presented)),
            expires_at_micros: entry.expires_at_micros,
            customer_active: entry.customer_active,
        }
    }

    /// [`verify`]'s checks, in its order.
    pub(crate) fn verify(self, now_micros: i64) -> Result<(), InvalidToken> {
        if !self.digest_matches {
            return Err(InvalidToken::Unknown);
        }
        if now_micros >= self.expires_at_micros {
            return Err(InvalidToken::Expired);
        }
        if !self.customer_active {
            return Err(InvalidToken::CustomerDeleted);
        }
        Ok(())
    }
}
