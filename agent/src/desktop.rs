//! `tether-agent desktop`: the per-user agent in the logged-in user's desktop session, for
//! sessions without a code on an enrolled computer ([`tether_proto::desktop`]).
//!
//! # Flow
//! 1. [`connect`] to the enrolled service's local socket; the service checks who we are
//!    (`SO_PEERCRED`) and says which organisation enrolled this computer, or why not.
//! 2. [`serve`] waits for the service's wakes, one session at a time, until the user stops it.
//! 3. A wake: connect to the relay (trusted as the enrollment pinned it), trade the ticket for its
//!    slot, accept the claim, and carry the handshake on stream 0 between the console and the
//!    service, which holds the device key and decides. A refusal reaches the console and the
//!    user's log. With the keys, the session runs as a code session does: the user's consent
//!    dialog (with a line saying that IT enrolled this computer), then only what they allow.

use std::path::Path;

use tether_net::framed;
use tether_net::{RelayTarget, Trust};
use tether_proto::desktop::{DesktopToService, ServiceToDesktop};
use tether_proto::handshake::HandshakeMsg;
use tether_proto::msg::{EndReason, SessionReport};
use tether_proto::seal::SessionKeys;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::{STEP_TIMEOUT, ShareConfig};
use crate::desktop_socket::{read_local, write_local};
use crate::local_log::LocalLog;
use crate::ui::{AgentEvent, UiLink, UserCommand};
use crate::wake_link::WakeLink;

/// Why the per-user agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    /// The socket could not be reached.
    #[error(
        "cannot reach this computer's Tether service at {path}: {source} (is `tether-agent run` running?)"
    )]
    Connect {
        /// The socket.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The service said no.
    #[error("this computer's Tether service refused: {0}")]
    Refused(String),
    /// The service went away or broke protocol.
    #[error("the connection to this computer's Tether service broke: {0}")]
    Lost(String),
}

/// A connection to the service that let us in.
#[derive(Debug)]
pub struct Desktop {
    rx: OwnedReadHalf,
    tx: OwnedWriteHalf,
    /// The organisation that enrolled this computer.
    pub org: String,
    /// The relay, trusted as the enrollment pinned it.
    pub relay: RelayTarget,
    /// What IT's policy lets a signed technician use without asking.
    pub unattended: tether_proto::ScopeSet,
}

/// Connects to the service's socket at `path` and reads its welcome (or refusal).
pub async fn connect(path: &Path) -> Result<Desktop, DesktopError> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|source| DesktopError::Connect {
            path: path.display().to_string(),
            source,
        })?;
    let (mut rx, tx) = stream.into_split();
    let lost = |e: std::io::Error| DesktopError::Lost(e.to_string());
    match read_local::<ServiceToDesktop>(&mut rx)
        .await
        .map_err(lost)?
    {
        Some(ServiceToDesktop::Welcome {
            org,
            relay,
            relay_cert_sha256,
            relay_ca_file,
            unattended,
            ..
        }) => {
            let trust = match (relay_cert_sha256, relay_ca_file) {
                (Some(fp), _) => Trust::Fingerprint(fp),
                (None, Some(ca)) => Trust::CaFile(ca.into()),
                (None, None) => {
                    return Err(DesktopError::Lost(
                        "the service named no way to trust its relay".into(),
                    ));
                }
            };
            let relay = RelayTarget {
                addr: relay,
                trust,
                connect_timeout: tether_net::client::CONNECT_TIMEOUT,
                direct: Default::default(),
            };
            Ok(Desktop {
                rx,
                tx,
                org,
                relay,
                unattended,
            })
        }
        Some(ServiceToDesktop::Refused { reason }) => Err(DesktopError::Refused(reason)),
        Some(other) => Err(DesktopError::Lost(format!("unexpected {other:?}"))),
        None => Err(DesktopError::Lost("it closed the connection".into())),
    }
}

