//! Concurrent sessions: N agent/console pairs through a `tether-relay` child process, all spliced at
//! once, each echoing a chunk every interval for a fixed time. Reports errors, relay memory and CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::task::JoinSet;

use crate::child::ChildRelay;
use crate::human_bytes;
use crate::raw::{self, Client};

/// Options.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// Simultaneous sessions.
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Data phase length, seconds.
    #[arg(long, default_value_t = 15)]
    pub secs: u64,
    /// Bytes echoed per round trip.
    #[arg(long, default_value_t = 16 * 1024)]
    pub chunk: usize,
    /// Pause between round trips of one session, milliseconds.
    #[arg(long, default_value_t = 250)]
    pub interval_ms: u64,
    /// Connections per client endpoint.
    #[arg(long, default_value_t = 2000)]
    pub per_endpoint: usize,
    /// Sessions being set up at once.
    #[arg(long, default_value_t = 32)]
    pub parallel: usize,
}

#[derive(Debug, Default)]
struct Tally {
    round_trips: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
}

type Ready = (
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
    raw::RawAgent,
);

async fn setup(agents: Client, consoles: Client, token: Arc<str>) -> anyhow::Result<Ready> {
    let mut agent = raw::agent(&agents).await?;
    // The relay confirms the claim only once the agent accepts it, so both run at once.
    let (claim, accepted) =
        tokio::join!(raw::claim(&consoles, agent.slot, &token), agent.claimed());
    accepted?;
    let (conn, send, recv) = claim?;
    Ok((conn, send, recv, agent))
}

/// The agent side: echo everything on the spliced stream.
async fn echo(agent: raw::RawAgent) -> anyhow::Result<raw::RawAgent> {
    let (mut send, mut recv) = agent.conn.accept_bi().await?;
    while let Some(c) = recv.read_chunk(usize::MAX, true).await? {
        send.write_chunk(c.bytes).await?;
    }
    send.finish()?;
    Ok(agent)
}

/// The console side: a round trip every interval until `until`.
async fn drive(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    opts: &Opts,
    until: Instant,
    tally: &Tally,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; opts.chunk];
    let mut tick = tokio::time::interval(Duration::from_millis(opts.interval_ms));
    let mut i = 0u8;
    while Instant::now() < until {
        tick.tick().await;
        i = i.wrapping_add(1);
        let out = bytes::Bytes::from(vec![i; opts.chunk]);
        send.write_chunk(out).await?;
        recv.read_exact(&mut buf).await?;
        if buf.iter().any(|&b| b != i) {
            bail!("echo corrupted");
        }
        tally.round_trips.fetch_add(1, Ordering::Relaxed);
        tally
            .bytes
            .fetch_add(2 * opts.chunk as u64, Ordering::Relaxed);
    }
    send.finish()?;
    Ok(())
}

/// Runs the benchmark.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let n = opts.sessions;
    let relay = ChildRelay::start(&[
        "--max-connections",
        &(2 * n + 100).to_string(),
        "--claims-per-minute",
        &(2 * n + 100).to_string(),
        // Every console of the bench comes from 127.0.0.1.
        "--claims-per-address-per-minute",
        &(2 * n + 100).to_string(),
    ])?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = relay.rss()?;
    let token: Arc<str> = relay.token.clone().into();
    let endpoints = n.div_ceil(opts.per_endpoint).max(1);
    let agents: Vec<Client> = (0..endpoints)
        .map(|_| Client::new(relay.addr, &relay.fingerprint))
        .collect::<Result<_, _>>()?;
    let consoles: Vec<Client> = (0..endpoints)
        .map(|_| Client::new(relay.addr, &relay.fingerprint))
        .collect::<Result<_, _>>()?;

    let t = Instant::now();
    let mut ready = Vec::with_capacity(n);
    let mut set = JoinSet::new();
    let mut next = 0;
    let mut setup_errors = 0u64;
    while ready.len() + (setup_errors as usize) < n {
        while set.len() < opts.parallel && next < n {
            let e = next / opts.per_endpoint;
            set.spawn(setup(agents[e].clone(), consoles[e].clone(), token.clone()));
            next += 1;
        }
        match set.join_next().await.context("setup set empty")? {
            Ok(Ok(r)) => ready.push(r),
            Ok(Err(e)) => {
                setup_errors += 1;
                eprintln!("setup failed: {e:#}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let setup_secs = t.elapsed().as_secs_f64();
    let rss_setup = relay.rss()?;
    println!(
        "concurrent sessions: {} of {n} set up in {setup_secs:.1} s ({setup_errors} errors); relay RSS {} ({} per session)",
        ready.len(),
        human_bytes(rss_setup as f64),
        human_bytes(rss_setup.saturating_sub(base) as f64 / ready.len().max(1) as f64),
    );

    let tally = Arc::new(Tally::default());
    let until = Instant::now() + Duration::from_secs(opts.secs);
    let opts = Arc::new(opts);
    let mut tasks = JoinSet::new();
    let mut keep = Vec::with_capacity(ready.len());
    for (conn, send, recv, agent) in ready {
        keep.push(conn);
        tasks.spawn(async move { echo(agent).await.map(|_| ()) });
        let (opts, tally) = (opts.clone(), tally.clone());
        tasks.spawn(async move { drive(send, recv, &opts, until, &tally).await });
    }
    let c0 = relay.cpu()?;
    let t = Instant::now();
    let mut peak = 0u64;
    let mut sample = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            r = tasks.join_next() => match r {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                    eprintln!("session error: {e:#}");
                }
                Some(Err(e)) => return Err(e.into()),
            },
            _ = sample.tick() => peak = peak.max(relay.rss().unwrap_or(0)),
        }
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = (relay.cpu()? - c0).as_secs_f64();
    let bytes = tally.bytes.load(Ordering::Relaxed) as f64;
    println!(
        "  data phase {wall:.1} s: {} round trips, {} echoed ({:.1} MB/s through the relay), {} errors (goal 0)",
        tally.round_trips.load(Ordering::Relaxed),
        human_bytes(bytes),
        bytes / wall / 1e6,
        tally.errors.load(Ordering::Relaxed),
    );
    println!(
        "  relay peak RSS {} ({} per session), relay CPU {:.1}% of one core ({:.2} s per GB)",
        human_bytes(peak as f64),
        human_bytes(peak.saturating_sub(base) as f64 / keep.len().max(1) as f64),
        cpu / wall * 100.0,
        cpu / (bytes / 1e9),
    );
    for c in keep {
        c.close(0u32.into(), b"bench done");
    }
    Ok(())
}
