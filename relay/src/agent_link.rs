//! One agent's control stream: open slots, hear about claims, forward audit facts.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tether_net::framed::{self, FrameError};
use tether_proto::msg::{
    AgentToRelay, RelayError, RelayErrorKind, RelayToAgent, SessionReport, TechnicianIdentity,
};
use tether_proto::records::{MAX_REASON_CHARS, truncate_text};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span};

use crate::audit::AuditEvent;
use crate::audit_writer::AuditWriter;
use crate::conn::close_protocol;
use crate::directory::Directory;
use crate::ids::{AgentId, IdSource, SessionId, TicketId};
use crate::invite::{Invitation, Invites};
use crate::link::agent_queue;
use crate::metrics::{GaugeGuard, Metrics};
use crate::record_service;
use crate::records::RecordStore;
use crate::slots::SlotTable;

// Where these lived before `link` held them.
pub use crate::link::{AgentEvent, AgentLink, EVENT_QUEUE};

/// What an agent's control stream needs.
#[derive(Debug, Clone)]
pub struct AgentCtx {
    /// Where its slots go.
    pub slots: Arc<SlotTable>,
    /// Invitees are checked against it.
    pub directory: Arc<dyn Directory>,
    /// Invitation tickets.
    pub invites: Arc<Invites>,
    /// The agent's reports are audited.
    pub audit: AuditWriter,
    /// The agent's reports fill the session record.
    pub records: Arc<dyn RecordStore>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Agent ids.
    pub ids: Arc<IdSource>,
    /// A code's lifetime, told to the agent with each slot.
    pub code_ttl: Duration,
    /// Enrolled devices' session connections bring their wake tickets here.
    pub wakes: Arc<crate::wake::Wakes>,
    /// The relay is stopping.
    pub shutdown: CancellationToken,
}

/// Reserves a slot for `link` (the agent's own, or a guest link bound to an invitation).
fn open_slot(ctx: &AgentCtx, id: AgentId, link: AgentLink) -> RelayToAgent {
    let opened = ctx.slots.open(id.get(), link, &mut rand::thread_rng());
    match opened {
        Ok(slot) => {
            debug!(%slot, "slot opened");
            RelayToAgent::SlotOpened {
                slot,
                // A code lives minutes (`Limits::code_ttl`); saturate rather than wrap.
                expires_in_secs: u32::try_from(ctx.code_ttl.as_secs()).unwrap_or(u32::MAX),
            }
        }
        Err((kind, text)) => RelayToAgent::Error(RelayError::new(kind, text)),
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

pub(crate) async fn serve(
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    ctx: &AgentCtx,
) {
    let id = ctx.ids.agent();
    let span = info_span!("agent", agent = %id);
    control(conn, send, recv, ctx, id).instrument(span).await
}

async fn control(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: &AgentCtx,
    id: AgentId,
) {
    let (tx, mut rx) = agent_queue();
    let link = AgentLink {
        conn: conn.clone(),
        events: tx,
        busy: Arc::default(),
        invite: None,
        reason: None,
    };
    let mut current: Option<(SessionId, CancellationToken, TechnicianIdentity)> = None;
    let mut pending: Option<oneshot::Sender<Result<(), String>>> = None;
    let _connected = GaugeGuard::new(&ctx.metrics.agents_connected);
    info!("agent connected");
    loop {
        let reply = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            msg = framed::read_msg::<AgentToRelay>(&mut recv) => match msg {
                Ok(AgentToRelay::OpenSlot { reason }) => {
                    let reason = reason
                        .map(|r| truncate_text(&r, MAX_REASON_CHARS, false))
                        .filter(|r| !r.is_empty())
                        .map(Arc::from);
                    Some(open_slot(ctx, id, AgentLink { reason, ..link.clone() }))
                }
                Ok(AgentToRelay::OpenInviteSlot { ticket }) => {
                    Some(match ctx.invites.take(TicketId(ticket), Instant::now()) {
                        Some(invitation) => {
                            let guest = AgentLink { invite: Some(Arc::new(invitation)), ..link.clone() };
                            open_slot(ctx, id, guest)
                        }
                        None => RelayToAgent::Error(RelayError::new(
                            RelayErrorKind::UnknownSlot,
                            "this invitation is unknown, used or expired",
                        )),
                    })
                }
                Ok(AgentToRelay::OpenWakeSlot { ticket }) => {
                    Some(if ctx.wakes.waiting(ticket) {
                        let opened = open_slot(ctx, id, link.clone());
                        if let RelayToAgent::SlotOpened { slot, .. } = &opened
                            && !ctx.wakes.opened(ticket, *slot)
                        {
                            ctx.slots.remove_agent(id.get());
                        }
                        opened
                    } else {
                        RelayToAgent::Error(RelayError::new(
                            RelayErrorKind::UnknownSlot,
                            "this wake ticket is unknown, used or expired",
                        ))
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
                        match ctx.invites.issue(ctx.directory.as_ref(), invitation, Instant::now()) {
                            Ok((ticket, technician)) => {
                                ctx.audit.record(AuditEvent::Invited {
                                    session: *session,
                                    by: by.name.clone(),
                                    invitee: invitee.to_string(),
                                    handover,
                                });
                                RelayToAgent::InviteTicket { ticket: ticket.get(), technician }
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
                    ctx.metrics.agent_report(&report);
                    if let Some((session, end, technician)) = &current {
                        if matches!(report, SessionReport::Paired) {
                            ctx.audit.record(AuditEvent::SessionStarted { session: *session, technician: technician.name.clone(), org: technician.org.clone() });
                        }
                        ctx.audit.record(AuditEvent::AgentReport { session: *session, report: describe(&report) });
                        record_service::agent_report(&ctx.records, *session, &report).await;
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
                AgentEvent::Claimed { slot, technician, session, end, answer, route } => {
                    current = Some((session, end, technician.clone()));
                    pending = Some(answer);
                    Some(RelayToAgent::Claimed { slot, technician, route })
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
    ctx.slots.remove_agent(id.get());
    if let Some((_, end, _)) = current {
        end.cancel();
    }
    link.busy.store(false, Ordering::Release);
    info!("agent disconnected");
}
