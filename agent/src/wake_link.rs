//! The session connection an enrolled device opens for one wake, and the device's handshake step:
//! shared by the service's unattended sessions (`wake.rs`), the per-user agent's attended ones
//! (`desktop.rs`) and the service's half of those (`desktop_socket.rs`).
//!
//! [`WakeLink::open`] trades the ticket for its slot, accepts the claim and opens stream 0;
//! [`WakeLink::serve`] runs the session once the handshake gave its keys; [`WakeLink::close`] lets
//! the relay hear the last reports and closes.

use tether_net::RelayTarget;
use tether_net::client::RelayConnection;
use tether_net::framed;
use tether_proto::ScopeSet;
use tether_proto::handshake::{Handshake, HandshakeError, HandshakeMsg};
use tether_proto::msg::{
    AgentToRelay, EndReason, RelayToAgent, SessionReport, TechnicianIdentity, close,
};
use tether_proto::org::TechnicianCert;
use tether_proto::seal::SessionKeys;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::config::{STEP_TIMEOUT, ShareConfig};
use crate::link::{Control, connect_control, flush_control, read_loop, wait_claim};
use crate::session::{Seat, Session};
use crate::ui::{AgentEvent, UserCommand};

/// Stream 0 of a session, before and after the handshake.
pub(crate) type Stream0 = (quinn::SendStream, quinn::RecvStream);

/// A session connection whose slot the relay claimed for the console, accepted.
pub(crate) struct WakeLink {
    relay: RelayConnection,
    ctl_send: quinn::SendStream,
    ctl: Control,
    reader: JoinSet<()>,
    /// The technician as the relay's directory names them (their certificate decides who it is).
    pub by_relay: TechnicianIdentity,
    /// This end of the session's packet forwarding.
    route: tether_proto::forward::RouteToken,
}

impl WakeLink {
    /// Connects to `relay`, trades `ticket` for its slot, waits for the console's claim (at most
    /// [`STEP_TIMEOUT`]), accepts it and takes stream 0. `Err` says why, in words.
    pub(crate) async fn open(relay: &RelayTarget, ticket: u64) -> Result<(Self, Stream0), String> {
        let (relay, mut ctl_send, ctl_recv) = connect_control(relay)
            .await
            .map_err(|e| format!("could not reach the relay: {e}"))?;
        let mut reader = JoinSet::new();
        let (ctl_tx, mut ctl) = mpsc::channel(16);
        reader.spawn(read_loop(ctl_recv, ctl_tx));
        let opened = async {
            framed::write_msg(&mut ctl_send, &AgentToRelay::OpenWakeSlot { ticket })
                .await
                .map_err(|e| e.to_string())?;
            let slot = match ctl.recv().await {
                Some(Ok(RelayToAgent::SlotOpened { slot, .. })) => slot,
                other => return Err(format!("the relay did not open the session: {other:?}")),
            };
            let claim = match tokio::time::timeout(STEP_TIMEOUT, wait_claim(&mut ctl, slot)).await {
                Ok(Ok(Some(c))) => c,
                _ => return Err("the technician's console did not come".to_string()),
            };
            framed::write_msg(&mut ctl_send, &AgentToRelay::Accept)
                .await
                .map_err(|e| e.to_string())?;
            let stream0 = tokio::time::timeout(STEP_TIMEOUT, relay.conn.accept_bi())
                .await
                .map_err(|_| "no session stream in time".to_string())?
                .map_err(|e| e.to_string())?;
            Ok((claim, stream0))
        }
        .await;
        match opened {
            Ok((claim, stream0)) => {
                let link = WakeLink {
                    relay,
                    ctl_send,
                    ctl,
                    reader,
                    by_relay: claim.technician,
                    route: claim.route,
                };
                Ok((link, stream0))
            }
            Err(reason) => {
                relay.close(close::NORMAL, "session not started").await;
                reader.abort_all();
                Err(reason)
            }
        }
    }

    /// Tells the relay a fact for the session's audit and record; `false` if it is gone.
    pub(crate) async fn report(&mut self, report: SessionReport) -> bool {
        let msg = AgentToRelay::Report(report);
        framed::write_msg(&mut self.ctl_send, &msg).await.is_ok()
    }

    /// Runs the session sealed with `keys` to its end, for the technician `cert` names (the
    /// relay's directory adds the role and tier, which only ever narrow what may be asked), with
    /// the user's `commands` (closing them ends it as the user's end would). The user hears the
    /// end.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn serve(
        &mut self,
        config: &ShareConfig,
        keys: SessionKeys,
        cert: TechnicianCert,
        stream0: Stream0,
        events: &mpsc::Sender<AgentEvent>,
        commands: mpsc::Receiver<UserCommand>,
        unattended: Option<ScopeSet>,
        enrolled_by: String,
    ) -> EndReason {
        if !self.report(SessionReport::Paired).await {
            return EndReason::ConnectionLost;
        }
        let technician = TechnicianIdentity {
            name: cert.name,
            org: cert.org,
            ..self.by_relay.clone()
        };
        let (_sessions_tx, sessions) = watch::channel(1);
        let (supervisor, _) = mpsc::channel(1);
        let seat = Seat {
            commands,
            events: events.clone(),
            sessions,
            supervisor,
        };
        let session = Session {
            conn: &self.relay.conn,
            route: self.route,
            ctl_send: &mut self.ctl_send,
            ctl: &mut self.ctl,
            seat,
            keys,
            on_consent: None,
            may_invite: false,
            unattended,
            enrolled_by: Some(enrolled_by),
        };
        let reason = session.run(config, technician, stream0).await;
        let _ = events
            .send(AgentEvent::Ended {
                reason: reason.clone(),
            })
            .await;
        reason
    }

    /// Lets the relay receive the last reports, then closes the connection.
    pub(crate) async fn close(mut self) {
        flush_control(&mut self.ctl_send).await;
        self.relay.close(close::NORMAL, "session over").await;
        self.reader.abort_all();
    }
}

/// Why the device will not go on with a handshake.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeviceRefused {
    /// A certificate, key or signature was not trusted, or a message came out of order.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The Hello asks for the other kind of session than the device was woken for.
    #[error(
        "the technician asked for an {asked} session, but this computer was woken for an {woken} one"
    )]
    ModeDiffers {
        /// What the Hello says (signed by the technician).
        asked: &'static str,
        /// What the wake said.
        woken: &'static str,
    },
}

fn mode_words(unattended: bool) -> &'static str {
    if unattended { "unattended" } else { "attended" }
}

/// Feeds one message from the console to the device's side of the handshake and checks, on the
/// Hello and before the device answers it, that the session is the kind it was woken for.
pub(crate) fn device_step(
    hs: &mut Handshake,
    msg: HandshakeMsg,
    woken_unattended: bool,
) -> Result<(), DeviceRefused> {
    hs.handle(msg, tether_net::clock::now_unix())?;
    match hs.unattended() {
        Some(asked) if asked != woken_unattended => Err(DeviceRefused::ModeDiffers {
            asked: mode_words(asked),
            woken: mode_words(woken_unattended),
        }),
        _ => Ok(()),
    }
}
