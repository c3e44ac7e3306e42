//! Inventory: a summary of this machine (OS, CPU, memory, disks, network interfaces),
//! gathered from the OS through `sysinfo` for the `inventory` scope.
//!
//! Only the parts of `sysinfo` that the summary needs are refreshed, so collecting takes
//! a few milliseconds. Anything the OS does not report becomes an empty string, `None`
//! or an empty list; collecting never panics.

use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System,
};
use tether_proto::inventory::{DiskSummary, InterfaceSummary, InventorySummary};

/// Collects the inventory summary of this machine.
pub fn collect_summary() -> InventorySummary {
    let hardware = Hardware::collect();
    InventorySummary {
        hostname: or_empty("host name", System::host_name()),
        os_name: or_empty("OS name", System::name()),
        os_version: or_empty("OS version", System::os_version()),
        kernel: or_empty("kernel version", System::kernel_version()),
        arch: System::cpu_arch(),
        cpu_model: hardware.cpu_model,
        physical_cores: System::physical_core_count()
            .ok()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0),
        logical_cpus: hardware.logical_cpus,
        memory_total: hardware.memory_total,
        memory_available: hardware.memory_available,
        disks: collect_disks(),
        interfaces: collect_interfaces(),
    }
}

/// The number of logical CPUs (threads) the OS reports, at least 1.
///
/// Falls back to [`std::thread::available_parallelism`] when `sysinfo` lists no CPU.
pub(crate) fn logical_cpu_count() -> u32 {
    match System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing())) {
        Ok(system) => cpu_count_or_fallback(system.cpus().len()),
        Err(error) => {
            tracing::debug!(%error, "cannot read the CPU list");
            cpu_count_or_fallback(0)
        }
    }
}

/// CPU and memory facts, read with one minimal `sysinfo` refresh.
struct Hardware {
    cpu_model: String,
    logical_cpus: u32,
    memory_total: u64,
    memory_available: u64,
}

impl Hardware {
    fn collect() -> Self {
        let refresh = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram());
        match System::new_with_specifics(refresh) {
            Ok(system) => Hardware {
                cpu_model: system
                    .cpus()
                    .first()
                    .map(|cpu| cpu.brand().trim().to_string())
                    .unwrap_or_default(),
                logical_cpus: cpu_count_or_fallback(system.cpus().len()),
                memory_total: system.total_memory(),
                // Some platforms report more available than total in odd corners; clamp.
                memory_available: system.available_memory().min(system.total_memory()),
            },
            Err(error) => {
                tracing::debug!(%error, "cannot read CPU and memory information");
                Hardware {
                    cpu_model: String::new(),
                    logical_cpus: cpu_count_or_fallback(0),
                    memory_total: 0,
                    memory_available: 0,
                }
            }
        }
    }
}

/// `listed` as a `u32`, or the standard library's idea of the CPU count when it is 0.
fn cpu_count_or_fallback(listed: usize) -> u32 {
    let count = if listed > 0 {
        listed
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    };
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// The value, or an empty string (logged at debug level) when the OS did not say.
fn or_empty(what: &str, value: Result<String, sysinfo::Error>) -> String {
    match value {
        Ok(value) => value.trim().to_string(),
        Err(error) => {
            tracing::debug!(%error, "cannot read the {what}");
            String::new()
        }
    }
}

fn collect_disks() -> Vec<DiskSummary> {
    let disks =
        match Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage()) {
            Ok(disks) => disks,
            Err(error) => {
                tracing::debug!(%error, "cannot list disks");
                return Vec::new();
            }
        };
    (&disks)
        .into_iter()
        .map(|disk| DiskSummary {
            name: disk.name().to_string_lossy().into_owned(),
            mount_point: disk.mount_point().to_string_lossy().into_owned(),
            filesystem: disk.file_system().to_string_lossy().into_owned(),
            total: disk.total_space(),
            available: disk.available_space(),
        })
        .collect()
}

