//! Hardware and status on systems other than Linux, through sysinfo only. The only file with this
//! `#[cfg]`. Windows (WMI, registry) and macOS (IOKit) backends replace it later.
#![cfg(not(target_os = "linux"))]

use sysinfo::{CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};
use tether_proto::inventory::{
    Cpu, Dmi, Fact, FsUsage, Hardware, Memory, ModuleListing, Status, SystemFacts,
};

use super::Roots;

fn sys() -> Option<System> {
    System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::everything()),
    )
    .ok()
}

pub(super) fn hardware(_roots: &Roots) -> Hardware {
    let s = sys();
    let threads = s.as_ref().map_or(1, |s| s.cpus().len() as u32).max(1);
    Hardware {
        system: SystemFacts {
            hostname: System::host_name().unwrap_or_default(),
            os_name: System::name().unwrap_or_default(),
            os_version: System::os_version().unwrap_or_default(),
            kernel: System::kernel_version().unwrap_or_default(),
            arch: System::cpu_arch(),
        },
        cpu: Cpu {
            model: s
                .as_ref()
                .and_then(|s| s.cpus().first().map(|c| c.brand().to_string()))
                .unwrap_or_default(),
            vendor: s
                .as_ref()
                .and_then(|s| s.cpus().first().map(|c| c.vendor_id().to_string()))
                .unwrap_or_default(),
            sockets: 1,
            cores: System::physical_core_count()
                .ok()
                .map_or(threads, |n| n as u32),
            threads,
            max_mhz: None,
            current_mhz: None,
        },
        memory: Memory {
            total: s.as_ref().map_or(0, System::total_memory),
            swap_total: s.as_ref().map_or(0, System::total_swap),
            modules: ModuleListing::Unavailable,
        },
        disks: Vec::new(),
        interfaces: Vec::new(),
        gpus: Vec::new(),
        displays: Vec::new(),
        batteries: Vec::new(),
        dmi: Dmi {
            system_vendor: Fact::Unavailable,
            system_model: Fact::Unavailable,
            system_serial: Fact::Unavailable,
            system_uuid: Fact::Unavailable,
            bios_vendor: Fact::Unavailable,
            bios_version: Fact::Unavailable,
            bios_date: Fact::Unavailable,
            board_vendor: Fact::Unavailable,
            board_model: Fact::Unavailable,
            board_serial: Fact::Unavailable,
        },
    }
}

pub(super) fn status(_roots: &Roots, now_unix: u64) -> Status {
    let s = sys();
    let uptime_secs = System::uptime();
    let filesystems =
        Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
            .map(|disks| {
                (&disks)
                    .into_iter()
                    .map(|d| FsUsage {
                        mount_point: d.mount_point().to_string_lossy().into_owned(),
                        device: d.name().to_string_lossy().into_owned(),
                        filesystem: d.file_system().to_string_lossy().into_owned(),
                        total: d.total_space(),
                        available: d.available_space(),
                    })
                    .collect()
            })
            .unwrap_or_default();
    Status {
        uptime_secs,
        boot_unix: now_unix.saturating_sub(uptime_secs),
        users: Vec::new(),
        memory_available: s.as_ref().map_or(0, System::available_memory),
        swap_free: s.as_ref().map_or(0, System::free_swap),
        filesystems,
        battery_percent: Vec::new(),
    }
}
