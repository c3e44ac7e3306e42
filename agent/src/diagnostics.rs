//! Diagnostics: runs the probes of the `diagnostics` scope and judges what they measure.
//!
//! Each probe gathers facts from the OS through `sysinfo`, then a small pure function
//! turns the facts into a [`Verdict`] and a one-line reason, so the thresholds can be
//! tested with made-up numbers.

use std::collections::HashSet;

use sysinfo::{DiskRefreshKind, Disks, System};
use tether_proto::diag::{DiagFacts, DiagReport, FilesystemUsage, Probe, Verdict};

/// Above this percentage used, a filesystem is worth a look.
const DISK_WARNING_PERCENT: f64 = 90.0;
/// Above this percentage used, a filesystem is a problem.
const DISK_PROBLEM_PERCENT: f64 = 97.0;

/// Runs one probe and returns its facts and verdict.
pub fn run_probe(probe: Probe) -> DiagReport {
    match probe {
        Probe::Uptime => run_uptime(),
        Probe::DiskUsage => run_disk_usage(),
    }
}

fn run_uptime() -> DiagReport {
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
    DiagReport {
        probe: Probe::Uptime,
        verdict,
        reason,
        facts: DiagFacts::Uptime {
            uptime_secs,
            load,
            logical_cpus,
        },
    }
}

fn run_disk_usage() -> DiagReport {
    let filesystems =
        match Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage()) {
            Ok(disks) => filesystem_usage(&disks),
            Err(error) => {
                tracing::debug!(%error, "cannot list disks");
                Vec::new()
            }
        };
    let (verdict, reason) = judge_disks(&filesystems);
    DiagReport {
        probe: Probe::DiskUsage,
        verdict,
        reason,
        facts: DiagFacts::DiskUsage { filesystems },
    }
}

/// One entry per mounted filesystem with a size, the first listing of each mount point only.
fn filesystem_usage(disks: &Disks) -> Vec<FilesystemUsage> {
    let mut seen = HashSet::new();
    disks
        .into_iter()
        .filter(|disk| disk.total_space() > 0)
        .filter(|disk| seen.insert(disk.mount_point().to_path_buf()))
        .map(|disk| {
            let total = disk.total_space();
            let available = disk.available_space();
            FilesystemUsage {
                mount_point: disk.mount_point().to_string_lossy().into_owned(),
                filesystem: disk.file_system().to_string_lossy().into_owned(),
                total,
                available,
                used_percent: used_percent(total, available),
            }
        })
        .collect()
}

/// Percent of `total` not `available`, in 0–100; 0 for an empty filesystem.
fn used_percent(total: u64, available: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let used = total.saturating_sub(available);
    used as f64 * 100.0 / total as f64
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

/// Problem when a filesystem is more than 97 % used, warning above 90 %; the reason names
/// the fullest filesystem. No filesystem at all is a warning: something hides them.
fn judge_disks(filesystems: &[FilesystemUsage]) -> (Verdict, String) {
    let Some(fullest) = filesystems
        .iter()
        .max_by(|a, b| a.used_percent.total_cmp(&b.used_percent))
    else {
        return (Verdict::Warning, "no mounted filesystem found".to_string());
    };
    let verdict = if fullest.used_percent > DISK_PROBLEM_PERCENT {
        Verdict::Problem
    } else if fullest.used_percent > DISK_WARNING_PERCENT {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    let mut reason = format!(
        "{} is {:.1} % full",
        fullest.mount_point, fullest.used_percent
    );
    let nearly_full = filesystems
        .iter()
        .filter(|fs| fs.used_percent > DISK_WARNING_PERCENT)
        .count();
    if nearly_full > 1 {
        reason.push_str(&format!(
            "; {nearly_full} filesystems above {DISK_WARNING_PERCENT:.0} %"
        ));
    }
    (verdict, reason)
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

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
// Panicking on unexpected OS data is what a test should do.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fs(mount_point: &str, used_percent: f64) -> FilesystemUsage {
        FilesystemUsage {
            mount_point: mount_point.to_string(),
            filesystem: "ext4".to_string(),
            total: 1000,
            available: 0,
            used_percent,
        }
    }

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
    fn disk_thresholds_and_reason() {
        let (verdict, reason) = judge_disks(&[fs("/", 45.1), fs("/boot", 12.0)]);
        assert_eq!(verdict, Verdict::Ok);
        assert_eq!(reason, "/ is 45.1 % full");

        let (verdict, reason) = judge_disks(&[fs("/", 90.0)]);
        assert_eq!(
            (verdict, reason.as_str()),
            (Verdict::Ok, "/ is 90.0 % full")
        );

        let (verdict, reason) = judge_disks(&[fs("/", 45.1), fs("/home", 91.5)]);
        assert_eq!(verdict, Verdict::Warning);
        assert_eq!(reason, "/home is 91.5 % full");

        let (verdict, _) = judge_disks(&[fs("/", 97.0)]);
        assert_eq!(verdict, Verdict::Warning);

        let (verdict, reason) = judge_disks(&[fs("/", 92.0), fs("/var", 98.2), fs("/tmp", 3.0)]);
        assert_eq!(verdict, Verdict::Problem);
        assert_eq!(reason, "/var is 98.2 % full; 2 filesystems above 90 %");

        let (verdict, reason) = judge_disks(&[]);
        assert_eq!(verdict, Verdict::Warning);
        assert!(reason.contains("no mounted filesystem"));
    }

    #[test]
    fn used_percent_is_bounded() {
        assert_eq!(used_percent(0, 0), 0.0);
        assert_eq!(used_percent(1000, 1000), 0.0);
        assert_eq!(used_percent(1000, 0), 100.0);
        assert!((used_percent(1000, 549) - 45.1).abs() < 1e-9);
        // More available than total (odd filesystems) is not negative.
        assert_eq!(used_percent(1000, 2000), 0.0);
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
        let report = run_probe(Probe::Uptime);
        let load_after = proc_first_field("/proc/loadavg");
        let uptime = proc_first_field("/proc/uptime");

        assert_eq!(report.probe, Probe::Uptime);
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

    #[cfg(target_os = "linux")]
    #[test]
    fn disk_usage_probe_lists_root() {
        let report = run_probe(Probe::DiskUsage);
        assert_eq!(report.probe, Probe::DiskUsage);
        let DiagFacts::DiskUsage { filesystems } = &report.facts else {
            panic!("wrong facts: {:?}", report.facts);
        };
        let root = filesystems
            .iter()
            .find(|fs| fs.mount_point == "/")
            .unwrap_or_else(|| panic!("no / in {filesystems:?}"));
        assert!(root.total > 0 && root.available <= root.total);
        let mut mounts = HashSet::new();
        for fs in filesystems {
            assert!(fs.total > 0, "{fs:?}");
            assert!((0.0..=100.0).contains(&fs.used_percent), "{fs:?}");
            assert!(
                (fs.used_percent - used_percent(fs.total, fs.available)).abs() < 1e-9,
                "{fs:?}"
            );
            assert!(mounts.insert(&fs.mount_point), "duplicate {fs:?}");
        }
        let (verdict, reason) = judge_disks(filesystems);
        assert_eq!(
            (report.verdict, report.reason.as_str()),
            (verdict, reason.as_str())
        );
    }
}
