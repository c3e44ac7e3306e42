//! The relay server: accept loop, `Hello`, and dispatch to the agent and console handlers.
//!
//! # Message flow per connection
//! 1. The client opens a bidirectional stream and sends [`Hello`]; the relay answers [`HelloReply`].
//!    A bad version gets `Refused`; a malformed or oversized frame closes the connection with a reason.
//! 2. Agents continue on that stream with [`tether_proto::msg::AgentToRelay`] ([`crate::agent_link`]).
//! 3. Consoles send one [`tether_proto::msg::ConsoleToRelay::Claim`] ([`crate::session`]); if accepted,
//!    the stream and every further stream they open are spliced to the agent.
//!
//! Every connection is one task in the accept loop's `JoinSet`; shutdown cancels a token they all
//! watch, closes the endpoint with [`close::SHUTTING_DOWN`], and waits a bounded time for the close
//! to reach peers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tether_net::framed::{self, FrameError};
use tether_net::tls::RelayIdentity;
use tether_proto::PROTOCOL_VERSION;
use tether_proto::msg::{Hello, HelloReply, NodeAddress, RelayError, RelayErrorKind, Role, close};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::agent_link::{self, AgentCtx};
use crate::audit_writer::AuditWriter;
use crate::backend::Backend;
use crate::config::{Limits, RelayConfig};
use crate::conn::{close_protocol, refuse};
use crate::device::{self, DeviceCtx};
use crate::directory::Directory;
use crate::fleet::FleetCtx;
use crate::ids::IdSource;
use crate::invite::Invites;
use crate::invite_list::ListCtx;
use crate::metrics::{self, GaugeGuard, Metrics};
use crate::record_service::QueryCtx;
use crate::records::RecordStore;
use crate::rendezvous::{Rendezvous, Stats};
use crate::session::{self, ConsoleCtx};
use crate::slots::SlotTable;
use crate::store::Store;

/// How long shutdown waits for closes to reach peers.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Longest wait in [`RelayHandle::audit_path`] for the audit writer to put queued records on disk.
pub const AUDIT_SYNC_WAIT: Duration = Duration::from_secs(5);

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
    /// The database (`--database`) could not be used: the URL, the login or the schema.
    #[error(transparent)]
    Database(#[from] crate::pg::PgError),
    /// The node's certificate could not be loaded, or was not issued by the cluster CA.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// A cluster CA was named without a node certificate to check against it.
    #[error(
        "--cluster-ca (cluster_ca) needs --node-dir (node_dir): the node's certificate from \
         `tether-relay cluster join`"
    )]
    CaWithoutNode,
    /// A public address was given to a relay that is not a cluster node.
    #[error(
        "--public-addr is where a cluster's other nodes send consoles: it needs --database \
         (a relay on its own sends nobody anywhere)"
    )]
    PublicAddrAlone,
    /// In a cluster, this node has no address to redirect consoles to.
    #[error(
        "this node listens on {0} and has no public address to send consoles to: pass \
         --public-addr HOST:PORT (or serve a node directory from `cluster join --addr`)"
    )]
    NoPublicAddr(SocketAddr),
}

/// What the accept loop holds: one context per kind of connection, each naming only the handles
/// its module uses, plus what the loop itself needs.
#[derive(Debug)]
struct Contexts {
    agent: AgentCtx,
    console: ConsoleCtx,
    device: DeviceCtx,
    slots: Arc<SlotTable>,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: CancellationToken,
}

/// The relay. See [`Relay::spawn`].
#[derive(Debug)]
pub struct Relay;

