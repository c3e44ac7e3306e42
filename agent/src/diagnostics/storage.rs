//! Storage probes: space and inodes per filesystem (statvfs over /proc/self/mounts), SMART health.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use tether_proto::diag::{DiagFacts, FilesystemUsage, InodeUsage, SmartDevice, Verdict};

use super::command::{self, CommandError};
use super::{Found, ProbeError, percent, plural};

/// Above this percentage used, a filesystem (space or inodes) is worth a look.
const WARNING_PERCENT: f64 = 90.0;
/// Above this percentage used, a filesystem is a problem.
const PROBLEM_PERCENT: f64 = 97.0;

/// Filesystem types that hold no user data; their usage means nothing. Read-only images (squashfs,
/// iso9660) are always 100 % full by design.
const PSEUDO_FS: [&str; 24] = [
    "proc",
    "sysfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "autofs",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "efivarfs",
    "squashfs",
    "iso9660",
    "ramfs",
    "selinuxfs",
    "devtmpfs",
];

/// One line of /proc/self/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    mount_point: String,
    filesystem: String,
}

/// Parses /proc/self/mounts: real filesystems only, the last mount on each mount point (the visible one).
fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut all: Vec<Mount> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _device = f.next()?;
            let mount_point = unescape_mount(f.next()?);
            let filesystem = f.next()?.to_string();
            Some(Mount {
                mount_point,
                filesystem,
            })
        })
        .filter(|m| !PSEUDO_FS.contains(&m.filesystem.as_str()))
        .collect();
    let mut seen = HashSet::new();
    all.reverse();
    all.retain(|m| seen.insert(m.mount_point.clone()));
    all.reverse();
    all
}

/// The kernel writes space, tab, newline and backslash in mount points as octal escapes.
fn unescape_mount(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn mounts() -> Result<Vec<Mount>, ProbeError> {
    let text = std::fs::read_to_string("/proc/self/mounts")
        .map_err(|e| ProbeError::NotAvailable(format!("cannot read /proc/self/mounts: {e}")))?;
    Ok(parse_mounts(&text))
}

/// Space on the filesystem holding `path`, the way `df` counts it: used is blocks minus free blocks,
/// and the percentage is of what unprivileged users can get (used + available).
pub fn filesystem_usage_at(path: &Path, filesystem: &str) -> std::io::Result<FilesystemUsage> {
    let st = rustix::fs::statvfs(path)?;
    let frsize = st.f_frsize.max(1);
    let used = st.f_blocks.saturating_sub(st.f_bfree) * frsize;
    let available = st.f_bavail * frsize;
    Ok(FilesystemUsage {
        mount_point: path.to_string_lossy().into_owned(),
        filesystem: filesystem.to_string(),
        total: st.f_blocks * frsize,
        available,
        used_percent: percent(used, used + available),
    })
}

fn inode_usage_at(path: &Path, filesystem: &str) -> std::io::Result<InodeUsage> {
    let st = rustix::fs::statvfs(path)?;
    Ok(InodeUsage {
        mount_point: path.to_string_lossy().into_owned(),
        filesystem: filesystem.to_string(),
        total: st.f_files,
        free: st.f_ffree,
        used_percent: percent(st.f_files.saturating_sub(st.f_ffree), st.f_files),
    })
}

pub(super) fn disk_usage() -> Result<Found, ProbeError> {
    let filesystems: Vec<FilesystemUsage> = mounts()?
        .iter()
        .filter_map(|m| filesystem_usage_at(Path::new(&m.mount_point), &m.filesystem).ok())
        .filter(|fs| fs.total > 0)
        .collect();
    let (verdict, reason) = judge_full(
        filesystems
            .iter()
            .map(|f| (f.mount_point.as_str(), f.used_percent)),
        "full",
    );
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::DiskUsage { filesystems },
    ))
}

