//! `tether-relay`: parse the command line, then run the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tether_proto::msg::{TechnicianRole, Tier};
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
        /// Connections served at once; beyond this new ones are refused with BUSY.
        #[arg(long, default_value_t = tether_relay::config::MAX_CONNECTIONS)]
        max_connections: usize,
        /// Claims one technician may make per minute.
        #[arg(long, default_value_t = tether_relay::config::CLAIMS_PER_TECHNICIAN_PER_MINUTE)]
        claims_per_minute: usize,
        /// Serve Prometheus metrics over HTTP on this address (off by default), e.g. 127.0.0.1:9464.
        #[arg(long)]
        metrics: Option<SocketAddr>,
    },
    /// Print a summary of a running relay (from its metrics endpoint).
    Status {
        /// The metrics address; by default the one the relay recorded in its data directory.
        #[arg(long)]
        metrics: Option<SocketAddr>,
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
        /// viewer (view only), technician (all session scopes) or admin.
        #[arg(long, default_value = "technician")]
        role: TechnicianRole,
        /// Token lifetime, e.g. 30d; no expiry if omitted.
        #[arg(long)]
        expires: Option<String>,
        /// Support tier: L1, L2 or L3 (escalations go to a higher tier).
        #[arg(long, default_value = "L1")]
        tier: Tier,
    },
    /// Set a technician's support tier (L1, L2 or L3).
    SetTier {
        /// Name.
        name: String,
        /// Organisation.
        #[arg(long)]
        org: String,
        /// L1, L2 or L3.
        tier: Tier,
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
            metrics,
        } => {
            let mut config = RelayConfig::new(listen, data_dir);
            config.limits.max_connections = max_connections;
            config.limits.claims_per_technician_per_minute = claims_per_minute;
            config.metrics = metrics;
            serve(config).await
        }
        Command::Status { metrics } => status(metrics, &data_dir).await,
        Command::Technician { command } => technician(&data_dir, command),
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
            tether_net::outln!(
                "enrollment token for {org:?}: {} use(s), expires in {} s (unix {}).",
                t.uses,
                expires.as_secs(),
                t.expires_unix
            );
            tether_net::outln!("token (shown only once):");
            tether_net::outln!("{}", t.token);
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => match admin::verify_audit(&data_dir) {
            Ok(n) => {
                tether_net::outln!("audit log intact: {n} records");
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
                tether_net::outln!(
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
            tier,
        } => {
            let valid_for = expires.map(|e| admin::parse_duration(&e)).transpose()?;
            let token = admin::add_technician(data_dir, &name, &org, role, valid_for)?;
            if tier != Tier::L1 {
                admin::set_technician_tier(data_dir, &name, &org, tier)?;
            }
            tether_net::outln!(
                "technician {name:?} of {org:?} added with role {role}, tier {tier}."
            );
            tether_net::outln!(
                "token (shown only once; give it to the technician as TETHER_TOKEN):"
            );
            tether_net::outln!("{token}");
        }
        TechnicianCommand::SetTier { name, org, tier } => {
            admin::set_technician_tier(data_dir, &name, &org, tier)?;
            tether_net::outln!("technician {name:?} of {org:?} is now {tier}.");
        }
        TechnicianCommand::Revoke { name, org } => {
            admin::revoke_technician(data_dir, &name, &org)?;
            tether_net::outln!(
                "technician {name:?} of {org:?} revoked; their token no longer works."
            );
        }
        TechnicianCommand::List => {
            for t in admin::list_technicians(data_dir)? {
                tether_net::outln!(
                    "{:<24} {:<24} {:<11} {:<3} {}",
                    t.name,
                    t.org,
                    t.role.name(),
                    t.tier,
                    t.status
                );
            }
        }
    }
    Ok(())
}
async fn serve(config: RelayConfig) -> anyhow::Result<()> {
    let relay = Relay::spawn(config).await.context("starting the relay")?;
    tether_net::outln!(
        "tether-relay listening on {} (UDP/QUIC)",
        relay.local_addr()
    );
    tether_net::outln!("certificate SHA-256: {}", relay.fingerprint());
    tether_net::outln!("data directory:      {}", relay.data_dir().display());
    tether_net::outln!("audit log:           {}", relay.audit_path().display());
    if let Some(m) = relay.metrics_addr() {
        tether_net::outln!("metrics:             http://{m}/metrics");
    }
    tether_net::outln!();
    tether_net::outln!("Agents and consoles pin the certificate with:");
    tether_net::outln!("  export TETHER_RELAY_CERT_SHA256={}", relay.fingerprint());
    tether_net::outln!("Register a technician with: tether-relay technician add NAME --org ORG");
    tether_net::outln!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tether_net::outln!("stopping: telling connected peers and draining...");
    relay.shutdown().await;
    tether_net::outln!("stopped.");
    Ok(())
}

async fn status(metrics: Option<SocketAddr>, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let addr = match metrics {
        Some(a) => a,
        None => {
            let file = data_dir.join(tether_relay::metrics::ADDR_FILE);
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!(
                    "no running relay with metrics recorded in {}; start it with \
                     `tether-relay serve --metrics 127.0.0.1:9464`, or pass --metrics ADDR",
                    data_dir.display()
                )
            })?;
            text.trim()
                .parse()
                .with_context(|| format!("{} holds no address", file.display()))?
        }
    };
    let samples = tether_relay::metrics::scrape(addr).await?;
    tether_net::outln!("tether-relay at http://{addr}/metrics");
    tether_net::out!("{}", tether_relay::metrics::summary(&samples));
    Ok(())
}
