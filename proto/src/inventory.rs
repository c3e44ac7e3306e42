//! The full inventory of one machine, and deltas between two inventories.
//!
//! # Shape
//! An [`Inventory`] has three parts, split by how often they change:
//! - [`Hardware`]: facts that change only when the machine changes (OS upgrade, RAM added, NIC added).
//!   A delta carries it only when it changed.
//! - [`Status`]: figures that change all the time (uptime, free memory, free disk, battery charge,
//!   who is logged in). Every delta carries it; it is small.
//! - [`Software`]: installed packages from every [`PackageSource`], sorted, plus what each source said
//!   about itself. A delta carries only the packages that appeared, changed or went away.
//!
//! A fact the OS hides from an unprivileged process is a [`Fact::NeedsRoot`], and one this machine
//! does not have is [`Fact::Unavailable`]: fields never silently vanish.
//!
//! # Deltas
//! `new.delta_from(&base)` gives an [`InventoryDelta`]; `base.apply(&delta)` gives `new` back exactly.
//! [`Inventory::digest`] is a SHA-256 over the canonical encoding, so a receiver that applies a delta
//! to the wrong base (or to a tampered delta) notices: its digest will not match the sender's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec;

/// A fact that may be hidden or absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Fact {
    /// The value.
    Value(String),
    /// The OS only shows this to root (e.g. DMI serial numbers on Linux).
    NeedsRoot,
    /// This machine does not expose it (no DMI tables in a VM or container, no such device, ...).
    Unavailable,
}

impl Fact {
    /// The value, if known.
    pub fn value(&self) -> Option<&str> {
        match self {
            Fact::Value(v) => Some(v),
            _ => None,
        }
    }
}

impl std::fmt::Display for Fact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fact::Value(v) => f.write_str(v),
            Fact::NeedsRoot => f.write_str("(needs root)"),
            Fact::Unavailable => f.write_str("-"),
        }
    }
}

/// Everything the agent knows about this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Inventory {
    /// When it was collected, seconds since the Unix epoch.
    pub collected_unix: u64,
    /// Slow-changing hardware and OS facts.
    pub hardware: Hardware,
    /// Fast-changing figures.
    pub status: Status,
    /// Installed software.
    pub software: Software,
}

/// Hardware and OS facts that change only when the machine changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Hardware {
    /// Host name, OS, kernel, architecture.
    pub system: SystemFacts,
    /// Processor.
    pub cpu: Cpu,
    /// Memory sizes and modules.
    pub memory: Memory,
    /// Block devices (disks) with their partitions.
    pub disks: Vec<Disk>,
    /// Network interfaces.
    pub interfaces: Vec<Interface>,
    /// Graphics adapters.
    pub gpus: Vec<Gpu>,
    /// Connected displays.
    pub displays: Vec<DisplayInfo>,
    /// Batteries (empty on a machine without one).
    pub batteries: Vec<Battery>,
    /// System, BIOS and board identity (DMI/SMBIOS).
    pub dmi: Dmi,
}

/// Host and OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SystemFacts {
    /// Host name.
    pub hostname: String,
    /// OS name, e.g. "Debian GNU/Linux".
    pub os_name: String,
    /// OS version, e.g. "12 (bookworm)".
    pub os_version: String,
    /// Kernel release.
    pub kernel: String,
    /// CPU architecture, e.g. "x86_64".
    pub arch: String,
}

/// The processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Cpu {
    /// Model string.
    pub model: String,
    /// Vendor, e.g. "GenuineIntel".
    pub vendor: String,
    /// Physical packages.
    pub sockets: u32,
    /// Physical cores over all sockets.
    pub cores: u32,
    /// Logical CPUs (threads) online.
    pub threads: u32,
    /// Highest frequency in MHz, where the OS says (`cpufreq`); `None`: unknown (e.g. in a VM).
    pub max_mhz: Option<u32>,
    /// The clock when the inventory was taken, in MHz (it moves with load and power saving).
    pub current_mhz: Option<u32>,
}

/// Memory sizes and modules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Memory {
    /// Total RAM in bytes.
    pub total: u64,
    /// Total swap in bytes.
    pub swap_total: u64,
    /// Memory modules: a list, or why there is none.
    pub modules: ModuleListing,
}

/// Memory modules, which the OS may hide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ModuleListing {
    /// The modules.
    Items(Vec<MemoryModule>),
    /// Only root may read the source.
    NeedsRoot,
    /// The machine does not expose it.
    Unavailable,
}

/// One memory module (SMBIOS type 17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct MemoryModule {
    /// Slot, e.g. "DIMM_A1".
    pub locator: String,
    /// Size in bytes.
    pub size: u64,
    /// Speed in MT/s, if known.
    pub speed_mts: Option<u32>,
    /// Manufacturer.
    pub manufacturer: String,
    /// Part number.
    pub part_number: String,
    /// Serial number.
    pub serial: String,
}

