//! One paired session on the agent: consent, then serving requests within the grant.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};
use tether_net::client::RelayConnection;
use tether_net::framed::{self, FrameError};
use tether_net::sealed::{SealedError, SealedRecv, SealedSend, SealedStream};
use tether_proto::chat::ChatText;
use tether_proto::msg::{
    AgentToConsole, AgentToRelay, ConsoleToAgent, EndReason, MoreOutcome, RelayToAgent,
    SessionReport, TechnicianIdentity,
};
use tether_proto::pairing::Side;
use tether_proto::seal::SealError;
use tether_proto::seal::SessionKeys;
use tether_proto::{Scope, ScopeSet};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::config::{STEP_TIMEOUT, ShareConfig};
use crate::guest::GuestHandle;
use crate::link::{Control, ShareError, peer_gone};
use crate::policy::KnownOrgs;
use crate::requests::{StreamEvent, StreamFault, Streams};
use crate::ui::{AgentEvent, UiLink, UserCommand};

/// How long a chatting pair may go quiet before the technician asks for consent.
const CHAT_IDLE: Duration = Duration::from_secs(300);

/// How long the last frames of a session may take to be acknowledged before the connection closes.
const FLUSH: Duration = Duration::from_secs(1);

pub(crate) struct Session<'a> {
    pub relay: &'a RelayConnection,
    pub ctl_send: &'a mut quinn::SendStream,
    pub ctl: &'a mut Control,
    pub ui: &'a mut UiLink,
    pub keys: SessionKeys,
    /// Told when the user grants this session something (a hand-over waits for the invitee's).
    pub on_consent: Option<oneshot::Sender<()>>,
    /// Sessions of this share still running; the last to end tells the user `Ended`, the others
    /// `TechnicianLeft`.
    pub live: Arc<AtomicUsize>,
    /// Whether this session's technician may invite a colleague (the first technician's may).
    pub may_invite: bool,
}

/// An invitation in progress, from the technician's ask to the invitee's session.
#[derive(Default)]
struct Inviting {
    /// Asked the relay about the invitee; `Some(handover)`.
    relay: Option<bool>,
    /// Asking the user: the ticket, hand-over, and when silence means no.
    user: Option<(u64, bool, tokio::time::Instant)>,
    /// The guest session, once the user agreed.
    guest: Option<GuestHandle>,
    /// The invitee's code, or why there is none.
    code: Option<oneshot::Receiver<Result<tether_proto::SessionCode, String>>>,
    /// Fires when the user grants the invitee something.
    consented: Option<oneshot::Receiver<()>>,
    /// The invitee is in (paired and granted something).
    joined: bool,
}

impl Inviting {
    /// An invitation is being decided, or a colleague is in: one at a time.
    fn busy(&self) -> bool {
        self.relay.is_some() || self.user.is_some() || self.joined
    }

    /// Stops a guest whose invitee never came (their code is dropped with it).
    fn drop_unused_guest(&mut self) {
        if let Some(g) = self.guest.take() {
            info!("replacing an invitation that was not used");
            g.task.abort();
        }
        (self.code, self.consented) = (None, None);
    }
}

/// Resolves with `rx`'s value (`None` if its sender went away) and empties the slot; pending
/// forever on an empty slot, so a select branch over it stays quiet.
async fn take_oneshot<T>(rx: &mut Option<oneshot::Receiver<T>>) -> Option<T> {
    let Some(r) = rx.as_mut() else {
        return std::future::pending().await;
    };
    let v = r.await.ok();
    *rx = None;
    v
}

