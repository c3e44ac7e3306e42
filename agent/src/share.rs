//! `tether-agent share`: one support session by one-time code.
//!
//! # Flow
//! 1. Connect to the relay (pinned), open the control stream, ask for a slot, draw a secret, show the code.
//! 2. Wait for a claim. The relay names the technician; the first spliced stream carries pairing.
//! 3. SPAKE2 + key confirmation with the secret. On failure the code is burned, the relay is told, and
//!    a new code is shown.
//! 4. The first sealed message is the consent request. The user answers; silence, a closed input or a
//!    timeout mean "no". Nothing is served before this point (the session's machine, `session`).
//! 5. Each further stream is one request, checked against the grant — the console's word is never
//!    trusted — then served or refused (and the refusal reported to the relay's audit log;
//!    `requests`).
//! 6. The session ends when the user ends it (works without network: the local side just closes), the
//!    technician ends it, or either connection drops.
//! 7. Every session of a share (the first, and a colleague's once the user agrees to an invitation)
//!    runs in this module's supervisor, one `JoinSet`: the user's commands reach each, and the user
//!    hears `TechnicianLeft` as one ends while another technician is in, `Ended` for the last.
//! 8. If the relay connection drops while waiting for a claim (relay restart, network change), the
//!    agent reconnects with exponential backoff and jitter ([`crate::backoff`]) and shows a new code;
//!    with a relay cluster's other nodes configured (`share --other-relay`, `other_relays`), each
//!    attempt goes to the next node, so losing a node means a new code from another.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tether_net::ConnectError;
use tether_net::client::RelayConnection;
use tether_net::framed;
use tether_proto::msg::{AgentToRelay, EndReason, RelayToAgent, TechnicianIdentity, close};
use tether_proto::seal::SessionKeys;
use tether_proto::{SessionCode, Slot};
use tokio::sync::{mpsc, watch};
use tokio::task::{self, JoinSet};
use tracing::{Instrument, info, info_span, warn};

use crate::backoff::Backoff;
pub use crate::config::{CONSENT_TIMEOUT, FilesConfig, STEP_TIMEOUT, ShareConfig, check_reason};
pub use crate::link::ShareError;
use crate::link::{
    Admission, Control, ControlLink, admit, connect_control_with, flush_control, read_loop,
    wait_claim, wait_end,
};
use crate::local_log::LocalLog;
use crate::session::{Finished, GuestRequest, Seat, Session, ToSupervisor, technician_name};
use crate::ui::{AgentEvent, UiLink, UserCommand};

/// Copies every event to the local log, then on to the front end.
pub(crate) async fn tee(
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
    let mut nodes = Nodes::new(config);
    let mut link = connect_control_with(&nodes.current.relay, nodes.liveness()).await?;
    let mut backoff = Backoff::default();
    loop {
        let (relay, ctl_send, ctl_recv) = link;
        let span = info_span!("relay_connection", relay = %nodes.current.relay.addr);
        let result = on_connection(&nodes.current, &relay, ctl_send, ctl_recv, ui)
            .instrument(span)
            .await;
        match result {
            Err(ShareError::ConnectionLost) => {
                let lost = tether_net::closed::reason(&relay.conn)
                    .map(|c| c.reason)
                    .unwrap_or_else(|| "connection lost".into());
                info!(reason = %lost, "relay connection lost while waiting; reconnecting");
                match reconnect(&mut nodes, ui, &mut backoff, lost).await? {
                    Some(l) => link = l,
                    None => return Ok(EndReason::UserEnded),
                }
            }
            Ok(reason) if config.again && reason != EndReason::UserEnded => {
                info!(%reason, "session over; sharing goes on with a new code");
                link = match connect_control_with(&nodes.current.relay, nodes.liveness()).await {
                    Ok(l) => l,
                    Err(e) => match reconnect(&mut nodes, ui, &mut backoff, e.to_string()).await? {
                        Some(l) => l,
                        None => return Ok(EndReason::UserEnded),
                    },
                };
            }
            other => return other,
        }
    }
}

