//! Relay ingest rate: full first reports and one-package deltas for many devices, into SQLite and,
//! when `TETHER_BENCH_DATABASE=postgres://…` names an empty database, into PostgreSQL in the same
//! run.
//!
//! Run: `cargo bench -p tether-relay --bench ingest`

use std::time::{Duration, Instant};

use tether_proto::fleet::{Report, ReportBody};
use tether_proto::inventory::{Inventory, fixture};
use tether_relay::backend::Backend;
use tether_relay::store::Store;

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

/// (full, delta) times for `devices` devices of `packages` packages each.
fn run(store: &dyn Store, devices: u32, packages: usize) -> (Duration, Duration) {
    let token = store
        .create_token("Bench", 3600, devices, 1)
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = (0..devices)
        .map(|i| {
            store
                .enroll(
                    &token.token,
                    &"ab".repeat(32),
                    &format!("host{i}"),
                    &tether_proto::org::SecretKey::from_bytes([1; 32]).public(),
                    1,
                )
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
    (full, t.elapsed())
}

fn main() {
    let devices = 200;
    let packages = 750;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let mut backends = vec![("SQLite", Backend::open(None, dir.path()))];
    // An empty database to measure PostgreSQL in the same run (see BENCHMARKS.md).
    if let Ok(url) = std::env::var("TETHER_BENCH_DATABASE") {
        backends.push(("PostgreSQL", Backend::open(Some(&url), dir.path())));
    }
    println!("ingest, {devices} devices × {packages} packages, one transaction per report:");
    for (name, backend) in backends {
        let backend = backend.unwrap_or_else(|e| panic!("{name}: {e}"));
        let store = backend.store().unwrap_or_else(|e| panic!("{name}: {e}"));
        let (full, delta) = run(store.as_ref(), devices, packages);
        let n = f64::from(devices);
        println!(
            "  {name}: full first reports {:.0} reports/s ({:.2} ms each); one-package deltas {:.0} reports/s ({:.2} ms each)",
            n / full.as_secs_f64(),
            full.as_secs_f64() * 1000.0 / n,
            n / delta.as_secs_f64(),
            delta.as_secs_f64() * 1000.0 / n
        );
    }
}
