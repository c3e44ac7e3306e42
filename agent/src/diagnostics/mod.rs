//! Diagnostics: runs the probes of the `diagnostics` scope and judges what they measure.
//!
//! Every probe runs on its own thread against a deadline. The async side waits at most the probe's
//! timeout and then reports [`Verdict::TimedOut`], so a hung probe (a dead NFS mount in `statvfs`, a
//! resolver that never answers) never holds up the session. The probes themselves honour the same
//! deadline (socket timeouts, child processes killed), so an abandoned thread ends soon after —
//! except one stuck in the kernel, which no deadline reaches. While [`MAX_STUCK_PROBES`] threads are
//! stuck like that, a new probe is not started and is reported as timed out, with that reason,
//! instead of leaking one more thread per run.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
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
    /// Not started: too many earlier probe threads are still stuck ([`MAX_STUCK_PROBES`]).
    #[error("{0}")]
    Refused(String),
}

type ProbeResult = Result<Found, ProbeError>;

/// The timeout to use: the request's override, checked against the range both ends accept
/// ([`tether_proto::diag::MAX_TIMEOUT_SECS`]), or without one the probe's default (which the
/// console shows and waits for).
pub fn timeout_for(probe: &Probe, requested: Option<u16>) -> Result<Duration, ParamError> {
    let secs = match requested {
        None => probe.kind().default_timeout_secs(),
        Some(t) => tether_proto::diag::check_timeout_secs(t)?,
    };
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

/// Probe threads that outlived their timeout (abandoned, still running: stuck) at once. While this
/// many are, a new probe is not started. Probes within their timeout are not counted: a health check
/// runs a dozen at once, and each ends by its deadline unless the kernel holds it.
pub const MAX_STUCK_PROBES: usize = 8;

/// Counts stuck probe threads against a limit.
#[derive(Debug)]
pub(crate) struct ProbeThreads {
    stuck: AtomicUsize,
    limit: usize,
}

/// A probe thread's state, shared by the thread and the task waiting for it.
const RUNNING: u8 = 0;
const ABANDONED: u8 = 1;
const DONE: u8 = 2;

impl ProbeThreads {
    pub(crate) const fn new(limit: usize) -> Self {
        ProbeThreads {
            stuck: AtomicUsize::new(0),
            limit,
        }
    }

    fn full(&self) -> bool {
        self.stuck.load(Ordering::Acquire) >= self.limit
    }

    /// The waiter gave up on a thread: if it is still running, it is stuck from now on.
    fn abandon(&self, state: &AtomicU8) {
        if state
            .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.stuck.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A thread ended: if it had been abandoned, it is no longer stuck.
    fn ended(&self, state: &AtomicU8) {
        if state.swap(DONE, Ordering::AcqRel) == ABANDONED {
            self.stuck.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The agent's probe threads. Process-wide on purpose (not a value passed down): what it bounds is
/// this process's threads, which outlive the session that started them.
static PROBE_THREADS: ProbeThreads = ProbeThreads::new(MAX_STUCK_PROBES);

/// Runs a validated `probe` with `timeout`, off the async workers. Never panics and never waits longer
/// than `timeout` (plus scheduling): a probe that overruns is reported as [`Verdict::TimedOut`].
pub async fn run_probe(probe: Probe, timeout: Duration) -> DiagReport {
    let job = probe.clone();
    run_on_thread(&PROBE_THREADS, probe, timeout, move |deadline| {
        run_blocking(&job, deadline)
    })
    .await
}

/// Runs `job` on its own thread (a slot of `threads`) and waits for it until `timeout`.
async fn run_on_thread(
    threads: &'static ProbeThreads,
    probe: Probe,
    timeout: Duration,
    job: impl FnOnce(Instant) -> DiagReport + Send + 'static,
) -> DiagReport {
    let started = Instant::now();
    let deadline = started + timeout;
    if threads.full() {
        let why = format!(
            "not started: {} earlier probes are still stuck (in the kernel?); try again once they end",
            threads.limit
        );
        return report(probe, Err(ProbeError::Refused(why)), started, timeout);
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let state = Arc::new(AtomicU8::new(RUNNING));
    let thread_state = state.clone();
    // A plain thread rather than spawn_blocking: a probe stuck in the kernel (statvfs on a dead mount)
    // must not hold a runtime worker or delay runtime shutdown. The thread is not joined; every probe
    // honours `deadline` itself, so it ends shortly after we stop waiting for it, and one that cannot
    // counts as stuck until it does.
    let spawned = std::thread::Builder::new()
        .name(format!("probe-{}", probe.kind()))
        .spawn(move || {
            let _ = tx.send(job(deadline));
            threads.ended(&thread_state);
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
        Err(_) => {
            threads.abandon(&state);
            report(probe, Err(ProbeError::TimedOut), started, timeout)
        }
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
        // Reported as timed out: like a timeout, it says "could not find out in time", not that
        // the machine has a fault.
        Err(ProbeError::Refused(why)) => (Verdict::TimedOut, why, DiagFacts::None),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe that blocks until told (as `statvfs` on a dead mount blocks until the mount answers).
    fn stuck(
        release: &std::sync::Arc<std::sync::Barrier>,
    ) -> impl FnOnce(Instant) -> DiagReport + Send + 'static {
        let release = release.clone();
        move |_| {
            release.wait();
            report(
                Probe::DiskUsage,
                Err(ProbeError::TimedOut),
                Instant::now(),
                Duration::ZERO,
            )
        }
    }

    #[tokio::test]
    async fn stuck_probes_are_bounded_and_refused_then_reported_as_timed_out() {
        static THREADS: ProbeThreads = ProbeThreads::new(2);
        let release = std::sync::Arc::new(std::sync::Barrier::new(3));
        let short = Duration::from_millis(50);
        for _ in 0..2 {
            let r = run_on_thread(&THREADS, Probe::DiskUsage, short, stuck(&release)).await;
            assert_eq!(r.verdict, Verdict::TimedOut);
            assert!(r.reason.starts_with("timed out"), "{}", r.reason);
        }
        assert_eq!(
            THREADS.stuck.load(Ordering::Acquire),
            2,
            "both threads are still stuck"
        );
        // A third is not started: no third thread, an immediate answer that says why.
        let ran = std::sync::Arc::new(AtomicUsize::new(0));
        let counted = ran.clone();
        let r = run_on_thread(
            &THREADS,
            Probe::DiskUsage,
            Duration::from_secs(30),
            move |_| {
                counted.fetch_add(1, Ordering::AcqRel);
                report(
                    Probe::DiskUsage,
                    Err(ProbeError::TimedOut),
                    Instant::now(),
                    Duration::ZERO,
                )
            },
        )
        .await;
        assert_eq!(r.verdict, Verdict::TimedOut);
        assert!(r.reason.contains("still stuck"), "{}", r.reason);
        assert_eq!(ran.load(Ordering::Acquire), 0);
        assert_eq!(THREADS.stuck.load(Ordering::Acquire), 2);
        // Once they come unstuck, their slots are free again.
        release.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while THREADS.stuck.load(Ordering::Acquire) > 0 {
            assert!(Instant::now() < deadline, "the slots were not given back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = run_on_thread(&THREADS, Probe::Uptime, Duration::from_secs(30), |d| {
            run_blocking(&Probe::Uptime, d)
        })
        .await;
        assert_ne!(r.verdict, Verdict::TimedOut, "{}", r.reason);
    }
}
