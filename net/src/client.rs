//! Connecting to a relay: resolve, handshake with pinning, then the `Hello` exchange on a control stream.

use std::time::Duration;

use tether_proto::PROTOCOL_VERSION;
use tether_proto::msg::{Hello, HelloReply, RelayError, Role};

use crate::framed::{self, FrameError};
use crate::tls::{DEFAULT_SERVER_NAME, Trust};
use crate::transport::{self, EndpointError};

/// Default time allowed for reaching the relay.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the relay is and how to trust it.
#[derive(Debug, Clone)]
pub struct RelayTarget {
    /// `host:port`.
    pub addr: String,
    /// How the relay's certificate is checked.
    pub trust: Trust,
    /// How long to wait for the handshake.
    pub connect_timeout: Duration,
    /// Whether a session's end-to-end connection may leave the relay for a direct path.
    pub direct: crate::path::Direct,
}

/// Why a relay could not be reached or used. Each says what a person can do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address did not resolve.
    #[error("cannot resolve relay address {addr}: {reason}")]
    Resolve {
        /// The address given.
        addr: String,
        /// Why.
        reason: String,
    },
    /// Nothing answered in time.
    #[error(
        "relay {addr} is unreachable (no answer within {secs} s); check the address and that the relay runs"
    )]
    Unreachable {
        /// The address.
        addr: String,
        /// The timeout.
        secs: u64,
    },
    /// The relay's certificate is not the pinned one.
    #[error(
        "relay certificate fingerprint mismatch: expected {expected}, the relay presented {actual}. \
         Refusing to connect; check TETHER_RELAY_CERT_SHA256 against what the relay printed"
    )]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: String,
        /// What the relay presented.
        actual: String,
    },
    /// Any other handshake or connection failure.
    #[error("cannot connect to relay {addr}: {reason}")]
    Connection {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The relay closed the connection before the `Hello` was answered (at capacity, shutting down).
    #[error("the relay closed the connection: {0}")]
    RelayClosed(crate::closed::Closed),
    /// The relay refused the `Hello`.
    #[error("relay refused: {0}")]
    Refused(RelayError),
    /// The relay broke protocol.
    #[error("relay protocol error: {0}")]
    Protocol(#[from] FrameError),
    /// The local endpoint could not be set up.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
}

/// A live connection to the relay. Dropping it closes the endpoint.
#[derive(Debug)]
pub struct RelayConnection {
    /// The local endpoint (kept alive with the connection).
    pub endpoint: quinn::Endpoint,
    /// The connection.
    pub conn: quinn::Connection,
}

impl RelayConnection {
    /// Closes the connection with `code` and waits briefly for the close to be sent.
    pub async fn close(&self, code: u32, reason: &str) {
        self.conn.close(code.into(), reason.as_bytes());
        // Bounded so a dead network never holds up exit.
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }
}

/// Connects to the relay and completes the TLS handshake.
pub async fn connect(target: &RelayTarget) -> Result<RelayConnection, ConnectError> {
    connect_from(target, None).await
}

/// Like [`connect`], from a chosen local address (a multi-homed host, or a test posing as another source).
pub async fn connect_from(
    target: &RelayTarget,
    bind: Option<std::net::SocketAddr>,
) -> Result<RelayConnection, ConnectError> {
    connect_to(
        target,
        bind,
        DEFAULT_SERVER_NAME,
        transport::Liveness::STANDARD,
    )
    .await
}

/// Like [`connect_from`], watching the relay as `liveness` says.
pub async fn connect_with(
    target: &RelayTarget,
    bind: Option<std::net::SocketAddr>,
    liveness: transport::Liveness,
) -> Result<RelayConnection, ConnectError> {
    connect_to(target, bind, DEFAULT_SERVER_NAME, liveness).await
}

/// Like [`connect`], asking for (and, with [`Trust::CaFile`], checking the certificate names)
/// `server_name`: a relay cluster's node by its name, so a redirect to a node reaches that node
/// and no other.
pub async fn connect_named(
    target: &RelayTarget,
    server_name: &str,
) -> Result<RelayConnection, ConnectError> {
    connect_to(target, None, server_name, transport::Liveness::STANDARD).await
}

async fn connect_to(
    target: &RelayTarget,
    bind: Option<std::net::SocketAddr>,
    server_name: &str,
    liveness: transport::Liveness,
) -> Result<RelayConnection, ConnectError> {
    let addr = tokio::net::lookup_host(&target.addr)
        .await
        .map_err(|e| ConnectError::Resolve {
            addr: target.addr.clone(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ConnectError::Resolve {
            addr: target.addr.clone(),
            reason: "no addresses".into(),
        })?;
    let (endpoint, seen) = transport::client_endpoint_with(addr, &target.trust, bind, liveness)?;
    let connecting = endpoint
        .connect(addr, server_name)
        .map_err(|e| ConnectError::Connection {
            addr: target.addr.clone(),
            reason: e.to_string(),
        })?;
    let unreachable = || ConnectError::Unreachable {
        addr: target.addr.clone(),
        secs: target.connect_timeout.as_secs().max(1),
    };
    let conn = match tokio::time::timeout(target.connect_timeout, connecting).await {
        Err(_) => return Err(unreachable()),
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            if let (Some(actual), Trust::Fingerprint(expected)) = (seen.mismatch(), &target.trust) {
                return Err(ConnectError::FingerprintMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
            return Err(match e {
                quinn::ConnectionError::TimedOut => unreachable(),
                other => ConnectError::Connection {
                    addr: target.addr.clone(),
                    reason: other.to_string(),
                },
            });
        }
    };
    Ok(RelayConnection { endpoint, conn })
}

/// Opens a control stream and exchanges `Hello`.
pub async fn open_control(
    conn: &quinn::Connection,
    role: Role,
) -> Result<(quinn::SendStream, quinn::RecvStream), ConnectError> {
    hello(conn, role).await.map_err(|e| match e {
        // Say why the relay hung up (BUSY, SHUTTING_DOWN) rather than "stream error".
        ConnectError::Protocol(_) => match crate::closed::reason(conn) {
            Some(c) => ConnectError::RelayClosed(c),
            None => e,
        },
        e => e,
    })
}

async fn hello(
    conn: &quinn::Connection,
    role: Role,
) -> Result<(quinn::SendStream, quinn::RecvStream), ConnectError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(FrameError::from)?;
    framed::write_msg(
        &mut send,
        &Hello {
            version: PROTOCOL_VERSION,
            role,
        },
    )
    .await?;
    match framed::read_msg::<HelloReply>(&mut recv).await? {
        HelloReply::Accepted { .. } => Ok((send, recv)),
        HelloReply::Refused(e) => Err(ConnectError::Refused(e)),
    }
}
