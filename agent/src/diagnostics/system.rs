//! System probes: uptime and load, CPU and memory pressure, top processes.

use std::time::{Duration, Instant};

use sysinfo::{MINIMUM_CPU_UPDATE_INTERVAL, ProcessRefreshKind, ProcessesToUpdate, System};
use tether_proto::diag::{DiagFacts, PressureFacts, ProcessInfo, Verdict};

use super::{Found, ProbeError, percent, plural};

pub(super) fn uptime() -> Found {
    let logical_cpus = crate::inventory::logical_cpu_count();
    let uptime_secs = System::uptime().unwrap_or_else(|error| {
        tracing::debug!(%error, "cannot read the uptime");
        0
    });
    let (verdict, reason, load) = match System::load_average() {
        Ok(avg) => {
            let verdict = judge_load(avg.one, logical_cpus);
            let reason = format!(
                "load {:.2} on {}, up {}",
                avg.one,
                plural(u64::from(logical_cpus), "CPU", "CPUs"),
                format_uptime(uptime_secs)
            );
            (verdict, reason, [avg.one, avg.five, avg.fifteen])
        }
        Err(error) => (
            Verdict::Warning,
            format!(
                "load average unavailable ({error}), up {}",
                format_uptime(uptime_secs)
            ),
            [0.0; 3],
        ),
    };
    Found::new(
        verdict,
        reason,
        DiagFacts::Uptime {
            uptime_secs,
            load,
            logical_cpus,
        },
    )
}

/// Memory available below this percentage is worth a look.
const MEMORY_WARNING_PERCENT: f64 = 10.0;
/// Memory available below this percentage is a problem.
const MEMORY_PROBLEM_PERCENT: f64 = 5.0;
/// CPU busy above this percentage is worth a look.
const CPU_WARNING_PERCENT: f64 = 90.0;
/// PSI "memory full avg10" above this means tasks are stalled on memory.
const PSI_MEMORY_PROBLEM: f64 = 10.0;

fn system() -> Result<System, ProbeError> {
    System::new()
        .map_err(|e| ProbeError::NotAvailable(format!("cannot read system statistics: {e}")))
}

/// Sleeps for sysinfo's CPU sampling interval, or fails when that would pass the deadline.
fn sample_pause(deadline: Instant) -> Result<(), ProbeError> {
    if Instant::now() + MINIMUM_CPU_UPDATE_INTERVAL >= deadline {
        return Err(ProbeError::TimedOut);
    }
    std::thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL);
    Ok(())
}

/// How long `pressure` samples the CPU: long enough to smooth a burst, short enough for a check.
const CPU_WINDOW: Duration = Duration::from_secs(1);

/// CPU time counters: the whole machine's busy and total ticks (`/proc/stat`), and this process's
/// own ticks including its reaped children (`/proc/self/stat`), all in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTicks {
    busy: u64,
    total: u64,
    own: u64,
}

impl CpuTicks {
    fn read() -> Option<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Self::parse(&stat, &own)
    }

    fn parse(stat: &str, own: &str) -> Option<CpuTicks> {
        // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
        let f: Vec<u64> = stat
            .lines()
            .find(|l| l.starts_with("cpu "))?
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let total: u64 = f.iter().sum();
        let idle = f.get(3)? + f.get(4).unwrap_or(&0);
        // The command name may hold spaces: fields count from the last ')'. utime, stime,
        // cutime, cstime are fields 14 to 17 (the 12th to 15th after the name).
        let rest = own.rsplit_once(')')?.1;
        let own: u64 = rest
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|x| x.parse::<i64>().ok().map(|v| v.max(0).unsigned_abs()))
            .sum::<Option<u64>>()?;
        Some(CpuTicks {
            busy: total.saturating_sub(idle),
            total,
            own,
        })
    }

    /// The machine's busy percentage between `self` and `later`, leaving out this process.
    fn busy_percent_since(self, later: CpuTicks) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        if total == 0 {
            return None;
        }
        let busy = later.busy.saturating_sub(self.busy);
        let own = later.own.saturating_sub(self.own);
        Some((busy.saturating_sub(own) as f64 * 100.0 / total as f64).clamp(0.0, 100.0))
    }
}

