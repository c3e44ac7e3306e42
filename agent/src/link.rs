//! The relay control connection, as every session of share mode uses it: connecting and opening
//! the control stream, reading it in a task, waiting for a claim, admitting (policy, then pairing)
//! and flushing the last reports. Share mode, the first session and an invited colleague's session
//! all use these; none of them uses another's module for it.

use std::time::Duration;

use tether_net::ConnectError;
use tether_net::client::{self, RelayConnection, RelayTarget};
use tether_net::framed::{self, FrameError};
use tether_proto::msg::{AgentToRelay, RelayError, RelayToAgent, Role, SessionReport};
use tether_proto::pairing::{Pairing, PairingMsg, Side};
use tether_proto::seal::SessionKeys;
use tether_proto::{SessionCode, Slot};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::config::{STEP_TIMEOUT, ShareConfig};
use crate::ui::{AgentEvent, UserCommand};

/// Why sharing stopped before a session could end normally.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The relay could not be reached or trusted.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The relay refused a request.
    #[error("relay refused: {0}")]
    Relay(RelayError),
    /// The relay connection broke.
    #[error("lost the connection to the relay")]
    ConnectionLost,
    /// The relay broke protocol.
    #[error("relay protocol error: {0}")]
    Protocol(String),
}

impl From<FrameError> for ShareError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Codec(c) => ShareError::Protocol(c.to_string()),
            _ => ShareError::ConnectionLost,
        }
    }
}

pub(crate) type ControlLink = (RelayConnection, quinn::SendStream, quinn::RecvStream);

pub(crate) async fn connect_control(target: &RelayTarget) -> Result<ControlLink, ShareError> {
    connect_control_with(target, tether_net::transport::Liveness::STANDARD).await
}

/// Like [`connect_control`], watching the relay as `liveness` says.
pub(crate) async fn connect_control_with(
    target: &RelayTarget,
    liveness: tether_net::transport::Liveness,
) -> Result<ControlLink, ShareError> {
    let relay = client::connect_with(target, None, liveness).await?;
    let (send, recv) = client::open_control(&relay.conn, Role::Agent).await?;
    Ok((relay, send, recv))
}

/// Lets the relay receive the last reports (the session's end) before the connection closes.
pub(crate) async fn flush_control(ctl_send: &mut quinn::SendStream) {
    if ctl_send.finish().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), ctl_send.stopped()).await;
    }
}

pub(crate) async fn read_loop(
    mut recv: quinn::RecvStream,
    tx: mpsc::Sender<Result<RelayToAgent, FrameError>>,
) {
    loop {
        let m = framed::read_msg::<RelayToAgent>(&mut recv).await;
        let stop = m.is_err();
        if tx.send(m).await.is_err() || stop {
            return;
        }
    }
}

/// How a claimed code went.
pub(crate) enum Admission {
    /// IT's policy declined the technician before pairing.
    Declined,
    /// The technician had the wrong secret: the code is burned.
    PairingFailed,
    /// Paired: the keys and sealed stream 0.
    Paired(SessionKeys, (quinn::SendStream, quinn::RecvStream)),
}

/// After a claim of `code`: declines the technician if IT's policy says so, else accepts and pairs,
/// telling the relay and the user each step. `Err` means the relay connection broke.
pub(crate) async fn admit(
    config: &ShareConfig,
    relay: &RelayConnection,
    ctl_send: &mut quinn::SendStream,
    events: &mpsc::Sender<AgentEvent>,
    technician: &tether_proto::msg::TechnicianIdentity,
    code: &SessionCode,
) -> Result<Admission, FrameError> {
    if let Err(reason) = config.policy.check(technician) {
        framed::write_msg(
            ctl_send,
            &AgentToRelay::Decline {
                reason: reason.clone(),
            },
        )
        .await?;
        let technician = technician.clone();
        let _ = events
            .send(AgentEvent::Declined { technician, reason })
            .await;
        return Ok(Admission::Declined);
    }
    framed::write_msg(ctl_send, &AgentToRelay::Accept).await?;
    let _ = events
        .send(AgentEvent::Claimed {
            technician: technician.clone(),
        })
        .await;
    match pair(relay, code).await {
        Ok((keys, stream0)) => {
            framed::write_msg(ctl_send, &AgentToRelay::Report(SessionReport::Paired)).await?;
            Ok(Admission::Paired(keys, stream0))
        }
        Err(e) => {
            warn!(error = %e, "pairing failed; code burned");
            framed::write_msg(
                ctl_send,
                &AgentToRelay::Report(SessionReport::PairingFailed),
            )
            .await?;
            let _ = events.send(AgentEvent::PairingFailed).await;
            Ok(Admission::PairingFailed)
        }
    }
}

pub(crate) type Control = mpsc::Receiver<Result<RelayToAgent, FrameError>>;

/// A claim of this agent's slot, as the relay told it.
pub(crate) struct Claim {
    /// Who claimed it, as the relay verified.
    pub technician: tether_proto::msg::TechnicianIdentity,
    /// This end of the session's packet forwarding ([`tether_net::e2e`]).
    pub route: tether_proto::forward::RouteToken,
}

/// Waits for the claim of `slot`; `None` if it expired first.
pub(crate) async fn wait_claim(ctl: &mut Control, slot: Slot) -> Result<Option<Claim>, ShareError> {
    loop {
        match ctl.recv().await {
            Some(Ok(RelayToAgent::Claimed {
                slot: s,
                technician,
                route,
            })) if s == slot => return Ok(Some(Claim { technician, route })),
            Some(Ok(RelayToAgent::SlotExpired { slot: s })) if s == slot => return Ok(None),
            Some(Ok(other)) => debug!(?other, "ignored while waiting for a claim"),
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ShareError::ConnectionLost),
        }
    }
}

/// Resolves when the user asks to end (or the front end goes away).
pub(crate) async fn wait_end(commands: &mut mpsc::Receiver<UserCommand>) {
    loop {
        match commands.recv().await {
            Some(UserCommand::EndSession) | None => return,
            // Nobody to chat with or answer before a session.
            Some(
                UserCommand::Consent(_)
                | UserCommand::RevokeControl
                | UserCommand::Revoke(_)
                | UserCommand::Chat(_)
                | UserCommand::AnswerInvite(_)
                | UserCommand::StopTransfer(_),
            ) => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum PairError {
    #[error(transparent)]
    Pairing(#[from] tether_proto::pairing::PairingError),
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("no pairing stream in time")]
    Timeout,
    #[error("connection lost")]
    Lost,
}

/// Runs pairing on the first spliced stream; on success the stream stays open as sealed stream 0.
async fn pair(
    relay: &RelayConnection,
    code: &SessionCode,
) -> Result<(SessionKeys, (quinn::SendStream, quinn::RecvStream)), PairError> {
    let (mut send, mut recv) = tokio::time::timeout(STEP_TIMEOUT, relay.conn.accept_bi())
        .await
        .map_err(|_| PairError::Timeout)?
        .map_err(|_| PairError::Lost)?;
    let mut p = Pairing::new(Side::Agent, code.slot, &code.secret);
    loop {
        while let Some(m) = p.poll_transmit() {
            framed::write_msg(&mut send, &m).await?;
        }
        if p.outcome().is_some() {
            break;
        }
        let m = tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<PairingMsg>(&mut recv))
            .await
            .map_err(|_| PairError::Timeout)??;
        let _ = p.handle(m);
    }
    Ok((p.into_keys()?, (send, recv)))
}