impl Session<'_> {
    async fn report(&mut self, r: SessionReport) {
        // If the relay is gone the session is ending anyway; the local log (events) still has it.
        let _ = framed::write_msg(self.ctl_send, &AgentToRelay::Report(r)).await;
    }

    async fn emit(&self, e: AgentEvent) {
        let _ = self.ui.events.send(e).await;
    }

    pub async fn run(
        mut self,
        config: &ShareConfig,
        technician: TechnicianIdentity,
        stream0: (quinn::SendStream, quinn::RecvStream),
    ) -> Result<EndReason, ShareError> {
        let (mut tx0, rx0) =
            SealedStream::new(stream0.0, stream0.1, &self.keys, 0, Side::Agent).split();
        // Stream 0 is read in its own task so every select below stays cancel-safe.
        let mut reader = JoinSet::new();
        let (s0_tx, mut s0) = mpsc::channel(4);
        reader.spawn(read_stream0(rx0, s0_tx));
        let who = technician_name(&technician);
        let mut streams = Streams::new(
            self.keys.clone(),
            self.ui.events.clone(),
            config,
            who.clone(),
        );
        let granted = match self
            .until_consent_request(&mut s0, &mut tx0, &who, &mut streams)
            .await
        {
            Ok(requested) => {
                self.consent(
                    config,
                    &technician,
                    requested,
                    (&mut s0, &mut tx0),
                    &mut streams,
                )
                .await
            }
            Err(reason) => Err(reason),
        };
        let mut guests = JoinSet::new();
        let mut guest = None;
        let reason = match granted {
            Ok(granted) => {
                self.serve(
                    granted,
                    (&mut s0, &mut tx0),
                    &mut streams,
                    config,
                    &technician,
                    &mut guests,
                    &mut guest,
                )
                .await
            }
            Err(reason) => reason,
        };
        streams.tasks.abort_all();
        reader.abort_all();
        // A denial was already sent as the (empty) decision.
        let tell_console = !matches!(
            reason,
            EndReason::TechnicianEnded | EndReason::ConnectionLost | EndReason::ConsentDenied
        );
        let reason = self.finish(&mut tx0, reason, tell_console, &who).await;
        if reason == EndReason::UserEnded {
            return Ok(reason);
        }
        // A colleague who joined carries on; the user's commands now go to them alone.
        let mut last = reason;
        while !guests.is_empty() {
            tokio::select! {
                c = self.ui.commands.recv() => match (c, &guest) {
                    (Some(c), Some(g)) => { let _ = g.commands.send(c).await; }
                    (None, Some(g)) => { let _ = g.commands.send(UserCommand::EndSession).await; }
                    _ => {}
                },
                Some(done) = guests.join_next() => {
                    if let Ok(r) = done {
                        last = r;
                    }
                }
            }
        }
        Ok(last)
    }

    /// After pairing: chat both ways until the technician asks for scopes. A console that says
    /// nothing for [`STEP_TIMEOUT`] is broken; once the two sides chat, the wait is [`CHAT_IDLE`].
    async fn until_consent_request(
        &mut self,
        s0: &mut Stream0,
        tx0: &mut SealedSend,
        who: &str,
        streams: &mut Streams,
    ) -> Result<ScopeSet, EndReason> {
        let mut wait = ConsentRequestWait::new(Instant::now());
        loop {
            let deadline = tokio::time::sleep_until(wait.until());
            let chatted = tokio::select! {
                m = s0.recv() => match m {
                    Some(Ok(ConsoleToAgent::ConsentRequest { scopes })) => return Ok(scopes),
                    Some(Ok(ConsoleToAgent::AskMore { .. })) => return Err(more_too_early()),
                    Some(Ok(ConsoleToAgent::Invite { .. })) => {
                        invite_failed(tx0, "an invitation needs a session the user has allowed").await;
                        false
                    }
                    Some(Ok(ConsoleToAgent::End)) => return Err(EndReason::TechnicianEnded),
                    Some(Ok(ConsoleToAgent::ProtocolError { reason })) => {
                        return Err(console_saw(&reason));
                    }
                    Some(Ok(ConsoleToAgent::Chat { text })) => {
                        self.chat_in(who, &text).await;
                        true
                    }
                    Some(Err(e)) => return Err(lost_or_broken(&e)),
                    None => return Err(EndReason::ConnectionLost),
                },
                c = self.ui.commands.recv() => match c {
                    Some(UserCommand::EndSession) | None => return Err(EndReason::UserEnded),
                    Some(UserCommand::Chat(text)) => {
                        self.chat_out(tx0, text).await?;
                        true
                    }
                    // Nothing asked, nothing granted yet.
                    Some(
                        UserCommand::Consent(_)
                        | UserCommand::RevokeControl
                        | UserCommand::AnswerInvite(_),
                    ) => false,
                },
                m = self.ctl.recv() => if peer_gone(m) {
                    return Err(EndReason::ConnectionLost);
                } else {
                    false
                },
                // Nothing is granted yet: every request is refused (and a broken one ends the session).
                s = self.relay.conn.accept_bi() => match s {
                    Ok((send, recv)) => {
                        streams.spawn(ScopeSet::EMPTY, send, recv);
                        false
                    }
                    Err(_) => return Err(EndReason::ConnectionLost),
                },
                e = streams.next() => match e {
                    StreamEvent::Report(r) => {
                        self.report(r).await;
                        false
                    }
                    StreamEvent::Fault(f) => return Err(broke_protocol(&f)),
                },
                () = deadline => return Err(wait.expired()),
            };
            wait.event(Instant::now(), chatted);
        }
    }

    /// Asks the user; returns the non-empty grant, or why the session ends.
    async fn consent(
        &mut self,
        config: &ShareConfig,
        technician: &TechnicianIdentity,
        requested: ScopeSet,
        (s0, tx0): (&mut Stream0, &mut SealedSend),
        streams: &mut Streams,
    ) -> Result<ScopeSet, EndReason> {
        // The relay checked the role already; the agent never relies on that.
        if requested.intersection(technician.role.allowed_scopes()) != requested {
            warn!(role = %technician.role, %requested, "refusing scopes beyond the technician's role");
            return Err(EndReason::Forbidden);
        }
        let known = KnownOrgs::new(config.state_dir.as_deref());
        let org = technician.org.clone();
        self.emit(AgentEvent::ConsentRequested {
            technician: technician.clone(),
            scopes: requested,
            timeout_secs: config.consent_timeout.as_secs(),
            first_contact: !known.is_known(&org),
            relay: config.relay_identity(),
            verification: self.keys.verification_code(),
        })
        .await;
        let who = technician_name(technician);
        let prompt = Prompt::new(requested, Instant::now(), config.consent_timeout);
        let timeout = tokio::time::sleep_until(prompt.until());
        tokio::pin!(timeout);
        let answer = loop {
            tokio::select! {
                c = self.ui.commands.recv() => match c {
                    Some(UserCommand::Consent(s)) => break prompt.answer(s),
                    Some(UserCommand::EndSession) => return Err(EndReason::UserEnded),
                    Some(UserCommand::Chat(text)) => self.chat_out(tx0, text).await?,
                    // Nothing granted yet, so nothing to take back; no invitation is open.
                    Some(UserCommand::RevokeControl | UserCommand::AnswerInvite(_)) => {}
                    // The front end is gone: nobody can say yes.
                    None => break ScopeSet::EMPTY,
                },
                // The technician may keep explaining while the user decides.
                m = s0.recv() => match m {
                    Some(Ok(ConsoleToAgent::Chat { text })) => self.chat_in(&who, &text).await,
                    Some(Ok(ConsoleToAgent::Invite { .. })) => {
                        invite_failed(tx0, "an invitation needs a session the user has allowed").await;
                    }
                    Some(Ok(ConsoleToAgent::End)) => return Err(EndReason::TechnicianEnded),
                    Some(Ok(ConsoleToAgent::ProtocolError { reason })) => {
                        return Err(console_saw(&reason));
                    }
                    Some(Ok(ConsoleToAgent::ConsentRequest { .. })) => {
                        return Err(EndReason::ProtocolError("consent requested twice".into()));
                    }
                    Some(Ok(ConsoleToAgent::AskMore { .. })) => return Err(more_too_early()),
                    Some(Err(e)) => return Err(lost_or_broken(&e)),
                    None => return Err(EndReason::ConnectionLost),
                },
                // The console cannot know the grant before the decision: refuse what it asks early.
                s = self.relay.conn.accept_bi() => match s {
                    Ok((send, recv)) => streams.spawn(ScopeSet::EMPTY, send, recv),
                    Err(_) => return Err(EndReason::ConnectionLost),
                },
                e = streams.next() => match e {
                    StreamEvent::Report(r) => self.report(r).await,
                    StreamEvent::Fault(f) => return Err(broke_protocol(&f)),
                },
                // Silence means no, and the console hears that the user did not answer.
                () = &mut timeout => {
                    self.report(SessionReport::Consent { requested, granted: ScopeSet::EMPTY }).await;
                    return Err(EndReason::ConsentTimeout);
                }
            }
        };
        let granted = answer;
        if tx0
            .send(&AgentToConsole::ConsentDecision { granted })
            .await
            .is_err()
        {
            return Err(EndReason::ConnectionLost);
        }
        self.report(SessionReport::Consent { requested, granted })
            .await;
        self.emit(AgentEvent::ConsentDecided { granted }).await;
        if granted.is_empty() {
            return Err(EndReason::ConsentDenied);
        }
        known.remember(&org);
        info!(%granted, "consent given");
        if let Some(tell) = self.on_consent.take() {
            let _ = tell.send(());
        }
        Ok(granted)
    }

    /// Shows the technician's chat line, checked again here; a bad one is dropped and the session
    /// goes on.
    async fn chat_in(&self, who: &str, text: &str) {
        match ChatText::new(text) {
            Ok(text) => {
                self.emit(AgentEvent::Chat {
                    from: Some(who.to_string()),
                    text,
                })
                .await
            }
            Err(e) => warn!(error = %e, "dropped a chat line from the technician"),
        }
    }

    /// Sends the user's chat line to the technician.
    async fn chat_out(&mut self, tx0: &mut SealedSend, text: ChatText) -> Result<(), EndReason> {
        tx0.send(&AgentToConsole::Chat {
            text: text.as_str().to_string(),
        })
        .await
        .map_err(|e| lost_or_broken(&e))?;
        // With two technicians in, both sessions send the line; the first one shows it once.
        if self.may_invite || self.live.load(Ordering::Acquire) <= 1 {
            self.emit(AgentEvent::Chat { from: None, text }).await;
        }
        Ok(())
    }

    /// Serves requests until the session ends; returns why it ended. An invited colleague's
    /// session, if one started, is left in `guests` / `guest` for [`Session::run`] to carry on.
    #[allow(clippy::too_many_arguments)]
    async fn serve(
        &mut self,
        granted: ScopeSet,
        (s0, tx0): (&mut Stream0, &mut SealedSend),
        streams: &mut Streams,
        config: &ShareConfig,
        identity: &TechnicianIdentity,
        guests: &mut JoinSet<EndReason>,
        guest: &mut Option<GuestHandle>,
    ) -> EndReason {
        let technician = technician_name(identity);
        let (grant_tx, grant) = watch::channel(granted);
        let mut inviting = Inviting::default();
        // The technician's ask for more, while the user decides.
        let mut asking: Option<Prompt> = None;
        let reason = loop {
            let answer_by = inviting.user.map(|(_, _, at)| at);
            let more_by = asking.map(|p| p.until());
            tokio::select! {
                s = self.relay.conn.accept_bi() => match s {
                    Ok((send, recv)) => streams.spawn_watching(grant.clone(), send, recv),
                    Err(_) => break EndReason::ConnectionLost,
                },
                m = s0.recv() => match m {
                    Some(Ok(ConsoleToAgent::End)) => break EndReason::TechnicianEnded,
                    Some(Ok(ConsoleToAgent::ProtocolError { reason })) => break console_saw(&reason),
                    Some(Ok(ConsoleToAgent::Chat { text })) => self.chat_in(&technician, &text).await,
                    Some(Ok(ConsoleToAgent::Invite { invitee, handover })) => {
                        if !self.may_invite {
                            invite_failed(tx0, "only the first technician of a session can invite").await;
                        } else if inviting.busy() {
                            invite_failed(tx0, "one invitation at a time").await;
                        } else {
                            inviting.drop_unused_guest();
                            info!(%invitee, handover, "the technician asks to invite a colleague");
                            let ask = AgentToRelay::Invite { invitee, handover };
                            if framed::write_msg(self.ctl_send, &ask).await.is_err() {
                                break EndReason::ConnectionLost;
                            }
                            inviting.relay = Some(handover);
                        }
                    }
                    Some(Ok(ConsoleToAgent::ConsentRequest { .. })) => {
                        break EndReason::ProtocolError("consent requested twice".into())
                    }
                    Some(Ok(ConsoleToAgent::AskMore { scopes })) => {
                        // One question at a time, and one technician's: a colleague's consent or
                        // an invitation may be waiting for the same answer keys.
                        let busy = asking.is_some()
                            || inviting.busy()
                            || inviting.guest.is_some()
                            || self.live.load(Ordering::Acquire) > 1;
                        let now = *grant.borrow();
                        match more_to_ask(identity.role.allowed_scopes(), now, scopes, busy) {
                            Ok(new) => {
                                info!(asked = %new, "the technician asks for more");
                                let prompt = Prompt::new(new, Instant::now(), config.consent_timeout);
                                asking = Some(prompt);
                                self.emit(AgentEvent::MoreRequested {
                                    technician: identity.clone(),
                                    scopes: new,
                                    granted: now,
                                    timeout_secs: config.consent_timeout.as_secs(),
                                    relay: config.relay_identity(),
                                    verification: self.keys.verification_code(),
                                }).await;
                            }
                            Err(outcome) => {
                                if outcome == MoreOutcome::Forbidden {
                                    warn!(role = %identity.role, %scopes, "refusing an ask beyond the technician's role");
                                    for scope in scopes.difference(identity.role.allowed_scopes()).iter() {
                                        self.report(SessionReport::ScopeRefused { scope }).await;
                                    }
                                }
                                let answer = AgentToConsole::MoreDecision { granted: now, outcome };
                                if let Err(e) = tx0.send(&answer).await {
                                    break lost_or_broken(&e);
                                }
                            }
                        }
                    }
                    Some(Err(e)) => break lost_or_broken(&e),
                    None => break EndReason::ConnectionLost,
                },
                c = self.ui.commands.recv() => {
                    // The colleague's session hears the user too: their consent, chat, revoke, end.
                    if let (Some(c), Some(g)) = (&c, inviting.guest.as_ref()) {
                        let _ = g.commands.send(c.clone()).await;
                    }
                    match c {
                        Some(UserCommand::EndSession) | None => break EndReason::UserEnded,
                        Some(UserCommand::Consent(given)) => {
                            if let Some(prompt) = asking.take()
                                && let Err(reason) = self
                                    .more_decided(tx0, &grant_tx, identity, prompt, given, MoreOutcome::Answered)
                                    .await
                            {
                                break reason;
                            }
                        }
                        Some(UserCommand::Chat(text)) => {
                            if let Err(reason) = self.chat_out(tx0, text).await {
                                break reason;
                            }
                        }
                        Some(UserCommand::RevokeControl) => {
                            if grant.borrow().contains(Scope::Control) {
                                grant_tx.send_modify(|g| g.remove(Scope::Control));
                                info!("the user revoked control");
                                self.emit(AgentEvent::Revoked { scope: Scope::Control }).await;
                                // The console shows it at once and stops sending input.
                                let granted = *grant.borrow();
                                if let Err(e) = tx0.send(&AgentToConsole::GrantChanged { granted }).await {
                                    break lost_or_broken(&e);
                                }
                            }
                        }
                        Some(UserCommand::AnswerInvite(yes)) => {
                            if let Some((ticket, handover, _)) = inviting.user.take() {
                                self.emit(AgentEvent::InviteDecided { code_sent: yes }).await;
                                if yes {
                                    let (g, code, consented) = crate::guest::start(
                                        guests, config, ticket, handover,
                                        self.ui.events.clone(), self.live.clone(),
                                    );
                                    (inviting.guest, inviting.code, inviting.consented) =
                                        (Some(g), Some(code), Some(consented));
                                } else {
                                    invite_failed(tx0, "the user said no").await;
                                }
                            }
                        }
                    }
                },
                m = self.ctl.recv() => match m {
                    Some(Ok(RelayToAgent::InviteTicket { ticket, technician: named })) => {
                        if let Some(handover) = inviting.relay.take() {
                            let invitee = named.map(|t| format!("{} ({}) of {}", t.name, t.tier, t.org));
                            let timeout = config.consent_timeout;
                            inviting.user = Some((ticket, handover, tokio::time::Instant::now() + timeout));
                            self.emit(AgentEvent::InviteRequested {
                                by: technician.clone(),
                                invitee: invitee.unwrap_or_else(|| "a colleague of the next tier".into()),
                                handover,
                                timeout_secs: timeout.as_secs(),
                            }).await;
                        }
                    }
                    Some(Ok(RelayToAgent::Error(e))) if inviting.relay.is_some() => {
                        inviting.relay = None;
                        invite_failed(tx0, &e.message).await;
                    }
                    m => if peer_gone(m) {
                        break EndReason::ConnectionLost;
                    },
                },
                // Silence means no; the session goes on.
                () = wait_until(more_by) => {
                    if let Some(prompt) = asking.take()
                        && let Err(reason) = self
                            .more_decided(tx0, &grant_tx, identity, prompt, ScopeSet::EMPTY, MoreOutcome::TimedOut)
                            .await
                    {
                        break reason;
                    }
                }
                () = wait_until(answer_by) => {
                    inviting.user = None;
                    self.emit(AgentEvent::InviteDecided { code_sent: false }).await;
                    invite_failed(tx0, "the user did not answer").await;
                }
                code = take_oneshot(&mut inviting.code) => match code {
                    Some(Ok(code)) => {
                        let _ = tx0.send(&AgentToConsole::InviteCode { code: code.to_string() }).await;
                    }
                    Some(Err(reason)) => invite_failed(tx0, &reason).await,
                    None => invite_failed(tx0, "the invitation could not be set up").await,
                },
                consented = take_oneshot(&mut inviting.consented) => {
                    inviting.joined = consented.is_some();
                    if consented.is_some() && inviting.guest.as_ref().is_some_and(|g| g.handover) {
                        self.report(SessionReport::HandedOver).await;
                        break EndReason::HandedOver;
                    }
                }
                Some(done) = guests.join_next_with_id(), if !guests.is_empty() => {
                    let id = match &done {
                        Ok((id, _)) => *id,
                        Err(e) => e.id(),
                    };
                    if inviting.guest.as_ref().is_some_and(|g| g.task.id() == id) {
                        inviting.guest = None;
                        inviting.joined = false;
                    }
                }
                e = streams.next() => match e {
                    StreamEvent::Report(r) => self.report(r).await,
                    StreamEvent::Fault(f) => break broke_protocol(&f),
                },
            }
        };
        *guest = inviting.guest.take();
        reason
    }

    /// The user answered an ask for more (or it timed out): grows the grant request streams
    /// watch (so what was allowed works at once), tells the console, the relay and the user.
    async fn more_decided(
        &mut self,
        tx0: &mut SealedSend,
        grant_tx: &watch::Sender<ScopeSet>,
        identity: &TechnicianIdentity,
        prompt: Prompt,
        given: ScopeSet,
        outcome: MoreOutcome,
    ) -> Result<(), EndReason> {
        let added = prompt.answer(given);
        grant_tx.send_modify(|g| *g = g.union(added));
        let granted = *grant_tx.borrow();
        info!(%added, %granted, ?outcome, "the ask for more was answered");
        // The relay's record keeps every scope ever granted; the audit line has the ask.
        self.report(SessionReport::Consent {
            requested: prompt.requested,
            granted,
        })
        .await;
        self.emit(AgentEvent::MoreDecided {
            technician: identity.clone(),
            granted,
            added,
        })
        .await;
        tx0.send(&AgentToConsole::MoreDecision { granted, outcome })
            .await
            .map_err(|e| lost_or_broken(&e))
    }

    /// Ends the session: tells the console (when it can still hear), the relay and the user.
    async fn finish(
        &mut self,
        tx0: &mut SealedSend,
        reason: EndReason,
        tell_console: bool,
        who: &str,
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
            && let Some(closed) = tether_net::closed::reason(&self.relay.conn)
        {
            self.emit(AgentEvent::RelayLost {
                reason: closed.reason,
                retry_in: None,
            })
            .await;
        }
        let others = self.live.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
        if others > 0 {
            self.emit(AgentEvent::TechnicianLeft {
                technician: who.to_string(),
                reason: reason.clone(),
            })
            .await;
        } else {
            self.emit(AgentEvent::Ended {
                reason: reason.clone(),
            })
            .await;
        }
        reason
    }
}

