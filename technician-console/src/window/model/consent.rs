//! The code, the scopes ticked to ask for, the user's consent and its answers, and asking for
//! more during the session.

use tether_proto::msg::TechnicianIdentity;
use tether_proto::{Scope, ScopeSet, SessionCode};

use super::{Action, ChatPanel, InventoryPanel, Model};

/// Where the session stands with the user's consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consent {
    /// Nothing asked yet: enter a code.
    Idle,
    /// "Chat first": claiming the code and pairing, without asking for anything yet.
    Pairing {
        /// What will be asked for.
        asked: ScopeSet,
    },
    /// "Chat first": paired; chat runs and nothing is asked until "Ask for access".
    Paired {
        /// What will be asked for.
        asked: ScopeSet,
        /// Who we are, as the user was shown.
        technician: TechnicianIdentity,
        /// The verification string the user's screen shows too.
        verification: String,
    },
    /// Claiming the code, pairing, and waiting for the user to answer.
    Waiting {
        /// What we asked for.
        asked: ScopeSet,
    },
    /// The user answered yes to some or all of it; the session runs.
    Granted {
        /// What we asked for.
        asked: ScopeSet,
        /// What the user allowed (the agent enforces exactly this).
        granted: ScopeSet,
        /// Who we are, as the user was shown.
        technician: TechnicianIdentity,
        /// The verification string the user's screen shows too.
        verification: String,
    },
    /// No session: the user refused, or the code did not work.
    Failed {
        /// What we asked for.
        asked: ScopeSet,
        /// Why, in words.
        reason: String,
        /// The user said no (rather than a bad code or a network problem).
        denied: bool,
    },
    /// The session ran and is over.
    Ended {
        /// What had been granted.
        granted: ScopeSet,
        /// Why it ended.
        reason: String,
    },
}

impl Model {
    /// Whether a session runs or is being set up (the code field is locked).
    pub fn busy(&self) -> bool {
        matches!(
            self.consent,
            Consent::Waiting { .. }
                | Consent::Granted { .. }
                | Consent::Pairing { .. }
                | Consent::Paired { .. }
        )
    }

    /// What was (or will be) asked for in the current attempt.
    pub fn asked(&self) -> ScopeSet {
        match self.consent {
            Consent::Waiting { asked }
            | Consent::Pairing { asked }
            | Consent::Paired { asked, .. }
            | Consent::Granted { asked, .. }
            | Consent::Failed { asked, .. } => asked,
            _ => self.ask,
        }
    }

    /// What "Ask for control" asks for: `control` while a session runs without it, the role
    /// allows it, and no other ask waits; `None` hides the button.
    pub fn more_offer(&self) -> Option<ScopeSet> {
        let Consent::Granted {
            granted,
            technician,
            ..
        } = &self.consent
        else {
            return None;
        };
        let control: ScopeSet = [Scope::Control].into_iter().collect();
        let offer = control
            .intersection(technician.role.allowed_scopes())
            .difference(*granted);
        (self.more.is_none() && !offer.is_empty()).then_some(offer)
    }

    /// "Ask for control": asks the user, during the session, for what [`Model::more_offer`] says.
    pub fn ask_more(&mut self) -> Option<Action> {
        let offer = self.more_offer()?;
        self.more = Some(offer);
        self.notice = None;
        self.say(format!(
            "grant: asking the user for {offer}; waiting for the answer"
        ));
        Some(Action::AskMore(offer))
    }

    /// "Ask for access" once paired in a "chat first" session.
    pub fn ask_consent(&mut self) -> Option<Action> {
        let Consent::Paired { asked, .. } = self.consent else {
            return None;
        };
        self.consent = Consent::Waiting { asked };
        self.say(format!(
            "consent: asking for {asked}; waiting for the user's answer"
        ));
        Some(Action::AskConsent)
    }

    /// Ticks or unticks a scope to ask for.
    pub fn toggle(&mut self, scope: Scope) {
        if self.busy() {
            return;
        }
        if self.ask.contains(scope) {
            self.ask.remove(scope);
        } else {
            self.ask.insert(scope);
        }
    }

    /// "Connect": parses the code and asks for the ticked scopes.
    pub fn connect(&mut self) -> Option<Action> {
        if self.busy() {
            return None;
        }
        let code: SessionCode = match self.code.trim().parse() {
            Ok(c) => c,
            Err(e) => {
                let text = format!("That is not a session code: {e}.");
                self.say(format!("notice: {text}"));
                self.notice = Some(text);
                return None;
            }
        };
        if !self.fresh_attempt() {
            return None;
        }
        let ask_now = !self.chat.first;
        if ask_now {
            self.consent = Consent::Waiting { asked: self.ask };
            self.say(format!(
                "consent: asking for {}; waiting for the user's answer",
                self.ask
            ));
        } else {
            self.consent = Consent::Pairing { asked: self.ask };
            self.say("connecting: pairing without asking for anything yet (chat first)".into());
        }
        Some(Action::Connect {
            code,
            scopes: self.ask,
            ask_now,
        })
    }

