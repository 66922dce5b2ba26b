//! Proves `SimEnv` deterministic: a fixed workload under many faults gives the same trace hash
//! and statistics for the same seed, a different hash for another seed, the same hash when its
//! recorded fault schedule is replayed, and fault classes that draw from separate streams (an
//! extra class does not move the crash decisions).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stormhold::env::sim::{CrashMode, Fault, FaultOptions, FaultSchedule, LatencyOptions, SimEnv, is_crash};
use stormhold::env::{Env, EnvFile, OpenOptions};

const ROUNDS: u64 = 400;

/// Every fault class on, at rates that make each happen several times in [`ROUNDS`] rounds.
fn stormy() -> FaultOptions {
    FaultOptions {
        crash: CrashMode::Random { probability: 0.01 },
        sync_failure_probability: 0.05,
        io_error_probability: 0.01,
        io_error_persistent_fraction: 0.3,
        short_io_probability: 0.1,
        bit_rot_probability: 0.005,
        misdirect_probability: 0.005,
        bad_sector_probability: 0.002,
        media_faults_max: 30,
        disk_bytes_max: Some(1 << 20),
        clock_jump_probability: 0.2,
        clock_jump_max_ms: 5_000,
        latency: LatencyOptions { slow_probability: 0.05, ..LatencyOptions::default() },
        ..FaultOptions::default()
    }
}

fn wal(round: u64) -> PathBuf {
    PathBuf::from(format!("/db/wal-{}", round % 3))
}

/// One round of the workload: a fixed sequence of calls that stops at the first error.
fn round(env: &SimEnv, round: u64) -> io::Result<()> {
    match env.create_dir(Path::new("/db")) {
        Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
        _ => {}
    }
    let file = env.open(&wal(round), OpenOptions::create())?;
    let record: Vec<u8> = (0..300 + round % 700).map(|i| (i ^ round) as u8).collect();
    file.append(&record)?;
    file.sync_data()?;
    env.sync_dir(Path::new("/db"))?;
    let mut buf = [0; 256];
    file.read_at(&mut buf, round % 64)?;
    env.now_wall();
    env.sleep(Duration::from_micros(round % 1000));
    if round % 5 == 4 {
        env.rename(&wal(round), &wal(round + 1))?;
        env.sync_dir(Path::new("/db"))?;
    }
    if round % 11 == 10 {
        env.remove_file(&wal(round + 2))?;
    }
    env.list_dir(Path::new("/db"))?;
    env.now_monotonic();
    Ok(())
}

/// Runs the workload, restarting after every crash; every 37th round the driver crashes the
/// process itself. Each round's outcome goes into the trace.
fn run(env: SimEnv) -> SimEnv {
    for index in 0..ROUNDS {
        let outcome = round(&env, index);
        if index % 37 == 36 && !env.is_crashed() {
            env.crash();
        }
        let crashed = outcome.as_ref().err().is_some_and(is_crash);
        env.note(format!("round {index}: {:?} crashed={crashed}", outcome.map_err(|e| e.kind())));
        if env.is_crashed() {
            env.restart();
        }
    }
    env
}

fn run_seed(seed: u64, options: FaultOptions) -> SimEnv {
    let env = SimEnv::new(seed, options).expect("valid fault options");
    env.keep_event_hashes();
    run(env)
}

#[test]
fn same_seed_gives_same_trace_hash_and_stats() {
    let (first, second) = (run_seed(7, stormy()), run_seed(7, stormy()));
    assert_eq!(first.event_hashes(), second.event_hashes(), "the traces diverge");
    assert_eq!(first.trace_hash(), second.trace_hash());
    assert_eq!(first.trace_len(), second.trace_len());
    assert_eq!(first.stats(), second.stats());
    assert_eq!(first.schedule(), second.schedule());
    assert_eq!(first.now(), second.now());
    // The run exercised every fault class, so the equality above covers their decisions.
    let stats = first.stats();
    let exercised = [
        ("crashes", stats.crashes),
        ("sync_failures", stats.sync_failures),
        ("io_errors", stats.io_errors),
        ("short_ios", stats.short_ios),
        ("bit_rot", stats.bit_rot),
        ("misdirected_writes", stats.misdirected_writes),
        ("clock_jumps", stats.clock_jumps),
        ("slow_ios", stats.slow_ios),
        ("writes_lost", stats.writes_lost + stats.writes_torn),
    ];
    for (name, count) in exercised {
        assert!(count > 0, "{name} never happened: {stats:?}");
    }
    assert!(stats.crashes > ROUNDS / 37, "random crashes happened besides the driver's: {stats:?}");
}

#[test]
fn different_seeds_give_different_trace_hashes() {
    let (seven, eight) = (run_seed(7, stormy()), run_seed(8, stormy()));
    assert_ne!(seven.trace_hash(), eight.trace_hash());
    assert_ne!(seven.schedule(), eight.schedule());
}

#[test]
fn replayed_schedule_gives_same_trace_hash() {
    let recorded = run_seed(7, stormy());
    let schedule = recorded.schedule();
    assert!(schedule.faults.iter().any(|entry| matches!(entry.fault, Fault::Crash { .. })));
    assert!(schedule.faults.iter().any(|entry| matches!(entry.fault, Fault::DriverCrash { .. })));
    let replayed = run(SimEnv::replaying(7, stormy(), schedule).expect("valid fault options"));
    assert_eq!(replayed.trace_hash(), recorded.trace_hash());
    assert_eq!(replayed.stats(), recorded.stats());
    // Replaying draws no fault, so it records none.
    assert_eq!(replayed.schedule(), FaultSchedule::default());
}

fn crash_decisions(env: &SimEnv) -> Vec<(u64, Fault)> {
    env.schedule()
        .faults
        .into_iter()
        .filter(|entry| matches!(entry.fault, Fault::Crash { .. } | Fault::DriverCrash { .. }))
        .map(|entry| (entry.call, entry.fault))
        .collect()
}

#[test]
fn extra_fault_classes_do_not_change_crash_decisions() {
    // Clock jumps, slow I/O and bit rot never make a call fail, so the workload makes the
    // same calls with and without them and only the streams' separation is under test.
    let crash_only =
        FaultOptions { crash: CrashMode::Random { probability: 0.02 }, ..FaultOptions::default() };
    let extra = FaultOptions {
        clock_jump_probability: 0.5,
        clock_jump_max_ms: 10_000,
        bit_rot_probability: 0.01,
        media_faults_max: u32::MAX,
        latency: LatencyOptions { slow_probability: 0.2, ..LatencyOptions::default() },
        ..crash_only.clone()
    };
    let (plain, noisy) = (run_seed(7, crash_only), run_seed(7, extra));
    let stats = noisy.stats();
    assert!(stats.clock_jumps > 0 && stats.slow_ios > 0 && stats.bit_rot > 0, "{stats:?}");
    assert_ne!(plain.trace_hash(), noisy.trace_hash(), "the extra classes changed nothing");
    let crashes = crash_decisions(&plain);
    assert!(crashes.iter().any(|(_, fault)| matches!(fault, Fault::Crash { .. })), "no random crash");
    assert_eq!(crashes, crash_decisions(&noisy));
    assert_eq!(plain.stats().crashes, stats.crashes);
    assert_eq!(plain.stats().calls, stats.calls);
}
