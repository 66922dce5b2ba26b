//! cargo-fuzz target `file_names`: the body is `stormhold_fuzz_targets::decoders::file_names`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::file_names(data));
