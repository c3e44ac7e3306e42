//! Start, the code to read out, the relay outage, and the end of sharing with the session log.

use std::time::{Duration, Instant};

use tether_proto::msg::EndReason;

use super::{Action, Chat, Model, Screen};
use crate::ui::UserCommand;

/// The relay cannot be reached while no session runs: the last code does not work until a new
/// one shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// What went wrong, as the connection reported it.
    pub reason: String,
    /// When the next attempt starts.
    pub retry_at: Instant,
}

impl Model {
    /// A new code shows: a new conversation, and the outage (if any) is over.
    pub(super) fn code_shown(
        &mut self,
        code: String,
        expires_in_secs: u32,
        reason: Option<String>,
        now: Instant,
    ) {
        self.verification = None;
        self.outage = None;
        self.reason = reason;
        // A new code is a new conversation.
        self.chat = Chat::default();
        self.invite = None;
        self.stash = None;
        self.screen = Screen::Code {
            code,
            expires_at: now + Duration::from_secs(u64::from(expires_in_secs)),
        };
    }

    /// The relay connection is lost: while waiting for a claim (`retry_in` is when sharing tries
    /// again) the code is useless until the connection is back; in a running session `Ended`
    /// follows and says so.
    pub(super) fn relay_lost(&mut self, reason: &str, retry_in: Option<Duration>, now: Instant) {
        match retry_in {
            Some(wait) => {
                self.outage = Some(Outage {
                    reason: reason.to_string(),
                    retry_at: now + wait,
                });
                if matches!(self.screen, Screen::Code { .. }) {
                    self.screen = Screen::Connecting;
                }
            }
            None => self.notice = Some(format!("Lost the connection to the relay ({reason}).")),
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

    pub(super) fn ended(&mut self, reason: String) {
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