/// How long a paired session waits for the consent request, with time passed in so it is tested
/// without sleeping. Right after pairing, a console that says nothing for [`STEP_TIMEOUT`] is
/// broken; once either side has chatted, the pair may go quiet for [`CHAT_IDLE`]. Every event
/// starts the wait again.
#[derive(Debug, Clone, Copy)]
struct ConsentRequestWait {
    limit: Duration,
    until: Instant,
}

impl ConsentRequestWait {
    fn new(paired: Instant) -> Self {
        ConsentRequestWait {
            limit: STEP_TIMEOUT,
            until: paired + STEP_TIMEOUT,
        }
    }

    /// Something happened at `now`; `chat` if it was a chat line, either way.
    fn event(&mut self, now: Instant, chat: bool) {
        if chat {
            self.limit = CHAT_IDLE;
        }
        self.until = now + self.limit;
    }

    /// When the wait ends with no consent request.
    fn until(&self) -> Instant {
        self.until
    }

    /// Why the session ends when the wait runs out: no request within the current limit.
    fn expired(&self) -> EndReason {
        EndReason::NoRequest {
            secs: u32::try_from(self.limit.as_secs()).unwrap_or(u32::MAX),
        }
    }
}

/// The user's consent prompt, with time passed in: silence until the deadline means no, and an
/// answer never grants more than was asked.
#[derive(Debug, Clone, Copy)]
struct Prompt {
    requested: ScopeSet,
    until: Instant,
}

