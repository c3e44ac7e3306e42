//! Service mode: keep a connection to the relay and report inventory until stopped.
//!
//! # Flow
//! 1. Connect (exponential backoff with jitter on failure), `Auth` with the device secret; the relay
//!    answers with the last report it stored.
//! 2. If the relay holds reports past this device's own counter (the data directory was restored
//!    from an older copy), the device resyncs: one full report of a fresh inventory, numbered after
//!    the relay's last. If the oldest report the relay lacks is a delta against something it does not
//!    have, the queue is replaced by one full report.
//! 3. Queued reports (each file is one encoded `DeviceToRelay::Report` frame body) are sent oldest
//!    first, each removed from disk only when acknowledged, and the relay acknowledges a report only
//!    when it holds that very report (same number, same digest). `Resync{expected}` (a number the
//!    relay does not expect) makes the device renumber as above; a refused report is replaced by a
//!    full one, and is never deleted unstored.
//! 4. A new report is made at start when nothing was ever reported, then on every tick of the
//!    schedule (default daily) or trigger: a delta against the newest queued or acknowledged
//!    snapshot (`base.bin`), so when the queue is empty that is the last acknowledged snapshot.
//!
//! Reports are written to disk before they are sent, so a relay that is down or restarting loses
//! nothing; the relay stores each `(device, seq)` once and compares digests, so a resend after a lost
//! ack is harmless and a different report under a used number is never taken for a resend.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tether_net::framed::{self, FrameError};
use tether_net::{RelayTarget, client};
use tether_proto::codec;
use tether_proto::fleet::{
    DeviceToRelay, FleetErrorKind, MAX_SEQ, RelayToDevice, Report, ReportBody,
};
use tether_proto::msg::{Role, close};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::desktop_socket::Desktops;
use tokio_util::sync::CancellationToken;

use crate::enroll::{DataDir, EnrollError, Identity, PolicyOutcome};
use crate::inventory::Collector;

/// Default time between reports.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Most reports kept in the queue; beyond this the queue collapses into one full report.
pub const MAX_QUEUE: usize = 64;
/// How long to wait for an acknowledgement.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Service-mode settings.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Identity, state and queue.
    pub data_dir: DataDir,
    /// What to collect.
    pub collector: Collector,
    /// Time between scheduled reports.
    pub interval: Duration,
    /// First reconnect delay.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Other nodes of the relay cluster the identity's relay belongs to: when a connection fails,
    /// the next one is tried (queued reports go through whichever answers; the shared database
    /// makes each land once).
    pub fallback: Vec<RelayTarget>,
    /// The local socket for the logged-in user's agent, which answers attended sessions without a
    /// code ([`crate::desktop_socket`]); `None`: attended sessions are refused ("nobody is logged
    /// in").
    pub desktop: Option<crate::desktop_socket::DesktopConfig>,
}

impl RunConfig {
    /// Defaults: daily reports, backoff from 1 s to 5 min.
    pub fn new(data_dir: DataDir) -> Self {
        RunConfig {
            data_dir,
            collector: Collector::default(),
            interval: DEFAULT_INTERVAL,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            fallback: Vec::new(),
            desktop: None,
        }
    }
}

