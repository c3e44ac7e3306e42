//! Sessions without a code on an enrolled device: the service's answer to the relay's wake, and the
//! unattended session it runs itself.
//!
//! # Flow
//! 1. The relay opens a stream on the service connection (`tether-agent run`) and sends a
//!    [`Wake`]: a technician of the device's organisation wants a session, attended or not.
//! 2. [`decide`] answers from what the device holds, never from the relay's word alone: no pinned
//!    org key or device key, another organisation, an unattended session IT's signed policy does
//!    not allow, or an attended one with nobody logged in to answer → [`WakeAnswer::Refused`], with
//!    the reason the technician sees.
//! 3. Unattended and allowed: [`unattended`] opens an agent connection, trades the ticket for its
//!    slot, accepts the claim, and runs [`tether_proto::handshake`] on stream 0 with the device key
//!    and the org key pinned at enrollment. The technician's certificate must verify under that key
//!    and the handshake must say unattended (it is signed), or the device sends
//!    [`HandshakeMsg::Refused`] and ends. Then the session runs like a code session, sealed with the
//!    handshake's keys, except that IT's policy answers instead of the user
//!    ([`crate::session::machine::Setup::unattended`]). Every step is in the local log.

use std::path::PathBuf;
use std::sync::Arc;

use tether_net::framed::{self, FrameError};
use tether_proto::ScopeSet;
use tether_proto::desktop::ServiceToDesktop;
use tether_proto::fleet::{Wake, WakeAnswer};
use tether_proto::handshake::{DeviceTrust, Handshake, HandshakeError, HandshakeMsg};
use tether_proto::msg::{EndReason, SessionReport};
use tether_proto::seal::SessionKeys;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::config::{STEP_TIMEOUT, ShareConfig};
use crate::desktop_socket::{DesktopWake, Desktops};
use crate::enroll::{DataDir, Identity};
use crate::local_log::LocalLog;
use crate::ui::AgentEvent;
use crate::wake_link::{DeviceRefused, Stream0, WakeLink, device_step};

/// What the device does with a wake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Nobody is asked; these scopes (IT's signed policy) at most.
    Unattended(ScopeSet),
    /// The logged-in user's own agent asks them ([`crate::desktop_socket`]).
    Attended,
}

/// The device's answer to `wake`, from its identity and the policy it holds (both from its own
/// data directory), and whether the logged-in user's agent is connected (`desktop`). `Err` is the
/// reason the technician hears.
pub fn decide(id: &Identity, dir: &DataDir, wake: &Wake, desktop: bool) -> Result<Mode, String> {
    if id.org_key.is_none() {
        return Err(format!(
            "this device pinned no key of {:?} at enrollment, so it takes no session without a code \
             (enroll it with a token that carries the organisation's key)",
            id.org
        ));
    }
    if id.device_secret().is_none() {
        return Err(
            "this device has no device key (it was enrolled before device keys): \
                    enroll it again"
                .into(),
        );
    }
    if wake.technician.org != id.org {
        return Err(format!(
            "this device belongs to {:?}; a technician of {:?} cannot connect to it",
            id.org, wake.technician.org
        ));
    }
    if !wake.unattended {
        // The per-user agent in the desktop session answers attended sessions.
        return if desktop {
            Ok(Mode::Attended)
        } else {
            Err("nobody is logged in to answer (an attended session needs the user's yes)".into())
        };
    }
    let allowed = dir.unattended_scopes(id);
    if allowed.is_empty() {
        return Err(format!(
            "{:?}'s policy on this device allows no unattended sessions",
            id.org
        ));
    }
    Ok(Mode::Unattended(allowed))
}

/// Reads one wake from `stream`, answers it, and starts the session when the answer is yes.
pub(crate) async fn answer(
    id: Identity,
    dir: DataDir,
    stream: (quinn::SendStream, quinn::RecvStream),
    sessions: &mut JoinSet<EndReason>,
    desktops: &Arc<Desktops>,
    shutdown: &CancellationToken,
) {
    let (mut send, mut recv) = stream;
    let wake = match tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<Wake>(&mut recv)).await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return warn!(error = %e, "a wake from the relay could not be read"),
        Err(_) => return warn!("the relay opened a wake stream and sent nothing"),
    };
    let decided = decide(&id, &dir, &wake, desktops.present()).and_then(|mode| {
        if mode == Mode::Attended {
            let trust = device_trust(&id, &dir).ok_or("this device has no device key")?;
            let handed = DesktopWake {
                wake: wake.clone(),
                trust,
            };
            desktops.take(handed)?;
        }
        Ok(mode)
    });
    let log = LocalLog::new(&dir.path);
    let reply = match &decided {
        Ok(_) => WakeAnswer::Coming,
        Err(reason) => {
            info!(%reason, technician = %wake.technician.name, "refused a session without a code");
            log.record(&AgentEvent::Declined {
                technician: wake.technician.clone(),
                reason: reason.clone(),
            });
            WakeAnswer::Refused {
                reason: reason.clone(),
            }
        }
    };
    if framed::write_msg(&mut send, &reply).await.is_err() {
        return;
    }
    let _ = send.finish();
    if let Ok(Mode::Unattended(allowed)) = decided {
        let stop = shutdown.child_token();
        // The logged-in user, if any, can end it.
        desktops.running(stop.clone());
        let span = info_span!("unattended", ticket = wake.ticket);
        let desktops = desktops.clone();
        sessions.spawn(unattended(id, dir, wake, allowed, desktops, stop).instrument(span));
    }
}