/// Kind of storage device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum DiskKind {
    /// NVMe solid state.
    Nvme,
    /// Non-rotational (SATA/SAS/virtio) solid state.
    Ssd,
    /// Rotational.
    Hdd,
    /// RAM-backed, e.g. zram.
    Ram,
    /// Unknown.
    Unknown,
}

/// One block device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Disk {
    /// Kernel name, e.g. "nvme0n1".
    pub name: String,
    /// Model.
    pub model: Fact,
    /// Serial number.
    pub serial: Fact,
    /// Size in bytes.
    pub size: u64,
    /// Kind.
    pub kind: DiskKind,
    /// Removable media.
    pub removable: bool,
    /// Partitions.
    pub partitions: Vec<Partition>,
}

/// One partition (or a whole disk used without a partition table, listed under its own name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Partition {
    /// Kernel name, e.g. "nvme0n1p2".
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Filesystem type if mounted.
    pub filesystem: Option<String>,
    /// Where it is mounted.
    pub mount_points: Vec<String>,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Interface {
    /// Name, e.g. "eth0".
    pub name: String,
    /// MAC address `aa:bb:..`; empty when it has none (loopback, tunnels).
    pub mac: String,
    /// IPv4 addresses with prefix, e.g. "192.0.2.4/24".
    pub ipv4: Vec<String>,
    /// IPv6 addresses with prefix.
    pub ipv6: Vec<String>,
    /// Link speed in Mbit/s, where the driver says.
    pub speed_mbps: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operational state as the kernel says ("up", "down", "unknown", ...).
    pub oper_state: String,
}

/// A graphics adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Gpu {
    /// DRM card name or PCI slot.
    pub name: String,
    /// Vendor (name or PCI id).
    pub vendor: String,
    /// Model (name or PCI id).
    pub model: String,
    /// Kernel driver.
    pub driver: String,
}

/// A connected display output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DisplayInfo {
    /// Connector, e.g. "card0-HDMI-A-1".
    pub connector: String,
    /// Preferred mode, e.g. "1920x1080".
    pub mode: String,
}

/// A battery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Battery {
    /// Name, e.g. "BAT0".
    pub name: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Design capacity in µWh (or µAh), where known.
    pub design_capacity: Option<u64>,
    /// Health: full capacity now as a percentage of design capacity.
    pub health_percent: Option<u32>,
}

/// System, BIOS and board identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Dmi {
    /// System vendor.
    pub system_vendor: Fact,
    /// System model.
    pub system_model: Fact,
    /// System serial number (root only on Linux).
    pub system_serial: Fact,
    /// System UUID (root only on Linux).
    pub system_uuid: Fact,
    /// BIOS vendor.
    pub bios_vendor: Fact,
    /// BIOS version.
    pub bios_version: Fact,
    /// BIOS date.
    pub bios_date: Fact,
    /// Board vendor.
    pub board_vendor: Fact,
    /// Board model.
    pub board_model: Fact,
    /// Board serial number (root only on Linux).
    pub board_serial: Fact,
}

/// Figures that change all the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Status {
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// Boot time, seconds since the Unix epoch.
    pub boot_unix: u64,
    /// Users with a login session (unique, sorted).
    pub users: Vec<String>,
    /// Available memory in bytes.
    pub memory_available: u64,
    /// Free swap in bytes.
    pub swap_free: u64,
    /// Usage of each mounted filesystem backed by a block device.
    pub filesystems: Vec<FsUsage>,
    /// Charge of each battery, in the order of [`Hardware::batteries`].
    pub battery_percent: Vec<u32>,
}

/// Usage of one mounted filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FsUsage {
    /// Mount point.
    pub mount_point: String,
    /// Device, e.g. "/dev/vda".
    pub device: String,
    /// Filesystem type.
    pub filesystem: String,
    /// Size in bytes.
    pub total: u64,
    /// Bytes available to unprivileged users.
    pub available: u64,
}

/// Where a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PackageSource {
    /// Debian packages.
    Dpkg,
    /// RPM packages.
    Rpm,
    /// Flatpak applications and runtimes.
    Flatpak,
    /// Snaps.
    Snap,
    /// The Windows registry's uninstall list (future backend).
    WindowsRegistry,
    /// macOS application bundles (future backend).
    MacApps,
}

impl PackageSource {
    /// Lower-case name, as used on the command line and in exports.
    pub fn name(self) -> &'static str {
        match self {
            PackageSource::Dpkg => "dpkg",
            PackageSource::Rpm => "rpm",
            PackageSource::Flatpak => "flatpak",
            PackageSource::Snap => "snap",
            PackageSource::WindowsRegistry => "windows-registry",
            PackageSource::MacApps => "macos-apps",
        }
    }
}

