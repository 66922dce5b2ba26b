//! cargo-fuzz target `high_water`: the body is `stormhold_fuzz_targets::decoders::high_water`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::high_water(data));
