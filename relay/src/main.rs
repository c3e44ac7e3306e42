//! `tether-relay`: parse the command line, then run the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tether_relay::config::{DEFAULT_PORT, default_data_dir};
use tether_relay::technicians::Technicians;
use tether_relay::{Relay, RelayConfig};

#[derive(Parser)]
#[command(
    name = "tether-relay",
    version,
    about = "Tether relay: pairs agents and technicians by one-time code"
)]
struct Cli {
    /// State directory (certificate, technicians, audit log).
    #[arg(long, global = true, env = "TETHER_RELAY_DATA")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay (the default).
    Serve {
        /// UDP address to listen on.
        #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
        listen: SocketAddr,
        /// Connections served at once; beyond this new ones are refused with BUSY.
        #[arg(long, default_value_t = tether_relay::config::MAX_CONNECTIONS)]
        max_connections: usize,
        /// Claims one technician may make per minute.
        #[arg(long, default_value_t = tether_relay::config::CLAIMS_PER_TECHNICIAN_PER_MINUTE)]
        claims_per_minute: usize,
    },
    /// Manage technicians.
    Technician {
        #[command(subcommand)]
        command: TechnicianCommand,
    },
}

#[derive(Subcommand)]
enum TechnicianCommand {
    /// Register a technician and print their token (shown only this once).
    Add {
        /// Name shown to users.
        name: String,
        /// Organisation shown to users.
        #[arg(long)]
        org: String,
    },
    /// List registered technicians.
    List,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tether_net::cli::init_logging();
    let cli = Cli::parse();
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    let command = match cli.command {
        Some(c) => c,
        None => Cli::parse_from(["tether-relay", "serve"])
            .command
            .context("default command")?,
    };
    match command {
        Command::Serve {
            listen,
            max_connections,
            claims_per_minute,
        } => {
            let mut config = RelayConfig::new(listen, data_dir);
            config.limits.max_connections = max_connections;
            config.limits.claims_per_technician_per_minute = claims_per_minute;
            serve(config).await
        }
        Command::Technician {
            command: TechnicianCommand::Add { name, org },
        } => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let token = Technicians::new(&data_dir).add(&name, &org)?;
            println!("technician {name:?} of {org:?} added.");
            println!("token (shown only once; give it to the technician as TETHER_TOKEN):");
            println!("{token}");
            Ok(())
        }
        Command::Technician {
            command: TechnicianCommand::List,
        } => {
            for t in Technicians::new(&data_dir).list()? {
                println!("{}\t{}", t.name, t.org);
            }
            Ok(())
        }
    }
}

async fn serve(config: RelayConfig) -> anyhow::Result<()> {
    let relay = Relay::spawn(config).await.context("starting the relay")?;
    println!(
        "tether-relay listening on {} (UDP/QUIC)",
        relay.local_addr()
    );
    println!("certificate SHA-256: {}", relay.fingerprint());
    println!("data directory:      {}", relay.data_dir().display());
    println!("audit log:           {}", relay.audit_path().display());
    println!();
    println!("Agents and consoles pin the certificate with:");
    println!("  export TETHER_RELAY_CERT_SHA256={}", relay.fingerprint());
    println!("Register a technician with: tether-relay technician add NAME --org ORG");
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("stopping: telling connected peers and draining...");
    relay.shutdown().await;
    println!("stopped.");
    Ok(())
}
