//! Human-readable output for the command line.

use std::fmt::Write;

use tether_proto::diag::{DiagFacts, DiagReport, ProbeKind, Verdict};
use tether_proto::inventory::InventorySummary;

/// `1536 MiB`-style sizes: binary units, one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The inventory summary as aligned text.
pub fn inventory(i: &InventorySummary) -> String {
    let mut s = String::new();
    let cores = i
        .physical_cores
        .map(|c| format!("{c} cores, "))
        .unwrap_or_default();
    let _ = writeln!(s, "host      {}", i.hostname);
    let _ = writeln!(
        s,
        "os        {} {} (kernel {}, {})",
        i.os_name, i.os_version, i.kernel, i.arch
    );
    let _ = writeln!(
        s,
        "cpu       {} ({cores}{} threads)",
        i.cpu_model, i.logical_cpus
    );
    let _ = writeln!(
        s,
        "memory    {} total, {} available",
        bytes(i.memory_total),
        bytes(i.memory_available)
    );
    let _ = writeln!(s, "\ndisks");
    let _ = writeln!(
        s,
        "  {:<24} {:<20} {:<8} {:>10} {:>10}",
        "mount", "device", "fs", "size", "free"
    );
    for d in &i.disks {
        let _ = writeln!(
            s,
            "  {:<24} {:<20} {:<8} {:>10} {:>10}",
            d.mount_point,
            d.name,
            d.filesystem,
            bytes(d.total),
            bytes(d.available)
        );
    }
    let _ = writeln!(s, "\nnetwork");
    for n in &i.interfaces {
        let mac = if n.mac.is_empty() {
            "-"
        } else {
            n.mac.as_str()
        };
        let _ = writeln!(s, "  {:<16} {:<18} {}", n.name, mac, n.addresses.join(", "));
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
        r.reason
    );
    let mut line = |text: String| {
        s.push_str("  ");
        s.push_str(&text);
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
            line(format!("cpu busy     {:.1} %", p.cpu_percent));
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
            r.reason
        );
    }
    let count = |v: Verdict| reports.iter().filter(|r| r.verdict == v).count();
    let _ = writeln!(
        s,
        "\n{} problems, {} warnings, {} timed out or failed, {} not available, {} ok",
        count(Verdict::Problem),
        count(Verdict::Warning),
        count(Verdict::TimedOut) + count(Verdict::Failed),
        count(Verdict::NotAvailable),
        count(Verdict::Ok)
    );
    s
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
            k.describe(),
            k.default_timeout_secs()
        );
        for p in k.params() {
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
    fn sizes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