/// The relay nodes a share may use: the configured relay, then [`ShareConfig::other_relays`] (a
/// cluster's other nodes, trusted the same way). `current` is the config for the node in use, so
/// everything of a connection (its code, an invited colleague's guest connection) goes to one node.
struct Nodes {
    current: ShareConfig,
    addrs: Vec<String>,
    at: usize,
}

impl Nodes {
    fn new(config: &ShareConfig) -> Self {
        let mut addrs = vec![config.relay.addr.clone()];
        addrs.extend(config.other_relays.iter().cloned());
        Nodes {
            current: config.clone(),
            addrs,
            at: 0,
        }
    }

    /// How closely the node in use is watched: with other nodes to move to, closely enough that a
    /// node that dies is left within seconds.
    fn liveness(&self) -> tether_net::transport::Liveness {
        if self.addrs.len() > 1 {
            tether_net::transport::Liveness::WATCHFUL
        } else {
            tether_net::transport::Liveness::STANDARD
        }
    }

    /// Moves to the next node (the same one when there is only one) and returns its config.
    fn advance(&mut self) -> &ShareConfig {
        self.at = (self.at + 1) % self.addrs.len();
        self.current.relay.addr = self.addrs[self.at].clone();
        &self.current
    }
}

/// Waits, reconnects (to each node in turn), repeats; `None` if the user ended sharing meanwhile.
async fn reconnect(
    nodes: &mut Nodes,
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
        let target = nodes.advance().relay.clone();
        let liveness = nodes.liveness();
        let attempt = async {
            tokio::time::sleep(delay).await;
            connect_control_with(&target, liveness).await
        };
        tokio::select! {
            r = attempt => match r {
                Ok(link) => {
                    backoff.reset();
                    if nodes.addrs.len() > 1 {
                        info!(relay = %target.addr, "connected to another node of the cluster");
                    }
                    return Ok(Some(link));
                }
                // A relay with a different certificate is not ours: never retry into it.
                Err(ShareError::Connect(e @ ConnectError::FingerprintMismatch { .. })) => {
                    return Err(e.into());
                }
                Err(e) => reason = e.to_string(),
            },
            () = wait_end(&mut ui.commands) => return Ok(None),
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

        let claim = tokio::select! {
            m = wait_claim(&mut ctl, slot) => match m? {
                Some(c) => c,
                None => {
                    let _ = ui.events.send(AgentEvent::CodeExpired).await;
                    continue;
                }
            },
            () = wait_end(&mut ui.commands) => {
                relay.close(close::NORMAL, "user ended").await;
                break Ok(EndReason::UserEnded);
            }
        };
        let (keys, stream0) = match admit(
            config,
            relay,
            &mut ctl_send,
            &ui.events,
            &claim.technician,
            &code,
        )
        .await?
        {
            Admission::Paired(keys, stream0) => (keys, stream0),
            Admission::Declined | Admission::PairingFailed => continue,
        };
        let _ = ui
            .events
            .send(AgentEvent::Paired {
                verification: keys.verification_code(),
            })
            .await;
        let first = First {
            conn: relay.conn.clone(),
            ctl_send,
            ctl,
            keys,
            technician: claim.technician,
            route: claim.route,
            stream0,
        };
        let (reason, back) = Supervisor::new(config, ui).run(first, code.slot).await;
        match back {
            Some(back) => {
                ctl_send = back;
                break Ok(reason);
            }
            // The first session's task failed: its control stream went with it.
            None => {
                relay.close(close::NORMAL, "session over").await;
                tasks.abort_all();
                return Ok(reason);
            }
        }
    };
    flush_control(&mut ctl_send).await;
    relay.close(close::NORMAL, "session over").await;
    tasks.abort_all();
    result
}

