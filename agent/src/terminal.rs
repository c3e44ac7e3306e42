//! The terminal front end: prints what happens in plain words and reads the user's answers.
//!
//! Consent answers: `y` grants everything asked, `n` refuses, a comma list such as `inventory` grants
//! that subset. Anything else (a typo such as `diagnostcs`) is not an answer: the question is asked
//! again. End of input, or silence until the timeout, means **no**. `q` ends the session at any time;
//! `r` takes back `control` and `c` the clipboard, and keeps the session. Once paired, any other line is sent to the
//! technician as a chat message. When a session ends and sharing goes on (`share` without `--once`),
//! the next code follows.

use std::io::Write;

use tether_proto::ScopeSet;
use tether_proto::chat::ChatText;
use tether_proto::text::display_safe as safe;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::ui::{AgentEvent, Transfer, TransferState, UiHandle, UserCommand};
use tether_proto::records::FileDirection;

/// Interprets a consent answer against what was requested: the grant, or what to tell the user
/// before asking again.
pub fn parse_answer(line: &str, requested: ScopeSet) -> Result<ScopeSet, String> {
    let t = line.trim().to_ascii_lowercase();
    match t.as_str() {
        "y" | "yes" => Ok(requested),
        "n" | "no" => Ok(ScopeSet::EMPTY),
        "" => Err("Please answer: y, n, or the parts you allow.".into()),
        _ => match t.parse::<ScopeSet>() {
            Ok(s) if !s.intersection(requested).is_empty() => Ok(s.intersection(requested)),
            Ok(_) => Err(format!(
                "The technician did not ask for {t:?}. Type y, n, or some of: {requested}."
            )),
            Err(_) => Err(format!(
                "{:?} is not an answer. Type y, n, or some of: {requested}.",
                safe(line.trim())
            )),
        },
    }
}