/// What service mode tells its front end (or a test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEvent {
    /// Connected and authenticated; the relay's last stored report.
    Connected {
        /// Its sequence number.
        last_seq: Option<u64>,
    },
    /// A report was written to the queue.
    Queued {
        /// Its number.
        seq: u64,
        /// Whether it is a delta.
        delta: bool,
        /// Encoded size.
        bytes: usize,
    },
    /// The relay acknowledged a report.
    Acked {
        /// Its number.
        seq: u64,
        /// The relay had it already.
        duplicate: bool,
    },
    /// The relay refused a report.
    Rejected {
        /// Its number.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The relay forwarded a newer unattended policy signed by the pinned org key; it now holds.
    PolicyAdopted {
        /// What it allows.
        policy: tether_proto::org::Policy,
    },
    /// The relay forwarded a policy this device did not take (not signed by the pinned org key,
    /// another organisation's, or not newer than the one held); the held one stays.
    PolicyRefused {
        /// Why, in words.
        reason: String,
    },
    /// The connection failed or dropped; retrying after `retry_in`.
    Disconnected {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
}

/// Errors that stop service mode (connection trouble never does; it retries).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Local state trouble, or not enrolled.
    #[error(transparent)]
    State(#[from] EnrollError),
    /// The relay refused this device's credentials.
    #[error("the relay refused this device: {0}")]
    Refused(String),
}

/// Why a connection ended.
enum Ended {
    Network(String),
    Fatal(RunError),
    Shutdown,
}

impl From<FrameError> for Ended {
    fn from(e: FrameError) -> Self {
        Ended::Network(e.to_string())
    }
}

impl From<EnrollError> for Ended {
    fn from(e: EnrollError) -> Self {
        Ended::Fatal(e.into())
    }
}

/// Makes a report of the current inventory and queues it. Returns the event.
pub async fn queue_report(cfg: &RunConfig) -> Result<RunEvent, EnrollError> {
    let id = cfg.data_dir.require_identity()?;
    let collector = cfg.collector.clone();
    let inv = tokio::task::spawn_blocking(move || collector.collect())
        .await
        .map_err(|e| EnrollError::Unexpected(format!("collection failed: {e}")))?;
    let dir = &cfg.data_dir;
    let mut state = dir.state()?;
    let base = dir.base()?;
    let queued = dir.queued()?.len();
    let seq = state.next_seq.max(1);
    let digest = inv.digest();
    let body = match (base, state.base_seq) {
        (Some(base), Some(base_seq)) if queued < MAX_QUEUE => ReportBody::Delta {
            base_seq,
            delta: Box::new(inv.delta_from(&base)),
        },
        _ => {
            dir.clear_queue()?;
            ReportBody::Full(Box::new(inv.clone()))
        }
    };
    let delta = matches!(body, ReportBody::Delta { .. });
    let report = Report {
        device_id: id.device_id,
        seq,
        digest,
        body,
    };
    let bytes =
        codec::to_body(&DeviceToRelay::Report(report)).map_err(|e| EnrollError::Corrupt {
            path: dir.queue_path(seq),
            reason: e.to_string(),
        })?;
    // Queue first, then base and state: after a crash in between, the report is still sent.
    dir.enqueue(seq, &bytes)?;
    dir.save_base(&inv)?;
    state.base_seq = Some(seq);
    state.next_seq = seq + 1;
    dir.save_state(&state)?;
    Ok(RunEvent::Queued {
        seq,
        delta,
        bytes: bytes.len(),
    })
}

/// Replaces the whole queue with one full report of the base snapshot (the relay lost our base).
fn requeue_full(cfg: &RunConfig, id: &Identity) -> Result<(), EnrollError> {
    let dir = &cfg.data_dir;
    let Some(base) = dir.base()? else {
        dir.clear_queue()?;
        let mut s = dir.state()?;
        s.base_seq = None;
        return dir.save_state(&s);
    };
    let mut state = dir.state()?;
    dir.clear_queue()?;
    let seq = state.next_seq.max(1);
    let report = Report {
        device_id: id.device_id.clone(),
        seq,
        digest: base.digest(),
        body: ReportBody::Full(Box::new(base)),
    };
    let bytes =
        codec::to_body(&DeviceToRelay::Report(report)).map_err(|e| EnrollError::Corrupt {
            path: dir.queue_path(seq),
            reason: e.to_string(),
        })?;
    dir.enqueue(seq, &bytes)?;
    state.base_seq = Some(seq);
    state.next_seq = seq + 1;
    dir.save_state(&state)
}

/// Starts numbering again at `seq`, where the relay stands: the queue (reports the relay does not
/// hold, against bases it does not have) gives way to one full report of a fresh inventory under
/// that number. The relay records the net change from its last snapshot, so the fleet shows this
/// device's newest inventory and its history loses no change, only the intermediate steps.
async fn resync(cfg: &RunConfig, seq: u64) -> Result<RunEvent, EnrollError> {
    let dir = &cfg.data_dir;
    dir.clear_queue()?;
    let mut state = dir.state()?;
    state.next_seq = seq;
    // No base: after a crash right here, `run` starts with a full report, as it should.
    state.base_seq = None;
    dir.save_state(&state)?;
    queue_report(cfg).await
}

async fn emit(events: &mpsc::Sender<RunEvent>, e: RunEvent) {
    tracing::debug!(event = ?e, "service mode");
    let _ = events.send(e).await;
}

/// Runs service mode until `shutdown`. `trigger` asks for a report now (tests, `SIGUSR1`-style use).
pub async fn run(
    cfg: RunConfig,
    mut trigger: mpsc::Receiver<()>,
    events: mpsc::Sender<RunEvent>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let id = cfg.data_dir.require_identity()?;
    if cfg.data_dir.state()?.base_seq.is_none() {
        // Never reported: the first report is a full inventory.
        let e = queue_report(&cfg).await?;
        emit(&events, e).await;
    }
    let mut backoff = cfg.backoff_initial;
    let mut next_tick = tokio::time::Instant::now() + cfg.interval;
    let nodes: Vec<RelayTarget> = std::iter::once(id.target())
        .chain(cfg.fallback.iter().cloned())
        .collect();
    let mut node = 0;
    // Sessions without a code run beside the reports, and outlive a lost service connection.
    let mut sessions = JoinSet::new();
    let desktops = Arc::new(Desktops::default());
    if let Some(desktop) = cfg.desktop.clone() {
        let (id, desktops, stop) = (id.clone(), desktops.clone(), shutdown.clone());
        let dir = cfg.data_dir.clone();
        let socket = desktop.socket.display().to_string();
        sessions.spawn(async move {
            if let Err(e) = crate::desktop_socket::listen(desktop, id, dir, desktops, stop).await {
                tracing::error!(error = %e, %socket, "cannot listen for the desktop user's agent; attended sessions are refused");
            }
            tether_proto::msg::EndReason::UserEnded
        });
    }
    loop {
        match connection(
            &cfg,
            &id,
            &nodes[node],
            &mut trigger,
            &events,
            &shutdown,
            &mut next_tick,
            &mut backoff,
            &mut sessions,
            &desktops,
        )
        .await
        {
            Ended::Shutdown => {
                // Each session was told to stop; let them tell their consoles.
                let _ = tokio::time::timeout(Duration::from_secs(3), async {
                    while sessions.join_next().await.is_some() {}
                })
                .await;
                return Ok(());
            }
            Ended::Fatal(e) => return Err(e),
            Ended::Network(reason) => {
                // The next node of the cluster (if any) is tried next.
                node = (node + 1) % nodes.len();
                let jitter = rand::thread_rng().gen_range(0.5..1.5);
                let retry_in = backoff.mul_f64(jitter);
                emit(&events, RunEvent::Disconnected { reason, retry_in }).await;
                let until = tokio::time::Instant::now() + retry_in;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep_until(until) => break,
                        // Reports due while offline are still made and queued.
                        t = trigger.recv() => {
                            if t.is_none() { return Ok(()); }
                            let e = queue_report(&cfg).await?;
                            emit(&events, e).await;
                        }
                        _ = tokio::time::sleep_until(next_tick) => {
                            next_tick += cfg.interval;
                            let e = queue_report(&cfg).await?;
                            emit(&events, e).await;
                        }
                    }
                }
                backoff = (backoff * 2).min(cfg.backoff_max);
            }
        }
    }
}

