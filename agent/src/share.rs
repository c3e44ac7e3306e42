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

use std::sync::Arc;

use tether_net::ConnectError;
use tether_net::client::RelayConnection;
use tether_net::framed;
use tether_proto::SessionCode;
use tether_proto::msg::{AgentToRelay, EndReason, RelayToAgent, close};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::info;

use crate::backoff::Backoff;
pub use crate::config::{CONSENT_TIMEOUT, STEP_TIMEOUT, ShareConfig, check_reason};
pub use crate::link::ShareError;
use crate::link::{
    Admission, ControlLink, admit, connect_control, flush_control, read_loop, wait_claim, wait_end,
};
use crate::local_log::LocalLog;
use crate::session::Session;
use crate::ui::{AgentEvent, UiLink};

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
