//! Fresh blocks of memory for the state (a checkpoint load's frames, the memtable arena, the
//! packed run's blocks), their pages populated by one call where the platform has one: a
//! realistic checkpoint load spent about 45% of its time in page faults, one per 4 KiB of the
//! state it builds, each entering and leaving the kernel on its own.
//!
//! The third `unsafe` of the crate (after `env::os`'s two; see the crate root): std exposes no `madvise`, so it is
//! declared here (glibc's and musl's signature on 64-bit Linux), and the call is safe because
//! the range lies inside a slice borrowed mutably for the call's duration, and
//! `MADV_POPULATE_WRITE` only maps its pages (zeroed where none was mapped yet; a mapped page
//! keeps its bytes); no byte Rust can observe changes. A kernel without it (before 5.14)
//! refuses the call, and so does one with pages larger than 4 KiB where the range does not
//! start on one; where it does, the kernel rounds the length up to its page, which may map a
//! page past the block (the allocator's, its bytes unchanged). Refused, the pages fault in as
//! the bytes are written, as without the call.

/// `len` zero bytes in a fresh vector, its pages mapped as [`with_capacity`] maps them.
///
/// Zeroed by the allocator (`calloc`), which writes no byte of memory fresh from the
/// kernel (already zero): a checkpoint load, which reads a file into such blocks, spent
/// about 2% of its time writing zeros over zeros.
pub(crate) fn zeroed(len: usize) -> Vec<u8> {
    let mut block = vec![0; len];
    if len >= POPULATE_BYTES_MIN {
        populate(&mut block);
    }
    block
}

/// An empty vector of at least `capacity` bytes, its pages mapped (blocks smaller than a few
/// pages are not worth the call).
pub(crate) fn with_capacity(capacity: usize) -> Vec<u8> {
    let mut block = Vec::with_capacity(capacity);
    if capacity >= POPULATE_BYTES_MIN {
        populate(block.spare_capacity_mut());
    }
    block
}

/// The smallest block whose pages are populated in one call.
const POPULATE_BYTES_MIN: usize = 64 << 10;

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn populate<T>(bytes: &mut [T]) {
    use std::ffi::c_void;

    /// `MADV_POPULATE_WRITE` of `<linux/mman.h>` (Linux 5.14).
    const MADV_POPULATE_WRITE: i32 = 23;
    const PAGE_BYTES: usize = 4096;

    unsafe extern "C" {
        fn madvise(addr: *mut c_void, len: usize, advice: i32) -> i32;
    }

    let (start, len) = (bytes.as_mut_ptr() as usize, std::mem::size_of_val(bytes));
    let (first, end) = (start.next_multiple_of(PAGE_BYTES), (start + len) / PAGE_BYTES * PAGE_BYTES);
    if end > first {
        // SAFETY: see the module docs: whole pages inside `bytes`, borrowed for the call;
        // the advice maps them and changes no byte.
        let _ = unsafe { madvise(first as *mut c_void, end - first, MADV_POPULATE_WRITE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn populate<T>(_bytes: &mut [T]) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_zeroed_or_empty_with_the_capacity_asked() {
        for len in [0, 1, 4095, 4096, POPULATE_BYTES_MIN - 1, POPULATE_BYTES_MIN, (1 << 20) + 8] {
            let block = zeroed(len);
            assert_eq!(block.len(), len);
            assert!(block.iter().all(|&b| b == 0), "{len} zero bytes");
            let empty = with_capacity(len);
            assert!(empty.is_empty() && empty.capacity() >= len, "{len}");
        }
    }

    /// Resident memory of this process, in KiB, from `/proc/self/status`.
    #[cfg(target_os = "linux")]
    fn resident_kib() -> u64 {
        use crate::env::{Env, EnvFile, OpenOptions, OsEnv};
        let file = OsEnv::new().open(std::path::Path::new("/proc/self/status"), OpenOptions::read_only());
        let file = file.expect("open /proc/self/status");
        let (mut text, mut buf, mut at) = (Vec::new(), [0; 4096], 0);
        while let Ok(n @ 1..) = file.read_at(&mut buf, at) {
            text.extend_from_slice(&buf[..n]);
            at += n as u64;
        }
        let text = String::from_utf8_lossy(&text);
        let line = text.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB")
    }

    /// The point of the module: a large block's pages are mapped before a byte is written (on
    /// a kernel with `MADV_POPULATE_WRITE`, 5.14 on; older ones refuse it and the test says so).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_block_is_resident_before_it_is_written() {
        const BYTES: usize = 256 << 20;
        let before = resident_kib();
        let block = with_capacity(BYTES);
        let grown_kib = resident_kib().saturating_sub(before);
        assert!(block.capacity() >= BYTES);
        // Other tests allocate and free meanwhile: ask for most of it, not all.
        assert!(grown_kib >= (BYTES as u64 / 1024) * 3 / 4, "only {grown_kib} KiB became resident");
        drop(block);
    }
}
