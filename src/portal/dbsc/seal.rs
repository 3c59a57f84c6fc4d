//! Sealing what the browser carries for us: the bound cookie and the DBSC session id.
//!
//! Both hold the session token, encrypted and authenticated (XChaCha20-Poly1305) under a key
//! derived from the manager's secret, so every instance sharing the secret opens them and
//! nobody without it can read or forge one. Resolution then goes through the token, the
//! same cache and store as any request: a revoked session is refused at once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use p256::ecdsa::VerifyingKey;
use zeroize::Zeroizing;

use crate::token::SessionToken;

/// Marks a cookie value as a bound credential (a token never starts with it: tokens are
/// `[A-Za-z0-9_]` up to their prefix's end, and this has a `.`).
pub(crate) const CREDENTIAL_PREFIX: &str = "dbsc1.";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Longest sealed value examined; a token is 53 characters, so a real one is far shorter.
const MAX_SEALED_LEN: usize = 512;
/// SEC1 compressed P-256 point.
const KEY_LEN: usize = 33;

/// What a sealed value is for; bound into the ciphertext, so one cannot stand for the other.
#[derive(Clone, Copy)]
enum Purpose {
    Credential,
    SessionId,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Self::Credential => b"tower-customer-session dbsc v1 credential",
            Self::SessionId => b"tower-customer-session dbsc v1 session id",
        }
    }
}

/// The AEAD keys: the current one first (used to seal), then those of accepted secrets.
pub(crate) struct Sealer {
    keys: Box<[XChaCha20Poly1305]>,
}

/// An opened bound credential.
pub(crate) struct Credential {
    pub(crate) token: SessionToken,
    /// Unix seconds after which the credential is refused.
    pub(crate) expires_at: i64,
}

/// An opened DBSC session id: whose key signs the refresh proofs, for which session.
pub(crate) struct SessionId {
    pub(crate) key: VerifyingKey,
    pub(crate) token: SessionToken,
}

impl Sealer {
    pub(crate) fn new(keys: &[[u8; 32]]) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|key| XChaCha20Poly1305::new(key.into()))
                .collect(),
        }
    }

    fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).ok()?;
        let sealed = self.keys[0]
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.aad(),
                },
            )
            .ok()?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Some(URL_SAFE_NO_PAD.encode(bytes))
    }

    fn open(&self, purpose: Purpose, text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if text.len() > MAX_SEALED_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        self.keys.iter().find_map(|key| {
            key.decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: purpose.aad(),
                },
            )
            .ok()
            .map(Zeroizing::new)
        })
    }

    /// The cookie value of a bound credential for `token`, good until `expires_at` (Unix
    /// seconds). `None` only if the OS random number generator fails.
    pub(crate) fn seal_credential(&self, token: &str, expires_at: i64) -> Option<String> {
        let mut plaintext = Zeroizing::new(Vec::with_capacity(8 + token.len()));
        plaintext.extend_from_slice(&expires_at.to_be_bytes());
        plaintext.extend_from_slice(token.as_bytes());
        let sealed = self.seal(Purpose::Credential, &plaintext)?;
        Some(format!("{CREDENTIAL_PREFIX}{sealed}"))
    }

    /// The credential in a cookie value, if it is one this secret (or an accepted one)
    /// sealed. Expiry is the caller's to check.
    pub(crate) fn open_credential(&self, raw: &[u8]) -> Option<Credential> {
        let sealed = raw.strip_prefix(CREDENTIAL_PREFIX.as_bytes())?;
        let plaintext = self.open(Purpose::Credential, sealed)?;
        let (expires_at, token) = plaintext.split_first_chunk::<8>()?;
        let token = std::str::from_utf8(token).ok()?;
        Some(Credential {
            token: SessionToken::from_secret(token.to_owned()),
            expires_at: i64::from_be_bytes(*expires_at),
        })
    }

    /// The `session_identifier` of a DBSC session: the browser's public key and the token.
    pub(crate) fn seal_session_id(&self, key: &VerifyingKey, token: &str) -> Option<String> {
        let point = key.to_encoded_point(true);
        let mut plaintext = Zeroizing::new(Vec::with_capacity(KEY_LEN + token.len()));
        plaintext.extend_from_slice(point.as_bytes());
        plaintext.extend_from_slice(token.as_bytes());
        self.seal(Purpose::SessionId, &plaintext)
    }

    pub(crate) fn open_session_id(&self, raw: &[u8]) -> Option<SessionId> {
        let plaintext = self.open(Purpose::SessionId, raw)?;
        if plaintext.len() <= KEY_LEN {
            return None;
        }
        let (key, token) = plaintext.split_at(KEY_LEN);
        let key = VerifyingKey::from_sec1_bytes(key).ok()?;
        let token = std::str::from_utf8(token).ok()?;
        Some(SessionId {
            key,
            token: SessionToken::from_secret(token.to_owned()),
        })
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "polar_cst_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa000000";

    #[test]
    fn credential_round_trips_and_hides_the_token() {
        let sealer = Sealer::new(&[[1; 32]]);
        let sealed = sealer.seal_credential(TOKEN, 42).unwrap();
        assert!(sealed.starts_with(CREDENTIAL_PREFIX));
        assert!(!sealed.contains("polar_cst_"));
        let opened = sealer.open_credential(sealed.as_bytes()).unwrap();
        assert_eq!(opened.token.expose_secret(), TOKEN);
        assert_eq!(opened.expires_at, 42);
    }

    #[test]
    fn other_keys_purposes_and_edits_are_refused() {
        let sealer = Sealer::new(&[[1; 32]]);
        let other = Sealer::new(&[[2; 32]]);
        let sealed = sealer.seal_credential(TOKEN, 42).unwrap();
        assert!(other.open_credential(sealed.as_bytes()).is_none());
        // A rotation: the old key is accepted after the new one.
        let rotated = Sealer::new(&[[2; 32], [1; 32]]);
        assert!(rotated.open_credential(sealed.as_bytes()).is_some());
        // A credential is no session id, and the other way round.
        let body = sealed.strip_prefix(CREDENTIAL_PREFIX).unwrap();
        assert!(sealer.open_session_id(body.as_bytes()).is_none());
        let mut edited = sealed.into_bytes();
        let last = edited.len() - 2;
        edited[last] = if edited[last] == b'A' { b'B' } else { b'A' };
        assert!(sealer.open_credential(&edited).is_none());
        for junk in [&b""[..], b"dbsc1.", b"dbsc1.!!!!", b"polar_cst_x"] {
            assert!(sealer.open_credential(junk).is_none());
        }
        assert!(sealer.open_credential(&[b'A'; 2000]).is_none());
    }
}
