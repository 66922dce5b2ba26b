//! `SimEnv` clocks: wall-clock jumps, a monotonic clock that never goes back, sleeps, and a
//! crashed machine's wall clock.
//!
//! Where an outcome is random, a test loops over many seeds, checks the invariant for every
//! one, and also checks that each interesting outcome occurred, so it cannot pass vacuously.
//! Together the `env_sim_*.rs` files pin the exact effect of each `SimEnv` fault on bytes,
//! directory entries, handles and clocks, so that a change to the fault model fails there
//! instead of silently changing which crash images the checker sees.

mod env_sim_support;

use std::time::Duration;

use stormhold::env::Env;
use stormhold::env::sim::FaultOptions;

use env_sim_support::*;

// ---------------------------------------------------------------------------------------------
// Clocks.

#[test]
fn wall_clock_jumps_backwards_while_monotonic_never_decreases() {
    let options =
        FaultOptions { clock_jump_probability: 1.0, clock_jump_max_ms: 10_000, ..FaultOptions::default() };
    let env = sim(0, options);
    let (mut backwards, mut forwards) = (0, 0);
    let mut monotonic = env.now_monotonic();
    for _ in 0..500 {
        // Clock readings take no virtual time, so two readings in a row differ by one jump.
        let (wall, next_wall) = (env.now_wall(), env.now_wall());
        let jump = match next_wall.duration_since(wall) {
            Ok(forward) => {
                forwards += usize::from(!forward.is_zero());
                forward
            }
            Err(backward) => {
                backwards += 1;
                backward.duration()
            }
        };
        assert!(jump <= Duration::from_millis(10_000), "one reading jumped {jump:?}");
        let next_monotonic = env.now_monotonic();
        assert!(next_monotonic >= monotonic, "the monotonic clock went back");
        monotonic = next_monotonic;
        env.sleep(Duration::from_millis(1));
    }
    assert!(backwards > 0 && forwards > 0, "backwards {backwards}, forwards {forwards}");
    assert!(env.stats().clock_jumps >= 1000);
}

#[test]
fn sleep_advances_monotonic_clock_by_at_least_the_duration() {
    let env = sim(0, FaultOptions::default());
    for duration in
        [Duration::ZERO, Duration::from_nanos(1), Duration::from_millis(1500), Duration::from_secs(3600)]
    {
        let before = env.now_monotonic();
        env.sleep(duration);
        assert!(env.now_monotonic() >= before + duration, "slept {duration:?}");
    }
}

#[test]
fn wall_clock_keeps_running_while_crashed() {
    // Regression: reading the wall clock of a crashed machine returned the Unix epoch.
    let env = sim(0, FaultOptions::default());
    env.sleep(Duration::from_secs(5));
    let before = env.now_wall();
    env.crash();
    assert_eq!(env.now_wall(), before);
    assert!(env.now_monotonic() >= Duration::from_secs(5));
}
