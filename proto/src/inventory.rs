//! The inventory summary the agent returns under the `inventory` scope.

use serde::{Deserialize, Serialize};

/// A summary of this machine, collected from the OS by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InventorySummary {
    /// Host name.
    pub hostname: String,
    /// OS name, e.g. "Debian GNU/Linux".
    pub os_name: String,
    /// OS version, e.g. "12".
    pub os_version: String,
    /// Kernel version.
    pub kernel: String,
    /// CPU architecture, e.g. "x86_64".
    pub arch: String,
    /// CPU model string.
    pub cpu_model: String,
    /// Physical cores, where the OS says.
    pub physical_cores: Option<u32>,
    /// Logical CPUs (threads).
    pub logical_cpus: u32,
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Available memory in bytes.
    pub memory_available: u64,
    /// Mounted disks.
    pub disks: Vec<DiskSummary>,
    /// Network interfaces.
    pub interfaces: Vec<InterfaceSummary>,
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DiskSummary {
    /// Device name.
    pub name: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// Filesystem type.
    pub filesystem: String,
    /// Size in bytes.
    pub total: u64,
    /// Free bytes.
    pub available: u64,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InterfaceSummary {
    /// Interface name.
    pub name: String,
    /// MAC address, `aa:bb:...`.
    pub mac: String,
    /// Addresses with prefix length, e.g. `192.0.2.4/24`.
    pub addresses: Vec<String>,
}
