//! The checks a cached or freshly loaded session must pass on every request.

use subtle::ConstantTimeEq;

use crate::cache::CachedSession;
use crate::reject::InvalidToken;
use crate::token::TokenHash;

/// Constant-time digest match, then expiry (`now >= expires_at` is expired, in
/// microseconds, the precision of the wire format), then the
/// customer's deletion. The cache's own timers are never trusted for any of these.
pub(crate) fn verify(
    entry: &CachedSession,
    presented: &TokenHash,
    now_micros: i64,
) -> Result<(), InvalidToken> {
    // Fixed-size digests: no length short-circuit, no early exit on the first differing byte.
    if !bool::from(entry.presented.ct_eq(presented)) {
        return Err(InvalidToken::Unknown);
    }
    if now_micros >= entry.expires_at_micros {
        return Err(InvalidToken::Expired);
    }
    if !entry.customer_active {
        return Err(InvalidToken::CustomerDeleted);
    }
    Ok(())
}
