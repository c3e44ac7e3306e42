//! What the agent window shows and what each click sends, without any drawing.
//!
//! [`Model`] is fed [`AgentEvent`]s and the user's clicks; it answers with the [`Action`] the front
//! end must carry out. Time is passed in, so countdowns are tested without waiting.
//!
//! # Layout
//! - `mod.rs`: the [`Screen`], the [`Action`], the [`Model`] and [`Model::on_event`], one arm per
//!   event (no wildcard: a new event does not compile until the window knows what to show).
//! - `code.rs`: start, the code, the relay outage, and the end with the session log.
//! - `consent.rs`: the consent dialog (first consent, an ask for more, a colleague's).
//! - `banner.rs`: the session banner: who is in, what they do, "Stop control".
//! - `chat.rs`: the conversation.
//! - `invite.rs`: a technician asking to bring in a colleague.
//! - `transfers.rs`: files arriving and leaving: a running notice each, with Stop.

use std::time::{Duration, Instant};

use tether_proto::ScopeSet;
use tether_proto::msg::TechnicianIdentity;

use crate::ui::{AgentEvent, UserCommand};

mod banner;
mod chat;
mod code;
mod consent;
mod invite;
mod transfers;

pub use banner::Activity;
pub use chat::{Chat, ChatLine};
pub use code::Outage;
pub use consent::{CONSENT_GRACE, Consent, scope_words};
pub use invite::InvitePrompt;
pub use transfers::{FileNotice, Transfers};

/// Which screen the window shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Nothing running: a "Get help" button.
    Start,
    /// Sharing started; no code yet.
    Connecting,
    /// Read this code to the technician.
    Code {
        /// The code in groups of three digits.
        code: String,
        /// When it stops working.
        expires_at: Instant,
    },
    /// A technician claimed the code; pairing and the consent request follow.
    Joining {
        /// Who claimed it.
        technician: TechnicianIdentity,
    },
    /// The technician asks for access.
    Consent(Consent),
    /// A session runs.
    Session {
        /// Who is connected.
        technician: TechnicianIdentity,
        /// What the user allowed.
        granted: ScopeSet,
        /// The last thing the technician did (served or refused), in words.
        doing: Option<String>,
        /// What they are doing right now.
        activity: Activity,
        /// Other technicians in the same session (a colleague who was invited in), with what the
        /// user allowed each of them.
        others: Vec<(TechnicianIdentity, ScopeSet)>,
    },
    /// Sharing is over.
    Ended {
        /// Why, in words.
        reason: String,
        /// The local session log, once the user asked to see it.
        log: Option<Vec<String>>,
    },
}

/// What the front end must do after a click or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start sharing (connect to the relay and get a code).
    StartShare,
    /// End the current sharing and start a new one (a fresh code).
    NewCode,
    /// Send this to the session.
    Send(UserCommand),
    /// Read the local session log and hand it to [`Model::show_log`].
    ReadLog,
}

/// The window's state machine.
#[derive(Debug, Clone)]
pub struct Model {
    /// The current screen.
    pub screen: Screen,
    /// A one-line notice above the screen (e.g. "your code expired"), cleared by the next code.
    pub notice: Option<String>,
    /// Whether the user has ended the session and we wait for the session side to confirm.
    pub ending: bool,
    /// The verification string of the current pairing (the technician sees the same).
    pub verification: Option<String>,
    /// What the user asked for help with (`--reason`), shown with the code.
    pub reason: Option<String>,
    /// The conversation with the technicians.
    pub chat: Chat,
    /// An invitation waiting for the user's answer.
    pub invite: Option<InvitePrompt>,
    /// The running session, kept while a colleague's consent dialog shows in its place.
    stash: Option<Screen>,
    /// The relay is unreachable and sharing is retrying.
    pub outage: Option<Outage>,
    /// The desktop's own dialog asks again before the screen is shared or controlled (the portal).
    pub desktop_asks: bool,
    /// How the screen is shared, in words (shown with the code).
    pub backend: Option<String>,
    /// Files arriving and leaving.
    pub transfers: Transfers,
    /// The per-user agent of an enrolled computer: the organisation that enrolled it, and what
    /// its policy lets technicians use without asking.
    pub enrolled: Option<(String, ScopeSet)>,
    /// Whether the session's packets go directly between the computers (`Some(true)`) or
    /// through the relay; `None` before the end-to-end connection is made.
    pub direct: Option<bool>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            screen: Screen::Start,
            notice: None,
            ending: false,
            verification: None,
            reason: None,
            chat: Chat::default(),
            invite: None,
            stash: None,
            outage: None,
            desktop_asks: false,
            backend: None,
            transfers: Transfers::default(),
            enrolled: None,
            direct: None,
        }
    }
}

