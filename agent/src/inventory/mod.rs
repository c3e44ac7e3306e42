//! The full inventory of this machine: hardware from the OS, software from every package source.
//!
//! # Layout
//! - `linux`: hardware and status from /proc, /sys, /etc/os-release and utmp (the only Linux `#[cfg]`).
//! - `other`: the portable fallback through sysinfo for every other OS.
//! - [`software`]: the [`software::SoftwareSource`] trait and its dpkg, rpm, flatpak and snap backends.
//!
//! Collection reads files synchronously and takes milliseconds (see BENCHMARKS.md); callers in async
//! code run it on a blocking thread. Nothing here panics on odd OS data: a value the OS does not give
//! becomes empty, `None`, [`tether_proto::inventory::Fact::Unavailable`] or `NeedsRoot`.

use std::path::PathBuf;

use tether_proto::inventory::{Hardware, Inventory, Software, Status};

mod linux;
mod other;
pub mod software;

#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
use other as platform;

/// Where the OS facts are read from. The defaults are the real paths; tests point them elsewhere.
#[derive(Debug, Clone)]
pub struct Roots {
    /// procfs, normally `/proc`.
    pub proc: PathBuf,
    /// sysfs, normally `/sys`.
    pub sys: PathBuf,
    /// `/etc/os-release`.
    pub os_release: PathBuf,
    /// The utmp file, normally `/var/run/utmp`.
    pub utmp: PathBuf,
    /// The udev database, normally `/run/udev/data`.
    pub udev_data: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc: "/proc".into(),
            sys: "/sys".into(),
            os_release: "/etc/os-release".into(),
            utmp: "/var/run/utmp".into(),
            udev_data: "/run/udev/data".into(),
        }
    }
}

/// What to collect from where.
#[derive(Debug, Clone, Default)]
pub struct Collector {
    /// OS paths.
    pub roots: Roots,
    /// Software sources and their paths.
    pub software: software::SoftwareConfig,
}

impl Collector {
    /// Hardware facts.
    pub fn hardware(&self) -> Hardware {
        platform::hardware(&self.roots)
    }

    /// Fast-changing figures.
    pub fn status(&self) -> Status {
        platform::status(&self.roots, now_unix())
    }

    /// Installed software from every configured source.
    pub fn software(&self) -> Software {
        software::collect(&self.software.sources())
    }

    /// The whole inventory.
    pub fn collect(&self) -> Inventory {
        Inventory {
            collected_unix: now_unix(),
            hardware: self.hardware(),
            status: self.status(),
            software: self.software(),
        }
    }
}

/// Collects the full inventory of this machine from the real OS sources.
pub fn collect() -> Inventory {
    Collector::default().collect()
}

/// The number of logical CPUs (threads) the OS reports, at least 1.
pub(crate) fn logical_cpu_count() -> u32 {
    let n = Collector::default().hardware().cpu.threads;
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
    }
}

pub(crate) use tether_net::clock::now_unix;

#[cfg(test)]
mod tests;
