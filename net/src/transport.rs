//! quinn transport settings and endpoints, shared so every program agrees on them.

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use crate::tls::{self, RelayIdentity, SeenFingerprint, TlsError, Trust};

/// How often an idle connection sends a keep-alive.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);

/// A peer silent for this long is gone: two keep-alive intervals, so one lost keep-alive (which QUIC
/// retransmits after a probe timeout) is survived.
///
/// QUIC restarts the idle timer when it sends the first ack-eliciting packet after a receipt, so a
/// side that is idle when its peer vanishes notices after up to `KEEP_ALIVE + IDLE_TIMEOUT` = 9 s,
/// inside the 10 s in which a vanished peer must be noticed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(6);

/// How closely a client watches its relay: keep-alive interval and idle timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// How often an idle connection sends a keep-alive.
    pub keep_alive: Duration,
    /// A relay silent for this long is gone (the relay's own, longer, setting is overridden: QUIC
    /// takes the smaller of the two).
    pub idle_timeout: Duration,
}

impl Liveness {
    /// [`KEEP_ALIVE`] and [`IDLE_TIMEOUT`]: a vanished relay is noticed within 9 s.
    pub const STANDARD: Liveness = Liveness {
        keep_alive: KEEP_ALIVE,
        idle_timeout: IDLE_TIMEOUT,
    };

    /// For an agent that knows other nodes of a relay cluster to move to: a keep-alive every
    /// 750 ms and a 2.5 s timeout (two lost keep-alives survived), so a node that dies is noticed
    /// within 3.25 s and the user has a new code through another node within 5 s. Four times the
    /// keep-alive packets of [`Liveness::STANDARD`], paid only by agents given other nodes.
    pub const WATCHFUL: Liveness = Liveness {
        keep_alive: Duration::from_millis(750),
        idle_timeout: Duration::from_millis(2500),
    };
}

/// UDP socket buffer size asked for, each way. The kernel default (about 208 KiB) overflows when a
/// relay with tens of thousands of connections is briefly descheduled: keep-alives are dropped and
/// connections time out. The kernel caps this at `net.core.rmem_max` / `wmem_max`.
pub const SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// Bidirectional streams a peer may have open at once on one connection.
pub const MAX_CONCURRENT_BIDI_STREAMS: u32 = 32;

/// Bidirectional streams a client may open on a fresh relay connection: just the control stream.
/// quinn pre-allocates state for every stream a peer may open, and a waiting agent only ever opens
/// one, so this saves ≈ 2.4 KiB per idle agent (BENCHMARKS.md). The relay raises a console's limit
/// to [`MAX_CONCURRENT_BIDI_STREAMS`] once it has said `Hello` as a console.
pub const RELAY_INITIAL_BIDI_STREAMS: u32 = 1;

/// The transport config all Tether endpoints use.
pub fn transport_config() -> Arc<quinn::TransportConfig> {
    transport_config_with(MAX_CONCURRENT_BIDI_STREAMS)
}

fn transport_config_with(max_bidi: u32) -> Arc<quinn::TransportConfig> {
    transport_config_for(max_bidi, Liveness::STANDARD)
}

fn transport_config_for(max_bidi: u32, liveness: Liveness) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(liveness.keep_alive));
    // Idle timeouts are seconds, far below the QUIC varint limit, so this conversion cannot fail.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(liveness.idle_timeout).ok());
    t.max_concurrent_bidi_streams(max_bidi.into());
    t.max_concurrent_uni_streams(0u32.into());
    Arc::new(t)
}

/// A server endpoint for the relay, bound to `addr`.
pub fn server_endpoint(
    addr: SocketAddr,
    identity: &RelayIdentity,
) -> Result<quinn::Endpoint, EndpointError> {
    server_endpoint_wrapped(addr, identity, |s| s)
}