impl std::fmt::Display for PackageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Package {
    /// Source (first, so sorting groups by source).
    pub source: PackageSource,
    /// Name.
    pub name: String,
    /// Architecture ("" when the source has none).
    pub arch: String,
    /// Version.
    pub version: String,
}

impl Package {
    /// What identifies a package across inventories: source, name and architecture.
    pub fn key(&self) -> PackageKey {
        PackageKey {
            source: self.source,
            name: self.name.clone(),
            arch: self.arch.clone(),
        }
    }
}

/// Identity of a package across inventories.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PackageKey {
    /// Source.
    pub source: PackageSource,
    /// Name.
    pub name: String,
    /// Architecture.
    pub arch: String,
}

/// What a software source said about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SourceState {
    /// It was read.
    Read,
    /// This system does not have it (no database, no tool).
    NotPresent,
    /// It exists but could not be read.
    Failed(String),
}

/// Installed software.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Software {
    /// Each source consulted and its state.
    pub sources: Vec<(PackageSource, SourceState)>,
    /// Packages, sorted by (source, name, arch, version) and unique by key.
    pub packages: Vec<Package>,
}

/// The difference between two inventories. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InventoryDelta {
    /// Collection time of the new inventory.
    pub collected_unix: u64,
    /// The new hardware, when it changed.
    pub hardware: Option<Hardware>,
    /// The new status (always sent: it always changes).
    pub status: Status,
    /// New source states, when they changed.
    pub sources: Option<Vec<(PackageSource, SourceState)>>,
    /// Packages that are new or whose version changed.
    pub upserted: Vec<Package>,
    /// Packages that went away.
    pub removed: Vec<PackageKey>,
}

impl InventoryDelta {
    /// Whether anything other than the status changed.
    pub fn is_status_only(&self) -> bool {
        self.hardware.is_none()
            && self.sources.is_none()
            && self.upserted.is_empty()
            && self.removed.is_empty()
    }
}

/// Why a delta could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The delta removes a package the base does not have: it was made against another base.
    #[error("delta removes {0:?}, which the base inventory does not have")]
    RemovesMissing(PackageKey),
    /// The result does not have the digest the sender announced.
    #[error("the inventory after applying the delta does not match the sender's digest")]
    DigestMismatch,
}

impl Inventory {
    /// SHA-256 of the canonical encoding, as hex.
    pub fn digest(&self) -> String {
        // Encoding an in-memory value cannot fail except past MAX_FRAME_LEN; such an inventory could
        // not be sent anyway, and its digest then covers the debug form, which is still deterministic.
        let body = codec::to_body(self).unwrap_or_else(|_| format!("{self:?}").into_bytes());
        hex_lower(&Sha256::digest(&body))
    }

    /// The delta that turns `base` into `self`.
    pub fn delta_from(&self, base: &Inventory) -> InventoryDelta {
        let old: BTreeMap<PackageKey, &Package> = base
            .software
            .packages
            .iter()
            .map(|p| (p.key(), p))
            .collect();
        let new: BTreeMap<PackageKey, &Package> = self
            .software
            .packages
            .iter()
            .map(|p| (p.key(), p))
            .collect();
        let upserted = new
            .iter()
            .filter(|(k, p)| old.get(*k) != Some(*p))
            .map(|(_, p)| (*p).clone())
            .collect();
        let removed = old
            .keys()
            .filter(|k| !new.contains_key(*k))
            .cloned()
            .collect();
        InventoryDelta {
            collected_unix: self.collected_unix,
            hardware: (self.hardware != base.hardware).then(|| self.hardware.clone()),
            status: self.status.clone(),
            sources: (self.software.sources != base.software.sources)
                .then(|| self.software.sources.clone()),
            upserted,
            removed,
        }
    }

    /// Applies `delta` to `self` (the base).
    pub fn apply(&self, delta: &InventoryDelta) -> Result<Inventory, DeltaError> {
        let mut packages: BTreeMap<PackageKey, Package> = self
            .software
            .packages
            .iter()
            .map(|p| (p.key(), p.clone()))
            .collect();
        for key in &delta.removed {
            if packages.remove(key).is_none() {
                return Err(DeltaError::RemovesMissing(key.clone()));
            }
        }
        for p in &delta.upserted {
            packages.insert(p.key(), p.clone());
        }
        let mut packages: Vec<Package> = packages.into_values().collect();
        packages.sort();
        Ok(Inventory {
            collected_unix: delta.collected_unix,
            hardware: delta
                .hardware
                .clone()
                .unwrap_or_else(|| self.hardware.clone()),
            status: delta.status.clone(),
            software: Software {
                sources: delta
                    .sources
                    .clone()
                    .unwrap_or_else(|| self.software.sources.clone()),
                packages,
            },
        })
    }

