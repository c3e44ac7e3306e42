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
//! 7. If the relay connection drops while waiting for a claim (relay restart, network change), the
//!    agent reconnects with exponential backoff and jitter ([`crate::backoff`]) and shows a new code.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tether_net::client::{self, RelayConnection, RelayTarget};
use tether_net::framed::{self, FrameError};
use tether_net::{ConnectError, Trust};
use tether_proto::msg::{
    AgentToRelay, EndReason, RelayError, RelayToAgent, Role, SessionReport, close,
};
use tether_proto::pairing::{Pairing, PairingMsg, Side};
use tether_proto::records::{MAX_REASON_CHARS, check_text};
use tether_proto::seal::SessionKeys;
use tether_proto::{SessionCode, Slot};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::local_log::LocalLog;
use crate::policy::Policy;
use crate::screen::{InputProvider, ScrapScreen, ScreenProvider, X11Input};
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
    /// IT's rules (allowed organisations).
    pub policy: Policy,
    /// Where the local session log and known organisations live; `None` keeps nothing.
    pub state_dir: Option<PathBuf>,
    /// Screen capture backend (opened only after `view` is granted).
    pub screen: Arc<dyn ScreenProvider>,
    /// Input backend (opened only after `control` is granted).
    pub input: Arc<dyn InputProvider>,
    /// Why the user asks for help, sent with every slot request so the technician sees it on
    /// claiming; check it with [`check_reason`] first.
    pub reason: Option<String>,
    /// After a session ends (other than by the user), show a new code and wait again, as
    /// `tether-agent share` does without `--once`. `false` (the default, and the window) returns
    /// after one session.
    pub again: bool,
}

impl ShareConfig {
    /// Defaults for `relay`: no policy, no state kept.
    pub fn new(relay: RelayTarget) -> Self {
        ShareConfig {
            relay,
            consent_timeout: CONSENT_TIMEOUT,
            screen: Arc::new(ScrapScreen::new(None)),
            input: Arc::new(X11Input::new(None)),
            policy: Policy::default(),
            state_dir: None,
            reason: None,
            again: false,
        }
    }

    /// The relay's identity as shown to the user.
    pub fn relay_identity(&self) -> String {
        match &self.relay.trust {
            Trust::Fingerprint(fp) => format!(
                "{} (certificate {}…)",
                self.relay.addr,
                &fp[..fp.len().min(16)]
            ),
            Trust::CaFile(path) => format!(
                "{} (verified by CA file {})",
                self.relay.addr,
                path.display()
            ),
        }
    }
}

/// Checks and cleans the reason a user gives with `share --reason`: at most
/// [`MAX_REASON_CHARS`] characters, control characters made harmless; `None` if nothing is left.
pub fn check_reason(reason: &str) -> Result<Option<String>, String> {
    let r = check_text("--reason", reason, MAX_REASON_CHARS, false).map_err(|e| e.to_string())?;
    Ok((!r.is_empty()).then_some(r))
}

