//! `tether-agent`: parse the command line, then run the library with the window (on a desktop) or the
//! terminal front end.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tether_agent::local_log::{LocalLog, default_state_dir};
use tether_agent::policy::{AgentConfig, DEFAULT_CONFIG};
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
    /// Where this machine's Tether data is kept: the local session log, known organisations, and
    /// (once enrolled) the device identity and report queue.
    #[arg(long, global = true, env = "TETHER_AGENT_DATA", alias = "state-dir")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    relay: RelayArgs,
    /// Without a command: open the window on a desktop.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show a one-time code and share this machine with the technician you read it to.
    Share {
        /// IT's agent config (TOML, e.g. `allowed_orgs = ["Acme IT"]`).
        #[arg(long, env = "TETHER_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// What you need help with, e.g. "printer offline" (at most 200 characters); the
        /// technician sees it when they enter your code.
        #[arg(long)]
        reason: Option<String>,
        /// Stop after one session. Without it, a new code follows each session until you type q
        /// or press Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Open the agent window (the default on a desktop): code, consent dialog, session banner.
    Window {
        /// IT's agent config (TOML, e.g. `allowed_orgs = ["Acme IT"]`).
        #[arg(long, env = "TETHER_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// Seconds the user has to answer the consent dialog (for tests and demos).
        #[arg(long, hide = true, default_value_t = tether_agent::share::CONSENT_TIMEOUT.as_secs())]
        consent_timeout: u64,
        /// What you need help with (at most 200 characters); the technician sees it when they
        /// enter your code.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show the local log of past sessions on this machine.
    Log,
    /// Enroll this machine with your organisation's relay, using a token from IT.
    Enroll {
        /// The enrollment token (`tether-relay enroll-token create`).
        #[arg(long, env = "TETHER_ENROLL_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// Service mode: report inventory to the relay on a schedule until stopped.
    Run {
        /// Time between reports, in seconds.
        #[arg(long, default_value_t = tether_agent::report::DEFAULT_INTERVAL.as_secs())]
        interval_secs: u64,
        /// Read Debian packages from this status file instead of /var/lib/dpkg/status.
        #[arg(long, hide = true)]
        dpkg_status: Option<std::path::PathBuf>,
    },
    /// Show whether this machine is enrolled and what it reports.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The agent's log file, in its data directory.
const LOG_FILE: &str = "agent.log";

fn fail(msg: &dyn std::fmt::Display, code: i32) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(code)
}

fn main() {
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
    let data_dir = cli.data_dir.clone();
    let state_dir = cli.data_dir.or_else(default_state_dir);
    // The service logs to the journal; everywhere else the terminal is the user's, so logs go to
    // the log file (`RUST_LOG` sets the level).
    match (&cli.command, &state_dir) {
        (Some(Command::Run { .. }), _) | (_, None) => tether_net::cli::init_logging(),
        (_, Some(dir)) => tether_net::cli::init_logging_to(&dir.join(LOG_FILE)),
    }
    let relay = cli.relay;
    let mut again = false;
    let (config, window, reason) = match cli.command {
        None | Some(Command::Log) => {
            let Some(dir) = state_dir else {
                fail(&"no state directory (set TETHER_AGENT_DATA)", 2)
            };
            match LocalLog::new(&dir).read() {
                Ok(lines) if lines.is_empty() => {
                    tether_net::outln!("no sessions recorded in {}", dir.display())
                }
                Ok(lines) => lines.iter().for_each(|l| tether_net::outln!("{l}")),
                Err(e) => fail(&e, 1),
            }
            return;
        }
        Some(Command::Share {
            config,
            reason,
            once,
        }) => {
            again = !once;
            (config, None, reason)
        }
        Some(Command::Window {
            config,
            consent_timeout,
            reason,
        }) => (config, Some(consent_timeout), reason),
        Some(Command::Enroll { token }) => {
            exit_with(block_on(tether_agent::cli::enroll(relay, token, data_dir)))
        }
        Some(Command::Run {
            interval_secs,
            dpkg_status,
        }) => exit_with(block_on(tether_agent::cli::run(
            data_dir,
            interval_secs,
            dpkg_status,
        ))),
        Some(Command::Status { json }) => exit_with(tether_agent::cli::status(data_dir, json)),
    };
    let explicit = config.is_some();
    let config_path = config.unwrap_or_else(|| DEFAULT_CONFIG.into());
    let agent_config = match AgentConfig::load(&config_path, explicit) {
        Ok(c) => c,
        Err(e) if window.is_some() => not_configured(&e.to_string()),
        Err(e) => fail(&e, 2),
    };
    let target = match relay.target_with(&agent_config.relay_defaults()) {
        Ok(t) => t,
        Err(e) if window.is_some() => not_configured(&e.to_string()),
        Err(e) => fail(&e, 2),
    };
    let mut share = ShareConfig::new(target);
    share.policy = agent_config.policy();
    share.state_dir = state_dir;
    share.again = again;
    share.reason = match reason.as_deref().map(tether_agent::share::check_reason) {
        None => None,
        Some(Ok(r)) => r,
        Some(Err(e)) => fail(&e, 2),
    };
    if let Some(secs) = window {
        share.consent_timeout = std::time::Duration::from_secs(secs);
        if let Err(e) = tether_agent::window::run(share) {
            fail(&e, 1)
        }
        return;
    }
    block_on(terminal_mode(share));
}

/// The window with nothing to connect to: it opens anyway and says, in plain words, what is missing
/// and whom to ask (a double-click on the desktop icon must never show nothing).
fn not_configured(detail: &str) -> ! {
    eprintln!("error: this computer is not set up for remote help: {detail}");
    match tether_agent::window::run_not_configured(detail) {
        Ok(()) => std::process::exit(2),
        Err(e) => fail(&e, 2),
    }
}

/// Runs `f` on a fresh multi-threaded runtime (the window runs its own, so `main` is not async).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&e, 1));
    runtime.block_on(f)
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

fn exit_with(r: Result<(), String>) -> ! {
    match r {
        Ok(()) => std::process::exit(0),
        Err(e) => fail(&e, 1),
    }
}
