//! `tether-agent`: parse the command line, then run the library with the window (on a desktop) or the
//! terminal front end.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tether_agent::local_log::{LocalLog, default_state_dir};
use tether_agent::policy::{DEFAULT_CONFIG, Policy};
use tether_agent::ui::UserCommand;
use tether_agent::{ShareConfig, terminal, ui};
use tether_net::cli::RelayArgs;

#[derive(Parser)]
#[command(
    name = "tether-agent",
    version,
    about = "Tether agent: let a technician help you, with your consent"
)]
struct Cli {
    /// Where the local session log and known organisations are kept.
    #[arg(long, global = true, env = "TETHER_AGENT_DATA")]
    state_dir: Option<PathBuf>,
    /// Without a command: open the window on a desktop.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show a one-time code and share this machine with the technician you read it to.
    Share {
        #[command(flatten)]
        relay: RelayArgs,
        /// IT's agent config (TOML, e.g. `allowed_orgs = ["Acme IT"]`).
        #[arg(long, env = "TETHER_AGENT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Open the agent window (the default on a desktop): code, consent dialog, session banner.
    Window {
        #[command(flatten)]
        relay: RelayArgs,
        /// IT's agent config (TOML, e.g. `allowed_orgs = ["Acme IT"]`).
        #[arg(long, env = "TETHER_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// Seconds the user has to answer the consent dialog (for tests and demos).
        #[arg(long, hide = true, default_value_t = tether_agent::share::CONSENT_TIMEOUT.as_secs())]
        consent_timeout: u64,
    },
    /// Show the local log of past sessions on this machine.
    Log,
}

fn fail(msg: &dyn std::fmt::Display, code: i32) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(code)
}

fn main() {
    tether_net::cli::init_logging();
    let mut cli = Cli::parse();
    if cli.command.is_none() {
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            fail(
                &"no desktop found (DISPLAY and WAYLAND_DISPLAY are unset); use `tether-agent share`",
                2,
            )
        }
        // The window with every option from the environment.
        cli.command = Cli::parse_from(["tether-agent", "window"]).command;
    }
    let state_dir = cli.state_dir.or_else(default_state_dir);
    let (relay, config, window) = match cli.command {
        None | Some(Command::Log) => {
            let Some(dir) = state_dir else {
                fail(&"no state directory (set TETHER_AGENT_DATA)", 2)
            };
            match LocalLog::new(&dir).read() {
                Ok(lines) if lines.is_empty() => {
                    println!("no sessions recorded in {}", dir.display())
                }
                Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
                Err(e) => fail(&e, 1),
            }
            return;
        }
        Some(Command::Share { relay, config }) => (relay, config, None),
        Some(Command::Window {
            relay,
            config,
            consent_timeout,
        }) => (relay, config, Some(consent_timeout)),
    };
    let target = relay.target().unwrap_or_else(|e| fail(&e, 2));
    let explicit = config.is_some();
    let policy = Policy::load(&config.unwrap_or_else(|| DEFAULT_CONFIG.into()), explicit)
        .unwrap_or_else(|e| fail(&e, 2));
    let mut share = ShareConfig::new(target);
    share.policy = policy;
    share.state_dir = state_dir;
    if let Some(secs) = window {
        share.consent_timeout = std::time::Duration::from_secs(secs);
        if let Err(e) = tether_agent::window::run(share) {
            fail(&e, 1)
        }
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&e, 1));
    runtime.block_on(terminal_mode(share));
}

async fn terminal_mode(share: ShareConfig) {
    let (link, handle) = ui::channels();
    let commands = handle.commands.clone();
    let front = tokio::spawn(terminal::run(
        handle,
        tokio::io::BufReader::new(tokio::io::stdin()),
        std::io::stdout(),
    ));
    let ctrl_c = tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if commands.send(UserCommand::EndSession).await.is_err() {
                // The session is already gone; a second Ctrl-C just leaves.
                std::process::exit(130);
            }
        }
    });
    let result = tether_agent::share(share, link).await;
    // Let the front end print the last events; stdin cannot be cancelled, so exit explicitly.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), front).await;
    ctrl_c.abort();
    match result {
        Ok(_) => std::process::exit(0),
        Err(e) => fail(&e, 1),
    }
}