fn collect_interfaces() -> Vec<InterfaceSummary> {
    let networks = match Networks::new_with_refreshed_list() {
        Ok(networks) => networks,
        Err(error) => {
            tracing::debug!(%error, "cannot list network interfaces");
            return Vec::new();
        }
    };
    let mut interfaces: Vec<InterfaceSummary> = (&networks)
        .into_iter()
        .map(|(name, data)| {
            let mac = data.mac_address();
            InterfaceSummary {
                name: name.to_string_lossy().into_owned(),
                // An all-zero MAC means the interface has none (loopback, tunnels).
                mac: if mac.is_unspecified() {
                    String::new()
                } else {
                    mac.to_string()
                },
                addresses: data.ip_networks().iter().map(ToString::to_string).collect(),
            }
        })
        .collect();
    // `sysinfo` keeps interfaces in a hash map; give the technician a stable order.
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    interfaces
}

#[cfg(test)]
// Panicking on unexpected OS data is what a test should do.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn hostname_matches_the_kernel() {
        let expected = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(collect_summary().hostname, expected.trim());
    }

    #[test]
    fn logical_cpus_match_the_os() {
        let summary = collect_summary();
        let parallelism = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap();
        let mut accepted = vec![parallelism];
        if let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") {
            accepted.push(
                cpuinfo
                    .lines()
                    .filter(|line| line.starts_with("processor"))
                    .count(),
            );
        }
        let logical = usize::try_from(summary.logical_cpus).unwrap();
        assert!(
            accepted.contains(&logical),
            "logical_cpus {logical}, expected one of {accepted:?}"
        );
        assert_eq!(logical_cpu_count(), summary.logical_cpus);
        if let Some(physical) = summary.physical_cores {
            assert!(physical <= summary.logical_cpus);
        }
    }

    #[test]
    fn memory_is_plausible() {
        let summary = collect_summary();
        assert!(summary.memory_total > 0);
        assert!(summary.memory_available <= summary.memory_total);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn memory_total_matches_meminfo() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib: u64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        let total = collect_summary().memory_total;
        // sysinfo may apply a cgroup limit, which can only lower the figure.
        assert!(total <= kib * 1024, "{total} > {}", kib * 1024);
    }

    #[test]
    fn os_fields_are_filled() {
        let summary = collect_summary();
        assert_eq!(summary.arch, System::cpu_arch());
        assert!(!summary.arch.is_empty());
        #[cfg(target_os = "linux")]
        {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
            assert_eq!(summary.kernel, release.trim());
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn loopback_interface_is_listed() {
        let summary = collect_summary();
        let lo = summary
            .interfaces
            .iter()
            .find(|iface| iface.name == "lo")
            .unwrap_or_else(|| panic!("no lo in {:?}", summary.interfaces));
        assert_eq!(lo.mac, "", "loopback has no MAC");
        for address in &lo.addresses {
            let (ip, prefix) = address.split_once('/').unwrap();
            assert!(ip.parse::<std::net::IpAddr>().unwrap().is_loopback());
            assert!(prefix.parse::<u8>().is_ok());
        }
    }

    #[test]
    fn interfaces_are_sorted_and_macs_formatted() {
        let summary = collect_summary();
        let names: Vec<&str> = summary.interfaces.iter().map(|i| i.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for iface in &summary.interfaces {
            if iface.mac.is_empty() {
                continue;
            }
            let parts: Vec<&str> = iface.mac.split(':').collect();
            assert_eq!(parts.len(), 6, "{}", iface.mac);
            assert!(parts.iter().all(|p| {
                p.len() == 2
                    && p.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            }));
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn root_filesystem_is_listed() {
        let summary = collect_summary();
        let root = summary
            .disks
            .iter()
            .find(|disk| disk.mount_point == "/")
            .unwrap_or_else(|| panic!("no / in {:?}", summary.disks));
        assert!(root.total > 0);
        assert!(root.available <= root.total);
    }

    #[test]
    fn cpu_count_fallback_is_never_zero() {
        assert_eq!(cpu_count_or_fallback(3), 3);
        assert!(cpu_count_or_fallback(0) >= 1);
    }
}
