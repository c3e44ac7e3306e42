//! Session records: what posting a probe's verdict to the record adds to a `diag` request, and how
//! long a knowledge-base search takes over many records.
//!
//! Run: `cargo bench -p tether-tests --bench records` (set `RECORD_RUNS` for the number of requests,
//! `RECORD_COUNT` for the number of records searched).

// A benchmark binary: failing loudly is right.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tether_console::records;
use tether_proto::ScopeSet;
use tether_proto::diag::Probe;
use tether_proto::msg::{Request, TechnicianIdentity, TechnicianRole};
use tether_proto::records::{RecordNote, RecordQuery, RecordReply};
use tether_relay::records::Records;
use tether_tests::{TestRelay, unbounded_session};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let runs = env("RECORD_RUNS", 30);
    let count = env("RECORD_COUNT", 10_000);
    let relay = TestRelay::start().await;
    let (agent, mut session) = unbounded_session(&relay, "diagnostics".parse().unwrap()).await;
    let id = session.record.unwrap();
    let raw = Request::Diagnostic {
        probe: Probe::Uptime,
        timeout_secs: None,
    };
    let (mut bare, mut posted, mut show) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        session.request(&raw).await.unwrap();
        bare.push(t.elapsed());
        let t = Instant::now();
        session.diagnostic(Probe::Uptime).await.unwrap();
        posted.push(t.elapsed());
        let t = Instant::now();
        records::record(&relay.console(), RecordQuery::Show { id })
            .await
            .unwrap();
        show.push(t.elapsed());
    }
    // Posts close their connection without waiting; the relay must still see every close at once
    // (not after its 5 s wait): only the session's console and agent connections stay open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let open = relay
        .handle
        .metrics()
        .connections_open
        .load(std::sync::atomic::Ordering::Relaxed);
    session.end().await;
    let _ = agent.await;
    println!("diag uptime, {runs} runs each, loopback, median:");
    println!(
        "  request alone              {:8.2} ms",
        ms(median(bare.clone()))
    );
    println!(
        "  request + post to record   {:8.2} ms   ({:.1}x)",
        ms(median(posted.clone())),
        median(posted).as_secs_f64() / median(bare).as_secs_f64()
    );
    println!("  sessions show (own conn)   {:8.2} ms", ms(median(show)));
    println!(
        "relay connections open 300 ms after the last post: {open} (the session's agent and console: 2)"
    );

    // Search over many records, straight on the store (no network).
    let dir = tempfile::tempdir().unwrap();
    let store = Records::open(dir.path()).unwrap();
    let ada = TechnicianIdentity {
        name: "Ada".into(),
        org: "Acme IT".into(),
        role: TechnicianRole::Technician,
        tier: tether_proto::msg::Tier::L1,
    };
    let words = [
        "printer", "offline", "wifi", "drops", "vpn", "slow", "disk", "full", "email", "sync",
        "screen", "flicker", "login", "fails", "update", "stuck", "sound", "missing",
    ];
    let t = Instant::now();
    for i in 0..count {
        let reason = format!(
            "{} {} {}",
            words[i % words.len()],
            words[(i * 7 + 1) % words.len()],
            i
        );
        let rid = store
            .start(i as u64, &ada, Some(&reason), ScopeSet::all(), i as u64)
            .unwrap();
        let note = RecordNote {
            fix: Some(format!(
                "restarted the {} service",
                words[(i * 3) % words.len()]
            )),
            ..RecordNote::default()
        };
        store
            .handle(&ada, RecordQuery::Note { id: rid, note }, 0)
            .unwrap();
    }
    let fill = t.elapsed();
    let mut searches = Vec::new();
    let mut hits = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let r = store
            .handle(
                &ada,
                RecordQuery::Search {
                    text: "printer offline".into(),
                    device: None,
                    technician: None,
                    limit: 50,
                },
                0,
            )
            .unwrap();
        searches.push(t.elapsed());
        if let RecordReply::List(l) = r {
            hits = l.len();
        }
    }
    println!(
        "{count} records stored in {:.1} s ({:.2} ms each, record + note)",
        fill.as_secs_f64(),
        ms(fill) / count as f64
    );
    println!(
        "search \"printer offline\" (limit 50, {hits} returned): median {:.2} ms",
        ms(median(searches))
    );
}