/// Renders one event for the user; `None` for events with nothing to say. Every value another party
/// chose (names, reasons, what was asked for) goes through [`safe`] (`text::display_safe`), so it
/// cannot send the terminal escapes or start a line of its own.
pub fn render(event: &AgentEvent) -> String {
    match event {
        AgentEvent::Connected { relay } => format!("Connected to relay {relay}."),
        AgentEvent::Code { code, expires_in_secs, reason } => format!(
            "\n  session code: {code}\n{}\nRead this code to your technician. It works once and expires in {} minutes.\n\
             Waiting for the technician... (type q and Enter, or press Ctrl-C, to stop)",
            reason.as_deref().map_or(String::new(), |r| format!("  your request: {}\n", safe(r))),
            expires_in_secs / 60
        ),
        AgentEvent::CodeExpired => "Your code expired unused. Here is a new one:".into(),
        AgentEvent::Claimed { technician } => format!(
            "{} of {} (identity verified by the relay) is connecting...",
            safe(&technician.name), safe(&technician.org)
        ),
        AgentEvent::Declined { technician, reason } => format!(
            "Declined a connection from {} of {}: {}. A new code follows.",
            safe(&technician.name), safe(&technician.org), safe(reason)
        ),
        AgentEvent::Enrolled { org, unattended } => format!(
            "This computer is enrolled by {}'s IT. When one of their technicians connects without a \
             code, you are asked here first. {} Type q and Enter, or press Ctrl-C, to stop.",
            safe(org),
            crate::ui::unattended_words(*unattended)
        ),
        AgentEvent::Unattended { technician, scopes } => format!(
            "{} of {} started an unattended session, as your IT's policy allows, for: {scopes}. \
             Nobody was asked. You can end it at any time (type q and Enter, or press Ctrl-C).",
            safe(&technician.name), safe(&technician.org)
        ),
        AgentEvent::PairingFailed => {
            "Someone entered a wrong code. That code is now burned and cannot be used again; a new one follows.".into()
        }
        AgentEvent::Paired { verification } => format!(
            "Connected end to end; the relay cannot read this session. Verification code: {verification} \
             (the technician sees the same)."
        ),
        AgentEvent::ConsentRequested { technician, scopes, timeout_secs, first_contact, relay, verification, enrolled_by } => {
            let mut s = format!(
                "\n{} of {} asks to:\n",
                safe(&technician.name), safe(&technician.org)
            );
            for scope in scopes.iter() {
                s.push_str(&format!("  - {scope}: {}\n", scope.describe()));
            }
            match enrolled_by {
                Some(org) => s.push_str(&format!(
                    "IT of {} enrolled this computer, so no code was read out: {}'s identity was checked \
                     against {}'s signing key by this computer itself (verification code {verification}).\n",
                    safe(org), safe(&technician.name), safe(org)
                )),
                None => s.push_str(&format!(
                    "(identity verified by relay {relay}; verification code {verification}: the technician reads out the same)\n"
                )),
            }
            if *first_contact {
                s.push_str(&format!(
                    "WARNING: {} has never been given access to this computer before. Genuine support \
                     never calls you out of the blue asking for access. If someone called you, hang up \
                     and answer n.\n",
                    safe(&technician.org)
                ));
            }
            s.push_str(&format!(
                "Allow? Type y for all of it, n to refuse, or only some, e.g. \"{}\". No answer in {timeout_secs} s means no.",
                scopes.iter().next().map(|s| s.name()).unwrap_or("inventory")
            ));
            s
        }
        AgentEvent::MoreRequested { technician, scopes, granted, timeout_secs, verification, .. } => {
            let mut s = format!(
                "\n{} of {} asks for more than you allowed so far ({granted}):\n",
                safe(&technician.name), safe(&technician.org)
            );
            for scope in scopes.iter() {
                s.push_str(&format!("  - {scope}: {}\n", scope.describe()));
            }
            s.push_str(&format!(
                "(verification code {verification}) What you allowed before stays allowed either way.\n\
                 Allow? Type y for all of it, n to refuse, or only some, e.g. \"{}\". No answer in {timeout_secs} s means no.",
                scopes.iter().next().map(|s| s.name()).unwrap_or("control")
            ));
            s
        }
        AgentEvent::MoreDecided { added, granted, .. } if added.is_empty() => format!(
            "Nothing more was allowed; the session goes on with: {granted}."
        ),
        AgentEvent::MoreDecided { added, granted, .. } => format!(
            "You also allowed: {added}. Allowed now: {granted}. Type r and Enter to take control back, q to end."
        ),
        AgentEvent::ConsentDecided { granted } if granted.is_empty() => "You refused. Nothing was shared.".into(),
        AgentEvent::ConsentDecided { granted } => format!(
            "You allowed: {granted}. Everything else stays refused. Type q and Enter, or press Ctrl-C, to end the session."
        ),
        AgentEvent::Running { what } => format!("-> running {}...", safe(what)),
        AgentEvent::Served { what } => format!("-> sent the technician {}.", safe(what)),
        AgentEvent::Refused { what, scope } => {
            format!("-> refused: the technician asked for {}, which needs \"{scope}\" that you did not allow.", safe(what))
        }
        AgentEvent::RelayLost {
            reason,
            retry_in: Some(d),
        } => format!(
            "Lost the connection to the relay ({}). Reconnecting in {:.1} s...",
            safe(reason),
            d.as_secs_f64()
        ),
        AgentEvent::RelayLost {
            reason,
            retry_in: None,
        } => format!("Lost the connection to the relay ({}).", safe(reason)),
        AgentEvent::Viewing { technician, display, active: true } => format!(
            "** {} is now viewing your screen (display {display}). Type q and Enter to end the session.",
            safe(technician)
        ),
        AgentEvent::Viewing { technician, active: false, .. } => {
            format!("{} stopped viewing your screen.", safe(technician))
        }
        AgentEvent::Controlling { technician, active: true } => format!(
            "** {} is using your mouse and keyboard. Type r and Enter to take control back, q to end.",
            safe(technician)
        ),
        AgentEvent::Controlling { technician, active: false } => {
            format!("{} stopped using your mouse and keyboard.", safe(technician))
        }
        AgentEvent::Clipboard { technician, used, selection, chars, preview } => format!(
            "** {} Type c and Enter to stop clipboard sharing.",
            AgentEvent::clipboard_words(technician, *used, *selection, *chars, preview)
        ),
        AgentEvent::Revoked { scope } => {
            format!("You took back \"{scope}\". The session goes on without it.")
        }
        AgentEvent::Path { direct } => AgentEvent::path_words(*direct).into(),
        AgentEvent::Ended { reason } => format!("Session ended: {}.", crate::ui::end_words(reason)),
        AgentEvent::InviteRequested { by, invitee, handover, timeout_secs } => format!(
            "\n{} asks to bring in a colleague: {}{}.\n\
             The colleague gets nothing unless you allow it when they connect; you will be asked.\n\
             Allow? Type y or n. No answer in {timeout_secs} s means no.",
            safe(by),
            safe(invitee),
            if *handover { ", and then to leave the session to them" } else { "" }
        ),
        AgentEvent::InviteDecided { code_sent: true } => {
            "You allowed the invitation. When the colleague connects, you will be asked what they may do.".into()
        }
        AgentEvent::InviteDecided { code_sent: false } => "No colleague will be invited.".into(),
        AgentEvent::TechnicianLeft { technician, reason } => {
            format!(
                "{} left the session ({}). The session goes on with the other technician.",
                safe(technician),
                safe(&reason.to_string())
            )
        }
        AgentEvent::Chat { from: Some(from), text } => format!("[{}] {text}", safe(from)),
        AgentEvent::Chat { from: None, text } => format!("[you] {text}"),
        AgentEvent::Transfer(t) => transfer_line(t),
    }
}

