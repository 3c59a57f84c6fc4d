//! The keyed hash Polar stores instead of the token: `hex(HMAC-SHA256(secret, token))`.

use std::fmt;
use std::hash::{Hash, Hasher};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The shortest secret [`SessionManagerBuilder::secret`] accepts, in bytes: SHA-256's output
/// length. RFC 2104 advises against HMAC keys shorter than the hash's output, and 32 random
/// bytes (256 bits) are out of reach of guessing. A passphrase that long holds less entropy,
/// but length is what can be checked; `openssl rand -hex 32` gives 64 bytes.
///
/// [`TokenHasher::new`] takes any key, so that hashes under another system's secret (such as
/// Polar's development default in its test vectors) can still be computed.
///
/// [`SessionManagerBuilder::secret`]: crate::SessionManagerBuilder::secret
pub const MIN_SECRET_LEN: usize = 32;

/// Computes [`TokenHash`]es with a server secret.
///
/// The HMAC key schedule runs once here; each [`hash`](Self::hash) clones the keyed state,
/// so hashing a token costs two SHA-256 compressions.
///
/// ```
/// use tower_customer_session::token::TokenHasher;
///
/// let hasher = TokenHasher::new(b"super secret jwt secret");
/// let hash = hasher.hash("polar_cst_mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl0L1tZ2");
/// assert_eq!(
///     hash.to_hex(),
///     "4766cc058bd32232f56efc66ee6d768231c8ea91a1741d1022acd6fc5680e66d"
/// );
/// ```
#[derive(Clone)]
pub struct TokenHasher {
    keyed: Hmac<Sha256>,
}

impl TokenHasher {
    /// A hasher keyed with `secret` (Polar's `settings.SECRET`), of any length; the session
    /// manager insists on [`MIN_SECRET_LEN`].
    pub fn new(secret: &[u8]) -> Self {
        Self {
            keyed: Hmac::new_from_slice(secret).expect("HMAC accepts keys of any length"),
        }
    }

    /// `HMAC-SHA256(secret, token)`, over the full token including its prefix.
    pub fn hash(&self, token: &str) -> TokenHash {
        let mut mac = self.keyed.clone();
        mac.update(token.as_bytes());
        TokenHash(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher([redacted key])")
    }
}

/// The 32-byte keyed hash of a token: what stores keep, what the cache is keyed by.
///
/// Equality never exits early. `Debug` and `Display` show only the first four bytes, which
/// is enough to correlate log lines and useless for a lookup.
#[derive(Clone, Copy)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Wrap raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, as Polar stores it in `customer_sessions.token`.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        for byte in self.0 {
            out.push(HEX[(byte >> 4) as usize] as char);
            out.push(HEX[(byte & 0x0f) as usize] as char);
        }
        out
    }

    /// Parse 64 hex digits (either case).
    ///
    /// ```
    /// use tower_customer_session::token::TokenHash;
    ///
    /// let hex = "4766cc058bd32232f56efc66ee6d768231c8ea91a1741d1022acd6fc5680e66d";
    /// assert_eq!(TokenHash::from_hex(hex).unwrap().to_hex(), hex);
    /// assert!(TokenHash::from_hex("4766").is_none());
    /// ```
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            *slot = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Self(out))
    }

    fn word(&self, i: usize) -> u64 {
        u64::from_le_bytes(self.0[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
    }

    /// The first four bytes in hex: the only part of a hash that goes into logs.
    pub fn short(&self) -> ShortHash {
        ShortHash([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl ConstantTimeEq for TokenHash {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        // Four 64-bit constant-time compares instead of 32 byte-wise ones: same guarantee,
        // an eighth of the optimisation barriers.
        (0..4).fold(subtle::Choice::from(1), |equal, i| {
            equal & self.word(i).ct_eq(&other.word(i))
        })
    }
}

impl PartialEq for TokenHash {
    /// Branch-free over the bytes (no early exit), for map lookups. Verification of a
    /// presented token goes through [`ConstantTimeEq`] (`subtle`).
    fn eq(&self, other: &Self) -> bool {
        (0..4).fold(0u64, |diff, i| diff | (self.word(i) ^ other.word(i))) == 0
    }
}

impl Eq for TokenHash {}

impl Hash for TokenHash {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already uniform and keyed; eight bytes feed any hasher enough.
        state.write_u64(u64::from_le_bytes(self.0[..8].try_into().expect("8 bytes")));
    }
}

/// Hashes a [`TokenHash`] by taking its first eight bytes as they are: the key is already a
/// keyed, uniform digest an attacker cannot steer, so running SipHash over it again buys
/// nothing and costs every cache probe.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DigestState;

impl std::hash::BuildHasher for DigestState {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// The [`Hasher`] of [`DigestState`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, word: u64) {
        self.0 ^= word;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `TokenHash` keys use this hasher, and they call `write_u64`; anything else
        // still gets a well-mixed value (FNV-1a).
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", self.short())
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.short())
    }
}

/// The loggable four-byte prefix of a [`TokenHash`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortHash([u8; 4]);

impl fmt::Display for ShortHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