/// Formats seconds as `m:ss`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

impl Model {
    /// A fresh window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a session (consent given) is running: the window stays on top.
    pub fn in_session(&self) -> bool {
        matches!(self.screen, Screen::Session { .. })
    }

    /// Whether the window stays on top: during a session, including while a colleague's consent
    /// dialog shows in place of its banner.
    pub fn on_top(&self) -> bool {
        self.in_session() || self.stash.is_some()
    }

    /// Applies one event from the session.
    pub fn on_event(&mut self, ev: &AgentEvent, now: Instant) {
        match ev {
            AgentEvent::Connected { .. } => self.outage = None,
            AgentEvent::Enrolled { org, unattended } => {
                self.enrolled = Some((org.clone(), *unattended));
                self.screen = Screen::Connecting;
            }
            AgentEvent::Code {
                code,
                expires_in_secs,
                reason,
            } => self.code_shown(code.to_string(), *expires_in_secs, reason.clone(), now),
            AgentEvent::CodeExpired => {
                self.notice = Some("Your code expired unused. Here is a new one.".into())
            }
            AgentEvent::Declined { technician, reason } => {
                self.notice = Some(format!(
                    "Refused a connection from {} of {}: {reason}.",
                    technician.name, technician.org
                ))
            }
            AgentEvent::Unattended { technician, scopes } => {
                self.notice = Some(format!(
                    "{} of {} started an unattended session, as your IT's policy allows, for: \
                     {scopes}. Nobody was asked. You can end it.",
                    technician.name, technician.org
                ))
            }
            AgentEvent::PairingFailed => {
                self.notice = Some(
                    "Someone entered a wrong code. That code no longer works; here is a new one."
                        .into(),
                )
            }
            AgentEvent::Claimed { technician } => self.claimed(technician),
            AgentEvent::Paired { verification } => {
                self.verification = Some(verification.clone());
                self.chat.open = true;
            }
            AgentEvent::ConsentRequested {
                technician,
                scopes,
                timeout_secs,
                first_contact,
                relay,
                verification,
                enrolled_by,
            } => self.consent_requested(Consent {
                technician: technician.clone(),
                relay: relay.clone(),
                requested: *scopes,
                ticked: ScopeSet::EMPTY,
                deadline: now + Duration::from_secs(*timeout_secs),
                first_contact: *first_contact,
                verification: verification.clone(),
                more: None,
                enrolled_by: enrolled_by.clone(),
            }),
            // The running session's technician asks for more: the same dialog over the banner,
            // nothing ticked, and the banner comes back with the answer.
            AgentEvent::MoreRequested {
                technician,
                scopes,
                granted,
                timeout_secs,
                relay,
                verification,
            } => self.consent_requested(Consent {
                technician: technician.clone(),
                relay: relay.clone(),
                requested: *scopes,
                ticked: ScopeSet::EMPTY,
                deadline: now + Duration::from_secs(*timeout_secs),
                first_contact: false,
                verification: verification.clone(),
                more: Some(*granted),
                enrolled_by: None,
            }),
            AgentEvent::MoreDecided {
                technician,
                granted,
                added,
            } => self.more_decided(technician, *granted, *added),
            AgentEvent::ConsentDecided { granted } => self.consent_decided(*granted),
            AgentEvent::Chat { from, text } => self.chat.received(from.as_deref(), text.as_str()),
            AgentEvent::InviteRequested {
                by,
                invitee,
                handover,
                timeout_secs,
            } => {
                self.invite = Some(InvitePrompt {
                    by: by.clone(),
                    invitee: invitee.clone(),
                    handover: *handover,
                    deadline: now + Duration::from_secs(*timeout_secs),
                })
            }
            AgentEvent::InviteDecided { code_sent } => self.invite_decided(*code_sent),
            AgentEvent::TechnicianLeft { technician, reason } => {
                self.technician_left(technician, reason)
            }
            AgentEvent::Running { what } => self.running(what),
            AgentEvent::Served { what } => {
                self.check_done(what);
                self.set_doing(format!("Sent {what}."))
            }
            AgentEvent::Refused { what, scope } => self.refused(what, *scope),
            AgentEvent::Viewing {
                technician,
                display,
                active,
            } => self.viewing(technician, *display, *active),
            AgentEvent::Controlling { technician, active } => self.controlling(technician, *active),
            AgentEvent::Clipboard {
                technician,
                used,
                selection,
                chars,
                preview,
            } => self.set_doing(AgentEvent::clipboard_words(
                technician, *used, *selection, *chars, preview,
            )),
            AgentEvent::Revoked { scope } => self.revoked(*scope),
            AgentEvent::Path { direct } => self.direct = Some(*direct),
            AgentEvent::Ended { reason } => {
                self.direct = None;
                self.transfers.session_ended();
                self.ended(format!("Session ended: {}.", crate::ui::end_words(reason)))
            }
            AgentEvent::Transfer(t) => self.transfers.on_transfer(t),
            AgentEvent::RelayLost { reason, retry_in } => self.relay_lost(reason, *retry_in, now),
        }
    }

