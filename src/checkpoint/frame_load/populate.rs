//! Fresh blocks for the frames a load reads, their pages populated by one call where the
//! platform has one: a realistic load spent about 45% of its time in page faults, one per
//! 4 KiB of the state it builds, each entering and leaving the kernel on its own.
//!
//! The third `unsafe` of the crate (after `env::os`'s two): std exposes no `madvise`, so it is
//! declared here (glibc's and musl's signature on 64-bit Linux), and the call is safe because
//! the range lies inside an allocation this function owns for the call's duration, and
//! `MADV_POPULATE_WRITE` only maps its pages (zeroed where none was mapped yet; a mapped page
//! keeps its bytes); no byte Rust can observe changes. A kernel without it (before 5.14), or
//! a page size other than 4 KiB, refuses the call: the pages then fault in as the bytes are
//! written, as without it.

/// `len` zero bytes in a fresh vector.
pub(super) fn zeroed_block(len: usize) -> Vec<u8> {
    let mut block = Vec::with_capacity(len);
    populate(&mut block);
    block.resize(len, 0);
    block
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn populate(block: &mut Vec<u8>) {
    use std::ffi::c_void;

    /// `MADV_POPULATE_WRITE` of `<linux/mman.h>` (Linux 5.14).
    const MADV_POPULATE_WRITE: i32 = 23;
    const PAGE_BYTES: usize = 4096;

    unsafe extern "C" {
        fn madvise(addr: *mut c_void, len: usize, advice: i32) -> i32;
    }

    let spare = block.spare_capacity_mut();
    let start = spare.as_mut_ptr() as usize;
    let (first, end) = (start.next_multiple_of(PAGE_BYTES), (start + spare.len()) / PAGE_BYTES * PAGE_BYTES);
    if end > first {
        // SAFETY: see the module docs: whole pages inside `block`'s allocation, which lives
        // for the call; the advice maps them and changes no byte.
        let _ = unsafe { madvise(first as *mut c_void, end - first, MADV_POPULATE_WRITE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn populate(_block: &mut Vec<u8>) {}
