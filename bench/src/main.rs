//! `tether-bench`: run one relay benchmark and print its figures (see BENCHMARKS.md, "Relay").

use clap::{Parser, Subcommand};
use tether_bench::{cluster, faults, files, idle, pairing, sessions, throughput};

#[derive(Parser)]
#[command(name = "tether-bench", about = "Tether relay benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bytes/s through the relay vs direct QUIC, and relay CPU per GB.
    Throughput(throughput::Opts),
    /// Relay memory per idle agent and keep-alive bytes per agent per second.
    Idle(idle::Opts),
    /// Pairing rate and claim → paired latency with the real agent and console.
    Pairing(pairing::Opts),
    /// Many simultaneous sessions moving data: errors, relay memory and CPU.
    Sessions(sessions::Opts),
    /// Recovery after a relay restart; detection of a vanished agent or console.
    Faults(faults::Opts),
    /// File push throughput through the relay vs raw splice, and the agent's CPU per GB.
    Files(files::Opts),
    /// A relay cluster on PostgreSQL: claims/s on one node vs two, idle agents over two nodes.
    Cluster(cluster::Opts),
    /// The agent side of `files`, run as a child process (not for direct use).
    #[command(hide = true)]
    FilesAgent(files::AgentOpts),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Throughput(o) => throughput::run(o).await,
        Command::Idle(o) => idle::run(o).await,
        Command::Pairing(o) => pairing::run(o).await,
        Command::Sessions(o) => sessions::run(o).await,
        Command::Faults(o) => faults::run(o).await,
        Command::Files(o) => files::run(o).await,
        Command::Cluster(o) => cluster::run(o).await,
        Command::FilesAgent(o) => files::agent(o).await,
    }
}
