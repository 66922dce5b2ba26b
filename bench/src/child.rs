//! Peak-memory measurements in a child process: the bench re-runs its own binary with a
//! child flag, the child does the work and prints `name=value` fields ending with its
//! `VmHWM`, and the parent reads them back. Shared by the recovery-memory and bulk-load
//! memory sections.

use std::ffi::OsStr;

use crate::harness::BenchError;

/// Whether this process is the `stormhold-bench` binary, so it can re-run itself as a child
/// (under `cargo test` it is the test binary, which cannot).
pub fn can_rerun_self() -> Result<bool, BenchError> {
    Ok(std::env::current_exe()?.file_name().is_some_and(|n| n == "stormhold-bench"))
}

/// The peak resident set of this process so far, in KiB (`VmHWM` of `/proc/self/status`).
pub fn vmhwm_kib() -> Result<u64, BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hwm = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(hwm)
}

/// Runs this binary with `args` and returns what it printed; a child that fails is an error
/// naming `what` with the child's stderr.
pub fn run_self<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(
    what: &str,
    args: I,
) -> Result<String, BenchError> {
    let out = std::process::Command::new(std::env::current_exe()?).args(args).output()?;
    if !out.status.success() {
        return Err(format!("{what} child failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The number of field `name` (e.g. `"keys="`) in a child's output.
pub fn field(text: &str, name: &str) -> Result<u64, BenchError> {
    let value =
        text.split_whitespace().find_map(|f| f.strip_prefix(name)).and_then(|v| v.parse::<u64>().ok());
    Ok(value.ok_or_else(|| format!("the child printed {text:?}, without a number for {name}"))?)
}

/// `bytes` in MiB, for the sections' lines.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_name_and_a_missing_one_is_an_error() {
        assert_eq!(field("keys=12 vmhwm_kib=3400", "vmhwm_kib=").unwrap(), 3400);
        assert_eq!(field("keys=12 vmhwm_kib=3400", "keys=").unwrap(), 12);
        assert!(field("keys=12", "vmhwm_kib=").is_err());
        assert!(field("keys=x", "keys=").is_err());
        assert_eq!(mib(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
