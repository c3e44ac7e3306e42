//! A console's claim and the spliced session that follows.
//!
//! # Message flow
//! 1. The console's first frame is a [`ConsoleToRelay`]: a `Claim`, or a one-shot query (fleet,
//!    records, invitations) answered by its own module.
//! 2. A claim passes the checks of [`crate::claim`], takes its slot, reserves the agent (one
//!    session at a time, [`crate::link::BusyGuard`]) and asks the agent to accept.
//!    In a cluster, a slot another node holds is not taken here: the console hears `Redirect`
//!    naming that node, and claims there.
//! 3. Accepted: the console hears `Claimed`, and stream 0 and every further console stream are
//!    spliced to a new agent stream until one side leaves, the time limit, or shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tether_net::framed;
use tether_proto::Slot;
use tether_proto::msg::{
    ConsoleToRelay, NodeAddress, RelayError, RelayErrorKind, RelayToConsole, close,
};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::audit::AuditEvent;
use crate::audit_writer::AuditWriter;
use crate::claim::{self, Refusal, TokenVerdict};
use crate::config::{ACCEPT_TIMEOUT, Limits, SpliceTap};
use crate::conn::{close_protocol, refuse};
use crate::directory::Directory;
use crate::end::{EndReason, relay_error_name};
use crate::fleet::FleetCtx;
use crate::forward::{End, RouteGuard};
use crate::ids::{IdSource, SessionId};
use crate::invite_list::ListCtx;
use crate::link::{AgentEvent, AgentLink, BusyGuard};
use crate::metrics::{GaugeGuard, Metrics};
use crate::record_service::{self, QueryCtx};
use crate::records::RecordStore;
use crate::slots::{SlotTable, Taken};
use crate::splice::{Counters, splice};

/// How long a finished session waits for in-flight frames before cutting the spliced streams.
const FINAL_FRAME_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What a console connection needs.
#[derive(Clone)]
pub struct ConsoleCtx {
    /// The open slots.
    pub slots: Arc<SlotTable>,
    /// Who holds a token.
    pub directory: Arc<dyn Directory>,
    /// Claims and sessions are audited.
    pub audit: AuditWriter,
    /// Session records.
    pub records: Arc<dyn RecordStore>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Session ids.
    pub ids: Arc<IdSource>,
    /// The claim timeout and the session length.
    pub limits: Limits,
    /// Tests watch the spliced bytes.
    pub tap: Option<SpliceTap>,
    /// Carries each session's end-to-end connection.
    pub forwarder: Arc<crate::forward::Forwarder>,
    /// Enrolled devices to wake for sessions without a code.
    pub wakes: Arc<crate::wake::Wakes>,
    /// The relay is stopping.
    pub shutdown: CancellationToken,
    /// Fleet queries.
    pub fleet: FleetCtx,
    /// Record queries.
    pub queries: QueryCtx,
    /// Invitation lists.
    pub invitations: ListCtx,
}

impl std::fmt::Debug for ConsoleCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleCtx")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ConsoleCtx {
    fn verify(&self, token: &str) -> TokenVerdict {
        match self.directory.verify(token) {
            Ok(Ok(t)) => TokenVerdict::Valid(t),
            Ok(Err(problem)) => TokenVerdict::Problem(problem),
            Err(e) => {
                warn!(error = %e, "technician store unreadable");
                TokenVerdict::Unreadable
            }
        }
    }
}

pub(crate) async fn serve(
    conn: quinn::Connection,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: &ConsoleCtx,
) {
    let timeout = ctx.limits.hello_timeout;
    let claim =
        match tokio::time::timeout(timeout, framed::read_msg::<ConsoleToRelay>(&mut recv)).await {
            Err(_) => return conn.close(close::PROTOCOL_ERROR.into(), b"no claim in time"),
            Ok(Err(e)) => return close_protocol(&conn, &e),
            Ok(Ok(c)) => c,
        };
    match claim {
        ConsoleToRelay::Claim {
            slot,
            token,
            scopes,
        } => claimed(conn, send, recv, ctx, slot, token, scopes).await,
        ConsoleToRelay::ConnectDevice {
            token,
            device,
            scopes,
            unattended,
        } => connect_device(conn, send, recv, ctx, token, device, scopes, unattended).await,
        ConsoleToRelay::Fleet { token, query } => {
            crate::fleet::serve(conn, send, token, query, &ctx.fleet).await
        }
        ConsoleToRelay::Records { token, query } => {
            record_service::serve(conn, send, token, query, &ctx.queries).await
        }
        ConsoleToRelay::Invitations { token } => {
            crate::invite_list::serve(conn, send, token, &ctx.invitations).await
        }
    }
}

