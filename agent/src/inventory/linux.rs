//! Hardware and status on Linux, from /proc, /sys, /etc/os-release and utmp. The only file with the
//! Linux `#[cfg]`; sysinfo fills in what it reads portably (IP addresses, filesystem usage).
#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sysinfo::{DiskRefreshKind, Disks, Networks};
use tether_proto::inventory::{
    Battery, Cpu, Disk, DiskKind, DisplayInfo, Dmi, Fact, FsUsage, Gpu, Hardware, Interface,
    Memory, MemoryModule, ModuleListing, Partition, Status, SystemFacts,
};

use super::Roots;

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_num<T: std::str::FromStr>(path: impl AsRef<Path>) -> Option<T> {
    read(path)?.parse().ok()
}

/// A sysfs attribute as a [`Fact`]: permission denied means root only; missing means unavailable.
fn fact(path: &Path) -> Fact {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Fact::Value(s.trim().to_string()),
        Ok(_) => Fact::Unavailable,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Fact::NeedsRoot,
        Err(_) => Fact::Unavailable,
    }
}

/// Collects the hardware facts.
pub(super) fn hardware(roots: &Roots) -> Hardware {
    let mounts = mounts(&roots.proc.join("mounts"));
    Hardware {
        system: system(roots),
        cpu: cpu(roots),
        memory: memory(roots),
        disks: disks(roots, &mounts),
        interfaces: interfaces(roots),
        gpus: gpus(roots),
        displays: displays(roots),
        batteries: batteries(roots).into_iter().map(|(b, _)| b).collect(),
        dmi: dmi(&roots.sys.join("class/dmi/id")),
    }
}

/// Collects the fast-changing figures.
pub(super) fn status(roots: &Roots, now_unix: u64) -> Status {
    let meminfo = meminfo(&roots.proc.join("meminfo"));
    let uptime_secs = read(roots.proc.join("uptime"))
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0, |f| f as u64);
    Status {
        uptime_secs,
        boot_unix: now_unix.saturating_sub(uptime_secs),
        users: users(&roots.utmp),
        memory_available: meminfo.get("MemAvailable").copied().unwrap_or(0),
        swap_free: meminfo.get("SwapFree").copied().unwrap_or(0),
        filesystems: filesystems(),
        battery_percent: batteries(roots).into_iter().map(|(_, c)| c).collect(),
    }
}

fn system(roots: &Roots) -> SystemFacts {
    let os: BTreeMap<String, String> = read(&roots.os_release)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect();
    SystemFacts {
        hostname: read(roots.proc.join("sys/kernel/hostname")).unwrap_or_default(),
        os_name: os.get("NAME").cloned().unwrap_or_else(|| "Linux".into()),
        os_version: os
            .get("VERSION")
            .or_else(|| os.get("VERSION_ID"))
            .cloned()
            .unwrap_or_default(),
        kernel: read(roots.proc.join("sys/kernel/osrelease")).unwrap_or_default(),
        arch: std::env::consts::ARCH.to_string(),
    }
}

/// Parses /proc/cpuinfo plus sysfs topology.
fn cpu(roots: &Roots) -> Cpu {
    let info = read(roots.proc.join("cpuinfo")).unwrap_or_default();
    let field = |name: &str| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let cpu_dir = roots.sys.join("devices/system/cpu");
    let online: Vec<u32> = read(cpu_dir.join("online"))
        .map(|s| parse_cpu_list(&s))
        .unwrap_or_default();
    let threads = if online.is_empty() {
        info.lines().filter(|l| l.starts_with("processor")).count() as u32
    } else {
        online.len() as u32
    };
    // Cores are unique (package, core) pairs; sockets unique packages.
    let mut cores = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let mut max_khz: Option<u32> = None;
    for n in &online {
        let topo = cpu_dir.join(format!("cpu{n}/topology"));
        let pkg: i64 = read_num(topo.join("physical_package_id")).unwrap_or(0);
        let core: i64 = read_num(topo.join("core_id")).unwrap_or(i64::from(*n));
        sockets.insert(pkg);
        cores.insert((pkg, core));
        if let Some(k) = read_num::<u32>(cpu_dir.join(format!("cpu{n}/cpufreq/cpuinfo_max_freq"))) {
            max_khz = Some(max_khz.map_or(k, |m| m.max(k)));
        }
    }
    // Only cpufreq knows the maximum; "cpu MHz" is the clock right now, reported as such.
    let max_mhz = max_khz.map(|k| k / 1000);
    let current_mhz = field("cpu MHz")
        .and_then(|m| m.parse::<f64>().ok())
        .filter(|m| m.is_finite() && *m > 0.0)
        .map(|m| m.round() as u32);
    Cpu {
        model: field("model name")
            .or_else(|| field("Model"))
            .unwrap_or_default(),
        vendor: field("vendor_id")
            .or_else(|| field("CPU implementer"))
            .unwrap_or_default(),
        sockets: (sockets.len() as u32).max(1),
        cores: (cores.len() as u32).max(1),
        threads: threads.max(1),
        max_mhz,
        current_mhz,
    }
}

