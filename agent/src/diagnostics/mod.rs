//! Diagnostics: runs the probes of the `diagnostics` scope and judges what they measure.
//!
//! Every probe runs on its own thread against a deadline. The async side waits at most the probe's
//! timeout and then reports [`Verdict::TimedOut`], so a hung probe (a dead NFS mount in `statvfs`, a
//! resolver that never answers) never holds up the session. The probes themselves honour the same
//! deadline (socket timeouts, child processes killed), so an abandoned thread ends soon after.
//!
//! Facts come from the OS directly (/proc, /sys, statvfs, sockets) or from a fixed set of tools run with
//! a fixed argv through [`command`], never through a shell; the only technician-supplied values that reach
//! them are the validated newtypes of [`tether_proto::diag`]. Judging is done by small pure functions, so
//! the thresholds are tested with made-up numbers.
//!
//! # Layout
//! - [`command`]: run a tool from a fixed directory with a deadline, kill it when the deadline passes.
//! - `system`: uptime, pressure, top processes.
//! - `storage`: disk usage, inodes, SMART.
//! - `network`: interfaces, default route, DNS, TCP connect, HTTP(S), listening ports.
//! - `services`: failed units, unit status, journal errors, kernel messages, pending updates.

pub mod command;
mod network;
mod services;
mod storage;
mod system;

use std::time::{Duration, Instant};

use tether_proto::diag::{DiagFacts, DiagReport, ParamError, Probe, Verdict};

pub use storage::filesystem_usage_at;

/// What a probe found: a judgement with its reason and the facts.
#[derive(Debug)]
pub(crate) struct Found {
    verdict: Verdict,
    reason: String,
    facts: DiagFacts,
}

impl Found {
    fn new(verdict: Verdict, reason: impl Into<String>, facts: DiagFacts) -> Self {
        Found {
            verdict,
            reason: reason.into(),
            facts,
        }
    }
}

/// Why a probe produced no judgement.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    /// The probe cannot run on this machine (tool or service missing).
    #[error("not available here: {0}")]
    NotAvailable(String),
    /// The deadline passed inside the probe.
    #[error("timed out")]
    TimedOut,
    /// Something failed while probing.
    #[error("{0}")]
    Failed(String),
}

type ProbeResult = Result<Found, ProbeError>;

/// The timeout to use: the request's override (validated) or the probe's default.
pub fn timeout_for(probe: &Probe, requested: Option<u16>) -> Result<Duration, ParamError> {
    let secs = probe.kind().effective_timeout_secs(requested)?;
    Ok(Duration::from_secs(u64::from(secs)))
}

/// Runs `probe` on the calling thread until `deadline`. Used by [`run_probe`] on its own thread.
pub fn run_blocking(probe: &Probe, deadline: Instant) -> DiagReport {
    let started = Instant::now();
    let result = match probe {
        Probe::Uptime => Ok(system::uptime()),
        Probe::Pressure => system::pressure(deadline),
        Probe::TopProcesses { count } => system::top_processes(usize::from(*count), deadline),
        Probe::DiskUsage => storage::disk_usage(),
        Probe::Inodes => storage::inodes(),
        Probe::Smart => storage::smart(deadline),
        Probe::Interfaces => network::interfaces(),
        Probe::DefaultRoute => network::default_route(deadline),
        Probe::Dns { name } => Ok(network::dns(name)),
        Probe::TcpConnect { host, port } => network::tcp_connect(host, *port, deadline),
        Probe::Http { url } => network::http(url, deadline),
        Probe::ListeningPorts => network::listening_ports(),
        Probe::FailedUnits => services::failed_units(deadline),
        Probe::UnitStatus { unit } => services::unit_status(unit, deadline),
        Probe::JournalErrors {
            lines,
            since_minutes,
        } => services::journal_errors(*lines, *since_minutes, deadline),
        Probe::KernelMessages { lines } => services::kernel_messages(*lines, deadline),
        Probe::PendingUpdates => services::pending_updates(deadline),
    };
    let timeout = deadline.saturating_duration_since(started);
    report(probe.clone(), result, started, timeout)
}

/// Runs a validated `probe` with `timeout`, off the async workers. Never panics and never waits longer
/// than `timeout` (plus scheduling): a probe that overruns is reported as [`Verdict::TimedOut`].
pub async fn run_probe(probe: Probe, timeout: Duration) -> DiagReport {
    let started = Instant::now();
    let deadline = started + timeout;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = probe.clone();
    // A plain thread rather than spawn_blocking: a probe stuck in the kernel (statvfs on a dead mount)
    // must not hold a runtime worker or delay runtime shutdown. The thread is not joined; every probe
    // honours `deadline` itself, so it ends shortly after we stop waiting for it.
    let spawned = std::thread::Builder::new()
        .name(format!("probe-{}", probe.kind()))
        .spawn(move || {
            let _ = tx.send(run_blocking(&job, deadline));
        });
    if let Err(e) = spawned {
        return report(
            probe,
            Err(ProbeError::Failed(format!("cannot start the probe: {e}"))),
            started,
            timeout,
        );
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(report)) => report,
        Ok(Err(_)) => report(
            probe,
            Err(ProbeError::Failed("the probe crashed".into())),
            started,
            timeout,
        ),
        Err(_) => report(probe, Err(ProbeError::TimedOut), started, timeout),
    }
}

fn report(probe: Probe, result: ProbeResult, started: Instant, timeout: Duration) -> DiagReport {
    let (verdict, reason, facts) = match result {
        Ok(f) => (f.verdict, f.reason, f.facts),
        Err(ProbeError::NotAvailable(why)) => (
            Verdict::NotAvailable,
            format!("not available here: {why}"),
            DiagFacts::None,
        ),
        Err(ProbeError::TimedOut) => (
            Verdict::TimedOut,
            format!(
                "timed out after {:.1} s and was stopped",
                timeout.as_secs_f64()
            ),
            DiagFacts::None,
        ),
        Err(ProbeError::Failed(why)) => (Verdict::Failed, why, DiagFacts::None),
    };
    DiagReport {
        probe,
        verdict,
        reason,
        facts,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Milliseconds as a float, for timings.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Percent of `part` in `whole`, 0 for an empty whole.
fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}
