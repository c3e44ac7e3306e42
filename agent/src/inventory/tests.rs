//! Checks of the collected inventory against independent tools on this machine.
// Panicking on unexpected OS data is what a test should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use tether_proto::inventory::{DiskKind, PackageSource, SourceState};

use super::*;

fn tool(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(cmd: &str, args: &[&str]) -> Option<serde_json::Value> {
    serde_json::from_str(&tool(cmd, args)?).ok()
}

#[test]
fn cpu_threads_match_nproc() {
    let Some(n) = tool("nproc", &["--all"]) else {
        return;
    };
    let hw = Collector::default().hardware();
    assert_eq!(hw.cpu.threads, n.trim().parse::<u32>().unwrap());
    assert!(hw.cpu.cores >= 1 && hw.cpu.cores <= hw.cpu.threads);
    assert!(hw.cpu.sockets >= 1 && hw.cpu.sockets <= hw.cpu.cores);
    assert!(!hw.cpu.model.is_empty());
    assert_eq!(logical_cpu_count(), hw.cpu.threads);
}

#[cfg(target_os = "linux")]
#[test]
fn memory_matches_proc_meminfo() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib = |key: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    let hw = Collector::default().hardware();
    assert_eq!(hw.memory.total, kib("MemTotal:") * 1024);
    assert_eq!(hw.memory.swap_total, kib("SwapTotal:") * 1024);
    let st = Collector::default().status();
    assert!(st.memory_available <= hw.memory.total && st.memory_available > 0);
}

#[cfg(target_os = "linux")]
#[test]
fn system_facts_match_the_kernel() {
    let hw = Collector::default().hardware();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(hw.system.hostname, host.trim());
    if let Some(k) = tool("uname", &["-r"]) {
        assert_eq!(hw.system.kernel, k.trim());
    }
    if let Some(m) = tool("uname", &["-m"]) {
        assert_eq!(hw.system.arch, m.trim());
    }
    let st = Collector::default().status();
    assert!(st.uptime_secs > 0);
}

#[test]
fn disks_match_lsblk() {
    let Some(v) = json("lsblk", &["-J", "-b", "-d", "-o", "NAME,SIZE,TYPE,ROTA"]) else {
        return;
    };
    let hw = Collector::default().hardware();
    let mut checked = 0;
    for dev in v["blockdevices"].as_array().unwrap() {
        if dev["type"] != "disk" {
            continue;
        }
        let name = dev["name"].as_str().unwrap();
        let disk = hw
            .disks
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("lsblk lists {name}, inventory has {:?}", hw.disks));
        let size = dev["size"]
            .as_u64()
            .or_else(|| dev["size"].as_str().and_then(|s| s.parse().ok()))
            .unwrap();
        assert_eq!(disk.size, size, "{name}");
        let rota = dev["rota"] == true || dev["rota"] == "1";
        match disk.kind {
            DiskKind::Hdd => assert!(rota, "{name}"),
            DiskKind::Ssd | DiskKind::Nvme => assert!(!rota, "{name}"),
            _ => {}
        }
        checked += 1;
    }
    assert!(checked > 0, "lsblk listed no disk");
    // The root filesystem shows up as a mounted partition and in the usage list.
    assert!(
        hw.disks
            .iter()
            .flat_map(|d| &d.partitions)
            .any(|p| p.mount_points.iter().any(|m| m == "/"))
    );
    let st = Collector::default().status();
    let root = st
        .filesystems
        .iter()
        .find(|f| f.mount_point == "/")
        .unwrap();
    assert!(root.total > 0 && root.available <= root.total);
}

#[test]
fn interfaces_and_macs_match_ip() {
    let Some(v) = json("ip", &["-j", "addr"]) else {
        return;
    };
    let hw = Collector::default().hardware();
    for link in v.as_array().unwrap() {
        let name = link["ifname"].as_str().unwrap();
        let iface = hw
            .interfaces
            .iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("ip lists {name}"));
        let mac = link["address"].as_str().unwrap_or("");
        if mac.is_empty() || mac == "00:00:00:00:00:00" {
            assert_eq!(iface.mac, "", "{name}");
        } else {
            assert_eq!(iface.mac, mac, "{name}");
        }
        let up = link["flags"].as_array().unwrap().iter().any(|f| f == "UP");
        assert_eq!(iface.up, up, "{name}");
        for a in link["addr_info"].as_array().unwrap() {
            let addr = format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]);
            let list = if a["family"] == "inet" {
                &iface.ipv4
            } else {
                &iface.ipv6
            };
            assert!(list.contains(&addr), "{name}: {addr} not in {list:?}");
        }
    }
    assert_eq!(v.as_array().unwrap().len(), hw.interfaces.len());
}

