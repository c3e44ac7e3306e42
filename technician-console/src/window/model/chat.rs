//! The chat panel: the conversation with the user, and inviting a colleague.

use tether_proto::SessionCode;
use tether_proto::chat::ChatText;
use tether_proto::msg::{Invitee, Tier};

use super::{Action, Model, Tab};

/// The chat side panel: the conversation, and the invitation of a colleague.
#[derive(Debug, Clone, Default)]
pub struct ChatPanel {
    /// Connect without asking for consent, so the technician can explain first.
    pub first: bool,
    /// The agent paired with us: lines can be sent (before consent too).
    pub open: bool,
    /// The conversation, oldest first: (from the user, text).
    pub lines: Vec<(bool, String)>,
    /// What the technician is typing.
    pub draft: String,
    /// Why the last line was not sent.
    pub note: Option<String>,
    /// A colleague's name, or a tier (L2, L3).
    pub invitee: String,
    /// Hand the session over (leave once the colleague is in).
    pub handover: bool,
    /// An invitation is waiting for the user's answer.
    pub inviting: bool,
    /// The last invitation's outcome: the code to give the colleague, or why there is none.
    pub invite: Option<Result<SessionCode, String>>,
    /// Lines from the user that arrived while another tab was open.
    pub unread: usize,
}

/// Reads the invite field: a tier (`L2`, `l3`, `2`) invites whoever of that tier takes it, any
/// other text names a colleague.
pub fn parse_invitee(text: &str) -> Result<Invitee, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Enter a colleague's name or a tier (L2, L3).".into());
    }
    Ok(match text.parse::<Tier>() {
        Ok(tier) => Invitee::Tier(tier),
        Err(_) => Invitee::Technician(text.to_string()),
    })
}

fn invitee_words(i: &Invitee) -> String {
    match i {
        Invitee::Technician(name) => name.clone(),
        Invitee::Tier(t) => format!("any {t} technician"),
    }
}

impl Model {
    /// "Chat first" tick box: connect without asking, ask later.
    pub fn set_chat_first(&mut self, first: bool) {
        if !self.busy() && self.chat.first != first {
            self.chat.first = first;
            self.say(format!("chat first: {}", if first { "on" } else { "off" }));
        }
    }

    /// "Send" (or Enter) in the chat panel: the line is checked here first.
    pub fn send_chat(&mut self) -> Option<Action> {
        if !self.chat.open {
            return self.chat_note("nobody is connected yet".into());
        }
        match ChatText::new(&self.chat.draft) {
            Ok(_) => {
                self.chat.note = None;
                Some(Action::Say(std::mem::take(&mut self.chat.draft)))
            }
            Err(e) => self.chat_note(e.to_string()),
        }
    }

    pub(super) fn chat_note(&mut self, why: String) -> Option<Action> {
        self.say(format!("chat: not sent: {why}"));
        self.chat.note = Some(format!("Not sent: {why}."));
        None
    }

    /// "Invite": asks the user to let a colleague in (needs a running session).
    pub fn invite(&mut self) -> Option<Action> {
        if self.chat.inviting {
            return None;
        }
        if self.granted().is_none() {
            self.chat.invite = Some(Err("Inviting needs a session the user has allowed.".into()));
            self.say("invite: failed: no session the user has allowed".into());
            return None;
        }
        match parse_invitee(&self.chat.invitee) {
            Ok(invitee) => {
                self.chat.inviting = true;
                self.chat.invite = None;
                let handover = self.chat.handover;
                self.say(format!(
                    "invite: asking the user to let in {}{}",
                    invitee_words(&invitee),
                    if handover { " (hand-over)" } else { "" }
                ));
                Some(Action::Invite { invitee, handover })
            }
            Err(e) => {
                self.say(format!("invite: failed: {e}"));
                self.chat.invite = Some(Err(e));
                None
            }
        }
    }

    /// A chat line: from the user, or ours once sent.
    pub(super) fn chat_line(&mut self, from_user: bool, text: String) {
        self.say(format!(
            "chat: {}: {text}",
            if from_user { "user" } else { "you" }
        ));
        self.chat.lines.push((from_user, text));
        if from_user && self.tab != Tab::Chat {
            self.chat.unread += 1;
        }
    }

    /// The invitation's outcome.
    pub(super) fn invite_answered(&mut self, result: Result<SessionCode, String>) {
        self.chat.inviting = false;
        match &result {
            // Never the code itself: it is for the colleague's eyes (shown in the window).
            Ok(_) => self
                .say("invite: code ready; give it to your colleague (shown in the window)".into()),
            Err(e) => self.say(format!("invite: failed: {e}")),
        }
        self.chat.invite = Some(result);
    }
}
