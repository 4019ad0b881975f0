//! Which of Redis Cluster's 16384 hash slots a key belongs to.
//!
//! [`slot`] is the function the Redis Cluster specification defines: CRC16
//! (the XMODEM variant: polynomial 0x1021, initial value 0, no reflection)
//! of the key modulo 16384, where a key holding a non-empty `{...}` hash tag
//! hashes only the tag. It knows nothing of nodes or of which arguments of a
//! command are keys (that is [`super::keys`]).

/// The number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The hash slot of `key`, in `0..16384`.
///
/// Only the part between the first `{` and the first `}` after it is hashed,
/// if that part is non-empty; otherwise the whole key is (so `foo{}{bar}`
/// hashes whole, `foo{{bar}}` hashes `{bar`, `foo{bar}{zap}` hashes `bar`).
pub fn slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) % SLOTS
}

/// The bytes of `key` that decide its slot: its hash tag if it has a
/// non-empty one, else all of it.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = crate::resp::find_near(b'{', key) else {
        return key;
    };
    let after = &key[open + 1..];
    match crate::resp::find_near(b'}', after) {
        Some(close) if close > 0 => &after[..close],
        _ => key,
    }
}

/// CRC16-XMODEM (polynomial 0x1021, initial value 0), as Redis's `crc16.c`.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The CRC16-XMODEM of each byte value, computed at compile time.
const CRC16_TABLE: [u16; 256] = crc16_table();

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_cluster_spec_check_value() {
        // The spec's reference: "123456789" -> 0x31C3.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"123456789"), 0x31C3); // under 16384: the slot is the CRC
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn table_matches_redis_crc16_c() {
        // The first entries of the table in Redis's src/crc16.c.
        assert_eq!(
            &CRC16_TABLE[..8],
            &[0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7]
        );
        assert_eq!(CRC16_TABLE[255], 0x1ef0);
    }

    #[test]
    fn known_slots() {
        // As `CLUSTER KEYSLOT` answers.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"hello"), 866);
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn hash_tags_follow_the_spec() {
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{}"), b"{}");
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"foo}bar{"), b"foo}bar{");
        assert_eq!(hash_tag(b"}{x}"), b"x");
        // As `CLUSTER KEYSLOT` answers on redis-server 7.0.
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"{user1000}.following"), 3443);
        assert_eq!(slot(b"foo{}{bar}"), 8363);
        assert_eq!(slot(b"{bar"), 4015);
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn every_slot_is_in_range() {
        for i in 0..2000u32 {
            assert!(slot(format!("key:{i}").as_bytes()) < SLOTS);
        }
    }
}