/// Copies every event to the local log, then on to the front end.
async fn tee(
    mut from: mpsc::Receiver<AgentEvent>,
    to: mpsc::Sender<AgentEvent>,
    log: Option<LocalLog>,
) {
    while let Some(ev) = from.recv().await {
        if let Some(log) = &log {
            log.record(&ev);
        }
        if to.send(ev).await.is_err() {
            return;
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

/// Runs share mode until one session has ended (or the user ends it while waiting); with
/// [`ShareConfig::again`], until the user ends it.
///
/// The first connection failing is an error. A connection lost later, while waiting for a claim,
/// is retried with [`Backoff`] (exponential, with jitter) and a new code is shown; a session that
/// was running ends with [`EndReason::ConnectionLost`] after a [`AgentEvent::RelayLost`].
pub async fn share(mut config: ShareConfig, ui: UiLink) -> Result<EndReason, ShareError> {
    // Every technician's view of a display shares one capture (an invited colleague's too).
    config.screen = Arc::new(crate::screen::SharedScreen::new(config.screen));
    let mut tasks = JoinSet::new();
    let (events, logged) = mpsc::channel(crate::ui::QUEUE);
    tasks.spawn(tee(
        logged,
        ui.events,
        config.state_dir.as_deref().map(LocalLog::new),
    ));
    let mut ui = UiLink {
        events,
        commands: ui.commands,
    };
    let result = share_on(&config, &mut ui).await;
    // Let the log and the front end receive the last events before returning.
    drop(ui);
    while tasks.join_next().await.is_some() {}
    result
}

async fn share_on(config: &ShareConfig, ui: &mut UiLink) -> Result<EndReason, ShareError> {
    let mut link = connect_control(&config.relay).await?;
    let mut backoff = Backoff::default();
    loop {
        let (relay, ctl_send, ctl_recv) = link;
        let result = on_connection(config, &relay, ctl_send, ctl_recv, ui).await;
        match result {
            Err(ShareError::ConnectionLost) => {
                let lost = tether_net::closed::reason(&relay.conn)
                    .map(|c| c.reason)
                    .unwrap_or_else(|| "connection lost".into());
                info!(reason = %lost, "relay connection lost while waiting; reconnecting");
                match reconnect(config, ui, &mut backoff, lost).await? {
                    Some(l) => link = l,
                    None => return Ok(EndReason::UserEnded),
                }
            }
            Ok(reason) if config.again && reason != EndReason::UserEnded => {
                info!(%reason, "session over; sharing goes on with a new code");
                link = match connect_control(&config.relay).await {
                    Ok(l) => l,
                    Err(e) => match reconnect(config, ui, &mut backoff, e.to_string()).await? {
                        Some(l) => l,
                        None => return Ok(EndReason::UserEnded),
                    },
                };
            }
            other => return other,
        }
    }
}

pub(crate) type ControlLink = (RelayConnection, quinn::SendStream, quinn::RecvStream);

pub(crate) async fn connect_control(target: &RelayTarget) -> Result<ControlLink, ShareError> {
    let relay = client::connect(target).await?;
    let (send, recv) = client::open_control(&relay.conn, Role::Agent).await?;
    Ok((relay, send, recv))
}

/// Waits, reconnects, repeats; `None` if the user ended sharing meanwhile.
async fn reconnect(
    config: &ShareConfig,
    ui: &mut UiLink,
    backoff: &mut Backoff,
    mut reason: String,
) -> Result<Option<ControlLink>, ShareError> {
    loop {
        let delay = backoff.next_delay(&mut rand::thread_rng());
        let _ = ui
            .events
            .send(AgentEvent::RelayLost {
                reason: reason.clone(),
                retry_in: Some(delay),
            })
            .await;
        let attempt = async {
            tokio::time::sleep(delay).await;
            connect_control(&config.relay).await
        };
        tokio::select! {
            r = attempt => match r {
                Ok(link) => {
                    backoff.reset();
                    return Ok(Some(link));
                }
                // A relay with a different certificate is not ours: never retry into it.
                Err(ShareError::Connect(e @ ConnectError::FingerprintMismatch { .. })) => {
                    return Err(e.into());
                }
                Err(e) => reason = e.to_string(),
            },
            () = wait_end(ui) => return Ok(None),
        }
    }
}

/// Share mode on one relay connection. `Err(ConnectionLost)` means: lost while waiting for a claim.
async fn on_connection(
    config: &ShareConfig,
    relay: &RelayConnection,
    mut ctl_send: quinn::SendStream,
    ctl_recv: quinn::RecvStream,
    ui: &mut UiLink,
) -> Result<EndReason, ShareError> {
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
        let reason = config.reason.clone();
        framed::write_msg(&mut ctl_send, &AgentToRelay::OpenSlot { reason }).await?;
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
                reason: config.reason.clone(),
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
            () = wait_end(ui) => {
                relay.close(close::NORMAL, "user ended").await;
                break Ok(EndReason::UserEnded);
            }
        };
        let (keys, stream0) =
            match admit(config, relay, &mut ctl_send, ui, &technician, &code).await? {
                Admission::Paired(keys, stream0) => (keys, stream0),
                Admission::Declined | Admission::PairingFailed => continue,
            };
        let _ = ui
            .events
            .send(AgentEvent::Paired {
                verification: keys.verification_code(),
            })
            .await;

        let session = Session {
            relay,
            ctl_send: &mut ctl_send,
            ctl: &mut ctl,
            ui,
            keys,
            on_consent: None,
            live: Arc::new(std::sync::atomic::AtomicUsize::new(1)),
            may_invite: true,
        };
        break session.run(config, technician, stream0).await;
    };
    flush_control(&mut ctl_send).await;
    relay.close(close::NORMAL, "session over").await;
    tasks.abort_all();
    result
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
    ui: &UiLink,
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
        let _ = ui
            .events
            .send(AgentEvent::Declined { technician, reason })
            .await;
        return Ok(Admission::Declined);
    }
    framed::write_msg(ctl_send, &AgentToRelay::Accept).await?;
    let _ = ui
        .events
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
            let _ = ui.events.send(AgentEvent::PairingFailed).await;
            Ok(Admission::PairingFailed)
        }
    }
}

pub(crate) type Control = mpsc::Receiver<Result<RelayToAgent, FrameError>>;

/// Waits for the claim of `slot`; `None` if it expired first.
pub(crate) async fn wait_claim(
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
            // Nobody to chat with or answer before a session.
            Some(
                UserCommand::Consent(_)
                | UserCommand::RevokeControl
                | UserCommand::Chat(_)
                | UserCommand::AnswerInvite(_),
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
