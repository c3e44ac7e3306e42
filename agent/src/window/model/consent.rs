//! The consent dialog: the first consent, an ask for more during the session, and an invited
//! colleague's consent (shown over the running session's banner, which comes back after).

use std::time::{Duration, Instant};

use tether_proto::msg::TechnicianIdentity;
use tether_proto::{Scope, ScopeSet};

use super::{Action, Activity, Model, Screen};
use crate::ui::UserCommand;

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
    /// A session without a code: the organisation that enrolled this computer.
    pub enrolled_by: Option<String>,
}

impl Consent {
    /// Whether "Allow" is offered: something asked for is ticked.
    pub fn can_allow(&self) -> bool {
        !self.ticked.intersection(self.requested).is_empty()
    }
}

/// How long after its own countdown the window answers "no" itself, if the session (whose timer
/// is the one that counts, and started first) has not closed the dialog by then.
pub const CONSENT_GRACE: Duration = Duration::from_secs(3);

/// Plain words for what a scope lets the technician do.
pub fn scope_words(scope: Scope) -> &'static str {
    match scope {
        Scope::View => "See your screen",
        Scope::Control => "Use your mouse and keyboard",
        Scope::Diagnostics => "Run checks on this computer",
        Scope::Inventory => "Read the list of hardware and installed programs",
        Scope::Clipboard => "Copy and paste between you and the technician",
        Scope::Files => "Send files to and receive files from this computer",
    }
}

impl Model {
    /// A consent dialog opens; over a running session, the banner is kept for after.
    pub(super) fn consent_requested(&mut self, consent: Consent) {
        if self.in_session() {
            self.stash = Some(self.screen.clone());
        }
        self.screen = Screen::Consent(consent);
    }

    /// The user answered an ask for more: back to the banner, with the grant as it now is.
    pub(super) fn more_decided(
        &mut self,
        technician: &TechnicianIdentity,
        now_granted: ScopeSet,
        added: ScopeSet,
    ) {
        if let Some(stashed) = self.stash.take() {
            self.screen = stashed;
        }
        let same = |t: &TechnicianIdentity| t.name == technician.name && t.org == technician.org;
        if let Screen::Session {
            technician: first,
            granted,
            others,
            ..
        } = &mut self.screen
        {
            if same(first) {
                *granted = now_granted;
            } else if let Some((_, g)) = others.iter_mut().find(|(t, _)| same(t)) {
                *g = now_granted;
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

    /// The session confirmed the user's answer to a consent dialog.
    pub(super) fn consent_decided(&mut self, granted: ScopeSet) {
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
                    granted,
                    doing,
                    activity,
                    others,
                };
            }
            // The colleague was refused: the session goes on as it was.
            (technician, Some(mut stashed)) => {
                if let (Some(t), Screen::Session { doing, .. }) = (technician, &mut stashed) {
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
                    granted,
                    doing: None,
                    activity: Activity::default(),
                    others: Vec::new(),
                };
            }
            // A refusal is followed by `Ended`, which says so.
            _ => {}
        }
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
        let desktop = if self.desktop_asks
            && c.requested
                .iter()
                .any(|s| matches!(s, Scope::View | Scope::Control))
        {
            " | your desktop asks too"
        } else {
            ""
        };
        Some(format!(
            "consent dialog: {} of {} | verification: {} | asks: {}{more}{desktop}",
            c.technician.name, c.technician.org, c.verification, c.requested
        ))
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
}
