//! Storage probes: space and inodes per filesystem (statvfs over /proc/self/mountinfo, each device
//! once by its main mount point), SMART health.

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

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mount {
    mount_point: String,
    filesystem: String,
    /// The device as major:minor (one per filesystem, bind mounts included).
    device: String,
    /// The directory of the filesystem mounted here: "/" for its main mount, else a bind mount.
    root: String,
}

/// Parses /proc/self/mountinfo: real filesystems only, the last mount on each mount point (the
/// visible one), then each device once, by its main mount point: the one showing the whole
/// filesystem (root "/"), the shortest such path first. So `/` is reported, not a bind mount of it
/// such as `/run/netns`.
fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut all: Vec<Mount> = text
        .lines()
        .filter_map(|l| {
            // id parent major:minor root mount-point options [optional...] - fstype source super
            let (head, tail) = l.split_once(" - ")?;
            let mut f = head.split_whitespace();
            let device = f.nth(2)?.to_string();
            let root = unescape_mount(f.next()?);
            let mount_point = unescape_mount(f.next()?);
            let filesystem = tail.split_whitespace().next()?.to_string();
            Some(Mount {
                mount_point,
                filesystem,
                device,
                root,
            })
        })
        .filter(|m| !PSEUDO_FS.contains(&m.filesystem.as_str()))
        .collect();
    let mut seen = HashSet::new();
    all.reverse();
    all.retain(|m| seen.insert(m.mount_point.clone()));
    all.reverse();
    // The main mount of each device: whole filesystem first, then the shortest path.
    let rank = |m: &Mount| (m.root != "/", m.mount_point.len());
    let mut main: std::collections::HashMap<&str, &Mount> = std::collections::HashMap::new();
    for m in &all {
        main.entry(&m.device)
            .and_modify(|best| {
                if rank(m) < rank(best) {
                    *best = m;
                }
            })
            .or_insert(m);
    }
    let keep: HashSet<String> = main.values().map(|m| m.mount_point.clone()).collect();
    all.retain(|m| keep.contains(&m.mount_point));
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
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| ProbeError::NotAvailable(format!("cannot read /proc/self/mountinfo: {e}")))?;
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

    /// Issue 17 item 24 too: each device once, by its main mount point (`/`, not `/run/netns`).
    #[test]
    fn mounts_parse_unescape_and_dedupe() {
        let text = "\
21 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
22 21 0:21 / /proc rw - proc proc rw
30 21 0:40 / /mnt/my\\040disk rw - tmpfs tmpfs rw
31 21 254:16 / /data rw - ext4 /dev/vdb rw
32 31 254:32 / /data rw - xfs /dev/vdc rw
40 21 254:1 / /run/netns rw shared:1 - ext4 /dev/vda1 rw
41 21 254:1 /var/lib/docker /srv/docker rw - ext4 /dev/vda1 rw
50 21 254:48 /exports/a /mnt/a rw - ext4 /dev/vdd rw
51 21 254:48 /exports /mnt/all rw - ext4 /dev/vdd rw
";
        let m = parse_mounts(text);
        let names: Vec<_> = m.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(names, ["/", "/mnt/my disk", "/data", "/mnt/a"]);
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