/// The share's first session, paired on the share's own relay connection.
struct First {
    conn: quinn::Connection,
    ctl_send: quinn::SendStream,
    ctl: Control,
    keys: SessionKeys,
    technician: TechnicianIdentity,
    route: tether_proto::forward::RouteToken,
    stream0: (quinn::SendStream, quinn::RecvStream),
}

/// Queued messages from sessions to the supervisor (guest requests, pairings).
const SUPERVISOR_QUEUE: usize = 8;

/// Owns every session of a share in one [`JoinSet`]: the first technician's and any colleague's
/// (a guest). It passes the user's commands to each, counts the paired ones, starts a guest when a
/// session asks, and tells the user each end (`TechnicianLeft` while another technician is still
/// in, else `Ended`).
struct Supervisor<'a> {
    config: &'a ShareConfig,
    ui: &'a mut UiLink,
    tasks: JoinSet<Option<Finished>>,
    /// Each running task's command channel.
    commands: HashMap<task::Id, mpsc::Sender<UserCommand>>,
    /// Every task in `tasks`.
    running: HashSet<task::Id>,
    /// Tasks that paired and run a session.
    paired: HashSet<task::Id>,
    sessions: watch::Sender<usize>,
    to_me: mpsc::Sender<ToSupervisor>,
    inbox: mpsc::Receiver<ToSupervisor>,
}

impl<'a> Supervisor<'a> {
    fn new(config: &'a ShareConfig, ui: &'a mut UiLink) -> Self {
        let (to_me, inbox) = mpsc::channel(SUPERVISOR_QUEUE);
        Supervisor {
            config,
            ui,
            tasks: JoinSet::new(),
            commands: HashMap::new(),
            running: HashSet::new(),
            paired: HashSet::new(),
            sessions: watch::Sender::new(0),
            to_me,
            inbox,
        }
    }

    /// A seat for a new task: its own command channel, registered once the task id is known.
    fn seat(&self) -> (Seat, mpsc::Sender<UserCommand>) {
        let (commands_tx, commands) = mpsc::channel(crate::ui::QUEUE);
        let seat = Seat {
            commands,
            events: self.ui.events.clone(),
            sessions: self.sessions.subscribe(),
            supervisor: self.to_me.clone(),
        };
        (seat, commands_tx)
    }

    fn count(&self) {
        self.sessions.send_replace(self.paired.len());
    }

    fn handle(&mut self, m: ToSupervisor) {
        match m {
            ToSupervisor::StartGuest(ask) => self.start_guest(ask),
            ToSupervisor::Paired(id) => {
                if self.running.contains(&id) {
                    self.paired.insert(id);
                    self.count();
                }
            }
        }
    }

    fn start_guest(&mut self, ask: GuestRequest) {
        let (seat, commands) = self.seat();
        let config = self.config.clone();
        let GuestRequest { ticket, news, stop } = ask;
        let guest = async move {
            tokio::select! {
                f = crate::guest::run(config, ticket, news, seat) => Some(f),
                // Replaced before its invitee came: it simply stops (its code goes with it).
                () = stop.cancelled() => None,
            }
        };
        let task = self.tasks.spawn(guest.instrument(info_span!("guest")));
        self.commands.insert(task.id(), commands);
        self.running.insert(task.id());
    }

