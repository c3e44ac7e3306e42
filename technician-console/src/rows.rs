//! The one projection of an [`Inventory`] into rows of text: the console window's tables, the
//! software sheet of the CSV export and the command line's network lines all take their cells
//! from here, so the three never disagree on what a package or an interface's addresses are.
//!
//! Cells are the machine's own strings: whoever shows them makes them harmless
//! (`tether_proto::text::display_safe`), as the window and the CLI do.

use tether_proto::inventory::{Interface, Inventory, Package};

use crate::units;

/// Which inventory table is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Installed packages.
    Software,
    /// Disks and their partitions.
    Disks,
    /// Network interfaces.
    Network,
    /// Mounted file systems and their use.
    Filesystems,
    /// One row per hardware fact (system, CPU, memory, GPUs, ...).
    Hardware,
}

impl Table {
    /// Every table, in the order of the picker.
    pub const ALL: [Table; 5] = [
        Table::Software,
        Table::Disks,
        Table::Network,
        Table::Filesystems,
        Table::Hardware,
    ];

    /// Its name in the picker and in journal lines.
    pub fn name(self) -> &'static str {
        match self {
            Table::Software => "software",
            Table::Disks => "disks",
            Table::Network => "network",
            Table::Filesystems => "filesystems",
            Table::Hardware => "hardware",
        }
    }

    /// Column headings.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Software => &["name", "version", "arch", "source"],
            Table::Disks => &["name", "size", "kind / fs", "model / mounts"],
            Table::Network => &["name", "state", "MAC", "addresses"],
            Table::Filesystems => &["mount", "used", "size", "device / fs"],
            Table::Hardware => &["item", "value"],
        }
    }

    /// Each column's share of the table width.
    pub fn widths(self) -> &'static [f32] {
        match self {
            Table::Software => &[0.4, 0.3, 0.1, 0.2],
            Table::Disks | Table::Network | Table::Filesystems => &[0.22, 0.16, 0.22, 0.4],
            Table::Hardware => &[0.25, 0.75],
        }
    }

    /// The table's rows from an inventory, as text.
    pub fn rows(self, inv: &Inventory) -> Vec<Vec<String>> {
        let h = &inv.hardware;
        match self {
            Table::Software => inv
                .software
                .packages
                .iter()
                .map(|p| package(p).map(str::to_string).to_vec())
                .collect(),
            Table::Disks => {
                let mut rows = Vec::new();
                for d in &h.disks {
                    rows.push(vec![
                        d.name.clone(),
                        units::bytes(d.size),
                        format!(
                            "{:?}{}",
                            d.kind,
                            if d.removable { ", removable" } else { "" }
                        )
                        .to_lowercase(),
                        d.model.to_string(),
                    ]);
                    for p in &d.partitions {
                        rows.push(vec![
                            format!("  {}", p.name),
                            units::bytes(p.size),
                            p.filesystem.clone().unwrap_or_else(|| "-".into()),
                            p.mount_points.join(" "),
                        ]);
                    }
                }
                rows
            }
            Table::Network => h
                .interfaces
                .iter()
                .map(|i| {
                    let speed = i
                        .speed_mbps
                        .map(|s| format!(" {s} Mbit/s"))
                        .unwrap_or_default();
                    vec![
                        i.name.clone(),
                        format!("{}{speed}", i.oper_state),
                        if i.mac.is_empty() {
                            "-".into()
                        } else {
                            i.mac.clone()
                        },
                        addresses(i).join(" "),
                    ]
                })
                .collect(),
            Table::Filesystems => inv
                .status
                .filesystems
                .iter()
                .map(|f| {
                    let used = f.total.saturating_sub(f.available);
                    let pct = if f.total == 0 {
                        0.0
                    } else {
                        used as f64 * 100.0 / f.total as f64
                    };
                    vec![
                        f.mount_point.clone(),
                        format!("{pct:.0} %"),
                        units::bytes(f.total),
                        format!("{} ({})", f.device, f.filesystem),
                    ]
                })
                .collect(),
            Table::Hardware => {
                let s = &h.system;
                let mut rows = vec![
                    vec!["host".into(), s.hostname.clone()],
                    vec![
                        "os".into(),
                        format!("{} {} ({})", s.os_name, s.os_version, s.arch),
                    ],
                    vec!["kernel".into(), s.kernel.clone()],
                    vec![
                        "cpu".into(),
                        format!(
                            "{} ({} cores, {} threads)",
                            h.cpu.model, h.cpu.cores, h.cpu.threads
                        ),
                    ],
                    vec!["memory".into(), units::bytes(h.memory.total)],
                    vec!["uptime".into(), format!("{} s", inv.status.uptime_secs)],
                    vec!["users".into(), inv.status.users.join(", ")],
                    vec!["system vendor".into(), h.dmi.system_vendor.to_string()],
                    vec!["system model".into(), h.dmi.system_model.to_string()],
                    vec!["system serial".into(), h.dmi.system_serial.to_string()],
                    vec![
                        "bios".into(),
                        format!("{} {}", h.dmi.bios_vendor, h.dmi.bios_version),
                    ],
                ];
                rows.extend(h.gpus.iter().map(|g| vec!["gpu".into(), g.name.clone()]));
                rows.extend(
                    h.displays
                        .iter()
                        .map(|d| vec!["display".into(), format!("{} {}", d.connector, d.mode)]),
                );
                rows.extend(
                    h.batteries
                        .iter()
                        .map(|b| vec!["battery".into(), format!("{} {}", b.name, b.model)]),
                );
                rows
            }
        }
    }
}

/// One package's cells: name, version, architecture, source.
pub fn package(p: &Package) -> [&str; 4] {
    [&p.name, &p.version, &p.arch, p.source.name()]
}

/// An interface's addresses, IPv4 first, as the agent reported them (with prefix lengths).
pub fn addresses(i: &Interface) -> Vec<String> {
    i.ipv4.iter().chain(i.ipv6.iter()).cloned().collect()
}
