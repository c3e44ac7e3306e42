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
    },
    /// Manage technicians.
    Technician {
        #[command(subcommand)]
        command: TechnicianCommand,
    },
    /// Manage enrollment tokens for devices.
    EnrollToken {
        #[command(subcommand)]
        command: EnrollTokenCommand,
    },
}

#[derive(Subcommand)]
enum EnrollTokenCommand {
    /// Create a token and print it (shown only this once; the relay keeps a hash).
    Create {
        /// The organisation enrolled devices belong to.
        #[arg(long)]
        org: String,
        /// How long the token stays valid: 30m, 12h, 7d or seconds.
        #[arg(long, default_value = "7d", value_parser = tether_relay::config::parse_duration)]
        expires: std::time::Duration,
        /// How many devices may enroll with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    match cli.command.unwrap_or(Command::Serve {
        listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
    }) {
        Command::Serve { listen } => serve(listen, data_dir).await,
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
        Command::EnrollToken {
            command: EnrollTokenCommand::Create { org, expires, uses },
        } => {
            use tether_relay::store::Store;
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let store = tether_relay::store::SqliteStore::open(&data_dir)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let t = store.create_token(&org, expires.as_secs(), uses, now)?;
            println!(
                "enrollment token for {org:?}: {} use(s), expires in {} s (unix {}).",
                t.uses,
                expires.as_secs(),
                t.expires_unix
            );
            println!("token (shown only once):");
            println!("{}", t.token);
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

async fn serve(listen: SocketAddr, data_dir: PathBuf) -> anyhow::Result<()> {
    let relay = Relay::spawn(RelayConfig::new(listen, data_dir))
        .await
        .context("starting the relay")?;
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
