//! The relay protocol driven directly: `Hello` → `OpenSlot` (agent) / `Claim` (console) → spliced
//! streams. No pairing: the relay only ever sees opaque bytes after the claim, so for load on the
//! relay this is the same traffic a real session makes, without spending the bench's CPU on SPAKE2.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use tether_net::client::open_control;
use tether_net::framed;
use tether_net::tls::DEFAULT_SERVER_NAME;
use tether_net::{Trust, transport};
use tether_proto::Slot;
use tether_proto::forward::RouteToken;
use tether_proto::msg::{AgentToRelay, ConsoleToRelay, RelayToAgent, RelayToConsole, Role};

/// One client endpoint that many connections share.
#[derive(Debug, Clone)]
pub struct Client {
    /// The endpoint.
    pub endpoint: quinn::Endpoint,
    /// Where it connects.
    pub server: SocketAddr,
}

impl Client {
    /// A client endpoint pinned to `fingerprint` at `server`.
    pub fn new(server: SocketAddr, fingerprint: &str) -> anyhow::Result<Self> {
        let (endpoint, _) =
            transport::client_endpoint(server, &Trust::Fingerprint(fingerprint.to_string()))?;
        Ok(Client { endpoint, server })
    }

    /// A new QUIC connection to the server.
    pub async fn connect(&self) -> anyhow::Result<quinn::Connection> {
        Ok(self
            .endpoint
            .connect(self.server, DEFAULT_SERVER_NAME)?
            .await?)
    }
}

/// An agent connection holding an open slot.
#[derive(Debug)]
pub struct RawAgent {
    /// The connection.
    pub conn: quinn::Connection,
    /// Control stream, send half.
    pub send: quinn::SendStream,
    /// Control stream, receive half.
    pub recv: quinn::RecvStream,
    /// The slot it waits under.
    pub slot: Slot,
}

/// Connects an agent and opens a slot.
pub async fn agent(client: &Client) -> anyhow::Result<RawAgent> {
    let conn = client.connect().await?;
    let (mut send, mut recv) = open_control(&conn, Role::Agent).await?;
    framed::write_msg(&mut send, &AgentToRelay::OpenSlot { reason: None }).await?;
    match framed::read_msg::<RelayToAgent>(&mut recv).await? {
        RelayToAgent::SlotOpened { slot, .. } => Ok(RawAgent {
            conn,
            send,
            recv,
            slot,
        }),
        other => bail!("expected SlotOpened, got {other:?}"),
    }
}

impl RawAgent {
    /// Waits for the relay's `Claimed` and accepts the claim; returns the agent's route token for
    /// the session's packet forwarding.
    pub async fn claimed(&mut self) -> anyhow::Result<RouteToken> {
        match framed::read_msg::<RelayToAgent>(&mut self.recv).await? {
            RelayToAgent::Claimed { route, .. } => {
                framed::write_msg(&mut self.send, &AgentToRelay::Accept).await?;
                Ok(route)
            }
            other => bail!("expected Claimed, got {other:?}"),
        }
    }
}

/// Connects a console and claims `slot`; returns the connection and the (now spliced) claim stream.
pub async fn claim(
    client: &Client,
    slot: Slot,
    token: &str,
) -> anyhow::Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream)> {
    let (conn, send, recv, _) = claim_routed(client, slot, token).await?;
    Ok((conn, send, recv))
}

/// [`claim`], also returning the console's route token for the session's packet forwarding.
pub async fn claim_routed(
    client: &Client,
    slot: Slot,
    token: &str,
) -> anyhow::Result<(
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
    RouteToken,
)> {
    let conn = client.connect().await?;
    let (mut send, mut recv) = open_control(&conn, Role::Console).await?;
    framed::write_msg(
        &mut send,
        &ConsoleToRelay::Claim {
            slot,
            token: token.to_string(),
            scopes: tether_proto::ScopeSet::all(),
        },
    )
    .await?;
    match framed::read_msg::<RelayToConsole>(&mut recv)
        .await
        .context("reading the claim answer")?
    {
        RelayToConsole::Claimed { route, .. } => Ok((conn, send, recv, route)),
        RelayToConsole::Error(e) => bail!("claim refused: {e}"),
        RelayToConsole::Invitations(_) => bail!("the relay answered a claim with a list"),
        RelayToConsole::Redirect(node) => bail!("the relay sent the claim to node {}", node.node),
    }
}

/// Reads a stream to its end, then answers one byte: the receiving side of a throughput run.
pub async fn sink(mut send: quinn::SendStream, mut recv: quinn::RecvStream) -> anyhow::Result<u64> {
    let mut n = 0u64;
    while let Some(c) = recv.read_chunk(usize::MAX, true).await? {
        n += c.bytes.len() as u64;
    }
    send.write_all(&n.to_be_bytes()).await?;
    send.finish()?;
    Ok(n)
}

/// Accepts streams on `conn` and sinks each one, until the connection closes.
pub async fn sink_all(conn: quinn::Connection) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(sink(send, recv));
    }
}

/// Sends `total` bytes on a new stream of `conn` and waits for the sink's count. Returns the count.
pub async fn send_blob(conn: &quinn::Connection, total: u64) -> anyhow::Result<u64> {
    let (send, recv) = conn.open_bi().await?;
    send_on(send, recv, total).await
}

/// Sends `total` bytes on an open stream and waits for the sink's count.
pub async fn send_on(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    total: u64,
) -> anyhow::Result<u64> {
    const CHUNK: usize = 1 << 20;
    let chunk = bytes::Bytes::from(vec![0x5au8; CHUNK]);
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        send.write_chunk(chunk.slice(..n)).await?;
        left -= n as u64;
    }
    send.finish()?;
    let mut ack = [0u8; 8];
    recv.read_exact(&mut ack).await?;
    let got = u64::from_be_bytes(ack);
    if got != total {
        bail!("sink counted {got} bytes, sent {total}");
    }
    Ok(got)
}