impl Prompt {
    fn new(requested: ScopeSet, shown: Instant, timeout: Duration) -> Self {
        Prompt {
            requested,
            until: shown + timeout,
        }
    }

    /// The grant for the user's answer `given`.
    fn answer(&self, given: ScopeSet) -> ScopeSet {
        given.intersection(self.requested)
    }

    /// When silence becomes "no".
    fn until(&self) -> Instant {
        self.until
    }
}

/// What an ask for `asked` puts to the user, given the role's `allowed` scopes and what is
/// `granted` now: only the scopes not granted yet, or why the user is not asked at all.
fn more_to_ask(
    allowed: ScopeSet,
    granted: ScopeSet,
    asked: ScopeSet,
    busy: bool,
) -> Result<ScopeSet, MoreOutcome> {
    // The role first: a viewer asking for control hears so even while another ask waits.
    if !asked.difference(allowed).is_empty() {
        return Err(MoreOutcome::Forbidden);
    }
    if busy {
        return Err(MoreOutcome::Busy);
    }
    let new = asked.difference(granted);
    if new.is_empty() {
        return Err(MoreOutcome::NothingNew);
    }
    Ok(new)
}

/// An ask for more before the first decision: only the first consent request can ask then.
fn more_too_early() -> EndReason {
    EndReason::ProtocolError("asked for more before the first consent".into())
}

