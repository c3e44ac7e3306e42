//! Service, log and update probes: systemd units, the journal, kernel messages, pending apt updates.
//!
//! Each asks a tool with a fixed argv. Technician values that reach an argv are a validated
//! [`UnitName`] (after `--`, so it can never be read as an option) and bounded numbers. When systemd is
//! not PID 1, or a tool or the journal is missing, the probe says "not available here" instead of failing.

use std::path::Path;
use std::time::{Instant, SystemTime};

use tether_proto::diag::{DiagFacts, PendingPackage, UnitName, UnitState, Verdict};

use super::storage::cmd_error;
use super::{Found, ProbeError, command, plural};

/// Where systemd keeps unit files, in its own search order.
const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// Package lists older than this make the pending-updates answer stale.
const STALE_LISTS_HOURS: u64 = 7 * 24;

/// Whether systemd is the running init (the `sd_booted()` test).
fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn no_systemd() -> ProbeError {
    let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    ProbeError::NotAvailable(format!(
        "systemd is not running on this machine (PID 1 is {:?})",
        init.trim()
    ))
}

pub(super) fn failed_units(deadline: Instant) -> Result<Found, ProbeError> {
    if !systemd_running() {
        return Err(no_systemd());
    }
    let out = command::run(
        "systemctl",
        &[
            "list-units",
            "--failed",
            "--no-legend",
            "--plain",
            "--no-pager",
            "--full",
        ],
        deadline,
    )
    .map_err(cmd_error)?;
    if out.code != Some(0) {
        return Err(ProbeError::Failed(format!(
            "systemctl failed: {}",
            out.stderr.trim()
        )));
    }
    let units: Vec<UnitState> = out.stdout.lines().filter_map(parse_unit_line).collect();
    let (verdict, reason) = if units.is_empty() {
        (Verdict::Ok, "no failed units".to_string())
    } else {
        let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
        (
            Verdict::Problem,
            format!(
                "{} failed: {}",
                plural(units.len() as u64, "unit", "units"),
                names.join(", ")
            ),
        )
    };
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::FailedUnits { units },
    ))
}

/// One line of `systemctl list-units --plain --no-legend`: UNIT LOAD ACTIVE SUB DESCRIPTION...
fn parse_unit_line(line: &str) -> Option<UnitState> {
    // Failed units may carry a "●" marker in front, as its own word or glued to the name.
    let mut f = line.split_whitespace().filter(|w| *w != "●").peekable();
    let name = f.next()?.trim_start_matches('●').to_string();
    let (load, active, sub) = (f.next()?, f.next()?, f.next()?);
    let description = f.collect::<Vec<_>>().join(" ");
    Some(UnitState {
        name,
        load_state: Some(load.into()),
        active_state: Some(active.into()),
        sub_state: Some(sub.into()),
        description: Some(description),
        unit_file: None,
    })
}

/// The unit file for `unit` in [`UNIT_DIRS`] (for `name@inst.type`, the template `name@.type` too).
fn find_unit_file(unit: &str) -> Option<String> {
    let mut candidates = vec![unit.to_string()];
    if let Some((base, rest)) = unit.split_once('@')
        && let Some((_, ty)) = rest.rsplit_once('.')
    {
        candidates.push(format!("{base}@.{ty}"));
    }
    UNIT_DIRS.iter().find_map(|d| {
        candidates.iter().find_map(|c| {
            // `c` is a validated unit name: no '/', cannot leave the directory.
            let p = Path::new(d).join(c);
            p.exists().then(|| p.to_string_lossy().into_owned())
        })
    })
}

