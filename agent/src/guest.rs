//! A colleague's session beside the first one: the agent side of an invitation.
//!
//! Once the user agrees to an invitation and the relay has issued a ticket (the inviting session
//! does both), the share's supervisor starts a guest. It opens its own relay connection, trades the
//! ticket for a slot only the invitee can claim, draws a fresh secret, and hands the code to the
//! inviting session ([`GuestEvent::Code`]), which sends it over the inviting technician's sealed
//! stream 0 (the relay never sees the secret). The invitee then pairs and is asked for consent
//! like anyone else, in the same window or terminal: nothing granted to the first technician
//! carries over. Each technician's session has its own connection, keys and grant.

use tether_net::framed;
use tether_proto::SessionCode;
use tether_proto::msg::{AgentToRelay, EndReason, RelayToAgent, close};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{Instrument, info, info_span};

use crate::config::ShareConfig;
use crate::link::{
    Admission, admit, connect_control, flush_control, read_loop, wait_claim, wait_end,
};
use crate::session::machine::GuestEvent;
use crate::session::{Finished, Seat, Session, ToSupervisor, technician_name};

/// Runs the guest for `ticket` until its session (or the wait for the invitee) ends; `news` goes
/// to the inviting session.
pub(crate) async fn run(
    config: ShareConfig,
    ticket: u64,
    news: mpsc::Sender<GuestEvent>,
    mut seat: Seat,
) -> Finished {
    let not_paired = |reason| Finished {
        reason,
        technician: None,
        ctl_send: None,
    };
    let code_failed = |why: String| {
        let news = news.clone();
        async move {
            let _ = news.send(GuestEvent::Code(Err(why))).await;
        }
    };
    let (relay, mut ctl_send, ctl_recv) = match connect_control(&config.relay).await {
        Ok(link) => link,
        Err(e) => {
            code_failed(format!("the agent could not reach the relay: {e}")).await;
            return not_paired(EndReason::ConnectionLost);
        }
    };
    let mut tasks = JoinSet::new();
    let (ctl_tx, mut ctl) = mpsc::channel(16);
    tasks.spawn(read_loop(ctl_recv, ctl_tx));
    let finished = async {
        if framed::write_msg(&mut ctl_send, &AgentToRelay::OpenInviteSlot { ticket })
            .await
            .is_err()
        {
            code_failed("lost the relay".into()).await;
            return not_paired(EndReason::ConnectionLost);
        }
        let slot = match ctl.recv().await {
            Some(Ok(RelayToAgent::SlotOpened { slot, .. })) => slot,
            Some(Ok(RelayToAgent::Error(e))) => {
                code_failed(e.message).await;
                return not_paired(EndReason::ConnectionLost);
            }
            other => {
                code_failed(format!("unexpected answer from the relay: {other:?}")).await;
                return not_paired(EndReason::ConnectionLost);
            }
        };
        let code = SessionCode::new(slot, &mut rand::rngs::OsRng);
        info!(code = %code.redacted(), "invitation code issued");
        let _ = news.send(GuestEvent::Code(Ok(code.to_string()))).await;
        let claim = tokio::select! {
            t = wait_claim(&mut ctl, slot) => match t {
                Ok(Some(c)) => c,
                _ => return not_paired(EndReason::ConnectionLost),
            },
            () = wait_end(&mut seat.commands) => return not_paired(EndReason::UserEnded),
        };
        // The colleague's verification code is not shown: the banner keeps the first technician's.
        let admitted = admit(
            &config,
            &relay,
            &mut ctl_send,
            &seat.events,
            &claim.technician,
            &code,
        );
        let (keys, stream0) = match admitted.await {
            Ok(Admission::Paired(keys, stream0)) => (keys, stream0),
            Ok(Admission::Declined) => return not_paired(EndReason::Forbidden),
            Ok(Admission::PairingFailed) => return not_paired(EndReason::PairingFailed),
            Err(_) => return not_paired(EndReason::ConnectionLost),
        };
        let _ = seat
            .supervisor
            .send(ToSupervisor::Paired(tokio::task::id()))
            .await;
        let who = technician_name(&claim.technician);
        let session = Session {
            conn: &relay.conn,
            route: claim.route,
            ctl_send: &mut ctl_send,
            ctl: &mut ctl,
            seat,
            keys,
            on_consent: Some(news.clone()),
            may_invite: false,
            unattended: None,
            enrolled_by: None,
        };
        let span = info_span!("session", id = %slot, guest = true);
        let reason = session
            .run(&config, claim.technician, stream0)
            .instrument(span)
            .await;
        Finished {
            reason,
            technician: Some(who),
            ctl_send: None,
        }
    }
    .await;
    flush_control(&mut ctl_send).await;
    relay.close(close::NORMAL, "guest session over").await;
    tasks.abort_all();
    finished
}
