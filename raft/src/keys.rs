//! The keys of one Raft group (see the crate docs for the layout). Every key starts with the
//! group's prefix, so with the prefix router they all route to one shard, and every range
//! this crate deletes has both bounds under that prefix.

/// Bytes of a group prefix: the length the kernel's prefix router must use.
pub const GROUP_PREFIX_BYTES: u32 = 8;

/// The prefix of group `group`: `rf` and the group number (its low 24 bits) as 6 hex digits.
pub fn group_prefix(group: u32) -> [u8; 8] {
    let mut out = *b"rf000000";
    out[2..].copy_from_slice(format!("{:06x}", group & 0x00ff_ffff).as_bytes());
    out
}

fn key(prefix: &[u8; 8], tag: u8, rest: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + rest.iter().map(|r| r.len()).sum::<usize>());
    out.extend_from_slice(prefix);
    out.push(tag);
    for part in rest {
        out.extend_from_slice(part);
    }
    out
}

pub(crate) fn committed(p: &[u8; 8]) -> Vec<u8> {
    key(p, b'c', &[])
}
pub(crate) fn data(p: &[u8; 8], generation: u64, user_key: &[u8]) -> Vec<u8> {
    key(p, b'd', &[&generation.to_be_bytes(), user_key])
}
/// The start of generation `generation`'s data; the end is the start of the next.
pub(crate) fn data_start(p: &[u8; 8], generation: u64) -> Vec<u8> {
    key(p, b'd', &[&generation.to_be_bytes()])
}
pub(crate) fn applied(p: &[u8; 8]) -> Vec<u8> {
    key(p, b'e', &[])
}
/// The end of the applied-state scan `[data_start(0), applied_end)`.
pub(crate) fn applied_end(p: &[u8; 8]) -> Vec<u8> {
    key(p, b'f', &[])
}
pub(crate) fn log(p: &[u8; 8], index: u64) -> Vec<u8> {
    key(p, b'l', &[&index.to_be_bytes()])
}
/// The first key past every log entry.
pub(crate) fn log_end(p: &[u8; 8]) -> Vec<u8> {
    key(p, b'm', &[])
}
pub(crate) fn purged(p: &[u8; 8]) -> Vec<u8> {
    key(p, b'p', &[])
}
pub(crate) fn snapshot_chunk(p: &[u8; 8], seq: u64, chunk: u32) -> Vec<u8> {
    key(p, b's', &[&seq.to_be_bytes(), &chunk.to_be_bytes()])
}
pub(crate) fn snapshot_start(p: &[u8; 8], seq: u64) -> Vec<u8> {
    key(p, b's', &[&seq.to_be_bytes()])
}
pub(crate) fn snapshot(p: &[u8; 8]) -> Vec<u8> {
    key(p, b't', &[])
}
pub(crate) fn vote(p: &[u8; 8]) -> Vec<u8> {
    key(p, b'v', &[])
}
