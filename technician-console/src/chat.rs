//! `tether-console chat`: a line-based chat with the user, for people at a terminal and for scripts.
//!
//! Each input line is sent as one chat message (an empty or oversized line is refused with a note and
//! the session goes on). Each line from the user is printed as it arrives, as `[user] text`, or as one
//! JSON object per line with `--json`. End of input ends the session; so does the user ending it.

use std::io::Write;

use serde_json::json;
use tether_proto::msg::EndReason;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::session::Session;

/// How the chat ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEnd {
    /// Input ended: the technician is done (the caller ends the session).
    InputClosed,
    /// The session ended on the other side.
    Ended(EndReason),
}

/// Runs the chat until input closes or the session ends.
pub async fn run<R>(session: &mut Session, input: R, mut out: impl Write, json: bool) -> ChatEnd
where
    R: AsyncBufRead + Unpin,
{
    let mut lines = input.lines();
    loop {
        tokio::select! {
            // `next_line` is cancel-safe, so a line is never half-read.
            line = lines.next_line() => match line {
                Ok(Some(l)) if l.trim().is_empty() => {}
                Ok(Some(l)) => {
                    if let Err(e) = session.say(&l).await {
                        let _ = writeln!(out, "{}", note(json, "error", &e.to_string()));
                        if matches!(e, crate::ConsoleError::Chat(_)) {
                            continue;
                        }
                        return ChatEnd::Ended(session.ended().await);
                    }
                }
                Ok(None) | Err(_) => return ChatEnd::InputClosed,
            },
            text = session.next_chat() => match text {
                Some(text) => {
                    let _ = writeln!(out, "{}", note(json, "user", text.as_str()));
                    let _ = out.flush();
                }
                // Every line sent before the goodbye was shown; the reader has stopped.
                None => return ChatEnd::Ended(session.ended().await),
            },
        }
    }
}

fn note(json: bool, from: &str, text: &str) -> String {
    if json {
        json!({ "from": from, "text": text }).to_string()
    } else {
        format!("[{from}] {text}")
    }
}
