//! Human-readable output for the command line.

use std::fmt::Write;

use tether_proto::diag::{DiagFacts, DiagReport, Probe};
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

/// A probe report: verdict and reason first, then the facts.
pub fn diag(r: &DiagReport) -> String {
    let mut s = format!(
        "{:<12} {:<8} {}\n",
        r.probe.name(),
        r.verdict.to_string().to_uppercase(),
        r.reason
    );
    match &r.facts {
        DiagFacts::Uptime {
            uptime_secs,
            load,
            logical_cpus,
        } => {
            let _ = writeln!(
                s,
                "  up {} s; load {:.2} {:.2} {:.2} on {logical_cpus} CPUs",
                uptime_secs, load[0], load[1], load[2]
            );
        }
        DiagFacts::DiskUsage { filesystems } => {
            let _ = writeln!(
                s,
                "  {:<24} {:<8} {:>10} {:>10} {:>6}",
                "mount", "fs", "size", "free", "used"
            );
            for f in filesystems {
                let _ = writeln!(
                    s,
                    "  {:<24} {:<8} {:>10} {:>10} {:>5.1}%",
                    f.mount_point,
                    f.filesystem,
                    bytes(f.total),
                    bytes(f.available),
                    f.used_percent
                );
            }
        }
    }
    s
}

/// The probe catalog.
pub fn catalog() -> String {
    let mut s = String::new();
    for p in Probe::ALL {
        let _ = writeln!(s, "{:<12} {}", p.name(), p.describe());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
