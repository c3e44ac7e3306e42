//! The session banner: who is connected (and an invited colleague), what they are doing now, the
//! last thing they did, and "Stop control".

use tether_proto::Scope;
use tether_proto::msg::{EndReason, TechnicianIdentity};

use super::{Action, Model, Screen, scope_words};
use crate::ui::UserCommand;

/// What the technician is doing right now, for the session banner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// A screen view is open.
    pub viewing: bool,
    /// The technician is using the mouse and keyboard.
    pub controlling: bool,
    /// Checks running now, in words (several run at once during a health check).
    pub checks: Vec<String>,
}

impl Activity {
    /// One line for the banner, e.g. "Viewing your screen, using your mouse and keyboard".
    pub fn words(&self) -> String {
        let mut parts = Vec::new();
        if self.viewing {
            parts.push("viewing your screen".to_string());
        }
        if self.controlling {
            parts.push("using your mouse and keyboard".to_string());
        }
        match self.checks.as_slice() {
            [] => {}
            [one] => parts.push(format!("running {one}")),
            many => parts.push(format!("running {} checks", many.len())),
        }
        if parts.is_empty() {
            return "Connected; not doing anything right now.".into();
        }
        let mut s = parts.join(", ");
        if let Some(first) = s.get(..1) {
            s = first.to_uppercase() + &s[1..];
        }
        s + "."
    }
}

impl Model {
    /// A technician claimed the code; a colleague claiming theirs keeps the session banner until
    /// their consent dialog.
    pub(super) fn claimed(&mut self, technician: &TechnicianIdentity) {
        if self.in_session() {
            self.set_doing(format!(
                "{} of {} is connecting. You will be asked what they may do.",
                technician.name, technician.org
            ));
        } else {
            self.notice = None;
            self.screen = Screen::Joining {
                technician: technician.clone(),
            }
        }
    }

    /// A check started.
    pub(super) fn running(&mut self, what: &str) {
        if let Some(a) = self.activity_mut() {
            a.checks.push(what.to_string());
        }
    }

    /// A request was refused for want of a scope.
    pub(super) fn refused(&mut self, what: &str, scope: Scope) {
        self.check_done(what);
        self.set_doing(format!(
            "Refused {what}: it needs \"{}\", which you did not allow.",
            scope_words(scope).to_lowercase()
        ))
    }

    /// A screen view opened or closed.
    pub(super) fn viewing(&mut self, technician: &str, display: u32, active: bool) {
        if let Some(a) = self.activity_mut() {
            a.viewing = active;
        }
        self.set_doing(if active {
            format!(
                "{technician} is viewing your screen (display {display}). \
                 \"End session\" stops it."
            )
        } else {
            format!("{technician} stopped viewing your screen.")
        });
    }

    /// The technician started or stopped using the mouse and keyboard.
    pub(super) fn controlling(&mut self, technician: &str, active: bool) {
        if let Some(a) = self.activity_mut() {
            a.controlling = active;
        }
        self.set_doing(if active {
            format!(
                "{technician} is using your mouse and keyboard. \"Stop control\" takes \
                 it back."
            )
        } else {
            format!("{technician} stopped using your mouse and keyboard.")
        });
    }

    /// The user took a scope back.
    pub(super) fn revoked(&mut self, scope: Scope) {
        if let Screen::Session {
            granted, activity, ..
        } = &mut self.screen
        {
            granted.remove(scope);
            if scope == Scope::Control {
                activity.controlling = false;
            }
        }
        self.set_doing(format!(
            "You took back \"{}\". The session goes on without it.",
            scope_words(scope).to_lowercase()
        ));
    }

    pub(super) fn activity_mut(&mut self) -> Option<&mut Activity> {
        match &mut self.screen {
            Screen::Session { activity, .. } => Some(activity),
            _ => None,
        }
    }

    pub(super) fn check_done(&mut self, what: &str) {
        if let Some(a) = self.activity_mut()
            && let Some(i) = a.checks.iter().position(|c| c == what)
        {
            a.checks.remove(i);
        }
    }

    /// One technician left while another stays: the banner names who is still there.
    pub(super) fn technician_left(&mut self, who: &str, reason: &EndReason) {
        let name = |t: &TechnicianIdentity| format!("{} of {}", t.name, t.org);
        // A colleague who left before the user answered them: back to the running session.
        if !self.in_session()
            && let Some(stashed) = self.stash.take()
        {
            self.screen = stashed;
        }
        if let Screen::Session {
            technician,
            granted,
            others,
            ..
        } = &mut self.screen
        {
            if name(technician) == who {
                if !others.is_empty() {
                    let (t, g) = others.remove(0);
                    *technician = t;
                    *granted = g;
                }
            } else {
                others.retain(|(t, _)| name(t) != who);
            }
            let stays = name(technician);
            self.set_doing(format!(
                "{who} left the session ({reason}). The session goes on with {stays}."
            ));
        }
    }

    /// Whether the banner offers "Stop control": only while `control` is granted (to any
    /// technician in the session).
    pub fn can_stop_control(&self) -> bool {
        matches!(&self.screen, Screen::Session { granted, others, .. }
            if granted.contains(Scope::Control)
                || others.iter().any(|(_, g)| g.contains(Scope::Control)))
    }

    /// Whether the banner offers "Stop clipboard sharing": only while `clipboard` is granted (to
    /// any technician in the session).
    pub fn can_stop_clipboard(&self) -> bool {
        matches!(&self.screen, Screen::Session { granted, others, .. }
            if granted.contains(Scope::Clipboard)
                || others.iter().any(|(_, g)| g.contains(Scope::Clipboard)))
    }

    /// "Stop clipboard sharing": takes back `clipboard` without ending the session.
    pub fn stop_clipboard(&mut self) -> Option<Action> {
        self.can_stop_clipboard()
            .then_some(Action::Send(UserCommand::Revoke(Scope::Clipboard)))
    }

    /// The banner's "Last:" line, for the window's standard output; `None` when there is none.
    pub fn doing_line(&self) -> Option<String> {
        match &self.screen {
            Screen::Session { doing: Some(d), .. } => Some(format!("last: {d}")),
            _ => None,
        }
    }

    /// One line saying what the banner shows now (who, what is allowed, what happens, whether
    /// "Stop control" is offered), for the window's standard output; `None` outside a session.
    pub fn banner_line(&self) -> Option<String> {
        let Screen::Session {
            technician,
            granted,
            activity,
            others,
            ..
        } = &self.screen
        else {
            return None;
        };
        let also: String = others
            .iter()
            .map(|(t, g)| format!(" | also: {} of {} (allowed: {g})", t.name, t.org))
            .collect();
        Some(format!(
            "banner: {} of {}{also} | allowed: {granted} | now: {} | stop control: {}",
            technician.name,
            technician.org,
            activity.words(),
            if self.can_stop_control() {
                "shown"
            } else {
                "hidden"
            }
        ))
    }

    /// "Stop control": takes back `control` without ending the session.
    pub fn stop_control(&mut self) -> Option<Action> {
        self.can_stop_control()
            .then_some(Action::Send(UserCommand::RevokeControl))
    }

    pub(super) fn set_doing(&mut self, what: String) {
        if let Screen::Session { doing, .. } = &mut self.screen {
            *doing = Some(what);
        }
    }
}
