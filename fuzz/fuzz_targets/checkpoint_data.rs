//! cargo-fuzz target `checkpoint_data`: the body is `stormhold_fuzz_targets::decoders::checkpoint_data`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::checkpoint_data(data));