/// Parses a kernel CPU list such as "0-3,6,8-9".
pub(super) fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b.min(a.saturating_add(4096)));
                }
            }
            None => out.extend(part.parse::<u32>().ok()),
        }
    }
    out
}

/// /proc/meminfo in bytes.
fn meminfo(path: &Path) -> BTreeMap<String, u64> {
    read(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let mut it = v.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            let mult = if it.next() == Some("kB") { 1024 } else { 1 };
            Some((k.to_string(), n * mult))
        })
        .collect()
}

fn memory(roots: &Roots) -> Memory {
    let m = meminfo(&roots.proc.join("meminfo"));
    Memory {
        total: m.get("MemTotal").copied().unwrap_or(0),
        swap_total: m.get("SwapTotal").copied().unwrap_or(0),
        modules: memory_modules(&roots.sys.join("firmware/dmi/entries")),
    }
}

/// SMBIOS type 17 (memory device) records from the raw DMI entries, readable by root only.
fn memory_modules(entries: &Path) -> ModuleListing {
    let dir = match std::fs::read_dir(entries) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return ModuleListing::NeedsRoot;
        }
        Err(_) => return ModuleListing::Unavailable,
    };
    let mut modules = Vec::new();
    for entry in dir.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("17-") {
            continue;
        }
        match std::fs::read(entry.path().join("raw")) {
            Ok(raw) => modules.extend(parse_smbios_17(&raw)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return ModuleListing::NeedsRoot;
            }
            Err(_) => {}
        }
    }
    modules.sort_by(|a, b| a.locator.cmp(&b.locator));
    ModuleListing::Items(modules)
}

/// One SMBIOS type 17 structure; `None` for an empty slot or a malformed record.
pub(super) fn parse_smbios_17(raw: &[u8]) -> Option<MemoryModule> {
    let len = usize::from(*raw.get(1)?);
    let byte = |o: usize| raw.get(o).copied();
    let word = |o: usize| Some(u16::from_le_bytes([byte(o)?, byte(o + 1)?]));
    let strings: Vec<String> = raw
        .get(len..)?
        .split(|b| *b == 0)
        .take_while(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).trim().to_string())
        .collect();
    let string = |o: usize| {
        byte(o)
            .filter(|i| *i > 0)
            .and_then(|i| strings.get(usize::from(i) - 1).cloned())
            .unwrap_or_default()
    };
    let size_word = word(0x0C)?;
    let size = match size_word {
        0 | 0xFFFF => return None,
        // 0x7FFF: the real size is in the extended field (MiB).
        0x7FFF => {
            u64::from(u32::from_le_bytes([
                byte(0x1C)?,
                byte(0x1D)?,
                byte(0x1E)?,
                byte(0x1F)?,
            ])) << 20
        }
        // Bit 15 set: the unit is KiB, else MiB.
        w if w & 0x8000 != 0 => u64::from(w & 0x7FFF) << 10,
        w => u64::from(w) << 20,
    };
    Some(MemoryModule {
        locator: string(0x10),
        size,
        speed_mts: word(0x15).filter(|s| *s != 0).map(u32::from),
        manufacturer: string(0x17),
        part_number: string(0x1A),
        serial: string(0x18),
    })
}

/// (device, mount point, fs type) from /proc/mounts, with octal escapes decoded.
fn mounts(path: &Path) -> Vec<(String, String, String)> {
    read(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                unescape(it.next()?),
                unescape(it.next()?),
                it.next()?.to_string(),
            ))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(char::from(v));
            i += 4;
        } else {
            out.push(char::from(b[i]));
            i += 1;
        }
    }
    out
}

