//! `tether-console chat`: a line-based chat with the user, for people at a terminal and for scripts.
//!
//! Each input line is sent as one chat message (an empty or oversized line is refused with a note and
//! the session goes on). Each line from the user is printed as it arrives, as `[user] text`, or as one
//! JSON object per line with `--json`. End of input ends the session; so does the user ending it.
//!
//! `/ask` asks the user for the scopes given with `--ask` (the relay checked them at the claim); the
//! chat goes on both ways while the user decides, and the answer is printed as `[consent] …`.
//! Once the user has answered, `/ask SCOPES` (e.g. `/ask control`) asks for more during the
//! session (see [`Session::request_more`]): the user sees a prompt for just what is not granted
//! yet, and the answer is printed as `[consent] …` too.
//! Two commands bring in a colleague once the user has allowed something (the user is asked first;
//! see [`Session::invite`]):
//! `/invite NAME` or `/invite L2` (a tier), and `/handover NAME|L2` (you leave once they are in).
//! The answer is the one-time code to give the colleague, printed as `[invite] …`.

use std::io::Write;

use serde_json::json;
use tether_proto::msg::{EndReason, Invitee, Tier};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::session::{AgentSaid, CONSENT_WAIT, Session};

/// How the chat ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEnd {
    /// Input ended: the technician is done (the caller ends the session).
    InputClosed,
    /// The session ended on the other side.
    Ended(EndReason),
}

/// Runs the chat until input closes or the session ends. `/ask` sends the consent request and
/// the chat goes on while the user decides: lines flow both ways, and the answer is printed when
/// it comes.
pub async fn run<R>(session: &mut Session, input: R, mut out: impl Write, json: bool) -> ChatEnd
where
    R: AsyncBufRead + Unpin,
{
    let mut lines = input.lines();
    // While the user decides: when the console stops waiting for the agent's answer.
    let mut asking: Option<tokio::time::Instant> = None;
    // An ask for more waiting for its answer: (the grant before, what was asked).
    let mut more: Option<(tether_proto::ScopeSet, tether_proto::ScopeSet)> = None;
    let mut print = |from: &str, text: &str| {
        let _ = writeln!(out, "{}", note(json, from, text));
        let _ = out.flush();
    };
    loop {
        let give_up = async {
            match asking {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // `next_line` is cancel-safe, so a line is never half-read.
            line = lines.next_line() => match line {
                Ok(Some(l)) if l.trim().is_empty() => {}
                Ok(Some(l)) if l.trim() == "/ask" => {
                    let (from, text) = if session.asked.is_empty() {
                        ("error", "nothing to ask for: start chat with --ask SCOPES".to_string())
                    } else if asking.is_some() || !session.granted.is_empty() {
                        ("error", "already asked; the answer shows here when it comes".to_string())
                    } else {
                        match session.request_consent().await {
                            Ok(()) => {
                                asking = Some(tokio::time::Instant::now() + CONSENT_WAIT);
                                ("consent", format!(
                                    "asked the user for: {}; you can keep chatting while they decide",
                                    session.asked
                                ))
                            }
                            Err(e) => ("error", e.to_string()),
                        }
                    };
                    print(from, &text);
                }
                Ok(Some(l)) if l.trim().starts_with("/ask ") => {
                    let arg = l.trim().trim_start_matches("/ask").trim();
                    let (from, text) = match arg.parse::<tether_proto::ScopeSet>() {
                        Err(e) => ("error", format!("/ask {arg:?}: {e}")),
                        Ok(_) if session.granted.is_empty() => (
                            "error",
                            "/ask SCOPES asks for more once the user has allowed something; \
                             first /ask (for --ask)"
                                .to_string(),
                        ),
                        Ok(_) if more.is_some() => {
                            ("error", "already asked; the answer shows here when it comes".to_string())
                        }
                        Ok(scopes) => {
                            let before = session.granted;
                            match session.request_more(scopes).await {
                                Ok(()) => {
                                    more = Some((before, scopes));
                                    ("consent", format!(
                                        "asked the user for more: {scopes}; you can keep chatting while they decide"
                                    ))
                                }
                                Err(e) => ("error", e.to_string()),
                            }
                        }
                    };
                    print(from, &text);
                }
                Ok(Some(l)) if l.trim_start().starts_with('/') => {
                    let (from, text) = command(session, l.trim()).await;
                    print(from, &text);
                }
                Ok(Some(l)) => {
                    if let Err(e) = session.say(&l).await {
                        print("error", &e.to_string());
                        if matches!(e, crate::ConsoleError::Chat(_)) {
                            continue;
                        }
                        return ChatEnd::Ended(session.ended().await);
                    }
                }
                Ok(None) | Err(_) => return ChatEnd::InputClosed,
            },
            said = session.next_said() => match said {
                AgentSaid::Chat(text) => print("user", text.as_str()),
                AgentSaid::Decision(granted) => {
                    asking = None;
                    match session.decided(granted) {
                        Ok(granted) => print("consent", &format!("the user allowed: {granted}")),
                        Err(e) => print("error", &e.to_string()),
                    }
                }
                AgentSaid::More(answer) => {
                    let (before, asked) = more.take().unwrap_or((answer.granted, answer.granted));
                    print("consent", &answer.words(before, asked));
                }
                AgentSaid::Ended(reason) => {
                    if asking.is_some() {
                        print("error", &Session::ended_before_decision(reason.clone()).to_string());
                    }
                    return ChatEnd::Ended(reason);
                }
            },
            () = give_up => {
                asking = None;
                print("error", &crate::ConsoleError::ConsentTimeout.to_string());
            }
        }
    }
}

/// Runs one `/command` other than `/ask`; returns the line to print.
async fn command(session: &mut Session, line: &str) -> (&'static str, String) {
    let (cmd, arg) = line.split_once(' ').unwrap_or((line, ""));
    let handover = match cmd {
        "/invite" => false,
        "/handover" => true,
        _ => {
            return (
                "error",
                format!(
                    "unknown command {cmd:?}: use /ask, /ask SCOPES, /invite NAME|L2 or \
                     /handover NAME|L2"
                ),
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
