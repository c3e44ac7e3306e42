//! `tether-console`: parse the command line, run one session, print, exit with a meaningful code.

use clap::{Parser, Subcommand};
use tether_console::{ConsoleConfig, ConsoleError, Session, open_session, render};
use tether_net::cli::RelayArgs;
use tether_proto::diag::Probe;
use tether_proto::{Scope, ScopeSet, SessionCode};

#[derive(Parser)]
#[command(name = "tether-console", version, about = "Tether technician console")]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,
    /// Your technician token, from `tether-relay technician add`.
    #[arg(long, env = "TETHER_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch the machine's full hardware and software inventory (asks the user for `inventory`).
    Inventory {
        /// The code the user reads to you, e.g. "417 302 958".
        #[arg(long)]
        code: SessionCode,
    },
    /// Run a diagnostic probe (asks the user for `diagnostics`).
    Diag {
        /// The code the user reads to you.
        #[arg(long, required_unless_present = "list")]
        code: Option<SessionCode>,
        /// List the probes instead of running one.
        #[arg(long)]
        list: bool,
        /// The probe to run (see --list).
        #[arg(required_unless_present = "list")]
        probe: Option<Probe>,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Command::Diag { list: true, .. } = cli.command {
        print!("{}", render::catalog());
        return;
    }
    let config = match (cli.relay.target(), cli.token.clone()) {
        (Ok(relay), Some(token)) => ConsoleConfig { relay, token },
        (Err(e), _) => usage(&e.to_string()),
        (_, None) => usage("no technician token: pass --token or set TETHER_TOKEN"),
    };
    if let Err(e) = run(cli, config).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

async fn run(cli: Cli, config: ConsoleConfig) -> Result<(), ConsoleError> {
    let (code, scope) = match &cli.command {
        Command::Inventory { code } => (*code, Scope::Inventory),
        Command::Diag { code, .. } => (
            code.unwrap_or_else(|| usage("--code is required")),
            Scope::Diagnostics,
        ),
    };
    eprintln!(
        "claiming {} and waiting for the user's consent...",
        code.redacted()
    );
    let mut session =
        open_session(&config, code, [scope].into_iter().collect::<ScopeSet>()).await?;
    eprintln!(
        "connected as {} of {}; granted: {}; verification code {}",
        session.technician.name, session.technician.org, session.granted, session.verification
    );
    let result = serve(&cli, &mut session).await;
    session.end().await;
    result
}

async fn serve(cli: &Cli, session: &mut Session) -> Result<(), ConsoleError> {
    let json =
        |v: serde_json::Result<String>| v.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    match &cli.command {
        Command::Inventory { .. } => {
            let inv = session.inventory().await?;
            if cli.json {
                println!("{}", json(serde_json::to_string_pretty(&inv)))
            } else {
                print!("{}", render::inventory(&inv))
            }
        }
        Command::Diag { probe, .. } => {
            let probe = probe.unwrap_or_else(|| usage("which probe? see --list"));
            let report = session.diagnostic(probe).await?;
            if cli.json {
                println!("{}", json(serde_json::to_string_pretty(&report)))
            } else {
                print!("{}", render::diag(&report))
            }
        }
    }
    Ok(())
}
