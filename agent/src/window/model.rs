//! What the agent window shows and what each click sends, without any drawing.
//!
//! [`Model`] is fed [`AgentEvent`]s and the user's clicks; it answers with the [`Action`] the front
//! end must carry out. Time is passed in, so countdowns are tested without waiting.

use std::time::{Duration, Instant};

use tether_proto::chat::ChatText;
use tether_proto::msg::{EndReason, TechnicianIdentity};
use tether_proto::{Scope, ScopeSet};

use crate::ui::{AgentEvent, UserCommand};

/// Which screen the window shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Nothing running: a "Get help" button.
    Start,
    /// Sharing started; no code yet.
    Connecting,
    /// Read this code to the technician.
    Code {
        /// The code in groups of three digits.
        code: String,
        /// When it stops working.
        expires_at: Instant,
    },
    /// A technician claimed the code; pairing and the consent request follow.
    Joining {
        /// Who claimed it.
        technician: TechnicianIdentity,
    },
    /// The technician asks for access.
    Consent(Consent),
    /// A session runs.
    Session {
        /// Who is connected.
        technician: TechnicianIdentity,
        /// What the user allowed.
        granted: ScopeSet,
        /// The last thing the technician did (served or refused), in words.
        doing: Option<String>,
        /// What they are doing right now.
        activity: Activity,
        /// Other technicians in the same session (a colleague who was invited in), with what the
        /// user allowed each of them.
        others: Vec<(TechnicianIdentity, ScopeSet)>,
    },
    /// Sharing is over.
    Ended {
        /// Why, in words.
        reason: String,
        /// The local session log, once the user asked to see it.
        log: Option<Vec<String>>,
    },
}

/// The consent dialog's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// Who asks.
    pub technician: TechnicianIdentity,
    /// The relay's identity as verified by the agent.
    pub relay: String,
    /// What they ask for.
    pub requested: ScopeSet,
    /// What the user has ticked. Starts empty: the user ticks what they allow, so one click never
    /// hands over everything on the screen that warns about scams.
    pub ticked: ScopeSet,
    /// When silence becomes "no".
    pub deadline: Instant,
    /// This organisation has never been granted access here.
    pub first_contact: bool,
    /// The verification string of the session that asks (a colleague's differs from the first
    /// technician's).
    pub verification: String,
    /// During a session, the technician asks for more: what is allowed already (it stays allowed
    /// whatever the answer). `None` for the first consent.
    pub more: Option<ScopeSet>,
}

impl Consent {
    /// Whether "Allow" is offered: something asked for is ticked.
    pub fn can_allow(&self) -> bool {
        !self.ticked.intersection(self.requested).is_empty()
    }
}

/// One line of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// Who wrote it ("name of org"); `None` for the user.
    pub from: Option<String>,
    /// What they wrote (already made harmless).
    pub text: String,
}

/// The chat panel: open from pairing on, until the sharing ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chat {
    /// Whether lines can be sent (a technician is paired).
    pub open: bool,
    /// The conversation, oldest first.
    pub lines: Vec<ChatLine>,
    /// What the user is typing.
    pub draft: String,
    /// Why the last line was not sent.
    pub note: Option<String>,
    /// Lines sent and not yet echoed back by the session. With two technicians in, each of their
    /// sessions echoes the user's line; only the first echo of each sent line is shown.
    pending: std::collections::VecDeque<String>,
}

/// A technician asks to bring in a colleague; the user answers Allow or Deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitePrompt {
    /// Who asks ("name of org").
    pub by: String,
    /// Whom, as the relay knows them.
    pub invitee: String,
    /// The asking technician leaves once the colleague is in.
    pub handover: bool,
    /// When silence becomes "no".
    pub deadline: Instant,
}

/// What the technician is doing right now, for the session banner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// A screen view is open.
    pub viewing: bool,
    /// The technician is using the mouse and keyboard.
    pub controlling: bool,
    /// Checks running now, in words (several run at once during a health check).
    pub checks: Vec<String>,
}

impl Activity {
    /// One line for the banner, e.g. "Viewing your screen, using your mouse and keyboard".
    pub fn words(&self) -> String {
        let mut parts = Vec::new();
        if self.viewing {
            parts.push("viewing your screen".to_string());
        }
        if self.controlling {
            parts.push("using your mouse and keyboard".to_string());
        }
        match self.checks.as_slice() {
            [] => {}
            [one] => parts.push(format!("running {one}")),
            many => parts.push(format!("running {} checks", many.len())),
        }
        if parts.is_empty() {
            return "Connected; not doing anything right now.".into();
        }
        let mut s = parts.join(", ");
        if let Some(first) = s.get(..1) {
            s = first.to_uppercase() + &s[1..];
        }
        s + "."
    }
}

/// The relay cannot be reached while no session runs: the last code does not work until a new
/// one shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// What went wrong, as the connection reported it.
    pub reason: String,
    /// When the next attempt starts.
    pub retry_at: Instant,
}

/// How long after its own countdown the window answers "no" itself, if the session (whose timer
/// is the one that counts, and started first) has not closed the dialog by then.
pub const CONSENT_GRACE: Duration = Duration::from_secs(3);

/// What the front end must do after a click or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start sharing (connect to the relay and get a code).
    StartShare,
    /// End the current sharing and start a new one (a fresh code).
    NewCode,
    /// Send this to the session.
    Send(UserCommand),
    /// Read the local session log and hand it to [`Model::show_log`].
    ReadLog,
}

/// The window's state machine.
#[derive(Debug, Clone)]
pub struct Model {
    /// The current screen.
    pub screen: Screen,
    /// A one-line notice above the screen (e.g. "your code expired"), cleared by the next code.
    pub notice: Option<String>,
    /// Whether the user has ended the session and we wait for the session side to confirm.
    pub ending: bool,
    /// The verification string of the current pairing (the technician sees the same).
    pub verification: Option<String>,
    /// What the user asked for help with (`--reason`), shown with the code.
    pub reason: Option<String>,
    /// The conversation with the technicians.
    pub chat: Chat,
    /// An invitation waiting for the user's answer.
    pub invite: Option<InvitePrompt>,
    /// The running session, kept while a colleague's consent dialog shows in its place.
    stash: Option<Screen>,
    /// The relay is unreachable and sharing is retrying.
    pub outage: Option<Outage>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            screen: Screen::Start,
            notice: None,
            ending: false,
            verification: None,
            reason: None,
            chat: Chat::default(),
            invite: None,
            stash: None,
            outage: None,
        }
    }
}