    /// Called every frame: the consent and invitation countdowns refuse at zero.
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        if self.invite.as_ref().is_some_and(|i| now >= i.deadline) {
            return self.answer_invite(false);
        }
        match &self.screen {
            Screen::Consent(c) if now >= c.deadline + CONSENT_GRACE => self.deny(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::Scope;
    use tether_proto::chat::ChatText;
    use tether_proto::msg::EndReason;
    use tether_proto::msg::TechnicianRole;

    fn ada() -> TechnicianIdentity {
        TechnicianIdentity {
            name: "Ada".into(),
            org: "Acme".into(),
            role: TechnicianRole::Technician,
            tier: tether_proto::msg::Tier::L1,
        }
    }

    fn asked(m: &mut Model, scopes: ScopeSet, now: Instant) {
        m.on_event(
            &AgentEvent::ConsentRequested {
                technician: ada(),
                scopes,
                timeout_secs: 30,
                first_contact: true,
                relay: "127.0.0.1:1 (certificate ab…)".into(),
                verification: "111 111".into(),
                enrolled_by: None,
            },
            now,
        );
    }

    /// Issue 17 item 3: a colleague's consent dialog shows the verification code of the colleague's
    /// session, not the first technician's.
    #[test]
    fn each_dialog_shows_its_own_sessions_verification_code() {
        let now = Instant::now();
        let mut m = Model::new();
        m.on_event(
            &AgentEvent::Paired {
                verification: "111 111".into(),
            },
            now,
        );
        asked(&mut m, "view".parse().unwrap(), now);
        assert!(m.consent_line().unwrap().contains("verification: 111 111"));
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view".parse().unwrap(),
            },
            now,
        );
        grace_asks(&mut m, "view".parse().unwrap(), now);
        let line = m.consent_line().unwrap();
        assert!(
            line.contains("Grace of Acme | verification: 222 222"),
            "{line}"
        );
    }

    /// Issue 17 item 7: the user is told in their own words why the session ended.
    #[test]
    fn end_messages_fit_the_user() {
        let now = Instant::now();
        for (reason, words) in [
            (
                EndReason::UserEnded,
                "Session ended: you ended the session.",
            ),
            (
                EndReason::ConsentTimeout,
                "Session ended: you did not answer in time, so nothing was shared.",
            ),
            (
                EndReason::NoRequest { secs: 300 },
                "Session ended: no request within 5 minutes.",
            ),
        ] {
            let mut m = Model::new();
            asked(&mut m, "view".parse().unwrap(), now);
            m.on_event(&AgentEvent::Ended { reason }, now);
            assert!(
                matches!(&m.screen, Screen::Ended { reason, .. } if reason == words),
                "{:?}",
                m.screen
            );
        }
    }

