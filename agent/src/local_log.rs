//! The user's own record of sessions on this machine (`sessions.jsonl` in the agent's state dir), read
//! with `tether-agent log` and "Show my session log". It is written from the same events the user
//! sees, minus anything secret: codes appear only as their slot, and there are never keys, keystrokes
//! or pixels. It is read back as sentences with local times, newest first ([`LocalLog::read`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::ui::{AgentEvent, TransferState};

/// File name in the state dir.
pub const FILE: &str = "sessions.jsonl";

/// The default state directory: `$TETHER_AGENT_DATA`, else `$XDG_DATA_HOME/tether-agent`, else
/// `~/.local/share/tether-agent`.
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TETHER_AGENT_DATA") {
        return Some(d.into());
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return Some(PathBuf::from(d).join("tether-agent"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/tether-agent"))
}

/// Appends session events to the local log.
#[derive(Debug, Clone)]
pub struct LocalLog {
    path: PathBuf,
}

impl LocalLog {
    /// The log in `state_dir` (created on first write).
    pub fn new(state_dir: &Path) -> Self {
        LocalLog {
            path: state_dir.join(FILE),
        }
    }

    /// Records `event` if it is worth keeping.
    pub fn record(&self, event: &AgentEvent) {
        let entry = match event {
            AgentEvent::Code { code, .. } => json!({"event": "code_issued", "slot": code.slot.0}),
            AgentEvent::CodeExpired => json!({"event": "code_expired"}),
            AgentEvent::Claimed { technician } => {
                json!({"event": "claimed", "technician": technician.name, "org": technician.org})
            }
            AgentEvent::Declined { technician, reason } => {
                json!({"event": "declined", "technician": technician.name, "org": technician.org, "reason": reason})
            }
            AgentEvent::PairingFailed => json!({"event": "pairing_failed"}),
            AgentEvent::Unattended { technician, scopes } => json!({
                "event": "unattended", "technician": technician.name, "org": technician.org,
                "scopes": scopes.to_string()
            }),
            AgentEvent::ConsentRequested {
                technician, scopes, ..
            } => json!({
                "event": "consent_requested", "technician": technician.name, "org": technician.org,
                "scopes": scopes.to_string()
            }),
            AgentEvent::ConsentDecided { granted } => {
                json!({"event": "consent", "granted": granted.to_string()})
            }
            AgentEvent::MoreRequested {
                technician, scopes, ..
            } => json!({
                "event": "more_requested", "technician": technician.name, "org": technician.org,
                "scopes": scopes.to_string()
            }),
            AgentEvent::MoreDecided { granted, added, .. } => json!({
                "event": "more_answered", "added": added.to_string(), "granted": granted.to_string()
            }),
            AgentEvent::Served { what } => json!({"event": "served", "what": what}),
            AgentEvent::Refused { what, scope } => {
                json!({"event": "refused", "what": what, "scope": scope.name()})
            }
            AgentEvent::Ended { reason } => json!({"event": "ended", "reason": reason.to_string()}),
            AgentEvent::InviteRequested {
                by,
                invitee,
                handover,
                ..
            } => {
                json!({"event": "invite_requested", "by": by, "invitee": invitee, "handover": handover})
            }
            AgentEvent::InviteDecided { code_sent } => {
                json!({"event": "invite_answered", "allowed": code_sent})
            }
            AgentEvent::TechnicianLeft { technician, reason } => {
                json!({"event": "technician_left", "technician": technician, "reason": reason.to_string()})
            }
            AgentEvent::Chat { from, text } => {
                json!({"event": "chat", "from": from.as_deref().unwrap_or("you"), "text": text.as_str()})
            }
            AgentEvent::RelayLost { reason, .. } => {
                json!({"event": "relay_lost", "reason": reason})
            }
            AgentEvent::Viewing {
                technician,
                display,
                active,
            } => {
                let event = if *active {
                    "viewing_started"
                } else {
                    "viewing_stopped"
                };
                json!({"event": event, "technician": technician, "display": display})
            }
            AgentEvent::Controlling { technician, active } => {
                let event = if *active {
                    "control_started"
                } else {
                    "control_stopped"
                };
                json!({"event": event, "technician": technician})
            }
            AgentEvent::Revoked { scope } => json!({"event": "revoked", "scope": scope.name()}),
            // Every file that arrives or leaves: when it starts and how it ends.
            AgentEvent::Transfer(t) => {
                let base = json!({
                    "direction": t.direction.name(),
                    "technician": t.technician,
                    "path": t.path,
                    "size": t.total,
                });
                let (event, extra) = match &t.state {
                    TransferState::Started { offset } => {
                        ("file_started", json!({"resumed_at": offset}))
                    }
                    TransferState::Progress { .. } => return,
                    TransferState::Done { sha256 } => ("file_done", json!({"sha256": sha256})),
                    TransferState::Failed { reason } => ("file_failed", json!({"reason": reason})),
                };
                let mut entry = json!({"event": event});
                if let (Some(e), Some(b), Some(x)) =
                    (entry.as_object_mut(), base.as_object(), extra.as_object())
                {
                    e.extend(b.clone());
                    e.extend(x.clone());
                }
                entry
            }
            // How much and which clipboard, never the text (it may be a password).
            AgentEvent::Clipboard {
                technician,
                used,
                selection,
                chars,
                ..
            } => {
                let event = match used {
                    crate::ui::ClipboardUse::Read => "clipboard_read",
                    crate::ui::ClipboardUse::Put => "clipboard_put",
                };
                json!({"event": event, "technician": technician, "selection": selection.name(), "chars": chars})
            }
            AgentEvent::Path { direct } => json!({"event": "path", "direct": direct}),
            // Served/Refused record the outcome; "running" adds nothing to the record.
            AgentEvent::Connected { .. }
            | AgentEvent::Enrolled { .. }
            | AgentEvent::Paired { .. }
            | AgentEvent::Running { .. } => return,
        };
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut line = json!({"ts_unix": ts});
        if let (Some(l), Some(e)) = (line.as_object_mut(), entry.as_object()) {
            l.extend(e.clone());
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            tracing::warn!(error = %e, path = %self.path.display(), "cannot write the local session log");
        }
    }

    /// The log for people: one sentence per entry with its local date and time, newest first.
    pub fn read(&self) -> std::io::Result<Vec<String>> {
        self.read_in(&jiff::tz::TimeZone::system())
    }

    /// [`LocalLog::read`] with times in `tz`.
    pub fn read_in(&self, tz: &jiff::tz::TimeZone) -> std::io::Result<Vec<String>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        // A line that does not parse (a torn last write) is skipped rather than shown as noise.
        let mut lines: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| format!("{}  {}", local_time(&v["ts_unix"], tz), sentence(&v)))
            .collect();
        lines.reverse();
        Ok(lines)
    }
}

