//! Maps keyed by client keys.

/// Hashes keys with foldhash, seeded at random per map.
///
/// std's SipHash-1-3 took about 5% of a store node's CPU in pipelined SETs
/// (docs/benchmarks.md); foldhash is several times faster on short keys such as session
/// ids. It is only "minimally DoS-resistant" (its README): per-map random secrets defeat
/// precomputed colliding keys, but not an attacker who learns them from hash values or
/// iteration order. Neither leaks here (SCAN pages go by `scan_position`, not map
/// order), and the keys are written by authenticated clients, the frontends, which mint
/// session ids themselves.
pub type KeyHasher = foldhash::fast::RandomState;

pub type KeyMap<K, V> = std::collections::HashMap<K, V, KeyHasher>;
