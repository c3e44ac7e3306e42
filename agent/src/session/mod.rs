//! One paired session on the agent: the driver of [`machine::Machine`]. It reads stream 0, the
//! user's commands, the relay's control stream, new request streams, their reports and a guest's
//! news, feeds each to the machine with the time, and carries out what the machine asks for.
//!
//! # Layout
//! - [`consent`]: the consent wait, the user's prompt and the ask for more (pure, time passed in).
//! - [`machine`]: the whole session as a state machine with no I/O.
//! - this file: the one select loop around it, and the end of a session (tell the console, flush,
//!   report to the relay).

pub(crate) mod consent;
pub(crate) mod machine;

use std::time::Duration;

use tether_net::e2e;
use tether_net::framed::{self, FrameError};
use tether_net::sealed::{SealedError, SealedRecv, SealedSend, SealedStream};
use tether_proto::ScopeSet;
use tether_proto::msg::{
    AgentToConsole, AgentToRelay, ConsoleToAgent, EndReason, SessionReport, StreamOpen,
    TechnicianIdentity,
};
use tether_proto::pairing::Side;
use tether_proto::path::Path;
use tether_proto::seal::{SealError, SessionKeys};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::config::ShareConfig;
use crate::link::Control;
use crate::policy::KnownOrgs;
use crate::requests::{StreamEvent, StreamFault, Streams};
use crate::ui::{AgentEvent, UserCommand};
use machine::{GuestEvent, Machine, Output, Setup};

pub(crate) use machine::technician_name;

/// How long the last frames of a session may take to be acknowledged before the connection closes.
const FLUSH: Duration = Duration::from_secs(1);

/// Queued news from a guest session to the session that invited it.
const GUEST_NEWS: usize = 4;

/// What a session gets from the share's supervisor: the user's commands (every session hears
/// them), the events channel, how many paired sessions run, and where to ask for a guest.
pub(crate) struct Seat {
    pub commands: mpsc::Receiver<UserCommand>,
    pub events: mpsc::Sender<AgentEvent>,
    /// Paired sessions of this share running now, as the supervisor counts them.
    pub sessions: watch::Receiver<usize>,
    pub supervisor: mpsc::Sender<ToSupervisor>,
}

/// What a session (or a guest) tells the share's supervisor.
pub(crate) enum ToSupervisor {
    /// Start a colleague's session for an invitation the user agreed to.
    StartGuest(GuestRequest),
    /// The task with this id paired: it counts as a running session from now on.
    Paired(tokio::task::Id),
}

/// A colleague's session to start.
pub(crate) struct GuestRequest {
    /// The relay's invitation ticket.
    pub ticket: u64,
    /// Where the guest's news goes (its code, the invitee's consent); closed when it ends.
    pub news: mpsc::Sender<GuestEvent>,
    /// Cancelled when the inviting technician replaces an invitation that was not used.
    pub stop: CancellationToken,
}

/// One paired session, on the relay connection it came from.
pub(crate) struct Session<'a> {
    pub conn: &'a quinn::Connection,
    /// This end of the session's packet forwarding: the end-to-end connection runs through it.
    pub route: tether_proto::forward::RouteToken,
    pub ctl_send: &'a mut quinn::SendStream,
    pub ctl: &'a mut Control,
    pub seat: Seat,
    pub keys: SessionKeys,
    /// Told when the user grants this session something (a hand-over waits for the invitee's).
    pub on_consent: Option<mpsc::Sender<GuestEvent>>,
    /// Whether this session's technician may invite a colleague (the first technician's may).
    pub may_invite: bool,
    /// An unattended session on an enrolled device: what IT's signed policy allows
    /// ([`machine::Setup::unattended`]).
    pub unattended: Option<ScopeSet>,
    /// A session without a code: the organisation that enrolled this computer.
    pub enrolled_by: Option<String>,
}

/// The guest this session started: its news, and how to stop it.
type GuestLink = (mpsc::Receiver<GuestEvent>, CancellationToken);

