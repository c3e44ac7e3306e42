//! A session's end-to-end QUIC connection between the agent and the console, whose packets the
//! relay forwards without decrypting them ([`tether_proto::forward`]).
//!
//! # Flow (after pairing, on the sealed transport stream [`E2E_STREAM`], spliced by the relay)
//! 1. The console binds a fresh UDP socket to the relay with its route token ([`ConsoleHalf`]) and
//!    sends [`E2eOffer`]: the fingerprint of a certificate made for this session only.
//! 2. The agent binds its own socket ([`AgentHalf`]), answers with its own [`E2eOffer`], and waits.
//!    Its session runs on stream 0 meanwhile (the user's consent prompt does not wait for this).
//! 3. The console connects through the relay; the agent is the QUIC server. Each side presents its
//!    certificate and accepts exactly the one the other announced (mutual TLS 1.3, pinned), so the
//!    relay, which saw neither offer, can neither read the packets nor stand in for an end.
//! 4. Each end sends a sealed [`PathOffer`] on the same stream (its addresses, unless
//!    [`Direct::Forbidden`]), and when both offered, the connection's [`PathSocket`] looks for a
//!    direct path and takes it ([`crate::path`]); the connection itself never changes.
//!
//! Nothing falls back: if the connection cannot be made, the session ends with [`E2eError`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tether_proto::forward::{BindPacket, RouteToken};
use tether_proto::msg::{E2eOffer, StreamOpen};
use tether_proto::pairing::Side;
use tether_proto::seal::SessionKeys;

use crate::framed;
use crate::path::{self as paths, Direct, PathSocket};
use crate::sealed::SealedStream;
use tether_proto::path::{Path, PathOffer, Prober};

use crate::tls::{PinnedVerifier, SeenFingerprint, provider};
use crate::transport::{self, EndpointError};

/// The number of the transport stream ([`StreamOpen`]): the console opens it on its relay
/// connection right after pairing, and each end sends one sealed [`E2eOffer`] on it. Request streams
/// count up from 1 and never reach it.
pub const E2E_STREAM: u32 = u32::MAX;

/// The ALPN of the end-to-end connection.
pub const ALPN: &[u8] = b"tether-e2e/1";

/// The server name the console asks for (the certificate is pinned, the name only fills the field).
const SERVER_NAME: &str = "tether-e2e";

/// How long a bind packet waits for the relay's answer before it is sent again.
const BIND_RETRY: Duration = Duration::from_millis(300);

/// Bind packets sent before giving up.
const BIND_TRIES: u32 = 8;

/// How long each step (an offer, the QUIC handshake) may take.
pub const E2E_STEP: Duration = Duration::from_secs(15);

/// Why the end-to-end connection could not be made. Each ends the session; none falls back.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// The relay did not answer the bind packets.
    #[error(
        "the relay did not answer the end-to-end connection's bind packets ({0} tries): is UDP to \
         the relay blocked for new sockets?"
    )]
    NoBind(u32),
    /// The relay knows no route for the token.
    #[error("the relay knows no route for this session (it ended, or the relay restarted)")]
    UnknownRoute,
    /// The peer presented another certificate than the one it announced on the sealed stream.
    #[error(
        "the end-to-end connection presented a certificate other than the one the {peer} \
         announced on the sealed stream (someone on the path, the relay perhaps, tried to stand \
         in for it); the session ends"
    )]
    WrongPeer {
        /// Who should have presented it ("agent" or "technician's console").
        peer: &'static str,
    },
    /// The QUIC handshake or a step did not finish in time.
    #[error("the end-to-end connection was not made within {0:?}")]
    Timeout(Duration),
    /// The QUIC connection failed.
    #[error("the end-to-end connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The transport stream broke, or carried something else than an offer.
    #[error("the end-to-end connection's offer did not arrive: {0}")]
    Offer(String),
    /// Local setup (sockets, TLS).
    #[error("the end-to-end connection could not be set up: {0}")]
    Setup(String),
}

impl From<EndpointError> for E2eError {
    fn from(e: EndpointError) -> Self {
        E2eError::Setup(e.to_string())
    }
}

impl From<std::io::Error> for E2eError {
    fn from(e: std::io::Error) -> Self {
        E2eError::Setup(e.to_string())
    }
}

