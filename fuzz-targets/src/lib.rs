//! The bodies of stormhold's fuzz targets, shared by the cargo-fuzz targets in `fuzz/` (nightly,
//! libFuzzer) and by the seeded stable driver in `tests/` (run by `cargo test`, so CI runs each
//! target briefly).
//!
//! Owns: one target per decoder of disk bytes ([`decoders`]), the whole-open-path target that
//! damages a real small store and checks `Kernel::open` against a model of the acknowledged
//! commits ([`whole_open`]), the small store both take their seeds from ([`store`]), and the
//! deterministic mutator of the stable driver ([`mutate`]).
//!
//! Invariants: a target is a pure function of its input bytes (it runs on a `SimEnv` with a
//! perfect disk: no real time, threads or randomness); a decoder target returns normally on any
//! input and panics only when the decoder breaks its contract (a panic inside it, or an accepted
//! input that does not round-trip); the whole-open target returns a [`whole_open::Finding`] for
//! anything between "exact recovery" and "a failed shard or error that reports the damage".

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod decoders;
pub mod mutate;
pub mod store;
pub mod whole_open;

/// Reads choices from a fuzz input one byte at a time; past its end every byte is 0, so any
/// input (the empty one included) is a valid plan.
#[derive(Clone, Debug)]
pub struct Choices<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Choices<'a> {
    /// Choices from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        let byte = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at = self.at.saturating_add(1);
        byte
    }

    /// The next little-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A number below `n` (`n` at least 1).
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.u16()) % n.max(1)
    }
}