/// A stored Unix time as a local date and time, e.g. "2026-12-01 10:05:07 CET".
fn local_time(ts: &serde_json::Value, tz: &jiff::tz::TimeZone) -> String {
    match ts
        .as_i64()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
    {
        Some(t) => t
            .to_zoned_datetime(tz.clone())
            .strftime("%Y-%m-%d %H:%M:%S %Z")
            .to_string(),
        None => "(unknown time)".into(),
    }
}

/// What a scope let the technician do, in words for the log.
fn scope_words(list: &str) -> String {
    let words: Vec<&str> = list
        .split(',')
        .filter(|s| !s.is_empty() && *s != "(none)")
        .map(|s| match s.parse::<tether_proto::Scope>() {
            Ok(tether_proto::Scope::View) => "see your screen",
            Ok(tether_proto::Scope::Control) => "use your mouse and keyboard",
            Ok(tether_proto::Scope::Diagnostics) => "run checks",
            Ok(tether_proto::Scope::Inventory) => "read the hardware and software list",
            Ok(tether_proto::Scope::Clipboard) => "copy and paste",
            Ok(tether_proto::Scope::Files) => "send and receive files",
            Err(_) => s,
        })
        .collect();
    match words.as_slice() {
        [] => "nothing".into(),
        [one] => (*one).to_string(),
        [first @ .., last] => format!("{} and {last}", first.join(", ")),
    }
}