/// A certificate made for one session's end-to-end connection.
#[derive(Debug)]
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    fingerprint: [u8; 32],
}

impl Identity {
    fn fresh() -> Result<Identity, E2eError> {
        let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_string()])
            .map_err(|e| E2eError::Setup(e.to_string()))?;
        let cert = made.cert.der().clone();
        let fingerprint = Sha256::digest(cert.as_ref()).into();
        Ok(Identity {
            cert,
            key: made.signing_key.serialize_der().into(),
            fingerprint,
        })
    }

    fn offer(&self) -> E2eOffer {
        E2eOffer {
            fingerprint: self.fingerprint,
        }
    }
}

/// The session's end-to-end connection and the endpoint it lives on.
#[derive(Debug, Clone)]
pub struct E2eLink {
    /// Held, so the session's socket stays open exactly as long as its link.
    _endpoint: quinn::Endpoint,
    /// The connection the session's request streams run on.
    pub conn: quinn::Connection,
    /// This end's address as the relay saw it.
    pub observed: SocketAddr,
    socket: Arc<PathSocket>,
    local: SocketAddr,
}

impl E2eLink {
    /// The path the connection's packets take (relayed, or direct to the other end), as it
    /// changes.
    pub fn path(&self) -> tokio::sync::watch::Receiver<Path> {
        self.socket.watch()
    }

    /// Tells the other end, on the sealed transport `stream`, where this end can be reached (unless
    /// `direct` forbids it), hears the same of it, and starts looking for a direct path when both
    /// allow one.
    async fn exchange_paths(
        &self,
        stream: &mut SealedStream,
        relay: SocketAddr,
        direct: Direct,
    ) -> Result<(), E2eError> {
        let mine = paths::offer(direct, self.observed, self.local, relay);
        stream.send(&mine).await.map_err(offer_failed)?;
        let theirs: PathOffer = step(stream.recv()).await?.map_err(offer_failed)?;
        let peer = theirs.checked().map_err(offer_failed)?;
        if let (Some(_), Some(peer)) = (&mine.candidates, peer) {
            let first_nonce = rand::random();
            let prober = Prober::new(&mine, &theirs, peer, first_nonce, std::time::Instant::now());
            self.socket.start(prober);
        }
        Ok(())
    }

    /// Closes the connection (quinn sends the close while the endpoint lives on in its driver).
    pub fn close(&self, code: u32, reason: &str) {
        self.conn.close(code.into(), reason.as_bytes());
    }
}

/// The console's half, bound and offered, waiting for the agent's offer.
#[derive(Debug)]
pub struct ConsoleHalf {
    me: Identity,
    socket: std::net::UdpSocket,
    observed: SocketAddr,
    relay: SocketAddr,
}

impl ConsoleHalf {
    /// Binds a fresh socket to the relay's forwarder with the console's `route` and makes this
    /// session's certificate; send the offer on stream 0, then [`ConsoleHalf::connect`].
    pub async fn bind(relay: SocketAddr, route: RouteToken) -> Result<(Self, E2eOffer), E2eError> {
        let me = Identity::fresh()?;
        let (socket, observed) = bind(relay, route).await?;
        let offer = me.offer();
        let half = ConsoleHalf {
            me,
            socket,
            observed,
            relay,
        };
        Ok((half, offer))
    }

    /// Connects through the relay to the agent that made `peer`, presenting this half's
    /// certificate.
    pub async fn connect(self, peer: E2eOffer) -> Result<E2eLink, E2eError> {
        let ConsoleHalf {
            me,
            socket,
            observed,
            relay,
        } = self;
        let seen = SeenFingerprint::default();
        let verifier = Arc::new(PinnedVerifier::new(
            hex::encode(peer.fingerprint),
            seen.clone(),
        ));
        let mut crypto = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup)?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![me.cert.clone()], PrivateKeyDer::Pkcs8(me.key))
            .map_err(setup)?;
        crypto.alpn_protocols = vec![ALPN.to_vec()];
        let mut cfg =
            quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(crypto).map_err(setup)?));
        cfg.transport_config(transport::transport_config());
        let local = socket.local_addr()?;
        let (endpoint, path_socket) = path_endpoint(socket, None, relay)?;
        let connecting = endpoint
            .connect_with(cfg, relay, SERVER_NAME)
            .map_err(setup)?;
        let conn = match step(connecting).await? {
            Ok(c) => c,
            Err(_) if seen.mismatch().is_some() => {
                return Err(E2eError::WrongPeer { peer: "agent" });
            }
            Err(e) => return Err(e.into()),
        };
        Ok(E2eLink {
            _endpoint: endpoint,
            conn,
            observed,
            socket: path_socket,
            local,
        })
    }
}

