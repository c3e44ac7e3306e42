//! The user's own record of sessions on this machine (`sessions.jsonl` in the agent's state dir), read
//! with `tether-agent log`. It is written from the same events the user sees, minus anything secret:
//! codes appear only as their slot, and there are never keys, keystrokes or pixels.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::ui::AgentEvent;

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
            AgentEvent::ConsentRequested {
                technician, scopes, ..
            } => json!({
                "event": "consent_requested", "technician": technician.name, "org": technician.org,
                "scopes": scopes.to_string()
            }),
            AgentEvent::ConsentDecided { granted } => {
                json!({"event": "consent", "granted": granted.to_string()})
            }
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
            // Served/Refused record the outcome; "running" adds nothing to the record.
            AgentEvent::Connected { .. }
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

    /// The log as lines for people.
    pub fn read(&self) -> std::io::Result<Vec<String>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                let mut s = format!("{} {}", v["ts_unix"], v["event"].as_str().unwrap_or("?"));
                for key in [
                    "technician",
                    "org",
                    "scopes",
                    "granted",
                    "what",
                    "scope",
                    "reason",
                    "slot",
                ] {
                    if !v[key].is_null() {
                        s.push_str(&format!(" {key}={}", v[key]));
                    }
                }
                s
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::{Scope, SessionCode};

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
            lines[1].contains("refused") && lines[1].contains("diagnostics"),
            "{}",
            lines[1]
        );
    }
}