/// Like [`server_endpoint`], with the UDP socket seen through `wrap`: the relay's packet forwarder
/// takes its bind packets and forwarded datagrams out of what QUIC reads.
pub fn server_endpoint_wrapped(
    addr: SocketAddr,
    identity: &RelayIdentity,
    wrap: impl FnOnce(Arc<dyn quinn::AsyncUdpSocket>) -> Arc<dyn quinn::AsyncUdpSocket>,
) -> Result<quinn::Endpoint, EndpointError> {
    let crypto = QuicServerConfig::try_from(identity.server_crypto()?)
        .map_err(|e| EndpointError::Quic(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(transport_config_with(RELAY_INITIAL_BIDI_STREAMS));
    endpoint_on(bind_udp(addr)?, Some(cfg), endpoint_config(), wrap)
}

/// The unspecified address of `peer`'s family, any port: where a socket that talks to `peer` binds.
pub fn any_port_towards(peer: SocketAddr) -> SocketAddr {
    if peer.is_ipv6() {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    }
}

/// A UDP socket bound to `addr` with [`SOCKET_BUFFER`] asked for.
pub fn bind_udp(addr: SocketAddr) -> Result<std::net::UdpSocket, EndpointError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, it only drops sooner under load.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The endpoint settings every Tether endpoint uses: the QUIC fixed bit is never greased
/// (RFC 9287), so a datagram whose first byte is zero is never QUIC, and the relay's port can
/// carry its forwarder's bind packets too ([`tether_proto::forward`]).
pub fn endpoint_config() -> quinn::EndpointConfig {
    let mut cfg = quinn::EndpointConfig::default();
    cfg.grease_quic_bit(false);
    cfg
}

/// The endpoint settings of a session's end-to-end connection: [`endpoint_config`] with
/// zero-length connection IDs, 8 bytes fewer in every packet (a typed character's frame is about
/// 90). Each end has one connection on its own socket, and the path socket keeps the peer's address
/// the same for quinn when the path changes, so nothing needs a connection ID to find it.
pub fn e2e_endpoint_config() -> quinn::EndpointConfig {
    let mut cfg = endpoint_config();
    cfg.cid_generator(|| Box::new(NoConnectionIds));
    cfg
}

/// Zero-length connection IDs (see [`e2e_endpoint_config`]).
#[derive(Debug)]
struct NoConnectionIds;

impl quinn::ConnectionIdGenerator for NoConnectionIds {
    fn generate_cid(&mut self) -> quinn::ConnectionId {
        quinn::ConnectionId::new(&[])
    }

    fn cid_len(&self) -> usize {
        0
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

/// Binds a UDP socket with [`SOCKET_BUFFER`] and wraps it in an endpoint.
fn endpoint(
    addr: SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint, EndpointError> {
    endpoint_on(bind_udp(addr)?, server, endpoint_config(), |s| s)
}

/// An endpoint on `socket`, seen through `wrap`.
pub(crate) fn endpoint_on(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
    config: quinn::EndpointConfig,
    wrap: impl FnOnce(Arc<dyn quinn::AsyncUdpSocket>) -> Arc<dyn quinn::AsyncUdpSocket>,
) -> Result<quinn::Endpoint, EndpointError> {
    let runtime =
        quinn::default_runtime().ok_or_else(|| EndpointError::Quic("no async runtime".into()))?;
    let socket = wrap(runtime.wrap_udp_socket(socket)?);
    Ok(quinn::Endpoint::new_with_abstract_socket(
        config, server, socket, runtime,
    )?)
}

/// A client endpoint that trusts the relay per `trust`.
pub fn client_endpoint(
    relay: SocketAddr,
    trust: &Trust,
) -> Result<(quinn::Endpoint, SeenFingerprint), EndpointError> {
    client_endpoint_from(relay, trust, None)
}

/// Like [`client_endpoint`], bound to `bind` when given.
pub fn client_endpoint_from(
    relay: SocketAddr,
    trust: &Trust,
    bind: Option<SocketAddr>,
) -> Result<(quinn::Endpoint, SeenFingerprint), EndpointError> {
    client_endpoint_with(relay, trust, bind, Liveness::STANDARD)
}

/// Like [`client_endpoint_from`], watching the relay as `liveness` says.
pub fn client_endpoint_with(
    relay: SocketAddr,
    trust: &Trust,
    bind: Option<SocketAddr>,
    liveness: Liveness,
) -> Result<(quinn::Endpoint, SeenFingerprint), EndpointError> {
    let (crypto, seen) = tls::client_crypto(trust)?;
    let crypto =
        QuicClientConfig::try_from(crypto).map_err(|e| EndpointError::Quic(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(transport_config_for(MAX_CONCURRENT_BIDI_STREAMS, liveness));
    let mut ep = endpoint(bind.unwrap_or(any_port_towards(relay)), None)?;
    ep.set_default_client_config(cfg);
    Ok((ep, seen))
}

/// Errors creating an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// quinn rejected the crypto config.
    #[error("QUIC configuration: {0}")]
    Quic(String),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP socket: {0}")]
    Bind(#[from] std::io::Error),
}

/// Receive batches a filtering socket takes in one poll before it yields to other tasks, when it
/// kept none of their datagrams.
const BATCHES_PER_POLL: usize = 16;

/// `inner.poll_recv` for a socket that takes some datagrams out of what quinn reads (the relay's
/// forwarder, the end-to-end connection's probes): `keep` sees each datagram, with the time of
/// its batch, and says whether quinn gets it; the kept ones are moved to the front.
pub fn poll_recv_filtered(
    inner: &dyn quinn::AsyncUdpSocket,
    cx: &mut Context,
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [quinn::udp::RecvMeta],
    mut keep: impl FnMut(&mut [u8], &mut quinn::udp::RecvMeta, Instant) -> bool,
) -> Poll<std::io::Result<usize>> {
    for _ in 0..BATCHES_PER_POLL {
        let n = match inner.poll_recv(cx, bufs, meta) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        let now = Instant::now();
        let mut kept = 0;
        for i in 0..n {
            let len = meta[i].len;
            if !keep(&mut bufs[i][..len], &mut meta[i], now) {
                continue;
            }
            if kept != i {
                let (head, tail) = bufs.split_at_mut(i);
                head[kept][..len].copy_from_slice(&tail[0][..len]);
                meta[kept] = meta[i];
            }
            kept += 1;
        }
        if kept > 0 {
            return Poll::Ready(Ok(kept));
        }
    }
    // Nothing for quinn in all those batches: let other tasks run, and come back.
    cx.waker().wake_by_ref();
    Poll::Pending
}