    /// Applies `delta` and checks the result against the sender's `digest`.
    pub fn apply_checked(
        &self,
        delta: &InventoryDelta,
        digest: &str,
    ) -> Result<Inventory, DeltaError> {
        let next = self.apply(delta)?;
        if next.digest() != digest {
            return Err(DeltaError::DigestMismatch);
        }
        Ok(next)
    }
}

/// Sorts packages and drops duplicate keys (keeping the first), as [`Software::packages`] requires.
pub fn normalise_packages(packages: &mut Vec<Package>) {
    packages.sort();
    packages.dedup_by(|a, b| a.source == b.source && a.name == b.name && a.arch == b.arch);
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// One small inventory for tests, so every crate's tests build the same shape instead of their
/// own copy: host "h", a 2-core CPU, no disks, interfaces or file systems, and the given dpkg
/// packages. Tests change the fields they care about. Compiled for this crate's tests and, with
/// the `test-support` feature, for other crates' (a dev-dependency only).
#[cfg(any(test, feature = "test-support"))]
pub mod fixture {
    use super::*;

    /// The inventory, with these packages.
    pub fn inventory(packages: Vec<Package>) -> Inventory {
        Inventory {
            collected_unix: 1,
            hardware: Hardware {
                system: SystemFacts {
                    hostname: "h".into(),
                    os_name: "o".into(),
                    os_version: "1".into(),
                    kernel: "k".into(),
                    arch: "x86_64".into(),
                },
                cpu: Cpu {
                    model: "m".into(),
                    vendor: "v".into(),
                    sockets: 1,
                    cores: 2,
                    threads: 4,
                    max_mhz: None,
                    current_mhz: None,
                },
                memory: Memory {
                    total: 1,
                    swap_total: 0,
                    modules: ModuleListing::Unavailable,
                },
                disks: vec![],
                interfaces: vec![],
                gpus: vec![],
                displays: vec![],
                batteries: vec![],
                dmi: Dmi {
                    system_vendor: Fact::Unavailable,
                    system_model: Fact::Unavailable,
                    system_serial: Fact::NeedsRoot,
                    system_uuid: Fact::NeedsRoot,
                    bios_vendor: Fact::Unavailable,
                    bios_version: Fact::Unavailable,
                    bios_date: Fact::Unavailable,
                    board_vendor: Fact::Unavailable,
                    board_model: Fact::Unavailable,
                    board_serial: Fact::NeedsRoot,
                },
            },
            status: Status {
                uptime_secs: 1,
                boot_unix: 0,
                users: vec![],
                memory_available: 1,
                swap_free: 0,
                filesystems: vec![],
                battery_percent: vec![],
            },
            software: Software {
                sources: vec![(PackageSource::Dpkg, SourceState::Read)],
                packages,
            },
        }
    }

    /// A dpkg package for amd64.
    pub fn package(name: &str, version: &str) -> Package {
        Package {
            source: PackageSource::Dpkg,
            name: name.into(),
            arch: "amd64".into(),
            version: version.into(),
        }
    }

    /// An interface that is up, without a MAC or a speed.
    pub fn interface(name: &str, ipv4: &[&str], ipv6: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            mac: String::new(),
            ipv4: ipv4.iter().map(|a| a.to_string()).collect(),
            ipv6: ipv6.iter().map(|a| a.to_string()).collect(),
            speed_mbps: None,
            up: true,
            oper_state: "up".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_package_change_is_a_small_delta() {
        let pkg = fixture::package;
        let base = fixture::inventory((0..500).map(|i| pkg(&format!("p{i:03}"), "1.0")).collect());
        let mut next = base.clone();
        next.software.packages[7].version = "1.1".into();
        next.software.packages.remove(9);
        let d = next.delta_from(&base);
        assert_eq!(d.upserted, vec![pkg("p007", "1.1")]);
        assert_eq!(d.removed, vec![pkg("p009", "1.0").key()]);
        assert!(d.hardware.is_none() && d.sources.is_none());
        assert!(codec::to_body(&d).unwrap().len() < 200);
        assert_eq!(
            base.apply(&d).unwrap().apply(&base.delta_from(&next)),
            Ok(base.clone())
        );
        // A removal the base never had is refused.
        let bad = InventoryDelta {
            removed: vec![pkg("nope", "1").key()],
            ..d
        };
        assert!(matches!(
            base.apply(&bad),
            Err(DeltaError::RemovesMissing(_))
        ));
    }
}
