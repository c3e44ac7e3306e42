//! One paired session on the agent as a state machine with no I/O, in the quinn-proto style: the
//! driver (`session/mod.rs`) feeds it what arrives, with the time, and carries out what it asks
//! for.
//!
//! # Flow
//! 1. **Waiting for the request** ([`ConsentRequestWait`]): chat both ways; an invitation is refused;
//!    every request stream is refused (the driver serves them under an empty grant).
//! 2. **Consent**: the role is checked, the user is asked ([`Prompt`]); silence, a closed front end or
//!    an empty answer mean no. The technician may keep chatting.
//! 3. **Serving**: requests are served under the grant ([`Output::Grant`] tells the driver each
//!    change); the user may revoke control; the technician may ask for more (one question at a
//!    time) or invite a colleague (the relay issues a ticket, the user agrees, a guest session
//!    hands the invitee's code back).
//! 4. **End** ([`Output::End`]): the user, the technician, a broken or lost link, a timeout, or a
//!    hand-over once the invitee is in. Nothing is handled after it.
//!
//! Inputs: [`Machine::handle_console`], [`Machine::handle_user`], [`Machine::handle_relay`],
//! [`Machine::handle_guest`], [`Machine::handle_stream`], [`Machine::handle_closed`],
//! [`Machine::handle_timeout`]. Outputs: [`Machine::poll`] and [`Machine::poll_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tether_proto::chat::ChatText;
use tether_proto::msg::{
    AgentToConsole, ConsoleToAgent, EndReason, Invitee, MoreOutcome, RelayToAgent, SessionReport,
    TechnicianIdentity,
};
use tether_proto::{Scope, ScopeSet};
use tracing::{info, warn};

use super::consent::{ConsentRequestWait, Prompt, more_to_ask};
use crate::ui::{AgentEvent, UserCommand};

/// What the machine knows of its session from the start.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    /// Who is on the other side, as the relay named them.
    pub technician: TechnicianIdentity,
    /// How long the user has to answer a question (consent, more, an invitation).
    pub consent_timeout: Duration,
    /// The technician's organisation is new to this machine.
    pub first_contact: bool,
    /// The relay's identity as shown to the user.
    pub relay: String,
    /// The pairing's verification code, shown with each question.
    pub verification: String,
    /// Whether this technician may invite a colleague (the first technician's may).
    pub may_invite: bool,
    /// An unattended session on an enrolled device: the scopes IT's signed policy lets a signed
    /// technician use without asking. The request is granted when it stays within them (the user
    /// is told), and refused whole when it does not; an ask for more is granted or declined the
    /// same way. `None`: the user decides.
    pub unattended: Option<ScopeSet>,
    /// A session without a code on an enrolled computer: the organisation that enrolled it, for
    /// the consent question ([`AgentEvent::ConsentRequested::enrolled_by`]).
    pub enrolled_by: Option<String>,
}

/// What the driver does for the machine.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// Send on stream 0. If a `required` message cannot be sent, the driver calls
    /// [`Machine::handle_closed`]; a best-effort one is not missed.
    Console {
        /// The message.
        msg: AgentToConsole,
        /// Whether the session cannot go on without it.
        required: bool,
    },
    /// Tell the user (and the local log).
    User(AgentEvent),
    /// Report to the relay's audit record (best effort: if the relay is gone the session ends
    /// anyway).
    Report(SessionReport),
    /// Ask the relay for an invitation ticket; failing to send ends the session.
    Invite {
        /// The colleague, as the technician named them.
        invitee: Invitee,
        /// Whether the first technician leaves once the invitee is in.
        handover: bool,
    },
    /// Start a colleague's session for `ticket` (the user agreed); its news comes back through
    /// [`Machine::handle_guest`].
    StartGuest {
        /// The relay's ticket.
        ticket: u64,
    },
    /// Stop the guest session whose invitee never came.
    StopGuest,
    /// The grant request streams are served under changed (it only grows, except by revocation).
    Grant(ScopeSet),
    /// The user granted something: remember the organisation, tell whoever waits for it.
    Consented,
    /// The session is over; nothing more comes after this.
    End {
        /// Why.
        reason: EndReason,
        /// Whether the console can still hear it and should be told.
        tell_console: bool,
    },
}

/// News from a colleague's session this one started.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GuestEvent {
    /// The invitee's code (as text), or why there is none.
    Code(Result<String, String>),
    /// The user granted the invitee something.
    Consented,
    /// The guest session ended (or never started).
    Ended,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Paired, waiting for the consent request.
    Waiting(ConsentRequestWait),
    /// The user is being asked.
    Consent(Prompt),
    /// Serving under [`Machine::grant`].
    Serving,
    /// Over.
    Ended,
}

/// A running guest session, as the inviting session sees it.
#[derive(Debug, Clone, Copy)]
struct Guest {
    handover: bool,
    /// The invitee's code is still to come.
    code_pending: bool,
}

/// An invitation in progress, from the technician's ask to the invitee's session.
#[derive(Debug, Default)]
struct Inviting {
    /// Asked the relay about the invitee; `Some(handover)`.
    relay: Option<bool>,
    /// Asking the user: the ticket, hand-over, and when silence means no.
    user: Option<(u64, bool, Instant)>,
    /// The guest session, once the user agreed.
    guest: Option<Guest>,
    /// The invitee is in (paired and granted something).
    joined: bool,
}

