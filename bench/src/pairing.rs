//! Pairing: sessions established per second, and claim → paired (consent decided) latency, with the
//! real agent library (`tether_agent::share`, scripted user) and the real console (`open_session`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tether_proto::{Scope, ScopeSet};
use tether_relay::Limits;
use tether_tests::{TestAgent, TestRelay};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

/// Options.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Sessions per phase.
    #[arg(long, default_value_t = 200)]
    pub sessions: usize,
    /// Sessions pairing at once in the rate phase.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// Runs one session end to end; returns the claim → paired latency.
async fn one(relay: &TestRelay) -> anyhow::Result<Duration> {
    let scopes = ScopeSet::from_iter([Scope::Inventory]);
    let mut agent = TestAgent::spawn(relay, scopes);
    let code = agent.code().await;
    let t = Instant::now();
    let session = tether_console::open_session(&relay.console(), code, scopes)
        .await
        .context("open_session")?;
    let latency = t.elapsed();
    session.end().await;
    agent.task.await?.context("agent")?;
    Ok(latency)
}

async fn phase(relay: Arc<TestRelay>, n: usize, concurrency: usize) -> anyhow::Result<()> {
    let todo = Arc::new(Mutex::new(n));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let t = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let (relay, todo, lat) = (relay.clone(), todo.clone(), lat.clone());
        set.spawn(async move {
            loop {
                {
                    let mut left = todo.lock().await;
                    if *left == 0 {
                        return Ok::<_, anyhow::Error>(());
                    }
                    *left -= 1;
                }
                let l = one(&relay).await?;
                lat.lock().await.push(l.as_secs_f64() * 1e3);
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let wall = t.elapsed().as_secs_f64();
    let mut lat = lat.lock().await.clone();
    lat.sort_by(f64::total_cmp);
    println!(
        "  concurrency {concurrency:>3}: {n} sessions in {wall:.2} s = {:.1} sessions/s; \
         claim -> paired+consent latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        n as f64 / wall,
        crate::quantile(&lat, 0.5),
        crate::quantile(&lat, 0.95),
        crate::quantile(&lat, 0.99),
    );
    Ok(())
}

/// Runs a sequential phase (latency without contention) and a concurrent one (rate).
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let limits = Limits {
        claims_per_technician_per_minute: usize::MAX / 2,
        // Every console of the bench comes from 127.0.0.1.
        claims_per_source_per_minute: usize::MAX / 2,
        max_connections: 100_000,
        ..Limits::default()
    };
    let relay = Arc::new(TestRelay::start_with(limits, None).await);
    println!(
        "pairing (relay in-process; agent share() + console open_session, full SPAKE2 + consent):"
    );
    phase(relay.clone(), opts.sessions.min(100), 1).await?;
    phase(relay.clone(), opts.sessions, opts.concurrency).await?;
    Ok(())
}
