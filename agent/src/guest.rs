//! A colleague's session beside the first one: the agent side of an invitation.
//!
//! Once the user agrees to an invitation and the relay has issued a ticket ([`crate::session`]
//! does both), the guest opens its own relay connection, trades the ticket for a slot only the
//! invitee can claim, draws a fresh secret, and hands the code to the inviting technician over
//! their sealed stream 0 (the relay never sees the secret). The invitee then pairs and is asked for
//! consent like anyone else, in the same window or terminal: nothing granted to the first
//! technician carries over. Each technician's session has its own connection, keys and grant.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tether_net::framed;
use tether_proto::SessionCode;
use tether_proto::msg::{AgentToRelay, EndReason, RelayToAgent, close};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::info;

use crate::config::ShareConfig;
use crate::link::{
    Admission, admit, connect_control, flush_control, read_loop, wait_claim, wait_end,
};
use crate::session::Session;
use crate::ui::{AgentEvent, UiLink, UserCommand};

/// What the first session holds of a running guest.
pub(crate) struct GuestHandle {
    /// The user's commands, forwarded (consent for the invitee, chat, revoke, end).
    pub commands: mpsc::Sender<UserCommand>,
    /// Whether the first technician leaves once the invitee is in.
    pub handover: bool,
    /// The guest's task, to tell it apart when it ends or to stop it.
    pub task: tokio::task::AbortHandle,
}

/// The invitee's code (or why there is none), as the guest reports it.
pub(crate) type CodeReceiver = oneshot::Receiver<Result<SessionCode, String>>;

/// Starts the guest for `ticket` in `tasks`; returns the handle the first session keeps, the
/// invitee's code when it is ready, and a signal for when the user grants the invitee something.
pub(crate) fn start(
    tasks: &mut JoinSet<EndReason>,
    config: &ShareConfig,
    ticket: u64,
    handover: bool,
    events: mpsc::Sender<AgentEvent>,
    live: Arc<AtomicUsize>,
) -> (GuestHandle, CodeReceiver, oneshot::Receiver<()>) {
    let (commands_tx, commands) = mpsc::channel(crate::ui::QUEUE);
    let (code_tx, code) = oneshot::channel();
    let (consent_tx, consented) = oneshot::channel();
    let config = config.clone();
    let ui = UiLink { events, commands };
    let task = tasks.spawn(async move { run(config, ticket, ui, code_tx, consent_tx, live).await });
    let handle = GuestHandle {
        commands: commands_tx,
        handover,
        task,
    };
    (handle, code, consented)
}

async fn run(
    config: ShareConfig,
    ticket: u64,
    mut ui: UiLink,
    code_tx: oneshot::Sender<Result<SessionCode, String>>,
    on_consent: oneshot::Sender<()>,
    live: Arc<AtomicUsize>,
) -> EndReason {
    let (relay, mut ctl_send, ctl_recv) = match connect_control(&config.relay).await {
        Ok(link) => link,
        Err(e) => {
            let _ = code_tx.send(Err(format!("the agent could not reach the relay: {e}")));
            return EndReason::ConnectionLost;
        }
    };
    let mut tasks = JoinSet::new();
    let (ctl_tx, mut ctl) = mpsc::channel(16);
    tasks.spawn(read_loop(ctl_recv, ctl_tx));
    let reason = async {
        if framed::write_msg(&mut ctl_send, &AgentToRelay::OpenInviteSlot { ticket })
            .await
            .is_err()
        {
            let _ = code_tx.send(Err("lost the relay".into()));
            return EndReason::ConnectionLost;
        }
        let slot = match ctl.recv().await {
            Some(Ok(RelayToAgent::SlotOpened { slot, .. })) => slot,
            Some(Ok(RelayToAgent::Error(e))) => {
                let _ = code_tx.send(Err(e.message));
                return EndReason::ConnectionLost;
            }
            other => {
                let _ = code_tx.send(Err(format!("unexpected answer from the relay: {other:?}")));
                return EndReason::ConnectionLost;
            }
        };
        let code = SessionCode::new(slot, &mut rand::rngs::OsRng);
        info!(code = %code.redacted(), "invitation code issued");
        let _ = code_tx.send(Ok(code));
        let technician = tokio::select! {
            t = wait_claim(&mut ctl, slot) => match t {
                Ok(Some(t)) => t,
                _ => return EndReason::ConnectionLost,
            },
            () = wait_end(&mut ui) => return EndReason::UserEnded,
        };
        // The colleague's verification code is not shown: the banner keeps the first technician's.
        let (keys, stream0) =
            match admit(&config, &relay, &mut ctl_send, &ui, &technician, &code).await {
                Ok(Admission::Paired(keys, stream0)) => (keys, stream0),
                Ok(Admission::Declined) => return EndReason::Forbidden,
                Ok(Admission::PairingFailed) => return EndReason::PairingFailed,
                Err(_) => return EndReason::ConnectionLost,
            };
        live.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let session = Session {
            relay: &relay,
            ctl_send: &mut ctl_send,
            ctl: &mut ctl,
            ui: &mut ui,
            keys,
            on_consent: Some(on_consent),
            live,
            may_invite: false,
        };
        session
            .run(&config, technician, stream0)
            .await
            .unwrap_or(EndReason::ConnectionLost)
    }
    .await;
    flush_control(&mut ctl_send).await;
    relay.close(close::NORMAL, "guest session over").await;
    tasks.abort_all();
    reason
}
