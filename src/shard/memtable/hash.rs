//! The keyed hash of a memtable's keys (see the parent module's docs, "The hash: keyed per
//! store"): the seed of a shard's layers is drawn from its store identity, and nothing here
//! reads a clock or the OS's randomness, so the simulator replays every seed exactly.

/// The hash function of a memtable's keys, keyed by the memtable's seed. A key is hashed as
/// its first byte (the state key's namespace) and the rest, so a caller holding the two parts
/// never joins them.
pub trait KeyHash {
    /// The hash of the key `prefix ++ rest` (`prefix` is the key's first byte, or empty
    /// for the empty key) under `keys`, the two words [`hash_keys`] derives from a seed.
    fn hash(keys: [u64; 2], prefix: &[u8], rest: &[u8]) -> u64;
}

/// The two hash keys of `seed` (splitmix64 twice): nearby seeds give unrelated keys.
pub fn hash_keys(seed: u64) -> [u64; 2] {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let a = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    [mix(a), mix(a.wrapping_add(0x9E37_79B9_7F4A_7C15))]
}

/// The memtable seed of shard `shard` of the store `store_id` (the identity drawn when the
/// store was created, [`crate::wal::StoreIdentity`]): deterministic for a store, so the
/// simulator replays a seed exactly, and different between stores and between shards, so
/// keys chosen to collide in one store's tables do not collide in another's.
pub fn seed_for_store(store_id: u64, shard: u32) -> u64 {
    hash_keys(store_id ^ u64::from(shard).rotate_left(32))[0]
}

/// The keyed hash of the shard state's memtables: 16-byte words folded by a 64x64->128-bit
/// multiply with the key words mixed into both factors (the structure of foldhash and
/// wyhash). Without the keys, an attacker cannot choose keys that collide; with them (they
/// derive from the store identity, which the store's files carry) he could, so the seed is
/// as secret as the store's files. The table is never iterated, so the seed changes nothing
/// but the cost of lookups.
#[derive(Debug)]
pub struct SeededHash;

/// The 128-bit product of `a` and `b`, its halves xored.
fn folded_mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl KeyHash for SeededHash {
    fn hash([k0, k1]: [u64; 2], prefix: &[u8], rest: &[u8]) -> u64 {
        const PI: u64 = 0x243F_6A88_85A3_08D3;
        let first = prefix.first().map_or(0, |&b| u64::from(b) + 1);
        let mut h = folded_mul(k0 ^ ((prefix.len() + rest.len()) as u64), k1 ^ first ^ PI);
        let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or_default());
        let mut chunks = rest.chunks_exact(16);
        for chunk in &mut chunks {
            h = folded_mul(word(&chunk[..8]) ^ k0 ^ h, word(&chunk[8..]) ^ k1);
        }
        let tail = chunks.remainder();
        if !tail.is_empty() {
            let mut last = [0u8; 16];
            last[..tail.len()].copy_from_slice(tail);
            h = folded_mul(word(&last[..8]) ^ k0 ^ h, word(&last[8..]) ^ k1);
        }
        folded_mul(h ^ k1, k0 ^ PI)
    }
}
