//! Which of the 16384 hash slots a key (or shard channel) belongs to, as Redis Cluster
//! computes it: CRC16 (XMODEM) of the key's hash tag (the part between the first `{` and
//! the next `}`, if not empty) or of the whole key, modulo 16384.

/// Redis Cluster's number of hash slots.
pub(in crate::store::redis) const SLOTS: u16 = 16384;

/// The slot of `key`.
pub(in crate::store::redis) fn of(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// The bytes the slot is computed from.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(len) => &key[open + 1..open + 1 + len],
    }
}

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), bit by bit: keys are short and
/// this runs once per write, not per request.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // The reference value of the CRC16 the Redis Cluster specification names.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        // `CLUSTER KEYSLOT` on a Redis 7.0 server.
        assert_eq!(of(b"foo"), 12182);
        assert_eq!(of(b"{user1000}.following"), of(b"{user1000}.followers"));
        assert_eq!(of(b"foo{}{bar}"), of(b"foo{}{bar}"));
        assert_ne!(of(b"foo{}{bar}"), of(b"bar"));
        assert_eq!(of(b"foo{{bar}}zap"), of(b"{bar"));
        assert_eq!(of(b"foo{bar}{zap}"), of(b"bar"));
    }
}