impl Session<'_> {
    /// Runs the session to its end; returns why it ended. The user hears of the end from the
    /// supervisor, which knows whether another technician is still in.
    pub async fn run(
        mut self,
        config: &ShareConfig,
        technician: TechnicianIdentity,
        stream0: (quinn::SendStream, quinn::RecvStream),
    ) -> EndReason {
        let (mut tx0, rx0) =
            SealedStream::new(stream0.0, stream0.1, &self.keys, 0, Side::Agent).split();
        // Every request runs on the session's own end-to-end connection, made beside stream 0 (the
        // user is asked meanwhile); if it cannot be made, the session ends.
        let mut e2e: Option<e2e::E2eLink> = None;
        let mut path = None;
        let mut e2e_setup = JoinSet::new();
        e2e_setup.spawn(end_to_end(
            self.conn.clone(),
            self.keys.clone(),
            self.route,
            config.relay.direct,
        ));
        // Stream 0 is read in its own task so every select below stays cancel-safe.
        let mut reader = JoinSet::new();
        let (s0_tx, mut s0) = mpsc::channel(4);
        reader.spawn(read_stream0(rx0, s0_tx));
        let who = technician_name(&technician);
        let mut streams = Streams::new(self.keys.clone(), self.seat.events.clone(), config, who);
        let known = KnownOrgs::new(config.state_dir.as_deref());
        let org = technician.org.clone();
        let mut machine = Machine::new(
            Setup {
                // The organisation that enrolled this computer is no stranger to it.
                first_contact: !known.is_known(&org)
                    && self.enrolled_by.as_deref() != Some(org.as_str()),
                technician,
                consent_timeout: config.consent_timeout,
                relay: config.relay_identity(),
                verification: self.keys.verification_code(),
                may_invite: self.may_invite,
                unattended: self.unattended,
                enrolled_by: self.enrolled_by.clone(),
            },
            now(),
        );
        let (grant_tx, grant) = watch::channel(ScopeSet::EMPTY);
        let mut guest: Option<GuestLink> = None;
        let (reason, tell_console) = 'session: loop {
            while let Some(out) = machine.poll() {
                match out {
                    Output::End {
                        reason,
                        tell_console,
                    } => break 'session (reason, tell_console),
                    Output::Console { msg, required } => {
                        if let Err(e) = tx0.send(&msg).await
                            && required
                        {
                            let reason = match msg {
                                AgentToConsole::ConsentDecision { .. } => EndReason::ConnectionLost,
                                _ => lost_or_broken(&e),
                            };
                            machine.handle_closed(reason);
                        }
                    }
                    Output::User(e) => {
                        let _ = self.seat.events.send(e).await;
                    }
                    Output::Report(r) => self.report(r).await,
                    Output::Invite { invitee, handover } => {
                        let ask = AgentToRelay::Invite { invitee, handover };
                        if framed::write_msg(self.ctl_send, &ask).await.is_err() {
                            machine.handle_closed(EndReason::ConnectionLost);
                        }
                    }
                    Output::StartGuest { ticket } => {
                        let (news, news_rx) = mpsc::channel(GUEST_NEWS);
                        let stop = CancellationToken::new();
                        let ask = GuestRequest {
                            ticket,
                            news,
                            stop: stop.clone(),
                        };
                        // A supervisor that is gone drops the request: the guest "ended" at once.
                        let _ = self
                            .seat
                            .supervisor
                            .send(ToSupervisor::StartGuest(ask))
                            .await;
                        guest = Some((news_rx, stop));
                    }
                    Output::StopGuest => {
                        if let Some((_, stop)) = guest.take() {
                            stop.cancel();
                        }
                    }
                    Output::Grant(g) => {
                        grant_tx.send_replace(g);
                    }
                    Output::Consented => {
                        known.remember(&org);
                        if let Some(tell) = self.on_consent.take() {
                            let _ = tell.send(GuestEvent::Consented).await;
                        }
                    }
                }
            }
            machine.set_sessions(*self.seat.sessions.borrow());
            let deadline = machine.poll_timeout();
            let reads_relay = machine.reads_relay();
            tokio::select! {
                m = s0.recv() => match m {
                    Some(Ok(msg)) => machine.handle_console(msg, now()),
                    Some(Err(e)) => machine.handle_closed(lost_or_broken(&e)),
                    None => machine.handle_closed(EndReason::ConnectionLost),
                },
                c = self.seat.commands.recv() => match c {
                    Some(UserCommand::StopTransfer(id)) => streams.stop_transfer(id),
                    Some(c) => machine.handle_user(c, now()),
                    None => machine.handle_user_gone(),
                },
                m = self.ctl.recv(), if reads_relay => match m {
                    Some(Ok(msg)) => machine.handle_relay(msg, now()),
                    Some(Err(_)) | None => machine.handle_closed(EndReason::ConnectionLost),
                },
                // Before the decision every request is refused: the console cannot know the
                // grant yet.
                made = e2e_setup.join_next(), if !e2e_setup.is_empty() => match made {
                    Some(Ok(Ok(link))) => {
                        let mut rx = link.path();
                        // A path found before this point is news too.
                        if matches!(*rx.borrow(), Path::Direct(_)) {
                            rx.mark_changed();
                        }
                        path = Some(rx);
                        e2e = Some(link);
                    }
                    Some(Ok(Err(reason))) => {
                        warn!(%reason, "no end-to-end connection; ending the session");
                        machine.handle_closed(reason);
                    }
                    _ => machine.handle_closed(EndReason::ConnectionLost),
                },
                s = accept_on(e2e.as_ref()) => match s {
                    Ok((send, recv)) => {
                        if machine.serving() {
                            streams.spawn_watching(grant.clone(), send, recv);
                        } else {
                            streams.spawn(ScopeSet::EMPTY, send, recv);
                        }
                        machine.handle_stream(now());
                    }
                    Err(_) => machine.handle_closed(EndReason::ConnectionLost),
                },
                e = streams.next() => match e {
                    StreamEvent::Report(r) => machine.handle_report(r, now()),
                    StreamEvent::Fault(f) => machine.handle_closed(broke_protocol(&f)),
                },
                news = guest_news(&mut guest) => {
                    if news == GuestEvent::Ended {
                        guest = None;
                    }
                    machine.handle_guest(news);
                }
                direct = path_change(&mut path) => {
                    let _ = self.seat.events.send(AgentEvent::Path { direct }).await;
                }
                () = wait_until(deadline) => machine.handle_timeout(now()),
            }
        };
        streams.tasks.abort_all();
        reader.abort_all();
        e2e_setup.abort_all();
        let reason = self.finish(&mut tx0, reason, tell_console).await;
        if let Some(link) = e2e {
            link.close(0, "session ended");
        }
        reason
    }

    async fn report(&mut self, r: SessionReport) {
        // If the relay is gone the session is ending anyway; the local log (events) still has it.
        let _ = framed::write_msg(self.ctl_send, &AgentToRelay::Report(r)).await;
    }

    /// Ends the session: tells the console (when it can still hear) and the relay.
    async fn finish(
        &mut self,
        tx0: &mut SealedSend,
        reason: EndReason,
        tell_console: bool,
    ) -> EndReason {
        if tell_console {
            let _ = tx0
                .send(&AgentToConsole::Ended {
                    reason: reason.clone(),
                })
                .await;
        }
        tx0.finish_and_flush(FLUSH).await;
        self.report(SessionReport::Ended {
            reason: reason.clone(),
        })
        .await;
        if reason == EndReason::ConnectionLost
            && let Some(closed) = tether_net::closed::reason(self.conn)
        {
            let _ = self
                .seat
                .events
                .send(AgentEvent::RelayLost {
                    reason: closed.reason,
                    retry_in: None,
                })
                .await;
        }
        reason
    }
}

