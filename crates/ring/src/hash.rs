//! Stable hashing: keys to partitions, and the rendezvous scores placement ranks by.
//!
//! Everything here is part of the on-disk/on-wire contract: a key must land in the same
//! partition in every build forever, so the hash is a fixed published algorithm
//! (xxHash64, seed 0, implemented here) rather than std's `DefaultHasher`, whose output
//! may change between Rust releases.

const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;

/// xxHash64 (Yann Collet's XXH64) of `data` with `seed`; bit-identical to the reference
/// implementation, which the test vectors pin.
pub fn xxh64(data: &[u8], seed: u64) -> u64 {
    let len = data.len();
    let mut rest = data;
    let mut h: u64;
    if len >= 32 {
        let mut v1 = seed.wrapping_add(PRIME64_1).wrapping_add(PRIME64_2);
        let mut v2 = seed.wrapping_add(PRIME64_2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(PRIME64_1);
        while rest.len() >= 32 {
            v1 = round(v1, read_u64(&rest[0..8]));
            v2 = round(v2, read_u64(&rest[8..16]));
            v3 = round(v3, read_u64(&rest[16..24]));
            v4 = round(v4, read_u64(&rest[24..32]));
            rest = &rest[32..];
        }
        h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        h = merge_round(h, v4);
    } else {
        h = seed.wrapping_add(PRIME64_5);
    }
    h = h.wrapping_add(len as u64);
    while rest.len() >= 8 {
        h ^= round(0, read_u64(&rest[0..8]));
        h = h
            .rotate_left(27)
            .wrapping_mul(PRIME64_1)
            .wrapping_add(PRIME64_4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        h ^= u64::from(read_u32(&rest[0..4])).wrapping_mul(PRIME64_1);
        h = h
            .rotate_left(23)
            .wrapping_mul(PRIME64_2)
            .wrapping_add(PRIME64_3);
        rest = &rest[4..];
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(PRIME64_5);
        h = h.rotate_left(11).wrapping_mul(PRIME64_1);
    }
    avalanche(h)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(PRIME64_2))
        .rotate_left(31)
        .wrapping_mul(PRIME64_1)
}

fn merge_round(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val))
        .wrapping_mul(PRIME64_1)
        .wrapping_add(PRIME64_4)
}

fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(PRIME64_2);
    h ^= h >> 29;
    h = h.wrapping_mul(PRIME64_3);
    h ^= h >> 32;
    h
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(bytes);
    u32::from_le_bytes(buf)
}

/// The part of `key` that decides its partition, by Redis Cluster's hash-tag rule: if the
/// key has a `{` followed later by a `}` with at least one byte between them, only the
/// bytes between the first `{` and the first `}` after it; otherwise the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let after = &key[open + 1..];
        if let Some(close) = after.iter().position(|&b| b == b'}') {
            if close > 0 {
                return &after[..close];
            }
        }
    }
    key
}

/// The partition of `key` among `partitions`: `xxh64(hash_tag(key), 0) % partitions`.
///
/// Stable forever (pinned by test vectors). Keys sharing a hash tag (`{user1}:a`,
/// `{user1}:b`) share a partition, so multi-key commands on them stay single-partition.
/// `partitions == 0` is treated as 1 rather than dividing by zero.
pub fn partition_of(key: &[u8], partitions: u32) -> u32 {
    let h = xxh64(hash_tag(key), 0);
    // The remainder is < partitions <= u32::MAX, so the narrowing cannot truncate.
    (h % u64::from(partitions.max(1))) as u32
}

/// splitmix64's finalizer: a bijective mixer that spreads every input bit over the output.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Seed for hashing node ids, so node scores are unrelated to key hashes.
pub(crate) const NODE_SEED: u64 = 0x5345_5353_494F_4E52; // "SESSIONR"

/// Rendezvous (highest-random-weight) score of a node for a partition, from the node id's
/// hash: higher means the partition prefers that node. Depends only on the id and the
/// partition, never on member order, which is what makes placement order-independent.
pub(crate) fn rendezvous_score(node_hash: u64, partition: u32) -> u64 {
    mix64(node_hash ^ mix64(u64::from(partition) ^ 0x9E37_79B9_7F4A_7C15))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_matches_reference_vectors() {
        // Reference values from the xxHash project (python `xxhash.xxh64_intdigest`).
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        // Lengths >= 32 take the four-lane path.
        assert_eq!(
            xxh64(b"abcdefghijklmnopqrstuvwxyz0123456789", 0),
            0x64F2_3ECF_1609_B766
        );
        assert_eq!(
            xxh64(b"The quick brown fox jumps over the lazy dog", 0),
            0x0B24_2D36_1FDA_71BC
        );
        let bytes: Vec<u8> = (0u8..100).collect();
        assert_eq!(xxh64(&bytes, 0), 0x6AC1_E580_3216_6597);
        assert_eq!(xxh64(&bytes, NODE_SEED), 0x6260_CC3B_F8B6_2C77);
        assert_eq!(
            xxh64(b"abcdefghijklmnopqrstuvwxyz0123456789", NODE_SEED),
            0xFDB5_32B4_6247_07C2
        );
    }

    #[test]
    fn partition_of_is_pinned() {
        // Computed independently with python's `xxhash` package and Redis's tag rule.
        // Changing any of these moves every stored session: never update them.
        let vectors: [(&[u8], [u32; 4]); 9] = [
            (b"", [9, 409, 409, 10649]),
            (b"session:abc123", [13, 621, 621, 6765]),
            (b"{user1}:a", [7, 295, 295, 2343]),
            (b"{user1}:b", [7, 295, 295, 2343]),
            (
                b"sess:7f3e9a2c-1b4d-4e8f-9a6b-2c1d3e4f5a6b",
                [6, 86, 86, 6230],
            ),
            (b"{}x", [5, 101, 1125, 5221]),
            (b"key:1", [15, 335, 335, 335]),
            (b"foo", [15, 575, 575, 14911]),
            (b"bar", [9, 601, 1625, 9817]),
        ];
        for (key, expected) in vectors {
            let got = [16, 1024, 2048, 16384].map(|p| partition_of(key, p));
            assert_eq!(got, expected, "key {:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn hash_tag_follows_redis_rules() {
        assert_eq!(hash_tag(b"{user1}:a"), b"user1");
        assert_eq!(hash_tag(b"x{user1}y{z}"), b"user1");
        assert_eq!(hash_tag(b"{}x"), b"{}x");
        assert_eq!(hash_tag(b"{}{a}"), b"{}{a}");
        assert_eq!(hash_tag(b"a{b"), b"a{b");
        assert_eq!(hash_tag(b"a}b{"), b"a}b{");
        assert_eq!(hash_tag(b"{{a}}"), b"{a");
        assert_eq!(hash_tag(b"plain"), b"plain");
        assert_eq!(hash_tag(b""), b"");
    }

    #[test]
    fn tagged_keys_share_a_partition() {
        for partitions in [16, 1024, 2048, 16384] {
            let a = partition_of(b"{user1}:a", partitions);
            assert_eq!(a, partition_of(b"{user1}:b", partitions));
            assert_eq!(a, partition_of(b"user1", partitions));
            assert_eq!(a, partition_of(b"sess:{user1}", partitions));
        }
    }

    #[test]
    fn zero_partitions_does_not_panic() {
        assert_eq!(partition_of(b"k", 0), 0);
        assert_eq!(partition_of(b"k", 1), 0);
    }
}
