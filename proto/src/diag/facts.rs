//! What a probe found: its [`Verdict`], and the typed facts of each probe ([`DiagFacts`]), as the
//! agent sends them in [`DiagReport`].

use serde::{Deserialize, Serialize};
use std::fmt;

use super::Probe;

/// How a probe judged what it found, or why it could not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Verdict {
    /// Nothing wrong found.
    Ok,
    /// Worth a look.
    Warning,
    /// Something is wrong.
    Problem,
    /// The probe cannot run here (no systemd, no journal, no smartctl, ...). Not a fault of the machine.
    NotAvailable,
    /// The probe did not finish within its timeout and was cut off.
    TimedOut,
    /// The probe itself failed (the reason says why).
    Failed,
}

impl Verdict {
    /// Sort key for summaries: problems first, then failures, warnings, not available, ok.
    pub fn rank(self) -> u8 {
        match self {
            Verdict::Problem => 0,
            Verdict::TimedOut => 1,
            Verdict::Failed => 2,
            Verdict::Warning => 3,
            Verdict::NotAvailable => 4,
            Verdict::Ok => 5,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Problem => "problem",
            Verdict::NotAvailable => "n/a",
            Verdict::TimedOut => "timed out",
            Verdict::Failed => "failed",
        })
    }
}

/// A probe's result: facts plus a verdict with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DiagReport {
    /// Which probe ran, with its parameters.
    pub probe: Probe,
    /// The judgement.
    pub verdict: Verdict,
    /// Why, in one line for the technician.
    pub reason: String,
    /// What was measured ([`DiagFacts::None`] when the probe could not run).
    pub facts: DiagFacts,
    /// How long the probe ran, in milliseconds.
    pub elapsed_ms: u64,
}

/// The measured facts, per probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum DiagFacts {
    /// Nothing measured: the probe was not available, timed out or failed.
    None,
    /// Facts from `uptime`.
    Uptime {
        /// Seconds since boot.
        uptime_secs: u64,
        /// Load averages over 1, 5 and 15 minutes.
        #[cfg_attr(test, proptest(strategy = "proptest::array::uniform3(0.0..512.0f64)"))]
        load: [f64; 3],
        /// Logical CPUs, to read the load against.
        logical_cpus: u32,
    },
    /// Facts from `pressure`.
    Pressure(PressureFacts),
    /// Facts from `top-processes`.
    TopProcesses {
        /// Highest CPU first.
        by_cpu: Vec<ProcessInfo>,
        /// Largest resident memory first.
        by_memory: Vec<ProcessInfo>,
    },
    /// Facts from `disk-usage`.
    DiskUsage {
        /// One entry per mounted filesystem.
        filesystems: Vec<FilesystemUsage>,
    },
    /// Facts from `inodes`.
    Inodes {
        /// One entry per mounted filesystem that has inodes.
        filesystems: Vec<InodeUsage>,
    },
    /// Facts from `smart`.
    Smart {
        /// One entry per disk smartctl found.
        devices: Vec<SmartDevice>,
    },
    /// Facts from `interfaces`.
    Interfaces {
        /// Every interface.
        interfaces: Vec<InterfaceInfo>,
    },
    /// Facts from `default-route`.
    DefaultRoute(RouteFacts),
    /// Facts from `dns`.
    Dns {
        /// The name asked for.
        name: String,
        /// What it resolved to (empty: it did not).
        addresses: Vec<String>,
        /// Name servers from /etc/resolv.conf.
        nameservers: Vec<String>,
        /// The resolver's error, when it failed.
        error: Option<String>,
    },
    /// Facts from `tcp-connect`.
    TcpConnect(ConnectFacts),
    /// Facts from `http`.
    Http(HttpFacts),
    /// Facts from `listening-ports`.
    ListeningPorts {
        /// Every listening TCP socket.
        sockets: Vec<ListeningSocket>,
    },
    /// Facts from `failed-units`.
    FailedUnits {
        /// Units in the failed state.
        units: Vec<UnitState>,
    },
    /// Facts from `unit-status`.
    UnitStatus(UnitState),
    /// Facts from `journal-errors` and `kernel-messages`.
    Log {
        /// Matching lines, oldest first.
        lines: Vec<String>,
        /// OOM kills among them (kernel messages only).
        oom_kills: u32,
        /// Disk errors among them (kernel messages only).
        disk_errors: u32,
    },
    /// Facts from `pending-updates`.
    PendingUpdates {
        /// The package manager asked.
        manager: String,
        /// Upgradable packages.
        packages: Vec<PendingPackage>,
        /// Hours since the package lists were refreshed, when known.
        lists_age_hours: Option<u64>,
    },
}

/// CPU and memory pressure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PressureFacts {
    /// CPU busy over the sample window, 0–100, without the agent's own work (the probes of a
    /// health check run at the same time and would otherwise count as load).
    #[cfg_attr(test, proptest(strategy = "0.0..=100.0f64"))]
    pub cpu_percent: f64,
    /// How long the CPU was sampled, in milliseconds.
    pub cpu_window_ms: u32,
    /// Whether the agent's own work could be left out (Linux `/proc`); else it is included.
    pub cpu_excludes_agent: bool,
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Available memory in bytes.
    pub memory_available: u64,
    /// Swap size in bytes.
    pub swap_total: u64,
    /// Swap used in bytes.
    pub swap_used: u64,
    /// /proc/pressure/cpu "some avg10", when the kernel has PSI.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..=100.0f64)"))]
    pub psi_cpu_some10: Option<f64>,
    /// /proc/pressure/memory "full avg10", when the kernel has PSI.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..=100.0f64)"))]
    pub psi_memory_full10: Option<f64>,
}