/// Block devices from /sys/block, without empty loop devices and RAM disks.
fn disks(roots: &Roots, mounts: &[(String, String, String)]) -> Vec<Disk> {
    let Ok(dir) = std::fs::read_dir(roots.sys.join("block")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        // Sizes in /sys are in 512-byte sectors whatever the device's block size.
        let size = read_num::<u64>(path.join("size")).unwrap_or(0) * 512;
        if (name.starts_with("loop") && size == 0) || name.starts_with("ram") {
            continue;
        }
        let rotational = read(path.join("queue/rotational")).as_deref() == Some("1");
        let kind = if name.starts_with("nvme") {
            DiskKind::Nvme
        } else if name.starts_with("zram") {
            DiskKind::Ram
        } else if path.join("queue/rotational").exists() {
            if rotational {
                DiskKind::Hdd
            } else {
                DiskKind::Ssd
            }
        } else {
            DiskKind::Unknown
        };
        let dev = read(path.join("dev")).unwrap_or_default();
        let udev = udev_props(&roots.udev_data.join(format!("b{dev}")));
        let serial = match read(path.join("device/serial")) {
            Some(s) if !s.is_empty() => Fact::Value(s),
            _ => udev
                .get("ID_SERIAL_SHORT")
                .cloned()
                .map_or(Fact::Unavailable, Fact::Value),
        };
        let model = match read(path.join("device/model")) {
            Some(s) if !s.is_empty() => Fact::Value(s),
            _ => udev
                .get("ID_MODEL")
                .cloned()
                .map_or(Fact::Unavailable, Fact::Value),
        };
        let mut partitions = Vec::new();
        if let Ok(children) = std::fs::read_dir(&path) {
            for c in children.flatten() {
                let cname = c.file_name().to_string_lossy().into_owned();
                if cname.starts_with(&name) && c.path().join("partition").exists() {
                    partitions.push(partition(&cname, &c.path(), mounts));
                }
            }
        }
        if partitions.is_empty() {
            // A filesystem straight on the disk (common in VMs): list the disk as its own partition.
            let p = partition(&name, &path, mounts);
            if p.filesystem.is_some() {
                partitions.push(p);
            }
        }
        partitions.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(Disk {
            name,
            model,
            serial,
            size,
            kind,
            removable: read(path.join("removable")).as_deref() == Some("1"),
            partitions,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn partition(name: &str, path: &Path, mounts: &[(String, String, String)]) -> Partition {
    let dev = format!("/dev/{name}");
    let mine: Vec<&(String, String, String)> = mounts.iter().filter(|m| m.0 == dev).collect();
    let mut mount_points: Vec<String> = mine.iter().map(|m| m.1.clone()).collect();
    mount_points.sort();
    mount_points.dedup();
    Partition {
        name: name.to_string(),
        size: read_num::<u64>(path.join("size")).unwrap_or(0) * 512,
        filesystem: mine.first().map(|m| m.2.clone()),
        mount_points,
    }
}

/// `E:KEY=value` lines of a udev database entry.
fn udev_props(path: &Path) -> BTreeMap<String, String> {
    read(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.strip_prefix("E:")?.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Interfaces from /sys/class/net, with addresses from sysinfo (getifaddrs).
fn interfaces(roots: &Roots) -> Vec<Interface> {
    let mut addrs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Ok(networks) = Networks::new_with_refreshed_list() {
        for (name, data) in &networks {
            addrs.insert(
                name.to_string_lossy().into_owned(),
                data.ip_networks().iter().map(ToString::to_string).collect(),
            );
        }
    }
    let Ok(dir) = std::fs::read_dir(roots.sys.join("class/net")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let mac = read(path.join("address")).unwrap_or_default();
        let flags = read(path.join("flags"))
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let all = addrs.remove(&name).unwrap_or_default();
        let (mut ipv6, mut ipv4): (Vec<String>, Vec<String>) =
            all.into_iter().partition(|a| a.contains(':'));
        ipv4.sort();
        ipv6.sort();
        out.push(Interface {
            name,
            mac: if mac.is_empty() || mac == "00:00:00:00:00:00" {
                String::new()
            } else {
                mac.to_ascii_lowercase()
            },
            ipv4,
            ipv6,
            // The kernel reports -1 (or an error) when the speed is unknown.
            speed_mbps: read_num::<i64>(path.join("speed"))
                .filter(|s| *s > 0)
                .and_then(|s| u32::try_from(s).ok()),
            up: flags & 1 != 0,
            oper_state: read(path.join("operstate")).unwrap_or_default(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// DRM cards (without connectors) as GPUs.
fn gpus(roots: &Roots) -> Vec<Gpu> {
    let Ok(dir) = std::fs::read_dir(roots.sys.join("class/drm")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("card") || name.contains('-') {
            continue;
        }
        let dev = entry.path().join("device");
        let driver = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        out.push(Gpu {
            name,
            vendor: read(dev.join("vendor")).unwrap_or_default(),
            model: read(dev.join("device")).unwrap_or_default(),
            driver,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Connected DRM connectors and their preferred mode.
fn displays(roots: &Roots) -> Vec<DisplayInfo> {
    let Ok(dir) = std::fs::read_dir(roots.sys.join("class/drm")) else {
        return Vec::new();
    };
    let mut out: Vec<DisplayInfo> = dir
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains('-'))
        .filter(|e| read(e.path().join("status")).as_deref() == Some("connected"))
        .map(|e| DisplayInfo {
            connector: e.file_name().to_string_lossy().into_owned(),
            mode: read(e.path().join("modes"))
                .and_then(|m| m.lines().next().map(str::to_string))
                .unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| a.connector.cmp(&b.connector));
    out
}

/// Batteries and their charge.
fn batteries(roots: &Roots) -> Vec<(Battery, u32)> {
    let Ok(dir) = std::fs::read_dir(roots.sys.join("class/power_supply")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let p = entry.path();
        if read(p.join("type")).as_deref() != Some("Battery") {
            continue;
        }
        let design: Option<u64> = read_num(p.join("energy_full_design"))
            .or_else(|| read_num(p.join("charge_full_design")));
        let full: Option<u64> =
            read_num(p.join("energy_full")).or_else(|| read_num(p.join("charge_full")));
        let health_percent = match (design, full) {
            (Some(d), Some(f)) if d > 0 => u32::try_from(f * 100 / d).ok(),
            _ => None,
        };
        out.push((
            Battery {
                name: entry.file_name().to_string_lossy().into_owned(),
                manufacturer: read(p.join("manufacturer")).unwrap_or_default(),
                model: read(p.join("model_name")).unwrap_or_default(),
                design_capacity: design,
                health_percent,
            },
            read_num(p.join("capacity")).unwrap_or(0),
        ));
    }
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out
}

fn dmi(dir: &Path) -> Dmi {
    let f = |name: &str| fact(&dir.join(name));
    Dmi {
        system_vendor: f("sys_vendor"),
        system_model: f("product_name"),
        system_serial: f("product_serial"),
        system_uuid: f("product_uuid"),
        bios_vendor: f("bios_vendor"),
        bios_version: f("bios_version"),
        bios_date: f("bios_date"),
        board_vendor: f("board_vendor"),
        board_model: f("board_name"),
        board_serial: f("board_serial"),
    }
}

/// Size of one `struct utmp` record on Linux (glibc, all 64-bit and 32-bit ABIs alike).
const UTMP_RECORD: usize = 384;
/// `ut_type` of a user login.
const USER_PROCESS: i32 = 7;
/// Offset and length of `ut_user`.
const UT_USER: (usize, usize) = (44, 32);

/// Users with a login session, from utmp.
pub(super) fn users(utmp: &Path) -> Vec<String> {
    let Ok(raw) = std::fs::read(utmp) else {
        return Vec::new();
    };
    let mut users: Vec<String> = raw
        .chunks_exact(UTMP_RECORD)
        .filter(|r| i32::from_ne_bytes([r[0], r[1], r[2], r[3]]) == USER_PROCESS)
        .map(|r| {
            let name = &r[UT_USER.0..UT_USER.0 + UT_USER.1];
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            String::from_utf8_lossy(&name[..end]).into_owned()
        })
        .filter(|u| !u.is_empty())
        .collect();
    users.sort();
    users.dedup();
    users
}

/// Usage of every mounted filesystem backed by a device (statvfs, through sysinfo).
fn filesystems() -> Vec<FsUsage> {
    let Ok(disks) =
        Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
    else {
        return Vec::new();
    };
    let mut out: Vec<FsUsage> = (&disks)
        .into_iter()
        .map(|d| FsUsage {
            mount_point: d.mount_point().to_string_lossy().into_owned(),
            device: d.name().to_string_lossy().into_owned(),
            filesystem: d.file_system().to_string_lossy().into_owned(),
            total: d.total_space(),
            available: d.available_space(),
        })
        .collect();
    out.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    out.dedup_by(|a, b| a.mount_point == b.mount_point);
    out
}