    /// Issue 17 item 9: during an outage the code is not offered, the countdown is the truth at
    /// every moment (and never frozen or negative), and the new code clears the banner.
    #[test]
    fn an_outage_hides_the_code_counts_down_and_clears() {
        let now = Instant::now();
        let mut m = Model::new();
        m.get_help();
        m.on_event(
            &AgentEvent::Code {
                code: "123456789".parse().unwrap(),
                expires_in_secs: 600,
                reason: None,
            },
            now,
        );
        m.on_event(
            &AgentEvent::RelayLost {
                reason: "timed out".into(),
                retry_in: Some(Duration::from_millis(4_600)),
            },
            now,
        );
        assert_eq!(m.screen, Screen::Connecting, "the dead code is not shown");
        let at = |secs: f64| m.notice_text(now + Duration::from_secs_f64(secs)).unwrap();
        assert!(
            at(0.0).contains("does not work until a new one shows"),
            "{}",
            at(0.0)
        );
        assert!(at(0.0).contains("Trying again in 5 s."), "{}", at(0.0));
        assert!(at(2.5).contains("Trying again in 3 s."), "{}", at(2.5));
        assert!(at(30.0).contains("Trying to reconnect now"), "{}", at(30.0));
        m.on_event(
            &AgentEvent::Code {
                code: "987654321".parse().unwrap(),
                expires_in_secs: 600,
                reason: None,
            },
            now + Duration::from_secs(31),
        );
        assert_eq!(m.notice_text(now + Duration::from_secs(31)), None);
        assert!(matches!(m.screen, Screen::Code { .. }));
    }

