//! The relay server: accept loop, `Hello`, and dispatch to the agent and console handlers.
//!
//! # Message flow per connection
//! 1. The client opens a bidirectional stream and sends [`Hello`]; the relay answers [`HelloReply`].
//!    A bad version gets `Refused`; a malformed or oversized frame closes the connection with a reason.
//! 2. Agents continue on that stream with [`AgentToRelay`] ([`crate::agent_link`]).
//! 3. Consoles send one [`tether_proto::msg::ConsoleToRelay::Claim`] ([`crate::session`]); if accepted,
//!    the stream and every further stream they open are spliced to the agent.
//!
//! Every connection is one task in the accept loop's `JoinSet`; shutdown cancels a token they all
//! watch, closes the endpoint with [`close::SHUTTING_DOWN`], and waits a bounded time for the close
//! to reach peers.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_net::framed::{self, FrameError};
use tether_net::tls::RelayIdentity;
use tether_proto::PROTOCOL_VERSION;
use tether_proto::msg::{Hello, HelloReply, RelayError, RelayErrorKind, Role, close};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::agent_link::{self, AgentEvent, AgentLink};
use crate::audit::AuditLog;
use crate::config::{Limits, RelayConfig, SpliceTap};
use crate::metrics::{self, GaugeGuard, Metrics};
use crate::rendezvous::{Rendezvous, Stats};
use crate::session;
use crate::technicians::Technicians;

/// How long shutdown waits for closes to reach peers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Longest wait in [`RelayHandle::audit_path`] for the audit writer to put queued records on disk.
pub const AUDIT_SYNC_WAIT: Duration = Duration::from_secs(5);

/// Why a claim or enrollment is refused while the audit log cannot be written.
pub(crate) const AUDIT_DOWN: &str = "the relay cannot write its audit log (is its disk full?), so it starts no new sessions or enrollments until it can; try again later";

