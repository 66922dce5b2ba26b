//! The window with and without its read-ahead: the same bytes for every sequence of reads a
//! scan makes, read errors where the scan reaches them, and a helper that stops with the
//! window.

use std::io;
use std::path::Path;

use proptest::prelude::*;

use super::*;

/// A file in memory that returns reads of at most `read_max` bytes and fails any read that
/// touches `fail_from..`.
struct MemFile {
    bytes: Vec<u8>,
    read_max: usize,
    fail_from: u64,
}

impl MemFile {
    fn new(len: usize, read_max: usize) -> Self {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let bytes = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Self { bytes, read_max, fail_from: u64::MAX }
    }
}

impl EnvFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let len = buf.len().min(self.read_max);
        if offset.saturating_add(len as u64) > self.fail_from {
            return Err(io::Error::other("bad sector"));
        }
        let from = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        let to = from.saturating_add(len).min(self.bytes.len());
        buf[..to - from].copy_from_slice(&self.bytes[from..to]);
        Ok(to - from)
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<usize> {
        Err(io::Error::other("read only"))
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes.len() as u64)
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::Error::other("read only"))
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The bytes `get` returns for each `(offset, len)` of `reads`, through a window with or
/// without a read-ahead, and whether its read-ahead was still on at the end.
fn reads_through(
    file: &MemFile,
    reads: &[(u64, usize)],
    ahead: bool,
) -> (Vec<Result<Vec<u8>, String>>, bool) {
    std::thread::scope(|scope| {
        let scope = ahead.then_some(scope);
        let mut window = Window::new(file, Path::new("/w"), u64::MAX, Vec::new(), scope).expect("window");
        let got = reads
            .iter()
            .map(|&(offset, len)| window.get(offset, len).map(<[u8]>::to_vec).map_err(|e| e.to_string()))
            .collect();
        (got, window.ahead.is_some())
    })
}

/// What a scan's reads look like: mostly forward from where the last one ended, records from
/// a few bytes to past a chunk, skips to a sector boundary, searches ahead, and now and then
/// a read behind.
fn scan_like_reads() -> impl Strategy<Value = Vec<(u64, usize)>> {
    let step = prop_oneof![
        8 => (0u64..8, 1usize..600),
        3 => (0u64..8, 600usize..300_000),
        1 => (0u64..8, 900_000usize..2_500_000),
        1 => (4096u64..3_000_000, 1usize..5000),
    ];
    proptest::collection::vec((step, 0u8..40), 1..120).prop_map(|steps| {
        let mut at = 0u64;
        steps
            .into_iter()
            .map(|((gap, len), back)| {
                let offset = if back == 0 { at / 2 } else { at + gap };
                at = offset + len as u64;
                (offset, len)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_read_ahead_serves_the_same_bytes_as_direct_reads(
        reads in scan_like_reads(),
        len in 0usize..6_000_000,
        read_max in prop_oneof![Just(usize::MAX), 1000usize..200_000],
    ) {
        let file = MemFile::new(len, read_max);
        let (direct, _) = reads_through(&file, &reads, false);
        let (ahead, _) = reads_through(&file, &reads, true);
        for (i, ((&(offset, want), direct), ahead)) in reads.iter().zip(&direct).zip(&ahead).enumerate() {
            let from = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
            let expected = &file.bytes[from..from.saturating_add(want).min(len)];
            prop_assert_eq!(direct.as_deref(), Ok(expected), "direct read {} at {}", i, offset);
            prop_assert_eq!(ahead.as_deref(), Ok(expected), "read-ahead {} at {}", i, offset);
        }
    }
}

#[test]
fn forward_reads_stay_on_the_read_ahead_and_a_read_behind_ends_it() {
    let file = MemFile::new(5 << 20, usize::MAX);
    // A record straddling each chunk boundary, one longer than a chunk, a skip past a whole
    // chunk: all served by the stream.
    let forward = [(0, 100), (1_048_000, 1000), (1_100_000, 1_500_000), (4_000_000, 10)];
    let (got, on) = reads_through(&file, &forward, true);
    assert!(on, "forward reads keep the read-ahead");
    assert!(got.iter().all(Result::is_ok));
    let (_, on) = reads_through(&file, &[(0, 100), (2_000_000, 100), (10, 100)], true);
    assert!(!on, "a read behind the window reads directly from there on");
}

#[test]
fn a_read_error_surfaces_where_the_scan_reaches_it_and_names_the_file() {
    let mut file = MemFile::new(4 << 20, usize::MAX);
    file.fail_from = 3 * READ_WINDOW_BYTES as u64 + 10;
    // Chunks 0 to 2 read well; the fourth fails, and only a read that needs it sees that.
    let reads = [(0, 10), (2 * READ_WINDOW_BYTES as u64, 1000), (3 * READ_WINDOW_BYTES as u64 - 20, 10)];
    let (got, _) = reads_through(&file, &reads, true);
    assert!(got.iter().all(Result::is_ok), "reads before the bad chunk succeed: {got:?}");
    let reads = [(0, 10), (3 * READ_WINDOW_BYTES as u64 + 100, 10)];
    let (got, on) = reads_through(&file, &reads, true);
    assert!(!on, "a failed chunk ends the read-ahead");
    let error = got[1].as_ref().expect_err("the read that needs the bad chunk fails");
    assert!(error.contains("/w") && error.contains("bad sector"), "{error}");
}

#[test]
fn the_helper_stops_when_the_window_is_dropped_early() {
    // A long file, one read: the scope's end joins the helper, which must not wait for the
    // rest of the file to be taken.
    let file = MemFile::new(64 << 20, usize::MAX);
    let (got, on) = reads_through(&file, &[(0, 16)], true);
    assert_eq!(got[0].as_deref(), Ok(&file.bytes[..16]));
    assert!(on);
}

/// A log of records of most of a chunk (a batch of 1,000 puts of 1 KiB values is just under
/// one): most straddle a chunk boundary, and the front of each fits the next chunk's
/// headroom, so no record is assembled and the stream reads into the same few buffers from
/// start to end. With a
/// headroom of a quarter chunk, most records were copied into a fresh buffer, and every
/// buffer handed back was kept until the segment's scan ended.
#[test]
fn records_of_most_of_a_chunk_take_a_few_buffers_for_the_whole_segment() {
    let file = MemFile::new(64 << 20, usize::MAX);
    let record = READ_WINDOW_BYTES * 2 / 3 + 12_345;
    std::thread::scope(|scope| {
        let mut window =
            Window::new(&file, Path::new("/w"), u64::MAX, Vec::new(), Some(scope)).expect("window");
        let (mut at, mut records) = (0, 0);
        while at + record <= file.bytes.len() {
            let got = window.get(at as u64, record).expect("read");
            assert!(got == &file.bytes[at..at + record], "record {records}");
            (at, records) = (at + record, records + 1);
        }
        let ahead = window.ahead.as_ref().expect("forward reads keep the read-ahead");
        let allocated = ahead.allocated.load(Ordering::Relaxed);
        assert!(
            allocated <= 2 + CHUNKS_AHEAD + FREE_BUFFERS_MAX,
            "{allocated} buffers for {records} records"
        );
    });
}