/// Answers the service's wakes until the user ends it (or the front end goes); `config.relay` is
/// replaced by the relay the service named.
pub async fn serve(
    mut desktop: Desktop,
    mut config: ShareConfig,
    mut ui: UiLink,
) -> Result<(), DesktopError> {
    config.relay = desktop.relay.clone();
    let mut log_tasks = JoinSet::new();
    let (events, logged) = mpsc::channel(crate::ui::QUEUE);
    log_tasks.spawn(crate::share::tee(
        logged,
        ui.events.clone(),
        config.state_dir.as_deref().map(LocalLog::new),
    ));
    let _ = events
        .send(AgentEvent::Enrolled {
            org: desktop.org.clone(),
            unattended: desktop.unattended,
        })
        .await;
    // Unattended sessions the service runs now: the user's "end" ends them first.
    let mut unattended = 0usize;
    let result = loop {
        let msg = tokio::select! {
            m = read_local::<ServiceToDesktop>(&mut desktop.rx) => m,
            c = ui.commands.recv() => match c {
                Some(UserCommand::EndSession) if unattended > 0 => {
                    if let Err(e) = write_local(&mut desktop.tx, &DesktopToService::EndUnattended).await {
                        break Err(DesktopError::Lost(e.to_string()));
                    }
                    continue;
                }
                Some(UserCommand::EndSession) | None => break Ok(()),
                Some(_) => continue,
            },
        };
        match msg {
            Ok(Some(ServiceToDesktop::Unattended { technician, scopes })) => {
                unattended += 1;
                let _ = events
                    .send(AgentEvent::Unattended { technician, scopes })
                    .await;
            }
            Ok(Some(ServiceToDesktop::UnattendedEnded { reason })) => {
                unattended = unattended.saturating_sub(1);
                let _ = events.send(AgentEvent::Ended { reason }).await;
            }
            Ok(Some(ServiceToDesktop::Wake { ticket, .. })) => {
                let reason = session(&mut desktop, &config, ticket, &events, &mut ui).await;
                info!(%reason, "session without a code over");
                if reason == EndReason::UserEnded && ui.commands.is_closed() {
                    break Ok(());
                }
            }
            Ok(Some(ServiceToDesktop::Refused { reason })) => {
                break Err(DesktopError::Refused(reason));
            }
            Ok(Some(other)) => break Err(DesktopError::Lost(format!("unexpected {other:?}"))),
            Ok(None) => {
                break Err(DesktopError::Lost(
                    "the service closed the connection".into(),
                ));
            }
            Err(e) => break Err(DesktopError::Lost(e.to_string())),
        }
    };
    drop(events);
    while log_tasks.join_next().await.is_some() {}
    result
}

/// One wake: relay, claim, handshake through the service, then the session.
async fn session(
    desktop: &mut Desktop,
    config: &ShareConfig,
    ticket: u64,
    events: &mpsc::Sender<AgentEvent>,
    ui: &mut UiLink,
) -> EndReason {
    let (mut link, (mut send, mut recv)) = match WakeLink::open(&config.relay, ticket).await {
        Ok(opened) => opened,
        Err(reason) => {
            warn!(%reason, "an attended session did not start");
            let _ = write_local(&mut desktop.tx, &DesktopToService::Abandoned { reason }).await;
            return EndReason::ConnectionLost;
        }
    };
    let reason = match carry_handshake(desktop, &mut send, &mut recv).await {
        Err(reason) => {
            warn!(%reason, "session without a code refused");
            let declined = AgentEvent::Declined {
                technician: link.by_relay.clone(),
                reason: reason.clone(),
            };
            let _ = events.send(declined).await;
            let _ = framed::write_msg(&mut send, &HandshakeMsg::Refused { reason }).await;
            let _ = send.finish();
            link.report(SessionReport::PairingFailed).await;
            EndReason::PairingFailed
        }
        Ok((keys, cert)) => {
            let (commands_tx, commands) = mpsc::channel(8);
            let org = desktop.org.clone();
            let run = link.serve(
                config,
                keys,
                cert,
                (send, recv),
                events,
                commands,
                None,
                org,
            );
            tokio::pin!(run);
            // The user's commands reach the session; a front end that is gone ends it.
            let mut commands_tx = Some(commands_tx);
            loop {
                tokio::select! {
                    r = &mut run => break r,
                    c = ui.commands.recv(), if commands_tx.is_some() => match (c, &commands_tx) {
                        (Some(c), Some(tx)) => { let _ = tx.send(c).await; }
                        _ => commands_tx = None,
                    },
                }
            }
        }
    };
    link.close().await;
    reason
}

/// Carries the handshake between the console (stream 0) and the service; the keys, or the reason
/// the service (or the way there) refused.
async fn carry_handshake(
    desktop: &mut Desktop,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<(SessionKeys, tether_proto::org::TechnicianCert), String> {
    loop {
        let from_console =
            tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<HandshakeMsg>(recv))
                .await
                .map_err(|_| "the technician's console did not go on in time".to_string())?
                .map_err(|e| format!("the technician's console: {e}"))?;
        write_local(&mut desktop.tx, &DesktopToService::Handshake(from_console))
            .await
            .map_err(|e| format!("this computer's Tether service: {e}"))?;
        let answer = tokio::time::timeout(
            STEP_TIMEOUT,
            read_local::<ServiceToDesktop>(&mut desktop.rx),
        )
        .await
        .map_err(|_| "this computer's Tether service did not answer in time".to_string())?
        .map_err(|e| format!("this computer's Tether service: {e}"))?;
        match answer {
            Some(ServiceToDesktop::Handshake(m)) => framed::write_msg(send, &m)
                .await
                .map_err(|e| format!("the technician's console: {e}"))?,
            Some(ServiceToDesktop::Keys { master, technician }) => {
                return Ok((SessionKeys::taken_over(master), technician));
            }
            Some(ServiceToDesktop::Refused { reason }) => return Err(reason),
            Some(other) => return Err(format!("unexpected from the service: {other:?}")),
            None => return Err("this computer's Tether service closed the connection".into()),
        }
    }
}