/// One connection: authenticate, flush the queue, then report on schedule until it drops.
#[allow(clippy::too_many_arguments)]
async fn connection(
    cfg: &RunConfig,
    id: &Identity,
    target: &RelayTarget,
    trigger: &mut mpsc::Receiver<()>,
    events: &mpsc::Sender<RunEvent>,
    shutdown: &CancellationToken,
    next_tick: &mut tokio::time::Instant,
    backoff: &mut Duration,
    sessions: &mut JoinSet<tether_proto::msg::EndReason>,
    desktops: &Arc<Desktops>,
) -> Ended {
    let relay = tokio::select! {
        _ = shutdown.cancelled() => return Ended::Shutdown,
        r = client::connect(target) => match r {
            Ok(r) => r,
            Err(e) => return Ended::Network(e.to_string()),
        },
    };
    let result = async {
        let (mut send, mut recv) = client::open_control(&relay.conn, Role::Device)
            .await
            .map_err(|e| Ended::Network(e.to_string()))?;
        framed::write_msg(
            &mut send,
            &DeviceToRelay::Auth {
                device_id: id.device_id.clone(),
                secret: id.secret.clone(),
            },
        )
        .await?;
        let (last_seq, policy) = match framed::read_msg::<RelayToDevice>(&mut recv).await? {
            RelayToDevice::Authenticated { last_seq, policy } => (last_seq, policy),
            // The relay's own trouble (its database or audit log is down) passes: try again later.
            RelayToDevice::Error(e)
                if matches!(
                    e.kind,
                    FleetErrorKind::StoreFailed | FleetErrorKind::AuditUnavailable
                ) =>
            {
                return Err(Ended::Network(e.to_string()));
            }
            RelayToDevice::Error(e) => return Err(Ended::Fatal(RunError::Refused(e.to_string()))),
            other => return Err(Ended::Network(format!("unexpected answer {other:?}"))),
        };
        *backoff = cfg.backoff_initial;
        emit(events, RunEvent::Connected { last_seq }).await;
        if let Some(offered) = policy {
            let e = match cfg.data_dir.adopt_policy(id, offered)? {
                PolicyOutcome::Adopted(policy) => Some(RunEvent::PolicyAdopted { policy }),
                PolicyOutcome::Held => None,
                PolicyOutcome::Refused(reason) => {
                    tracing::warn!(%reason, "the relay's policy was not taken");
                    Some(RunEvent::PolicyRefused { reason })
                }
            };
            if let Some(e) = e {
                emit(events, e).await;
            }
        }
        if let Some(e) = reconcile(cfg, id, last_seq).await? {
            emit(events, e).await;
        }
        loop {
            flush(cfg, id, &mut send, &mut recv, events).await?;
            tokio::select! {
                _ = shutdown.cancelled() => return Err(Ended::Shutdown),
                _ = relay.conn.closed() => return Err(Ended::Network("the relay closed the connection".into())),
                // The relay wakes this device for a session without a code.
                s = relay.conn.accept_bi() => {
                    if let Ok(stream) = s {
                        let (id, dir) = (id.clone(), cfg.data_dir.clone());
                        crate::wake::answer(id, dir, stream, sessions, desktops, shutdown).await;
                    }
                }
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                t = trigger.recv() => {
                    if t.is_none() { return Err(Ended::Shutdown); }
                    let e = queue_report(cfg).await?;
                    emit(events, e).await;
                }
                _ = tokio::time::sleep_until(*next_tick) => {
                    *next_tick += cfg.interval;
                    let e = queue_report(cfg).await?;
                    emit(events, e).await;
                }
            }
        }
    }
    .await;
    let drop = match result {
        Ok(()) => Ended::Shutdown,
        Err(d) => d,
    };
    relay.close(close::NORMAL, "agent stopping").await;
    drop
}

