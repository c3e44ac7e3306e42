//! A console's claim and the spliced session that follows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tether_net::framed;
use tether_proto::msg::{ConsoleToRelay, RelayError, RelayErrorKind, RelayToConsole, close};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::agent_link::AgentEvent;
use crate::audit::AuditEvent;
use crate::config::ACCEPT_TIMEOUT;
use crate::technicians::TokenProblem;

/// How long a finished session waits for in-flight frames before cutting the spliced streams.
const FINAL_FRAME_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
use crate::server::{Shared, close_protocol, refuse};
use crate::splice::{Counters, splice};

trait IntoText {
    fn into_text(self) -> String;
}

impl IntoText for RelayErrorKind {
    fn into_text(self) -> String {
        message(self).to_string()
    }
}

fn message(kind: RelayErrorKind) -> &'static str {
    match kind {
        RelayErrorKind::UnknownSlot => {
            "no open session code matches; it may be mistyped, already used, or burned"
        }
        RelayErrorKind::ExpiredSlot => "this session code has expired; ask the user for a new one",
        RelayErrorKind::BadToken => "the technician token is not valid on this relay",
        RelayErrorKind::RateLimited => "too many claims in the last minute; wait and try again",
        RelayErrorKind::Busy => "this agent is already in a session",
        _ => "claim refused",
    }
}