/// Formats seconds as `m:ss`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// Plain words for what a scope lets the technician do.
pub fn scope_words(scope: Scope) -> &'static str {
    match scope {
        Scope::View => "See your screen",
        Scope::Control => "Use your mouse and keyboard",
        Scope::Diagnostics => "Run checks on this computer",
        Scope::Inventory => "Read the list of hardware and installed programs",
    }
}

impl Model {
    /// A fresh window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a session (consent given) is running: the window stays on top.
    pub fn in_session(&self) -> bool {
        matches!(self.screen, Screen::Session { .. })
    }

    /// Whether the window stays on top: during a session, including while a colleague's consent
    /// dialog shows in place of its banner.
    pub fn on_top(&self) -> bool {
        self.in_session() || self.stash.is_some()
    }

    /// Applies one event from the session.
    pub fn on_event(&mut self, ev: &AgentEvent, now: Instant) {
        match ev {
            AgentEvent::Connected { .. } => self.outage = None,
            AgentEvent::Code {
                code,
                expires_in_secs,
                reason,
            } => {
                self.verification = None;
                self.outage = None;
                self.reason.clone_from(reason);
                // A new code is a new conversation.
                self.chat = Chat::default();
                self.invite = None;
                self.stash = None;
                self.screen = Screen::Code {
                    code: code.to_string(),
                    expires_at: now + Duration::from_secs(u64::from(*expires_in_secs)),
                };
            }
            AgentEvent::CodeExpired => {
                self.notice = Some("Your code expired unused. Here is a new one.".into())
            }
            AgentEvent::Declined { technician, reason } => {
                self.notice = Some(format!(
                    "Refused a connection from {} of {}: {reason}.",
                    technician.name, technician.org
                ))
            }
            AgentEvent::PairingFailed => {
                self.notice = Some(
                    "Someone entered a wrong code. That code no longer works; here is a new one."
                        .into(),
                )
            }
            // A colleague claiming their code: the session banner stays until their consent dialog.
            AgentEvent::Claimed { technician } if self.in_session() => self.set_doing(format!(
                "{} of {} is connecting. You will be asked what they may do.",
                technician.name, technician.org
            )),
            AgentEvent::Claimed { technician } => {
                self.notice = None;
                self.screen = Screen::Joining {
                    technician: technician.clone(),
                }
            }
            AgentEvent::Paired { verification } => {
                self.verification = Some(verification.clone());
                self.chat.open = true;
            }
            AgentEvent::ConsentRequested {
                technician,
                scopes,
                timeout_secs,
                first_contact,
                relay,
                verification,
            } => {
                if self.in_session() {
                    self.stash = Some(self.screen.clone());
                }
                self.screen = Screen::Consent(Consent {
                    technician: technician.clone(),
                    relay: relay.clone(),
                    requested: *scopes,
                    ticked: ScopeSet::EMPTY,
                    deadline: now + Duration::from_secs(*timeout_secs),
                    first_contact: *first_contact,
                    verification: verification.clone(),
                    more: None,
                })
            }
            // The running session's technician asks for more: the same dialog over the banner,
            // nothing ticked, and the banner comes back with the answer.
            AgentEvent::MoreRequested {
                technician,
                scopes,
                granted,
                timeout_secs,
                relay,
                verification,
            } => {
                if self.in_session() {
                    self.stash = Some(self.screen.clone());
                }
                self.screen = Screen::Consent(Consent {
                    technician: technician.clone(),
                    relay: relay.clone(),
                    requested: *scopes,
                    ticked: ScopeSet::EMPTY,
                    deadline: now + Duration::from_secs(*timeout_secs),
                    first_contact: false,
                    verification: verification.clone(),
                    more: Some(*granted),
                })
            }
            AgentEvent::MoreDecided {
                technician,
                granted: now_granted,
                added,
            } => {
                if let Some(stashed) = self.stash.take() {
                    self.screen = stashed;
                }
                let same =
                    |t: &TechnicianIdentity| t.name == technician.name && t.org == technician.org;
                if let Screen::Session {
                    technician: first,
                    granted,
                    others,
                    ..
                } = &mut self.screen
                {
                    if same(first) {
                        *granted = *now_granted;
                    } else if let Some((_, g)) = others.iter_mut().find(|(t, _)| same(t)) {
                        *g = *now_granted;
                    }
                }
                self.set_doing(if added.is_empty() {
                    format!(
                        "You did not allow more. {} of {} goes on with what you allowed before.",
                        technician.name, technician.org
                    )
                } else {
                    let words: Vec<String> = added
                        .iter()
                        .map(|s| scope_words(s).to_lowercase())
                        .collect();
                    format!("You also allowed: {}.", words.join(", "))
                });
            }
            AgentEvent::ConsentDecided { granted } => {
                let technician = match &self.screen {
                    Screen::Consent(c) => Some(c.technician.clone()),
                    // The user answered; the window shows "connecting" until this confirmation.
                    Screen::Joining { technician } => Some(technician.clone()),
                    _ => None,
                };
                match (technician, self.stash.take()) {
                    // A colleague joins a running session: both are named on the banner.
                    (
                        Some(technician),
                        Some(Screen::Session {
                            technician: first,
                            granted: first_granted,
                            activity,
                            mut others,
                            ..
                        }),
                    ) if !granted.is_empty() => {
                        others.insert(0, (first, first_granted));
                        let doing = Some(format!(
                            "{} of {} joined the session.",
                            technician.name, technician.org
                        ));
                        self.screen = Screen::Session {
                            technician,
                            granted: *granted,
                            doing,
                            activity,
                            others,
                        };
                    }
                    // The colleague was refused: the session goes on as it was.
                    (technician, Some(mut stashed)) => {
                        if let (Some(t), Screen::Session { doing, .. }) = (technician, &mut stashed)
                        {
                            *doing = Some(format!(
                                "You refused {} of {}. The session goes on.",
                                t.name, t.org
                            ));
                        }
                        self.screen = stashed;
                    }
                    (Some(technician), None) if !granted.is_empty() => {
                        self.screen = Screen::Session {
                            technician,
                            granted: *granted,
                            doing: None,
                            activity: Activity::default(),
                            others: Vec::new(),
                        };
                    }
                    // A refusal is followed by `Ended`, which says so.
                    _ => {}
                }
            }
            AgentEvent::Chat { from: None, text } => {
                if self.chat.pending.front().map(String::as_str) == Some(text.as_str()) {
                    self.chat.pending.pop_front();
                    self.chat.lines.push(ChatLine {
                        from: None,
                        text: text.as_str().to_string(),
                    });
                }
            }
            AgentEvent::Chat { from, text } => self.chat.lines.push(ChatLine {
                from: from.clone(),
                text: text.as_str().to_string(),
            }),
            AgentEvent::InviteRequested {
                by,
                invitee,
                handover,
                timeout_secs,
            } => {
                self.invite = Some(InvitePrompt {
                    by: by.clone(),
                    invitee: invitee.clone(),
                    handover: *handover,
                    deadline: now + Duration::from_secs(*timeout_secs),
                })
            }
            AgentEvent::InviteDecided { code_sent } => {
                self.invite = None;
                self.set_doing(if *code_sent {
                    "You allowed the invitation. When the colleague connects, you will be asked \
                     what they may do."
                        .into()
                } else {
                    "No colleague will be invited.".into()
                });
            }
            AgentEvent::TechnicianLeft { technician, reason } => {
                self.technician_left(technician, reason)
            }
            AgentEvent::Running { what } => {
                if let Some(a) = self.activity_mut() {
                    a.checks.push(what.clone());
                }
            }
            AgentEvent::Served { what } => {
                self.check_done(what);
                self.set_doing(format!("Sent {what}."))
            }
            AgentEvent::Refused { what, scope } => {
                self.check_done(what);
                self.set_doing(format!(
                    "Refused {what}: it needs \"{}\", which you did not allow.",
                    scope_words(*scope).to_lowercase()
                ))
            }
            AgentEvent::Viewing {
                technician,
                display,
                active,
            } => {
                if let Some(a) = self.activity_mut() {
                    a.viewing = *active;
                }
                self.set_doing(if *active {
                    format!(
                        "{technician} is viewing your screen (display {display}). \
                         \"End session\" stops it."
                    )
                } else {
                    format!("{technician} stopped viewing your screen.")
                });
            }
            AgentEvent::Controlling { technician, active } => {
                if let Some(a) = self.activity_mut() {
                    a.controlling = *active;
                }
                self.set_doing(if *active {
                    format!(
                        "{technician} is using your mouse and keyboard. \"Stop control\" takes \
                         it back."
                    )
                } else {
                    format!("{technician} stopped using your mouse and keyboard.")
                });
            }
            AgentEvent::Revoked { scope } => {
                if let Screen::Session {
                    granted, activity, ..
                } = &mut self.screen
                {
                    granted.remove(*scope);
                    if *scope == Scope::Control {
                        activity.controlling = false;
                    }
                }
                self.set_doing(format!(
                    "You took back \"{}\". The session goes on without it.",
                    scope_words(*scope).to_lowercase()
                ));
            }
            AgentEvent::Ended { reason } => {
                self.ended(format!("Session ended: {}.", crate::ui::end_words(reason)))
            }
            // Waiting for a claim: the code is useless until the connection is back.
            AgentEvent::RelayLost {
                reason,
                retry_in: Some(wait),
            } => {
                self.outage = Some(Outage {
                    reason: reason.clone(),
                    retry_at: now + *wait,
                });
                if matches!(self.screen, Screen::Code { .. }) {
                    self.screen = Screen::Connecting;
                }
            }
            // A running session ends; `Ended` follows and says so.
            AgentEvent::RelayLost {
                reason,
                retry_in: None,
            } => {
                self.notice = Some(format!("Lost the connection to the relay ({reason})."));
            }
        }
    }

