//! cargo-fuzz target `kernel_file`: the body is `stormhold_fuzz_targets::decoders::kernel_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::kernel_file(data));
