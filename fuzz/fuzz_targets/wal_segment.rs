//! cargo-fuzz target `wal_segment`: the body is `stormhold_fuzz_targets::decoders::wal_segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::wal_segment(data));
