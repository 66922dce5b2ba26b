//! cargo-fuzz target `aries_payload`: the body is `stormhold_fuzz_targets::decoders::aries_payload`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::aries_payload(data));