    /// Before a new session (by code or to an enrolled device): something must be ticked (else
    /// `false`, with a notice), and the last session's panels are cleared.
    pub(super) fn fresh_attempt(&mut self) -> bool {
        if self.ask.is_empty() {
            let text = "Tick at least one thing to ask for.".to_string();
            self.say(format!("notice: {text}"));
            self.notice = Some(text);
            return false;
        }
        self.notice = None;
        self.inventory = InventoryPanel {
            table: self.inventory.table,
            filter: self.inventory.filter.clone(),
            ..InventoryPanel::default()
        };
        self.diag.results.clear();
        self.diag.running = 0;
        self.diag.error = None;
        self.diag.summary = None;
        self.verification = None;
        self.reason = None;
        self.chat = ChatPanel {
            first: self.chat.first,
            invitee: self.chat.invitee.clone(),
            handover: self.chat.handover,
            ..ChatPanel::default()
        };
        true
    }

    /// Paired with the agent: chat opens, and a "chat first" session waits for "Ask for access".
    pub(super) fn paired(
        &mut self,
        technician: TechnicianIdentity,
        verification: String,
        reason: Option<String>,
    ) {
        self.chat.open = true;
        self.say(format!(
            "paired: as {} of {}; verification {verification}: read it out to the user; chat open",
            technician.name, technician.org
        ));
        if let Some(r) = &reason {
            self.say(format!("reason: the user asks for help with: {r}"));
        }
        self.verification = Some(verification.clone());
        self.reason = reason;
        if let Consent::Pairing { asked } = self.consent {
            self.consent = Consent::Paired {
                asked,
                technician,
                verification,
            };
        }
    }

    /// The user granted (some of) what was asked.
    pub(super) fn granted_by_user(
        &mut self,
        technician: TechnicianIdentity,
        granted: ScopeSet,
        verification: String,
    ) {
        let asked = self.asked();
        let mut missing = asked;
        for s in granted.iter() {
            missing.remove(s);
        }
        self.say(format!(
            "consent: granted {granted}; not granted: {missing}; as {} of {}; verification {verification}",
            technician.name, technician.org
        ));
        self.consent = Consent::Granted {
            asked,
            granted,
            technician,
            verification,
        };
        // Only what was asked for is reported as refused; the rest was never in question.
        if granted.contains(Scope::Inventory) {
            self.inventory.loading = true;
        } else if asked.contains(Scope::Inventory) {
            self.inventory.error = Some("The user did not allow inventory.".into());
        }
        if !granted.contains(Scope::Diagnostics) && asked.contains(Scope::Diagnostics) {
            self.diag.error = Some("The user did not allow diagnostics.".into());
        }
    }

    /// No session came of it.
    pub(super) fn failed(&mut self, reason: String, denied: bool) {
        let asked = self.asked();
        self.chat.open = false;
        let word = if denied { "denied" } else { "failed" };
        self.say(format!("consent: {word}: {reason}"));
        self.consent = Consent::Failed {
            asked,
            reason,
            denied,
        };
    }

    /// The user changed what is granted during the session.
    pub(super) fn grant_changed(&mut self, now: ScopeSet) {
        let Consent::Granted { granted, asked, .. } = &mut self.consent else {
            return;
        };
        let gone = granted.difference(now);
        let added = now.difference(*granted);
        *granted = now;
        *asked = asked.union(now);
        if !added.is_empty() {
            self.say(format!(
                "grant: the user allowed {added}; now allowed: {now}"
            ));
            if added.contains(Scope::Control) {
                self.notice = None;
            }
        }
        if !gone.is_empty() {
            self.say(format!(
                "grant: the user took back {gone}; now allowed: {now}"
            ));
            if gone.contains(Scope::Control) {
                self.notice = Some(
                    "The user took back control. Your mouse and keyboard no longer \
                     reach their computer; the rest of the session goes on."
                        .into(),
                );
            }
        }
    }

    /// The answer to an ask for more.
    pub(super) fn more_answered(&mut self, more: ScopeSet, now: ScopeSet, words: String) {
        self.more = None;
        self.say(format!("grant: asked for {more}: {words}"));
        if let Consent::Granted { granted, asked, .. } = &mut self.consent {
            *granted = now;
            *asked = asked.union(more);
        }
        if now.intersection(more).is_empty() {
            self.notice = Some(format!("Not allowed: {words}."));
        }
    }

    /// The session is over.
    pub(super) fn ended(&mut self, reason: String) {
        self.more = None;
        self.inventory.loading = false;
        self.diag.running = 0;
        self.files.listing_pending = false;
        for t in &mut self.files.transfers {
            if t.state == super::TransferState::Running {
                t.state = super::TransferState::Failed(format!("the session ended: {reason}"));
            }
        }
        let granted = self.granted().unwrap_or(ScopeSet::EMPTY);
        self.chat.open = false;
        self.chat.inviting = false;
        match &self.consent {
            Consent::Waiting { .. } | Consent::Pairing { .. } | Consent::Paired { .. } => {
                let asked = self.asked();
                self.say(format!("consent: failed: {reason}"));
                self.consent = Consent::Failed {
                    asked,
                    reason,
                    denied: false,
                };
            }
            Consent::Granted { .. } => {
                self.say(format!("session ended: {reason}"));
                self.consent = Consent::Ended { granted, reason };
            }
            _ => {}
        }
    }
}
