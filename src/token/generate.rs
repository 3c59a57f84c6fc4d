//! New tokens from the operating system's CSPRNG, in Polar's layout.

use super::checksum::{CHECKSUM_LEN, checksum};
use super::{RANDOM_LEN, SessionToken};

/// The alphabet Polar draws the random part from (`ascii_letters + digits`).
const ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// `prefix` + 37 uniform characters of `[A-Za-z0-9]` + their checksum.
pub(crate) fn generate(prefix: &str) -> Result<SessionToken, getrandom::Error> {
    let mut random = [0u8; RANDOM_LEN];
    let mut filled = 0;
    let mut pool = [0u8; 64];
    while filled < RANDOM_LEN {
        getrandom::fill(&mut pool)?;
        for &byte in &pool {
            // 248 = 4 * 62: rejecting the top 8 values keeps every character equally likely.
            if byte < 248 && filled < RANDOM_LEN {
                random[filled] = ALPHABET[(byte % 62) as usize];
                filled += 1;
            }
        }
    }
    let mut raw = String::with_capacity(prefix.len() + RANDOM_LEN + CHECKSUM_LEN);
    raw.push_str(prefix);
    // Both arrays hold ASCII only.
    raw.extend(random.iter().map(|&b| b as char));
    raw.extend(checksum(&random).iter().map(|&b| b as char));
    pool.fill(0);
    random.fill(0);
    Ok(SessionToken::from_secret(raw))
}