/// One line about a file transfer.
fn transfer_line(t: &Transfer) -> String {
    let (verb, dir) = match t.direction {
        FileDirection::Push => ("arriving", "from"),
        FileDirection::Pull => ("leaving", "to"),
    };
    let path = safe(&t.path);
    let who = safe(&t.technician);
    let size = crate::ui::size_words(t.total);
    match &t.state {
        TransferState::Started { offset: 0 } => {
            format!("-> file {verb} {dir} {who}: {path} ({size}). Type s and Enter to stop it.")
        }
        TransferState::Started { offset } => format!(
            "-> file {verb} {dir} {who}: {path} ({size}), continuing after {}. Type s and Enter \
             to stop it.",
            crate::ui::size_words(*offset)
        ),
        TransferState::Progress { done } => {
            format!("   {path}: {} of {size}", crate::ui::size_words(*done))
        }
        TransferState::Done { sha256 } => {
            format!(
                "-> file done: {path} ({size}, SHA-256 {})",
                &sha256[..sha256.len().min(16)]
            )
        }
        TransferState::Failed { reason } => format!("-> file failed: {path}: {}", safe(reason)),
    }
}

/// Runs until the session's event channel closes or the session ends.
pub async fn run<R>(mut ui: UiHandle, input: R, mut out: impl Write)
where
    R: AsyncBufRead + Unpin,
{
    let mut lines = input.lines();
    let mut input_open = true;
    let mut pending: Option<ScopeSet> = None;
    let mut paired = false;
    let mut invite_pending = false;
    // File transfers running now, which `s` stops.
    let mut transfers: Vec<u64> = Vec::new();
    loop {
        tokio::select! {
            ev = ui.events.recv() => {
                let Some(ev) = ev else { return };
                // A file's start and end are shown; its progress would flood the terminal.
                if !matches!(&ev, AgentEvent::Transfer(Transfer { state: TransferState::Progress { .. }, .. })) {
                    let _ = writeln!(out, "{}", render(&ev));
                    let _ = out.flush();
                }
                match ev {
                    AgentEvent::Transfer(t) => match t.state {
                        TransferState::Started { .. } => transfers.push(t.id),
                        TransferState::Done { .. } | TransferState::Failed { .. } => {
                            transfers.retain(|id| *id != t.id)
                        }
                        TransferState::Progress { .. } => {}
                    },
                    AgentEvent::ConsentRequested { .. } | AgentEvent::MoreRequested { .. } if !input_open => {
                        let _ = writeln!(out, "(no input to answer from: refusing)");
                        let _ = ui.commands.send(UserCommand::Consent(ScopeSet::EMPTY)).await;
                    }
                    AgentEvent::ConsentRequested { scopes, .. }
                    | AgentEvent::MoreRequested { scopes, .. } => pending = Some(scopes),
                    // The countdown ended without an answer: the prompt is over.
                    AgentEvent::MoreDecided { .. } => pending = None,
                    AgentEvent::Paired { .. } => paired = true,
                    AgentEvent::InviteRequested { .. } if !input_open => {
                        let _ = ui.commands.send(UserCommand::AnswerInvite(false)).await;
                    }
                    AgentEvent::InviteRequested { .. } => invite_pending = true,
                    AgentEvent::InviteDecided { .. } => invite_pending = false,
                    // Sharing may go on with a new code; the channel closing ends the front end.
                    AgentEvent::Ended { .. } => {
                        (pending, paired, invite_pending) = (None, false, false);
                    }
                    _ => {}
                }
            }
            // `next_line` is cancel-safe, so a line is never half-read.
            line = lines.next_line(), if input_open => match line {
                Ok(Some(l)) if l.trim().eq_ignore_ascii_case("q") => {
                    let _ = ui.commands.send(UserCommand::EndSession).await;
                }
                Ok(Some(l)) if pending.is_none() && l.trim().eq_ignore_ascii_case("r") => {
                    let _ = ui.commands.send(UserCommand::RevokeControl).await;
                }
                Ok(Some(l)) if pending.is_none() && !transfers.is_empty() && l.trim().eq_ignore_ascii_case("s") => {
                    for id in transfers.drain(..) {
                        let _ = ui.commands.send(UserCommand::StopTransfer(id)).await;
                    }
                }
                Ok(Some(l)) if pending.is_none() && l.trim().eq_ignore_ascii_case("c") => {
                    let _ = ui
                        .commands
                        .send(UserCommand::Revoke(tether_proto::Scope::Clipboard))
                        .await;
                }
                Ok(Some(l)) => {
                    if let Some(requested) = pending {
                        match parse_answer(&l, requested) {
                            Ok(granted) => {
                                pending = None;
                                let _ = ui.commands.send(UserCommand::Consent(granted)).await;
                            }
                            Err(again) => {
                                let _ = writeln!(out, "{again}");
                                let _ = out.flush();
                            }
                        }
                    } else if invite_pending {
                        invite_pending = false;
                        let yes = matches!(l.trim().to_ascii_lowercase().as_str(), "y" | "yes");
                        let _ = ui.commands.send(UserCommand::AnswerInvite(yes)).await;
                    } else if paired && !l.trim().is_empty() {
                        match ChatText::new(&l) {
                            Ok(text) => {
                                let _ = ui.commands.send(UserCommand::Chat(text)).await;
                            }
                            Err(e) => {
                                let _ = writeln!(out, "(not sent: {e})");
                            }
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    input_open = false;
                    if pending.take().is_some() {
                        let _ = ui.commands.send(UserCommand::Consent(ScopeSet::EMPTY)).await;
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::Scope;
    use tether_proto::msg::{TechnicianIdentity, TechnicianRole};
    use tokio::io::AsyncWriteExt;

    fn asked(scopes: ScopeSet) -> AgentEvent {
        let technician = TechnicianIdentity {
            name: "Ada".into(),
            org: "Acme".into(),
            role: TechnicianRole::Technician,
            tier: tether_proto::msg::Tier::L1,
        };
        let relay = "127.0.0.1:4433".into();
        AgentEvent::ConsentRequested {
            technician,
            scopes,
            timeout_secs: 60,
            first_contact: true,
            relay,
            verification: "123 456".into(),
            enrolled_by: None,
        }
    }

    /// A terminal whose output the test can wait on.
    struct Screen(std::sync::mpsc::Sender<String>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(String::from_utf8_lossy(buf).into_owned());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The terminal front end on a keyboard and a screen the test holds, and the session's side.
    fn front_end() -> (
        crate::ui::UiLink,
        tokio::io::DuplexStream,
        std::sync::mpsc::Receiver<String>,
        tokio::task::JoinHandle<()>,
    ) {
        let (link, handle) = crate::ui::channels();
        let (keyboard, input) = tokio::io::duplex(64);
        let (screen, shown) = std::sync::mpsc::channel();
        let front = tokio::spawn(run(
            handle,
            tokio::io::BufReader::new(input),
            Screen(screen),
        ));
        (link, keyboard, shown, front)
    }

    #[tokio::test]
    async fn typed_answers_and_q_become_commands() {
        let (mut link, mut keyboard, shown, front) = front_end();
        let both: ScopeSet = "inventory,diagnostics".parse().unwrap();
        link.events.send(asked(both)).await.unwrap();
        // Type only once the prompt is on screen, as a person would.
        let prompt =
            tokio::task::spawn_blocking(move || shown.iter().find(|s| s.contains("Allow?")));
        let prompt = prompt.await.unwrap().unwrap();
        assert!(
            prompt.contains("Ada of Acme asks to:") && prompt.contains("- inventory:"),
            "{prompt}"
        );
        keyboard.write_all(b"inventory\n").await.unwrap();
        let want: ScopeSet = [Scope::Inventory].into_iter().collect();
        assert_eq!(link.commands.recv().await, Some(UserCommand::Consent(want)));
        keyboard.write_all(b"q\n").await.unwrap();
        assert_eq!(link.commands.recv().await, Some(UserCommand::EndSession));
        link.events
            .send(AgentEvent::Ended {
                reason: tether_proto::msg::EndReason::UserEnded,
            })
            .await
            .unwrap();
        // Sharing may go on after a session; the front end ends when the session side goes.
        drop(link);
        front.await.unwrap();
    }

    /// Each clipboard use is printed with its text made safe, and `c` takes the clipboard back.
    #[tokio::test]
    async fn clipboard_use_is_shown_safely_and_c_takes_it_back() {
        use crate::ui::ClipboardUse;
        use tether_proto::clipboard::Selection;
        let (mut link, mut keyboard, shown, front) = front_end();
        link.events
            .send(AgentEvent::Clipboard {
                technician: "Ada\u{1b}[2J of Acme".into(),
                used: ClipboardUse::Put,
                selection: Selection::Clipboard,
                chars: 9,
                preview: "rm\u{1b}[31m\n-rf".into(),
            })
            .await
            .unwrap();
        let line = tokio::task::spawn_blocking(move || {
            shown
                .iter()
                .find(|s| s.contains("characters on your clipboard"))
        });
        let line = line.await.unwrap().unwrap();
        assert_eq!(
            line,
            "** Ada␛[2J of Acme put 9 characters on your clipboard: \"rm␛[31m␊-rf\". Type c and \
             Enter to stop clipboard sharing."
        );
        keyboard.write_all(b"c\n").await.unwrap();
        assert_eq!(
            link.commands.recv().await,
            Some(UserCommand::Revoke(Scope::Clipboard))
        );
        drop(link);
        front.await.unwrap();
    }

    /// Issue 16 item 6: the terminal asks for just the new scopes mid-session; the answer is a
    /// consent command, and after the prompt closes `r` takes control back again.
    #[tokio::test]
    async fn a_mid_session_ask_is_answered_like_the_first() {
        let (mut link, mut keyboard, shown, front) = front_end();
        let AgentEvent::ConsentRequested { technician, .. } = asked(ScopeSet::EMPTY) else {
            unreachable!()
        };
        let view: ScopeSet = "view".parse().unwrap();
        let control: ScopeSet = "control".parse().unwrap();
        link.events
            .send(AgentEvent::MoreRequested {
                technician: technician.clone(),
                scopes: control,
                granted: view,
                timeout_secs: 60,
                relay: "r".into(),
                verification: "123 456".into(),
            })
            .await
            .unwrap();
        let prompt = tokio::task::spawn_blocking(move || {
            (shown.iter().find(|s| s.contains("Allow?")), shown)
        });
        let (prompt, shown) = prompt.await.unwrap();
        let prompt = prompt.unwrap();
        assert!(
            prompt.contains("asks for more than you allowed so far (view)")
                && prompt.contains("- control:")
                && !prompt.contains("- view:"),
            "{prompt}"
        );
        // `r` is not an answer while asked: the question is asked again.
        keyboard.write_all(b"r\n").await.unwrap();
        let again = tokio::task::spawn_blocking(move || {
            (shown.iter().find(|s| s.contains("not an answer")), shown)
        });
        let (again, _shown) = again.await.unwrap();
        assert!(again.is_some());
        keyboard.write_all(b"y\n").await.unwrap();
        assert_eq!(
            link.commands.recv().await,
            Some(UserCommand::Consent(control))
        );
        link.events
            .send(AgentEvent::MoreDecided {
                technician,
                granted: "view,control".parse().unwrap(),
                added: control,
            })
            .await
            .unwrap();
        keyboard.write_all(b"r\n").await.unwrap();
        assert_eq!(link.commands.recv().await, Some(UserCommand::RevokeControl));
        drop(link);
        front.await.unwrap();
    }

    #[tokio::test]
    async fn closed_input_refuses() {
        let (mut link, handle) = crate::ui::channels();
        let front = tokio::spawn(run(
            handle,
            tokio::io::BufReader::new(tokio::io::empty()),
            std::io::sink(),
        ));
        link.events.send(asked(ScopeSet::all())).await.unwrap();
        assert_eq!(
            link.commands.recv().await,
            Some(UserCommand::Consent(ScopeSet::EMPTY))
        );
        drop(link);
        front.await.unwrap();
    }

    /// Issue 17 item 11: a typo at the consent prompt (`diagnostcs`) is not a refusal: the user is
    /// asked again. Only `n`, end of input or silence mean no.
    #[test]
    fn answers() {
        let asked: ScopeSet = "inventory,diagnostics".parse().unwrap();
        assert_eq!(parse_answer("y", asked), Ok(asked));
        assert_eq!(parse_answer(" YES ", asked), Ok(asked));
        assert_eq!(parse_answer("n", asked), Ok(ScopeSet::EMPTY));
        assert_eq!(parse_answer("No", asked), Ok(ScopeSet::EMPTY));
        assert!(parse_answer("", asked).is_err());
        assert!(parse_answer("maybe", asked).is_err());
        let typo = parse_answer("diagnostcs", asked).unwrap_err();
        assert!(typo.contains("not an answer"), "{typo}");
        assert_eq!(
            parse_answer("inventory", asked),
            Ok([Scope::Inventory].into_iter().collect())
        );
        // A scope that was not asked for is never granted by naming it.
        assert_eq!(
            parse_answer("inventory,control", asked),
            Ok([Scope::Inventory].into_iter().collect())
        );
        let only_unasked = parse_answer("control", asked).unwrap_err();
        assert!(only_unasked.contains("did not ask for"), "{only_unasked}");
    }

    /// Issue 17 item 11: after a typo the prompt is shown again, and the next answer counts.
    #[tokio::test]
    async fn a_typo_asks_again() {
        let (mut link, mut keyboard, shown, front) = front_end();
        let both: ScopeSet = "inventory,diagnostics".parse().unwrap();
        link.events.send(asked(both)).await.unwrap();
        // Type only once the prompt is on screen, as a person would.
        let shown = tokio::task::spawn_blocking(move || {
            shown.iter().find(|s| s.contains("Allow?"));
            shown
        })
        .await
        .unwrap();
        keyboard.write_all(b"diagnostcs\n").await.unwrap();
        let again =
            tokio::task::spawn_blocking(move || shown.iter().find(|s| s.contains("not an answer")));
        assert!(again.await.unwrap().is_some(), "the typo is explained");
        keyboard.write_all(b"diagnostics\n").await.unwrap();
        let want: ScopeSet = [Scope::Diagnostics].into_iter().collect();
        assert_eq!(link.commands.recv().await, Some(UserCommand::Consent(want)));
        drop(link);
        front.await.unwrap();
    }
}
