//! The checks a cached or freshly loaded session must pass on every request.

use chrono::{DateTime, Utc};
use subtle::ConstantTimeEq;

use crate::cache::CachedSession;
use crate::reject::InvalidToken;
use crate::token::TokenHash;

/// Constant-time digest match, then expiry (`now >= expires_at` is expired), then the
/// customer's deletion. The cache's own timers are never trusted for any of these.
pub(crate) fn verify(
    entry: &CachedSession,
    presented: &TokenHash,
    now: DateTime<Utc>,
) -> Result<(), InvalidToken> {
    // Fixed-size digests: no length short-circuit, no early exit on the first differing byte.
    if !bool::from(entry.info.token_hash.ct_eq(presented)) {
        return Err(InvalidToken::Unknown);
    }
    if now >= entry.info.expires_at {
        return Err(InvalidToken::Expired);
    }
    if !entry.customer.can_authenticate() {
        return Err(InvalidToken::CustomerDeleted);
    }
    Ok(())
}
