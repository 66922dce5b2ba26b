//! The event trace of a simulated run: every Env call and every fault, folded into a stable
//! 64-bit hash.
//!
//! Invariants: the hash depends only on the sequence of events (call index, virtual time,
//! text), never on addresses, real time or unordered iteration, so the same seed gives the same
//! hash on every machine. It is FNV-1a, written out here because `std`'s hashers promise no
//! stability across releases. Only the last [`TRACE_TAIL_EVENTS`] events are kept as text,
//! so memory stays bounded however long the run.

use std::collections::VecDeque;
use std::fmt;

/// How many of the most recent events the trace keeps for reports, unless asked for more.
pub const TRACE_TAIL_EVENTS: usize = 64;

/// The most events a trace can be asked to keep (a bound on memory: about 100 MB of text).
pub const TRACE_EVENTS_MAX: usize = 1_000_000;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A stable 64-bit FNV-1a hasher.
#[derive(Clone, Copy, Debug)]
pub struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        Self(FNV_OFFSET)
    }
}

impl StableHasher {
    /// Folds `bytes` in.
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// Folds a `u64` in, little-endian.
    pub fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// One event of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    /// The index of the Env call it belongs to (0 for events between calls).
    pub call: u64,
    /// Virtual monotonic time, in nanoseconds.
    pub time_ns: u64,
    /// What happened, e.g. `write /db/wal-1 @4096+512 -> ok 512`.
    pub text: String,
}

impl TraceEvent {
    /// The event's own hash, independent of the events before it.
    pub fn hash(&self) -> u64 {
        let mut hasher = StableHasher::default();
        hasher.write_u64(self.call);
        hasher.write_u64(self.time_ns);
        hasher.write(self.text.as_bytes());
        hasher.finish()
    }
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{:<7} t={:>12}ns  {}", self.call, self.time_ns, self.text)
    }
}

/// The running trace.
#[derive(Clone, Debug)]
pub(crate) struct Trace {
    hasher: StableHasher,
    count: u64,
    tail: VecDeque<TraceEvent>,
    tail_max: usize,
    /// Per-event hashes, kept only when asked for (determinism checks).
    pub event_hashes: Option<Vec<u64>>,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            hasher: StableHasher::default(),
            count: 0,
            tail: VecDeque::new(),
            tail_max: TRACE_TAIL_EVENTS,
            event_hashes: None,
        }
    }
}

impl Trace {
    /// Keeps the last `events` events (at least 1, at most [`TRACE_EVENTS_MAX`]).
    pub fn set_tail_max(&mut self, events: usize) {
        self.tail_max = events.clamp(1, TRACE_EVENTS_MAX);
        while self.tail.len() > self.tail_max {
            self.tail.pop_front();
        }
    }

    pub fn push(&mut self, event: TraceEvent) {
        let event_hash = event.hash();
        self.hasher.write_u64(event_hash);
        self.count += 1;
        if let Some(hashes) = &mut self.event_hashes {
            hashes.push(event_hash);
        }
        if self.tail.len() == self.tail_max {
            self.tail.pop_front();
        }
        self.tail.push_back(event);
    }

    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn tail(&self) -> Vec<TraceEvent> {
        self.tail.iter().cloned().collect()
    }
}
