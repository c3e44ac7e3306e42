//! Idle agents: relay memory per connected agent waiting under a code, and keep-alive traffic.
//!
//! Agents connect through a few shared client endpoints to a `tether-relay` child process, each opens
//! a slot (as a share-mode agent waiting for a claim does), then everything sits idle.

use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinSet;

use crate::child::ChildRelay;
use crate::human_bytes;
use crate::raw::{self, Client, RawAgent};

/// Options.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Agent counts to measure at, ascending, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1000usize, 10000])]
    pub agents: Vec<usize>,
    /// Idle window over which keep-alive traffic and CPU are measured, seconds.
    #[arg(long, default_value_t = 20)]
    pub window: u64,
    /// Agent connections per client endpoint (UDP socket).
    #[arg(long, default_value_t = 5000)]
    pub per_endpoint: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
}

/// Runs the benchmark and prints one line per agent count.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let max = opts.agents.iter().copied().max().unwrap_or(0);
    let limit = (max + 100).to_string();
    let relay = ChildRelay::start(&["--max-connections", &limit])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = relay.rss()?;
    println!(
        "idle agents: relay baseline RSS {} (pid {})",
        human_bytes(base as f64),
        relay.pid()
    );
    let mut clients: Vec<Client> = Vec::new();
    let mut agents: Vec<RawAgent> = Vec::with_capacity(max);
    let mut failures = 0usize;
    for &level in &opts.agents {
        let t = std::time::Instant::now();
        failures += connect_up_to(&relay, level, &opts, &mut clients, &mut agents).await?;
        let connect_secs = t.elapsed().as_secs_f64();
        // Let handshakes' buffers drain and allocator state settle.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = relay.rss()?;
        let wire = |a: &[RawAgent]| -> u64 {
            a.iter()
                .map(|a| {
                    let s = a.conn.stats();
                    s.udp_tx.bytes + s.udp_rx.bytes
                })
                .sum()
        };
        let (w0, c0) = (wire(&agents), relay.cpu()?);
        tokio::time::sleep(Duration::from_secs(opts.window)).await;
        let (w1, c1) = (wire(&agents), relay.cpu()?);
        let alive = agents
            .iter()
            .filter(|a| a.conn.close_reason().is_none())
            .count();
        let per_agent = (rss.saturating_sub(base)) as f64 / level as f64;
        let bps = (w1 - w0) as f64 / level as f64 / opts.window as f64;
        println!(
            "  {level:>6} agents ({alive} still connected; connected in {connect_secs:.1} s, {failures} retried): relay RSS {}, \
             {} per agent (goal <= 16 KiB); keep-alive {bps:.1} B/s per agent (goal <= 50); relay CPU idle {:.1}%",
            human_bytes(rss as f64),
            human_bytes(per_agent),
            (c1 - c0).as_secs_f64() / opts.window as f64 * 100.0,
        );
    }
    for a in &agents {
        a.conn.close(0u32.into(), b"bench done");
    }
    Ok(())
}

/// Connects raw agents to `relay` until `agents` holds `level`, `opts.parallel` handshakes at a
/// time, `opts.per_endpoint` connections per client endpoint (added to `clients`). Returns the
/// handshakes that failed and were retried (a loaded machine drops the odd one).
pub(crate) async fn connect_up_to(
    relay: &ChildRelay,
    level: usize,
    opts: &Opts,
    clients: &mut Vec<Client>,
    agents: &mut Vec<RawAgent>,
) -> anyhow::Result<usize> {
    let mut failures = 0usize;
    let mut set = JoinSet::new();
    let mut next = agents.len();
    while agents.len() < level {
        while set.len() < opts.parallel && next < level {
            if next / opts.per_endpoint >= clients.len() {
                clients.push(Client::new(relay.addr, &relay.fingerprint)?);
            }
            let c = clients[next / opts.per_endpoint].clone();
            set.spawn(async move { raw::agent(&c).await });
            next += 1;
        }
        match set.join_next().await.context("connect set empty")?? {
            Ok(a) => agents.push(a),
            Err(e) => {
                failures += 1;
                if failures > level / 100 + 10 {
                    return Err(e.context(format!("{failures} connect failures")));
                }
                let c = clients[agents.len() / opts.per_endpoint].clone();
                set.spawn(async move { raw::agent(&c).await });
            }
        }
    }
    Ok(failures)
}
