//! Deciding which faults hit which Env call, and recording or replaying those decisions.
//!
//! Invariants:
//! - each fault class draws only from its own ChaCha stream (same seed, its own stream
//!   number), and only when the class is enabled, so enabling one class never changes the
//!   decisions of another;
//! - in recording mode every decision that is not "no fault" is appended to the schedule with
//!   its call index; replaying that schedule reproduces the same faults at the same calls
//!   without drawing a single random number; neither mode injects a fault while faults are
//!   switched off (the quiet phase, a checker's reads);
//! - faults armed by a test apply to the next call of their kind, in both modes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

use super::options::{CrashMode, FaultOptions};

/// The kinds of Env call, as the fault model tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CallKind {
    /// `Env::open`.
    Open,
    /// `EnvFile::read_at`.
    Read,
    /// `EnvFile::write_at`.
    Write,
    /// `EnvFile::len`.
    Len,
    /// `EnvFile::set_len`.
    SetLen,
    /// `EnvFile::sync_data` or `EnvFile::sync_all`.
    SyncFile,
    /// `Env::create_dir`.
    CreateDir,
    /// `Env::remove_dir`.
    RemoveDir,
    /// `Env::list_dir`.
    ListDir,
    /// `Env::rename`.
    Rename,
    /// `Env::remove_file`.
    RemoveFile,
    /// `Env::exists`.
    Exists,
    /// `Env::sync_dir`.
    SyncDir,
    /// `Env::lock_dir`.
    LockDir,
    /// `Env::now_monotonic`, `Env::now_wall` or `Env::sleep`: never fails, never crashes.
    Clock,
}

impl CallKind {
    /// Whether the call can fail or crash (clock readings cannot).
    pub fn is_io(self) -> bool {
        self != CallKind::Clock
    }

    /// Whether the call is a sync, which fails by the sync-failure class rather than EIO.
    pub fn is_sync(self) -> bool {
        matches!(self, CallKind::SyncFile | CallKind::SyncDir)
    }

    /// Whether the call transfers bytes and can be short.
    pub fn is_transfer(self) -> bool {
        matches!(self, CallKind::Read | CallKind::Write)
    }
}

/// One fault decision. Recorded in a [`FaultSchedule`] with the index of the call it hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The process crashes at this call, before or after it takes effect; the post-crash image
    /// is drawn from `image_seed`.
    Crash {
        /// After the call took effect (`true`) or before (`false`).
        after: bool,
        /// Seed of the choices that make the post-crash image.
        image_seed: u64,
    },
    /// The driver crashed the process between calls (recorded at the last call's index).
    DriverCrash {
        /// Seed of the choices that make the post-crash image.
        image_seed: u64,
    },
    /// The call fails with EIO and no effect; persistent errors stick to the file handle.
    IoError {
        /// Whether later calls through the same handle fail too.
        persistent: bool,
    },
    /// The read or write moves only this fraction (in thousandths, at least one byte).
    ShortIo {
        /// Thousandths of the requested length kept.
        kept_per_mille: u32,
    },
    /// The sync fails with EIO; what reached the disk is drawn from `image_seed`.
    SyncFailure {
        /// Seed of the choices of what landed.
        image_seed: u64,
    },
    /// One durable bit flips somewhere (`pick` chooses where).
    BitRot {
        /// Chooses the file, byte and bit.
        pick: u64,
    },
    /// This write will reach the disk this many sectors away from its offset.
    Misdirect {
        /// Signed distance in sectors (never 0).
        shift_sectors: i64,
    },
    /// A sector of some durable file goes bad (`pick` chooses which).
    BadSector {
        /// Chooses the file and sector.
        pick: u64,
    },
    /// The wall clock jumps by this much (negative: backwards).
    ClockJump {
        /// Signed jump in milliseconds.
        delta_ms: i64,
    },
    /// The call is slow.
    SlowIo,
    /// The process crashes at this call, before or after it takes effect, and the machine
    /// stays up: the page cache keeps every unsynced change (`CrashKind::Process`).
    ProcessCrash {
        /// After the call took effect (`true`) or before (`false`).
        after: bool,
    },
    /// The driver crashed the process, not the machine, between calls (recorded at the last
    /// call's index; replaying it does nothing, as the driver asks again).
    DriverProcessCrash,
    /// One bit of a target region flips (`pick` chooses the region, byte and bit).
    TargetedRot {
        /// Chooses the region, byte and bit.
        pick: u64,
    },
    /// A sector overlapping a target region goes bad (`pick` chooses the region and sector).
    TargetedBadSector {
        /// Chooses the region and sector.
        pick: u64,
    },
    /// If this write overlaps a target region of its file, it reaches the disk this many
    /// sectors away from its offset; otherwise nothing happens.
    TargetedMisdirect {
        /// Signed distance in sectors (never 0).
        shift_sectors: i64,
    },
}

