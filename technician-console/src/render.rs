//! Human-readable output for the command line.

use std::fmt::Write;

use tether_proto::diag::{DiagFacts, DiagReport, ProbeKind, Verdict};
use tether_proto::inventory::{Inventory, ModuleListing, SourceState};
use tether_proto::text::display_safe;

/// Appends one line made from values another machine sent, made safe as a whole
/// ([`display_safe`]): no value can add a line, move the cursor or turn text around.
macro_rules! safe_line {
    ($s:expr, $($arg:tt)*) => {{
        let line = format!($($arg)*);
        $s.push_str(&display_safe(&line));
        $s.push('\n');
    }};
}

pub use crate::units::bytes;

/// The full inventory as aligned text.
pub fn inventory(i: &Inventory) -> String {
    let mut s = String::new();
    let (h, st) = (&i.hardware, &i.status);
    let sys = &h.system;
    safe_line!(s, "host      {}", sys.hostname);
    safe_line!(
        s,
        "os        {} {} (kernel {}, {})",
        sys.os_name,
        sys.os_version,
        sys.kernel,
        sys.arch
    );
    safe_line!(
        s,
        "uptime    {} s (booted {} UTC); users: {}",
        st.uptime_secs,
        crate::units::utc(st.boot_unix),
        if st.users.is_empty() {
            "-".to_string()
        } else {
            st.users.join(", ")
        }
    );
    let mhz = format!(
        ", max {}, now {}",
        h.cpu
            .max_mhz
            .map_or("unknown".to_string(), |m| format!("{m} MHz")),
        h.cpu
            .current_mhz
            .map_or("unknown".to_string(), |m| format!("{m} MHz"))
    );
    safe_line!(
        s,
        "cpu       {} [{}] ({} socket(s), {} cores, {} threads{mhz})",
        h.cpu.model,
        h.cpu.vendor,
        h.cpu.sockets,
        h.cpu.cores,
        h.cpu.threads
    );
    safe_line!(
        s,
        "memory    {} total, {} available; swap {} ({} free)",
        bytes(h.memory.total),
        bytes(st.memory_available),
        bytes(h.memory.swap_total),
        bytes(st.swap_free)
    );
    match &h.memory.modules {
        ModuleListing::Items(m) if !m.is_empty() => {
            for m in m {
                safe_line!(
                    s,
                    "  module  {:<10} {:>10} {} {} {}",
                    m.locator,
                    bytes(m.size),
                    m.manufacturer,
                    m.part_number,
                    m.speed_mts.map(|v| format!("{v} MT/s")).unwrap_or_default()
                );
            }
        }
        ModuleListing::Items(_) => {}
        ModuleListing::NeedsRoot => {
            safe_line!(s, "  modules (needs root)");
        }
        ModuleListing::Unavailable => {
            safe_line!(s, "  modules -");
        }
    }
    let d = &h.dmi;
    safe_line!(
        s,
        "system    {} {} serial {} uuid {}",
        d.system_vendor,
        d.system_model,
        d.system_serial,
        d.system_uuid
    );
    safe_line!(
        s,
        "bios      {} {} {}; board {} {} serial {}",
        d.bios_vendor,
        d.bios_version,
        d.bios_date,
        d.board_vendor,
        d.board_model,
        d.board_serial
    );
    let _ = writeln!(s, "\ndisks");
    for disk in &h.disks {
        safe_line!(
            s,
            "  {:<10} {:>10} {:<7} model {} serial {}{}",
            disk.name,
            bytes(disk.size),
            format!("{:?}", disk.kind),
            disk.model,
            disk.serial,
            if disk.removable { " (removable)" } else { "" }
        );
        for p in &disk.partitions {
            safe_line!(
                s,
                "    {:<12} {:>10} {:<8} {}",
                p.name,
                bytes(p.size),
                p.filesystem.as_deref().unwrap_or("-"),
                p.mount_points.join(", ")
            );
        }
    }
    let _ = writeln!(s, "\nfilesystems");
    safe_line!(
        s,
        "  {:<24} {:<20} {:<8} {:>10} {:>10}",
        "mount",
        "device",
        "fs",
        "size",
        "free"
    );
    for f in &st.filesystems {
        safe_line!(
            s,
            "  {:<24} {:<20} {:<8} {:>10} {:>10}",
            f.mount_point,
            f.device,
            f.filesystem,
            bytes(f.total),
            bytes(f.available)
        );
    }
    let _ = writeln!(s, "\nnetwork");
    for n in &h.interfaces {
        let mac = if n.mac.is_empty() {
            "-"
        } else {
            n.mac.as_str()
        };
        let speed = n
            .speed_mbps
            .map(|v| format!("{v} Mb/s"))
            .unwrap_or_else(|| "-".into());
        safe_line!(
            s,
            "  {:<10} {:<18} {:<5} {:<8} {}",
            n.name,
            mac,
            if n.up { "up" } else { "down" },
            speed,
            crate::rows::addresses(n).join(", ")
        );
    }
    if !h.gpus.is_empty() || !h.displays.is_empty() {
        let _ = writeln!(s, "\ngraphics");
        for g in &h.gpus {
            safe_line!(s, "  {:<8} {} {} ({})", g.name, g.vendor, g.model, g.driver);
        }
        for d in &h.displays {
            safe_line!(s, "  display {} {}", d.connector, d.mode);
        }
    }
    for (b, pct) in h.batteries.iter().zip(&st.battery_percent) {
        let health = b
            .health_percent
            .map(|v| format!("{v}%"))
            .unwrap_or_else(|| "-".into());
        safe_line!(
            s,
            "battery   {} {} {}: {pct}% charged, health {health}",
            b.name,
            b.manufacturer,
            b.model
        );
    }
    let _ = writeln!(s, "\nsoftware  {} packages", i.software.packages.len());
    for (src, state) in &i.software.sources {
        let n = i
            .software
            .packages
            .iter()
            .filter(|p| p.source == *src)
            .count();
        let what = match state {
            SourceState::Read => format!("{n} packages"),
            SourceState::NotPresent => "not present on this system".into(),
            SourceState::Failed(e) => format!("failed: {e}"),
        };
        safe_line!(s, "  {:<8} {what}", src.name());
    }
    s
}