pub(super) fn inodes() -> Result<Found, ProbeError> {
    let filesystems: Vec<InodeUsage> = mounts()?
        .iter()
        .filter_map(|m| inode_usage_at(Path::new(&m.mount_point), &m.filesystem).ok())
        // Filesystems without a fixed inode table (btrfs, vfat) report 0.
        .filter(|fs| fs.total > 0)
        .collect();
    let (verdict, reason) = judge_full(
        filesystems
            .iter()
            .map(|f| (f.mount_point.as_str(), f.used_percent)),
        "of inodes used",
    );
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::Inodes { filesystems },
    ))
}

/// Problem when a filesystem is more than 97 % used, warning above 90 %; the reason names the fullest.
/// No filesystem at all is a warning: something hides them.
fn judge_full<'a>(usage: impl Iterator<Item = (&'a str, f64)>, what: &str) -> (Verdict, String) {
    let usage: Vec<_> = usage.collect();
    let Some(&(mount, fullest)) = usage.iter().max_by(|a, b| a.1.total_cmp(&b.1)) else {
        return (Verdict::Warning, "no mounted filesystem found".to_string());
    };
    let verdict = if fullest > PROBLEM_PERCENT {
        Verdict::Problem
    } else if fullest > WARNING_PERCENT {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    let mut reason = format!("{mount} is {fullest:.1} % {what}");
    let nearly_full = usage.iter().filter(|u| u.1 > WARNING_PERCENT).count();
    if nearly_full > 1 {
        reason.push_str(&format!(
            "; {nearly_full} filesystems above {WARNING_PERCENT:.0} %"
        ));
    }
    (verdict, reason)
}

pub(super) fn smart(deadline: Instant) -> Result<Found, ProbeError> {
    let scan = command::run("smartctl", &["--scan"], deadline).map_err(cmd_error)?;
    let devices: Vec<&str> = scan.stdout.lines().filter_map(scanned_device).collect();
    if devices.is_empty() {
        return Err(ProbeError::NotAvailable(
            "smartctl found no SMART-capable disks (virtual disks have none)".into(),
        ));
    }
    let mut out = Vec::new();
    for dev in devices {
        // `dev` comes from smartctl's own output and passed `scanned_device`'s character check.
        let health = command::run("smartctl", &["-H", dev], deadline).map_err(cmd_error)?;
        out.push(parse_health(dev, &health.stdout));
    }
    let failed: Vec<_> = out.iter().filter(|d| d.passed == Some(false)).collect();
    let unknown = out.iter().filter(|d| d.passed.is_none()).count();
    let (verdict, reason) = if !failed.is_empty() {
        (
            Verdict::Problem,
            format!(
                "SMART health FAILED on {}: back up now",
                failed
                    .iter()
                    .map(|d| d.device.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else if unknown > 0 {
        (
            Verdict::Warning,
            format!(
                "{} did not report SMART health",
                plural(unknown as u64, "disk", "disks")
            ),
        )
    } else {
        (
            Verdict::Ok,
            format!("{} passed", plural(out.len() as u64, "disk", "disks")),
        )
    };
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::Smart { devices: out },
    ))
}

/// The device of one `smartctl --scan` line ("/dev/sda -d sat # ..."), if it looks like a device path.
fn scanned_device(line: &str) -> Option<&str> {
    let dev = line.split_whitespace().next()?;
    let ok = dev.starts_with("/dev/")
        && dev.len() <= 64
        && !dev.contains("..")
        && dev
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
    ok.then_some(dev)
}

fn parse_health(device: &str, out: &str) -> SmartDevice {
    let line = out.lines().find(|l| {
        l.contains("overall-health self-assessment test result")
            || l.contains("SMART Health Status")
    });
    let passed = line.map(|l| {
        let v = l.rsplit(':').next().unwrap_or("").trim();
        v == "PASSED" || v == "OK"
    });
    SmartDevice {
        device: device.to_string(),
        passed,
        detail: line
            .unwrap_or("no health line in smartctl output")
            .trim()
            .to_string(),
    }
}

pub(super) fn cmd_error(e: CommandError) -> ProbeError {
    match e {
        CommandError::NotFound(p) => ProbeError::NotAvailable(format!("{p} is not installed")),
        CommandError::TimedOut { .. } => ProbeError::TimedOut,
        e @ CommandError::Io { .. } => ProbeError::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_thresholds_and_reason() {
        let j = |v: &[(&str, f64)]| judge_full(v.iter().copied(), "full");
        assert_eq!(
            j(&[("/", 45.1), ("/boot", 12.0)]),
            (Verdict::Ok, "/ is 45.1 % full".to_string())
        );
        assert_eq!(j(&[("/", 90.0)]).0, Verdict::Ok);
        assert_eq!(
            j(&[("/", 45.1), ("/home", 91.5)]),
            (Verdict::Warning, "/home is 91.5 % full".to_string())
        );
        assert_eq!(j(&[("/", 97.0)]).0, Verdict::Warning);
        assert_eq!(
            j(&[("/", 92.0), ("/var", 98.2), ("/tmp", 3.0)]),
            (
                Verdict::Problem,
                "/var is 98.2 % full; 2 filesystems above 90 %".to_string()
            )
        );
        assert_eq!(j(&[]).0, Verdict::Warning);
    }

    #[test]
    fn mounts_parse_unescape_and_dedupe() {
        let text = "\
/dev/vda / ext4 rw 0 0
proc /proc proc rw 0 0
tmpfs /mnt/my\\040disk tmpfs rw 0 0
/dev/vdb /data ext4 rw 0 0
/dev/vdc /data xfs rw 0 0
";
        let m = parse_mounts(text);
        let names: Vec<_> = m.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(names, ["/", "/mnt/my disk", "/data"]);
        // The later mount on /data hides the earlier one.
        assert_eq!(m[2].filesystem, "xfs");
        assert_eq!(unescape_mount("a\\134b\\011c\\"), "a\\b\tc\\");
    }

    #[test]
    fn smart_output_parsing() {
        assert_eq!(
            scanned_device("/dev/sda -d sat # /dev/sda [SAT], ATA device"),
            Some("/dev/sda")
        );
        assert_eq!(scanned_device("/dev/../etc/passwd -d sat"), None);
        assert_eq!(scanned_device("sda"), None);
        assert_eq!(scanned_device("/dev/sd$(x)"), None);
        let d = parse_health(
            "/dev/sda",
            "=== START ===\nSMART overall-health self-assessment test result: PASSED\n",
        );
        assert_eq!(d.passed, Some(true));
        let d = parse_health(
            "/dev/sda",
            "SMART overall-health self-assessment test result: FAILED!\n",
        );
        assert_eq!(d.passed, Some(false));
        assert_eq!(parse_health("/dev/sg0", "nothing").passed, None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn disk_usage_and_inodes_list_root_like_statvfs() {
        let found = disk_usage().unwrap();
        let DiagFacts::DiskUsage { filesystems } = &found.facts else {
            panic!("{found:?}")
        };
        let root = filesystems
            .iter()
            .find(|fs| fs.mount_point == "/")
            .unwrap_or_else(|| panic!("no / in {filesystems:?}"));
        let st = rustix::fs::statvfs("/").unwrap();
        assert_eq!(root.total, st.f_blocks * st.f_frsize);
        let mut seen = HashSet::new();
        for fs in filesystems {
            assert!((0.0..=100.0).contains(&fs.used_percent), "{fs:?}");
            assert!(seen.insert(&fs.mount_point), "duplicate {fs:?}");
            assert!(!PSEUDO_FS.contains(&fs.filesystem.as_str()), "{fs:?}");
        }
        let found = inodes().unwrap();
        let DiagFacts::Inodes { filesystems } = &found.facts else {
            panic!("{found:?}")
        };
        for fs in filesystems {
            assert!(fs.free <= fs.total, "{fs:?}");
        }
    }

    #[test]
    fn smart_without_smartctl_is_not_available() {
        if command::find("smartctl").is_some() {
            return; // This machine has smartctl: the probe runs for real (covered end to end).
        }
        let far = Instant::now() + std::time::Duration::from_secs(5);
        let e = smart(far).unwrap_err();
        assert!(
            matches!(&e, ProbeError::NotAvailable(why) if why == "smartctl is not installed"),
            "{e}"
        );
    }
}
