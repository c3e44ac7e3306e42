//! Recovery times: a share-mode agent after a relay restart (until it shows a working new code), and
//! how long until the other side is told when an agent or console vanishes without a close frame.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tether_agent::ui::AgentEvent;
use tether_proto::msg::EndReason;
use tether_proto::{Scope, ScopeSet};
use tether_tests::proxy::UdpProxy;
use tether_tests::{TestAgent, TestRelay};

/// Options.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Relay restarts to time.
    #[arg(long, default_value_t = 10)]
    pub restarts: usize,
}

fn inventory() -> ScopeSet {
    ScopeSet::from_iter([Scope::Inventory])
}

/// Runs the measurements and prints them.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let mut relay = TestRelay::start().await;
    let mut agent = TestAgent::spawn(&relay, inventory());
    agent.code().await;
    let mut times = Vec::new();
    for _ in 0..opts.restarts {
        let t = Instant::now();
        relay = relay.restart().await;
        agent.code().await;
        times.push(t.elapsed().as_secs_f64());
        // The new code is claimable: the new relay holds its slot.
        if relay.handle.stats().open != 1 {
            bail!("new code not registered on the new relay");
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "relay restart -> waiting agent shows a new code: {} restarts, p50 {:.0} ms, max {:.0} ms (goal <= 5000 ms)",
        times.len(),
        crate::quantile(&times, 0.5) * 1e3,
        times.last().copied().unwrap_or(f64::NAN) * 1e3
    );
    drop(agent);

    // A vanished agent: the console is told by the relay.
    let proxy = UdpProxy::start(relay.handle.local_addr()).await?;
    let mut agent = TestAgent::spawn_with(
        tether_agent::ShareConfig::new(relay.target_via(proxy.addr())),
        Some(inventory()),
    );
    let code = agent.code().await;
    let session = tether_console::open_session(&relay.console(), code, inventory()).await?;
    proxy.cut();
    let t = Instant::now();
    let told = tokio::time::timeout(Duration::from_secs(30), session.closed())
        .await
        .context("console never told")?;
    println!(
        "agent vanished -> console told ({told}): {:.2} s (goal <= 10 s)",
        t.elapsed().as_secs_f64()
    );

    // A vanished console: the agent is told by the relay.
    let proxy = UdpProxy::start(relay.handle.local_addr()).await?;
    let mut agent = TestAgent::spawn(&relay, inventory());
    let code = agent.code().await;
    let console = tether_console::ConsoleConfig {
        relay: relay.target_via(proxy.addr()),
        token: relay.token.clone(),
    };
    let _session = tether_console::open_session(&console, code, inventory()).await?;
    proxy.cut();
    let t = Instant::now();
    agent
        .expect("the end", |e| {
            matches!(
                e,
                AgentEvent::Ended {
                    reason: EndReason::ConnectionLost
                }
            )
        })
        .await;
    println!(
        "console vanished -> agent told: {:.2} s (goal <= 10 s)",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