/// A verdict as a fixed-width label.
fn label(v: Verdict) -> String {
    v.to_string().to_uppercase()
}

/// A probe report: verdict and reason first, then the facts.
pub fn diag(r: &DiagReport) -> String {
    let mut s = format!(
        "{:<16} {:<10} {}\n",
        r.probe.kind().name(),
        label(r.verdict),
        display_safe(&r.reason)
    );
    let mut line = |text: String| {
        s.push_str("  ");
        s.push_str(&display_safe(&text));
        s.push('\n');
    };
    match &r.facts {
        DiagFacts::None => {}
        DiagFacts::Uptime {
            uptime_secs,
            load,
            logical_cpus,
        } => line(format!(
            "up {uptime_secs} s; load {:.2} {:.2} {:.2} on {logical_cpus} CPUs",
            load[0], load[1], load[2]
        )),
        DiagFacts::Pressure(p) => {
            line(format!(
                "cpu busy     {:.1} % over {:.1} s{}",
                p.cpu_percent,
                f64::from(p.cpu_window_ms) / 1000.0,
                if p.cpu_excludes_agent {
                    ", not counting the agent"
                } else {
                    ""
                }
            ));
            line(format!(
                "memory       {} available of {}",
                bytes(p.memory_available),
                bytes(p.memory_total)
            ));
            line(format!(
                "swap         {} used of {}",
                bytes(p.swap_used),
                bytes(p.swap_total)
            ));
            let psi = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
            line(format!(
                "psi avg10    cpu some {}, memory full {}",
                psi(p.psi_cpu_some10),
                psi(p.psi_memory_full10)
            ));
        }
        DiagFacts::TopProcesses { by_cpu, by_memory } => {
            line(format!(
                "{:<8} {:<24} {:>7} {:>10}",
                "pid", "by cpu", "cpu", "memory"
            ));
            for p in by_cpu {
                line(format!(
                    "{:<8} {:<24} {:>6.1}% {:>10}",
                    p.pid,
                    p.name,
                    p.cpu_percent,
                    bytes(p.memory)
                ));
            }
            line(format!(
                "{:<8} {:<24} {:>7} {:>10}",
                "pid", "by memory", "cpu", "memory"
            ));
            for p in by_memory {
                line(format!(
                    "{:<8} {:<24} {:>6.1}% {:>10}",
                    p.pid,
                    p.name,
                    p.cpu_percent,
                    bytes(p.memory)
                ));
            }
        }
        DiagFacts::DiskUsage { filesystems } => {
            line(format!(
                "{:<28} {:<8} {:>10} {:>10} {:>6}",
                "mount", "fs", "size", "free", "used"
            ));
            for f in filesystems {
                line(format!(
                    "{:<28} {:<8} {:>10} {:>10} {:>5.1}%",
                    f.mount_point,
                    f.filesystem,
                    bytes(f.total),
                    bytes(f.available),
                    f.used_percent
                ));
            }
        }
        DiagFacts::Inodes { filesystems } => {
            line(format!(
                "{:<28} {:<8} {:>12} {:>12} {:>6}",
                "mount", "fs", "inodes", "free", "used"
            ));
            for f in filesystems {
                line(format!(
                    "{:<28} {:<8} {:>12} {:>12} {:>5.1}%",
                    f.mount_point, f.filesystem, f.total, f.free, f.used_percent
                ));
            }
        }
        DiagFacts::Smart { devices } => {
            for d in devices {
                line(format!("{:<16} {}", d.device, d.detail));
            }
        }
        DiagFacts::Interfaces { interfaces } => {
            for i in interfaces {
                let mac = if i.mac.is_empty() { "-" } else { &i.mac };
                line(format!(
                    "{:<12} {:<8} {:<18} {}",
                    i.name,
                    i.state,
                    mac,
                    i.addresses.join(", ")
                ));
            }
        }
        DiagFacts::DefaultRoute(rf) => {
            line(format!(
                "gateway {} via {}; checked by {}{}",
                rf.gateway.as_deref().unwrap_or("-"),
                rf.interface.as_deref().unwrap_or("-"),
                rf.method,
                rf.rtt_ms
                    .map(|t| format!(", rtt {t:.2} ms"))
                    .unwrap_or_default()
            ));
        }
        DiagFacts::Dns {
            addresses,
            nameservers,
            error,
            ..
        } => {
            if !addresses.is_empty() {
                line(format!("addresses    {}", addresses.join(", ")));
            }
            if let Some(e) = error {
                line(format!("error        {e}"));
            }
            line(format!("nameservers  {}", nameservers.join(", ")));
        }
        DiagFacts::TcpConnect(c) => {
            line(format!("tried        {}", c.tried.join(", ")));
            line(format!("time         {:.2} ms", c.connect_ms));
            if let Some(e) = &c.error {
                line(format!("error        {e}"));
            }
        }
        DiagFacts::Http(h) => {
            let t = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
            if let Some(l) = &h.status_line {
                line(format!("status       {l}"));
            }
            line(format!("connect      {}", t(h.connect_ms)));
            line(format!("headers      {}", t(h.total_ms)));
            if let Some(v) = &h.server {
                line(format!("server       {v}"));
            }
            if let Some(v) = &h.location {
                line(format!("location     {v}"));
            }
            if let Some(e) = &h.error {
                line(format!("error        {e}"));
            }
        }
        DiagFacts::ListeningPorts { sockets } => {
            line(format!(
                "{:<6} {:<40} {:>6} {:>6}",
                "proto", "address", "port", "uid"
            ));
            for k in sockets {
                line(format!(
                    "{:<6} {:<40} {:>6} {:>6}",
                    k.protocol, k.address, k.port, k.uid
                ));
            }
        }
        DiagFacts::FailedUnits { units } => {
            for u in units {
                line(format!(
                    "{:<40} {}",
                    u.name,
                    u.description.as_deref().unwrap_or("")
                ));
            }
        }
        DiagFacts::UnitStatus(u) => {
            let v = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            line(format!(
                "load {} / active {} / sub {}",
                v(&u.load_state),
                v(&u.active_state),
                v(&u.sub_state)
            ));
            if let Some(f) = &u.unit_file {
                line(format!("unit file {f}"));
            }
        }
        DiagFacts::Log {
            lines,
            oom_kills,
            disk_errors,
        } => {
            if *oom_kills > 0 || *disk_errors > 0 {
                line(format!("OOM kills {oom_kills}, disk errors {disk_errors}"));
            }
            for l in lines {
                line(l.clone());
            }
        }
        DiagFacts::PendingUpdates {
            manager,
            packages,
            lists_age_hours,
        } => {
            line(format!(
                "{manager}; package lists {} old",
                lists_age_hours.map_or("?".to_string(), |h| format!("{h} h"))
            ));
            for p in packages {
                line(format!(
                    "{:<32} {:<24} -> {:<24}{}",
                    p.name,
                    p.current,
                    p.available,
                    if p.security { " security" } else { "" }
                ));
            }
        }
    }
    s
}