impl Inviting {
    /// An invitation is being decided, or a colleague is in: one at a time.
    fn busy(&self) -> bool {
        self.relay.is_some() || self.user.is_some() || self.joined
    }
}

/// The agent's side of one paired session. See the module doc.
#[derive(Debug)]
pub(crate) struct Machine {
    setup: Setup,
    phase: Phase,
    grant: ScopeSet,
    /// The technician's ask for more, while the user decides.
    asking: Option<Prompt>,
    inviting: Inviting,
    /// Paired sessions of this share still running, this one included.
    sessions: usize,
    out: VecDeque<Output>,
}

impl Machine {
    /// A session paired at `now`.
    pub(crate) fn new(setup: Setup, now: Instant) -> Self {
        Machine {
            setup,
            phase: Phase::Waiting(ConsentRequestWait::new(now)),
            grant: ScopeSet::EMPTY,
            asking: None,
            inviting: Inviting::default(),
            sessions: 1,
            out: VecDeque::new(),
        }
    }

    /// How many paired sessions of this share are running, this one included (a colleague's
    /// session changes who echoes the user's chat and whether an ask for more must wait).
    pub(crate) fn set_sessions(&mut self, n: usize) {
        self.sessions = n;
    }

    /// The next thing to do.
    pub(crate) fn poll(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Machine::handle_timeout`] is due; `None` while nothing waits on time (the relay
    /// enforces the session's time limit).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Waiting(w) => Some(w.until()),
            Phase::Consent(p) => Some(p.until()),
            Phase::Serving => {
                let more = self.asking.map(|p| p.until());
                let invite = self.inviting.user.map(|(_, _, at)| at);
                more.into_iter().chain(invite).min()
            }
            Phase::Ended => None,
        }
    }

    /// Whether the session is over.
    pub(crate) fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// Whether request streams follow the grant: before the decision, every request is refused.
    pub(crate) fn serving(&self) -> bool {
        matches!(self.phase, Phase::Serving)
    }

    /// Whether the relay's control stream is read now. While the user decides it is not (as
    /// before this machine): stream 0 tells how the console went.
    pub(crate) fn reads_relay(&self) -> bool {
        !matches!(self.phase, Phase::Consent(_))
    }

    /// The session cannot go on: a stream or connection broke or went away, or a request stream
    /// broke protocol. What was still to be done is dropped.
    pub(crate) fn handle_closed(&mut self, reason: EndReason) {
        if self.is_ended() {
            return;
        }
        self.out.clear();
        self.end(reason);
    }

    /// A request stream opened, or one reported something (counts as activity while waiting).
    pub(crate) fn handle_stream(&mut self, now: Instant) {
        self.touched(now, false);
    }

    /// A request stream's report for the relay.
    pub(crate) fn handle_report(&mut self, report: SessionReport, now: Instant) {
        if self.is_ended() {
            return;
        }
        self.out.push_back(Output::Report(report));
        self.touched(now, false);
    }

    /// A message from the console on stream 0.
    pub(crate) fn handle_console(&mut self, msg: ConsoleToAgent, now: Instant) {
        match (self.phase, msg) {
            (Phase::Ended, _) => {}
            (_, ConsoleToAgent::End) => self.end(EndReason::TechnicianEnded),
            (_, ConsoleToAgent::ProtocolError { reason }) => self.end(console_saw(&reason)),
            (_, ConsoleToAgent::Chat { text }) => {
                self.chat_in(&text);
                self.touched(now, true);
            }
            (Phase::Waiting(_), ConsoleToAgent::ConsentRequest { scopes }) => {
                self.ask_consent(scopes, now)
            }
            (Phase::Waiting(_) | Phase::Consent(_), ConsoleToAgent::AskMore { .. }) => {
                self.end(more_too_early())
            }
            (Phase::Waiting(_) | Phase::Consent(_), ConsoleToAgent::Invite { .. }) => {
                self.invite_failed("an invitation needs a session the user has allowed");
                self.touched(now, false);
            }
            (Phase::Consent(_) | Phase::Serving, ConsoleToAgent::ConsentRequest { .. }) => {
                self.end(EndReason::ProtocolError("consent requested twice".into()))
            }
            (Phase::Serving, ConsoleToAgent::Invite { invitee, handover }) => {
                self.invite(invitee, handover)
            }
            (Phase::Serving, ConsoleToAgent::AskMore { scopes }) => self.ask_more(scopes, now),
        }
    }

    /// A command from the user.
    pub(crate) fn handle_user(&mut self, cmd: UserCommand, now: Instant) {
        match (self.phase, cmd) {
            (Phase::Ended, _) => {}
            (_, UserCommand::EndSession) => self.end(EndReason::UserEnded),
            (_, UserCommand::Chat(text)) => {
                self.chat_out(text);
                self.touched(now, true);
            }
            (Phase::Consent(prompt), UserCommand::Consent(given)) => {
                self.decide(prompt, prompt.answer(given))
            }
            (Phase::Serving, UserCommand::Consent(given)) => {
                if let Some(prompt) = self.asking.take() {
                    self.more_decided(prompt, given, MoreOutcome::Answered);
                }
            }
            (Phase::Serving, UserCommand::RevokeControl) => self.revoke(Scope::Control),
            (Phase::Serving, UserCommand::Revoke(scope)) => self.revoke(scope),
            // The session's driver stops the transfer itself.
            (_, UserCommand::StopTransfer(_)) => {}
            (Phase::Serving, UserCommand::AnswerInvite(yes)) => self.invite_answered(yes),
            // Nothing asked or granted yet, so nothing to answer or take back.
            (
                Phase::Waiting(_) | Phase::Consent(_),
                UserCommand::Consent(_)
                | UserCommand::RevokeControl
                | UserCommand::Revoke(_)
                | UserCommand::AnswerInvite(_),
            ) => self.touched(now, false),
        }
    }

    /// The front end is gone: nobody can say yes, and nobody watches the session.
    pub(crate) fn handle_user_gone(&mut self) {
        match self.phase {
            Phase::Consent(prompt) => self.decide(prompt, ScopeSet::EMPTY),
            Phase::Ended => {}
            Phase::Waiting(_) | Phase::Serving => self.end(EndReason::UserEnded),
        }
    }

    /// A message from the relay on the control stream.
    pub(crate) fn handle_relay(&mut self, msg: RelayToAgent, now: Instant) {
        match (self.phase, msg) {
            (Phase::Ended, _) => {}
            (_, RelayToAgent::PeerGone) => self.end(EndReason::ConnectionLost),
            (Phase::Serving, RelayToAgent::InviteTicket { ticket, technician }) => {
                if let Some(handover) = self.inviting.relay.take() {
                    let invitee =
                        technician.map(|t| format!("{} ({}) of {}", t.name, t.tier, t.org));
                    let timeout = self.setup.consent_timeout;
                    self.inviting.user = Some((ticket, handover, now + timeout));
                    self.emit(AgentEvent::InviteRequested {
                        by: self.who(),
                        invitee: invitee.unwrap_or_else(|| "a colleague of the next tier".into()),
                        handover,
                        timeout_secs: timeout.as_secs(),
                    });
                }
            }
            (Phase::Serving, RelayToAgent::Error(e)) if self.inviting.relay.is_some() => {
                self.inviting.relay = None;
                self.invite_failed(&e.message);
            }
            _ => self.touched(now, false),
        }
    }

    /// News from the guest session this one started (only the current one's reaches here).
    pub(crate) fn handle_guest(&mut self, event: GuestEvent) {
        if self.is_ended() {
            return;
        }
        match event {
            GuestEvent::Code(code) => {
                if let Some(g) = self.inviting.guest.as_mut() {
                    g.code_pending = false;
                }
                match code {
                    Ok(code) => self.console(AgentToConsole::InviteCode { code }, false),
                    Err(reason) => self.invite_failed(&reason),
                }
            }
            GuestEvent::Consented => {
                self.inviting.joined = true;
                if self.inviting.guest.is_some_and(|g| g.handover) {
                    self.out
                        .push_back(Output::Report(SessionReport::HandedOver));
                    self.end(EndReason::HandedOver);
                }
            }
            GuestEvent::Ended => {
                if self.inviting.guest.take().is_some_and(|g| g.code_pending) {
                    self.invite_failed("the invitation could not be set up");
                }
                self.inviting.joined = false;
            }
        }
    }

    /// Time passed: a question the user did not answer, or a console that never asked.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Waiting(w) if now >= w.until() => self.end(w.expired()),
            // Silence means no, and the console hears that the user did not answer.
            Phase::Consent(p) if now >= p.until() => {
                self.out.push_back(Output::Report(SessionReport::Consent {
                    requested: p.requested,
                    granted: ScopeSet::EMPTY,
                }));
                self.end(EndReason::ConsentTimeout);
            }
            Phase::Serving => {
                // Silence means no; the session goes on.
                if let Some(p) = self.asking.filter(|p| now >= p.until()) {
                    self.asking = None;
                    self.more_decided(p, ScopeSet::EMPTY, MoreOutcome::TimedOut);
                }
                if self.inviting.user.is_some_and(|(_, _, at)| now >= at) {
                    self.inviting.user = None;
                    self.emit(AgentEvent::InviteDecided { code_sent: false });
                    self.invite_failed("the user did not answer");
                }
            }
            Phase::Waiting(_) | Phase::Consent(_) | Phase::Ended => {}
        }
    }

    fn who(&self) -> String {
        technician_name(&self.setup.technician)
    }

    fn emit(&mut self, e: AgentEvent) {
        self.out.push_back(Output::User(e));
    }

    fn console(&mut self, msg: AgentToConsole, required: bool) {
        self.out.push_back(Output::Console { msg, required });
    }

    /// Something happened at `now` while waiting for the request: the wait starts again.
    fn touched(&mut self, now: Instant, chat: bool) {
        if let Phase::Waiting(w) = &mut self.phase {
            w.event(now, chat);
        }
    }

    fn end(&mut self, reason: EndReason) {
        if self.is_ended() {
            return;
        }
        self.phase = Phase::Ended;
        // A denial was already sent as the (empty) decision.
        let tell_console = !matches!(
            reason,
            EndReason::TechnicianEnded | EndReason::ConnectionLost | EndReason::ConsentDenied
        );
        self.out.push_back(Output::End {
            reason,
            tell_console,
        });
    }

    /// Shows the technician's chat line, checked again here; a bad one is dropped and the session
    /// goes on.
    fn chat_in(&mut self, text: &str) {
        match ChatText::new(text) {
            Ok(text) => self.emit(AgentEvent::Chat {
                from: Some(self.who()),
                text,
            }),
            Err(e) => warn!(error = %e, "dropped a chat line from the technician"),
        }
    }

    /// Sends the user's chat line to the technician.
    fn chat_out(&mut self, text: ChatText) {
        self.console(
            AgentToConsole::Chat {
                text: text.as_str().to_string(),
            },
            true,
        );
        // With two technicians in, both sessions send the line; the first one shows it once.
        if self.setup.may_invite || self.sessions <= 1 {
            self.emit(AgentEvent::Chat { from: None, text });
        }
    }

    fn ask_consent(&mut self, requested: ScopeSet, now: Instant) {
        let role = self.setup.technician.role;
        // The relay checked the role already; the agent never relies on that.
        if requested.intersection(role.allowed_scopes()) != requested {
            warn!(%role, %requested, "refusing scopes beyond the technician's role");
            self.end(EndReason::Forbidden);
            return;
        }
        if let Some(allowed) = self.setup.unattended {
            let prompt = Prompt::new(requested, now, self.setup.consent_timeout);
            let beyond = requested.difference(allowed);
            if !beyond.is_empty() {
                warn!(%requested, %allowed, "refusing an unattended session beyond IT's policy");
                // No decision is sent: the console hears the end, and why.
                self.out.push_back(Output::Report(SessionReport::Consent {
                    requested,
                    granted: ScopeSet::EMPTY,
                }));
                self.end(EndReason::NotInPolicy { scopes: beyond });
                return;
            }
            self.emit(AgentEvent::Unattended {
                technician: self.setup.technician.clone(),
                scopes: requested,
            });
            self.decide(prompt, requested);
            return;
        }
        self.emit(AgentEvent::ConsentRequested {
            technician: self.setup.technician.clone(),
            scopes: requested,
            timeout_secs: self.setup.consent_timeout.as_secs(),
            first_contact: self.setup.first_contact,
            relay: self.setup.relay.clone(),
            verification: self.setup.verification.clone(),
            enrolled_by: self.setup.enrolled_by.clone(),
        });
        self.phase = Phase::Consent(Prompt::new(requested, now, self.setup.consent_timeout));
    }

    /// The user's first decision (already capped at what was asked).
    fn decide(&mut self, prompt: Prompt, granted: ScopeSet) {
        // The console must hear the decision, or the session cannot go on.
        self.console(AgentToConsole::ConsentDecision { granted }, true);
        self.out.push_back(Output::Report(SessionReport::Consent {
            requested: prompt.requested,
            granted,
        }));
        // Unattended, nobody decided: the user was told with `Unattended` instead.
        if self.setup.unattended.is_none() {
            self.emit(AgentEvent::ConsentDecided { granted });
        }
        if granted.is_empty() {
            self.end(EndReason::ConsentDenied);
            return;
        }
        info!(%granted, "consent given");
        self.out.push_back(Output::Consented);
        self.grant = granted;
        self.out.push_back(Output::Grant(granted));
        self.phase = Phase::Serving;
    }

    fn revoke(&mut self, scope: Scope) {
        if !self.grant.contains(scope) {
            return;
        }
        self.grant.remove(scope);
        self.out.push_back(Output::Grant(self.grant));
        info!(%scope, "the user revoked a scope");
        self.emit(AgentEvent::Revoked { scope });
        // The console shows it at once and stops sending input.
        let granted = self.grant;
        self.console(AgentToConsole::GrantChanged { granted }, true);
    }

    fn ask_more(&mut self, scopes: ScopeSet, now: Instant) {
        // One question at a time, and one technician's: a colleague's consent or an invitation
        // may be waiting for the same answer keys.
        let busy = self.asking.is_some()
            || self.inviting.busy()
            || self.inviting.guest.is_some()
            || self.sessions > 1;
        let role = self.setup.technician.role;
        let granted = self.grant;
        match more_to_ask(role.allowed_scopes(), granted, scopes, busy) {
            Ok(new) if self.setup.unattended.is_some() => {
                // Nobody is asked: IT's policy answers, and the user is told what changed.
                let allowed = self.setup.unattended.unwrap_or(ScopeSet::EMPTY);
                let prompt = Prompt::new(new, now, self.setup.consent_timeout);
                let given = new.intersection(allowed);
                if !given.is_empty() {
                    self.emit(AgentEvent::Unattended {
                        technician: self.setup.technician.clone(),
                        scopes: granted.union(given),
                    });
                }
                self.more_decided(prompt, given, MoreOutcome::Answered);
            }
            Ok(new) => {
                info!(asked = %new, "the technician asks for more");
                self.asking = Some(Prompt::new(new, now, self.setup.consent_timeout));
                self.emit(AgentEvent::MoreRequested {
                    technician: self.setup.technician.clone(),
                    scopes: new,
                    granted,
                    timeout_secs: self.setup.consent_timeout.as_secs(),
                    relay: self.setup.relay.clone(),
                    verification: self.setup.verification.clone(),
                });
            }
            Err(outcome) => {
                if outcome == MoreOutcome::Forbidden {
                    warn!(%role, %scopes, "refusing an ask beyond the technician's role");
                    for scope in scopes.difference(role.allowed_scopes()).iter() {
                        self.out
                            .push_back(Output::Report(SessionReport::ScopeRefused { scope }));
                    }
                }
                self.console(AgentToConsole::MoreDecision { granted, outcome }, true);
            }
        }
    }

    /// The user answered an ask for more (or it timed out): grows the grant request streams
    /// follow (so what was allowed works at once), tells the relay, the user and the console.
    fn more_decided(&mut self, prompt: Prompt, given: ScopeSet, outcome: MoreOutcome) {
        let added = prompt.answer(given);
        self.grant = self.grant.union(added);
        let granted = self.grant;
        self.out.push_back(Output::Grant(granted));
        info!(%added, %granted, ?outcome, "the ask for more was answered");
        // The relay's record keeps every scope ever granted; the audit line has the ask.
        self.out.push_back(Output::Report(SessionReport::Consent {
            requested: prompt.requested,
            granted,
        }));
        self.emit(AgentEvent::MoreDecided {
            technician: self.setup.technician.clone(),
            granted,
            added,
        });
        self.console(AgentToConsole::MoreDecision { granted, outcome }, true);
    }

    fn invite(&mut self, invitee: Invitee, handover: bool) {
        if !self.setup.may_invite {
            self.invite_failed("only the first technician of a session can invite");
        } else if self.inviting.busy() {
            self.invite_failed("one invitation at a time");
        } else {
            // A guest whose invitee never came is replaced (its code goes with it).
            if self.inviting.guest.take().is_some() {
                info!("replacing an invitation that was not used");
                self.out.push_back(Output::StopGuest);
            }
            info!(%invitee, handover, "the technician asks to invite a colleague");
            self.out.push_back(Output::Invite { invitee, handover });
            self.inviting.relay = Some(handover);
        }
    }

    fn invite_answered(&mut self, yes: bool) {
        let Some((ticket, handover, _)) = self.inviting.user.take() else {
            return;
        };
        self.emit(AgentEvent::InviteDecided { code_sent: yes });
        if yes {
            self.inviting.guest = Some(Guest {
                handover,
                code_pending: true,
            });
            self.out.push_back(Output::StartGuest { ticket });
        } else {
            self.invite_failed("the user said no");
        }
    }

    /// Tells the inviting technician the invitation did not happen.
    fn invite_failed(&mut self, reason: &str) {
        info!(reason, "invitation not made");
        self.console(
            AgentToConsole::InviteFailed {
                reason: reason.to_string(),
            },
            false,
        );
    }
}

/// The technician as the user sees them.
pub(crate) fn technician_name(t: &TechnicianIdentity) -> String {
    format!("{} of {}", t.name, t.org)
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

/// An ask for more before the first decision: only the first consent request can ask then.
fn more_too_early() -> EndReason {
    EndReason::ProtocolError("asked for more before the first consent".into())
}

#[cfg(test)]
mod tests {
    //! The machine in memory on simulated time: each test drives one session the way the driver
    //! would, and reads what it asks for.
    use super::*;
    use tether_proto::msg::{TechnicianRole, Tier};

    const MINUTE: Duration = Duration::from_secs(60);

    fn scopes(s: &str) -> ScopeSet {
        s.parse().unwrap_or(ScopeSet::EMPTY)
    }

    fn setup(role: TechnicianRole, may_invite: bool) -> Setup {
        Setup {
            technician: TechnicianIdentity {
                name: "Ada".into(),
                org: "Acme IT".into(),
                role,
                tier: Tier::L1,
            },
            consent_timeout: MINUTE,
            first_contact: true,
            relay: "relay".into(),
            verification: "12 34".into(),
            may_invite,
            unattended: None,
            enrolled_by: None,
        }
    }

    /// One session and its clock.
    struct Run {
        m: Machine,
        now: Instant,
    }

    impl Run {
        fn new(role: TechnicianRole) -> Self {
            let now = Instant::now();
            Run {
                m: Machine::new(setup(role, true), now),
                now,
            }
        }

        fn tech() -> Self {
            Run::new(TechnicianRole::Technician)
        }

        fn advance(&mut self, d: Duration) {
            self.now += d;
            if self.m.poll_timeout().is_some_and(|t| t <= self.now) {
                self.m.handle_timeout(self.now);
            }
        }

        fn console(&mut self, msg: ConsoleToAgent) -> Vec<Output> {
            self.m.handle_console(msg, self.now);
            self.drain()
        }

        fn user(&mut self, cmd: UserCommand) -> Vec<Output> {
            self.m.handle_user(cmd, self.now);
            self.drain()
        }

        fn drain(&mut self) -> Vec<Output> {
            std::iter::from_fn(|| self.m.poll()).collect()
        }

        /// Asks for `asked` and grants `given`; returns the outputs of the answer.
        fn consented(&mut self, asked: &str, given: &str) -> Vec<Output> {
            self.console(ConsoleToAgent::ConsentRequest {
                scopes: scopes(asked),
            });
            self.user(UserCommand::Consent(scopes(given)))
        }
    }

    fn ended(out: &[Output]) -> Option<(EndReason, bool)> {
        out.iter().find_map(|o| match o {
            Output::End {
                reason,
                tell_console,
            } => Some((reason.clone(), *tell_console)),
            _ => None,
        })
    }

    fn to_console(out: &[Output]) -> Vec<AgentToConsole> {
        out.iter()
            .filter_map(|o| match o {
                Output::Console { msg, .. } => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    fn grants(out: &[Output]) -> Vec<ScopeSet> {
        out.iter()
            .filter_map(|o| match o {
                Output::Grant(g) => Some(*g),
                _ => None,
            })
            .collect()
    }

    fn unattended(policy: &str) -> Run {
        let now = Instant::now();
        let mut setup = setup(TechnicianRole::Technician, false);
        setup.unattended = Some(scopes(policy));
        Run {
            m: Machine::new(setup, now),
            now,
        }
    }

    #[test]
    fn an_unattended_session_is_granted_within_the_policy_without_a_prompt() {
        let mut r = unattended("inventory,diagnostics");
        let out = r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("inventory"),
        });
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::User(AgentEvent::ConsentRequested { .. }))),
            "nobody is asked: {out:?}"
        );
        assert!(out.iter().any(|o| matches!(
            o,
            Output::User(AgentEvent::Unattended { scopes: s, .. }) if *s == scopes("inventory")
        )));
        assert_eq!(grants(&out), vec![scopes("inventory")]);
        assert!(r.m.serving());
        // More within the policy is granted, beyond it declined; the user hears of what grew.
        let out = r.console(ConsoleToAgent::AskMore {
            scopes: scopes("diagnostics,view"),
        });
        assert_eq!(grants(&out), vec![scopes("inventory,diagnostics")]);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::User(AgentEvent::Unattended { scopes: s, .. }) if *s == scopes("inventory,diagnostics")
        )));
        // The user can always end it.
        let out = r.user(UserCommand::EndSession);
        assert_eq!(ended(&out), Some((EndReason::UserEnded, true)));
    }

    #[test]
    fn an_unattended_request_beyond_the_policy_is_refused_whole() {
        let mut r = unattended("inventory");
        let out = r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("inventory,view"),
        });
        assert!(to_console(&out).is_empty(), "the end tells the console why");
        assert!(grants(&out).is_empty(), "nothing is served");
        assert_eq!(
            ended(&out),
            Some((
                EndReason::NotInPolicy {
                    scopes: scopes("view")
                },
                true
            ))
        );
    }

    #[test]
    fn consent_granted_then_serving_under_the_grant() {
        let mut r = Run::tech();
        let asked = r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("inventory,view"),
        });
        assert!(matches!(
            &asked[..],
            [Output::User(AgentEvent::ConsentRequested {
                first_contact: true,
                ..
            })]
        ));
        assert!(!r.m.serving(), "nothing is served before the decision");
        // The answer is capped at what was asked.
        let out = r.user(UserCommand::Consent(ScopeSet::all()));
        let granted = scopes("inventory,view");
        assert_eq!(
            to_console(&out),
            vec![AgentToConsole::ConsentDecision { granted }]
        );
        assert!(out.iter().any(|o| matches!(o, Output::Consented)));
        assert_eq!(grants(&out), vec![granted]);
        assert!(r.m.serving());
        assert_eq!(ended(&out), None);
    }

    #[test]
    fn consent_requested_twice_ends_the_session() {
        let mut r = Run::tech();
        r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("view"),
        });
        let out = r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("view"),
        });
        let twice = EndReason::ProtocolError("consent requested twice".into());
        assert_eq!(ended(&out), Some((twice.clone(), true)));
        // And once granted too.
        let mut r = Run::tech();
        r.consented("view", "view");
        let out = r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("view"),
        });
        assert_eq!(ended(&out), Some((twice, true)));
        assert!(r.m.is_ended());
        // Nothing is handled after the end.
        assert!(r.user(UserCommand::RevokeControl).is_empty());
    }

    #[test]
    fn silence_at_the_prompt_is_no_after_the_timeout() {
        let mut r = Run::tech();
        r.advance(Duration::from_secs(5));
        r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("view"),
        });
        assert_eq!(r.m.poll_timeout(), Some(r.now + MINUTE));
        r.advance(MINUTE - Duration::from_millis(1));
        assert!(r.drain().is_empty(), "no answer yet is not a no yet");
        r.advance(Duration::from_millis(1));
        let out = r.drain();
        assert!(matches!(
            &out[0],
            Output::Report(SessionReport::Consent { granted, .. }) if granted.is_empty()
        ));
        assert_eq!(ended(&out), Some((EndReason::ConsentTimeout, true)));
    }

    #[test]
    fn an_empty_answer_or_a_closed_front_end_is_a_denial() {
        let mut r = Run::tech();
        let out = r.consented("view", "inventory");
        assert_eq!(
            to_console(&out),
            vec![AgentToConsole::ConsentDecision {
                granted: ScopeSet::EMPTY
            }]
        );
        // The denial was the decision: the console is not told again.
        assert_eq!(ended(&out), Some((EndReason::ConsentDenied, false)));
        let mut r = Run::tech();
        r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("view"),
        });
        r.m.handle_user_gone();
        assert_eq!(ended(&r.drain()), Some((EndReason::ConsentDenied, false)));
    }

    #[test]
    fn scopes_beyond_the_role_end_the_session_before_the_user_is_asked() {
        let mut r = Run::new(TechnicianRole::Viewer);
        let out = r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("view,control"),
        });
        assert_eq!(ended(&out), Some((EndReason::Forbidden, true)));
        assert!(!out.iter().any(|o| matches!(o, Output::User(_))));
    }

    #[test]
    fn a_request_for_an_ungranted_scope_is_refused() {
        let mut r = Run::tech();
        // Before the decision every stream is served under the empty grant.
        r.m.handle_stream(r.now);
        assert!(!r.m.serving());
        let out = r.consented("inventory,view", "view");
        assert_eq!(grants(&out), vec![scopes("view")]);
        assert!(!grants(&out)[0].contains(Scope::Inventory));
        // A viewer asking for control mid-session is refused, and the refusal is audited.
        let mut r = Run::new(TechnicianRole::Viewer);
        r.consented("view", "view");
        let out = r.console(ConsoleToAgent::AskMore {
            scopes: scopes("control"),
        });
        assert!(matches!(
            &out[0],
            Output::Report(SessionReport::ScopeRefused {
                scope: Scope::Control
            })
        ));
        assert_eq!(
            to_console(&out),
            vec![AgentToConsole::MoreDecision {
                granted: scopes("view"),
                outcome: MoreOutcome::Forbidden
            }]
        );
        assert!(grants(&out).is_empty());
    }

    #[test]
    fn revoking_control_narrows_the_grant_and_tells_the_console() {
        let mut r = Run::tech();
        r.consented("view,control", "view,control");
        let out = r.user(UserCommand::RevokeControl);
        assert_eq!(grants(&out), vec![scopes("view")]);
        assert!(matches!(
            &out[1],
            Output::User(AgentEvent::Revoked {
                scope: Scope::Control
            })
        ));
        assert!(matches!(
            &out[2],
            Output::Console {
                msg: AgentToConsole::GrantChanged { granted },
                required: true
            } if *granted == scopes("view")
        ));
        // Nothing left to take back.
        assert!(r.user(UserCommand::RevokeControl).is_empty());
    }

    #[test]
    fn revoking_the_clipboard_leaves_control_and_tells_the_console() {
        let mut r = Run::tech();
        r.consented("control,clipboard", "control,clipboard");
        let out = r.user(UserCommand::Revoke(Scope::Clipboard));
        assert_eq!(grants(&out), vec![scopes("control")]);
        assert!(matches!(
            &out[1],
            Output::User(AgentEvent::Revoked {
                scope: Scope::Clipboard
            })
        ));
        assert!(matches!(
            &out[2],
            Output::Console {
                msg: AgentToConsole::GrantChanged { granted },
                required: true
            } if *granted == scopes("control")
        ));
        assert!(r.user(UserCommand::Revoke(Scope::Clipboard)).is_empty());
        // Control is taken back on its own, later.
        assert_eq!(
            grants(&r.user(UserCommand::RevokeControl)),
            vec![ScopeSet::EMPTY]
        );
    }

    #[test]
    fn an_invitation_during_consent_is_refused_and_the_prompt_stays() {
        let mut r = Run::tech();
        r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("view"),
        });
        let out = r.console(ConsoleToAgent::Invite {
            invitee: Invitee::Tier(Tier::L2),
            handover: false,
        });
        assert_eq!(
            to_console(&out),
            vec![AgentToConsole::InviteFailed {
                reason: "an invitation needs a session the user has allowed".into()
            }]
        );
        assert_eq!(ended(&out), None);
        let out = r.user(UserCommand::Consent(scopes("view")));
        assert_eq!(grants(&out), vec![scopes("view")]);
    }

    #[test]
    fn a_silent_console_is_given_up_on_after_one_step() {
        let mut r = Run::tech();
        r.advance(Duration::from_secs(29));
        assert!(r.drain().is_empty());
        r.advance(Duration::from_secs(1));
        let out = r.drain();
        assert_eq!(ended(&out), Some((EndReason::NoRequest { secs: 30 }, true)));
    }

    #[test]
    fn a_chatting_pair_is_ended_after_five_quiet_minutes() {
        let mut r = Run::tech();
        r.advance(Duration::from_secs(20));
        let out = r.console(ConsoleToAgent::Chat {
            text: "hello, I am looking at your ticket".into(),
        });
        assert!(matches!(
            &out[..],
            [Output::User(AgentEvent::Chat { from: Some(_), .. })]
        ));
        r.advance(Duration::from_secs(290));
        assert!(
            !r.m.is_ended(),
            "ended less than five minutes after a chat line"
        );
        // The user's line counts too, and the five minutes start again.
        let Ok(text) = ChatText::new("still here") else {
            panic!("a valid chat line");
        };
        r.user(UserCommand::Chat(text));
        r.advance(Duration::from_secs(299));
        assert!(!r.m.is_ended());
        r.advance(Duration::from_secs(1));
        let out = r.drain();
        assert_eq!(
            ended(&out),
            Some((EndReason::NoRequest { secs: 300 }, true))
        );
    }

    #[test]
    fn the_agent_leaves_the_eight_hour_limit_to_the_relay() {
        let mut r = Run::tech();
        r.consented("inventory", "inventory");
        // A granted session waits on no timer of its own: the relay ends it at eight hours.
        assert_eq!(r.m.poll_timeout(), None);
        r.advance(Duration::from_secs(8 * 3600) - MINUTE);
        r.m.handle_stream(r.now);
        r.m.handle_report(SessionReport::ScopeRefused { scope: Scope::View }, r.now);
        assert!(
            !r.m.is_ended(),
            "a minute before the limit the session works"
        );
        r.advance(MINUTE);
        r.m.handle_relay(RelayToAgent::PeerGone, r.now);
        let out = r.drain();
        assert_eq!(ended(&out), Some((EndReason::ConnectionLost, false)));
    }

    #[test]
    fn an_ask_for_more_granted_grows_the_grant() {
        let mut r = Run::tech();
        r.consented("view", "view");
        let out = r.console(ConsoleToAgent::AskMore {
            scopes: scopes("view,control"),
        });
        assert!(matches!(
            &out[..],
            [Output::User(AgentEvent::MoreRequested { scopes: s, .. })] if *s == scopes("control")
        ));
        // A second ask waits its turn.
        let busy = r.console(ConsoleToAgent::AskMore {
            scopes: scopes("inventory"),
        });
        assert_eq!(
            to_console(&busy),
            vec![AgentToConsole::MoreDecision {
                granted: scopes("view"),
                outcome: MoreOutcome::Busy
            }]
        );
        let out = r.user(UserCommand::Consent(ScopeSet::all()));
        let granted = scopes("view,control");
        assert_eq!(grants(&out), vec![granted]);
        assert_eq!(
            to_console(&out),
            vec![AgentToConsole::MoreDecision {
                granted,
                outcome: MoreOutcome::Answered
            }]
        );
    }

    #[test]
    fn an_ask_for_more_refused_or_unanswered_keeps_the_grant() {
        let mut r = Run::tech();
        r.consented("view", "view");
        r.console(ConsoleToAgent::AskMore {
            scopes: scopes("control"),
        });
        let out = r.user(UserCommand::Consent(ScopeSet::EMPTY));
        assert_eq!(grants(&out), vec![scopes("view")]);
        assert!(matches!(
            to_console(&out)[..],
            [AgentToConsole::MoreDecision {
                outcome: MoreOutcome::Answered,
                ..
            }]
        ));
        // Unanswered: no after the timeout, and the session goes on.
        r.console(ConsoleToAgent::AskMore {
            scopes: scopes("control"),
        });
        r.advance(MINUTE);
        let out = r.drain();
        assert_eq!(
            to_console(&out),
            vec![AgentToConsole::MoreDecision {
                granted: scopes("view"),
                outcome: MoreOutcome::TimedOut
            }]
        );
        assert_eq!(ended(&out), None);
        // With a colleague in, an ask waits.
        r.m.set_sessions(2);
        let out = r.console(ConsoleToAgent::AskMore {
            scopes: scopes("control"),
        });
        assert!(matches!(
            to_console(&out)[..],
            [AgentToConsole::MoreDecision {
                outcome: MoreOutcome::Busy,
                ..
            }]
        ));
    }

    #[test]
    fn an_ask_for_more_before_consent_ends_the_session() {
        let mut r = Run::tech();
        let out = r.console(ConsoleToAgent::AskMore {
            scopes: scopes("view"),
        });
        assert_eq!(
            ended(&out),
            Some((
                EndReason::ProtocolError("asked for more before the first consent".into()),
                true
            ))
        );
    }

    #[test]
    fn a_hand_over_ends_once_the_invitee_is_granted_something() {
        let mut r = Run::tech();
        r.consented("view", "view");
        let out = r.console(ConsoleToAgent::Invite {
            invitee: Invitee::Tier(Tier::L2),
            handover: true,
        });
        assert!(matches!(&out[..], [Output::Invite { handover: true, .. }]));
        // One invitation at a time.
        let again = r.console(ConsoleToAgent::Invite {
            invitee: Invitee::Tier(Tier::L2),
            handover: false,
        });
        assert_eq!(
            to_console(&again),
            vec![AgentToConsole::InviteFailed {
                reason: "one invitation at a time".into()
            }]
        );
        r.m.handle_relay(
            RelayToAgent::InviteTicket {
                ticket: 7,
                technician: None,
            },
            r.now,
        );
        assert!(matches!(
            &r.drain()[..],
            [Output::User(AgentEvent::InviteRequested {
                handover: true,
                ..
            })]
        ));
        let out = r.user(UserCommand::AnswerInvite(true));
        assert!(matches!(&out[1], Output::StartGuest { ticket: 7 }));
        r.m.handle_guest(GuestEvent::Code(Ok("123-456".into())));
        assert_eq!(
            to_console(&r.drain()),
            vec![AgentToConsole::InviteCode {
                code: "123-456".into()
            }]
        );
        r.m.handle_guest(GuestEvent::Consented);
        let out = r.drain();
        assert!(matches!(&out[0], Output::Report(SessionReport::HandedOver)));
        assert_eq!(ended(&out), Some((EndReason::HandedOver, true)));
    }

    #[test]
    fn an_invitation_the_user_does_not_answer_is_not_made() {
        let mut r = Run::tech();
        r.consented("view", "view");
        r.console(ConsoleToAgent::Invite {
            invitee: Invitee::Tier(Tier::L2),
            handover: false,
        });
        r.m.handle_relay(
            RelayToAgent::InviteTicket {
                ticket: 1,
                technician: None,
            },
            r.now,
        );
        r.drain();
        r.advance(MINUTE);
        let out = r.drain();
        assert!(matches!(
            &out[0],
            Output::User(AgentEvent::InviteDecided { code_sent: false })
        ));
        assert_eq!(
            to_console(&out),
            vec![AgentToConsole::InviteFailed {
                reason: "the user did not answer".into()
            }]
        );
        assert_eq!(ended(&out), None);
    }

    #[test]
    fn a_failed_required_send_drops_what_was_left_to_do() {
        let mut r = Run::tech();
        r.console(ConsoleToAgent::ConsentRequest {
            scopes: scopes("view"),
        });
        r.m.handle_user(UserCommand::Consent(scopes("view")), r.now);
        // The driver could not send the decision.
        assert!(matches!(
            r.m.poll(),
            Some(Output::Console { required: true, .. })
        ));
        r.m.handle_closed(EndReason::ConnectionLost);
        let out = r.drain();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(ended(&out), Some((EndReason::ConnectionLost, false)));
    }
}