/// Errors starting the relay.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created or used.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The certificate could not be created or loaded.
    #[error(transparent)]
    Tls(#[from] tether_net::tls::TlsError),
    /// The endpoint could not be bound.
    #[error(transparent)]
    Endpoint(#[from] tether_net::transport::EndpointError),
    /// The audit log could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    /// The metrics address could not be bound.
    #[error("metrics address {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The fleet store could not be opened.
    #[error("fleet store: {0}")]
    Store(tether_proto::fleet::FleetError),
    /// The session record store could not be opened.
    #[error("session records: {0}")]
    Records(tether_proto::records::RecordError),
}

/// State shared by all connection tasks.
pub(crate) struct Shared {
    pub rendezvous: Mutex<Rendezvous<AgentLink>>,
    pub technicians: Technicians,
    pub audit: AuditLog,
    pub limits: Limits,
    pub tap: Option<SpliceTap>,
    pub next_id: AtomicU64,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    pub store: Arc<dyn crate::store::Store>,
    pub invites: crate::invite::Invites,
    pub records: Arc<crate::records::Records>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether a new session or enrollment may start: not while the audit log cannot be written
    /// (the relay fails closed rather than act unaudited). Counts the refusal.
    pub fn audit_gate(&self) -> Result<(), &'static str> {
        if self.audit.writable() {
            return Ok(());
        }
        self.metrics.audit_refusals.fetch_add(1, Ordering::Relaxed);
        Err(AUDIT_DOWN)
    }

    /// Admits a claim from `source` before its slot is looked at. A claim whose token is a valid
    /// technician's is limited per technician (in [`Rendezvous::claim`]); only the others count
    /// against the source address's window, so failures from a shared address (a NAT, a VPN exit)
    /// never lock out real technicians there. The token check is a SHA-256 and a lookup in the cached
    /// registry, so checking it first costs a guesser nothing more.
    pub fn admit_claim(&self, source: IpAddr, token: &str) -> Result<(), (RelayErrorKind, String)> {
        self.audit_gate()
            .map_err(|text| (RelayErrorKind::Busy, text.to_string()))?;
        if matches!(self.technicians.verify(token), Ok(Ok(_))) {
            return Ok(());
        }
        self.table(|t| t.admit_source(source, Instant::now()))
            .map_err(|kind| {
                (
                    kind,
                    "too many failed claims from your address in the last minute; wait and try again"
                        .to_string(),
                )
            })
    }

    /// Runs `f` on the rendezvous table. The lock is only ever held for table operations, never across
    /// an await; a poisoned lock means a panic mid-update, after which the table is still consistent
    /// (every update is a single map operation), so it is used as is.
    pub fn table<R>(&self, f: impl FnOnce(&mut Rendezvous<AgentLink>) -> R) -> R {
        let mut guard = self.rendezvous.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

/// The relay. See [`Relay::spawn`].
#[derive(Debug)]
pub struct Relay;

/// A running relay. Dropping it shuts the relay down.
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    fingerprint: String,
    data_dir: PathBuf,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
    metrics_addr: Option<SocketAddr>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Creates the data directory and certificate if needed, binds, and starts serving.
    pub async fn spawn(config: RelayConfig) -> Result<RelayHandle, StartError> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| StartError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let identity = RelayIdentity::load_or_create(&dir)?;
        let endpoint = tether_net::transport::server_endpoint(config.listen, &identity)?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| StartError::DataDir {
                path: dir.clone(),
                source,
            })?;
        let metrics = Arc::new(Metrics::default());
        let audit = AuditLog::spawn(&dir, metrics.clone())?;
        let limits = config.limits.clone();
        let store: Arc<dyn crate::store::Store> =
            Arc::new(crate::store::SqliteStore::open(&dir).map_err(StartError::Store)?);
        let records = Arc::new(crate::records::Records::open(&dir).map_err(StartError::Records)?);
        let shared = Arc::new(Shared {
            rendezvous: Mutex::new(Rendezvous::new(
                limits.code_ttl,
                limits.max_open_slots_per_agent,
                limits.claims_per_technician_per_minute,
                limits.claims_per_source_per_minute,
            )),
            technicians: Technicians::new(&dir),
            invites: crate::invite::Invites::new(limits.code_ttl),
            audit,
            limits,
            tap: config.splice_tap.clone(),
            next_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            metrics,
            store,
            records,
        });
        let (metrics_addr, metrics_task) = match config.metrics {
            None => (None, None),
            Some(addr) => {
                let bind = |source| StartError::Metrics { addr, source };
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
                let bound = listener.local_addr().map_err(bind)?;
                // For `tether-relay status`; best effort, the endpoint works without it.
                let _ = std::fs::write(dir.join(metrics::ADDR_FILE), bound.to_string());
                let task = tokio::spawn(metrics::serve(
                    listener,
                    shared.metrics.clone(),
                    shared.shutdown.clone(),
                ));
                (Some(bound), Some(task))
            }
        };
        let task = tokio::spawn(accept_loop(endpoint, shared.clone()));
        Ok(RelayHandle {
            local_addr,
            fingerprint: identity.fingerprint(),
            data_dir: dir,
            shared,
            task: Some(task),
            metrics_addr,
            metrics_task,
        })
    }
}

impl RelayHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The SHA-256 fingerprint clients pin.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The audit log's path, once what was recorded so far is on disk: whoever reads the file
    /// expects to find it there. Waits at most [`AUDIT_SYNC_WAIT`] (blocking; the writer is its own
    /// thread, and usually done in microseconds), and not at all while the log cannot be written.
    pub fn audit_path(&self) -> PathBuf {
        self.shared.audit.sync(AUDIT_SYNC_WAIT, false);
        self.shared.audit.path().to_path_buf()
    }

    /// Whether the audit log is being written (while not, new sessions and enrollments are refused).
    pub fn audit_writable(&self) -> bool {
        self.shared.audit.writable()
    }

    /// Where the metrics endpoint listens, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The live counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The fleet store.
    pub fn store(&self) -> Arc<dyn crate::store::Store> {
        self.shared.store.clone()
    }

    /// The session records.
    pub fn records(&self) -> Arc<crate::records::Records> {
        self.shared.records.clone()
    }

    /// Rendezvous counters.
    pub fn stats(&self) -> Stats {
        self.shared.table(|t| t.stats())
    }

    /// Stops accepting, tells every peer, and waits (bounded) for the closes to go out.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, task).await;
        }
        // The last records (sessions ended by the shutdown, refusal counts) reach the disk, and the
        // writer is gone, before the relay says it stopped.
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.audit.close()).await;
        if let Some(task) = self.metrics_task.take() {
            let _ = std::fs::remove_file(self.data_dir.join(metrics::ADDR_FILE));
            task.abort();
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        if let Some(task) = self.metrics_task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
    let mut tasks = JoinSet::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = sweep.tick() => expire_slots(&shared),
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let permit = permits.clone().try_acquire_owned().ok();
                let shared = shared.clone();
                let span = info_span!("conn", peer = %incoming.remote_address());
                tasks.spawn(async move {
                    let Ok(Ok(conn)) = tokio::time::timeout(shared.limits.hello_timeout, incoming).await else { return };
                    shared.metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
                    match permit {
                        Some(_permit) => {
                            let _open = GaugeGuard::new(&shared.metrics.connections_open);
                            serve(conn.clone(), shared.clone()).await;
                            // Dropping the last handle would close with code 0 and no reason; a peer
                            // must hear why.
                            if shared.shutdown.is_cancelled() {
                                conn.close(close::SHUTTING_DOWN.into(), b"relay shutting down");
                            }
                        }
                        None => {
                            warn!("at connection limit; refusing");
                            shared.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                            conn.close(close::BUSY.into(), b"relay at capacity, try again later");
                        }
                    }
                }.instrument(span));
            }
        }
    }
    info!("shutting down");
    endpoint.close(close::SHUTTING_DOWN.into(), b"relay shutting down");
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, endpoint.wait_idle()).await;
}