/// An endpoint on `socket` whose packets go through a [`PathSocket`] towards `relay`.
fn path_endpoint(
    socket: std::net::UdpSocket,
    server: Option<quinn::ServerConfig>,
    relay: SocketAddr,
) -> Result<(quinn::Endpoint, Arc<PathSocket>), E2eError> {
    let mut made = None;
    let config = transport::e2e_endpoint_config();
    let endpoint = transport::endpoint_on(socket, server, config, |inner| {
        let s = PathSocket::new(inner, relay);
        made = Some(s.clone());
        s
    })?;
    let socket = made.ok_or_else(|| E2eError::Setup("the endpoint made no socket".into()))?;
    Ok((endpoint, socket))
}

/// The agent's half: bound, listening for the console that made the offer it was given.
#[derive(Debug)]
pub struct AgentHalf {
    endpoint: quinn::Endpoint,
    socket: Arc<PathSocket>,
    local: SocketAddr,
    observed: SocketAddr,
    relay: SocketAddr,
    seen: SeenFingerprint,
}

impl AgentHalf {
    /// Binds a fresh socket to the relay's forwarder with the agent's `route` and listens for the
    /// console that made `peer`; send the returned offer on stream 0, then [`AgentHalf::accept`].
    pub async fn bind(
        relay: SocketAddr,
        route: RouteToken,
        peer: E2eOffer,
    ) -> Result<(Self, E2eOffer), E2eError> {
        let me = Identity::fresh()?;
        let (socket, observed) = bind(relay, route).await?;
        let seen = SeenFingerprint::default();
        let verifier = Arc::new(PinnedVerifier::new(
            hex::encode(peer.fingerprint),
            seen.clone(),
        ));
        let mut crypto = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(setup)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![me.cert.clone()],
                PrivateKeyDer::Pkcs8(me.key.clone_key()),
            )
            .map_err(setup)?;
        crypto.alpn_protocols = vec![ALPN.to_vec()];
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(crypto).map_err(setup)?,
        ));
        cfg.transport_config(transport::transport_config());
        let local = socket.local_addr()?;
        let (endpoint, path_socket) = path_endpoint(socket, Some(cfg), relay)?;
        let half = AgentHalf {
            endpoint,
            socket: path_socket,
            local,
            observed,
            relay,
            seen,
        };
        Ok((half, me.offer()))
    }

    /// Accepts the console's connection, which must come through the relay's forwarder and
    /// present the announced certificate.
    pub async fn accept(self) -> Result<E2eLink, E2eError> {
        let AgentHalf {
            endpoint,
            socket,
            local,
            observed,
            relay,
            seen,
        } = self;
        let conn = step(async {
            loop {
                let Some(incoming) = endpoint.accept().await else {
                    return Err(E2eError::Setup("the endpoint closed".into()));
                };
                // Only the relay's forwarder carries the console's packets to this socket.
                if incoming.remote_address() != relay {
                    incoming.ignore();
                    continue;
                }
                return match incoming.await {
                    Ok(c) => Ok(c),
                    Err(_) if seen.mismatch().is_some() => Err(E2eError::WrongPeer {
                        peer: "technician's console",
                    }),
                    Err(e) => Err(e.into()),
                };
            }
        })
        .await??;
        // The one connection this endpoint serves: no other handshake is answered.
        endpoint.set_server_config(None);
        Ok(E2eLink {
            _endpoint: endpoint,
            conn,
            observed,
            socket,
            local,
        })
    }
}