pub(super) fn pressure(deadline: Instant) -> Result<Found, ProbeError> {
    let mut sys = system()?;
    let window = if Instant::now() + CPU_WINDOW + MINIMUM_CPU_UPDATE_INTERVAL < deadline {
        CPU_WINDOW
    } else {
        MINIMUM_CPU_UPDATE_INTERVAL
    };
    let before = CpuTicks::read();
    sys.refresh_cpu_usage();
    if Instant::now() + window >= deadline {
        return Err(ProbeError::TimedOut);
    }
    std::thread::sleep(window);
    sys.refresh_cpu_usage();
    let own_left_out = before
        .zip(CpuTicks::read())
        .and_then(|(a, b)| a.busy_percent_since(b));
    sys.refresh_memory();
    let facts = PressureFacts {
        cpu_percent: own_left_out.unwrap_or_else(|| f64::from(sys.global_cpu_usage())),
        cpu_window_ms: u32::try_from(window.as_millis()).unwrap_or(u32::MAX),
        cpu_excludes_agent: own_left_out.is_some(),
        memory_total: sys.total_memory(),
        memory_available: sys.available_memory(),
        swap_total: sys.total_swap(),
        swap_used: sys.used_swap(),
        psi_cpu_some10: psi_avg10("/proc/pressure/cpu", "some"),
        psi_memory_full10: psi_avg10("/proc/pressure/memory", "full"),
    };
    let (verdict, reason) = judge_pressure(&facts);
    Ok(Found::new(verdict, reason, DiagFacts::Pressure(facts)))
}

/// The `avg10` value of the `kind` line of a PSI file.
fn psi_avg10(path: &str, kind: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_psi_avg10(&text, kind)
}

fn parse_psi_avg10(text: &str, kind: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(kind))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("avg10="))?
        .parse()
        .ok()
}

fn judge_pressure(f: &PressureFacts) -> (Verdict, String) {
    let avail = percent(f.memory_available, f.memory_total);
    let mut reason = format!(
        "CPU {:.0} % busy over {:.1} s{}, {:.0} % of memory available",
        f.cpu_percent,
        f64::from(f.cpu_window_ms) / 1000.0,
        if f.cpu_excludes_agent {
            " (not counting this check)"
        } else {
            ""
        },
        avail
    );
    if f.swap_total > 0 {
        reason.push_str(&format!(
            ", swap {:.0} % used",
            percent(f.swap_used, f.swap_total)
        ));
    }
    let stalled = f.psi_memory_full10.is_some_and(|p| p > PSI_MEMORY_PROBLEM);
    if stalled {
        reason.push_str("; tasks are stalling on memory");
    }
    let known = f.memory_total > 0;
    let verdict = if (known && avail < MEMORY_PROBLEM_PERCENT) || stalled {
        Verdict::Problem
    } else if (known && avail < MEMORY_WARNING_PERCENT) || f.cpu_percent > CPU_WARNING_PERCENT {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    (verdict, reason)
}

pub(super) fn top_processes(count: usize, deadline: Instant) -> Result<Found, ProbeError> {
    let mut sys = system()?;
    let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
    sample_pause(deadline)?;
    sys.refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
    let all: Vec<ProcessInfo> = sys
        .processes()
        .iter()
        // sysinfo lists threads too (on Linux); they share their process's memory and would repeat it.
        .filter(|(_, p)| p.thread_kind().is_none())
        .map(|(pid, p)| ProcessInfo {
            pid: pid.as_u32(),
            name: p.name().to_string_lossy().into_owned(),
            cpu_percent: f64::from(p.cpu_usage()),
            memory: p.memory(),
        })
        .collect();
    let mut by_cpu = all.clone();
    by_cpu.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    by_cpu.truncate(count);
    let mut by_memory = all;
    by_memory.sort_by_key(|p| std::cmp::Reverse(p.memory));
    by_memory.truncate(count);
    let reason = match (by_cpu.first(), by_memory.first()) {
        (Some(c), Some(m)) => format!(
            "busiest: {} ({:.0} % CPU); largest: {} ({} MiB)",
            c.name,
            c.cpu_percent,
            m.name,
            m.memory / (1024 * 1024)
        ),
        _ => "no processes visible".to_string(),
    };
    let verdict = if by_cpu.is_empty() {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::TopProcesses { by_cpu, by_memory },
    ))
}

/// Problem when the 1-minute load is above twice the CPU count, warning above the CPU count.
///
/// An unknown CPU count (0) is read as 1.
fn judge_load(load1: f64, cpus: u32) -> Verdict {
    let cpus = f64::from(cpus.max(1));
    if load1 > 2.0 * cpus {
        Verdict::Problem
    } else if load1 > cpus {
        Verdict::Warning
    } else {
        Verdict::Ok
    }
}