    /// The notice box's text at `now`: the outage (counting down truthfully to the next attempt),
    /// or the last notice.
    pub fn notice_text(&self, now: Instant) -> Option<String> {
        let Some(o) = &self.outage else {
            return self.notice.clone();
        };
        let left = o.retry_at.saturating_duration_since(now);
        let next = if left.is_zero() {
            "Trying to reconnect now...".to_string()
        } else {
            format!("Trying again in {} s.", left.as_secs() + 1)
        };
        Some(format!(
            "No connection to the relay ({}). Your code does not work until a new one shows. {next}",
            o.reason
        ))
    }

    fn activity_mut(&mut self) -> Option<&mut Activity> {
        match &mut self.screen {
            Screen::Session { activity, .. } => Some(activity),
            _ => None,
        }
    }

    fn check_done(&mut self, what: &str) {
        if let Some(a) = self.activity_mut()
            && let Some(i) = a.checks.iter().position(|c| c == what)
        {
            a.checks.remove(i);
        }
    }

    /// One technician left while another stays: the banner names who is still there.
    fn technician_left(&mut self, who: &str, reason: &EndReason) {
        let name = |t: &TechnicianIdentity| format!("{} of {}", t.name, t.org);
        // A colleague who left before the user answered them: back to the running session.
        if !self.in_session()
            && let Some(stashed) = self.stash.take()
        {
            self.screen = stashed;
        }
        if let Screen::Session {
            technician,
            granted,
            others,
            ..
        } = &mut self.screen
        {
            if name(technician) == who {
                if !others.is_empty() {
                    let (t, g) = others.remove(0);
                    *technician = t;
                    *granted = g;
                }
            } else {
                others.retain(|(t, _)| name(t) != who);
            }
            let stays = name(technician);
            self.set_doing(format!(
                "{who} left the session ({reason}). The session goes on with {stays}."
            ));
        }
    }

