//! CPU time and memory of a process, read from `/proc` (Linux).

use std::time::Duration;

/// Clock ticks per second in `/proc/*/stat`. Linux fixes USER_HZ at 100 for this interface.
const TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU time of process `pid` (`"self"` for this one).
pub fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("malformed /proc/{pid}/stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state(3) ... utime is field 14, stime 15 (1-based overall) → index 11 and 12 here.
    let utime: f64 = f
        .get(11)
        .ok_or_else(|| anyhow::anyhow!("no utime"))?
        .parse()?;
    let stime: f64 = f
        .get(12)
        .ok_or_else(|| anyhow::anyhow!("no stime"))?
        .parse()?;
    Ok(Duration::from_secs_f64((utime + stime) / TICKS_PER_SEC))
}

/// Resident set size of process `pid` in bytes (`VmRSS`).
pub fn rss(pid: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("malformed VmRSS"))?
        .parse()?;
    Ok(kib * 1024)
}
