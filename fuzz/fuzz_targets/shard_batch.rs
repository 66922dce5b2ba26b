//! cargo-fuzz target `shard_batch`: the body is `stormhold_fuzz_targets::decoders::shard_batch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| stormhold_fuzz_targets::decoders::shard_batch(data));
