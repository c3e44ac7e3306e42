//! `tether-relay`: parse the command line, then run the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tether_proto::msg::TechnicianRole;
use tether_relay::config::{DEFAULT_PORT, default_data_dir};
use tether_relay::{Relay, RelayConfig, admin};

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
    /// Check or read the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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
        /// viewer (view only), technician (all session scopes) or admin.
        #[arg(long, default_value = "technician")]
        role: TechnicianRole,
        /// Token lifetime, e.g. 30d; no expiry if omitted.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revoke a technician's token.
    Revoke {
        /// Name.
        name: String,
        /// Organisation.
        #[arg(long)]
        org: String,
    },
    /// List registered technicians.
    List,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain; names the first edited, deleted or reordered record.
    Verify,
    /// Print records.
    Show {
        /// Only the last period, e.g. 24h or 7d.
        #[arg(long)]
        since: Option<String>,
        /// Only records naming this technician.
        #[arg(long)]
        technician: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() {
    tether_net::cli::init_logging();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    let serve_default = Command::Serve {
        listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
    };
    match cli.command.unwrap_or(serve_default) {
        Command::Serve { listen } => serve(listen, data_dir).await,
        Command::Technician { command } => technician(&data_dir, command),
        Command::Audit {
            command: AuditCommand::Verify,
        } => match admin::verify_audit(&data_dir) {
            Ok(n) => {
                println!("audit log intact: {n} records");
                Ok(())
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        },
        Command::Audit {
            command:
                AuditCommand::Show {
                    since,
                    technician,
                    json,
                },
        } => {
            let since = since.map(|s| admin::parse_duration(&s)).transpose()?;
            for r in admin::audit_records(&data_dir, &admin::AuditFilter { since, technician })? {
                println!(
                    "{}",
                    if json {
                        r.to_string()
                    } else {
                        admin::render_record(&r)
                    }
                );
            }
            Ok(())
        }
    }
}

fn technician(data_dir: &std::path::Path, command: TechnicianCommand) -> anyhow::Result<()> {
    match command {
        TechnicianCommand::Add {
            name,
            org,
            role,
            expires,
        } => {
            let valid_for = expires.map(|e| admin::parse_duration(&e)).transpose()?;
            let token = admin::add_technician(data_dir, &name, &org, role, valid_for)?;
            println!("technician {name:?} of {org:?} added with role {role}.");
            println!("token (shown only once; give it to the technician as TETHER_TOKEN):");
            println!("{token}");
        }
        TechnicianCommand::Revoke { name, org } => {
            admin::revoke_technician(data_dir, &name, &org)?;
            println!("technician {name:?} of {org:?} revoked; their token no longer works.");
        }
        TechnicianCommand::List => {
            for t in admin::list_technicians(data_dir)? {
                println!(
                    "{:<24} {:<24} {:<11} {}",
                    t.name,
                    t.org,
                    t.role.name(),
                    t.status
                );
            }
        }
    }
    Ok(())
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
