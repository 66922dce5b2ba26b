//! Which store and shard a durable file belongs to (DESIGN.md rule 14): a plain value shared by
//! every layer that writes files (WAL segment headers and the floor marker, checkpoint `META`
//! and `HIGH_WATER`, the kernel's `KERNEL` file), so none of them imports another to name it.
//!
//! Invariant: the all-zero identity (the default) is a standalone log or store outside a
//! kernel; a kernel's shards always carry a shard count of at least one.

use std::fmt;

/// Which store and shard a durable file belongs to, so a file copied or swapped from another
/// shard or store is refused by name instead of served. The default (all zero) is a standalone
/// log or store outside a kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreIdentity {
    /// Drawn when the store was created (see `kernel::layout`).
    pub store_id: u64,
    /// The shard index.
    pub shard: u32,
    /// The shard count.
    pub shards: u32,
}

/// Bytes of an identity's encoding (store id u64 LE, shard u32 LE, shard count u32 LE).
pub const STORE_IDENTITY_BYTES: usize = 16;

impl StoreIdentity {
    /// The identity's encoding: store id, shard index, shard count, little endian.
    pub fn to_bytes(self) -> [u8; STORE_IDENTITY_BYTES] {
        let mut bytes = [0; STORE_IDENTITY_BYTES];
        bytes[0..8].copy_from_slice(&self.store_id.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.shard.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.shards.to_le_bytes());
        bytes
    }

    /// Decodes [`StoreIdentity::to_bytes`]; every 16 bytes decode.
    pub fn from_bytes(bytes: &[u8; STORE_IDENTITY_BYTES]) -> Self {
        let mut store_id = [0; 8];
        store_id.copy_from_slice(&bytes[0..8]);
        let mut shard = [0; 4];
        shard.copy_from_slice(&bytes[8..12]);
        let mut shards = [0; 4];
        shards.copy_from_slice(&bytes[12..16]);
        Self {
            store_id: u64::from_le_bytes(store_id),
            shard: u32::from_le_bytes(shard),
            shards: u32::from_le_bytes(shards),
        }
    }
}

impl fmt::Display for StoreIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shards == 0 && self.store_id == 0 {
            return f.write_str("a standalone log");
        }
        write!(f, "store {:016x} shard {} of {}", self.store_id, self.shard, self.shards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_bytes_round_trip() {
        let identity = StoreIdentity { store_id: 0x0123_4567_89ab_cdef, shard: 3, shards: 7 };
        assert_eq!(StoreIdentity::from_bytes(&identity.to_bytes()), identity);
        assert_eq!(StoreIdentity::default().to_bytes(), [0; STORE_IDENTITY_BYTES]);
    }
}