    /// Issue 17 item 10: the window's banner never gives terminal instructions ("Type r and Enter").
    #[test]
    fn the_banner_speaks_of_buttons_not_keys() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, "view,control".parse().unwrap(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view,control".parse().unwrap(),
            },
            now,
        );
        for ev in [
            AgentEvent::Viewing {
                technician: "Ada of Acme".into(),
                display: 0,
                active: true,
            },
            AgentEvent::Controlling {
                technician: "Ada of Acme".into(),
                active: true,
            },
            AgentEvent::InviteDecided { code_sent: true },
        ] {
            m.on_event(&ev, now);
            let line = m.doing_line().unwrap();
            assert!(
                !line.contains("Type") && !line.contains("Enter"),
                "terminal words in the window: {line}"
            );
        }
        m.on_event(
            &AgentEvent::Controlling {
                technician: "Ada of Acme".into(),
                active: true,
            },
            now,
        );
        assert!(
            m.doing_line()
                .unwrap()
                .contains("\"Stop control\" takes it back")
        );
    }

    /// The window's own countdown answers "no" only after the session's timer (which started
    /// first) had its chance, so a timeout reads as a timeout and not as a refusal.
    #[test]
    fn the_windows_countdown_leaves_the_timeout_to_the_session() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, "view".parse().unwrap(), now);
        assert_eq!(m.tick(now + Duration::from_secs(30)), None);
        assert_eq!(
            m.tick(now + Duration::from_secs(30) + CONSENT_GRACE),
            Some(Action::Send(UserCommand::Consent(ScopeSet::EMPTY)))
        );
    }

    /// Ticks everything asked for, then "Allow".
    fn allow_all(m: &mut Model) {
        if let Screen::Consent(c) = &m.screen {
            for s in c.requested.iter().collect::<Vec<_>>() {
                m.toggle(s);
            }
        }
        assert!(m.allow().is_some());
    }

    #[test]
    fn get_help_then_code_then_new_code() {
        let now = Instant::now();
        let mut m = Model::new();
        assert_eq!(m.new_code(), None, "no code to replace yet");
        assert_eq!(m.get_help(), Some(Action::StartShare));
        assert_eq!(m.get_help(), None, "already sharing");
        let code = tether_proto::SessionCode::new(tether_proto::Slot(123), &mut rand::rngs::OsRng);
        m.on_event(
            &AgentEvent::Code {
                code,
                expires_in_secs: 600,
                reason: None,
            },
            now,
        );
        let Screen::Code {
            code: shown,
            expires_at,
        } = &m.screen
        else {
            panic!("{:?}", m.screen)
        };
        assert_eq!(shown, &code.to_string());
        assert_eq!(*expires_at - now, Duration::from_secs(600));
        assert_eq!(m.new_code(), Some(Action::NewCode));
        assert_eq!(m.screen, Screen::Connecting);
    }

    /// The banner tells the user each time the technician read or put clipboard text, showing
    /// the text only through `display_safe` (an escape or a line break cannot restyle the window).
    #[test]
    fn clipboard_use_shows_on_the_banner_made_safe() {
        use crate::ui::ClipboardUse;
        use tether_proto::clipboard::{Selection, preview};
        let now = Instant::now();
        let mut m = Model::new();
        let granted: ScopeSet = "clipboard".parse().unwrap();
        asked(&mut m, granted, now);
        m.on_event(&AgentEvent::ConsentDecided { granted }, now);
        let text = "naïve\tcafé\n日本\u{1b}[2J\u{202e}";
        m.on_event(
            &AgentEvent::Clipboard {
                technician: "Ada of Acme".into(),
                used: ClipboardUse::Put,
                selection: Selection::Clipboard,
                chars: text.chars().count(),
                preview: preview(text),
            },
            now,
        );
        let line = m.doing_line().unwrap();
        assert_eq!(
            line,
            "last: Ada of Acme put 18 characters on your clipboard: \"naïve café␊日本␛[2J\u{fffd}\"."
        );
        // A preview that was not made safe (a front end's bug) is made safe here too.
        m.on_event(
            &AgentEvent::Clipboard {
                technician: "Ada\u{202e} of Acme".into(),
                used: ClipboardUse::Read,
                selection: Selection::Primary,
                chars: 2,
                preview: "a\nb".into(),
            },
            now,
        );
        let line = m.doing_line().unwrap();
        assert_eq!(
            line,
            "last: Ada\u{fffd} of Acme read your highlighted text (primary selection) (2 characters: \"a␊b\")."
        );
        // "Stop clipboard sharing" takes back just the clipboard, and goes once it is gone.
        assert!(m.can_stop_clipboard());
        assert_eq!(
            m.stop_clipboard(),
            Some(Action::Send(UserCommand::Revoke(Scope::Clipboard)))
        );
        m.on_event(
            &AgentEvent::Revoked {
                scope: Scope::Clipboard,
            },
            now,
        );
        assert!(!m.can_stop_clipboard());
        assert_eq!(m.stop_clipboard(), None);
    }

    #[test]
    fn allow_sends_exactly_the_ticked_scopes() {
        let now = Instant::now();
        let mut m = Model::new();
        m.on_event(
            &AgentEvent::Paired {
                verification: "123 456".into(),
            },
            now,
        );
        assert_eq!(m.verification.as_deref(), Some("123 456"));
        let asked_for: ScopeSet = "view,control,inventory".parse().unwrap();
        asked(&mut m, asked_for, now);
        m.toggle(Scope::View);
        m.toggle(Scope::Inventory);
        m.toggle(Scope::Diagnostics); // not asked for: no effect
        let want: ScopeSet = "view,inventory".parse().unwrap();
        assert_eq!(m.allow(), Some(Action::Send(UserCommand::Consent(want))));
        assert_eq!(m.allow(), None, "answered once only");
        m.on_event(&AgentEvent::ConsentDecided { granted: want }, now);
        assert!(m.in_session());
        m.on_event(
            &AgentEvent::Served {
                what: "the inventory summary".into(),
            },
            now,
        );
        let Screen::Session {
            granted,
            doing,
            technician,
            ..
        } = &m.screen
        else {
            panic!()
        };
        assert_eq!(*granted, want);
        assert_eq!(technician.name, "Ada");
        assert_eq!(doing.as_deref(), Some("Sent the inventory summary."));
    }

    /// Issue 17 item 1: nothing is pre-ticked, and "Allow" is not offered with nothing ticked
    /// (ticking then unticking leaves it unoffered); only "Deny" answers then.
    #[test]
    fn nothing_is_pre_ticked_and_allow_needs_a_tick() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, ScopeSet::all(), now);
        let Screen::Consent(c) = &m.screen else {
            panic!("{:?}", m.screen)
        };
        assert_eq!(c.ticked, ScopeSet::EMPTY, "nothing pre-ticked");
        assert!(!c.can_allow());
        assert_eq!(m.allow(), None, "Allow is not offered with nothing ticked");
        assert!(matches!(m.screen, Screen::Consent(_)), "still asking");
        m.toggle(Scope::View);
        m.toggle(Scope::View);
        assert_eq!(m.allow(), None, "ticked and unticked again: still nothing");
        m.toggle(Scope::Inventory);
        assert_eq!(
            m.allow(),
            Some(Action::Send(UserCommand::Consent(
                [Scope::Inventory].into_iter().collect()
            )))
        );
    }

    #[test]
    fn deny_and_countdown_refuse() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, ScopeSet::all(), now);
        assert_eq!(
            m.deny(),
            Some(Action::Send(UserCommand::Consent(ScopeSet::EMPTY)))
        );

        let mut m = Model::new();
        asked(&mut m, ScopeSet::all(), now);
        assert_eq!(m.tick(now + Duration::from_secs(29)), None);
        assert_eq!(
            m.tick(now + Duration::from_secs(30) + CONSENT_GRACE),
            Some(Action::Send(UserCommand::Consent(ScopeSet::EMPTY)))
        );
        assert_eq!(m.tick(now + Duration::from_secs(31)), None, "sent once");
    }

    #[test]
    fn end_then_log() {
        let now = Instant::now();
        let mut m = Model::new();
        assert_eq!(m.end_session(), None);
        asked(&mut m, ScopeSet::all(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: ScopeSet::all(),
            },
            now,
        );
        assert_eq!(m.end_session(), Some(Action::Send(UserCommand::EndSession)));
        assert!(m.ending);
        m.on_event(
            &AgentEvent::Ended {
                reason: EndReason::UserEnded,
            },
            now,
        );
        assert!(!m.in_session());
        assert_eq!(m.want_log(), Some(Action::ReadLog));
        m.show_log(vec!["line".into()]);
        let Screen::Ended { reason, log } = &m.screen else {
            panic!()
        };
        assert_eq!(reason, "Session ended: you ended the session.");
        assert_eq!(log.as_deref(), Some(&["line".to_string()][..]));
        // The share task finishing afterwards keeps the ended screen.
        m.on_share_stopped(Ok(EndReason::UserEnded));
        assert!(matches!(m.screen, Screen::Ended { .. }));
        assert_eq!(m.get_help(), Some(Action::StartShare));
    }

    #[test]
    fn banner_says_what_happens_and_stop_control_revokes() {
        let now = Instant::now();
        let mut m = Model::new();
        assert_eq!(m.stop_control(), None, "no session");
        asked(&mut m, "view,control,diagnostics".parse().unwrap(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view,control,diagnostics".parse().unwrap(),
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(line.contains("not doing anything"), "{line}");
        assert!(line.ends_with("stop control: shown"), "{line}");
        for ev in [
            AgentEvent::Viewing {
                technician: "Ada of Acme".into(),
                display: 0,
                active: true,
            },
            AgentEvent::Controlling {
                technician: "Ada of Acme".into(),
                active: true,
            },
            AgentEvent::Running {
                what: "the uptime check".into(),
            },
        ] {
            m.on_event(&ev, now);
        }
        let line = m.banner_line().unwrap();
        assert!(
            line.contains(
                "now: Viewing your screen, using your mouse and keyboard, running the uptime check."
            ),
            "{line}"
        );
        m.on_event(
            &AgentEvent::Served {
                what: "the uptime check".into(),
            },
            now,
        );
        assert_eq!(
            m.stop_control(),
            Some(Action::Send(UserCommand::RevokeControl))
        );
        m.on_event(
            &AgentEvent::Revoked {
                scope: Scope::Control,
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(
            line.contains("allowed: view,diagnostics | now: Viewing your screen. |"),
            "{line}"
        );
        assert!(line.ends_with("stop control: hidden"), "{line}");
        assert_eq!(m.stop_control(), None, "control is no longer granted");
    }

    #[test]
    fn failure_and_early_stop() {
        let mut m = Model::new();
        m.get_help();
        m.on_share_stopped(Err("lost the connection to the relay".into()));
        assert!(
            matches!(&m.screen, Screen::Ended { reason, .. } if reason.contains("lost the connection"))
        );
        let mut m = Model::new();
        m.get_help();
        m.on_share_stopped(Ok(EndReason::UserEnded));
        assert_eq!(m.screen, Screen::Start);
        // A session whose `Ended` event was lost still ends on screen.
        let mut m = Model::new();
        asked(&mut m, ScopeSet::all(), Instant::now());
        m.on_share_stopped(Ok(EndReason::TechnicianEnded));
        assert!(
            matches!(&m.screen, Screen::Ended { reason, .. } if reason.contains("technician ended"))
        );
    }

    /// Issue 16 item 6: during a `view` session the technician asks for `control`: the dialog
    /// shows only that, nothing ticked; Allow grants exactly what is ticked, and the banner comes
    /// back with the new grant. A second ask the user refuses leaves the grant as it was.
    #[test]
    fn an_ask_for_more_shows_the_dialog_over_the_banner_and_returns_to_it() {
        let now = Instant::now();
        let mut m = Model::new();
        let view: ScopeSet = "view".parse().unwrap();
        asked(&mut m, view, now);
        allow_all(&mut m);
        m.on_event(&AgentEvent::ConsentDecided { granted: view }, now);
        assert!(m.in_session() && !m.can_stop_control());
        let more = |scopes: &str| AgentEvent::MoreRequested {
            technician: ada(),
            scopes: scopes.parse().unwrap(),
            granted: view,
            timeout_secs: 60,
            relay: "r".into(),
            verification: "111 111".into(),
        };
        m.on_event(&more("control,inventory"), now);
        let Screen::Consent(c) = &m.screen else {
            panic!("{:?}", m.screen)
        };
        assert_eq!(c.ticked, ScopeSet::EMPTY, "nothing pre-ticked");
        assert!(!c.can_allow() && m.on_top());
        let line = m.consent_line().unwrap();
        assert!(
            line.contains("asks: control,inventory | more; allowed already: view"),
            "{line}"
        );
        m.toggle(Scope::Control);
        assert_eq!(
            m.allow(),
            Some(Action::Send(UserCommand::Consent(
                "control".parse().unwrap()
            )))
        );
        let both: ScopeSet = "view,control".parse().unwrap();
        m.on_event(
            &AgentEvent::MoreDecided {
                technician: ada(),
                granted: both,
                added: "control".parse().unwrap(),
            },
            now,
        );
        let banner = m.banner_line().unwrap();
        assert!(
            banner.contains("allowed: view,control") && banner.contains("stop control: shown"),
            "{banner}"
        );
        assert!(
            m.doing_line()
                .unwrap()
                .contains("You also allowed: use your mouse")
        );
        // Silence: the window says no itself once the countdown (and its grace) ran out.
        m.on_event(&more("inventory"), now);
        let late = now + Duration::from_secs(60) + CONSENT_GRACE;
        assert_eq!(
            m.tick(late),
            Some(Action::Send(UserCommand::Consent(ScopeSet::EMPTY)))
        );
        m.on_event(
            &AgentEvent::MoreDecided {
                technician: ada(),
                granted: both,
                added: ScopeSet::EMPTY,
            },
            late,
        );
        assert!(m.banner_line().unwrap().contains("allowed: view,control"));
        assert!(m.doing_line().unwrap().contains("did not allow more"));
        // "End session" works while the question shows.
        m.on_event(&more("inventory"), late);
        assert_eq!(m.end_session(), Some(Action::Send(UserCommand::EndSession)));
    }

    fn grace() -> TechnicianIdentity {
        TechnicianIdentity {
            name: "Grace".into(),
            tier: tether_proto::msg::Tier::L2,
            ..ada()
        }
    }

    /// Grace, an invited colleague, asks for `scopes` in her own session (verification 222 222).
    fn grace_asks(m: &mut Model, scopes: ScopeSet, now: Instant) {
        m.on_event(
            &AgentEvent::ConsentRequested {
                technician: grace(),
                scopes,
                timeout_secs: 30,
                first_contact: false,
                relay: "r".into(),
                verification: "222 222".into(),
                enrolled_by: None,
            },
            now,
        );
    }

    #[test]
    fn chat_opens_on_pairing_and_refuses_bad_lines_here() {
        let now = Instant::now();
        let mut m = Model::new();
        m.chat.draft = "hello".into();
        assert_eq!(m.send_chat(), None, "nobody to talk to yet");
        assert!(m.chat_line().unwrap().contains("nobody is connected"));
        m.on_event(
            &AgentEvent::Paired {
                verification: "1".into(),
            },
            now,
        );
        m.chat.draft = "   ".into();
        assert_eq!(m.send_chat(), None);
        assert!(m.chat_line().unwrap().contains("cannot be empty"), "{m:?}");
        m.chat.draft = "x".repeat(1001);
        assert_eq!(m.send_chat(), None);
        assert!(m.chat_line().unwrap().contains("at most 1000"));
        assert_eq!(m.chat.draft.len(), 1001, "a refused line is kept to edit");
        m.chat.draft = "my printer".into();
        assert_eq!(
            m.send_chat(),
            Some(Action::Send(UserCommand::Chat(
                ChatText::new("my printer").unwrap()
            )))
        );
        assert!(m.chat.draft.is_empty() && m.chat.note.is_none());
        for (from, text) in [(Some("Ada of Acme"), "hi"), (None, "my printer")] {
            m.on_event(
                &AgentEvent::Chat {
                    from: from.map(String::from),
                    text: ChatText::new(text).unwrap(),
                },
                now,
            );
        }
        assert_eq!(m.chat.lines.len(), 2);
        assert_eq!(m.chat.lines[1].from, None);
        // A second echo of the same line (a second technician's session) is not shown twice.
        m.on_event(
            &AgentEvent::Chat {
                from: None,
                text: ChatText::new("my printer").unwrap(),
            },
            now,
        );
        assert_eq!(m.chat.lines.len(), 2);
        m.on_event(
            &AgentEvent::Ended {
                reason: EndReason::UserEnded,
            },
            now,
        );
        assert!(!m.chat.open);
        assert_eq!(m.chat.lines.len(), 2, "the conversation stays readable");
    }

    #[test]
    fn invitation_prompt_answers_once_and_times_out_as_no() {
        let now = Instant::now();
        let mut m = Model::new();
        let ask = AgentEvent::InviteRequested {
            by: "Ada of Acme".into(),
            invitee: "Grace (L2) of Acme".into(),
            handover: true,
            timeout_secs: 20,
        };
        m.on_event(&ask, now);
        let line = m.invite_line().unwrap();
        assert!(
            line.contains("Ada of Acme asks to bring in Grace (L2) of Acme | hand-over: yes"),
            "{line}"
        );
        assert_eq!(
            m.answer_invite(false),
            Some(Action::Send(UserCommand::AnswerInvite(false)))
        );
        assert_eq!(m.answer_invite(true), None, "answered once");
        m.on_event(&ask, now);
        assert_eq!(m.tick(now + Duration::from_secs(19)), None);
        assert_eq!(
            m.tick(now + Duration::from_secs(20)),
            Some(Action::Send(UserCommand::AnswerInvite(false)))
        );
        m.on_event(&ask, now);
        m.on_event(&AgentEvent::InviteDecided { code_sent: true }, now);
        assert_eq!(m.invite, None);
    }

    #[test]
    fn a_colleague_joins_is_named_and_one_leaving_keeps_the_other() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, "view,control".parse().unwrap(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view,control".parse().unwrap(),
            },
            now,
        );
        m.on_event(
            &AgentEvent::Claimed {
                technician: grace(),
            },
            now,
        );
        assert!(m.in_session(), "the banner stays while the colleague pairs");
        grace_asks(&mut m, "view,control".parse().unwrap(), now);
        m.toggle(Scope::View);
        assert_eq!(
            m.allow(),
            Some(Action::Send(UserCommand::Consent(
                [Scope::View].into_iter().collect()
            )))
        );
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: [Scope::View].into_iter().collect(),
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(
            line.starts_with(
                "banner: Grace of Acme | also: Ada of Acme (allowed: view,control) | allowed: view |"
            ),
            "{line}"
        );
        assert!(
            line.ends_with("stop control: shown"),
            "Ada still has control"
        );
        m.on_event(
            &AgentEvent::TechnicianLeft {
                technician: "Grace of Acme".into(),
                reason: EndReason::TechnicianEnded,
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(
            line.starts_with("banner: Ada of Acme | allowed: view,control |"),
            "{line}"
        );
        let Screen::Session { doing, .. } = &m.screen else {
            panic!()
        };
        assert!(
            doing
                .as_deref()
                .unwrap()
                .contains("The session goes on with Ada of Acme"),
            "{doing:?}"
        );
    }

    #[test]
    fn a_refused_colleague_leaves_the_session_as_it_was() {
        let now = Instant::now();
        let mut m = Model::new();
        asked(&mut m, "view".parse().unwrap(), now);
        allow_all(&mut m);
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: "view".parse().unwrap(),
            },
            now,
        );
        grace_asks(&mut m, "view".parse().unwrap(), now);
        assert!(!m.in_session());
        m.deny();
        m.on_event(
            &AgentEvent::ConsentDecided {
                granted: ScopeSet::EMPTY,
            },
            now,
        );
        let line = m.banner_line().unwrap();
        assert!(
            line.starts_with("banner: Ada of Acme | allowed: view |"),
            "{line}"
        );
    }
}