/// Lines the queue up with what the relay holds (`last_seq`, from `Authenticated`).
///
/// A relay that holds reports past this device's own counter means the data directory went back in
/// time (restored from a snapshot): the device resyncs at the relay's next number instead of sending
/// numbers the relay already holds. Queued reports the relay may already have (a lost ack) stay
/// queued: the relay acknowledges them as duplicates only if it holds the same content. If the first
/// report the relay would store is a delta against something it does not have, the queue is replaced
/// by one full report.
async fn reconcile(
    cfg: &RunConfig,
    id: &Identity,
    last_seq: Option<u64>,
) -> Result<Option<RunEvent>, EnrollError> {
    let dir = &cfg.data_dir;
    let relay_next = last_seq.map_or(1, |l| l.saturating_add(1));
    let mut state = dir.state()?;
    if last_seq.is_some() {
        state.acked_seq = last_seq;
        dir.save_state(&state)?;
    }
    if state.next_seq < relay_next {
        return resync(cfg, relay_next).await.map(Some);
    }
    // The oldest report the relay does not hold yet must apply to what it has.
    let head = dir
        .queued()?
        .into_iter()
        .find(|(seq, _)| *seq >= relay_next);
    let needs_full = match head {
        Some((_, path)) => {
            let bytes = std::fs::read(&path).map_err(|source| EnrollError::Io {
                path: path.clone(),
                source,
            })?;
            match codec::from_body::<DeviceToRelay>(&bytes) {
                Ok(DeviceToRelay::Report(Report {
                    body: ReportBody::Delta { base_seq, .. },
                    ..
                })) => Some(base_seq) != last_seq,
                Ok(_) => false,
                // A corrupt queue file cannot be sent; start again from a full report.
                Err(_) => true,
            }
        }
        // Nothing new pending: if the relay lost what we think it has, our next delta would not apply.
        None => state.base_seq.is_some() && last_seq != state.base_seq,
    };
    if needs_full {
        requeue_full(cfg, id)?;
    }
    Ok(None)
}

