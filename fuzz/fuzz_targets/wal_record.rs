//! cargo-fuzz target `wal_record`: the body is `stormhold_fuzz_targets::decoders::wal_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::wal_record(data));
