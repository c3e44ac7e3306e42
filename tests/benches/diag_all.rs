//! `diag --all` timing: the standard health check over a real relay on loopback, as the console runs it
//! (all probes at once), against running the same probes one after another.
//!
//! Run: `cargo bench -p tether-tests --bench diag_all` (set `DIAG_RUNS` to change the number of runs).

// A benchmark binary: failing loudly is right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tether_agent::ShareConfig;
use tether_agent::ui::{self, AgentEvent, UserCommand};
use tether_console::open_session;
use tether_proto::ScopeSet;
use tether_proto::diag::Probe;
use tether_tests::TestRelay;

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
    // An agent whose user grants `diagnostics` and reads every event (as the terminal front end does;
    // the test harness keeps only a bounded backlog, too small for hundreds of probes).
    let (link, mut handle) = ui::channels();
    let agent = tokio::spawn(tether_agent::share(ShareConfig::new(relay.target()), link));
    let (code_tx, code_rx) = tokio::sync::oneshot::channel();
    let user = tokio::spawn(async move {
        let mut code_tx = Some(code_tx);
        let grant: ScopeSet = "diagnostics".parse().unwrap();
        while let Some(ev) = handle.events.recv().await {
            match ev {
                AgentEvent::Code { code, .. } => {
                    if let Some(tx) = code_tx.take() {
                        let _ = tx.send(code);
                    }
                }
                AgentEvent::ConsentRequested { .. } => {
                    let _ = handle.commands.send(UserCommand::Consent(grant)).await;
                }
                _ => {}
            }
        }
    });
    let code = code_rx.await.unwrap();
    let mut session = open_session(&relay.console(), code, "diagnostics".parse().unwrap())
        .await
        .unwrap();
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
    let _ = user.await;
}