    /// Whether the banner offers "Stop control": only while `control` is granted (to any
    /// technician in the session).
    pub fn can_stop_control(&self) -> bool {
        matches!(&self.screen, Screen::Session { granted, others, .. }
            if granted.contains(Scope::Control)
                || others.iter().any(|(_, g)| g.contains(Scope::Control)))
    }

    /// "Send" (or Enter) in the chat panel: checks the line here, so an empty or too long one
    /// never leaves and the user is told why.
    pub fn send_chat(&mut self) -> Option<Action> {
        if !self.chat.open {
            self.chat.note = Some("Not sent: nobody is connected to read it yet.".into());
            return None;
        }
        match ChatText::new(&self.chat.draft) {
            Ok(text) => {
                self.chat.draft.clear();
                self.chat.note = None;
                self.chat.pending.push_back(text.as_str().to_string());
                Some(Action::Send(UserCommand::Chat(text)))
            }
            Err(e) => {
                self.chat.note = Some(format!("Not sent: {e}."));
                None
            }
        }
    }

    /// One line about the chat panel's note, for the window's standard output.
    pub fn chat_line(&self) -> Option<String> {
        self.chat.note.as_ref().map(|n| format!("chat: {n}"))
    }

    /// "Allow" or "Deny" in the invitation prompt.
    pub fn answer_invite(&mut self, yes: bool) -> Option<Action> {
        self.invite
            .take()
            .map(|_| Action::Send(UserCommand::AnswerInvite(yes)))
    }

    /// One line saying what the invitation prompt shows, for the window's standard output.
    pub fn invite_line(&self) -> Option<String> {
        self.invite.as_ref().map(|i| {
            format!(
                "invite prompt: {} asks to bring in {} | hand-over: {}",
                i.by,
                i.invitee,
                if i.handover { "yes" } else { "no" }
            )
        })
    }

    /// One line saying what the consent dialog shows (who asks, which verification code), for the
    /// window's standard output; `None` when no dialog shows.
    pub fn consent_line(&self) -> Option<String> {
        let Screen::Consent(c) = &self.screen else {
            return None;
        };
        let more = c
            .more
            .map(|g| format!(" | more; allowed already: {g}"))
            .unwrap_or_default();
        Some(format!(
            "consent dialog: {} of {} | verification: {} | asks: {}{more}",
            c.technician.name, c.technician.org, c.verification, c.requested
        ))
    }

    /// The banner's "Last:" line, for the window's standard output; `None` when there is none.
    pub fn doing_line(&self) -> Option<String> {
        match &self.screen {
            Screen::Session { doing: Some(d), .. } => Some(format!("last: {d}")),
            _ => None,
        }
    }

    /// One line saying what the banner shows now (who, what is allowed, what happens, whether
    /// "Stop control" is offered), for the window's standard output; `None` outside a session.
    pub fn banner_line(&self) -> Option<String> {
        let Screen::Session {
            technician,
            granted,
            activity,
            others,
            ..
        } = &self.screen
        else {
            return None;
        };
        let also: String = others
            .iter()
            .map(|(t, g)| format!(" | also: {} of {} (allowed: {g})", t.name, t.org))
            .collect();
        Some(format!(
            "banner: {} of {}{also} | allowed: {granted} | now: {} | stop control: {}",
            technician.name,
            technician.org,
            activity.words(),
            if self.can_stop_control() {
                "shown"
            } else {
                "hidden"
            }
        ))
    }

    /// "Stop control": takes back `control` without ending the session.
    pub fn stop_control(&mut self) -> Option<Action> {
        self.can_stop_control()
            .then_some(Action::Send(UserCommand::RevokeControl))
    }

    fn set_doing(&mut self, what: String) {
        if let Screen::Session { doing, .. } = &mut self.screen {
            *doing = Some(what);
        }
    }

    /// The session side stopped. `outcome` is `Err(message)` if it failed. Stopping before anyone
    /// connected (the user pressed Stop) goes back to the start; otherwise the session is over, even
    /// if its `Ended` event was lost on the way.
    pub fn on_share_stopped(&mut self, outcome: Result<EndReason, String>) {
        self.ending = false;
        match outcome {
            Err(e) => self.ended(format!("Could not share this computer: {e}.")),
            Ok(_) if matches!(self.screen, Screen::Ended { .. }) => {}
            Ok(_)
                if matches!(
                    self.screen,
                    Screen::Start | Screen::Connecting | Screen::Code { .. }
                ) =>
            {
                self.notice = None;
                self.screen = Screen::Start;
            }
            Ok(reason) => self.ended(format!("Session ended: {}.", crate::ui::end_words(&reason))),
        }
    }

    fn ended(&mut self, reason: String) {
        self.notice = None;
        self.outage = None;
        self.ending = false;
        // The conversation stays readable; nothing more can be sent.
        self.chat.open = false;
        self.invite = None;
        self.stash = None;
        self.screen = Screen::Ended { reason, log: None };
    }

    /// "Get help" (also "Start again" after a session).
    pub fn get_help(&mut self) -> Option<Action> {
        match self.screen {
            Screen::Start | Screen::Ended { .. } => {
                self.notice = None;
                self.chat = Chat::default();
                self.screen = Screen::Connecting;
                Some(Action::StartShare)
            }
            _ => None,
        }
    }

    /// "New code": only while a code is shown.
    pub fn new_code(&mut self) -> Option<Action> {
        match self.screen {
            Screen::Code { .. } => {
                self.notice = None;
                self.screen = Screen::Connecting;
                Some(Action::NewCode)
            }
            _ => None,
        }
    }

    /// Ticks or unticks one requested scope.
    pub fn toggle(&mut self, scope: Scope) {
        if let Screen::Consent(c) = &mut self.screen
            && c.requested.contains(scope)
        {
            if c.ticked.contains(scope) {
                c.ticked.remove(scope);
            } else {
                c.ticked.insert(scope);
            }
        }
    }