/// The console's side, after pairing with `keys`: opens the transport stream on `relay` (the
/// console's relay connection), offers, reads the agent's offer, and connects through the relay's
/// forwarder with `route`; then the two ends look for a direct path, as `direct` allows.
pub async fn offer(
    relay: &quinn::Connection,
    keys: &SessionKeys,
    route: RouteToken,
    direct: Direct,
) -> Result<E2eLink, E2eError> {
    let (half, mine) = ConsoleHalf::bind(relay.remote_address(), route).await?;
    let (mut send, recv) = relay.open_bi().await?;
    framed::write_msg(
        &mut send,
        &StreamOpen {
            stream_id: E2E_STREAM,
        },
    )
    .await
    .map_err(offer_failed)?;
    let mut stream = SealedStream::new(send, recv, keys, E2E_STREAM, Side::Console);
    stream.send(&mine).await.map_err(offer_failed)?;
    let peer: E2eOffer = step(stream.recv()).await?.map_err(offer_failed)?;
    let link = half.connect(peer).await?;
    // In TLS 1.3 the client is done before the server has checked its certificate: the agent's
    // second frame, the fingerprint it accepted, says it did.
    match step(stream.recv::<E2eOffer>()).await? {
        Ok(seen) if seen == mine => {}
        Ok(_) => return Err(E2eError::WrongPeer { peer: "agent" }),
        Err(e) => {
            return Err(match link.conn.close_reason() {
                Some(reason) => E2eError::Connection(reason),
                None => offer_failed(e),
            });
        }
    }
    link.exchange_paths(&mut stream, relay.remote_address(), direct)
        .await?;
    stream.finish();
    Ok(link)
}

/// The agent's side, on the transport stream the console opened (its `StreamOpen` already read):
/// reads the console's offer, binds with `route` at `relay`, answers, and accepts the console's
/// connection; then the two ends look for a direct path, as `direct` allows.
pub async fn answer(
    (send, recv): (quinn::SendStream, quinn::RecvStream),
    keys: &SessionKeys,
    relay: SocketAddr,
    route: RouteToken,
    direct: Direct,
) -> Result<E2eLink, E2eError> {
    let mut stream = SealedStream::new(send, recv, keys, E2E_STREAM, Side::Agent);
    let peer: E2eOffer = step(stream.recv()).await?.map_err(offer_failed)?;
    let (half, mine) = AgentHalf::bind(relay, route, peer).await?;
    stream.send(&mine).await.map_err(offer_failed)?;
    let link = half.accept().await?;
    // The console waits for this: the connection it made is the one accepted here.
    stream.send(&peer).await.map_err(offer_failed)?;
    link.exchange_paths(&mut stream, relay, direct).await?;
    stream.finish();
    Ok(link)
}

fn offer_failed(e: impl std::fmt::Display) -> E2eError {
    E2eError::Offer(e.to_string())
}

fn setup(e: impl std::fmt::Display) -> E2eError {
    E2eError::Setup(e.to_string())
}

async fn step<T>(f: impl std::future::Future<Output = T>) -> Result<T, E2eError> {
    tokio::time::timeout(E2E_STEP, f)
        .await
        .map_err(|_| E2eError::Timeout(E2E_STEP))
}

/// Binds a fresh UDP socket to the relay's forwarder with `route`: sends the bind packet until the
/// relay answers. Returns the socket and the address the relay saw.
pub async fn bind(
    relay: SocketAddr,
    route: RouteToken,
) -> Result<(std::net::UdpSocket, SocketAddr), E2eError> {
    let std_socket = transport::bind_udp(transport::any_port_towards(relay))?;
    std_socket.set_nonblocking(true)?;
    let socket = tokio::net::UdpSocket::from_std(std_socket)?;
    let bind = BindPacket::Bind(route).encode();
    let mut buf = [0u8; 64];
    for _ in 0..BIND_TRIES {
        socket.send_to(&bind, relay).await?;
        let deadline = tokio::time::Instant::now() + BIND_RETRY;
        while let Ok(got) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            let (n, from) = got?;
            if from != relay {
                continue;
            }
            match BindPacket::decode(&buf[..n]) {
                Ok(BindPacket::Bound { token, observed }) if token == route => {
                    return Ok((socket.into_std()?, observed));
                }
                Ok(BindPacket::Unknown(token)) if token == route => {
                    return Err(E2eError::UnknownRoute);
                }
                _ => continue,
            }
        }
    }
    Err(E2eError::NoBind(BIND_TRIES))
}
