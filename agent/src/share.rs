//! `tether-agent share`: one support session by one-time code.
//!
//! # Flow
//! 1. Connect to the relay (pinned), open the control stream, ask for a slot, draw a secret, show the code.
//! 2. Wait for a claim. The relay names the technician; the first spliced stream carries pairing.
//! 3. SPAKE2 + key confirmation with the secret. On failure the code is burned, the relay is told, and
//!    a new code is shown.
//! 4. The first sealed message is the consent request. The user answers; silence, a closed input or a
//!    timeout mean "no". Nothing is served before this point.
//! 5. Each further stream is one request, checked here against the grant — the console's word is never
//!    trusted — then served or refused (and the refusal reported to the relay's audit log).
//! 6. The session ends when the user ends it (works without network: the local side just closes), the
//!    technician ends it, or either connection drops.

use std::sync::Arc;
use std::time::Duration;

use tether_net::ConnectError;
use tether_net::client::{self, RelayConnection, RelayTarget};
use tether_net::framed::{self, FrameError};
use tether_proto::msg::{
    AgentToRelay, EndReason, RelayError, RelayToAgent, Role, SessionReport, close,
};
use tether_proto::pairing::{Pairing, PairingMsg, Side};
use tether_proto::seal::SessionKeys;
use tether_proto::{SessionCode, Slot};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::screen::{EnigoInput, InputProvider, ScrapScreen, ScreenProvider};
use crate::session::Session;
use crate::ui::{AgentEvent, UiLink, UserCommand};

/// How long the user has to answer the consent prompt before it counts as "no".
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long each pairing or request step may take before the peer is considered broken.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for [`share`].
#[derive(Debug, Clone)]
pub struct ShareConfig {
    /// The relay.
    pub relay: RelayTarget,
    /// See [`CONSENT_TIMEOUT`].
    pub consent_timeout: Duration,
    /// Screen capture backend (opened only after `view` is granted).
    pub screen: Arc<dyn ScreenProvider>,
    /// Input backend (opened only after `control` is granted).
    pub input: Arc<dyn InputProvider>,
}

impl ShareConfig {
    /// Defaults for `relay`.
    pub fn new(relay: RelayTarget) -> Self {
        ShareConfig {
            relay,
            consent_timeout: CONSENT_TIMEOUT,
            screen: Arc::new(ScrapScreen::new(None)),
            input: Arc::new(EnigoInput::new(None)),
        }
    }
}

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

/// Runs share mode until one session has ended (or the user ends it while waiting).
pub async fn share(config: ShareConfig, mut ui: UiLink) -> Result<EndReason, ShareError> {
    let relay = client::connect(&config.relay).await?;
    let (mut ctl_send, ctl_recv) = client::open_control(&relay.conn, Role::Agent).await?;
    let mut tasks = JoinSet::new();
    let (ctl_tx, mut ctl) = mpsc::channel(16);
    tasks.spawn(read_loop(ctl_recv, ctl_tx));
    let _ = ui
        .events
        .send(AgentEvent::Connected {
            relay: config.relay.addr.clone(),
        })
        .await;

    let result = loop {
        framed::write_msg(&mut ctl_send, &AgentToRelay::OpenSlot).await?;
        let (slot, expires_in_secs) = loop {
            match ctl.recv().await {
                Some(Ok(RelayToAgent::SlotOpened {
                    slot,
                    expires_in_secs,
                })) => break (slot, expires_in_secs),
                Some(Ok(RelayToAgent::Error(e))) => return Err(ShareError::Relay(e)),
                // Leftovers from a session that just ended.
                Some(Ok(RelayToAgent::PeerGone | RelayToAgent::SlotExpired { .. })) => continue,
                Some(Ok(other)) => {
                    return Err(ShareError::Protocol(format!("unexpected {other:?}")));
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ShareError::ConnectionLost),
            }
        };
        let code = SessionCode::new(slot, &mut rand::rngs::OsRng);
        info!(code = %code.redacted(), "code issued");
        let _ = ui
            .events
            .send(AgentEvent::Code {
                code,
                expires_in_secs,
            })
            .await;

        let technician = tokio::select! {
            m = wait_claim(&mut ctl, slot) => match m? {
                Some(t) => t,
                None => {
                    let _ = ui.events.send(AgentEvent::CodeExpired).await;
                    continue;
                }
            },
            () = wait_end(&mut ui) => {
                relay.close(close::NORMAL, "user ended").await;
                break Ok(EndReason::UserEnded);
            }
        };
        let _ = ui
            .events
            .send(AgentEvent::Claimed {
                technician: technician.clone(),
            })
            .await;

        let (keys, stream0) = match pair(&relay, &code).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "pairing failed; code burned");
                framed::write_msg(
                    &mut ctl_send,
                    &AgentToRelay::Report(SessionReport::PairingFailed),
                )
                .await?;
                let _ = ui.events.send(AgentEvent::PairingFailed).await;
                continue;
            }
        };
        framed::write_msg(&mut ctl_send, &AgentToRelay::Report(SessionReport::Paired)).await?;
        let _ = ui
            .events
            .send(AgentEvent::Paired {
                verification: keys.verification_code(),
            })
            .await;

        let session = Session {
            relay: &relay,
            ctl_send: &mut ctl_send,
            ctl: &mut ctl,
            ui: &mut ui,
            keys,
        };
        break session.run(&config, technician, stream0).await;
    };
    relay.close(close::NORMAL, "session over").await;
    tasks.abort_all();
    result
}

async fn read_loop(
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

pub(crate) type Control = mpsc::Receiver<Result<RelayToAgent, FrameError>>;

/// Waits for the claim of `slot`; `None` if it expired first.
async fn wait_claim(
    ctl: &mut Control,
    slot: Slot,
) -> Result<Option<tether_proto::msg::TechnicianIdentity>, ShareError> {
    loop {
        match ctl.recv().await {
            Some(Ok(RelayToAgent::Claimed {
                slot: s,
                technician,
            })) if s == slot => return Ok(Some(technician)),
            Some(Ok(RelayToAgent::SlotExpired { slot: s })) if s == slot => return Ok(None),
            Some(Ok(other)) => debug!(?other, "ignored while waiting for a claim"),
            Some(Err(e)) => return Err(e.into()),
            None => return Err(ShareError::ConnectionLost),
        }
    }
}

/// Resolves when the user asks to end (or the front end goes away).
pub(crate) async fn wait_end(ui: &mut UiLink) {
    loop {
        match ui.commands.recv().await {
            Some(UserCommand::EndSession) | None => return,
            Some(UserCommand::Consent(_)) | Some(UserCommand::RevokeControl) => {}
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