/// A fault at a given call index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// The 1-based index of the Env call (clock readings included), counted across restarts.
    pub call: u64,
    /// What happened there.
    pub fault: Fault,
}

/// Every fault decision of a run, in call order. Serializable so a run can be replayed after
/// code changes that draw random numbers differently.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSchedule {
    /// The faults, sorted by call index.
    pub faults: Vec<ScheduledFault>,
}

/// Stream numbers of the fault classes; never renumber one (it would change recorded seeds).
mod stream {
    pub const CRASH: u64 = 1;
    pub const IO_ERROR: u64 = 2;
    pub const SHORT_IO: u64 = 3;
    pub const SYNC_FAILURE: u64 = 4;
    pub const MEDIA: u64 = 5;
    pub const BAD_SECTOR: u64 = 6;
    pub const CLOCK: u64 = 7;
    pub const SLOW_IO: u64 = 8;
    pub const LATENCY: u64 = 9;
    pub const PROCESS_CRASH: u64 = 10;
    pub const TARGETED: u64 = 11;
}

/// A ChaCha stream of `seed` for one class.
pub(crate) fn stream_rng(seed: u64, stream_id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream_id);
    rng
}

#[derive(Clone)]
struct Streams {
    crash: ChaCha8Rng,
    io_error: ChaCha8Rng,
    short_io: ChaCha8Rng,
    sync_failure: ChaCha8Rng,
    media: ChaCha8Rng,
    bad_sector: ChaCha8Rng,
    clock: ChaCha8Rng,
    slow_io: ChaCha8Rng,
    process_crash: ChaCha8Rng,
    targeted: ChaCha8Rng,
}

#[derive(Clone)]
enum Mode {
    Draw(Box<Streams>),
    Replay { schedule: FaultSchedule, next: usize },
}

/// Where fault decisions come from. A clone continues every stream, the schedule and the armed
/// faults from where they are, independently of the original.
#[derive(Clone)]
pub(crate) struct FaultSource {
    mode: Mode,
    recorded: FaultSchedule,
    armed: VecDeque<(CallKind, Fault)>,
    /// `false` in the quiet phase: no new faults are drawn.
    pub enabled: bool,
    /// The latency jitter stream (not a fault; always drawn).
    pub latency: ChaCha8Rng,
}

impl FaultSource {
    pub fn drawing(seed: u64) -> Self {
        let streams = Streams {
            crash: stream_rng(seed, stream::CRASH),
            io_error: stream_rng(seed, stream::IO_ERROR),
            short_io: stream_rng(seed, stream::SHORT_IO),
            sync_failure: stream_rng(seed, stream::SYNC_FAILURE),
            media: stream_rng(seed, stream::MEDIA),
            bad_sector: stream_rng(seed, stream::BAD_SECTOR),
            clock: stream_rng(seed, stream::CLOCK),
            slow_io: stream_rng(seed, stream::SLOW_IO),
            process_crash: stream_rng(seed, stream::PROCESS_CRASH),
            targeted: stream_rng(seed, stream::TARGETED),
        };
        Self {
            mode: Mode::Draw(Box::new(streams)),
            recorded: FaultSchedule::default(),
            armed: VecDeque::new(),
            enabled: true,
            latency: stream_rng(seed, stream::LATENCY),
        }
    }

    pub fn replaying(seed: u64, schedule: FaultSchedule) -> Self {
        Self { mode: Mode::Replay { schedule, next: 0 }, ..Self::drawing(seed) }
    }

    pub fn recorded(&self) -> &FaultSchedule {
        &self.recorded
    }

    pub fn arm(&mut self, kind: CallKind, fault: Fault) {
        self.armed.push_back((kind, fault));
    }

    /// The faults that hit call number `call` of kind `kind`.
    pub fn decide(
        &mut self,
        call: u64,
        io_call: u64,
        kind: CallKind,
        options: &FaultOptions,
        media_left: bool,
    ) -> Vec<Fault> {
        let mut faults = Vec::new();
        if let Some(&(armed_kind, fault)) = self.armed.front()
            && armed_kind == kind
        {
            faults.push(fault);
            self.armed.pop_front();
        }
        match &mut self.mode {
            Mode::Replay { schedule, next } => {
                while let Some(entry) = schedule.faults.get(*next) {
                    if entry.call > call {
                        break;
                    }
                    // Like drawing, replaying injects nothing while faults are off: a schedule
                    // edited by a shrinker may put a fault on a call of the quiet phase.
                    let driver = matches!(entry.fault, Fault::DriverCrash { .. } | Fault::DriverProcessCrash);
                    if entry.call == call && self.enabled && !driver {
                        faults.push(entry.fault);
                    }
                    *next += 1;
                }
            }
            Mode::Draw(streams) if self.enabled => {
                let drawn = draw(streams, io_call, kind, options, media_left);
                for &fault in &drawn {
                    self.recorded.faults.push(ScheduledFault { call, fault });
                }
                faults.extend(drawn);
            }
            Mode::Draw(_) => {}
        }
        faults
    }