    /// Runs every session until the first one ended and every other one too (or the user ended
    /// the first); returns the last reason and the first session's control stream.
    async fn run(mut self, first: First, slot: Slot) -> (EndReason, Option<quinn::SendStream>) {
        let (seat, commands) = self.seat();
        let config = self.config.clone();
        // Made here, so it sits inside the relay connection's span.
        let span = info_span!("session", id = %slot);
        let first_task = self.tasks.spawn(
            async move {
                let First {
                    conn,
                    mut ctl_send,
                    mut ctl,
                    keys,
                    technician,
                    route,
                    stream0,
                } = first;
                let who = technician_name(&technician);
                let session = Session {
                    conn: &conn,
                    route,
                    ctl_send: &mut ctl_send,
                    ctl: &mut ctl,
                    seat,
                    keys,
                    on_consent: None,
                    may_invite: true,
                    unattended: None,
                    enrolled_by: None,
                };
                let reason = session.run(&config, technician, stream0).await;
                Some(Finished {
                    reason,
                    technician: Some(who),
                    ctl_send: Some(ctl_send),
                })
            }
            .instrument(span),
        );
        let first_id = first_task.id();
        self.commands.insert(first_id, commands);
        self.running.insert(first_id);
        self.paired.insert(first_id);
        self.count();
        let mut first_over = false;
        let mut last = EndReason::ConnectionLost;
        let mut ctl_send = None;
        let mut reading = true;
        loop {
            tokio::select! {
                c = self.ui.commands.recv(), if reading => match c {
                    // Every session hears the user: consent, chat, revoke, end.
                    Some(c) => {
                        for tx in self.commands.values() {
                            let _ = tx.send(c.clone()).await;
                        }
                    }
                    // The front end is gone. Once the first session is over, a colleague still
                    // in is ended as the user would end it.
                    None => {
                        reading = false;
                        if first_over {
                            for tx in self.commands.values() {
                                let _ = tx.send(UserCommand::EndSession).await;
                            }
                        }
                        self.commands.clear();
                    }
                },
                Some(m) = self.inbox.recv() => self.handle(m),
                Some(done) = self.tasks.join_next_with_id() => {
                    // A task that paired said so before it could end: count it first.
                    while let Ok(m) = self.inbox.try_recv() {
                        self.handle(m);
                    }
                    let (id, finished) = match done {
                        Ok((id, f)) => (id, f),
                        Err(e) => {
                            warn!(error = %e, "a session task failed");
                            (e.id(), None)
                        }
                    };
                    self.commands.remove(&id);
                    self.running.remove(&id);
                    let was_paired = self.paired.remove(&id);
                    self.count();
                    if let Some(f) = finished {
                        if was_paired && let Some(technician) = f.technician {
                            let reason = f.reason.clone();
                            let event = if self.paired.is_empty() {
                                AgentEvent::Ended { reason }
                            } else {
                                AgentEvent::TechnicianLeft { technician, reason }
                            };
                            let _ = self.ui.events.send(event).await;
                        }
                        if id == first_id {
                            first_over = true;
                            ctl_send = f.ctl_send;
                            // The user ended it: nobody stays (dropping the set stops the rest).
                            if f.reason == EndReason::UserEnded {
                                return (f.reason, ctl_send);
                            }
                            last = f.reason;
                        } else if first_over {
                            last = f.reason;
                        }
                    } else if id == first_id {
                        return (EndReason::ConnectionLost, None);
                    }
                    if self.tasks.is_empty() {
                        return (last, ctl_send);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnections_go_round_the_nodes_and_one_relay_stays_itself() {
        let target = tether_net::client::RelayTarget {
            addr: "a.example:4433".into(),
            trust: tether_net::Trust::CaFile("cluster-ca.pem".into()),
            connect_timeout: std::time::Duration::from_secs(1),
            direct: Default::default(),
        };
        let mut config = ShareConfig::new(target);
        let mut one = Nodes::new(&config);
        assert_eq!(one.advance().relay.addr, "a.example:4433");
        config.other_relays = vec!["b.example:4433".into(), "c.example:4433".into()];
        let mut nodes = Nodes::new(&config);
        let seen: Vec<String> = (0..4).map(|_| nodes.advance().relay.addr.clone()).collect();
        assert_eq!(
            seen,
            [
                "b.example:4433",
                "c.example:4433",
                "a.example:4433",
                "b.example:4433"
            ]
        );
        assert_eq!(nodes.current.relay.addr, "b.example:4433");
    }
}