/// The health check as one table, in the order given (the caller sorts problems first).
pub fn diag_summary(reports: &[DiagReport]) -> String {
    let mut s = format!(
        "{:<16} {:<10} {:>7}  {}\n",
        "probe", "verdict", "ms", "reason"
    );
    for r in reports {
        let _ = writeln!(
            s,
            "{:<16} {:<10} {:>7}  {}",
            r.probe.kind().name(),
            label(r.verdict),
            r.elapsed_ms,
            display_safe(&r.reason)
        );
    }
    let _ = writeln!(s, "\n{}", health_counts(reports));
    s
}

/// The health check's summary line: how many problems, warnings, ... and ok.
pub fn health_counts(reports: &[DiagReport]) -> String {
    let count = |v: Verdict| reports.iter().filter(|r| r.verdict == v).count();
    format!(
        "{} problems, {} warnings, {} timed out or failed, {} not available, {} ok",
        count(Verdict::Problem),
        count(Verdict::Warning),
        count(Verdict::TimedOut) + count(Verdict::Failed),
        count(Verdict::NotAvailable),
        count(Verdict::Ok)
    )
}

/// The probe catalog with parameters and timeouts.
pub fn catalog() -> String {
    let mut s = String::new();
    for k in ProbeKind::ALL {
        let all = if k.in_health_check() { " [--all]" } else { "" };
        let _ = writeln!(
            s,
            "{:<16} {} (timeout {} s){all}",
            k.name(),
            crate::diag::describe(k),
            k.default_timeout_secs()
        );
        for p in crate::diag::params(k) {
            let req = if p.required { "required" } else { "optional" };
            let _ = writeln!(s, "{:<18}{}=<{}>  {req}: {}", "", p.name, p.kind, p.help);
        }
    }
    s.push_str(
        "\nParameters follow the probe name as key=value or --key value; --timeout SECS overrides the timeout.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_each_report_and_counts_verdicts() {
        use tether_proto::diag::Probe;
        let r = |probe: Probe, verdict: Verdict, reason: &str| DiagReport {
            probe,
            verdict,
            reason: reason.into(),
            facts: DiagFacts::None,
            elapsed_ms: 3,
        };
        let text = diag_summary(&[
            r(Probe::DiskUsage, Verdict::Problem, "/ is 99.0 % full"),
            r(
                Probe::Smart,
                Verdict::NotAvailable,
                "not available here: smartctl is not installed",
            ),
            r(Probe::Uptime, Verdict::Ok, "load 0.1"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].starts_with("disk-usage") && lines[1].contains("PROBLEM"),
            "{text}"
        );
        assert!(lines[2].contains("N/A"), "{text}");
        assert!(
            text.ends_with(
                "1 problems, 0 warnings, 0 timed out or failed, 1 not available, 1 ok\n"
            ),
            "{text}"
        );
        let cat = catalog();
        assert!(
            cat.contains("tcp-connect") && cat.contains("port=<1-65535>  required"),
            "{cat}"
        );
    }

    #[test]
    fn values_from_the_other_machine_cannot_drive_the_terminal_or_add_lines() {
        use tether_proto::diag::Probe;
        let hostile = "x\u{1b}]0;pwned\u{7}\u{1b}[2J\ny\u{202e}z\u{2028}w\u{61c}";
        let report = DiagReport {
            probe: Probe::Uptime,
            verdict: Verdict::Ok,
            reason: hostile.into(),
            facts: DiagFacts::None,
            elapsed_ms: 3,
        };
        for text in [diag(&report), diag_summary(std::slice::from_ref(&report))] {
            let bad: Vec<char> = text
                .chars()
                .filter(|&c| c != '\n' && tether_proto::text::is_hidden(c))
                .collect();
            assert!(bad.is_empty(), "{bad:?} in {text:?}");
            assert!(text.contains("x\u{241b}]0;pwned\u{2407}"), "{text:?}");
        }
        assert_eq!(diag(&report).lines().count(), 1, "no line was added");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
