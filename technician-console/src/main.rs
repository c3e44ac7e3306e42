//! `tether-console`: parse the command line, run one session, print, exit with a meaningful code.

use clap::{Parser, Subcommand};
use tether_console::{ConsoleConfig, ConsoleError, Session, open_session, render};
use tether_net::cli::RelayArgs;
use tether_proto::diag::{Probe, ProbeKind};
use tether_proto::fleet::{FleetQuery, FleetReply};
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
    /// With --code: fetch a machine's full inventory in a live session (asks the user for
    /// `inventory`). With a subcommand: query enrolled devices.
    #[command(args_conflicts_with_subcommands = true)]
    Inventory {
        /// The code the user reads to you, e.g. "417 302 958".
        #[arg(long)]
        code: Option<SessionCode>,
        #[command(subcommand)]
        fleet: Option<InventoryCommand>,
    },
    /// Enrolled devices of your organisation.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
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

#[derive(Subcommand)]
enum DevicesCommand {
    /// List the enrolled devices.
    List,
    /// One device and its current inventory.
    Show {
        /// Device id or host name.
        device: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Json,
}

#[derive(Subcommand)]
enum InventoryCommand {
    /// Export every device's current inventory.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// What changed on a device, and when.
    History {
        /// Device id or host name.
        device: String,
    },
    /// Which devices have a package: NAME or NAME=VERSION.
    Search {
        /// NAME or NAME=VERSION.
        #[arg(long)]
        software: String,
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
    if let Some(q) = fleet_query(&cli.command) {
        return fleet(&cli, &config, q).await;
    }
    let (code, scope) = match &cli.command {
        Command::Inventory { code, .. } => (
            code.unwrap_or_else(|| usage("--code, or a subcommand (export, history, search)")),
            Scope::Inventory,
        ),
        Command::Devices { .. } => usage("devices needs a subcommand"),
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

fn fleet_query(c: &Command) -> Option<FleetQuery> {
    Some(match c {
        Command::Devices {
            command: DevicesCommand::List,
        } => FleetQuery::ListDevices,
        Command::Devices {
            command: DevicesCommand::Show { device },
        } => FleetQuery::ShowDevice {
            device: device.clone(),
        },
        Command::Inventory {
            fleet: Some(InventoryCommand::Export { .. }),
            ..
        } => FleetQuery::Export,
        Command::Inventory {
            fleet: Some(InventoryCommand::History { device }),
            ..
        } => FleetQuery::History {
            device: device.clone(),
        },
        Command::Inventory {
            fleet: Some(InventoryCommand::Search { software }),
            ..
        } => {
            let (name, version) = match software.split_once('=') {
                Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
                None => (software.trim().to_string(), None),
            };
            FleetQuery::Search { name, version }
        }
        _ => return None,
    })
}

async fn fleet(cli: &Cli, config: &ConsoleConfig, q: FleetQuery) -> Result<(), ConsoleError> {
    let replies = tether_console::fleet::query(config, q).await?;
    let json = |v: serde_json::Result<String>| v.map_err(|e| ConsoleError::Output(e.to_string()));
    let out = match (&cli.command, replies.as_slice()) {
        (
            Command::Inventory {
                fleet: Some(InventoryCommand::Export { format, .. }),
                ..
            },
            r,
        ) => {
            let devices: Vec<_> = r
                .iter()
                .filter_map(|r| match r {
                    FleetReply::Device(d) => Some((**d).clone()),
                    _ => None,
                })
                .collect();
            match format {
                Format::Csv => tether_console::fleet::export_csv(&devices),
                Format::Json => json(serde_json::to_string_pretty(&devices))? + "\n",
            }
        }
        (_, [FleetReply::Devices(d)]) if cli.json => json(serde_json::to_string_pretty(d))? + "\n",
        (_, [FleetReply::Devices(d)]) => tether_console::fleet::devices_table(d),
        (_, [FleetReply::Device(d)]) if cli.json => json(serde_json::to_string_pretty(d))? + "\n",
        (_, [FleetReply::Device(d)]) => tether_console::fleet::device_text(d),
        (_, [FleetReply::History(h)]) if cli.json => json(serde_json::to_string_pretty(h))? + "\n",
        (_, [FleetReply::History(h)]) => tether_console::fleet::history_table(h),
        (_, [FleetReply::Hits(h)]) if cli.json => json(serde_json::to_string_pretty(h))? + "\n",
        (_, [FleetReply::Hits(h)]) => tether_console::fleet::hits_table(h),
        (_, other) => {
            return Err(ConsoleError::Protocol(format!(
                "unexpected answer from the relay: {other:?}"
            )));
        }
    };
    match &cli.command {
        Command::Inventory {
            fleet:
                Some(InventoryCommand::Export {
                    out: Some(path), ..
                }),
            ..
        } => std::fs::write(path, out)
            .map_err(|e| ConsoleError::Output(format!("{}: {e}", path.display())))?,
        _ => print!("{out}"),
    }
    Ok(())
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
        Command::Devices { .. } => {}
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
