//! Polar's token checksum: CRC-32 of the random part, base62, six characters.

/// Base62 digits in Polar's checksum order (digits, upper, lower). The random part uses a
/// different order; only this one matters for the checksum.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of the encoded checksum. `u32::MAX` < 62^6, so six digits always suffice.
pub(crate) const CHECKSUM_LEN: usize = 6;

/// The six-character checksum Polar appends to `random` (zero-padded on the left).
pub(crate) fn checksum(random: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32fast::hash(random);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_small_values_with_zeros() {
        // crc32("") == 0
        assert_eq!(&checksum(b""), b"000000");
    }

    #[test]
    fn matches_polar_vector() {
        assert_eq!(
            &checksum(b"mDzyMJMtMi1pdvsJXMR2wHGk5Q6bbyD5UowKl"),
            b"0L1tZ2"
        );
    }
}