/// A claim that passed the checks.
enum Admitted {
    /// The agent's link, the technician and the guard holding the agent busy.
    Here(AgentLink, tether_proto::msg::TechnicianIdentity, BusyGuard),
    /// Another node of the cluster holds the slot: the console goes there.
    Elsewhere(NodeAddress),
}

/// Runs the checks of [`crate::claim`] and takes the slot and the agent, or finds the node that
/// holds the slot.
fn admit(
    conn: &quinn::Connection,
    ctx: &ConsoleCtx,
    slot: Slot,
    token: &str,
    scopes: tether_proto::ScopeSet,
) -> Result<Admitted, Refusal> {
    let verdict = ctx.verify(token);
    let source = conn.remote_address().ip();
    claim::admit(ctx.audit.gate(), &verdict, || {
        ctx.slots.with(|t| t.admit_source(source, Instant::now()))
    })?;
    let technician = claim::check(verdict, scopes)?;
    let who = format!("{}\u{0}{}", technician.org, technician.name);
    let link = match ctx.slots.claim(slot, &who) {
        Ok(Taken::Here(_, link)) => link,
        Ok(Taken::Elsewhere(node)) => return Ok(Admitted::Elsewhere(node)),
        Err(kind) => return Err(Refusal::plain(kind, Some(&technician.name))),
    };
    claim::check_invite(link.invite.as_deref(), &technician)?;
    let Some(busy) = link.reserve() else {
        return Err(Refusal::plain(RelayErrorKind::Busy, Some(&technician.name)));
    };
    Ok(Admitted::Here(link, technician, busy))
}

async fn claimed(
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    ctx: &ConsoleCtx,
    slot: Slot,
    token: String,
    scopes: tether_proto::ScopeSet,
) {
    let peer = conn.remote_address().to_string();
    let (link, technician, busy) = match admit(&conn, ctx, slot, &token, scopes) {
        Ok(Admitted::Here(link, technician, busy)) => (link, technician, busy),
        Ok(Admitted::Elsewhere(node)) => {
            info!(node = %node.node, "slot held by another node; redirecting");
            return refuse(&conn, send, &RelayToConsole::Redirect(node)).await;
        }
        Err(r) => return refuse(&conn, send, &refused(ctx, slot, &peer, r)).await,
    };
    let claim = Claim {
        slot,
        scopes,
        peer,
        technician,
    };
    accept(conn, send, recv, ctx, claim, link, busy).await;
}

/// Counts and audits a refused claim; the answer for the console.
fn refused(ctx: &ConsoleCtx, slot: Slot, peer: &str, r: Refusal) -> RelayToConsole {
    ctx.metrics.claim_refused(r.kind);
    ctx.audit.record(AuditEvent::ClaimRefused {
        slot: slot.0,
        reason: relay_error_name(r.kind).to_string(),
        technician: r.technician,
        peer: peer.to_string(),
    });
    RelayToConsole::Error(RelayError::new(r.kind, r.text))
}

/// A claim that holds its slot and agent: what the agent is asked to accept.
struct Claim {
    slot: Slot,
    scopes: tether_proto::ScopeSet,
    peer: String,
    technician: tether_proto::msg::TechnicianIdentity,
}

/// Asks the agent to accept `claim`; accepted, the session is spliced until it ends.
async fn accept(
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    ctx: &ConsoleCtx,
    claim: Claim,
    link: AgentLink,
    busy: BusyGuard,
) {
    let Claim {
        slot,
        scopes,
        peer,
        technician,
    } = claim;
    let session = ctx.ids.session();
    let end = ctx.shutdown.child_token();
    let (answer_tx, answer) = oneshot::channel();
    let counters = Arc::new(Counters {
        global: Some(ctx.metrics.clone()),
        ..Counters::default()
    });
    // The session's end-to-end connection: open from the claim until the session ends.
    let route = ctx.forwarder.open(counters.clone());
    let claimed = AgentEvent::Claimed {
        slot,
        technician: technician.clone(),
        session,
        end: end.clone(),
        answer: answer_tx,
        route: route.token(End::Agent),
    };
    let answer = if link.events.send(claimed).await.is_err() {
        Err(claim::message(RelayErrorKind::UnknownSlot).to_string())
    } else {
        match tokio::time::timeout(ACCEPT_TIMEOUT, answer).await {
            Ok(Ok(a)) => a,
            _ => Err("the agent did not answer the claim".to_string()),
        }
    };
    if let Err(reason) = answer {
        drop(busy);
        let r = Refusal {
            kind: RelayErrorKind::Declined,
            text: format!("the user's agent declined: {reason}"),
            technician: Some(technician.name),
        };
        return refuse(&conn, send, &refused(ctx, slot, &peer, r)).await;
    }
    let span = info_span!("session", %session, %slot);
    let started = Started {
        session,
        slot,
        technician,
        scopes,
        peer,
        end,
        busy,
        counters,
        route,
    };
    spliced(conn, send, recv, ctx, link, started)
        .instrument(span)
        .await
}

