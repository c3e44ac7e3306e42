//! Relay ingest rate into SQLite: full first reports and one-package deltas for many devices.
//!
//! Run: `cargo bench -p tether-relay --bench ingest`

use std::time::Instant;

use tether_proto::fleet::{Report, ReportBody};
use tether_proto::inventory::{
    Cpu, Dmi, Fact, Hardware, Inventory, Memory, ModuleListing, Package, PackageSource, Software,
    SourceState, Status, SystemFacts,
};
use tether_relay::store::{SqliteStore, Store};

fn inventory(host: &str, packages: usize) -> Inventory {
    let u = || Fact::Unavailable;
    Inventory {
        collected_unix: 1,
        hardware: Hardware {
            system: SystemFacts {
                hostname: host.into(),
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
                current_mhz: None,
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
            packages: (0..packages)
                .map(|i| Package {
                    source: PackageSource::Dpkg,
                    name: format!("package-{i:04}"),
                    arch: "amd64".into(),
                    version: format!("1.{i}-1"),
                })
                .collect(),
        },
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = SqliteStore::open(dir.path()).unwrap_or_else(|e| panic!("store: {e}"));
    let devices = 200;
    let packages = 750;
    let token = store
        .create_token("Bench", 3600, devices, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = (0..devices)
        .map(|i| {
            store
                .enroll(&token.token, &"ab".repeat(32), &format!("host{i}"), 1)
                .unwrap_or_else(|e| panic!("{e}"))
                .0
        })
        .collect();
    let invs: Vec<Inventory> = (0..devices)
        .map(|i| inventory(&format!("host{i}"), packages))
        .collect();

    let t = Instant::now();
    for (id, inv) in ids.iter().zip(&invs) {
        let r = Report {
            device_id: id.clone(),
            seq: 1,
            digest: inv.digest(),
            body: ReportBody::Full(Box::new(inv.clone())),
        };
        store.ingest(id, &r, 2).unwrap_or_else(|e| panic!("{e}"));
    }
    let full = t.elapsed();

    let t = Instant::now();
    for (id, inv) in ids.iter().zip(&invs) {
        let mut next = inv.clone();
        next.software.packages[3].version.push_str("+1");
        next.status.uptime_secs += 86_400;
        let r = Report {
            device_id: id.clone(),
            seq: 2,
            digest: next.digest(),
            body: ReportBody::Delta {
                base_seq: 1,
                delta: Box::new(next.delta_from(inv)),
            },
        };
        store.ingest(id, &r, 3).unwrap_or_else(|e| panic!("{e}"));
    }
    let delta = t.elapsed();
    let n = f64::from(devices);
    println!("SQLite ingest, {devices} devices × {packages} packages:");
    println!(
        "  full first reports: {:.0} reports/s ({:.2} ms each)",
        n / full.as_secs_f64(),
        full.as_secs_f64() * 1000.0 / n
    );
    println!(
        "  one-package deltas: {:.0} reports/s ({:.2} ms each)",
        n / delta.as_secs_f64(),
        delta.as_secs_f64() * 1000.0 / n
    );
}