/// One stored entry as a sentence.
fn sentence(v: &serde_json::Value) -> String {
    let text = |key: &str| v[key].as_str().unwrap_or("").to_string();
    let who = || {
        let (name, org) = (text("technician"), text("org"));
        match (name.is_empty(), org.is_empty()) {
            (true, _) => "A technician".to_string(),
            (false, true) => name,
            (false, false) => format!("{name} of {org}"),
        }
    };
    let reason = || {
        let r = text("reason");
        if r.is_empty() {
            String::new()
        } else {
            format!(": {r}")
        }
    };
    match v["event"].as_str().unwrap_or("") {
        "code_issued" => "You got a code to read to your helper.".into(),
        "code_expired" => "The code expired without being used.".into(),
        "claimed" => format!("{} entered your code.", who()),
        "declined" => format!("{} was turned away{}.", who(), reason()),
        "pairing_failed" => "Someone entered a wrong code; it stopped working.".into(),
        "unattended" => format!(
            "{} started an unattended session, as your IT's policy allows, to {}; nobody was asked.",
            who(),
            scope_words(&text("scopes"))
        ),
        "consent_requested" => format!("{} asked to {}.", who(), scope_words(&text("scopes"))),
        "consent" => match scope_words(&text("granted")).as_str() {
            "nothing" => "You refused; nothing was shared.".into(),
            allowed => format!("You allowed them to {allowed}."),
        },
        "more_requested" => format!(
            "{} asked, during the session, to also {}.",
            who(),
            scope_words(&text("scopes"))
        ),
        "more_answered" => match scope_words(&text("added")).as_str() {
            "nothing" => "You did not allow more; the session went on as before.".into(),
            added => format!("You also allowed them to {added}."),
        },
        "served" => format!("Sent the technician {}.", text("what")),
        "refused" => format!(
            "Refused {}: you had not allowed them to {}.",
            text("what"),
            scope_words(&text("scope"))
        ),
        "ended" => format!("The session ended{}.", reason()),
        "invite_requested" => format!(
            "{} asked to bring in {}{}.",
            text("by"),
            text("invitee"),
            if v["handover"].as_bool() == Some(true) {
                " and hand the session over"
            } else {
                ""
            }
        ),
        "invite_answered" if v["allowed"].as_bool() == Some(true) => {
            "You let the colleague in.".into()
        }
        "invite_answered" => "You said no to the colleague.".into(),
        "technician_left" => format!("{} left{}.", text("technician"), reason()),
        "chat" => match text("from").as_str() {
            "you" => format!("You wrote: {}", text("text")),
            from => format!("{from} wrote: {}", text("text")),
        },
        "relay_lost" => format!("The connection to the relay was lost{}.", reason()),
        "viewing_started" => format!("{} started viewing your screen.", text("technician")),
        "viewing_stopped" => format!("{} stopped viewing your screen.", text("technician")),
        "control_started" => format!(
            "{} started using your mouse and keyboard.",
            text("technician")
        ),
        "control_stopped" => format!(
            "{} stopped using your mouse and keyboard.",
            text("technician")
        ),
        "clipboard_read" | "clipboard_put" => {
            let what = match text("selection").as_str() {
                "primary" => "your highlighted text (primary selection)",
                _ => "your clipboard",
            };
            let chars = v["chars"].as_u64().unwrap_or(0);
            if text("event") == "clipboard_read" {
                format!("{} read {what} ({chars} characters).", text("technician"))
            } else {
                format!("{} put {chars} characters on {what}.", text("technician"))
            }
        }
        "revoked" => format!(
            "You took back the permission to {}.",
            scope_words(&text("scope"))
        ),
        "file_started" | "file_done" | "file_failed" => {
            let size = crate::ui::size_words(v["size"].as_u64().unwrap_or(0));
            let (file, path, who) = (text("direction"), text("path"), text("technician"));
            match (v["event"].as_str().unwrap_or(""), file.as_str()) {
                ("file_started", "push") => format!("{who} started sending you {path} ({size})."),
                ("file_started", _) => format!("{who} started copying your file {path} ({size})."),
                ("file_done", "push") => format!(
                    "Received {path} ({size}) from {who}, SHA-256 {}.",
                    text("sha256")
                ),
                ("file_done", _) => format!("{who} copied your file {path} ({size})."),
                (_, _) => format!("The transfer of {path} failed: {}.", text("reason")),
            }
        }
        other => format!("({other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::{Scope, SessionCode};

    #[test]
    fn every_file_is_recorded_but_not_its_progress() {
        use crate::ui::{Transfer, TransferState};
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::new(dir.path());
        let t = |state| {
            AgentEvent::Transfer(Transfer {
                id: 1,
                direction: tether_proto::records::FileDirection::Pull,
                technician: "Ada of Acme".into(),
                path: "/home/u/report.pdf".into(),
                total: 2_000_000,
                state,
            })
        };
        log.record(&t(TransferState::Started { offset: 0 }));
        log.record(&t(TransferState::Progress { done: 5 }));
        log.record(&t(TransferState::Failed {
            reason: "the user stopped the transfer".into(),
        }));
        let lines = log.read().unwrap();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines.iter().any(|l| l
                .contains("Ada of Acme started copying your file /home/u/report.pdf (2.0 MB).")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains(
                "The transfer of /home/u/report.pdf failed: the user stopped the transfer"
            )),
            "{lines:?}"
        );
    }

    #[test]
    fn records_facts_but_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::new(dir.path());
        let code: SessionCode = "417 302 958".parse().unwrap();
        log.record(&AgentEvent::Code {
            code,
            expires_in_secs: 600,
            reason: None,
        });
        log.record(&AgentEvent::Refused {
            what: "the uptime diagnostic".into(),
            scope: Scope::Diagnostics,
        });
        let raw = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(
            // The secret's digits in any form (timestamps may hold "302" or "958" by chance).
            raw.contains("\"slot\":417") && !raw.contains("302958") && !raw.contains("302 958"),
            "{raw}"
        );
        let lines = log.read().unwrap();
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].contains("Refused the uptime diagnostic"),
            "{lines:?}"
        );
    }

    /// Clipboard use is logged each time as how much of which clipboard, never the text.
    #[test]
    fn clipboard_use_is_logged_without_the_text() {
        use crate::ui::ClipboardUse;
        use tether_proto::clipboard::Selection;
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::new(dir.path());
        for (used, selection) in [
            (ClipboardUse::Put, Selection::Clipboard),
            (ClipboardUse::Read, Selection::Primary),
        ] {
            log.record(&AgentEvent::Clipboard {
                technician: "Ada of Acme".into(),
                used,
                selection,
                chars: 11,
                preview: "hunter2-pw".into(),
            });
        }
        let raw = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!raw.contains("hunter2"), "{raw}");
        let lines = log.read_in(&jiff::tz::TimeZone::UTC).unwrap();
        assert!(
            lines[0].ends_with(
                "Ada of Acme read your highlighted text (primary selection) (11 characters)."
            ),
            "{lines:?}"
        );
        assert!(
            lines[1].ends_with("Ada of Acme put 11 characters on your clipboard."),
            "{lines:?}"
        );
    }

    /// Issue 17 item 12: the log reads as sentences with local times, newest first, never raw
    /// event names, slots or Unix seconds.
    /// Issue 16 item 6: an ask for more and its answer read as sentences in the session log.
    #[test]
    fn an_ask_for_more_reads_as_sentences() {
        let dir = tempfile::tempdir().unwrap();
        let log = LocalLog::new(dir.path());
        let technician = tether_proto::msg::TechnicianIdentity {
            name: "Ada".into(),
            org: "Acme".into(),
            role: tether_proto::msg::TechnicianRole::Technician,
            tier: tether_proto::msg::Tier::L1,
        };
        let control: tether_proto::ScopeSet = "control".parse().unwrap();
        log.record(&AgentEvent::MoreRequested {
            technician: technician.clone(),
            scopes: control,
            granted: "view".parse().unwrap(),
            timeout_secs: 60,
            relay: "r".into(),
            verification: "1".into(),
        });
        log.record(&AgentEvent::MoreDecided {
            technician,
            granted: "view".parse().unwrap(),
            added: tether_proto::ScopeSet::EMPTY,
        });
        let lines = log.read_in(&jiff::tz::TimeZone::UTC).unwrap();
        assert!(
            lines[0].ends_with("You did not allow more; the session went on as before."),
            "{lines:?}"
        );
        assert!(
            lines[1].ends_with(
                "Ada of Acme asked, during the session, to also use your mouse and keyboard."
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn reads_as_sentences_with_local_times_newest_first() {
        use tether_proto::msg::EndReason;
        let dir = tempfile::tempdir().unwrap();
        let raw = [
            r#"{"ts_unix":1795545267,"event":"code_issued","slot":953}"#.to_string(),
            r#"{"ts_unix":1795545300,"event":"consent_requested","technician":"Ada Lovelace","org":"Acme IT","scopes":"view,control"}"#.to_string(),
            r#"{"ts_unix":1795545310,"event":"consent","granted":"view"}"#.to_string(),
            format!(
                r#"{{"ts_unix":1795545400,"event":"ended","reason":"{}"}}"#,
                EndReason::UserEnded
            ),
        ];
        std::fs::write(dir.path().join(FILE), raw.join("\n") + "\n").unwrap();
        // Central European winter time: an hour ahead of UTC.
        let cet = jiff::tz::TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let lines = LocalLog::new(dir.path()).read_in(&cet).unwrap();
        assert_eq!(
            lines,
            [
                format!(
                    "2026-11-24 19:36:40 CET  The session ended: {}.",
                    EndReason::UserEnded
                ),
                "2026-11-24 19:35:10 CET  You allowed them to see your screen.".into(),
                "2026-11-24 19:35:00 CET  Ada Lovelace of Acme IT asked to see your screen and \
                 use your mouse and keyboard."
                    .into(),
                "2026-11-24 19:34:27 CET  You got a code to read to your helper.".to_string(),
            ]
        );
        // A refusal of everything, and an event this version does not know, still read well.
        let log = LocalLog::new(dir.path());
        log.record(&AgentEvent::ConsentDecided {
            granted: tether_proto::ScopeSet::EMPTY,
        });
        let newest = &log.read_in(&cet).unwrap()[0];
        assert!(
            newest.ends_with("You refused; nothing was shared."),
            "{newest}"
        );
    }
}
