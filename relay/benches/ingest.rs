//! Relay ingest rate into SQLite: full first reports and one-package deltas for many devices.
//!
//! Run: `cargo bench -p tether-relay --bench ingest`

use std::time::Instant;

use tether_proto::fleet::{Report, ReportBody};
use tether_proto::inventory::{Inventory, fixture};
use tether_relay::store::{SqliteStore, Store};

/// A machine named `host` with `packages` dpkg packages.
fn inventory(host: &str, packages: usize) -> Inventory {
    let mut inv = fixture::inventory(
        (0..packages)
            .map(|i| fixture::package(&format!("package-{i:04}"), &format!("1.{i}-1")))
            .collect(),
    );
    inv.hardware.system.hostname = host.into();
    inv
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
