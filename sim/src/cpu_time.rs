//! The CPU time this process has used, for the sweep's speed figures (crash-and-recover cycles
//! per core-minute, seeds per core-second): CPU time, not wall time, so the figures do not
//! depend on how busy the machine is or how many worker threads ran.
//!
//! Read from `/proc/self/stat` with std only: `utime + stime` (fields 14 and 15) cover every
//! thread of the process, the finished ones included, in clock ticks of `USER_HZ`, which Linux
//! fixes at 100 per second for userspace on every architecture it supports. Elsewhere (no
//! `/proc`) the reading is `None` and the figures are reported as 0.
//!
//! This is the driver's own measurement of itself; nothing on the simulated path reads it, so
//! it cannot reach a trace hash.

/// Clock ticks per second of `/proc` times (`USER_HZ`).
pub const USER_HZ: u64 = 100;

/// `utime + stime` in clock ticks, from the text of a `/proc/<pid>/stat` file. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // After the name: field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Seconds of CPU time the process has used, if the platform tells.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat_cpu_ticks(&stat).map(|ticks| ticks as f64 / USER_HZ as f64)
}

/// `count` per `per_seconds` of `cpu_seconds`; 0 when no CPU time was measured.
pub fn rate(count: u64, cpu_seconds: f64, per_seconds: f64) -> f64 {
    if cpu_seconds > 0.0 { count as f64 * per_seconds / cpu_seconds } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_counts_fields_after_the_last_parenthesis() {
        let stat = "4242 (stormhold-sim) R 1 2 3 4 5 6 7 8 9 10 1234 56 0 0 20 0 3 0 99 1000 10";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(1290));
        let odd_name = "7 (a b) (c)) S 1 2 3 4 5 6 7 8 9 10 5 6 0 0";
        assert_eq!(parse_stat_cpu_ticks(odd_name), Some(11));
        assert_eq!(parse_stat_cpu_ticks("7 (short) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no name at all"), None);
        assert_eq!(parse_stat_cpu_ticks("7 (x) S 1 2 3 4 5 6 7 8 9 10 x 6"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu_time_and_rates_scale_by_it() {
        let burn: u64 = (0..2_000_000u64).fold(0, |acc, i| acc.wrapping_mul(31).wrapping_add(i));
        assert_ne!(burn, 1);
        assert!(process_cpu_seconds().is_some_and(|s| s >= 0.0));
        assert_eq!(rate(30, 0.5, 60.0), 3600.0);
        assert_eq!(rate(30, 0.0, 60.0), 0.0, "no measurement, no figure");
    }
}