/// "3 days 4 h", "5 h 12 min" or "7 min".
fn format_uptime(secs: u64) -> String {
    let days = secs / 86_400;
    let hours = secs % 86_400 / 3_600;
    let minutes = secs % 3_600 / 60;
    if days > 0 {
        format!("{} {hours} h", plural(days, "day", "days"))
    } else if hours > 0 {
        format!("{hours} h {minutes} min")
    } else {
        format!("{minutes} min")
    }
}

#[cfg(test)]
// Panicking on unexpected OS data is what a test should do.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn load_thresholds() {
        assert_eq!(judge_load(0.42, 2), Verdict::Ok);
        assert_eq!(judge_load(2.0, 2), Verdict::Ok);
        assert_eq!(judge_load(2.01, 2), Verdict::Warning);
        assert_eq!(judge_load(4.0, 2), Verdict::Warning);
        assert_eq!(judge_load(4.01, 2), Verdict::Problem);
        assert_eq!(judge_load(100.0, 64), Verdict::Warning);
        // Unknown CPU count is read as one CPU.
        assert_eq!(judge_load(0.5, 0), Verdict::Ok);
        assert_eq!(judge_load(1.5, 0), Verdict::Warning);
        assert_eq!(judge_load(2.5, 0), Verdict::Problem);
    }

    #[test]
    fn pressure_judgement() {
        let f = |avail: u64, cpu: f64, psi: Option<f64>| PressureFacts {
            cpu_percent: cpu,
            cpu_window_ms: 1000,
            cpu_excludes_agent: true,
            memory_total: 1000,
            memory_available: avail,
            swap_total: 0,
            swap_used: 0,
            psi_cpu_some10: None,
            psi_memory_full10: psi,
        };
        assert_eq!(judge_pressure(&f(500, 10.0, Some(0.0))).0, Verdict::Ok);
        assert_eq!(judge_pressure(&f(80, 10.0, None)).0, Verdict::Warning);
        assert_eq!(judge_pressure(&f(40, 10.0, None)).0, Verdict::Problem);
        assert_eq!(judge_pressure(&f(500, 95.0, None)).0, Verdict::Warning);
        let (v, r) = judge_pressure(&f(500, 10.0, Some(25.0)));
        assert_eq!(v, Verdict::Problem);
        assert!(r.contains("stalling on memory"), "{r}");
        let psi = "some avg10=1.50 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.25 avg60=0 avg300=0 total=0\n";
        assert_eq!(parse_psi_avg10(psi, "full"), Some(0.25));
        assert_eq!(parse_psi_avg10(psi, "some"), Some(1.5));
    }

    /// Issue 17 item 22: the CPU figure leaves out the agent's own work (and its reaped children),
    /// so a health check's probes, running at the same time, do not count as load; the reason
    /// says over what window.
    #[test]
    fn cpu_busy_leaves_out_the_agents_own_work() {
        // 2 CPUs for 1 s at 100 ticks/s: 200 ticks, 180 busy, of which 170 were this process.
        let stat =
            |user: u64, idle: u64| format!("cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n");
        let own = |ticks: u64| {
            format!(
                "4242 (tether agent) S 1 1 1 0 -1 0 0 0 0 0 {} 0 {} 0 20 0 9 0",
                ticks - 10,
                10
            )
        };
        let a = CpuTicks::parse(&stat(1000, 5000), &own(300)).unwrap();
        let b = CpuTicks::parse(&stat(1180, 5020), &own(470)).unwrap();
        assert_eq!((a.busy, a.total, a.own), (1000, 6000, 300));
        let busy = a.busy_percent_since(b).unwrap();
        assert!((busy - 5.0).abs() < 1e-9, "{busy}");
        // Never below zero, and no division by zero.
        assert_eq!(b.busy_percent_since(b), None);
        let c = CpuTicks::parse(&stat(1190, 5210), &own(900)).unwrap();
        assert_eq!(b.busy_percent_since(c), Some(0.0));
        assert_eq!(CpuTicks::parse("nonsense", "1 (x) S"), None);
        let (_, reason) = judge_pressure(&PressureFacts {
            cpu_percent: 5.0,
            cpu_window_ms: 1000,
            cpu_excludes_agent: true,
            memory_total: 100,
            memory_available: 50,
            swap_total: 0,
            swap_used: 0,
            psi_cpu_some10: None,
            psi_memory_full10: None,
        });
        assert!(
            reason.starts_with("CPU 5 % busy over 1.0 s (not counting this check)"),
            "{reason}"
        );
    }

    /// Issue 17 item 22: on this machine, busy threads of the agent itself are left out.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_agents_own_spinning_is_not_load() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinners: Vec<_> = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let before = CpuTicks::read().unwrap();
        let found = pressure(Instant::now() + Duration::from_secs(10)).unwrap();
        let after = CpuTicks::read().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        spinners.into_iter().for_each(|t| t.join().unwrap());
        let DiagFacts::Pressure(p) = &found.facts else {
            panic!("{found:?}")
        };
        assert!(p.cpu_excludes_agent && p.cpu_window_ms == 1000, "{p:?}");
        // Everything busy, ours included, over about the same window.
        let all = (after.busy - before.busy) as f64 * 100.0 / (after.total - before.total) as f64;
        let ours = (after.own - before.own) as f64 * 100.0 / (after.total - before.total) as f64;
        assert!(ours > 0.0, "the spinners ran: {ours}");
        // Ours is left out (on a shared machine others' load moves a little between the windows;
        // our ticks, read from /proc/self, can exceed the machine's busy share read from /proc/stat
        // over the same window when the other tests of this process spin too: no less than 0).
        assert!(
            p.cpu_percent <= (all - ours).max(0.0) + 10.0,
            "reported {} % while the machine was {all:.0} % busy, {ours:.0} % of it ours",
            p.cpu_percent
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn pressure_and_top_processes_read_this_machine() {
        let far = Instant::now() + std::time::Duration::from_secs(10);
        let found = pressure(far).unwrap();
        let DiagFacts::Pressure(p) = &found.facts else {
            panic!("{found:?}")
        };
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let total_kib: u64 = meminfo
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(p.memory_total, total_kib * 1024);
        assert!(p.memory_available <= p.memory_total);
        assert!((0.0..=100.0).contains(&p.cpu_percent));

        let found = top_processes(3, far).unwrap();
        let DiagFacts::TopProcesses { by_cpu, by_memory } = &found.facts else {
            panic!("{found:?}")
        };
        assert_eq!(by_cpu.len(), 3);
        assert_eq!(by_memory.len(), 3);
        assert!(by_memory.windows(2).all(|w| w[0].memory >= w[1].memory));
        assert!(
            by_cpu
                .windows(2)
                .all(|w| w[0].cpu_percent >= w[1].cpu_percent)
        );
        // A deadline too close for the CPU sample is a timeout, not a wrong answer.
        assert!(matches!(
            pressure(Instant::now()),
            Err(ProbeError::TimedOut)
        ));
    }

    #[test]
    fn uptime_wording() {
        assert_eq!(format_uptime(59), "0 min");
        assert_eq!(format_uptime(7 * 60 + 30), "7 min");
        assert_eq!(format_uptime(5 * 3600 + 12 * 60), "5 h 12 min");
        assert_eq!(format_uptime(86_400 + 59), "1 day 0 h");
        assert_eq!(format_uptime(3 * 86_400 + 4 * 3600 + 59 * 60), "3 days 4 h");
        assert_eq!(plural(1, "CPU", "CPUs"), "1 CPU");
        assert_eq!(plural(2, "CPU", "CPUs"), "2 CPUs");
    }

    #[cfg(target_os = "linux")]
    fn proc_first_field(path: &str) -> f64 {
        std::fs::read_to_string(path)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn uptime_probe_matches_proc() {
        let load_before = proc_first_field("/proc/loadavg");
        let report = uptime();
        let load_after = proc_first_field("/proc/loadavg");
        let uptime = proc_first_field("/proc/uptime");

        let DiagFacts::Uptime {
            uptime_secs,
            load,
            logical_cpus,
        } = report.facts
        else {
            panic!("wrong facts: {:?}", report.facts);
        };
        assert!(
            (uptime - uptime_secs as f64).abs() < 5.0,
            "uptime_secs {uptime_secs}, /proc/uptime {uptime}"
        );
        // The kernel updates the load every 5 s: it lies between the two readings.
        assert!(
            load[0] >= load_before.min(load_after) - 0.005
                && load[0] <= load_before.max(load_after) + 0.005,
            "load {load:?}, /proc/loadavg {load_before} then {load_after}"
        );
        assert!(load.iter().all(|l| *l >= 0.0));
        assert_eq!(logical_cpus, crate::inventory::logical_cpu_count());
        assert!(logical_cpus >= 1);
        assert_eq!(report.verdict, judge_load(load[0], logical_cpus));
        assert!(
            report
                .reason
                .starts_with(&format!("load {:.2} on {logical_cpus} CPU", load[0])),
            "{}",
            report.reason
        );
        assert!(report.reason.contains(", up "), "{}", report.reason);
    }
}
