//! The conversation with the technicians, open from pairing on until the sharing ends.

use tether_proto::chat::ChatText;

use super::{Action, Model};
use crate::ui::UserCommand;

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

impl Chat {
    /// A line arrived: the user's own line comes back once per technician's session and shows
    /// once; a technician's shows as it comes.
    pub(super) fn received(&mut self, from: Option<&str>, text: &str) {
        match from {
            None => {
                if self.pending.front().map(String::as_str) == Some(text) {
                    self.pending.pop_front();
                    self.lines.push(ChatLine {
                        from: None,
                        text: text.to_string(),
                    });
                }
            }
            Some(from) => self.lines.push(ChatLine {
                from: Some(from.to_string()),
                text: text.to_string(),
            }),
        }
    }
}

impl Model {
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
}