/// Why a session on an enrolled device did not start, for the console and the audit log.
fn device_refusal(kind: RelayErrorKind, text: String, technician: &str) -> Refusal {
    Refusal {
        kind,
        text,
        technician: Some(technician.to_string()),
    }
}

/// `ConnectDevice`: the claim checks, a device of the technician's own organisation, its wake
/// ([`crate::wake`]), then the slot its session connection opened, claimed as a code's would be.
/// The device decides who gets in; the relay only refuses early what the device would refuse.
#[allow(clippy::too_many_arguments)]
async fn connect_device(
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    ctx: &ConsoleCtx,
    token: String,
    device: String,
    scopes: tether_proto::ScopeSet,
    unattended: bool,
) {
    let peer = conn.remote_address().to_string();
    let no_slot = Slot(0);
    let verdict = ctx.verify(&token);
    let source = conn.remote_address().ip();
    let technician = match claim::admit(ctx.audit.gate(), &verdict, || {
        ctx.slots.with(|t| t.admit_source(source, Instant::now()))
    })
    .and_then(|()| claim::check(verdict, scopes))
    {
        Ok(t) => t,
        Err(r) => return refuse(&conn, send, &refused(ctx, no_slot, &peer, r)).await,
    };
    let org = technician.org.clone();
    let lookup = crate::blocking::blocking(&ctx.fleet.store, move |s| s.device(&org, &device));
    let summary = match lookup.await {
        Ok(record) => record.summary,
        Err(e) => {
            let r = device_refusal(RelayErrorKind::Declined, e.message, &technician.name);
            return refuse(&conn, send, &refused(ctx, no_slot, &peer, r)).await;
        }
    };
    let audit = |slot: Option<Slot>, refused: Option<String>| {
        ctx.audit.record(AuditEvent::EnrolledDeviceSession {
            slot: slot.map(|s| s.0),
            device_id: summary.device_id.clone(),
            hostname: summary.hostname.clone(),
            technician: technician.name.clone(),
            org: technician.org.clone(),
            unattended,
            refused,
        })
    };
    info!(device = %summary.device_id, unattended, "waking an enrolled device");
    let woken = ctx
        .wakes
        .call(&summary.device_id, technician.clone(), unattended)
        .await;
    let who = format!("{}\u{0}{}", technician.org, technician.name);
    let taken =
        woken
            .map_err(|e| e.to_string())
            .and_then(|slot| match ctx.slots.claim(slot, &who) {
                Ok(Taken::Here(_, link)) => match link.reserve() {
                    Some(busy) => Ok((slot, link, busy)),
                    None => Err(claim::message(RelayErrorKind::Busy).to_string()),
                },
                _ => Err("the device's session connection went away".to_string()),
            });
    let (slot, link, busy) = match taken {
        Ok(t) => t,
        Err(text) => {
            audit(None, Some(text.clone()));
            let r = device_refusal(RelayErrorKind::Declined, text, &technician.name);
            return refuse(&conn, send, &refused(ctx, no_slot, &peer, r)).await;
        }
    };
    audit(Some(slot), None);
    let claim = Claim {
        slot,
        scopes,
        peer,
        technician,
    };
    accept(conn, send, recv, ctx, claim, link, busy).await;
}

/// A claim the agent accepted.
struct Started {
    session: SessionId,
    slot: Slot,
    technician: tether_proto::msg::TechnicianIdentity,
    scopes: tether_proto::ScopeSet,
    peer: String,
    end: CancellationToken,
    /// Frees the agent on every way out of the session.
    busy: BusyGuard,
    /// Bytes each way, spliced and forwarded.
    counters: Arc<Counters>,
    /// The session's packet forwarding; dropped at its end.
    route: RouteGuard,
}

