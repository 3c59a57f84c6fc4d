//! Challenges: issued without storing anything, verifiable by every instance that shares
//! the secret, used at most once per instance.
//!
//! A challenge is `version ‖ purpose ‖ issued-at ‖ 16 random bytes`, MACed together with
//! what it is for (the session token's hash for a registration, the DBSC session id for a
//! refresh) with a key derived from the secret. Accepting one records its random part in
//! this process until the challenge is too old to be accepted anyway.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 16;
const PAYLOAD_LEN: usize = 2 + 8 + NONCE_LEN;
const MAC_LEN: usize = 16;
/// Seconds a challenge stays acceptable after it was issued.
pub(crate) const LIFETIME_SECS: i64 = 60;
/// A challenge "issued" later than this many seconds ahead of our clock was not ours.
const CLOCK_SKEW_SECS: i64 = 5;
/// Most challenges remembered as used at once; past it, proofs are refused (503) rather
/// than forgotten early, which would let one be replayed.
const MAX_REMEMBERED: usize = 100_000;

/// What a challenge may be answered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Registration = 1,
    Refresh = 2,
}

/// Why a challenge was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChallengeError {
    /// Not one we issued for this purpose and this session (or not decodable).
    Foreign,
    /// Older than [`LIFETIME_SECS`].
    Stale,
    /// Already answered on this instance.
    Replayed,
    /// The replay memory is full.
    Busy,
}

pub(crate) struct Challenges {
    keys: Box<[[u8; 32]]>,
    used: Mutex<HashMap<[u8; NONCE_LEN], i64>>,
}

impl Challenges {
    /// `keys[0]` signs; every key verifies.
    pub(crate) fn new(keys: Vec<[u8; 32]>) -> Self {
        Self {
            keys: keys.into_boxed_slice(),
            used: Mutex::new(HashMap::new()),
        }
    }

    fn mac(key: &[u8; 32], payload: &[u8], binding: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
        mac.update(payload);
        mac.update(binding);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// A fresh challenge for `purpose` and `binding`, issued at `now` (Unix seconds).
    /// `None` only if the OS random number generator fails.
    pub(crate) fn issue(&self, purpose: Purpose, binding: &[u8], now: i64) -> Option<String> {
        let mut bytes = [0u8; PAYLOAD_LEN + MAC_LEN];
        bytes[0] = VERSION;
        bytes[1] = purpose as u8;
        bytes[2..10].copy_from_slice(&now.to_be_bytes());
        getrandom::fill(&mut bytes[10..PAYLOAD_LEN]).ok()?;
        let mac = Self::mac(&self.keys[0], &bytes[..PAYLOAD_LEN], binding);
        bytes[PAYLOAD_LEN..].copy_from_slice(&mac);
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accept `challenge` once: ours, for this purpose and binding, not stale, not used
    /// here before. On success it is remembered as used.
    pub(crate) fn accept(
        &self,
        challenge: &str,
        purpose: Purpose,
        binding: &[u8],
        now: i64,
    ) -> Result<(), ChallengeError> {
        let mut bytes = [0u8; PAYLOAD_LEN + MAC_LEN];
        match URL_SAFE_NO_PAD.decode_slice(challenge, &mut bytes) {
            Ok(len) if len == bytes.len() => {}
            _ => return Err(ChallengeError::Foreign),
        }
        let (payload, mac) = bytes.split_at(PAYLOAD_LEN);
        let ours = self
            .keys
            .iter()
            .any(|key| bool::from(Self::mac(key, payload, binding).ct_eq(mac)));
        if !ours || payload[0] != VERSION || payload[1] != purpose as u8 {
            return Err(ChallengeError::Foreign);
        }
        let issued = i64::from_be_bytes(payload[2..10].try_into().expect("8 bytes"));
        if now.saturating_sub(issued) > LIFETIME_SECS || issued > now + CLOCK_SKEW_SECS {
            return Err(ChallengeError::Stale);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&payload[10..]);
        let forget_at = issued + LIFETIME_SECS + 1;
        let mut used = self
            .used
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if used.len() >= MAX_REMEMBERED {
            used.retain(|_, until| *until >= now);
            if used.len() >= MAX_REMEMBERED {
                return Err(ChallengeError::Busy);
            }
        }
        if used.insert(nonce, forget_at).is_some() {
            return Err(ChallengeError::Replayed);
        }
        Ok(())
    }
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_is_accepted_once_for_its_purpose_and_binding() {
        let challenges = Challenges::new(vec![[7; 32]]);
        let issued = challenges
            .issue(Purpose::Refresh, b"session", 1000)
            .unwrap();
        let accept = |c: &str, p, b: &[u8], now| challenges.accept(c, p, b, now);
        assert_eq!(
            accept(&issued, Purpose::Registration, b"session", 1000),
            Err(ChallengeError::Foreign)
        );
        assert_eq!(
            accept(&issued, Purpose::Refresh, b"other", 1000),
            Err(ChallengeError::Foreign)
        );
        assert_eq!(
            accept(
                &issued,
                Purpose::Refresh,
                b"session",
                1000 + LIFETIME_SECS + 1
            ),
            Err(ChallengeError::Stale)
        );
        assert_eq!(accept(&issued, Purpose::Refresh, b"session", 1010), Ok(()));
        assert_eq!(
            accept(&issued, Purpose::Refresh, b"session", 1011),
            Err(ChallengeError::Replayed)
        );
    }

    #[test]
    fn foreign_and_malformed_challenges_are_refused() {
        let ours = Challenges::new(vec![[7; 32]]);
        let theirs = Challenges::new(vec![[8; 32]]);
        let issued = theirs.issue(Purpose::Refresh, b"s", 1000).unwrap();
        assert_eq!(
            ours.accept(&issued, Purpose::Refresh, b"s", 1000),
            Err(ChallengeError::Foreign)
        );
        for junk in ["", "x", "!!!!", &"A".repeat(200)] {
            assert_eq!(
                ours.accept(junk, Purpose::Refresh, b"s", 1000),
                Err(ChallengeError::Foreign)
            );
        }
        // Issued in the future: not ours to believe.
        let early = ours.issue(Purpose::Refresh, b"s", 2000).unwrap();
        assert_eq!(
            ours.accept(&early, Purpose::Refresh, b"s", 1000),
            Err(ChallengeError::Stale)
        );
    }
}