/// A running relay. Dropping it shuts the relay down.
#[derive(Debug)]
pub struct RelayHandle {
    local_addr: SocketAddr,
    node: Option<NodeAddress>,
    fingerprint: String,
    data_dir: PathBuf,
    contexts: Arc<Contexts>,
    audit: Arc<crate::audit::AuditLog>,
    store: Arc<dyn Store>,
    records: Arc<dyn RecordStore>,
    task: Option<tokio::task::JoinHandle<()>>,
    metrics_addr: Option<SocketAddr>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    /// Creates the data directory and certificate if needed, binds, and starts serving.
    pub async fn spawn(config: RelayConfig) -> Result<RelayHandle, StartError> {
        let dir = config.data_dir.clone();
        // The node's certificate first, then the database: a node of another cluster, a wrong URL,
        // password or schema stops the start before anything is written, there or here.
        if config.cluster_ca.is_some() && config.node_dir.is_none() {
            return Err(StartError::CaWithoutNode);
        }
        let node = match &config.node_dir {
            Some(d) => Some(crate::cluster::load(d, config.cluster_ca.as_deref())?),
            None => None,
        };
        if config.public_addr.is_some() && config.database.is_none() {
            return Err(StartError::PublicAddrAlone);
        }
        let backend = Backend::open(config.database.as_deref(), &dir)?;
        std::fs::create_dir_all(&dir).map_err(|source| StartError::DataDir {
            path: dir.clone(),
            source,
        })?;
        let (identity, node_file) = match node {
            Some(n) => (n.identity, Some(n.file)),
            None => (RelayIdentity::load_or_create(&dir)?, None),
        };
        let forwarder = crate::forward::Forwarder::new(
            config.splice_tap.clone(),
            config.forward_tamper.clone(),
        );
        let endpoint = {
            let forwarder = forwarder.clone();
            tether_net::transport::server_endpoint_wrapped(config.listen, &identity, move |s| {
                crate::forward::DemuxSocket::new(s, forwarder)
            })?
        };
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| StartError::DataDir {
                path: dir.clone(),
                source,
            })?;
        let metrics = Arc::new(Metrics::default());
        let audit_log = Arc::new(backend.audit_log(metrics.clone())?);
        let audit = AuditWriter::new(audit_log.clone(), metrics.clone());
        let limits = config.limits.clone();
        let store = backend.store().map_err(StartError::Store)?;
        let records = backend.records().map_err(StartError::Records)?;
        let table = Rendezvous::new(
            limits.code_ttl,
            limits.max_open_slots_per_agent,
            limits.claims_per_technician_per_minute,
            limits.claims_per_source_per_minute,
        );
        let node = if backend.is_shared() {
            let me = node_address(&config, node_file.as_ref(), local_addr)?;
            info!(node = %me.node, addr = %me.addr, "cluster node");
            Some(me)
        } else {
            None
        };
        let registry = node.clone().and_then(|me| backend.slot_registry(me));
        let slots = Arc::new(match registry {
            None => SlotTable::new(table),
            Some(registry) => {
                // A restarted node holds nothing; its old rows would only send consoles here.
                if let Err(e) = registry.release_all() {
                    warn!(error = %e, "cannot clear this node's old slots; they expire");
                }
                SlotTable::clustered(table, registry, limits.code_ttl)
            }
        });
        let directory: Arc<dyn Directory> = backend.directory();
        let ids = Arc::new(IdSource::default());
        let shutdown = CancellationToken::new();
        let wakes = Arc::new(crate::wake::Wakes::default());
        let contexts = Arc::new(Contexts {
            agent: AgentCtx {
                slots: slots.clone(),
                directory: directory.clone(),
                invites: Arc::new(Invites::new(limits.code_ttl)),
                audit: audit.clone(),
                records: records.clone(),
                metrics: metrics.clone(),
                ids: ids.clone(),
                code_ttl: limits.code_ttl,
                wakes: wakes.clone(),
                shutdown: shutdown.clone(),
            },
            console: ConsoleCtx {
                slots: slots.clone(),
                directory: directory.clone(),
                audit: audit.clone(),
                records: records.clone(),
                metrics: metrics.clone(),
                ids,
                limits: limits.clone(),
                tap: config.splice_tap.clone(),
                forwarder,
                wakes: wakes.clone(),
                shutdown: shutdown.clone(),
                fleet: FleetCtx {
                    directory: directory.clone(),
                    store: store.clone(),
                },
                queries: QueryCtx {
                    directory: directory.clone(),
                    records: records.clone(),
                    audit: audit.clone(),
                },
                invitations: ListCtx {
                    directory,
                    slots: slots.clone(),
                },
            },
            device: DeviceCtx {
                store: store.clone(),
                wakes,
                audit,
                shutdown: shutdown.clone(),
            },
            slots,
            metrics,
            limits,
            shutdown,
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
                    contexts.metrics.clone(),
                    contexts.shutdown.clone(),
                ));
                (Some(bound), Some(task))
            }
        };
        let task = tokio::spawn(accept_loop(endpoint, contexts.clone()));
        Ok(RelayHandle {
            local_addr,
            node,
            fingerprint: identity.fingerprint(),
            data_dir: dir,
            contexts,
            audit: audit_log,
            store,
            records,
            task: Some(task),
            metrics_addr,
            metrics_task,
        })
    }
}