#[test]
fn packages_match_dpkg_query() {
    let Some(out) = tool(
        "dpkg-query",
        &[
            "-W",
            "-f",
            "${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n",
        ],
    ) else {
        return;
    };
    let expected: Vec<(String, String, String)> = out
        .lines()
        .filter(|l| l.starts_with("ii"))
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c[1].to_string(), c[2].to_string(), c[3].to_string())
        })
        .collect();
    let sw = Collector::default().software();
    let dpkg: Vec<_> = sw
        .packages
        .iter()
        .filter(|p| p.source == PackageSource::Dpkg)
        .collect();
    assert_eq!(dpkg.len(), expected.len());
    // Every 7th package, and the first and last, by name, version and architecture.
    for (i, (name, version, arch)) in expected.iter().enumerate() {
        if i % 7 != 0 && i + 1 != expected.len() {
            continue;
        }
        assert!(
            dpkg.iter()
                .any(|p| &p.name == name && &p.version == version && &p.arch == arch),
            "{name} {version} {arch} missing"
        );
    }
    assert!(
        sw.sources
            .contains(&(PackageSource::Dpkg, SourceState::Read))
    );
}

#[test]
fn absent_sources_say_not_present() {
    let cfg = software::SoftwareConfig {
        dpkg_status: "/nonexistent/status".into(),
        tool_path: Some(vec!["/nonexistent".into()]),
    };
    let sw = software::collect(&cfg.sources());
    assert!(sw.packages.is_empty());
    assert_eq!(sw.sources.len(), 4);
    assert!(
        sw.sources
            .iter()
            .all(|(_, s)| *s == SourceState::NotPresent)
    );
}

#[cfg(target_os = "linux")]
#[test]
fn smbios_memory_record_parses() {
    // Type 17, length 0x28: size 8192 MiB at 0x0C, locator string 1, speed 3200 at 0x15,
    // manufacturer 2, serial 3, part 4.
    let mut raw = vec![0u8; 0x28];
    raw[0] = 17;
    raw[1] = 0x28;
    raw[0x0C..0x0E].copy_from_slice(&8192u16.to_le_bytes());
    raw[0x10] = 1;
    raw[0x15..0x17].copy_from_slice(&3200u16.to_le_bytes());
    raw[0x17] = 2;
    raw[0x18] = 3;
    raw[0x1A] = 4;
    raw.extend_from_slice(b"DIMM_A1\0Acme\0SN123\0PN-9\0\0");
    let m = linux::parse_smbios_17(&raw).unwrap();
    assert_eq!(m.size, 8192 << 20);
    assert_eq!(
        (
            m.locator.as_str(),
            m.manufacturer.as_str(),
            m.serial.as_str(),
            m.part_number.as_str()
        ),
        ("DIMM_A1", "Acme", "SN123", "PN-9")
    );
    assert_eq!(m.speed_mts, Some(3200));
    // An empty slot has size 0.
    raw[0x0C..0x0E].copy_from_slice(&0u16.to_le_bytes());
    assert!(linux::parse_smbios_17(&raw).is_none());
    assert!(linux::parse_smbios_17(&[17]).is_none());
    assert_eq!(linux::parse_cpu_list("0-2,5,7-8"), vec![0, 1, 2, 5, 7, 8]);
}

#[cfg(target_os = "linux")]
#[test]
fn dmi_fields_say_why_they_are_missing() {
    let hw = Collector::default().hardware();
    // Either a value, or an explicit reason; on this machine (root or not, DMI or not) never empty.
    for f in [
        &hw.dmi.system_serial,
        &hw.dmi.board_serial,
        &hw.dmi.system_vendor,
    ] {
        if let tether_proto::inventory::Fact::Value(v) = f {
            assert!(!v.is_empty());
        }
    }
    if !std::path::Path::new("/sys/class/dmi/id").exists() {
        assert_eq!(
            hw.dmi.system_vendor,
            tether_proto::inventory::Fact::Unavailable
        );
    }
}

/// Issue 17 item 23: the maximum clock comes from cpufreq only (else it is unknown), and the clock
/// of the moment ("cpu MHz") is reported separately, never as the maximum.
#[cfg(target_os = "linux")]
#[test]
fn max_and_current_clock_are_apart() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    let sys = dir.path().join("sys");
    let cpus = sys.join("devices/system/cpu");
    std::fs::create_dir_all(&proc).unwrap();
    std::fs::create_dir_all(cpus.join("cpu0/topology")).unwrap();
    std::fs::write(
        proc.join("cpuinfo"),
        "processor\t: 0\nmodel name\t: Test CPU\ncpu MHz\t\t: 1199.874\n",
    )
    .unwrap();
    std::fs::write(cpus.join("online"), "0\n").unwrap();
    let collector = Collector {
        roots: Roots {
            proc,
            sys,
            ..Roots::default()
        },
        ..Collector::default()
    };
    // A VM: no cpufreq. The maximum is unknown; 1200 MHz is only the clock now.
    let cpu = collector.hardware().cpu;
    assert_eq!((cpu.max_mhz, cpu.current_mhz), (None, Some(1200)));
    std::fs::create_dir_all(cpus.join("cpu0/cpufreq")).unwrap();
    std::fs::write(cpus.join("cpu0/cpufreq/cpuinfo_max_freq"), "3400000\n").unwrap();
    let cpu = collector.hardware().cpu;
    assert_eq!((cpu.max_mhz, cpu.current_mhz), (Some(3400), Some(1200)));
}
