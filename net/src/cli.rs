//! Command-line options every relay client shares (agent and console), so both spell them alike.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::{CONNECT_TIMEOUT, RelayTarget};
use crate::path::Direct;
use crate::tls::{Trust, parse_fingerprint};

/// Where the relay is and how to trust it. Flattened into the top level of each client, and global,
/// so they work before or after the subcommand alike (`tether-agent --relay X share` and
/// `tether-agent share --relay X`).
#[derive(Debug, Clone, clap::Args)]
pub struct RelayArgs {
    /// Relay address, host:port [default: the config file's, else 127.0.0.1:4433].
    #[arg(long, env = "TETHER_RELAY", global = true)]
    pub relay: Option<String>,
    /// The relay certificate's SHA-256 fingerprint, as `tether-relay` printed it.
    #[arg(
        long = "relay-cert-sha256",
        env = "TETHER_RELAY_CERT_SHA256",
        global = true
    )]
    pub fingerprint: Option<String>,
    /// A PEM file of CA certificates to verify the relay with, instead of a fingerprint.
    #[arg(
        long,
        env = "TETHER_RELAY_CA_FILE",
        conflicts_with = "fingerprint",
        global = true
    )]
    pub ca_file: Option<PathBuf>,
    /// Seconds to wait for the relay to answer.
    #[arg(long, default_value_t = CONNECT_TIMEOUT.as_secs(), global = true)]
    pub connect_timeout: u64,
    /// Keep every session's packets on the relay: no direct path to the other end is tried, and
    /// this end's addresses are not offered to it (for networks that must not see peer addresses).
    #[arg(long, env = "TETHER_RELAY_ONLY", global = true)]
    pub relay_only: bool,
}

/// The relay options could not be turned into a target.
#[derive(Debug, thiserror::Error)]
pub enum RelayArgsError {
    /// Neither a fingerprint nor a CA file: there is no unverified mode.
    #[error(
        "no way to verify the relay: pass --relay-cert-sha256 (or TETHER_RELAY_CERT_SHA256) with the fingerprint \
         tether-relay printed, or --ca-file, or set relay_cert_sha256 in the agent's config file"
    )]
    NoTrust,
    /// The fingerprint is malformed.
    #[error(transparent)]
    Fingerprint(#[from] crate::tls::TlsError),
}

/// The relay address used when neither a flag, the environment nor a config file names one.
pub const DEFAULT_RELAY: &str = "127.0.0.1:4433";

/// Where the relay is and how to trust it, as a config file (IT's `agent.toml`) says; flags and the
/// environment take precedence over each field.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct RelayDefaults {
    /// Relay address, host:port.
    pub relay: Option<String>,
    /// The relay certificate's SHA-256 fingerprint.
    pub relay_cert_sha256: Option<String>,
    /// A PEM file of CA certificates to verify the relay with.
    pub relay_ca_file: Option<PathBuf>,
    /// IT's policy: sessions stay on the relay (no direct path), whatever the command line says.
    #[serde(default)]
    pub relay_only: bool,
}

impl RelayArgs {
    /// The relay target these options describe.
    pub fn target(&self) -> Result<RelayTarget, RelayArgsError> {
        self.target_with(&RelayDefaults::default())
    }

    /// The relay target these options describe, with what they leave open taken from `defaults`.
    /// A fingerprint or CA file given here replaces both of the file's, so the two never mix.
    pub fn target_with(&self, defaults: &RelayDefaults) -> Result<RelayTarget, RelayArgsError> {
        let (fingerprint, ca_file) = if self.fingerprint.is_some() || self.ca_file.is_some() {
            (&self.fingerprint, &self.ca_file)
        } else {
            (&defaults.relay_cert_sha256, &defaults.relay_ca_file)
        };
        let trust = match (fingerprint, ca_file) {
            (Some(fp), _) => Trust::Fingerprint(parse_fingerprint(fp)?),
            (None, Some(ca)) => Trust::CaFile(ca.clone()),
            (None, None) => return Err(RelayArgsError::NoTrust),
        };
        let addr = self
            .relay
            .clone()
            .or_else(|| defaults.relay.clone())
            .unwrap_or_else(|| DEFAULT_RELAY.to_string());
        Ok(RelayTarget {
            addr,
            trust,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            direct: if self.relay_only || defaults.relay_only {
                Direct::Forbidden
            } else {
                Direct::Allowed
            },
        })
    }
}

/// The log filter without `RUST_LOG`: our warnings, but not enigo's chatter about X11 key mapping
/// ("modifier_no: 5 is unmapped"), which means nothing to the user reading the terminal.
pub const DEFAULT_LOG_FILTER: &str = "warn,enigo=error";

/// Logs to standard error, filtered by `RUST_LOG` (default: [`DEFAULT_LOG_FILTER`]), so standard output stays for
/// what the user or a script reads.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .init();
}

/// `RUST_LOG`, or [`DEFAULT_LOG_FILTER`] without it.
fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| DEFAULT_LOG_FILTER.into())
}

/// Above this size the log file is started afresh when a program starts.
pub const MAX_LOG_FILE: u64 = 8 * 1024 * 1024;

/// Logs to the file `path` (appended, without colours), filtered by `RUST_LOG` (default:
/// [`DEFAULT_LOG_FILTER`]): for a program whose terminal belongs to someone who asked for help,
/// not to a developer, so no log line ever lands among what it tells them. A file above
/// [`MAX_LOG_FILE`] is started afresh. If the file cannot be opened, nothing is logged unless
/// `RUST_LOG` asks for it, and then to standard error.
pub fn init_logging_to(path: &std::path::Path) {
    let too_big = std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG_FILE);
    let file = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(!too_big)
                .write(true)
                .truncate(too_big)
                .open(path)
        });
    match file {
        Ok(file) => tracing_subscriber::fmt()
            .with_env_filter(log_filter())
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init(),
        Err(_) if std::env::var_os("RUST_LOG").is_some() => tracing_subscriber::fmt()
            .with_env_filter(log_filter())
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init(),
        Err(_) => {}
    }
}

/// Writes to standard output for a command-line tool. A closed standard output (the reader of
/// `| head` has seen enough) is a normal end, not a failure: the process exits 0 at once, with
/// no panic and no message. Any other write error is reported on standard error (exit 1).
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| out.flush());
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// `print!` for command-line tools: see [`write_stdout`] (a closed standard output ends quietly).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!($($arg)*)) };
}

/// `println!` for command-line tools: see [`write_stdout`] (a closed standard output ends quietly).
#[macro_export]
macro_rules! outln {
    () => { $crate::cli::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Writes a line to standard output for a window, whose standard output is a side channel (tests
/// read it; a desktop launcher often closes it): a closed or broken standard output is ignored and
/// the window goes on.
pub fn write_stdout_quietly(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.flush());
}

/// `println!` for windows: see [`write_stdout_quietly`] (never panics on a closed standard output).
#[macro_export]
macro_rules! quietln {
    ($($arg:tt)*) => { $crate::cli::write_stdout_quietly(format_args!("{}\n", format_args!($($arg)*))) };
}