/// The time as the machine sees it (tokio's clock, so paused-time tests drive it too).
fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Resolves at `at`, or never.
async fn wait_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// The next news from this session's guest ([`GuestEvent::Ended`] once it is gone); pending
/// forever without one.
/// Whether the end-to-end connection's path is direct, when it changes; pending without one.
async fn path_change(path: &mut Option<tokio::sync::watch::Receiver<Path>>) -> bool {
    let Some(rx) = path.as_mut() else {
        return std::future::pending().await;
    };
    if rx.changed().await.is_err() {
        *path = None;
        return std::future::pending().await;
    }
    matches!(*rx.borrow_and_update(), Path::Direct(_))
}

async fn guest_news(guest: &mut Option<GuestLink>) -> GuestEvent {
    match guest.as_mut() {
        Some((news, _)) => news.recv().await.unwrap_or(GuestEvent::Ended),
        None => std::future::pending().await,
    }
}

/// The session's end-to-end connection ([`e2e`]): the console opens the transport stream on the
/// relay connection right after pairing; the offers cross on it, then the console connects through
/// the relay's forwarder. A console that never opens it can make no request; one that opens it
/// wrongly, or a connection that cannot be made, ends the session in words for both sides.
async fn end_to_end(
    relay: quinn::Connection,
    keys: SessionKeys,
    route: tether_proto::forward::RouteToken,
    direct: tether_net::path::Direct,
) -> Result<e2e::E2eLink, EndReason> {
    let failed = |e: e2e::E2eError| EndReason::ProtocolError(e.to_string());
    let (send, mut recv) = relay
        .accept_bi()
        .await
        .map_err(|_| EndReason::ConnectionLost)?;
    let open = tokio::time::timeout(e2e::E2E_STEP, framed::read_msg::<StreamOpen>(&mut recv))
        .await
        .map_err(|_| failed(e2e::E2eError::Timeout(e2e::E2E_STEP)))?
        .map_err(|e| EndReason::ProtocolError(format!("the transport stream: {e}")))?;
    if open.stream_id != e2e::E2E_STREAM {
        return Err(EndReason::ProtocolError(format!(
            "stream {} was opened before the end-to-end connection was made",
            open.stream_id
        )));
    }
    e2e::answer((send, recv), &keys, relay.remote_address(), route, direct)
        .await
        .map_err(failed)
}