/// What the device trusts, from its identity and the policy it holds: its key, the org key it
/// pinned, and the technician keys IT revoked.
fn device_trust(id: &Identity, dir: &DataDir) -> Option<DeviceTrust> {
    let org_key = id.org_key?;
    let revoked = dir.verified_policy(id).map_or_else(Vec::new, |p| p.revoked);
    Some(DeviceTrust {
        key: id.device_secret()?,
        org_key,
        org_name: id.org.clone(),
        revoked,
    })
}

/// Runs an unattended session for `wake` to its end (see the module doc).
async fn unattended(
    id: Identity,
    dir: DataDir,
    wake: Wake,
    allowed: ScopeSet,
    desktops: Arc<Desktops>,
    stop: CancellationToken,
) -> EndReason {
    let log = LocalLog::new(&dir.path);
    let (events, mut logged) = mpsc::channel(crate::ui::QUEUE);
    // Every event goes to the device's log; the logged-in user is told when it starts and ends.
    let logger = tokio::spawn(async move {
        while let Some(e) = logged.recv().await {
            log.record(&e);
            match &e {
                AgentEvent::Unattended { technician, scopes } => {
                    desktops.tell(ServiceToDesktop::Unattended {
                        technician: technician.clone(),
                        scopes: *scopes,
                    })
                }
                AgentEvent::Ended { reason } => desktops.tell(ServiceToDesktop::UnattendedEnded {
                    reason: reason.clone(),
                }),
                _ => {}
            }
        }
    });
    let refusals = LocalLog::new(&dir.path);
    let reason = connected(&id, &dir.path, wake, allowed, events, &refusals, stop).await;
    let _ = logger.await;
    info!(%reason, "unattended session over");
    reason
}

async fn connected(
    id: &Identity,
    state_dir: &std::path::Path,
    wake: Wake,
    allowed: ScopeSet,
    events: mpsc::Sender<AgentEvent>,
    refusals: &LocalLog,
    stop: CancellationToken,
) -> EndReason {
    let mut config = ShareConfig::new(id.target());
    config.state_dir = Some(PathBuf::from(state_dir));
    let Some(trust) = device_trust(id, &DataDir::new(state_dir)) else {
        return EndReason::ConnectionLost;
    };
    let (mut link, stream0) = match WakeLink::open(&config.relay, wake.ticket).await {
        Ok(opened) => opened,
        Err(reason) => {
            warn!(%reason, "an unattended session did not start");
            return EndReason::ConnectionLost;
        }
    };
    // A refusal is in the user's log before the console hears of it.
    let by_relay = link.by_relay.clone();
    let refused = |e: &HandshakeFailed| {
        warn!(error = %e, "session without a code refused");
        refusals.record(&AgentEvent::Declined {
            technician: by_relay,
            reason: e.to_string(),
        });
    };
    let reason = match handshake(stream0, trust, wake.unattended, refused).await {
        Err(_) => {
            link.report(SessionReport::PairingFailed).await;
            EndReason::PairingFailed
        }
        Ok((keys, cert, stream0)) => {
            // Nobody types here: the service's stop ends the session as the user's end would.
            let (commands_tx, commands) = mpsc::channel(1);
            let enrolled_by = id.org.clone();
            let run = link.serve(
                &config,
                keys,
                cert,
                stream0,
                &events,
                commands,
                Some(allowed),
                enrolled_by,
            );
            tokio::pin!(run);
            tokio::select! {
                r = &mut run => r,
                () = stop.cancelled() => {
                    drop(commands_tx);
                    run.await
                }
            }
        }
    };
    link.close().await;
    reason
}

/// Why the handshake did not give a session.
#[derive(Debug, thiserror::Error)]
enum HandshakeFailed {
    #[error(transparent)]
    Refused(#[from] DeviceRefused),
    #[error("the technician's console did not finish the handshake: {0}")]
    Frame(#[from] FrameError),
    #[error("the technician's console did not open the session in time")]
    Timeout,
}

type Handshaken = (SessionKeys, tether_proto::org::TechnicianCert, Stream0);

/// The device's side of [`tether_proto::handshake`] on stream 0, which stays open as sealed
/// stream 0. A refusal is told to the console before the stream closes.
async fn handshake(
    stream0: Stream0,
    trust: DeviceTrust,
    woken_unattended: bool,
    refused: impl FnOnce(&HandshakeFailed),
) -> Result<Handshaken, HandshakeFailed> {
    let (mut send, mut recv) = stream0;
    let mut hs = Handshake::device(trust, &mut rand::rngs::OsRng);
    let result = async {
        loop {
            let m = tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<HandshakeMsg>(&mut recv))
                .await
                .map_err(|_| HandshakeFailed::Timeout)??;
            device_step(&mut hs, m, woken_unattended)?;
            while let Some(m) = hs.poll_transmit() {
                framed::write_msg(&mut send, &m).await?;
            }
            if hs.outcome().is_some() {
                break;
            }
        }
        // A device's finished handshake always names the technician it verified.
        hs.technician()
            .cloned()
            .ok_or(DeviceRefused::Handshake(HandshakeError::Unexpected("finish")).into())
    }
    .await;
    match result {
        Ok(cert) => {
            let keys = hs.into_keys().map_err(DeviceRefused::from)?;
            Ok((keys, cert, (send, recv)))
        }
        Err(e) => {
            refused(&e);
            let words = HandshakeMsg::Refused {
                reason: e.to_string(),
            };
            let _ = framed::write_msg(&mut send, &words).await;
            let _ = send.finish();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), send.stopped()).await;
            Err(e)
        }
    }
}
