//! File transfer throughput: pushes of one file (tmpfs to tmpfs) through the relay (a
//! `tether-relay` child process) with the real console library and the real agent in a child
//! process of its own (this binary's hidden `files-agent`, so its CPU time is its own), alternating
//! with raw splice transfers of the same size over the same relay, in one run. Prints the medians,
//! the ratio file / raw, and the agent's CPU-seconds per GB.

use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use tether_agent::ui::AgentEvent;
use tether_agent::{FilesConfig, ShareConfig};
use tether_net::{RelayTarget, Trust};
use tether_proto::{Scope, ScopeSet};

use crate::child::ChildRelay;
use crate::raw::{self, Client};

/// Options.
#[derive(Debug, Clone, clap::Args)]
pub struct Opts {
    /// File size, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub mib: u64,
    /// Transfers per path (file push and raw splice alternate).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Where the source file and the agent's landing folder go (a tmpfs, so disks do not count).
    #[arg(long, default_value = "/dev/shm")]
    pub dir: PathBuf,
}

/// Options of the hidden agent child.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentOpts {
    /// Relay address.
    #[arg(long)]
    pub relay: String,
    /// Relay certificate fingerprint.
    #[arg(long)]
    pub fingerprint: String,
    /// Landing folder.
    #[arg(long)]
    pub landing: PathBuf,
}

fn files_only() -> ScopeSet {
    [Scope::Files].into_iter().collect()
}

/// The agent child: shares once, grants `files`, prints the code on stdout, runs until killed.
pub async fn agent(opts: AgentOpts) -> anyhow::Result<()> {
    let target = RelayTarget {
        addr: opts.relay,
        trust: Trust::Fingerprint(opts.fingerprint),
        connect_timeout: std::time::Duration::from_secs(5),
        // Through the relay, as the bench's ratio is defined (loopback would go direct).
        direct: tether_net::path::Direct::Forbidden,
    };
    let mut config = ShareConfig::new(target);
    config.files = FilesConfig {
        landing: opts.landing.clone(),
        roots: vec![opts.landing],
    };
    let (link, mut handle) = tether_agent::ui::channels();
    let share = tokio::spawn(tether_agent::share(config, link));
    while let Some(ev) = handle.events.recv().await {
        match ev {
            AgentEvent::Code { code, .. } => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{code}")?;
                out.flush()?;
            }
            AgentEvent::ConsentRequested { .. } => {
                handle
                    .commands
                    .send(tether_agent::ui::UserCommand::Consent(files_only()))
                    .await?;
            }
            _ => {}
        }
    }
    share.await??;
    Ok(())
}

/// The agent child process; killed on drop.
struct AgentChild(Child);

impl Drop for AgentChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `bytes` of varied content to `path`.
fn write_source(path: &std::path::Path, bytes: u64) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut block: Vec<u8> = (0..1u64 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let mut left = bytes;
    let mut n = 0u64;
    while left > 0 {
        block[..8].copy_from_slice(&n.to_le_bytes());
        let len = left.min(1 << 20) as usize;
        f.write_all(&block[..len])?;
        left -= len as u64;
        n += 1;
    }
    f.flush()?;
    Ok(())
}

/// Runs the benchmark and prints the figures.
pub async fn run(opts: Opts) -> anyhow::Result<()> {
    let bytes = opts.mib << 20;
    let relay = ChildRelay::start(&[])?;
    let work = tempfile::tempdir_in(&opts.dir)
        .with_context(|| format!("a work folder in {}", opts.dir.display()))?;
    let src = work.path().join("source.bin");
    write_source(&src, bytes)?;
    let landing = work.path().join("landing");

    // Raw splice through the same relay: a raw agent and console, as `tether-bench throughput`.
    let agent_client = Client::new(relay.addr, &relay.fingerprint)?;
    let console_client = Client::new(relay.addr, &relay.fingerprint)?;
    let mut raw_agent = raw::agent(&agent_client).await?;
    let (claim, accepted) = tokio::join!(
        raw::claim(&console_client, raw_agent.slot, &relay.token),
        raw_agent.claimed()
    );
    accepted?;
    let (raw_console, _s0, _r0) = claim?;
    tokio::spawn(raw::sink_all(raw_agent.conn.clone()));

    // The real agent in its own process, the real console here.
    let mut child = AgentChild(
        Command::new(std::env::current_exe()?)
            .arg("files-agent")
            .args(["--relay", &relay.addr.to_string()])
            .args(["--fingerprint", &relay.fingerprint])
            .arg("--landing")
            .arg(&landing)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let pid = child.0.id().to_string();
    let mut lines = BufReader::new(child.0.stdout.take().context("agent stdout")?).lines();
    let code: tether_proto::SessionCode = match lines.next() {
        Some(l) => l?.parse()?,
        None => bail!("the agent child printed no code"),
    };
    let console = tether_console::ConsoleConfig {
        relay: relay.target(),
        token: relay.token.clone(),
    };
    let mut session = tether_console::open_session(&console, code, files_only()).await?;
    let mut go_on = |_: &tether_console::files::Progress| ControlFlow::Continue(());

    // Warm up both paths.
    raw::send_blob(&raw_console, 32 << 20).await?;
    let (mut t_raw, mut t_file) = (Vec::new(), Vec::new());
    let (mut agent_cpu, mut relay_cpu) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for _ in 0..opts.rounds {
        let t = Instant::now();
        raw::send_blob(&raw_console, bytes).await?;
        t_raw.push(t.elapsed().as_secs_f64());

        let (a0, r0) = (crate::proc::cpu_time(&pid)?, relay.cpu()?);
        let t = Instant::now();
        let moved =
            tether_console::files::push_file(&mut session, &src, "bench.bin", &mut go_on).await?;
        t_file.push(t.elapsed().as_secs_f64());
        agent_cpu += crate::proc::cpu_time(&pid)? - a0;
        relay_cpu += relay.cpu()? - r0;
        std::fs::remove_file(&moved.path)?;
    }
    session.end().await;
    t_raw.sort_by(f64::total_cmp);
    t_file.sort_by(f64::total_cmp);
    let mbps = |t: f64| bytes as f64 / t / 1e6;
    let raw_med = mbps(crate::quantile(&t_raw, 0.5));
    let file_med = mbps(crate::quantile(&t_file, 0.5));
    let gb = (bytes * u64::from(opts.rounds)) as f64 / 1e9;
    println!(
        "files: {} MiB x {} rounds per path, tmpfs to tmpfs ({})",
        opts.mib,
        opts.rounds,
        opts.dir.display()
    );
    println!(
        "  raw splice     median {raw_med:8.1} MB/s  (best {:.1})",
        mbps(t_raw[0])
    );
    println!(
        "  file push      median {file_med:8.1} MB/s  (best {:.1}; hashed while it streams)",
        mbps(t_file[0])
    );
    println!(
        "  ratio file/raw (medians): {:.2}   goal >= 0.80",
        file_med / raw_med
    );
    println!(
        "  agent CPU: {:.2} s per GB received; relay CPU during pushes: {:.2} s per GB",
        agent_cpu.as_secs_f64() / gb,
        relay_cpu.as_secs_f64() / gb
    );
    raw_console.close(0u32.into(), b"done");
    Ok(())
}