/// This node's name and the address consoles are sent to: the flags, else the node file, else
/// a fresh name and the bound address (when it is one a console can reach).
fn node_address(
    config: &RelayConfig,
    file: Option<&crate::cluster::NodeFile>,
    bound: SocketAddr,
) -> Result<NodeAddress, StartError> {
    let node = match file {
        Some(f) => f.name.clone(),
        // Unique per start: the rows of an earlier run expire on their own.
        None => format!("node-{:08x}", rand::random::<u32>()),
    };
    let addr = match (&config.public_addr, file) {
        (Some(a), _) => {
            crate::cluster::addr_host(a)?;
            a.clone()
        }
        (None, Some(f)) => f.addr.clone(),
        (None, None) if bound.ip().is_unspecified() => return Err(StartError::NoPublicAddr(bound)),
        (None, None) => bound.to_string(),
    };
    Ok(NodeAddress { node, addr })
}

impl RelayHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// In a cluster (`--database`): this node's name and the address consoles are sent to.
    pub fn node(&self) -> Option<&NodeAddress> {
        self.node.as_ref()
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
        self.audit.sync(AUDIT_SYNC_WAIT, false);
        self.audit.path().to_path_buf()
    }

    /// Whether the audit log is being written (while not, new sessions and enrollments are refused).
    pub fn audit_writable(&self) -> bool {
        self.audit.writable()
    }

    /// Where the metrics endpoint listens, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The live counters.
    pub fn metrics(&self) -> &Metrics {
        &self.contexts.metrics
    }

    /// The fleet store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The session records.
    pub fn records(&self) -> Arc<dyn RecordStore> {
        self.records.clone()
    }

    /// Rendezvous counters.
    pub fn stats(&self) -> Stats {
        self.contexts.slots.stats()
    }

    /// Stops accepting, tells every peer, and waits (bounded) for the closes to go out.
    pub async fn shutdown(mut self) {
        self.contexts.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE * 2, task).await;
        }
        // The last records (sessions ended by the shutdown, refusal counts) reach the disk, and the
        // writer is gone, before the relay says it stopped.
        let audit = self.audit.clone();
        let _ = tokio::task::spawn_blocking(move || audit.close()).await;
        if let Some(task) = self.metrics_task.take() {
            let _ = std::fs::remove_file(self.data_dir.join(metrics::ADDR_FILE));
            task.abort();
        }
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.contexts.shutdown.cancel();
        if let Some(task) = self.metrics_task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, ctx: Arc<Contexts>) {
    let permits = Arc::new(Semaphore::new(ctx.limits.max_connections));
    let mut tasks = JoinSet::new();
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = sweep.tick() => ctx.slots.expire(Instant::now()),
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let permit = permits.clone().try_acquire_owned().ok();
                let ctx = ctx.clone();
                let span = info_span!("conn", peer = %incoming.remote_address());
                tasks.spawn(async move {
                    let Ok(Ok(conn)) = tokio::time::timeout(ctx.limits.hello_timeout, incoming).await else { return };
                    ctx.metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
                    match permit {
                        Some(_permit) => {
                            let _open = GaugeGuard::new(&ctx.metrics.connections_open);
                            serve(conn.clone(), ctx.clone()).await;
                            // Dropping the last handle would close with code 0 and no reason; a peer
                            // must hear why.
                            if ctx.shutdown.is_cancelled() {
                                conn.close(close::SHUTTING_DOWN.into(), b"relay shutting down");
                            }
                        }
                        None => {
                            warn!("at connection limit; refusing");
                            ctx.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
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

async fn serve(conn: quinn::Connection, ctx: Arc<Contexts>) {
    let first = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = tokio::time::timeout(ctx.limits.hello_timeout, async {
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
        Role::Agent => agent_link::serve(conn, send, recv, &ctx.agent).await,
        Role::Console => {
            // Consoles open a stream per request; agents never need more than their control stream.
            conn.set_max_concurrent_bi_streams(
                tether_net::transport::MAX_CONCURRENT_BIDI_STREAMS.into(),
            );
            session::serve(conn, send, recv, &ctx.console).await
        }
        Role::Device => device::serve(conn, send, recv, &ctx.device).await,
    }
}