    /// "Allow": grants exactly what is ticked. Not offered with nothing ticked (that is "Deny").
    pub fn allow(&mut self) -> Option<Action> {
        match &self.screen {
            Screen::Consent(c) if c.can_allow() => {
                self.answer(|c| c.ticked.intersection(c.requested))
            }
            _ => None,
        }
    }

    /// "Deny": grants nothing.
    pub fn deny(&mut self) -> Option<Action> {
        self.answer(|_| ScopeSet::EMPTY)
    }

    fn answer(&mut self, f: impl FnOnce(&Consent) -> ScopeSet) -> Option<Action> {
        let Screen::Consent(c) = &self.screen else {
            return None;
        };
        let granted = f(c);
        let technician = c.technician.clone();
        // Until the session confirms, show the decision as taken; `Ended` follows a refusal.
        self.screen = Screen::Joining { technician };
        Some(Action::Send(UserCommand::Consent(granted)))
    }

    /// Called every frame: the consent and invitation countdowns refuse at zero.
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        if self.invite.as_ref().is_some_and(|i| now >= i.deadline) {
            return self.answer_invite(false);
        }
        match &self.screen {
            Screen::Consent(c) if now >= c.deadline + CONSENT_GRACE => self.deny(),
            _ => None,
        }
    }

    /// "End session" (also "Stop" while a code is shown or a technician is connecting). Works
    /// without the network: the session side closes locally.
    pub fn end_session(&mut self) -> Option<Action> {
        match self.screen {
            Screen::Code { .. }
            | Screen::Connecting
            | Screen::Joining { .. }
            | Screen::Consent(_)
            | Screen::Session { .. } => {
                self.ending = true;
                Some(Action::Send(UserCommand::EndSession))
            }
            Screen::Start | Screen::Ended { .. } => None,
        }
    }

    /// "Show my session log".
    pub fn want_log(&self) -> Option<Action> {
        matches!(self.screen, Screen::Ended { .. }).then_some(Action::ReadLog)
    }

    /// The log that [`Action::ReadLog`] read.
    pub fn show_log(&mut self, lines: Vec<String>) {
        if let Screen::Ended { log, .. } = &mut self.screen {
            *log = Some(lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::msg::TechnicianRole;

    fn ada() -> TechnicianIdentity {
        TechnicianIdentity {
            name: "Ada".into(),
            org: "Acme".into(),
            role: TechnicianRole::Technician,
            tier: tether_proto::msg::Tier::L1,
        }
    }

    fn asked(m: &mut Model, scopes: ScopeSet, now: Instant) {
        m.on_event(
            &AgentEvent::ConsentRequested {
                technician: ada(),
                scopes,
                timeout_secs: 30,
                first_contact: true,
                relay: "127.0.0.1:1 (certificate ab…)".into(),
                verification: "111 111".into(),
            },
            now,
        );
    }

    /// Issue 17 item 3: a colleague's consent dialog shows the verification code of the colleague's
    /// session, not the first technician's.
    #[test]
    fn each_dialog_shows_its_own_sessions_verification_code() {
        let now = Instant::now();
        let mut m = Model::new();
        m.on_event(
            &AgentEvent::Paired {
                verification: "111 111".into(),
            },
            now,
        );
        asked(&mut m, "view".parse().unwrap(), now);
        assert!(m.consent_line().unwrap().contains("verification: 111 111"));
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view".parse().unwrap(),
            },
            now,
        );
        grace_asks(&mut m, "view".parse().unwrap(), now);
        let line = m.consent_line().unwrap();
        assert!(
            line.contains("Grace of Acme | verification: 222 222"),
            "{line}"
        );
    }

    /// Issue 17 item 7: the user is told in their own words why the session ended.
    #[test]
    fn end_messages_fit_the_user() {
        let now = Instant::now();
        for (reason, words) in [
            (
                EndReason::UserEnded,
                "Session ended: you ended the session.",
            ),
            (
                EndReason::ConsentTimeout,
                "Session ended: you did not answer in time, so nothing was shared.",
            ),
            (
                EndReason::NoRequest { secs: 300 },
                "Session ended: no request within 5 minutes.",
            ),
        ] {
            let mut m = Model::new();
            asked(&mut m, "view".parse().unwrap(), now);
            m.on_event(&AgentEvent::Ended { reason }, now);
            assert!(
                matches!(&m.screen, Screen::Ended { reason, .. } if reason == words),
                "{:?}",
                m.screen
            );
        }
    }

    /// Issue 17 item 9: during an outage the code is not offered, the countdown is the truth at
    /// every moment (and never frozen or negative), and the new code clears the banner.
    #[test]
    fn an_outage_hides_the_code_counts_down_and_clears() {
        let now = Instant::now();
        let mut m = Model::new();
        m.get_help();
        m.on_event(
            &AgentEvent::Code {
                code: "123456789".parse().unwrap(),
                expires_in_secs: 600,
                reason: None,
            },
            now,
        );
        m.on_event(
            &AgentEvent::RelayLost {
                reason: "timed out".into(),
                retry_in: Some(Duration::from_millis(4_600)),
            },
            now,
        );
        assert_eq!(m.screen, Screen::Connecting, "the dead code is not shown");
        let at = |secs: f64| m.notice_text(now + Duration::from_secs_f64(secs)).unwrap();
        assert!(
            at(0.0).contains("does not work until a new one shows"),
            "{}",
            at(0.0)
        );
        assert!(at(0.0).contains("Trying again in 5 s."), "{}", at(0.0));
        assert!(at(2.5).contains("Trying again in 3 s."), "{}", at(2.5));
        assert!(at(30.0).contains("Trying to reconnect now"), "{}", at(30.0));
        m.on_event(
            &AgentEvent::Code {
                code: "987654321".parse().unwrap(),
                expires_in_secs: 600,
                reason: None,
            },
            now + Duration::from_secs(31),
        );
        assert_eq!(m.notice_text(now + Duration::from_secs(31)), None);
        assert!(matches!(m.screen, Screen::Code { .. }));
    }

    /// Issue 17 item 10: the window's banner never gives terminal instructions ("Type r and Enter").
    #[test]
    fn the_banner_speaks_of_buttons_not_keys() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, "view,control".parse().unwrap(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view,control".parse().unwrap(),
            },
            now,
        );
        for ev in [
            AgentEvent::Viewing {
                technician: "Ada of Acme".into(),
                display: 0,
                active: true,
            },
            AgentEvent::Controlling {
                technician: "Ada of Acme".into(),
                active: true,
            },
            AgentEvent::InviteDecided { code_sent: true },
        ] {
            m.on_event(&ev, now);
            let line = m.doing_line().unwrap();
            assert!(
                !line.contains("Type") && !line.contains("Enter"),
                "terminal words in the window: {line}"
            );
        }
        m.on_event(
            &AgentEvent::Controlling {
                technician: "Ada of Acme".into(),
                active: true,
            },
            now,
        );
        assert!(
            m.doing_line()
                .unwrap()
                .contains("\"Stop control\" takes it back")
        );
    }

    /// The window's own countdown answers "no" only after the session's timer (which started
    /// first) had its chance, so a timeout reads as a timeout and not as a refusal.
    #[test]
    fn the_windows_countdown_leaves_the_timeout_to_the_session() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, "view".parse().unwrap(), now);
        assert_eq!(m.tick(now + Duration::from_secs(30)), None);
        assert_eq!(
            m.tick(now + Duration::from_secs(30) + CONSENT_GRACE),
            Some(Action::Send(UserCommand::Consent(ScopeSet::EMPTY)))
        );
    }

    /// Ticks everything asked for, then "Allow".
    fn allow_all(m: &mut Model) {
        if let Screen::Consent(c) = &m.screen {
            for s in c.requested.iter().collect::<Vec<_>>() {
                m.toggle(s);
            }
        }
        assert!(m.allow().is_some());
    }

    #[test]
    fn get_help_then_code_then_new_code() {
        let now = Instant::now();
        let mut m = Model::new();
        assert_eq!(m.new_code(), None, "no code to replace yet");
        assert_eq!(m.get_help(), Some(Action::StartShare));
        assert_eq!(m.get_help(), None, "already sharing");
        let code = tether_proto::SessionCode::new(tether_proto::Slot(123), &mut rand::rngs::OsRng);
        m.on_event(
            &AgentEvent::Code {
                code,
                expires_in_secs: 600,
                reason: None,
            },
            now,
        );
        let Screen::Code {
            code: shown,
            expires_at,
        } = &m.screen
        else {
            panic!("{:?}", m.screen)
        };
        assert_eq!(shown, &code.to_string());
        assert_eq!(*expires_at - now, Duration::from_secs(600));
        assert_eq!(m.new_code(), Some(Action::NewCode));
        assert_eq!(m.screen, Screen::Connecting);
    }

    #[test]
    fn allow_sends_exactly_the_ticked_scopes() {
        let now = Instant::now();
        let mut m = Model::new();
        m.on_event(
            &AgentEvent::Paired {
                verification: "123 456".into(),
            },
            now,
        );
        assert_eq!(m.verification.as_deref(), Some("123 456"));
        let asked_for: ScopeSet = "view,control,inventory".parse().unwrap();
        asked(&mut m, asked_for, now);
        m.toggle(Scope::View);
        m.toggle(Scope::Inventory);
        m.toggle(Scope::Diagnostics); // not asked for: no effect
        let want: ScopeSet = "view,inventory".parse().unwrap();
        assert_eq!(m.allow(), Some(Action::Send(UserCommand::Consent(want))));
        assert_eq!(m.allow(), None, "answered once only");
        m.on_event(&AgentEvent::ConsentDecided { granted: want }, now);
        assert!(m.in_session());
        m.on_event(
            &AgentEvent::Served {
                what: "the inventory summary".into(),
            },
            now,
        );
        let Screen::Session {
            granted,
            doing,
            technician,
            ..
        } = &m.screen
        else {
            panic!()
        };
        assert_eq!(*granted, want);
        assert_eq!(technician.name, "Ada");
        assert_eq!(doing.as_deref(), Some("Sent the inventory summary."));
    }

    /// Issue 17 item 1: nothing is pre-ticked, and "Allow" is not offered with nothing ticked
    /// (ticking then unticking leaves it unoffered); only "Deny" answers then.
    #[test]
    fn nothing_is_pre_ticked_and_allow_needs_a_tick() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, ScopeSet::all(), now);
        let Screen::Consent(c) = &m.screen else {
            panic!("{:?}", m.screen)
        };
        assert_eq!(c.ticked, ScopeSet::EMPTY, "nothing pre-ticked");
        assert!(!c.can_allow());
        assert_eq!(m.allow(), None, "Allow is not offered with nothing ticked");
        assert!(matches!(m.screen, Screen::Consent(_)), "still asking");
        m.toggle(Scope::View);
        m.toggle(Scope::View);
        assert_eq!(m.allow(), None, "ticked and unticked again: still nothing");
        m.toggle(Scope::Inventory);
        assert_eq!(
            m.allow(),
            Some(Action::Send(UserCommand::Consent(
                [Scope::Inventory].into_iter().collect()
            )))
        );
    }

    #[test]
    fn deny_and_countdown_refuse() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, ScopeSet::all(), now);
        assert_eq!(
            m.deny(),
            Some(Action::Send(UserCommand::Consent(ScopeSet::EMPTY)))
        );

        let mut m = Model::new();
        asked(&mut m, ScopeSet::all(), now);
        assert_eq!(m.tick(now + Duration::from_secs(29)), None);
        assert_eq!(
            m.tick(now + Duration::from_secs(30) + CONSENT_GRACE),
            Some(Action::Send(UserCommand::Consent(ScopeSet::EMPTY)))
        );
        assert_eq!(m.tick(now + Duration::from_secs(31)), None, "sent once");
    }

    #[test]
    fn end_then_log() {
        let now = Instant::now();
        let mut m = Model::new();
        assert_eq!(m.end_session(), None);
        asked(&mut m, ScopeSet::all(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: ScopeSet::all(),
            },
            now,
        );
        assert_eq!(m.end_session(), Some(Action::Send(UserCommand::EndSession)));
        assert!(m.ending);
        m.on_event(
            &AgentEvent::Ended {
                reason: EndReason::UserEnded,
            },
            now,
        );
        assert!(!m.in_session());
        assert_eq!(m.want_log(), Some(Action::ReadLog));
        m.show_log(vec!["line".into()]);
        let Screen::Ended { reason, log } = &m.screen else {
            panic!()
        };
        assert_eq!(reason, "Session ended: you ended the session.");
        assert_eq!(log.as_deref(), Some(&["line".to_string()][..]));
        // The share task finishing afterwards keeps the ended screen.
        m.on_share_stopped(Ok(EndReason::UserEnded));
        assert!(matches!(m.screen, Screen::Ended { .. }));
        assert_eq!(m.get_help(), Some(Action::StartShare));
    }

    #[test]
    fn banner_says_what_happens_and_stop_control_revokes() {
        let now = Instant::now();
        let mut m = Model::new();
        assert_eq!(m.stop_control(), None, "no session");
        asked(&mut m, "view,control,diagnostics".parse().unwrap(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view,control,diagnostics".parse().unwrap(),
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(line.contains("not doing anything"), "{line}");
        assert!(line.ends_with("stop control: shown"), "{line}");
        for ev in [
            AgentEvent::Viewing {
                technician: "Ada of Acme".into(),
                display: 0,
                active: true,
            },
            AgentEvent::Controlling {
                technician: "Ada of Acme".into(),
                active: true,
            },
            AgentEvent::Running {
                what: "the uptime check".into(),
            },
        ] {
            m.on_event(&ev, now);
        }
        let line = m.banner_line().unwrap();
        assert!(
            line.contains(
                "now: Viewing your screen, using your mouse and keyboard, running the uptime check."
            ),
            "{line}"
        );
        m.on_event(
            &AgentEvent::Served {
                what: "the uptime check".into(),
            },
            now,
        );
        assert_eq!(
            m.stop_control(),
            Some(Action::Send(UserCommand::RevokeControl))
        );
        m.on_event(
            &AgentEvent::Revoked {
                scope: Scope::Control,
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(
            line.contains("allowed: view,diagnostics | now: Viewing your screen. |"),
            "{line}"
        );
        assert!(line.ends_with("stop control: hidden"), "{line}");
        assert_eq!(m.stop_control(), None, "control is no longer granted");
    }

    #[test]
    fn failure_and_early_stop() {
        let mut m = Model::new();
        m.get_help();
        m.on_share_stopped(Err("lost the connection to the relay".into()));
        assert!(
            matches!(&m.screen, Screen::Ended { reason, .. } if reason.contains("lost the connection"))
        );
        let mut m = Model::new();
        m.get_help();
        m.on_share_stopped(Ok(EndReason::UserEnded));
        assert_eq!(m.screen, Screen::Start);
        // A session whose `Ended` event was lost still ends on screen.
        let mut m = Model::new();
        asked(&mut m, ScopeSet::all(), Instant::now());
        m.on_share_stopped(Ok(EndReason::TechnicianEnded));
        assert!(
            matches!(&m.screen, Screen::Ended { reason, .. } if reason.contains("technician ended"))
        );
    }

    /// Issue 16 item 6: during a `view` session the technician asks for `control`: the dialog
    /// shows only that, nothing ticked; Allow grants exactly what is ticked, and the banner comes
    /// back with the new grant. A second ask the user refuses leaves the grant as it was.
    #[test]
    fn an_ask_for_more_shows_the_dialog_over_the_banner_and_returns_to_it() {
        let now = Instant::now();
        let mut m = Model::new();
        let view: ScopeSet = "view".parse().unwrap();
        asked(&mut m, view, now);
        allow_all(&mut m);
        m.on_event(&AgentEvent::ConsentDecided { granted: view }, now);
        assert!(m.in_session() && !m.can_stop_control());
        let more = |scopes: &str| AgentEvent::MoreRequested {
            technician: ada(),
            scopes: scopes.parse().unwrap(),
            granted: view,
            timeout_secs: 60,
            relay: "r".into(),
            verification: "111 111".into(),
        };
        m.on_event(&more("control,inventory"), now);
        let Screen::Consent(c) = &m.screen else {
            panic!("{:?}", m.screen)
        };
        assert_eq!(c.ticked, ScopeSet::EMPTY, "nothing pre-ticked");
        assert!(!c.can_allow() && m.on_top());
        let line = m.consent_line().unwrap();
        assert!(
            line.contains("asks: control,inventory | more; allowed already: view"),
            "{line}"
        );
        m.toggle(Scope::Control);
        assert_eq!(
            m.allow(),
            Some(Action::Send(UserCommand::Consent(
                "control".parse().unwrap()
            )))
        );
        let both: ScopeSet = "view,control".parse().unwrap();
        m.on_event(
            &AgentEvent::MoreDecided {
                technician: ada(),
                granted: both,
                added: "control".parse().unwrap(),
            },
            now,
        );
        let banner = m.banner_line().unwrap();
        assert!(
            banner.contains("allowed: view,control") && banner.contains("stop control: shown"),
            "{banner}"
        );
        assert!(
            m.doing_line()
                .unwrap()
                .contains("You also allowed: use your mouse")
        );
        // Silence: the window says no itself once the countdown (and its grace) ran out.
        m.on_event(&more("inventory"), now);
        let late = now + Duration::from_secs(60) + CONSENT_GRACE;
        assert_eq!(
            m.tick(late),
            Some(Action::Send(UserCommand::Consent(ScopeSet::EMPTY)))
        );
        m.on_event(
            &AgentEvent::MoreDecided {
                technician: ada(),
                granted: both,
                added: ScopeSet::EMPTY,
            },
            late,
        );
        assert!(m.banner_line().unwrap().contains("allowed: view,control"));
        assert!(m.doing_line().unwrap().contains("did not allow more"));
        // "End session" works while the question shows.
        m.on_event(&more("inventory"), late);
        assert_eq!(m.end_session(), Some(Action::Send(UserCommand::EndSession)));
    }

    fn grace() -> TechnicianIdentity {
        TechnicianIdentity {
            name: "Grace".into(),
            tier: tether_proto::msg::Tier::L2,
            ..ada()
        }
    }

    /// Grace, an invited colleague, asks for `scopes` in her own session (verification 222 222).
    fn grace_asks(m: &mut Model, scopes: ScopeSet, now: Instant) {
        m.on_event(
            &AgentEvent::ConsentRequested {
                technician: grace(),
                scopes,
                timeout_secs: 30,
                first_contact: false,
                relay: "r".into(),
                verification: "222 222".into(),
            },
            now,
        );
    }

    #[test]
    fn chat_opens_on_pairing_and_refuses_bad_lines_here() {
        let now = Instant::now();
        let mut m = Model::new();
        m.chat.draft = "hello".into();
        assert_eq!(m.send_chat(), None, "nobody to talk to yet");
        assert!(m.chat_line().unwrap().contains("nobody is connected"));
        m.on_event(
            &AgentEvent::Paired {
                verification: "1".into(),
            },
            now,
        );
        m.chat.draft = "   ".into();
        assert_eq!(m.send_chat(), None);
        assert!(m.chat_line().unwrap().contains("cannot be empty"), "{m:?}");
        m.chat.draft = "x".repeat(1001);
        assert_eq!(m.send_chat(), None);
        assert!(m.chat_line().unwrap().contains("at most 1000"));
        assert_eq!(m.chat.draft.len(), 1001, "a refused line is kept to edit");
        m.chat.draft = "my printer".into();
        assert_eq!(
            m.send_chat(),
            Some(Action::Send(UserCommand::Chat(
                ChatText::new("my printer").unwrap()
            )))
        );
        assert!(m.chat.draft.is_empty() && m.chat.note.is_none());
        for (from, text) in [(Some("Ada of Acme"), "hi"), (None, "my printer")] {
            m.on_event(
                &AgentEvent::Chat {
                    from: from.map(String::from),
                    text: ChatText::new(text).unwrap(),
                },
                now,
            );
        }
        assert_eq!(m.chat.lines.len(), 2);
        assert_eq!(m.chat.lines[1].from, None);
        // A second echo of the same line (a second technician's session) is not shown twice.
        m.on_event(
            &AgentEvent::Chat {
                from: None,
                text: ChatText::new("my printer").unwrap(),
            },
            now,
        );
        assert_eq!(m.chat.lines.len(), 2);
        m.on_event(
            &AgentEvent::Ended {
                reason: EndReason::UserEnded,
            },
            now,
        );
        assert!(!m.chat.open);
        assert_eq!(m.chat.lines.len(), 2, "the conversation stays readable");
    }

    #[test]
    fn invitation_prompt_answers_once_and_times_out_as_no() {
        let now = Instant::now();
        let mut m = Model::new();
        let ask = AgentEvent::InviteRequested {
            by: "Ada of Acme".into(),
            invitee: "Grace (L2) of Acme".into(),
            handover: true,
            timeout_secs: 20,
        };
        m.on_event(&ask, now);
        let line = m.invite_line().unwrap();
        assert!(
            line.contains("Ada of Acme asks to bring in Grace (L2) of Acme | hand-over: yes"),
            "{line}"
        );
        assert_eq!(
            m.answer_invite(false),
            Some(Action::Send(UserCommand::AnswerInvite(false)))
        );
        assert_eq!(m.answer_invite(true), None, "answered once");
        m.on_event(&ask, now);
        assert_eq!(m.tick(now + Duration::from_secs(19)), None);
        assert_eq!(
            m.tick(now + Duration::from_secs(20)),
            Some(Action::Send(UserCommand::AnswerInvite(false)))
        );
        m.on_event(&ask, now);
        m.on_event(&AgentEvent::InviteDecided { code_sent: true }, now);
        assert_eq!(m.invite, None);
    }

    #[test]
    fn a_colleague_joins_is_named_and_one_leaving_keeps_the_other() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, "view,control".parse().unwrap(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view,control".parse().unwrap(),
            },
            now,
        );
        m.on_event(
            &AgentEvent::Claimed {
                technician: grace(),
            },
            now,
        );
        assert!(m.in_session(), "the banner stays while the colleague pairs");
        grace_asks(&mut m, "view,control".parse().unwrap(), now);
        m.toggle(Scope::View);
        assert_eq!(
            m.allow(),
            Some(Action::Send(UserCommand::Consent(
                [Scope::View].into_iter().collect()
            )))
        );
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: [Scope::View].into_iter().collect(),
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(
            line.starts_with(
                "banner: Grace of Acme | also: Ada of Acme (allowed: view,control) | allowed: view |"
            ),
            "{line}"
        );
        assert!(
            line.ends_with("stop control: shown"),
            "Ada still has control"
        );
        m.on_event(
            &AgentEvent::TechnicianLeft {
                technician: "Grace of Acme".into(),
                reason: EndReason::TechnicianEnded,
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(
            line.starts_with("banner: Ada of Acme | allowed: view,control |"),
            "{line}"
        );
        let Screen::Session { doing, .. } = &m.screen else {
            panic!()
        };
        assert!(
            doing
                .as_deref()
                .unwrap()
                .contains("The session goes on with Ada of Acme"),
            "{doing:?}"
        );
    }

    #[test]
    fn a_refused_colleague_leaves_the_session_as_it_was() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, "view".parse().unwrap(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view".parse().unwrap(),
            },
            now,
        );
        grace_asks(&mut m, "view".parse().unwrap(), now);
        assert!(!m.in_session());
        m.deny();
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: ScopeSet::EMPTY,
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(
            line.starts_with("banner: Ada of Acme | allowed: view |"),
            "{line}"
        );
    }
}