/// Resolves at `at`, or never.
async fn wait_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Tells the inviting technician the invitation did not happen.
async fn invite_failed(tx0: &mut SealedSend, reason: &str) {
    info!(reason, "invitation not made");
    let _ = tx0
        .send(&AgentToConsole::InviteFailed {
            reason: reason.to_string(),
        })
        .await;
}

/// Stream 0's messages, as its reader task hands them over.
type Stream0 = mpsc::Receiver<Result<ConsoleToAgent, SealedError>>;

async fn read_stream0(mut rx0: SealedRecv, to: mpsc::Sender<Result<ConsoleToAgent, SealedError>>) {
    loop {
        let m = rx0.recv::<ConsoleToAgent>().await;
        let stop = m.is_err();
        if to.send(m).await.is_err() || stop {
            return;
        }
    }
}

fn technician_name(t: &TechnicianIdentity) -> String {
    format!("{} of {}", t.name, t.org)
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

/// Longest reason from the console kept in the end reason (it reaches the user and the audit).
const MAX_CONSOLE_REASON_CHARS: usize = 200;

/// The end reason when the console says a frame from this side failed to open: someone on the
/// path tampered with it, so the session ends here as well.
fn console_saw(reason: &str) -> EndReason {
    let reason = tether_proto::records::truncate_text(reason, MAX_CONSOLE_REASON_CHARS, false);
    warn!(%reason, "the console saw a protocol error; ending the session");
    EndReason::ProtocolError(format!("the console saw: {reason}"))
}

/// The end reason for a request stream that broke protocol.
fn broke_protocol(fault: &StreamFault) -> EndReason {
    warn!(error = %fault, "a request stream broke protocol; ending the session");
    EndReason::ProtocolError(fault.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CONSENT_TIMEOUT;

    #[test]
    fn a_silent_console_is_given_up_on_one_step_after_pairing() {
        let t0 = Instant::now();
        let wait = ConsentRequestWait::new(t0);
        assert_eq!(STEP_TIMEOUT, Duration::from_secs(30));
        assert_eq!(wait.until(), t0 + Duration::from_secs(30));
    }

    #[test]
    fn a_chatting_pair_may_go_quiet_for_five_minutes_before_consent() {
        let t0 = Instant::now();
        let mut wait = ConsentRequestWait::new(t0);
        let chat = t0 + Duration::from_secs(20);
        wait.event(chat, true);
        assert_eq!(wait.until(), chat + Duration::from_secs(300));
        // A later event that is not chat keeps the chat limit, counted from that event.
        let other = chat + Duration::from_secs(200);
        wait.event(other, false);
        assert_eq!(wait.until(), other + Duration::from_secs(300));
    }

    #[test]
    fn events_other_than_chat_keep_the_short_wait() {
        let t0 = Instant::now();
        let mut wait = ConsentRequestWait::new(t0);
        let at = t0 + Duration::from_secs(10);
        wait.event(at, false);
        assert_eq!(wait.until(), at + STEP_TIMEOUT);
    }

    #[test]
    fn silence_at_the_consent_prompt_is_no_after_sixty_seconds() {
        let config = ShareConfig::new(tether_net::RelayTarget {
            addr: "127.0.0.1:1".into(),
            trust: tether_net::Trust::Fingerprint("00".into()),
            connect_timeout: Duration::from_secs(1),
        });
        assert_eq!(config.consent_timeout, CONSENT_TIMEOUT);
        let shown = Instant::now();
        let asked: ScopeSet = "inventory,view".parse().unwrap_or(ScopeSet::EMPTY);
        let prompt = Prompt::new(asked, shown, config.consent_timeout);
        assert_eq!(prompt.until(), shown + Duration::from_secs(60));
        // An answer is capped at what was asked.
        assert_eq!(prompt.answer(ScopeSet::all()), asked);
    }

    /// Issue 16 item 6: an ask for more puts only what is not granted yet to the user, checks the
    /// role first, and waits its turn.
    #[test]
    fn an_ask_for_more_asks_only_for_what_is_new() {
        let s = |t: &str| t.parse::<ScopeSet>().unwrap_or(ScopeSet::EMPTY);
        let tech = ScopeSet::all();
        let viewer = s("view");
        assert_eq!(
            more_to_ask(tech, s("view"), s("view,control"), false),
            Ok(s("control"))
        );
        assert_eq!(
            more_to_ask(tech, s("view,control"), s("control"), false),
            Err(MoreOutcome::NothingNew)
        );
        assert_eq!(
            more_to_ask(viewer, s("view"), s("control"), false),
            Err(MoreOutcome::Forbidden)
        );
        assert_eq!(
            more_to_ask(viewer, s("view"), s("control"), true),
            Err(MoreOutcome::Forbidden)
        );
        assert_eq!(
            more_to_ask(tech, s("view"), s("control"), true),
            Err(MoreOutcome::Busy)
        );
        // The answer never grants more than the new scopes.
        let prompt = Prompt::new(s("control"), Instant::now(), CONSENT_TIMEOUT);
        assert_eq!(prompt.answer(ScopeSet::all()), s("control"));
        assert_eq!(prompt.answer(s("inventory")), ScopeSet::EMPTY);
    }
}
