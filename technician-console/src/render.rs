//! Human-readable output for the command line.

use std::fmt::Write;

use tether_proto::diag::{DiagFacts, DiagReport, Probe};
use tether_proto::inventory::{Inventory, ModuleListing, SourceState};

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

/// The full inventory as aligned text.
pub fn inventory(i: &Inventory) -> String {
    let mut s = String::new();
    let (h, st) = (&i.hardware, &i.status);
    let sys = &h.system;
    let _ = writeln!(s, "host      {}", sys.hostname);
    let _ = writeln!(
        s,
        "os        {} {} (kernel {}, {})",
        sys.os_name, sys.os_version, sys.kernel, sys.arch
    );
    let _ = writeln!(
        s,
        "uptime    {} s (booted {} UTC); users: {}",
        st.uptime_secs,
        crate::fleet::utc(st.boot_unix),
        if st.users.is_empty() {
            "-".to_string()
        } else {
            st.users.join(", ")
        }
    );
    let mhz = h
        .cpu
        .max_mhz
        .map(|m| format!(", {m} MHz"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "cpu       {} [{}] ({} socket(s), {} cores, {} threads{mhz})",
        h.cpu.model, h.cpu.vendor, h.cpu.sockets, h.cpu.cores, h.cpu.threads
    );
    let _ = writeln!(
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
                let _ = writeln!(
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
            let _ = writeln!(s, "  modules (needs root)");
        }
        ModuleListing::Unavailable => {
            let _ = writeln!(s, "  modules -");
        }
    }
    let d = &h.dmi;
    let _ = writeln!(
        s,
        "system    {} {} serial {} uuid {}",
        d.system_vendor, d.system_model, d.system_serial, d.system_uuid
    );
    let _ = writeln!(
        s,
        "bios      {} {} {}; board {} {} serial {}",
        d.bios_vendor, d.bios_version, d.bios_date, d.board_vendor, d.board_model, d.board_serial
    );
    let _ = writeln!(s, "\ndisks");
    for disk in &h.disks {
        let _ = writeln!(
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
            let _ = writeln!(
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
    let _ = writeln!(
        s,
        "  {:<24} {:<20} {:<8} {:>10} {:>10}",
        "mount", "device", "fs", "size", "free"
    );
    for f in &st.filesystems {
        let _ = writeln!(
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
        let _ = writeln!(
            s,
            "  {:<10} {:<18} {:<5} {:<8} {}",
            n.name,
            mac,
            if n.up { "up" } else { "down" },
            speed,
            n.ipv4
                .iter()
                .chain(&n.ipv6)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !h.gpus.is_empty() || !h.displays.is_empty() {
        let _ = writeln!(s, "\ngraphics");
        for g in &h.gpus {
            let _ = writeln!(s, "  {:<8} {} {} ({})", g.name, g.vendor, g.model, g.driver);
        }
        for d in &h.displays {
            let _ = writeln!(s, "  display {} {}", d.connector, d.mode);
        }
    }
    for (b, pct) in h.batteries.iter().zip(&st.battery_percent) {
        let health = b
            .health_percent
            .map(|v| format!("{v}%"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "battery   {} {} {}: {pct}% charged, health {health}",
            b.name, b.manufacturer, b.model
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
        let _ = writeln!(s, "  {:<8} {what}", src.name());
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
