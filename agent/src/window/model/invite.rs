//! A technician asks to bring in a colleague; the user answers Allow or Deny.

use std::time::Instant;

use super::{Action, Model};
use crate::ui::UserCommand;

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

impl Model {
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

    /// The invitation was answered (by the user, or by its countdown).
    pub(super) fn invite_decided(&mut self, code_sent: bool) {
        self.invite = None;
        self.set_doing(if code_sent {
            "You allowed the invitation. When the colleague connects, you will be asked \
             what they may do."
                .into()
        } else {
            "No colleague will be invited.".into()
        });
    }
}