/// Sends queued reports oldest first, removing each once acknowledged.
async fn flush(
    cfg: &RunConfig,
    id: &Identity,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    events: &mpsc::Sender<RunEvent>,
) -> Result<(), Ended> {
    let dir = &cfg.data_dir;
    // At most one restart from a full report per flush, so a relay that refuses even that cannot
    // keep us in a loop; the report then stays queued and is tried again on the next connection.
    let mut restarted = false;
    while let Some((seq, path)) = dir.queued()?.into_iter().next() {
        let bytes = std::fs::read(&path).map_err(|source| {
            Ended::Fatal(RunError::State(EnrollError::Io {
                path: path.clone(),
                source,
            }))
        })?;
        framed::write_frame(send, &bytes).await?;
        let reply = tokio::time::timeout(ACK_TIMEOUT, framed::read_msg::<RelayToDevice>(recv))
            .await
            .map_err(|_| Ended::Network("no acknowledgement in time".into()))??;
        match reply {
            // Only an acknowledged report leaves the disk: the relay holds exactly this one.
            RelayToDevice::Ack { seq: s, duplicate } if s == seq => {
                std::fs::remove_file(&path).map_err(|source| {
                    Ended::Fatal(RunError::State(EnrollError::Io { path, source }))
                })?;
                let mut state = dir.state()?;
                state.acked_seq = Some(seq);
                dir.save_state(&state)?;
                emit(events, RunEvent::Acked { seq, duplicate }).await;
            }
            RelayToDevice::Resync {
                seq: s,
                expected,
                error,
            } if s == seq => {
                emit(
                    events,
                    RunEvent::Rejected {
                        seq,
                        reason: format!("{error} (the relay expects report {expected})"),
                    },
                )
                .await;
                if restarted || expected == 0 || expected > MAX_SEQ {
                    return Err(Ended::Network(format!(
                        "the relay refused report {seq} again: {error}"
                    )));
                }
                restarted = true;
                let e = resync(cfg, expected).await?;
                emit(events, e).await;
            }
            RelayToDevice::Rejected { seq: s, error } if s == seq => {
                emit(
                    events,
                    RunEvent::Rejected {
                        seq,
                        reason: error.to_string(),
                    },
                )
                .await;
                match error.kind {
                    // The relay could not store it now: keep it and try again later.
                    FleetErrorKind::StoreFailed => {
                        return Err(Ended::Network(format!(
                            "the relay could not store report {seq}: {error}"
                        )));
                    }
                    // Our base differs from the relay's, or the report cannot be stored as it is:
                    // start over from one full report of the newest inventory.
                    _ if !restarted => {
                        restarted = true;
                        requeue_full(cfg, id)?;
                    }
                    // Refused even then: nothing is deleted unstored; retry on the next connection.
                    _ => {
                        return Err(Ended::Network(format!(
                            "the relay refused report {seq} again: {error}"
                        )));
                    }
                }
            }
            other => return Err(Ended::Network(format!("unexpected answer {other:?}"))),
        }
    }
    Ok(())
}