pub(super) fn unit_status(unit: &UnitName, deadline: Instant) -> Result<Found, ProbeError> {
    let name = unit.with_suffix();
    if !systemd_running() {
        // systemd cannot be asked; the unit files on disk still tell whether the unit exists at all.
        let unit_file = find_unit_file(&name);
        let facts = UnitState {
            name: name.clone(),
            load_state: None,
            active_state: None,
            sub_state: None,
            description: None,
            unit_file: unit_file.clone(),
        };
        return Ok(match unit_file {
            None => Found::new(
                Verdict::Problem,
                format!(
                    "unit {name} does not exist (no unit file in {})",
                    UNIT_DIRS.join(", ")
                ),
                DiagFacts::UnitStatus(facts),
            ),
            Some(f) => Found::new(
                Verdict::NotAvailable,
                format!(
                    "unit {name} exists ({f}), but systemd is not running on this machine, so its state is unknown"
                ),
                DiagFacts::UnitStatus(facts),
            ),
        });
    }
    let out = command::run(
        "systemctl",
        &[
            "show",
            "--no-pager",
            "--property=LoadState,ActiveState,SubState,Description,FragmentPath",
            "--",
            &name,
        ],
        deadline,
    )
    .map_err(cmd_error)?;
    if out.code != Some(0) {
        return Err(ProbeError::Failed(format!(
            "systemctl show failed: {}",
            out.stderr.trim()
        )));
    }
    let facts = parse_show(&name, &out.stdout);
    let (verdict, reason) = judge_unit(&facts);
    Ok(Found::new(verdict, reason, DiagFacts::UnitStatus(facts)))
}

fn parse_show(name: &str, out: &str) -> UnitState {
    let get = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    UnitState {
        name: name.to_string(),
        load_state: get("LoadState"),
        active_state: get("ActiveState"),
        sub_state: get("SubState"),
        description: get("Description"),
        unit_file: get("FragmentPath"),
    }
}

fn judge_unit(u: &UnitState) -> (Verdict, String) {
    let load = u.load_state.as_deref().unwrap_or("unknown");
    let active = u.active_state.as_deref().unwrap_or("unknown");
    let sub = u.sub_state.as_deref().unwrap_or("unknown");
    match (load, active) {
        ("not-found", _) => (Verdict::Problem, format!("unit {} does not exist", u.name)),
        ("masked", _) => (Verdict::Warning, format!("unit {} is masked", u.name)),
        (_, "failed") => (
            Verdict::Problem,
            format!("unit {} has failed ({sub})", u.name),
        ),
        (_, "active") => (Verdict::Ok, format!("unit {} is active ({sub})", u.name)),
        (_, "activating" | "reloading") => (
            Verdict::Warning,
            format!("unit {} is {active} ({sub})", u.name),
        ),
        _ => (
            Verdict::Warning,
            format!("unit {} is {active} ({sub})", u.name),
        ),
    }
}

pub(super) fn journal_errors(
    lines: u16,
    since_minutes: Option<u32>,
    deadline: Instant,
) -> Result<Found, ProbeError> {
    let n = lines.to_string();
    let since = since_minutes.map(|m| format!("--since=-{m}min"));
    // Not --quiet: journalctl only says "No journal files were found" without it.
    let mut args = vec![
        "--no-pager",
        "--priority=err",
        "--output=short-iso",
        "--lines",
        &n,
    ];
    if let Some(s) = &since {
        args.push(s);
    }
    let out = command::run("journalctl", &args, deadline).map_err(cmd_error)?;
    if out.stderr.contains("No journal files were found")
        || out.stdout.contains("No journal files were found")
    {
        return Err(ProbeError::NotAvailable(
            "there is no systemd journal on this machine".into(),
        ));
    }
    if out.code != Some(0) {
        return Err(ProbeError::Failed(format!(
            "journalctl failed: {}",
            out.stderr.trim()
        )));
    }
    let entries: Vec<String> = out
        .stdout
        .lines()
        // "-- No entries --", "-- Boot ... --" and similar markers are not entries.
        .filter(|l| !(l.starts_with("-- ") && l.ends_with(" --")))
        .map(str::to_string)
        .collect();
    let window = since_minutes
        .map(|m| format!(" in the last {m} min"))
        .unwrap_or_default();
    let (verdict, reason) = if entries.is_empty() {
        (
            Verdict::Ok,
            format!("no error entries in the journal{window}"),
        )
    } else {
        (
            Verdict::Warning,
            format!(
                "{} in the journal{window}; latest: {}",
                plural(entries.len() as u64, "error entry", "error entries"),
                entries
                    .last()
                    .map(|l| l.chars().take(120).collect::<String>())
                    .unwrap_or_default()
            ),
        )
    };
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::Log {
            lines: entries,
            oom_kills: 0,
            disk_errors: 0,
        },
    ))
}

