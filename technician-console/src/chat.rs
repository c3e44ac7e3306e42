//! `tether-console chat`: a line-based chat with the user, for people at a terminal and for scripts.
//!
//! Each input line is sent as one chat message (an empty or oversized line is refused with a note and
//! the session goes on). Each line from the user is printed as it arrives, as `[user] text`, or as one
//! JSON object per line with `--json`. End of input ends the session; so does the user ending it.
//!
//! `/ask` asks the user for the scopes given with `--ask` (the relay checked them at the claim).
//! Two commands bring in a colleague once the user has allowed something (the user is asked first;
//! see [`Session::invite`]):
//! `/invite NAME` or `/invite L2` (a tier), and `/handover NAME|L2` (you leave once they are in).
//! The answer is the one-time code to give the colleague, printed as `[invite] …`.

use std::io::Write;

use serde_json::json;
use tether_proto::msg::{EndReason, Invitee, Tier};
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
                Ok(Some(l)) if l.trim_start().starts_with('/') => {
                    let (from, text) = command(session, l.trim()).await;
                    let _ = writeln!(out, "{}", note(json, from, &text));
                    let _ = out.flush();
                }
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

/// Runs one `/command`; returns the line to print.
async fn command(session: &mut Session, line: &str) -> (&'static str, String) {
    let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
    if cmd == "/ask" {
        if session.asked.is_empty() {
            return (
                "error",
                "nothing to ask for: start chat with --ask SCOPES".into(),
            );
        }
        return match session.ask_consent().await {
            Ok(granted) => ("consent", format!("the user allowed: {granted}")),
            Err(e) => ("error", e.to_string()),
        };
    }
    let handover = match cmd {
        "/invite" => false,
        "/handover" => true,
        _ => {
            return (
                "error",
                format!("unknown command {cmd:?}: use /ask, /invite NAME|L2 or /handover NAME|L2"),
            );
        }
    };
    let invitee = match parse_invitee(arg) {
        Some(i) => i,
        None => {
            return (
                "error",
                format!("{cmd} needs a colleague's name or a tier (L2, L3)"),
            );
        }
    };
    match session.invite(invitee.clone(), handover).await {
        Ok(code) => (
            "invite",
            format!(
                "the user agreed; give {invitee} this code: {code} (they will be asked for consent)"
            ),
        ),
        Err(e) => ("error", e.to_string()),
    }
}

/// A tier (`L2`, `l3`) or else a colleague's name; `None` if empty.
pub fn parse_invitee(arg: &str) -> Option<Invitee> {
    let arg = arg.trim();
    if arg.is_empty() {
        return None;
    }
    Some(match arg.parse::<Tier>() {
        Ok(t) if arg.len() <= 2 => Invitee::Tier(t),
        _ => Invitee::Technician(arg.to_string()),
    })
}

fn note(json: bool, from: &str, text: &str) -> String {
    if json {
        json!({ "from": from, "text": text }).to_string()
    } else {
        format!("[{from}] {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invitees() {
        assert_eq!(parse_invitee(" L2 "), Some(Invitee::Tier(Tier::L2)));
        assert_eq!(parse_invitee("l3"), Some(Invitee::Tier(Tier::L3)));
        assert_eq!(
            parse_invitee("Grace Hopper"),
            Some(Invitee::Technician("Grace Hopper".into()))
        );
        assert_eq!(parse_invitee("  "), None);
    }
}
