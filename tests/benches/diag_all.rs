//! `diag --all` timing: the standard health check over a real relay on loopback, as the console runs it
//! (all probes at once), against running the same probes one after another.
//!
//! Run: `cargo bench -p tether-tests --bench diag_all` (set `DIAG_RUNS` to change the number of runs).

// A benchmark binary: failing loudly is right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tether_proto::diag::Probe;
use tether_tests::{TestRelay, unbounded_session};

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "min {:7.1} ms  median {:7.1} ms  max {:7.1} ms",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    )
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("DIAG_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let relay = TestRelay::start().await;
    let (agent, mut session) = unbounded_session(&relay, "diagnostics".parse().unwrap()).await;
    // Warm-up: page caches, apt's cache files.
    session.health_check(None).await.unwrap();

    let mut all = Vec::new();
    let mut per_probe: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for _ in 0..runs {
        let t = Instant::now();
        let reports = session.health_check(None).await.unwrap();
        all.push(t.elapsed());
        for r in reports {
            per_probe
                .entry(r.probe.kind().name().to_string())
                .or_default()
                .push(Duration::from_millis(r.elapsed_ms));
        }
    }
    let mut sequential = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for p in Probe::health_check() {
            session.diagnostic(p).await.unwrap();
        }
        sequential.push(t.elapsed());
    }
    println!(
        "diag --all, {} probes, {runs} runs, {} CPUs",
        Probe::health_check().len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("  concurrent (as the console runs it): {}", stats(all));
    println!(
        "  one after another:                   {}",
        stats(sequential)
    );
    println!("  per probe, on the agent:");
    for (name, times) in per_probe {
        println!("    {name:<16} {}", stats(times));
    }
    session.end().await;
    let _ = agent.await;
}