async fn spliced(
    conn: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    ctx: &ConsoleCtx,
    link: AgentLink,
    started_claim: Started,
) {
    let Started {
        session,
        slot,
        technician,
        scopes,
        peer,
        end,
        busy,
        counters,
        route,
    } = started_claim;
    ctx.audit.record(AuditEvent::SessionAttempt {
        session,
        slot: slot.0,
        technician: technician.name.clone(),
        org: technician.org.clone(),
        scopes: scopes.to_string(),
        peer,
    });
    if let Some(inv) = &link.invite {
        ctx.audit.record(AuditEvent::Joined {
            session,
            parent: inv.parent,
            technician: technician.name.clone(),
            invited_by: inv.by.clone(),
        });
    }
    info!(technician = %technician.name, org = %technician.org, "session started");
    let reason = link.reason.as_deref().map(str::to_string);
    // A colleague's session is part of the record of the session they joined.
    let parent = link.invite.as_ref().map(|inv| inv.parent);
    let record = record_service::session_started(
        &ctx.records,
        session,
        &technician,
        reason.as_deref(),
        scopes,
        parent,
    )
    .await;
    // The runtime's clock, so the time limit is tested on paused time.
    let started = tokio::time::Instant::now();
    ctx.metrics.session_attempts.fetch_add(1, Ordering::Relaxed);
    let _active = GaugeGuard::new(&ctx.metrics.sessions_active);
    // `end` says the session is over; `cut` resets the spliced streams, a moment later, so that a
    // last sealed frame already on its way (the agent's `Ended`) still arrives.
    let cut = CancellationToken::new();
    let mut splices = JoinSet::new();
    let mut send = send;
    let claimed = RelayToConsole::Claimed {
        technician,
        reason,
        record: record.map(|r| r.get()),
        route: route.token(End::Console),
    };
    let reason = if framed::write_msg(&mut send, &claimed).await.is_err() {
        EndReason::ConsoleLeft
    } else {
        let mut first = Some((send, recv));
        loop {
            // Stream 0 is the claim stream itself; every further console stream gets its own agent stream.
            let console_stream = match first.take() {
                Some(s) => s,
                None => tokio::select! {
                    s = conn.accept_bi() => match s {
                        Ok(s) => s,
                        Err(_) if vanished(&conn) => break EndReason::ConsoleLeft,
                        Err(_) => break EndReason::Ended,
                    },
                    _ = link.conn.closed() => break if vanished(&link.conn) { EndReason::AgentLeft } else { EndReason::Ended },
                    _ = end.cancelled() => break EndReason::Ended,
                    _ = tokio::time::sleep_until(started + ctx.limits.max_session) => break EndReason::TimeLimit,
                    Some(_) = splices.join_next(), if !splices.is_empty() => continue,
                },
            };
            let agent_stream = tokio::select! {
                s = link.conn.open_bi() => match s {
                    Ok(s) => s,
                    Err(_) => break EndReason::AgentLeft,
                },
                _ = end.cancelled() => break EndReason::Ended,
            };
            let (counters, cut, tap) = (counters.clone(), cut.clone(), ctx.tap.clone());
            splices.spawn(async move {
                splice(console_stream, agent_stream, &counters, tap.as_ref(), &cut).await
            });
        }
    };
    // A peer connection that died also ends the session another way (the agent's control task
    // cancels `end`, or the agent reports the cut stream): whichever the select saw first, a
    // connection that broke (rather than closed normally) means that side left.
    let reason = match reason {
        EndReason::Ended if vanished(&link.conn) => EndReason::AgentLeft,
        EndReason::Ended if vanished(&conn) => EndReason::ConsoleLeft,
        other => other,
    };
    let reason = if ctx.shutdown.is_cancelled() {
        EndReason::ShuttingDown
    } else {
        reason
    };
    end.cancel();
    // An agent that timed out sends nothing more: tell the console at once.
    let grace = match link.conn.close_reason() {
        Some(quinn::ConnectionError::TimedOut) => std::time::Duration::ZERO,
        _ => FINAL_FRAME_GRACE,
    };
    let _ = tokio::time::timeout(grace, async {
        while splices.join_next().await.is_some() {}
    })
    .await;
    cut.cancel();
    while splices.join_next().await.is_some() {}
    drop(route);
    match reason {
        EndReason::ShuttingDown => {
            conn.close(close::SHUTTING_DOWN.into(), reason.as_str().as_bytes())
        }
        EndReason::AgentLeft => conn.close(close::PEER_GONE.into(), b"session ended: agent left"),
        _ => conn.close(
            close::SESSION_ENDED.into(),
            format!("session ended: {reason}").as_bytes(),
        ),
    }
    if reason != EndReason::AgentLeft {
        let _ = link.events.try_send(AgentEvent::PeerGone);
    }
    drop(busy);
    let duration_secs = started.elapsed().as_secs_f64();
    ctx.audit.record(AuditEvent::SessionEnded {
        session,
        record,
        duration_secs,
        bytes_to_agent: counters.to_agent.load(Ordering::Relaxed),
        bytes_to_console: counters.to_console.load(Ordering::Relaxed),
        reason,
    });
    record_service::session_ended(&ctx.records, session, reason, duration_secs).await;
    info!(reason = reason.as_str(), duration_secs, "session ended");
}

/// Whether `conn` broke (timed out, reset, closed with an error) rather than closed normally.
fn vanished(conn: &quinn::Connection) -> bool {
    match conn.close_reason() {
        None => false,
        Some(quinn::ConnectionError::ApplicationClosed(c)) => {
            c.error_code != quinn::VarInt::from(close::NORMAL)
        }
        Some(_) => true,
    }
}
