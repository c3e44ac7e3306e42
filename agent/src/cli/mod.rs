//! The `tether-agent` command line: its arguments, running each command, and how each ends (the
//! words on stderr and the exit code). `main.rs` only parses, sets up logging and exits with
//! [`Failure::code`].
//!
//! # Layout
//! - this file: [`Cli`] and [`Command`], [`Cli::resolve`] (no command means the window), [`run`].
//! - [`enrolled`]: `enroll`, `run` (service mode) and `status`.

pub mod enrolled;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tether_net::cli::RelayArgs;

use crate::local_log::{LocalLog, default_state_dir};
use crate::policy::{AgentConfig, DEFAULT_CONFIG};
use crate::screen::backend::{self, Backend, SessionEnv};
use crate::ui::{self, UserCommand};
use crate::{ShareConfig, terminal};

/// The agent's command line.
#[derive(Debug, Parser)]
#[command(
    name = "tether-agent",
    version,
    about = "Tether agent: let a technician help you, with your consent"
)]
pub struct Cli {
    /// Where this machine's Tether data is kept: the local session log, known organisations, and
    /// (once enrolled) the device identity and report queue.
    #[arg(long, global = true, env = "TETHER_AGENT_DATA", alias = "state-dir")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    relay: RelayArgs,
    /// Screen and input backend: x11, portal, wlroots or mutter (default: chosen from the desktop
    /// session).
    #[arg(long, global = true, env = "TETHER_BACKEND")]
    backend: Option<Backend>,
    /// Send every pixel of the screen exactly, also where a video plays (without it, a region
    /// that plays video goes through a video codec, at a tenth of the bytes, and is sent exactly
    /// again once it stops).
    #[arg(long, global = true, env = "TETHER_LOSSLESS")]
    lossless: bool,
    /// Without a command: open the window on a desktop.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The agent's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// The folder where files the technician sends you are saved (default:
        /// ~/Downloads/Tether). Nothing there is ever overwritten: a name that exists gets a
        /// number, e.g. "report (1).txt".
        #[arg(long, value_name = "DIR")]
        files_dir: Option<PathBuf>,
        /// A folder the technician may list and copy files from, once you allow "files"
        /// (default: your home folder). Repeat it for several folders. Nothing outside them, and
        /// nothing through a symbolic link, can be read.
        #[arg(long = "files-root", value_name = "DIR")]
        files_roots: Vec<PathBuf>,
        /// Another node of the relay's cluster, tried when the relay is lost (you get a new code
        /// from it). Repeat it for several; they are trusted as the relay is (use --ca-file with
        /// the cluster's CA).
        #[arg(long = "other-relay", value_name = "HOST:PORT")]
        other_relays: Vec<String>,
    },
    /// Open the agent window (the default on a desktop): code, consent dialog, session banner.
    Window {
        /// IT's agent config (TOML, e.g. `allowed_orgs = ["Acme IT"]`).
        #[arg(long, env = "TETHER_AGENT_CONFIG")]
        config: Option<PathBuf>,
        /// Seconds the user has to answer the consent dialog (for tests and demos).
        #[arg(long, hide = true, default_value_t = crate::share::CONSENT_TIMEOUT.as_secs())]
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
    /// Service mode: report inventory to the relay on a schedule until stopped, and take sessions
    /// without a code as IT set them up (unattended by IT's signed policy, attended through the
    /// logged-in user's `tether-agent desktop`).
    Run {
        /// Time between reports, in seconds.
        #[arg(long, default_value_t = crate::report::DEFAULT_INTERVAL.as_secs())]
        interval_secs: u64,
        /// The local socket the logged-in user's `tether-agent desktop` connects to, for attended
        /// sessions without a code (default /run/tether-agent/desktop.sock when run as root; none
        /// otherwise: attended sessions are then refused as "nobody is logged in").
        #[arg(long, value_name = "PATH")]
        desktop_socket: Option<PathBuf>,
        /// Who may connect to it: "logind" (the user of the active graphical session, the
        /// default) or a numeric uid (where there is no logind).
        #[arg(long, value_name = "logind|UID", default_value = "logind")]
        desktop_user: crate::desktop_socket::DesktopUser,
        /// Read Debian packages from this status file instead of /var/lib/dpkg/status.
        #[arg(long, hide = true)]
        dpkg_status: Option<std::path::PathBuf>,
    },
    /// The logged-in user's agent for an enrolled computer: sessions without a code ask you here
    /// (started when you log in; connects to the enrolled service's local socket).
    Desktop {
        /// The service's socket.
        #[arg(long, value_name = "PATH", default_value = crate::desktop_socket::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Ask in this terminal instead of the window (the default where there is no desktop).
        #[arg(long)]
        terminal: bool,
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

/// How a command failed: what to print after `error: ` (if anything is left to print) and the exit
/// code.
#[derive(Debug)]
pub struct Failure {
    /// Printed as `error: {message}` on stderr; `None` when it was printed already.
    pub message: Option<String>,
    /// The process's exit code.
    pub code: i32,
}

impl Failure {
    fn new(message: impl std::fmt::Display, code: i32) -> Self {
        Failure {
            message: Some(message.to_string()),
            code,
        }
    }
}

impl Cli {
    /// With no command, the window with every option from the environment; a usage error (exit
    /// 2) where there is no desktop.
    pub fn resolve(mut self) -> Result<Self, Failure> {
        if self.command.is_none() {
            if std::env::var_os("DISPLAY").is_none()
                && std::env::var_os("WAYLAND_DISPLAY").is_none()
            {
                return Err(Failure::new(
                    "no desktop found (DISPLAY and WAYLAND_DISPLAY are unset); use `tether-agent share`",
                    2,
                ));
            }
            self.command = Cli::parse_from(["tether-agent", "window"]).command;
        }
        Ok(self)
    }

    /// Where logs go: `None` for the journal (the service, or no data directory), else the log file.
    /// The terminal is the user's, so nothing else logs there (`RUST_LOG` sets the level).
    pub fn log_file(&self) -> Option<PathBuf> {
        match (
            &self.command,
            self.data_dir.clone().or_else(default_state_dir),
        ) {
            (Some(Command::Run { .. }), _) | (_, None) => None,
            (_, Some(dir)) => Some(dir.join(LOG_FILE)),
        }
    }
}

/// Runs the command (see [`Cli::resolve`] for none).
pub fn run(cli: Cli) -> Result<(), Failure> {
    let data_dir = cli.data_dir.clone();
    let state_dir = cli.data_dir.or_else(default_state_dir);
    let relay = cli.relay;
    let backend = cli
        .backend
        .unwrap_or_else(|| backend::choose(&SessionEnv::from_env()));
    let video = !cli.lossless;
    let mut again = false;
    let (mut files_dir, mut files_roots) = (None, Vec::new());
    let mut other_relays: Vec<String> = Vec::new();
    let (config, window, reason) = match cli.command {
        None | Some(Command::Log) => {
            let Some(dir) = state_dir else {
                return Err(Failure::new(
                    "no state directory (set TETHER_AGENT_DATA)",
                    2,
                ));
            };
            let lines = LocalLog::new(&dir).read().map_err(|e| Failure::new(e, 1))?;
            if lines.is_empty() {
                tether_net::outln!("no sessions recorded in {}", dir.display())
            }
            lines.iter().for_each(|l| tether_net::outln!("{l}"));
            return Ok(());
        }
        Some(Command::Share {
            config,
            reason,
            once,
            files_dir: dir,
            files_roots: roots,
            other_relays: others,
        }) => {
            again = !once;
            (files_dir, files_roots) = (dir, roots);
            other_relays = others;
            (config, None, reason)
        }
        Some(Command::Window {
            config,
            consent_timeout,
            reason,
        }) => (config, Some(consent_timeout), reason),
        Some(Command::Enroll { token }) => {
            return block_on(enrolled::enroll(relay, token, data_dir))?
                .map_err(|e| Failure::new(e, 1));
        }
        Some(Command::Run {
            interval_secs,
            dpkg_status,
            desktop_socket,
            desktop_user,
        }) => {
            let desktop = desktop_socket
                .or_else(|| is_root().then(|| crate::desktop_socket::DEFAULT_SOCKET.into()))
                .map(|socket| crate::desktop_socket::DesktopConfig {
                    socket,
                    user: desktop_user,
                });
            return block_on(enrolled::run(data_dir, interval_secs, dpkg_status, desktop))?
                .map_err(|e| Failure::new(e, 1));
        }
        Some(Command::Desktop { socket, terminal }) => {
            // The relay is the one the service names once it lets us in.
            let unknown = tether_net::RelayTarget {
                addr: String::new(),
                trust: tether_net::Trust::Fingerprint(String::new()),
                connect_timeout: tether_net::client::CONNECT_TIMEOUT,
                direct: Default::default(),
            };
            let mut share = ShareConfig::new(unknown);
            (share.screen, share.input) = backend::providers(backend, state_dir.as_deref());
            share.clipboard = crate::clipboard::provider(backend);
            share.backend = Some(backend);
            share.video = video;
            share.state_dir = state_dir;
            let desktop_session = std::env::var_os("DISPLAY").is_some()
                || std::env::var_os("WAYLAND_DISPLAY").is_some();
            if terminal || !desktop_session {
                return block_on(desktop_mode(share, socket))?;
            }
            // Started at every login: where the computer is not enrolled, no window.
            if !socket.exists() {
                return Err(Failure::new(
                    format!(
                        "no Tether service socket at {} (this computer is not enrolled, or \
                         `tether-agent run` is not running)",
                        socket.display()
                    ),
                    1,
                ));
            }
            return crate::window::run_desktop(share, socket).map_err(|e| Failure::new(e, 1));
        }
        Some(Command::Status { json }) => {
            return enrolled::status(data_dir, json, backend).map_err(|e| Failure::new(e, 1));
        }
    };
    let explicit = config.is_some();
    let config_path = config.unwrap_or_else(|| DEFAULT_CONFIG.into());
    let agent_config = match AgentConfig::load(&config_path, explicit) {
        Ok(c) => c,
        Err(e) if window.is_some() => return Err(not_configured(&e.to_string())),
        Err(e) => return Err(Failure::new(e, 2)),
    };
    let target = match relay.target_with(&agent_config.relay_defaults()) {
        Ok(t) => t,
        Err(e) if window.is_some() => return Err(not_configured(&e.to_string())),
        Err(e) => return Err(Failure::new(e, 2)),
    };
    let mut share = ShareConfig::new(target);
    (share.screen, share.input) = backend::providers(backend, state_dir.as_deref());
    share.clipboard = crate::clipboard::provider(backend);
    share.backend = Some(backend);
    share.video = video;
    tracing::info!(
        backend = backend.as_str(),
        "screen and input: {}",
        backend.describe()
    );
    share.policy = agent_config.policy();
    share.state_dir = state_dir;
    share.again = again;
    if let Some(d) = files_dir.or_else(|| agent_config.files_dir.clone()) {
        share.files.landing = d;
    }
    if files_roots.is_empty() {
        files_roots = agent_config.files_roots.clone().unwrap_or_default();
    }
    if !files_roots.is_empty() {
        // Paths from the console are absolute; so must the roots be to compare with them.
        share.files.roots = files_roots
            .iter()
            .map(|r| std::path::absolute(r).unwrap_or_else(|_| r.clone()))
            .collect();
    }
    if other_relays.is_empty() {
        other_relays = agent_config.other_relays.clone().unwrap_or_default();
    }
    if let Some(bad) = other_relays.iter().find(|a| !is_host_port(a)) {
        return Err(Failure::new(
            format!("other relay {bad:?} is not HOST:PORT (another node of the relay's cluster)"),
            2,
        ));
    }
    share.other_relays = other_relays;
    share.reason = match reason.as_deref().map(crate::share::check_reason) {
        None => None,
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(Failure::new(e, 2)),
    };
    if let Some(secs) = window {
        share.consent_timeout = std::time::Duration::from_secs(secs);
        return crate::window::run(share).map_err(|e| Failure::new(e, 1));
    }
    tether_net::outln!("Screen and input go through {}.", backend.describe());
    block_on(terminal_mode(share))?
}

/// Whether `s` looks like `host:port` (a port from 1 to 65535 after the last colon, a host before).
fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(char::is_whitespace)
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

/// The window with nothing to connect to: it opens anyway and says, in plain words, what is missing
/// and whom to ask (a double-click on the desktop icon must never show nothing). Exit code 2.
fn not_configured(detail: &str) -> Failure {
    eprintln!("error: this computer is not set up for remote help: {detail}");
    match crate::window::run_not_configured(detail) {
        Ok(()) => Failure {
            message: None,
            code: 2,
        },
        Err(e) => Failure::new(e, 2),
    }
}

/// Runs `f` on a fresh multi-threaded runtime (the window runs its own, so `run` is not async).
/// The runtime is not waited for on the way out: the terminal's stdin read cannot be cancelled.
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, Failure> {
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure::new(e, 1))?;
    let out = runtime.block_on(f);
    runtime.shutdown_background();
    Ok(out)
}

/// Whether this process runs as root (the enrolled service's usual way).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `tether-agent desktop`: connect to the service, say so, then answer its sessions in this
/// terminal.
async fn desktop_mode(share: ShareConfig, socket: PathBuf) -> Result<(), Failure> {
    let desktop = crate::desktop::connect(&socket)
        .await
        .map_err(|e| Failure::new(e, 1))?;
    with_terminal(|link| crate::desktop::serve(desktop, share, link)).await
}

async fn terminal_mode(share: ShareConfig) -> Result<(), Failure> {
    with_terminal(|link| async move { crate::share(share, link).await.map(|_| ()) }).await
}

/// Runs `body` with the terminal as its front end (stdin answers, stdout shows, Ctrl-C ends).
async fn with_terminal<F, Fut, E>(body: F) -> Result<(), Failure>
where
    F: FnOnce(ui::UiLink) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
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
                // The session is already gone; a second Ctrl-C just leaves (stdin cannot be
                // cancelled, so nothing else would end the process).
                std::process::exit(130);
            }
        }
    });
    let result = body(link).await;
    // Let the front end print the last events.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), front).await;
    ctrl_c.abort();
    result.map_err(|e| Failure::new(e, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_relays_must_be_host_and_port() {
        for good in ["relay-2.example.com:4433", "127.0.0.1:1", "[::1]:4433"] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in [
            "relay-2",
            "relay:0",
            ":4433",
            "relay:x",
            "a b:1",
            "relay:70000",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }
}