    /// Records a process crash the driver asks for after call `call` (nothing to draw).
    pub fn driver_process_crash(&mut self, call: u64) {
        if let Mode::Draw(_) = self.mode {
            self.recorded.faults.push(ScheduledFault { call, fault: Fault::DriverProcessCrash });
        }
    }

    /// The image seed of a crash the driver asks for after call `call`.
    pub fn driver_crash_seed(&mut self, call: u64) -> u64 {
        match &mut self.mode {
            Mode::Replay { schedule, .. } => schedule
                .faults
                .iter()
                .find_map(|entry| match entry.fault {
                    Fault::DriverCrash { image_seed } if entry.call == call => Some(image_seed),
                    _ => None,
                })
                .unwrap_or(call),
            Mode::Draw(streams) => {
                let image_seed = streams.crash.random();
                self.recorded.faults.push(ScheduledFault { call, fault: Fault::DriverCrash { image_seed } });
                image_seed
            }
        }
    }
}

fn chance(rng: &mut ChaCha8Rng, probability: f64) -> bool {
    probability > 0.0 && rng.random_bool(probability)
}

fn draw(
    streams: &mut Streams,
    io_call: u64,
    kind: CallKind,
    options: &FaultOptions,
    media_left: bool,
) -> Vec<Fault> {
    let mut faults = Vec::new();
    if kind == CallKind::Clock {
        if chance(&mut streams.clock, options.clock_jump_probability) {
            let max_ms = options.clock_jump_max_ms as i64;
            faults.push(Fault::ClockJump { delta_ms: streams.clock.random_range(-max_ms..=max_ms) });
        }
        return faults;
    }
    let crash_after = match options.crash {
        CrashMode::Off => None,
        CrashMode::Random { probability } => {
            chance(&mut streams.crash, probability).then(|| streams.crash.random_bool(0.5))
        }
        CrashMode::AtCall { call, after } => (call == io_call).then_some(after),
    };
    if let Some(after) = crash_after {
        faults.push(Fault::Crash { after, image_seed: streams.crash.random() });
    }
    if kind.is_sync() {
        if chance(&mut streams.sync_failure, options.sync_failure_probability) {
            faults.push(Fault::SyncFailure { image_seed: streams.sync_failure.random() });
        }
    } else if chance(&mut streams.io_error, options.io_error_probability) {
        let persistent = chance(&mut streams.io_error, options.io_error_persistent_fraction);
        faults.push(Fault::IoError { persistent });
    }
    if kind.is_transfer() && chance(&mut streams.short_io, options.short_io_probability) {
        faults.push(Fault::ShortIo { kept_per_mille: streams.short_io.random_range(0..1000) });
    }
    if chance(&mut streams.slow_io, options.latency.slow_probability) {
        faults.push(Fault::SlowIo);
    }
    if media_left {
        if chance(&mut streams.media, options.bit_rot_probability) {
            faults.push(Fault::BitRot { pick: streams.media.random() });
        }
        if kind == CallKind::Write && chance(&mut streams.media, options.misdirect_probability) {
            let distance = streams.media.random_range(1..=4_i64);
            let shift_sectors = if streams.media.random_bool(0.5) { distance } else { -distance };
            faults.push(Fault::Misdirect { shift_sectors });
        }
        if chance(&mut streams.bad_sector, options.bad_sector_probability) {
            faults.push(Fault::BadSector { pick: streams.bad_sector.random() });
        }
        faults.extend(draw_targeted(&mut streams.targeted, kind, options));
    }
    if chance(&mut streams.process_crash, options.process_crash_probability) {
        faults.push(Fault::ProcessCrash { after: streams.process_crash.random_bool(0.5) });
    }
    faults
}

/// A targeted media fault of `FaultOptions::targeted`, if one is drawn for a call of `kind`.
fn draw_targeted(rng: &mut ChaCha8Rng, kind: CallKind, options: &FaultOptions) -> Option<Fault> {
    let targeted = &options.targeted;
    if !chance(rng, targeted.probability) {
        return None;
    }
    let weights = targeted.weights;
    let misdirect = if kind == CallKind::Write { weights.misdirect } else { 0 };
    let total = u64::from(weights.bit_rot) + u64::from(misdirect) + u64::from(weights.bad_sector);
    if total == 0 {
        return None;
    }
    let roll = rng.random_range(0..total);
    if roll < u64::from(weights.bit_rot) {
        Some(Fault::TargetedRot { pick: rng.random() })
    } else if roll < u64::from(weights.bit_rot) + u64::from(misdirect) {
        let distance = rng.random_range(1..=4_i64);
        Some(Fault::TargetedMisdirect {
            shift_sectors: if rng.random_bool(0.5) { distance } else { -distance },
        })
    } else {
        Some(Fault::TargetedBadSector { pick: rng.random() })
    }
}