/// What one kernel message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KernelKind {
    Oom,
    Disk,
}

fn classify_kernel(line: &str) -> Option<KernelKind> {
    let l = line.to_ascii_lowercase();
    const OOM: [&str; 4] = ["out of memory", "oom-kill", "oom_reaper", "killed process"];
    const DISK: [&str; 7] = [
        "i/o error",
        "medium error",
        "blk_update_request",
        "ext4-fs error",
        "btrfs error",
        "critical medium",
        "uncorrectable error",
    ];
    if OOM.iter().any(|p| l.contains(p)) {
        Some(KernelKind::Oom)
    } else if DISK.iter().any(|p| l.contains(p)) || (l.contains("xfs (") && l.contains("error")) {
        Some(KernelKind::Disk)
    } else {
        None
    }
}

pub(super) fn kernel_messages(lines: u16, deadline: Instant) -> Result<Found, ProbeError> {
    let out = command::run("dmesg", &[], deadline).map_err(cmd_error)?;
    if out.code != Some(0) {
        return Err(ProbeError::NotAvailable(format!(
            "the kernel log is not readable here: {}",
            out.stderr.trim()
        )));
    }
    Ok(judge_kernel(&out.stdout, usize::from(lines)))
}

fn judge_kernel(log: &str, keep: usize) -> Found {
    let matched: Vec<(KernelKind, &str)> = log
        .lines()
        .filter_map(|l| classify_kernel(l).map(|k| (k, l)))
        .collect();
    let oom = matched
        .iter()
        .filter(|(k, _)| *k == KernelKind::Oom)
        .count();
    let disk = matched.len() - oom;
    let lines: Vec<String> = matched[matched.len().saturating_sub(keep)..]
        .iter()
        .map(|(_, l)| l.to_string())
        .collect();
    let (verdict, reason) = match (oom, disk) {
        (0, 0) => (
            Verdict::Ok,
            "no OOM kills or disk errors in the kernel log".to_string(),
        ),
        (o, 0) => (
            Verdict::Warning,
            format!(
                "{} about running out of memory in the kernel log",
                plural(o as u64, "message", "messages")
            ),
        ),
        (_, d) => (
            Verdict::Problem,
            format!(
                "{} about disk errors in the kernel log{}",
                plural(d as u64, "message", "messages"),
                if oom > 0 {
                    format!(", and {oom} about OOM kills")
                } else {
                    String::new()
                }
            ),
        ),
    };
    Found::new(
        verdict,
        reason,
        DiagFacts::Log {
            lines,
            oom_kills: u32::try_from(oom).unwrap_or(u32::MAX),
            disk_errors: u32::try_from(disk).unwrap_or(u32::MAX),
        },
    )
}

pub(super) fn pending_updates(deadline: Instant) -> Result<Found, ProbeError> {
    if command::find("apt").is_none() {
        return Err(ProbeError::NotAvailable(
            "no supported package manager (apt) on this machine".into(),
        ));
    }
    // Reads only the local package lists: no network, no changes, no lock. (`apt-get --simulate upgrade`
    // says the same but resolves dependencies too, which took 2.5x as long here.)
    let out = command::run("apt", &["list", "--upgradable"], deadline).map_err(cmd_error)?;
    if out.code != Some(0) {
        return Err(ProbeError::Failed(format!(
            "apt list --upgradable failed: {}",
            out.stderr.trim()
        )));
    }
    let packages = parse_apt_list(&out.stdout);
    let lists_age_hours = lists_age_hours();
    let (verdict, reason) = judge_updates(&packages, lists_age_hours);
    Ok(Found::new(
        verdict,
        reason,
        DiagFacts::PendingUpdates {
            manager: "apt".into(),
            packages,
            lists_age_hours,
        },
    ))
}

