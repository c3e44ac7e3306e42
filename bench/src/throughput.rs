//! Relay throughput: one stream of `bytes` three ways, alternating, in one run: over a direct QUIC
//! connection; through the relay's splice (two QUIC connections the relay terminates, the path of
//! stream 0); and over an end-to-end QUIC connection whose packets the relay forwards without
//! decrypting them (the path every session request takes, [`tether_net::e2e`]). Same transport
//! settings on all three; the relay is a `tether-relay` child process.

use std::time::{Duration, Instant};

use tether_net::e2e;
use tether_net::tls::RelayIdentity;
use tether_net::transport;

use crate::child::ChildRelay;
use crate::raw::{self, Client};

/// Options.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Bytes per transfer, in MiB.
    #[arg(long, default_value_t = 512)]
    pub mib: u64,
    /// Transfers per path (relay and direct alternate).
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
}

/// Runs the benchmark and prints the figures.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let bytes = opts.mib << 20;
    let relay = ChildRelay::start(&[])?;

    // Direct: a bare server with the same identity type and transport config.
    let dir = tempfile::tempdir()?;
    let identity = RelayIdentity::load_or_create(dir.path())?;
    let server = transport::server_endpoint("127.0.0.1:0".parse()?, &identity)?;
    let direct_client = Client::new(server.local_addr()?, &identity.fingerprint())?;
    let accept = tokio::spawn({
        let server = server.clone();
        async move {
            while let Some(inc) = server.accept().await {
                if let Ok(conn) = inc.await {
                    tokio::spawn(raw::sink_all(conn));
                }
            }
        }
    });
    let direct = direct_client.connect().await?;

    // Through the relay: an agent and a console, each with its own endpoint as in the product.
    let agent_client = Client::new(relay.addr, &relay.fingerprint)?;
    let console_client = Client::new(relay.addr, &relay.fingerprint)?;
    let mut agent = raw::agent(&agent_client).await?;
    // The relay confirms the claim only once the agent accepts it, so both run at once.
    let (claim, accepted) = tokio::join!(
        raw::claim_routed(&console_client, agent.slot, &relay.token),
        agent.claimed()
    );
    let agent_route = accepted?;
    let (console, _s0, _r0, console_route) = claim?;
    tokio::spawn(raw::sink_all(agent.conn.clone()));

    // The session's end-to-end connection through the relay's forwarder (the offers, which a
    // session carries on sealed stream 0, are handed over in memory here).
    let (console_half, console_offer) = e2e::ConsoleHalf::bind(relay.addr, console_route).await?;
    let (agent_half, agent_offer) =
        e2e::AgentHalf::bind(relay.addr, agent_route, console_offer).await?;
    let (forwarded, agent_e2e) =
        tokio::join!(console_half.connect(agent_offer), agent_half.accept());
    let (forwarded, agent_e2e) = (forwarded?, agent_e2e?);
    tokio::spawn(raw::sink_all(agent_e2e.conn.clone()));

    // Warm up every path (congestion window, MTU discovery).
    raw::send_blob(&direct, 32 << 20).await?;
    raw::send_blob(&console, 32 << 20).await?;
    raw::send_blob(&forwarded.conn, 32 << 20).await?;

    let (mut t_direct, mut t_relay, mut t_fwd) = (Vec::new(), Vec::new(), Vec::new());
    let (mut relay_cpu, mut fwd_cpu) = (Duration::ZERO, Duration::ZERO);
    let self_cpu0 = crate::proc::cpu_time("self")?;
    for _ in 0..opts.rounds {
        let t = Instant::now();
        raw::send_blob(&direct, bytes).await?;
        t_direct.push(t.elapsed().as_secs_f64());

        let c0 = relay.cpu()?;
        let t = Instant::now();
        raw::send_blob(&console, bytes).await?;
        t_relay.push(t.elapsed().as_secs_f64());
        relay_cpu += relay.cpu()? - c0;

        let c0 = relay.cpu()?;
        let t = Instant::now();
        raw::send_blob(&forwarded.conn, bytes).await?;
        t_fwd.push(t.elapsed().as_secs_f64());
        fwd_cpu += relay.cpu()? - c0;
    }
    let self_cpu = crate::proc::cpu_time("self")? - self_cpu0;
    t_direct.sort_by(f64::total_cmp);
    t_relay.sort_by(f64::total_cmp);
    t_fwd.sort_by(f64::total_cmp);
    let mbps = |t: f64| bytes as f64 / t / 1e6;
    let direct_med = mbps(crate::quantile(&t_direct, 0.5));
    let relay_med = mbps(crate::quantile(&t_relay, 0.5));
    let fwd_med = mbps(crate::quantile(&t_fwd, 0.5));
    let gb = (bytes * u64::from(opts.rounds)) as f64 / 1e9;
    println!(
        "throughput: {} MiB x {} rounds per path",
        opts.mib, opts.rounds
    );
    println!(
        "  direct QUIC   median {direct_med:8.1} MB/s  (best {:.1})",
        mbps(t_direct[0])
    );
    println!(
        "  via relay     median {relay_med:8.1} MB/s  (best {:.1})",
        mbps(t_relay[0])
    );
    println!(
        "  forwarded     median {fwd_med:8.1} MB/s  (best {:.1})",
        mbps(t_fwd[0])
    );
    println!(
        "  ratio splice/direct (medians): {:.2}   forwarded/direct: {:.2}   goal >= 0.90",
        relay_med / direct_med,
        fwd_med / direct_med
    );
    println!(
        "  relay CPU: {:.2} s per GB spliced, {:.2} s per GB forwarded (goal <= 0.30); bench process (both ends, all paths): {:.2} s",
        relay_cpu.as_secs_f64() / gb,
        fwd_cpu.as_secs_f64() / gb,
        self_cpu.as_secs_f64()
    );
    forwarded.close(0, "done");
    console.close(0u32.into(), b"done");
    direct.close(0u32.into(), b"done");
    accept.abort();
    Ok(())
}