fn expire_slots(shared: &Shared) {
    let expired = shared.table(|t| t.expire(Instant::now()));
    for (slot, link) in expired {
        // Best effort: if the agent's queue is full it learns at claim time instead.
        let _ = link.events.try_send(AgentEvent::SlotExpired { slot });
    }
}

/// Closes `conn` for a protocol violation, with the reason in the close frame.
pub(crate) fn close_protocol(conn: &quinn::Connection, err: &dyn std::fmt::Display) {
    debug!(error = %err, "closing for protocol error");
    conn.close(
        close::PROTOCOL_ERROR.into(),
        format!("protocol error: {err}").as_bytes(),
    );
}

/// Sends a final refusal on `send`, then waits (bounded) for the peer to read it and hang up.
pub(crate) async fn refuse<T: serde::Serialize>(
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    msg: &T,
) {
    let _ = framed::write_msg(&mut send, msg).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    conn.close(close::NORMAL.into(), b"refused");
}

async fn serve(conn: quinn::Connection, shared: Arc<Shared>) {
    let first = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        r = tokio::time::timeout(shared.limits.hello_timeout, async {
            let (send, mut recv) = conn.accept_bi().await?;
            let hello = framed::read_msg::<Hello>(&mut recv).await?;
            Ok::<_, FrameError>((send, recv, hello))
        }) => r,
    };
    let (mut send, recv, hello) = match first {
        Err(_) => {
            conn.close(close::PROTOCOL_ERROR.into(), b"no hello in time");
            return;
        }
        Ok(Err(FrameError::Connection(_))) => return,
        Ok(Err(e)) => return close_protocol(&conn, &e),
        Ok(Ok(x)) => x,
    };
    if hello.version != PROTOCOL_VERSION {
        let err = RelayError::new(
            RelayErrorKind::UnsupportedVersion,
            format!(
                "this relay speaks protocol version {PROTOCOL_VERSION}, not {}",
                hello.version
            ),
        );
        return refuse(&conn, send, &HelloReply::Refused(err)).await;
    }
    if framed::write_msg(
        &mut send,
        &HelloReply::Accepted {
            version: PROTOCOL_VERSION,
        },
    )
    .await
    .is_err()
    {
        return;
    }
    match hello.role {
        Role::Agent => agent_link::serve(conn, send, recv, shared).await,
        Role::Console => {
            // Consoles open a stream per request; agents never need more than their control stream.
            conn.set_max_concurrent_bi_streams(
                tether_net::transport::MAX_CONCURRENT_BIDI_STREAMS.into(),
            );
            session::serve(conn, send, recv, shared).await
        }
        Role::Device => crate::device::serve(conn, send, recv, shared).await,
    }
}

/// A bounded queue for events to one agent's control task.
pub(crate) fn agent_queue() -> (mpsc::Sender<AgentEvent>, mpsc::Receiver<AgentEvent>) {
    mpsc::channel(agent_link::EVENT_QUEUE)
}
