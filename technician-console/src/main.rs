//! `tether-console`: parse the command line, run one session, print, exit with a meaningful code.

use clap::{Parser, Subcommand};
use tether_console::{ConsoleConfig, ConsoleError, Session, open_session, render};
use tether_net::cli::RelayArgs;
use tether_proto::diag::{Probe, ProbeKind};
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
    /// Fetch the machine's inventory summary (asks the user for `inventory`).
    Inventory {
        /// The code the user reads to you, e.g. "417 302 958".
        #[arg(long)]
        code: SessionCode,
    },
    /// Run diagnostic probes (asks the user for `diagnostics`).
    ///
    /// Parameters follow the probe name as key=value or --key value, e.g.
    /// `diag --code C tcp-connect host=example.com port=443` or `... tcp-connect --host example.com --port 443`.
    Diag {
        /// The code the user reads to you (not needed for --list).
        #[arg(long, required_unless_present = "list")]
        code: Option<SessionCode>,
        /// Show the probe catalog with each probe's parameters.
        #[arg(long, conflicts_with_all = ["all", "probe"])]
        list: bool,
        /// Run the standard health check (every probe needing no parameters); problems first.
        #[arg(long, conflicts_with = "probe")]
        all: bool,
        /// Override each probe's timeout, in seconds (1-120).
        #[arg(long)]
        timeout: Option<u16>,
        /// The probe to run (see --list).
        #[arg(required_unless_present_any = ["list", "all"])]
        probe: Option<ProbeKind>,
        /// The probe's parameters: key=value or --key value.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[tokio::main]
async fn main() {
    tether_net::cli::init_logging();
    let mut cli = Cli::parse();
    // Validate diagnostics parameters before anything connects: a bad one never leaves this machine.
    let mut probe = None;
    if let Command::Diag {
        list,
        timeout,
        probe: kind,
        args,
        ..
    } = &mut cli.command
    {
        // `--json` after the probe name lands among the probe's arguments; take it back.
        if let Some(i) = args.iter().position(|a| a == "--json") {
            args.remove(i);
            cli.json = true;
        }
        if *list {
            if cli.json {
                let text = serde_json::to_string_pretty(&tether_proto::diag::catalog());
                println!(
                    "{}",
                    text.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                );
            } else {
                print!("{}", render::catalog());
            }
            return;
        }
        if let Some(k) = kind {
            match Probe::parse(*k, args) {
                Ok(p) => probe = Some(p),
                Err(e) => usage(&e.to_string()),
            }
        }
        if let Err(e) = ProbeKind::Uptime.effective_timeout_secs(*timeout) {
            usage(&format!("--timeout: {e}"));
        }
    }
    let config = match (cli.relay.target(), cli.token.clone()) {
        (Ok(relay), Some(token)) => ConsoleConfig { relay, token },
        (Err(e), _) => usage(&e.to_string()),
        (_, None) => usage("no technician token: pass --token or set TETHER_TOKEN"),
    };
    if let Err(e) = run(cli, config, probe).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

async fn run(cli: Cli, config: ConsoleConfig, probe: Option<Probe>) -> Result<(), ConsoleError> {
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
    let result = serve(&cli, &mut session, probe).await;
    session.end().await;
    result
}

async fn serve(cli: &Cli, session: &mut Session, probe: Option<Probe>) -> Result<(), ConsoleError> {
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
        Command::Diag {
            all: true, timeout, ..
        } => {
            let reports = session.health_check(*timeout).await?;
            if cli.json {
                println!("{}", json(serde_json::to_string_pretty(&reports)))
            } else {
                print!("{}", render::diag_summary(&reports))
            }
        }
        Command::Diag { timeout, .. } => {
            let probe = probe.unwrap_or_else(|| usage("which probe? see --list"));
            let report = session.diagnostic_with(probe, *timeout).await?;
            if cli.json {
                println!("{}", json(serde_json::to_string_pretty(&report)))
            } else {
                print!("{}", render::diag(&report))
            }
        }
    }
    Ok(())
}