pub(crate) async fn serve(
    conn: quinn::Connection,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    shared: Arc<Shared>,
) {
    let peer = conn.remote_address().to_string();
    let timeout = shared.limits.hello_timeout;
    let claim =
        match tokio::time::timeout(timeout, framed::read_msg::<ConsoleToRelay>(&mut recv)).await {
            Err(_) => return conn.close(close::PROTOCOL_ERROR.into(), b"no claim in time"),
            Ok(Err(e)) => return close_protocol(&conn, &e),
            Ok(Ok(c)) => c,
        };
    let (slot, token, scopes) = match claim {
        ConsoleToRelay::Claim {
            slot,
            token,
            scopes,
        } => (slot, token, scopes),
        ConsoleToRelay::Fleet { token, query } => {
            return crate::fleet::serve(conn, send, token, query, shared).await;
        }
        ConsoleToRelay::Records { token, query } => {
            return crate::records::serve(conn, send, token, query, shared).await;
        }
        ConsoleToRelay::Invitations { token } => {
            return crate::invite::serve_list(conn, send, token, shared).await;
        }
    };
    let refused = |kind: RelayErrorKind, text: String, technician: Option<String>| {
        shared.metrics.claim_refused(kind);
        shared.audit.record(AuditEvent::ClaimRefused {
            slot: slot.0,
            reason: format!("{kind:?}"),
            technician,
            peer: peer.clone(),
        });
        RelayToConsole::Error(RelayError::new(kind, text))
    };
    let plain = |kind: RelayErrorKind| message(kind).to_string();
    // Audit gate and source limit (failed claims only): see `Shared::admit_claim`.
    if let Err((kind, text)) = shared.admit_claim(conn.remote_address().ip(), &token) {
        return refuse(&conn, send, &refused(kind, text, None)).await;
    }
    let technician = match shared.technicians.verify(&token) {
        Ok(Ok(t)) => t,
        Ok(Err(problem)) => {
            let text = match problem {
                TokenProblem::Unknown => plain(RelayErrorKind::BadToken),
                TokenProblem::Revoked => "this technician token has been revoked".into(),
                TokenProblem::Expired => "this technician token has expired".into(),
            };
            return refuse(&conn, send, &refused(RelayErrorKind::BadToken, text, None)).await;
        }
        Err(e) => {
            warn!(error = %e, "technician store unreadable");
            let kind = RelayErrorKind::BadToken;
            return refuse(&conn, send, &refused(kind, plain(kind), None)).await;
        }
    };
    let allowed = technician.role.allowed_scopes();
    if scopes.intersection(allowed) != scopes {
        let text = format!(
            "your role ({}) may only ask for {allowed}, not {scopes}",
            technician.role
        );
        return refuse(
            &conn,
            send,
            &refused(RelayErrorKind::Forbidden, text, Some(technician.name)),
        )
        .await;
    }
    let who = format!("{}\u{0}{}", technician.org, technician.name);
    let link = match shared.table(|t| t.claim(slot, &who, Instant::now())) {
        Ok((_, link)) => link,
        Err(kind) => {
            return refuse(
                &conn,
                send,
                &refused(kind, plain(kind), Some(technician.name)),
            )
            .await;
        }
    };
    if let Some(inv) = &link.invite
        && !inv.invitee.admits(&inv.org, &technician)
    {
        let text = format!(
            "this code is for an invited technician ({} of {}), not for you; the code is now used",
            inv.invitee, inv.org
        );
        return refuse(
            &conn,
            send,
            &refused(RelayErrorKind::Forbidden, text, Some(technician.name)),
        )
        .await;
    }
    if link.busy.swap(true, Ordering::AcqRel) {
        let kind = RelayErrorKind::Busy;
        return refuse(
            &conn,
            send,
            &refused(kind, plain(kind), Some(technician.name)),
        )
        .await;
    }

    let session = shared.next_id();
    let end = shared.shutdown.child_token();
    let (answer_tx, answer) = oneshot::channel();
    let claimed = AgentEvent::Claimed {
        slot,
        technician: technician.clone(),
        session,
        end: end.clone(),
        answer: answer_tx,
    };
    let answer = if link.events.send(claimed).await.is_err() {
        Err(RelayErrorKind::UnknownSlot.into_text())
    } else {
        match tokio::time::timeout(ACCEPT_TIMEOUT, answer).await {
            Ok(Ok(a)) => a,
            _ => Err("the agent did not answer the claim".to_string()),
        }
    };
    if let Err(reason) = answer {
        link.busy.store(false, Ordering::Release);
        let text = format!("the user's agent declined: {reason}");
        return refuse(
            &conn,
            send,
            &refused(RelayErrorKind::Declined, text, Some(technician.name)),
        )
        .await;
    }
    shared.audit.record(AuditEvent::SessionAttempt {
        session,
        slot: slot.0,
        technician: technician.name.clone(),
        org: technician.org.clone(),
        scopes: scopes.to_string(),
        peer,
    });
    if let Some(inv) = &link.invite {
        shared.audit.record(AuditEvent::Joined {
            session,
            parent: inv.parent,
            technician: technician.name.clone(),
            invited_by: inv.by.clone(),
        });
    }
    info!(session, %slot, technician = %technician.name, org = %technician.org, "session started");
    let reason = link.reason.as_deref().map(str::to_string);
    // A colleague's session is part of the record of the session they joined.
    let parent = link.invite.as_ref().map(|inv| inv.parent);
    let record = crate::records::session_started(
        &shared,
        session,
        &technician,
        reason.as_deref(),
        scopes,
        parent,
    )
    .await;
    // The runtime's clock, so the time limit is tested on paused time.
    let started = tokio::time::Instant::now();
    shared
        .metrics
        .session_attempts
        .fetch_add(1, Ordering::Relaxed);
    let _active = crate::metrics::GaugeGuard::new(&shared.metrics.sessions_active);
    let counters = Arc::new(Counters {
        global: Some(shared.metrics.clone()),
        ..Counters::default()
    });
    // `end` says the session is over; `cut` resets the spliced streams, a moment later, so that a
    // last sealed frame already on its way (the agent's `Ended`) still arrives.
    let cut = CancellationToken::new();
    let mut splices = JoinSet::new();
    let mut send = send;
    let claimed = RelayToConsole::Claimed {
        technician,
        reason,
        record,
    };
    let reason = if framed::write_msg(&mut send, &claimed).await.is_err() {
        "console left"
    } else {
        let mut first = Some((send, recv));
        loop {
            // Stream 0 is the claim stream itself; every further console stream gets its own agent stream.
            let console_stream = match first.take() {
                Some(s) => s,
                None => tokio::select! {
                    s = conn.accept_bi() => match s {
                        Ok(s) => s,
                        Err(_) if vanished(&conn) => break "console left",
                        Err(_) => break "ended",
                    },
                    _ = link.conn.closed() => break if vanished(&link.conn) { "agent left" } else { "ended" },
                    _ = end.cancelled() => break "ended",
                    _ = tokio::time::sleep_until(started + shared.limits.max_session) => break "time limit",
                    Some(_) = splices.join_next(), if !splices.is_empty() => continue,
                },
            };
            let agent_stream = tokio::select! {
                s = link.conn.open_bi() => match s {
                    Ok(s) => s,
                    Err(_) => break "agent left",
                },
                _ = end.cancelled() => break "ended",
            };
            let (counters, cut, tap) = (counters.clone(), cut.clone(), shared.tap.clone());
            splices.spawn(async move {
                splice(console_stream, agent_stream, &counters, tap.as_ref(), &cut).await
            });
        }
    };
    // A peer connection that died also ends the session another way (the agent's control task
    // cancels `end`, or the agent reports the cut stream): whichever the select saw first, a
    // connection that broke (rather than closed normally) means that side left.
    let reason = match reason {
        "ended" if vanished(&link.conn) => "agent left",
        "ended" if vanished(&conn) => "console left",
        other => other,
    };
    let reason = if shared.shutdown.is_cancelled() {
        "relay shutting down"
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
    match reason {
        "relay shutting down" => conn.close(close::SHUTTING_DOWN.into(), reason.as_bytes()),
        "agent left" => conn.close(close::PEER_GONE.into(), b"session ended: agent left"),
        _ => conn.close(
            close::SESSION_ENDED.into(),
            format!("session ended: {reason}").as_bytes(),
        ),
    }
    if reason != "agent left" {
        let _ = link.events.try_send(AgentEvent::PeerGone);
    }
    link.busy.store(false, Ordering::Release);
    let duration_secs = started.elapsed().as_secs_f64();
    shared.audit.record(AuditEvent::SessionEnded {
        session,
        record,
        duration_secs,
        bytes_to_agent: counters.to_agent.load(Ordering::Relaxed),
        bytes_to_console: counters.to_console.load(Ordering::Relaxed),
        reason: reason.to_string(),
    });
    crate::records::session_ended(&shared, session, reason, duration_secs).await;
    info!(session, reason, duration_secs, "session ended");
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
