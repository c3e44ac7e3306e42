//! The base inventory the `inventory_apply` target and the seeds share: a small Debian desktop.

use tether_proto::inventory::{
    Cpu, Dmi, Fact, Hardware, Inventory, Memory, ModuleListing, Package, PackageSource, Software,
    SourceState, Status, SystemFacts,
};

/// 40 packages from two sources, normalised as the agent sends them.
pub fn fixed_base() -> Inventory {
    let mut inv = fixed_unsorted();
    tether_proto::inventory::normalise_packages(&mut inv.software.packages);
    inv
}

fn fixed_unsorted() -> Inventory {
    let u = || Fact::Unavailable;
    Inventory {
        collected_unix: 1,
        hardware: Hardware {
            system: SystemFacts {
                hostname: "desk-17".into(),
                os_name: "Debian GNU/Linux".into(),
                os_version: "12 (bookworm)".into(),
                kernel: "6.1.0-18-amd64".into(),
                arch: "x86_64".into(),
            },
            cpu: Cpu {
                model: "AMD EPYC".into(),
                vendor: "AuthenticAMD".into(),
                sockets: 1,
                cores: 8,
                threads: 16,
                max_mhz: Some(3000),
                current_mhz: Some(2200),
            },
            memory: Memory {
                total: 32 << 30,
                swap_total: 0,
                modules: ModuleListing::NeedsRoot,
            },
            disks: vec![],
            interfaces: vec![],
            gpus: vec![],
            displays: vec![],
            batteries: vec![],
            dmi: Dmi {
                system_vendor: u(),
                system_model: u(),
                system_serial: Fact::NeedsRoot,
                system_uuid: Fact::NeedsRoot,
                bios_vendor: u(),
                bios_version: u(),
                bios_date: u(),
                board_vendor: u(),
                board_model: u(),
                board_serial: Fact::NeedsRoot,
            },
        },
        status: Status {
            uptime_secs: 100,
            boot_unix: 0,
            users: vec![],
            memory_available: 1 << 30,
            swap_free: 0,
            filesystems: vec![],
            battery_percent: vec![],
        },
        software: Software {
            sources: vec![(PackageSource::Dpkg, SourceState::Read)],
            packages: (0..40)
                .map(|i| Package {
                    source: if i % 5 == 0 {
                        PackageSource::Flatpak
                    } else {
                        PackageSource::Dpkg
                    },
                    name: format!("package-{i:02}"),
                    arch: "amd64".into(),
                    version: format!("1.{i}-1"),
                })
                .collect(),
        },
    }
}
