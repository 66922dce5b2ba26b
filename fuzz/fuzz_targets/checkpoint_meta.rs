//! cargo-fuzz target `checkpoint_meta`: the body is `stormhold_fuzz_targets::decoders::checkpoint_meta`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::checkpoint_meta(data));
