//! A relay cluster on PostgreSQL (a private server, as the tests start one): claims per second on
//! one node and on two (the agents spread over the nodes, each console claiming at its agent's
//! node; and each console at the other node, following the redirect), then idle agents spread
//! over two nodes with the memory per agent on each node. All nodes are real `tether-relay`
//! processes sharing one database; the protocol is driven raw (`raw`), as `idle` and `sessions` do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tether_net::client::open_control;
use tether_net::framed;
use tether_proto::Slot;
use tether_proto::msg::{ConsoleToRelay, RelayToConsole, Role};
use tether_tests::pg::PgServer;
use tokio::task::JoinSet;

use crate::child::ChildRelay;
use crate::raw::{self, Client, RawAgent};

/// Options.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Claims per phase.
    #[arg(long, default_value_t = 400)]
    pub claims: usize,
    /// Claims in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Idle agents spread over the two nodes.
    #[arg(long, default_value_t = 20_000)]
    pub agents: usize,
    /// Agent connections per client endpoint (UDP socket).
    #[arg(long, default_value_t = 5000)]
    pub per_endpoint: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub parallel: usize,
}

/// A node and a client endpoint pinned to it.
struct Node {
    relay: ChildRelay,
    client: Client,
}

impl Node {
    fn start(url: &str, token: Option<&str>, extra: &[&str]) -> anyhow::Result<Node> {
        let relay = ChildRelay::start_on(Some(url), token, extra)?;
        let client = Client::new(relay.addr, &relay.fingerprint)?;
        Ok(Node { relay, client })
    }
}

/// One claim of `slot` at `at`; a redirect is followed once to `home` (the node holding it).
async fn claim(at: &Node, home: &Node, slot: Slot, token: &str) -> anyhow::Result<()> {
    let conn = at.client.connect().await?;
    let (mut send, mut recv) = open_control(&conn, Role::Console).await?;
    let msg = ConsoleToRelay::Claim {
        slot,
        token: token.to_string(),
        scopes: tether_proto::ScopeSet::all(),
    };
    framed::write_msg(&mut send, &msg).await?;
    match framed::read_msg::<RelayToConsole>(&mut recv).await? {
        RelayToConsole::Claimed { .. } => Ok(()),
        RelayToConsole::Redirect(_) if !std::ptr::eq(at, home) => {
            conn.close(0u32.into(), b"redirected");
            raw::claim(&home.client, slot, token).await.map(drop)
        }
        other => bail!("claim answered {other:?}"),
    }
}

/// Opens a slot on node `n % nodes`, claims it at that node (or, with `across`, at the next one)
/// and has the agent accept; `n` times, `concurrency` at once. Returns claims per second.
async fn claims(
    nodes: Arc<Vec<Node>>,
    token: Arc<str>,
    n: usize,
    concurrency: usize,
    across: bool,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    let mut set = JoinSet::new();
    let mut next = 0;
    let mut done = 0;
    while done < n {
        while set.len() < concurrency && next < n {
            let (nodes, token, i) = (nodes.clone(), token.clone(), next);
            set.spawn(async move {
                let home = &nodes[i % nodes.len()];
                let at = &nodes[(i + usize::from(across)) % nodes.len()];
                let mut agent: RawAgent = raw::agent(&home.client).await?;
                let (claimed, accepted) =
                    tokio::join!(claim(at, home, agent.slot, &token), agent.claimed());
                claimed?;
                accepted?;
                agent.conn.close(0u32.into(), b"done");
                anyhow::Ok(())
            });
            next += 1;
        }
        set.join_next().await.context("claim set empty")???;
        done += 1;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Runs the benchmark and prints the figures.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let server = tokio::task::spawn_blocking(PgServer::start).await?;
    let url = server.url(&tokio::task::block_in_place(|| server.database()));
    // The per-technician limit would cap the rate at 20 a minute.
    let limit = (opts.claims * 4).to_string();
    let max = (opts.agents + 1000).to_string();
    let extra = [
        "--claims-per-minute",
        limit.as_str(),
        // Every console of the bench comes from 127.0.0.1.
        "--claims-per-address-per-minute",
        limit.as_str(),
        "--max-connections",
        max.as_str(),
    ];
    let a = Node::start(&url, None, &extra)?;
    let token: Arc<str> = a.relay.token.clone().into();
    let b = Node::start(&url, Some(&token), &extra)?;
    println!(
        "cluster: two tether-relay nodes on one PostgreSQL {} (private, loopback)",
        server.port
    );

    let nodes = Arc::new(vec![a]);
    let warm = claims(nodes.clone(), token.clone(), 20, 4, false).await?;
    let one = claims(
        nodes.clone(),
        token.clone(),
        opts.claims,
        opts.concurrency,
        false,
    )
    .await?;
    let Ok([a]) = <[Node; 1]>::try_from(Arc::into_inner(nodes).context("nodes still shared")?)
    else {
        bail!("one node expected");
    };
    let nodes = Arc::new(vec![a, b]);
    let two = claims(
        nodes.clone(),
        token.clone(),
        opts.claims,
        opts.concurrency,
        false,
    )
    .await?;
    let redirected = claims(
        nodes.clone(),
        token.clone(),
        opts.claims,
        opts.concurrency,
        true,
    )
    .await?;
    println!(
        "  claims/s ({} claims, {} at once; warm-up {warm:.0}/s): one node {one:.1}, two nodes \
         {two:.1} (ratio {:.2}), two nodes with every console at the other node (redirected) \
         {redirected:.1}",
        opts.claims,
        opts.concurrency,
        two / one
    );

    // Idle agents, half on each node.
    let idle = crate::idle::Opts {
        agents: vec![opts.agents / 2],
        window: 0,
        per_endpoint: opts.per_endpoint,
        parallel: opts.parallel,
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let base: Vec<u64> = nodes
        .iter()
        .map(|n| n.relay.rss())
        .collect::<anyhow::Result<_>>()?;
    let t = Instant::now();
    let mut held = Vec::new();
    for node in nodes.iter() {
        let (mut clients, mut agents) = (Vec::new(), Vec::new());
        crate::idle::connect_up_to(
            &node.relay,
            opts.agents / 2,
            &idle,
            &mut clients,
            &mut agents,
        )
        .await?;
        held.push((clients, agents));
    }
    let secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, (node, base)) in nodes.iter().zip(&base).enumerate() {
        let rss = node.relay.rss()?;
        let alive = held[i]
            .1
            .iter()
            .filter(|a| a.conn.close_reason().is_none())
            .count();
        println!(
            "  node {}: {alive} idle agents (all connected in {secs:.1} s), RSS {:.1} MiB, {:.1} KiB \
             per agent",
            ["A", "B"][i],
            rss as f64 / (1 << 20) as f64,
            rss.saturating_sub(*base) as f64 / (opts.agents / 2) as f64 / 1024.0
        );
    }
    drop(held);
    drop(nodes);
    drop(server);
    Ok(())
}