/// `NAME/SUITES VERSION ARCH [upgradable from: CURRENT]` lines of `apt list --upgradable`.
fn parse_apt_list(out: &str) -> Vec<PendingPackage> {
    out.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('/')?;
            let mut f = rest.split_whitespace();
            let suites = f.next()?;
            let available = f.next()?.to_string();
            let current = l
                .split_once("[upgradable from: ")?
                .1
                .trim_end_matches(']')
                .to_string();
            Some(PendingPackage {
                name: name.to_string(),
                current,
                available,
                security: suites.to_ascii_lowercase().contains("security"),
            })
        })
        .collect()
}

/// Hours since apt's package lists were last refreshed.
fn lists_age_hours() -> Option<u64> {
    let newest = std::fs::read_dir("/var/lib/apt/lists")
        .ok()?
        .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
        .max()?;
    Some(SystemTime::now().duration_since(newest).ok()?.as_secs() / 3600)
}

fn judge_updates(packages: &[PendingPackage], age: Option<u64>) -> (Verdict, String) {
    let security = packages.iter().filter(|p| p.security).count();
    let mut reason = if packages.is_empty() {
        "no pending updates".to_string()
    } else {
        format!(
            "{} pending, {security} from security archives",
            plural(packages.len() as u64, "update", "updates")
        )
    };
    let stale = age.is_some_and(|h| h > STALE_LISTS_HOURS);
    if let Some(h) = age.filter(|_| stale) {
        reason.push_str(&format!(
            "; the package lists are {} days old, so there may be more",
            h / 24
        ));
    }
    let verdict = if security > 0 || stale {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    (verdict, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    #[test]
    fn unit_lines_and_show_output() {
        let u =
            parse_unit_line("● nginx.service loaded failed failed A high performance web server")
                .unwrap();
        assert_eq!(u.name, "nginx.service");
        assert_eq!(u.active_state.as_deref(), Some("failed"));
        assert_eq!(
            u.description.as_deref(),
            Some("A high performance web server")
        );
        let s = parse_show(
            "nope.service",
            "LoadState=not-found\nActiveState=inactive\nSubState=dead\nDescription=nope.service\nFragmentPath=\n",
        );
        assert_eq!(s.unit_file, None);
        assert_eq!(
            judge_unit(&s),
            (Verdict::Problem, "unit nope.service does not exist".into())
        );
        let s = parse_show(
            "ssh.service",
            "LoadState=loaded\nActiveState=active\nSubState=running\n",
        );
        assert_eq!(judge_unit(&s).0, Verdict::Ok);
        let s = parse_show(
            "x.service",
            "LoadState=loaded\nActiveState=failed\nSubState=failed\n",
        );
        assert_eq!(judge_unit(&s).0, Verdict::Problem);
    }

    #[test]
    fn kernel_lines_are_classified() {
        let log = "\
[    1.0] EXT4-fs (vda): mounted filesystem r/w
[  100.0] Out of memory: Killed process 1234 (chrome) total-vm:1kB
[  101.0] oom-kill:constraint=CONSTRAINT_NONE,task=chrome,pid=1234
[  200.0] blk_update_request: I/O error, dev sda, sector 123
[  201.0] Buffer I/O error on dev sda1, logical block 9
";
        let f = judge_kernel(log, 3);
        assert_eq!(f.verdict, Verdict::Problem);
        let DiagFacts::Log {
            lines,
            oom_kills,
            disk_errors,
        } = f.facts
        else {
            panic!()
        };
        assert_eq!((oom_kills, disk_errors), (2, 2));
        assert_eq!(lines.len(), 3, "only the last 3 kept");
        assert!(lines[2].contains("Buffer I/O error"));
        assert_eq!(judge_kernel("[ 1.0] all fine\n", 20).verdict, Verdict::Ok);
        let f = judge_kernel("[ 1.0] Out of memory: Killed process 1\n", 20);
        assert_eq!(f.verdict, Verdict::Warning);
    }

    #[test]
    fn apt_list_parsing() {
        let out = "\
Listing...
libssl3/oldstable-security 3.0.17-1~deb12u3 amd64 [upgradable from: 3.0.11-1~deb12u2]
tzdata/oldstable 2025b-0+deb12u1 all [upgradable from: 2024a-0+deb12u1]
";
        let p = parse_apt_list(out);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "libssl3");
        assert_eq!(p[0].current, "3.0.11-1~deb12u2");
        assert_eq!(p[0].available, "3.0.17-1~deb12u3");
        assert!(p[0].security);
        assert!(!p[1].security);
        assert_eq!(p[1].current, "2024a-0+deb12u1");
        assert_eq!(judge_updates(&p, Some(1)).0, Verdict::Warning);
        assert_eq!(judge_updates(&p[1..], Some(1)).0, Verdict::Ok);
        let (v, r) = judge_updates(&[], Some(24 * 30));
        assert_eq!(v, Verdict::Warning);
        assert!(r.contains("30 days old"), "{r}");
    }

    /// On this machine systemd is not PID 1; a unit that does not exist is still reported as such,
    /// and a real unit file is found.
    #[test]
    fn unit_status_against_this_machine() {
        let nope: UnitName = "tether-no-such-unit-4711.service".parse().unwrap();
        let f = unit_status(&nope, far()).unwrap();
        assert_eq!(f.verdict, Verdict::Problem, "{}", f.reason);
        assert!(f.reason.contains("does not exist"), "{}", f.reason);
        if !systemd_running() {
            let e = failed_units(far()).unwrap_err();
            assert!(
                matches!(&e, ProbeError::NotAvailable(w) if w.contains("systemd is not running")),
                "{e}"
            );
            if let Some(real) = ["apt-daily.service", "getty@.service", "cron.service"]
                .into_iter()
                .find(|u| find_unit_file(u).is_some())
            {
                let f = unit_status(&real.parse().unwrap(), far()).unwrap();
                assert_eq!(f.verdict, Verdict::NotAvailable, "{}", f.reason);
                assert!(f.reason.contains("exists"), "{}", f.reason);
            }
        }
    }

    fn has_journal_files() -> bool {
        ["/var/log/journal", "/run/log/journal"].iter().any(|d| {
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    let p = e.path();
                    p.extension().is_some_and(|x| x == "journal")
                        || std::fs::read_dir(&p)
                            .into_iter()
                            .flatten()
                            .flatten()
                            .any(|f| f.path().extension().is_some_and(|x| x == "journal"))
                })
        })
    }

    #[test]
    fn without_journal_files_the_journal_probe_is_not_available() {
        if command::find("journalctl").is_none() {
            let e = journal_errors(5, None, far()).unwrap_err();
            assert!(matches!(e, ProbeError::NotAvailable(_)), "{e}");
        } else if !has_journal_files() {
            let e = journal_errors(5, Some(30), far()).unwrap_err();
            assert!(
                matches!(&e, ProbeError::NotAvailable(w) if w.contains("no systemd journal")),
                "{e}"
            );
        }
    }

    #[test]
    fn pending_updates_match_apt_on_this_machine() {
        if command::find("apt").is_none() {
            assert!(matches!(
                pending_updates(far()),
                Err(ProbeError::NotAvailable(_))
            ));
            return;
        }
        let found = pending_updates(far()).unwrap();
        let DiagFacts::PendingUpdates { packages, .. } = &found.facts else {
            panic!("{found:?}")
        };
        let apt = std::process::Command::new("apt")
            .args(["list", "--upgradable"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&apt.stdout)
            .lines()
            .filter(|l| l.contains("[upgradable from: "))
            .count();
        assert_eq!(packages.len(), listed);
        if packages.iter().any(|p| p.security) {
            assert_eq!(found.verdict, Verdict::Warning, "{}", found.reason);
        }
    }

    #[test]
    fn journal_and_kernel_and_updates_against_this_machine() {
        // Each either works or says it is not available; none fails.
        for r in [
            journal_errors(5, Some(60), far()),
            kernel_messages(5, far()),
            pending_updates(far()),
        ] {
            match r {
                Ok(f) => assert!(matches!(
                    f.verdict,
                    Verdict::Ok | Verdict::Warning | Verdict::Problem
                )),
                Err(ProbeError::NotAvailable(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
}