/// The next stream the console opens on the end-to-end connection; pending until there is one.
async fn accept_on(
    e2e: Option<&e2e::E2eLink>,
) -> Result<(quinn::SendStream, quinn::RecvStream), quinn::ConnectionError> {
    match e2e {
        Some(link) => link.conn.accept_bi().await,
        None => std::future::pending().await,
    }
}

/// Reads stream 0 in its own task, handing each message (or the error that ends it) over.
async fn read_stream0(mut rx0: SealedRecv, to: mpsc::Sender<Result<ConsoleToAgent, SealedError>>) {
    loop {
        let m = rx0.recv::<ConsoleToAgent>().await;
        let stop = m.is_err();
        if to.send(m).await.is_err() || stop {
            return;
        }
    }
}

fn lost_or_broken(e: &SealedError) -> EndReason {
    match e {
        SealedError::Seal(SealError::Tampered) => {
            warn!("a session frame failed authentication; ending the session");
            EndReason::ProtocolError("a session frame failed authentication".into())
        }
        SealedError::Seal(e) => EndReason::ProtocolError(e.to_string()),
        SealedError::Frame(FrameError::Codec(e)) => EndReason::ProtocolError(e.to_string()),
        SealedError::Frame(FrameError::Truncated) => {
            EndReason::ProtocolError("stream 0 ended mid-frame".into())
        }
        SealedError::Frame(_) => EndReason::ConnectionLost,
    }
}

/// The end reason for a request stream that broke protocol.
fn broke_protocol(fault: &StreamFault) -> EndReason {
    warn!(error = %fault, "a request stream broke protocol; ending the session");
    EndReason::ProtocolError(fault.to_string())
}

/// How one session task of a share ended.
pub(crate) struct Finished {
    pub reason: EndReason,
    /// The technician, if the task paired and ran a session (the user hears they left).
    pub technician: Option<String>,
    /// The control stream of the share's own connection, handed back by the first session so
    /// the share flushes it once every session is over.
    pub ctl_send: Option<quinn::SendStream>,
}