/// One process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Executable name.
    pub name: String,
    /// CPU use over the sample, in percent of one CPU.
    #[cfg_attr(test, proptest(strategy = "0.0..=800.0f64"))]
    pub cpu_percent: f64,
    /// Resident memory in bytes.
    pub memory: u64,
}

/// Space used on one filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FilesystemUsage {
    /// Mount point.
    pub mount_point: String,
    /// Filesystem type.
    pub filesystem: String,
    /// Size in bytes.
    pub total: u64,
    /// Bytes available to unprivileged users.
    pub available: u64,
    /// Percent used (0–100), as `df` counts it.
    #[cfg_attr(test, proptest(strategy = "0.0..=100.0f64"))]
    pub used_percent: f64,
}

/// Inodes used on one filesystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InodeUsage {
    /// Mount point.
    pub mount_point: String,
    /// Filesystem type.
    pub filesystem: String,
    /// Inodes in total.
    pub total: u64,
    /// Free inodes.
    pub free: u64,
    /// Percent used (0–100).
    #[cfg_attr(test, proptest(strategy = "0.0..=100.0f64"))]
    pub used_percent: f64,
}

/// One disk's SMART health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SmartDevice {
    /// Device path, e.g. /dev/sda.
    pub device: String,
    /// The overall-health result: `Some(true)` passed, `Some(false)` failed, `None` not reported.
    pub passed: Option<bool>,
    /// The line smartctl printed about it.
    pub detail: String,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InterfaceInfo {
    /// Interface name.
    pub name: String,
    /// Kernel operational state (up, down, unknown, ...).
    pub state: String,
    /// MAC address, empty when none.
    pub mac: String,
    /// Addresses with prefix length, e.g. 192.0.2.2/24.
    pub addresses: Vec<String>,
}

/// The default route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RouteFacts {
    /// IPv4 gateway of the default route, if there is one.
    pub gateway: Option<String>,
    /// Interface of the default route.
    pub interface: Option<String>,
    /// Whether the gateway answered, when it was checked.
    pub reachable: Option<bool>,
    /// How reachability was checked (ping, neighbour table).
    pub method: String,
    /// Round-trip time when ping answered.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..1000.0f64)"))]
    pub rtt_ms: Option<f64>,
}

/// A TCP connection attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ConnectFacts {
    /// Host asked for.
    pub host: String,
    /// Port asked for.
    pub port: u16,
    /// Addresses tried, in order.
    pub tried: Vec<String>,
    /// The address that accepted, if any.
    pub connected_to: Option<String>,
    /// Time to connect (or to fail), in milliseconds.
    #[cfg_attr(test, proptest(strategy = "0.0..100000.0f64"))]
    pub connect_ms: f64,
    /// The last error, when it failed.
    pub error: Option<String>,
}

/// An HTTP(S) request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct HttpFacts {
    /// The URL.
    pub url: String,
    /// The status code, if a response arrived.
    pub status: Option<u16>,
    /// The status line as received.
    pub status_line: Option<String>,
    /// The Server header, if any.
    pub server: Option<String>,
    /// The Location header of a redirect, if any.
    pub location: Option<String>,
    /// Time to connect (TCP, plus TLS for https), in milliseconds.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..100000.0f64)"))]
    pub connect_ms: Option<f64>,
    /// Time until the response headers were read, in milliseconds.
    #[cfg_attr(test, proptest(strategy = "proptest::option::of(0.0..100000.0f64)"))]
    pub total_ms: Option<f64>,
    /// What went wrong, when no response arrived.
    pub error: Option<String>,
}

/// A listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ListeningSocket {
    /// `tcp` or `tcp6`.
    pub protocol: String,
    /// Local address.
    pub address: String,
    /// Local port.
    pub port: u16,
    /// Owning user id.
    pub uid: u32,
}

/// A systemd unit's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct UnitState {
    /// Unit name.
    pub name: String,
    /// LoadState (loaded, not-found, masked, ...), when known.
    pub load_state: Option<String>,
    /// ActiveState (active, failed, inactive, ...), when known.
    pub active_state: Option<String>,
    /// SubState (running, dead, ...), when known.
    pub sub_state: Option<String>,
    /// Description, when known.
    pub description: Option<String>,
    /// The unit file found on disk, when systemd itself could not be asked.
    pub unit_file: Option<String>,
}

/// One upgradable package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PendingPackage {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub current: String,
    /// Version available.
    pub available: String,
    /// Whether it comes from a security archive.
    pub security: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_rank_puts_problems_first() {
        let mut v = [
            Verdict::Ok,
            Verdict::NotAvailable,
            Verdict::Warning,
            Verdict::Failed,
            Verdict::Problem,
            Verdict::TimedOut,
        ];
        v.sort_by_key(|v| v.rank());
        assert_eq!(v[0], Verdict::Problem);
        assert_eq!(v[5], Verdict::Ok);
    }
}
