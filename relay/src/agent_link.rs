//! One agent's control stream: open slots, hear about claims, forward audit facts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tether_net::framed::{self, FrameError};
use tether_proto::Slot;
use tether_proto::msg::{
    AgentToRelay, RelayError, RelayErrorKind, RelayToAgent, SessionReport, TechnicianIdentity,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::audit::AuditEvent;
use crate::invite::Invitation;
use crate::records;
use crate::rendezvous::AgentId;
use crate::server::{Shared, agent_queue, close_protocol};
use tether_proto::records::{MAX_REASON_CHARS, truncate_text};

/// Events queued for one agent's control task.
pub const EVENT_QUEUE: usize = 16;

/// What the rest of the relay holds to reach an agent.
#[derive(Debug, Clone)]
pub struct AgentLink {
    /// The agent's connection, for opening spliced streams.
    pub conn: quinn::Connection,
    /// Events for the agent's control task.
    pub events: mpsc::Sender<AgentEvent>,
    /// Set while the agent is in a session: one session per agent connection.
    pub busy: Arc<AtomicBool>,
    /// For a guest connection's slot: only this invitation's invitee may claim it.
    pub invite: Option<Arc<Invitation>>,
    /// The reason the user gave with the slot request (`share --reason`), cleaned and cut to
    /// [`MAX_REASON_CHARS`]; each slot keeps the reason it was opened with.
    pub reason: Option<Arc<str>>,
}

/// Events for an agent's control task.
#[derive(Debug)]
pub enum AgentEvent {
    /// A technician claimed a slot; a session starts.
    Claimed {
        /// The slot.
        slot: Slot,
        /// The verified technician.
        technician: TechnicianIdentity,
        /// Session id for audit records.
        session: u64,
        /// Cancel to end the session.
        end: CancellationToken,
        /// The agent's answer: go ahead, or why not.
        answer: oneshot::Sender<Result<(), String>>,
    },
    /// A slot expired unclaimed.
    SlotExpired {
        /// The slot.
        slot: Slot,
    },
    /// The console left the session.
    PeerGone,
}

/// Reserves a slot for `link` (the agent's own, or a guest link bound to an invitation).
fn open_slot(shared: &Shared, id: AgentId, link: AgentLink) -> RelayToAgent {
    let opened = shared.table(|t| t.open(id, link, Instant::now(), &mut rand::thread_rng()));
    match opened {
        Ok(slot) => {
            debug!(agent = id, %slot, "slot opened");
            RelayToAgent::SlotOpened {
                slot,
                expires_in_secs: shared.limits.code_ttl.as_secs() as u32,
            }
        }
        Err(kind) => RelayToAgent::Error(RelayError::new(
            kind,
            match kind {
                RelayErrorKind::TooManySlots => {
                    "this agent already holds the maximum number of open codes"
                }
                _ => "the relay has no free slot right now",
            },
        )),
    }
}

fn describe(report: &SessionReport) -> String {
    match report {
        SessionReport::Paired => "paired".into(),
        SessionReport::PairingFailed => "pairing_failed".into(),
        SessionReport::Consent { requested, granted } => {
            if granted.is_empty() {
                format!("consent_denied requested={requested}")
            } else {
                format!("consent_given requested={requested} granted={granted}")
            }
        }
        SessionReport::ScopeRefused { scope } => format!("scope_refused scope={scope}"),
        SessionReport::Ended { reason } => format!("ended reason={reason}"),
        SessionReport::HandedOver => "handed_over".into(),
    }
}

/// Copies what the session record keeps from an agent's report: the grant and the end reason.
async fn record_report(shared: &Shared, session: u64, report: &SessionReport) {
    let records = &shared.records;
    match report {
        SessionReport::Consent { granted, .. } => {
            let granted = *granted;
            let r = records::blocking(records, move |r| r.consent(session, granted)).await;
            records::log_failure("consent", r);
        }
        SessionReport::Ended { reason } => {
            let reason = reason.to_string();
            let r = records::blocking(records, move |r| r.agent_ended(session, &reason)).await;
            records::log_failure("end reason", r);
        }
        _ => {}
    }
}

pub(crate) async fn serve(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    shared: Arc<Shared>,
) {
    let id = shared.next_id();
    let (tx, mut rx) = agent_queue();
    let link = AgentLink {
        conn: conn.clone(),
        events: tx,
        busy: Arc::new(AtomicBool::new(false)),
        invite: None,
        reason: None,
    };
    let mut current: Option<(u64, CancellationToken, TechnicianIdentity)> = None;
    let mut pending: Option<oneshot::Sender<Result<(), String>>> = None;
    let _connected = crate::metrics::GaugeGuard::new(&shared.metrics.agents_connected);
    info!(agent = id, "agent connected");
    loop {
        let reply = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            msg = framed::read_msg::<AgentToRelay>(&mut recv) => match msg {
                Ok(AgentToRelay::OpenSlot { reason }) => {
                    let reason = reason
                        .map(|r| truncate_text(&r, MAX_REASON_CHARS, false))
                        .filter(|r| !r.is_empty())
                        .map(Arc::from);
                    Some(open_slot(&shared, id, AgentLink { reason, ..link.clone() }))
                }
                Ok(AgentToRelay::OpenInviteSlot { ticket }) => {
                    Some(match shared.invites.take(ticket, Instant::now()) {
                        Some(invitation) => {
                            let guest = AgentLink { invite: Some(Arc::new(invitation)), ..link.clone() };
                            open_slot(&shared, id, guest)
                        }
                        None => RelayToAgent::Error(RelayError::new(
                            RelayErrorKind::UnknownSlot,
                            "this invitation is unknown, used or expired",
                        )),
                    })
                }
                Ok(AgentToRelay::Invite { invitee, handover }) => Some(match &current {
                    Some((session, _, by)) => {
                        let invitation = Invitation {
                            parent: *session,
                            by: by.name.clone(),
                            org: by.org.clone(),
                            invitee: invitee.clone(),
                            handover,
                        };
                        match shared.invites.issue(&shared.technicians, invitation, Instant::now()) {
                            Ok((ticket, technician)) => {
                                shared.audit.record(AuditEvent::Invited {
                                    session: *session,
                                    by: by.name.clone(),
                                    invitee: invitee.to_string(),
                                    handover,
                                });
                                RelayToAgent::InviteTicket { ticket, technician }
                            }
                            Err(e) => RelayToAgent::Error(e),
                        }
                    }
                    None => RelayToAgent::Error(RelayError::new(
                        RelayErrorKind::UnexpectedMessage,
                        "an invitation needs a running session",
                    )),
                }),
                Ok(AgentToRelay::Accept) => {
                    if let Some(p) = pending.take() {
                        let _ = p.send(Ok(()));
                    }
                    None
                }
                Ok(AgentToRelay::Decline { reason }) => {
                    if let Some(p) = pending.take() {
                        let _ = p.send(Err(reason.chars().take(200).collect()));
                    }
                    current = None;
                    None
                }
                Ok(AgentToRelay::Report(report)) => {
                    shared.metrics.agent_report(&report);
                    if let Some((session, end, technician)) = &current {
                        if matches!(report, SessionReport::Paired) {
                            shared.audit.record(AuditEvent::SessionStarted { session: *session, technician: technician.name.clone(), org: technician.org.clone() });
                        }
                        shared.audit.record(AuditEvent::AgentReport { session: *session, report: describe(&report) });
                        record_report(&shared, *session, &report).await;
                        if matches!(report, SessionReport::PairingFailed | SessionReport::Ended { .. }) {
                            end.cancel();
                        }
                    }
                    None
                }
                Err(FrameError::Closed | FrameError::Read(_) | FrameError::Connection(_)) => break,
                Err(e) => {
                    close_protocol(&conn, &e);
                    break;
                }
            },
            Some(event) = rx.recv() => match event {
                AgentEvent::Claimed { slot, technician, session, end, answer } => {
                    current = Some((session, end, technician.clone()));
                    pending = Some(answer);
                    Some(RelayToAgent::Claimed { slot, technician })
                }
                AgentEvent::SlotExpired { slot } => Some(RelayToAgent::SlotExpired { slot }),
                // The session id stays until the next claim, so the agent's closing report is still audited.
                AgentEvent::PeerGone => Some(RelayToAgent::PeerGone),
            },
        };
        if let Some(reply) = reply
            && framed::write_msg(&mut send, &reply).await.is_err()
        {
            break;
        }
    }
    shared.table(|t| t.remove_agent(id));
    if let Some((_, end, _)) = current {
        end.cancel();
    }
    link.busy.store(false, Ordering::Release);
    info!(agent = id, "agent disconnected");
}
