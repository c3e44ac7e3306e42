//! What the console window shows and what each click asks the session to do, without any drawing.
//!
//! [`Model`] is fed the technician's clicks and the session's [`Event`]s; clicks answer with the
//! [`Action`] the front end carries out. Every change a test or a script may want to see is also
//! written to [`Model::journal`] as one line (the window prints them on standard output). No line
//! ever carries the session code.
//!
//! # Layout
//! - `mod.rs`: [`Event`], [`Action`], [`Model`] and [`Model::on_event`], one arm per event (no
//!   wildcard: a new event does not compile until the window knows what to show).
//! - `consent.rs`: the code, the ticked scopes, consent and its answers, asking for more.
//! - `chat.rs`: the chat panel and inviting a colleague.
//! - `inventory.rs`: the inventory panel (its rows are [`crate::rows`]).
//! - `diagnostics.rs`: the diagnostics panel.
//! - `files.rs`: the files panel (a listed folder, pulls, pushes dropped on the screen, progress).

use tether_proto::SessionCode;
use tether_proto::diag::{DiagReport, Probe, ProbeKind};
use tether_proto::inventory::Inventory;
use tether_proto::msg::{Invitee, TechnicianIdentity};
use tether_proto::{Scope, ScopeSet};

mod chat;
mod consent;
mod devices;
mod diagnostics;
mod files;
mod inventory;

pub use crate::rows::Table;
pub use chat::{ChatPanel, parse_invitee};
pub use consent::Consent;
pub use devices::DevicesPanel;
pub use diagnostics::{DiagPanel, verdict_rgb};
pub use files::{
    Entry, FilesEvent, FilesPanel, Listing, MAX_SHOWN_TRANSFERS, Transfer, TransferState, Way,
};
pub use inventory::InventoryPanel;

/// Which side panel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Searchable inventory tables.
    Inventory,
    /// Probes and their verdicts.
    Diagnostics,
    /// The conversation with the user, and inviting a colleague.
    Chat,
    /// Files on the user's machine, and transfers both ways.
    Files,
    /// The organisation's enrolled devices, to connect to without a code.
    Devices,
}

/// What the session side reports to the window.
#[derive(Debug, Clone)]
pub enum Event {
    /// Paired with the agent: chat works from here on (consent may not be asked yet).
    Paired {
        /// Who we are, as the user was shown.
        technician: TechnicianIdentity,
        /// The verification string.
        verification: String,
        /// Why the user asked for help, if they said (already cleaned).
        reason: Option<String>,
    },
    /// A chat line: from the user, or ours once sent (already made harmless).
    Chat {
        /// Written by the user (else by us).
        from_user: bool,
        /// The line.
        text: String,
    },
    /// Our line was not sent, and why.
    ChatRefused(String),
    /// The invitation's outcome: the colleague's one-time code, or why there is none.
    Invite(Result<SessionCode, String>),
    /// The user granted (some of) what was asked.
    Granted {
        /// Who we are, as the user was shown.
        technician: TechnicianIdentity,
        /// What the user allowed.
        granted: ScopeSet,
        /// The verification string.
        verification: String,
    },
    /// No session came of it.
    Failed {
        /// Why, in words.
        reason: String,
        /// The user said no.
        denied: bool,
    },
    /// The inventory arrived, or could not be had.
    Inventory(Result<Box<Inventory>, String>),
    /// One probe's report, or why it did not run.
    Probe {
        /// Which probe.
        kind: ProbeKind,
        /// The report, or the error.
        result: Result<Box<DiagReport>, String>,
    },
    /// The health check's reports (problems first), or why it did not run.
    HealthCheck(Result<Vec<DiagReport>, String>),
    /// The user changed what is granted during the session (pressed Stop control, or allowed
    /// more when asked).
    GrantChanged {
        /// What is granted from now on.
        granted: ScopeSet,
    },
    /// The answer to an ask for more ([`Action::AskMore`]); the screen's streams are started for
    /// what it granted before this arrives.
    MoreAnswered {
        /// What was asked.
        asked: ScopeSet,
        /// What is granted from now on.
        granted: ScopeSet,
        /// What happened, in words ("the user allowed control; ..."), or why it was not asked.
        words: String,
    },
    /// News about listings and file transfers.
    Files(FilesEvent),
    /// The organisation's enrolled devices, or why they could not be listed.
    Devices(Result<Vec<tether_proto::fleet::DeviceSummary>, String>),
    /// The session is over.
    Ended(String),
}

/// What the front end must do after a click.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Claim this code and ask for these scopes (a session already running is ended first).
    Connect {
        /// The code the user read out.
        code: SessionCode,
        /// What to ask for.
        scopes: ScopeSet,
        /// Ask at once (else pair only, and ask on [`Action::AskConsent`]).
        ask_now: bool,
    },
    /// Connect to an enrolled device without a code, asking for these scopes at once (a session
    /// already running is ended first).
    ConnectDevice {
        /// Its id.
        device: String,
        /// What to ask for.
        scopes: ScopeSet,
        /// Nobody is asked: IT's signed policy on the device answers.
        unattended: bool,
    },
    /// List the organisation's enrolled devices.
    ListDevices,
    /// Ask the user for the scopes now ("chat first" sessions).
    AskConsent,
    /// During the session, ask the user for more ("Ask for control").
    AskMore(ScopeSet),
    /// Send a chat line to the user.
    Say(String),
    /// Invite a colleague (and leave once they are in, for a hand-over).
    Invite {
        /// Whom.
        invitee: Invitee,
        /// Hand the session over.
        handover: bool,
    },
    /// End the session.
    End,
    /// Ask the agent for its inventory.
    FetchInventory,
    /// Run one probe.
    RunProbe(Probe),
    /// Run the standard health check.
    HealthCheck,
    /// List a folder on the user's machine (empty: the user's default folder).
    ListFiles(String),
    /// Fetch a file from the user's machine into the technician's download folder.
    PullFile(String),
    /// Send these files (or folders) to the user's machine.
    PushFiles(Vec<std::path::PathBuf>),
}

/// The window's state.
#[derive(Debug, Clone)]
pub struct Model {
    /// The code as typed so far.
    pub code: String,
    /// The scopes ticked to ask for (none at first).
    pub ask: ScopeSet,
    /// Where consent stands.
    pub consent: Consent,
    /// A one-line notice (a mistyped code, ...).
    pub notice: Option<String>,
    /// The open side panel.
    pub tab: Tab,
    /// The inventory panel.
    pub inventory: InventoryPanel,
    /// The diagnostics panel.
    pub diag: DiagPanel,
    /// The chat panel.
    pub chat: ChatPanel,
    /// The files panel.
    pub files: FilesPanel,
    /// The devices panel.
    pub devices: DevicesPanel,
    /// This attempt's verification code, from pairing on: the technician reads it out so the
    /// user can compare it with their screen before they decide.
    pub verification: Option<String>,
    /// Why the user asked for help, if they said, from pairing on.
    pub reason: Option<String>,
    /// An ask for more waiting for the user's answer.
    pub more: Option<ScopeSet>,
    journal: Vec<String>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            code: String::new(),
            // Nothing ticked: the technician ticks what they need, never everything by default.
            ask: ScopeSet::EMPTY,
            consent: Consent::Idle,
            notice: None,
            tab: Tab::Inventory,
            inventory: InventoryPanel::default(),
            diag: DiagPanel::default(),
            chat: ChatPanel::default(),
            files: FilesPanel::default(),
            devices: DevicesPanel::default(),
            verification: None,
            reason: None,
            more: None,
            journal: Vec::new(),
        }
    }
}

/// Said when the technician uses a scope this session never asked for (not a refusal by the user).
fn not_asked(scope: Scope) -> String {
    format!(
        "This session did not ask for {}; connect again with it ticked.",
        scope.name()
    )
}

impl Model {
    /// A fresh window.
    pub fn new() -> Self {
        Self::default()
    }

    fn say(&mut self, line: String) {
        self.journal.push(line);
    }

    /// Takes the lines written since the last call.
    pub fn journal(&mut self) -> Vec<String> {
        std::mem::take(&mut self.journal)
    }

    /// What the user granted, while a session runs.
    pub fn granted(&self) -> Option<ScopeSet> {
        match &self.consent {
            Consent::Granted { granted, .. } => Some(*granted),
            _ => None,
        }
    }

    /// "End session".
    pub fn end(&mut self) -> Option<Action> {
        self.busy().then_some(Action::End)
    }

    /// Opens a side panel.
    pub fn open_tab(&mut self, tab: Tab) {
        self.tab = tab;
        if tab == Tab::Chat {
            self.chat.unread = 0;
        }
    }

    /// Applies one event from the session.
    pub fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Paired {
                technician,
                verification,
                reason,
            } => self.paired(technician, verification, reason),
            Event::Chat { from_user, text } => self.chat_line(from_user, text),
            Event::ChatRefused(why) => {
                self.chat_note(why);
            }
            Event::Invite(result) => self.invite_answered(result),
            Event::Granted {
                technician,
                granted,
                verification,
            } => self.granted_by_user(technician, granted, verification),
            Event::Failed { reason, denied } => self.failed(reason, denied),
            Event::Inventory(r) => self.inventory_arrived(r),
            Event::Probe { kind, result } => self.probe_done(kind, result),
            Event::HealthCheck(result) => self.health_check_done(result),
            Event::GrantChanged { granted } => self.grant_changed(granted),
            Event::MoreAnswered {
                asked,
                granted,
                words,
            } => self.more_answered(asked, granted, words),
            Event::Files(ev) => self.files_event(ev),
            Event::Devices(list) => self.devices_listed(list),
            Event::Ended(reason) => self.ended(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::diag::Verdict;
    use tether_proto::msg::TechnicianRole;
    use tether_proto::msg::Tier;

    fn ada() -> TechnicianIdentity {
        TechnicianIdentity {
            name: "Ada".into(),
            org: "Acme".into(),
            role: TechnicianRole::Technician,
            tier: tether_proto::msg::Tier::L1,
        }
    }

    fn inventory(names: &[&str]) -> Box<Inventory> {
        use tether_proto::inventory::fixture;
        let mut inv =
            fixture::inventory(names.iter().map(|n| fixture::package(n, "1.0")).collect());
        inv.hardware.interfaces = ["lo", "eth0"]
            .map(|n| fixture::interface(n, &["127.0.0.1/8"], &[]))
            .to_vec();
        Box::new(inv)
    }

    pub(super) fn granted(m: &mut Model, scopes: &str) {
        m.code = "123 456 789".into();
        m.ask = ScopeSet::all();
        assert!(matches!(m.connect(), Some(Action::Connect { .. })));
        m.on_event(Event::Granted {
            technician: ada(),
            granted: scopes.parse().unwrap(),
            verification: "12 34".into(),
        });
    }

    #[test]
    fn a_bad_code_is_refused_here_and_a_good_one_asks_for_the_ticked_scopes() {
        let mut m = Model::new();
        m.code = "12".into();
        assert_eq!(m.connect(), None);
        assert!(m.notice.as_deref().unwrap().contains("not a session code"));
        m.code = "123-456 789".into();
        assert_eq!(m.connect(), None, "nothing ticked");
        assert!(m.notice.as_deref().unwrap().contains("Tick at least one"));
        for s in [Scope::View, Scope::Diagnostics, Scope::Inventory] {
            m.toggle(s);
        }
        let Some(Action::Connect { scopes, .. }) = m.connect() else {
            panic!()
        };
        assert_eq!(scopes, "view,diagnostics,inventory".parse().unwrap());
        assert_eq!(m.connect(), None, "already connecting");
        m.toggle(Scope::Control);
        assert!(!m.ask.contains(Scope::Control), "locked while connecting");
        let lines = m.journal();
        assert!(
            lines
                .iter()
                .all(|l| !l.contains("123") && !l.contains("789")),
            "never the code: {lines:?}"
        );
        m.on_event(Event::Failed {
            reason: "the user denied consent".into(),
            denied: true,
        });
        assert!(matches!(m.consent, Consent::Failed { denied: true, .. }));
        assert_eq!(m.journal(), ["consent: denied: the user denied consent"]);
    }

    #[test]
    fn granted_shows_what_is_missing() {
        let mut m = Model::new();
        granted(&mut m, "view,inventory");
        let lines = m.journal();
        assert!(
            lines[1].starts_with(
                "consent: granted view,inventory; not granted: control,diagnostics,clipboard,files; as Ada of Acme"
            ),
            "{lines:?}"
        );
        assert!(m.inventory.loading, "inventory is fetched at once");
        assert!(m.diag.error.is_some());
        assert_eq!(m.end(), Some(Action::End));
        m.on_event(Event::Ended("the technician ended the session".into()));
        assert!(matches!(m.consent, Consent::Ended { .. }));
        assert_eq!(m.end(), None);
    }

    #[test]
    fn the_filter_narrows_rows() {
        let mut m = Model::new();
        granted(&mut m, "inventory");
        m.on_event(Event::Inventory(Ok(inventory(&[
            "libc6", "bash", "LIBC-bin", "zlib1g",
        ]))));
        assert_eq!(m.inventory.total(), 4);
        assert_eq!(m.inventory.shown().len(), 4);
        m.set_filter("libc".into());
        let names: Vec<&str> = m.inventory.shown().map(|r| r[0].as_str()).collect();
        assert_eq!(names, ["libc6", "LIBC-bin"]);
        assert_eq!(
            m.journal().last().unwrap(),
            "inventory table software: 2 of 4 rows match \"libc\": libc6, LIBC-bin"
        );
        // A match in another column counts too.
        m.set_filter("amd64".into());
        assert_eq!(m.inventory.shown().len(), 4);
        m.set_filter("nothing-like-this".into());
        assert_eq!(m.inventory.shown().len(), 0);
        m.show_table(Table::Network);
        assert_eq!(m.inventory.shown().len(), 0, "the filter stays");
        m.set_filter("ETH".into());
        assert_eq!(m.inventory.shown_row(0).unwrap()[0], "eth0");
        assert_eq!(m.inventory.shown().len(), 1);
    }

    #[test]
    fn hostile_inventory_strings_are_shown_harmless_in_every_table() {
        let mut m = Model::new();
        granted(&mut m, "inventory");
        let mut inv = inventory(&["evil\u{202e}txt.exe", "a\u{1b}[2Jb", "ok\u{2028}fake row"]);
        inv.hardware.system.hostname = "host\u{61c}\u{200b}\nos        fake".into();
        inv.hardware.interfaces[0].name = "lo\u{2029}\u{feff}\u{1b}[2J".into();
        // The command line's print-out of the same inventory: no escape, no extra line.
        let printed = crate::render::inventory(&inv);
        assert!(
            !printed
                .chars()
                .any(|c| c != '\n' && tether_proto::text::is_hidden(c)),
            "{printed:?}"
        );
        assert_eq!(
            printed.lines().count(),
            crate::render::inventory(&inventory(&["a"])).lines().count()
        );
        m.on_event(Event::Inventory(Ok(inv)));
        for table in [
            Table::Software,
            Table::Disks,
            Table::Network,
            Table::Filesystems,
            Table::Hardware,
        ] {
            m.show_table(table);
            for row in m.inventory.shown() {
                for cell in row {
                    assert!(
                        !cell.chars().any(tether_proto::text::is_hidden),
                        "{table:?}: {cell:?}"
                    );
                }
            }
        }
        m.show_table(Table::Software);
        let names: Vec<&str> = m.inventory.shown().map(|r| r[0].as_str()).collect();
        assert_eq!(
            names,
            ["evil\u{fffd}txt.exe", "a\u{241b}[2Jb", "ok\u{fffd}fake row"]
        );
        assert!(
            m.journal()
                .iter()
                .all(|l| !l.chars().any(tether_proto::text::is_hidden)),
            "the journal on standard output is harmless too"
        );
    }

    #[test]
    fn probes_check_parameters_here_and_show_verdicts() {
        let mut m = Model::new();
        assert_eq!(m.run_probe(), None, "no session");
        granted(&mut m, "diagnostics");
        m.select_probe(ProbeKind::TcpConnect);
        m.diag.params = "host=example.com".into();
        assert_eq!(m.run_probe(), None);
        assert!(m.diag.param_error.as_deref().unwrap().contains("port"));
        m.diag.params = "host=example.com port=443".into();
        let Some(Action::RunProbe(p)) = m.run_probe() else {
            panic!()
        };
        assert_eq!(p.kind(), ProbeKind::TcpConnect);
        assert_eq!(m.diag.running, 1);
        m.on_event(Event::Probe {
            kind: ProbeKind::TcpConnect,
            result: Ok(Box::new(DiagReport {
                probe: p,
                verdict: Verdict::Problem,
                reason: "connection refused".into(),
                facts: tether_proto::diag::DiagFacts::None,
                elapsed_ms: 4,
            })),
        });
        assert_eq!(m.diag.running, 0);
        assert_eq!(m.diag.results[0].verdict, Verdict::Problem);
        assert_eq!(
            m.journal().last().unwrap(),
            "probe tcp-connect: PROBLEM in 4 ms: connection refused"
        );
    }

    #[test]
    fn chat_first_pairs_then_asks_and_lines_are_checked_here() {
        let mut m = Model::new();
        m.set_chat_first(true);
        m.toggle(Scope::Inventory);
        m.code = "123 456 789".into();
        let Some(Action::Connect { ask_now, .. }) = m.connect() else {
            panic!()
        };
        assert!(!ask_now);
        m.set_chat_first(false);
        assert!(m.chat.first, "locked while connecting");
        assert_eq!(m.ask_consent(), None, "not paired yet");
        m.chat.draft = "hello".into();
        assert_eq!(m.send_chat(), None, "not paired yet");
        m.on_event(Event::Paired {
            technician: ada(),
            verification: "12 34".into(),
            reason: None,
        });
        assert!(matches!(m.consent, Consent::Paired { .. }));
        assert_eq!(m.send_chat(), Some(Action::Say("hello".into())));
        assert!(m.chat.draft.is_empty());
        m.chat.draft = "x".repeat(1001);
        assert_eq!(m.send_chat(), None);
        assert!(m.chat.note.as_deref().unwrap().contains("at most 1000"));
        m.on_event(Event::Chat {
            from_user: true,
            text: "hi".into(),
        });
        assert_eq!(m.chat.unread, 1);
        m.open_tab(Tab::Chat);
        assert_eq!(m.chat.unread, 0);
        assert_eq!(m.invite(), None, "no consent yet");
        assert_eq!(m.ask_consent(), Some(Action::AskConsent));
        assert!(matches!(m.consent, Consent::Waiting { .. }));
        let lines = m.journal();
        assert!(lines.contains(&"chat: user: hi".to_string()), "{lines:?}");
        assert!(
            lines.iter().all(|l| !l.contains("123")),
            "never the code: {lines:?}"
        );
    }

    #[test]
    fn invite_reads_a_tier_or_a_name_and_never_journals_the_code() {
        assert_eq!(parse_invitee(" l2 "), Ok(Invitee::Tier(Tier::L2)));
        assert_eq!(
            parse_invitee("Grace Hopper"),
            Ok(Invitee::Technician("Grace Hopper".into()))
        );
        assert!(parse_invitee("  ").is_err());
        let mut m = Model::new();
        granted(&mut m, "view");
        m.chat.invitee = "L3".into();
        m.chat.handover = true;
        assert_eq!(
            m.invite(),
            Some(Action::Invite {
                invitee: Invitee::Tier(Tier::L3),
                handover: true
            })
        );
        assert_eq!(m.invite(), None, "one at a time");
        let code: SessionCode = "417 302 958".parse().unwrap();
        m.on_event(Event::Invite(Ok(code)));
        assert!(!m.chat.inviting);
        let lines = m.journal();
        assert!(
            lines.last().unwrap().starts_with("invite: code ready"),
            "{lines:?}"
        );
        let digits: String = code
            .to_string()
            .chars()
            .filter(|c| c.is_ascii_digit())
            .collect();
        assert!(lines.iter().all(|l| {
            let d: String = l.chars().filter(|c| c.is_ascii_digit()).collect();
            !d.contains(&digits)
        }));
    }

    fn report(verdict: Verdict) -> DiagReport {
        DiagReport {
            probe: Probe::Uptime,
            verdict,
            reason: "r".into(),
            facts: tether_proto::diag::DiagFacts::None,
            elapsed_ms: 1,
        }
    }

    fn granted_view(role: TechnicianRole) -> Model {
        let mut m = Model::new();
        m.toggle(Scope::View);
        m.code = "123 456 789".into();
        assert!(m.connect().is_some());
        m.on_event(Event::Granted {
            technician: TechnicianIdentity { role, ..ada() },
            granted: "view".parse().unwrap(),
            verification: "1".into(),
        });
        m.journal();
        m
    }

    /// Issue 16 item 6: "Ask for control" shows while a session runs without control (and the
    /// role allows it), asks once, and the answer updates the grant, the journal and the notice;
    /// after Stop control it shows again.
    #[test]
    fn ask_for_control_during_the_session() {
        let control: ScopeSet = "control".parse().unwrap();
        let both: ScopeSet = "view,control".parse().unwrap();
        assert_eq!(granted_view(TechnicianRole::Viewer).more_offer(), None);
        let mut m = granted_view(TechnicianRole::Technician);
        assert_eq!(m.more_offer(), Some(control));
        assert_eq!(m.ask_more(), Some(Action::AskMore(control)));
        assert_eq!(m.more_offer(), None, "one ask at a time");
        assert_eq!(m.ask_more(), None);
        // The user says no: the grant stays, the technician is told.
        m.on_event(Event::MoreAnswered {
            asked: control,
            granted: "view".parse().unwrap(),
            words: "the user said no to control; still allowed: view".into(),
        });
        assert!(
            m.notice.as_deref().unwrap().contains("said no"),
            "{:?}",
            m.notice
        );
        assert_eq!(m.more_offer(), Some(control));
        // Asked again, allowed: the grant grows (the grant watch and the answer both say so).
        assert!(m.ask_more().is_some());
        m.on_event(Event::GrantChanged { granted: both });
        m.on_event(Event::MoreAnswered {
            asked: control,
            granted: both,
            words: "the user allowed control; now allowed: view,control".into(),
        });
        assert_eq!(m.granted(), Some(both));
        assert_eq!(m.more_offer(), None);
        assert_eq!(m.notice, None);
        let lines = m.journal();
        assert!(
            lines.contains(&"grant: asking the user for control; waiting for the answer".into())
                && lines.contains(&"grant: the user allowed control; now allowed: view,control".into())
                && lines.contains(
                    &"grant: asked for control: the user allowed control; now allowed: view,control"
                        .into()
                ),
            "{lines:?}"
        );
        // Stop control: the button is back.
        m.on_event(Event::GrantChanged {
            granted: "view".parse().unwrap(),
        });
        assert_eq!(m.more_offer(), Some(control));
        assert!(
            m.journal()
                .iter()
                .any(|l| l.starts_with("grant: the user took back control"))
        );
    }

    /// Issue 17 item 1: the window starts with no scope ticked; only what the technician ticks is
    /// asked for.
    #[test]
    fn nothing_is_ticked_at_first() {
        let mut m = Model::new();
        assert_eq!(m.ask, ScopeSet::EMPTY);
        m.code = "123 456 789".into();
        assert_eq!(m.connect(), None, "nothing to ask for yet");
        m.toggle(Scope::Diagnostics);
        let Some(Action::Connect { scopes, .. }) = m.connect() else {
            panic!("{:?}", m.notice)
        };
        assert_eq!(scopes, [Scope::Diagnostics].into_iter().collect());
    }

    /// Issue 17 items 2 and 4: as soon as pairing succeeds (before the user answers) the window has
    /// the verification code, tells the technician to read it out, and has the user's reason.
    #[test]
    fn verification_and_reason_show_from_pairing_on() {
        let mut m = Model::new();
        m.toggle(Scope::Inventory);
        m.code = "123 456 789".into();
        assert!(m.connect().is_some());
        assert_eq!(m.verification, None);
        m.on_event(Event::Paired {
            technician: ada(),
            verification: "309 281".into(),
            reason: Some("my printer does not print".into()),
        });
        assert!(
            matches!(m.consent, Consent::Waiting { .. }),
            "still waiting"
        );
        assert_eq!(m.verification.as_deref(), Some("309 281"));
        assert_eq!(m.reason.as_deref(), Some("my printer does not print"));
        let lines = m.journal();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("verification 309 281: read it out to the user")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l == "reason: the user asks for help with: my printer does not print"),
            "{lines:?}"
        );
        // A new attempt forgets them.
        m.on_event(Event::Failed {
            reason: "the user denied consent".into(),
            denied: true,
        });
        assert!(m.connect().is_some());
        assert_eq!((m.verification.as_ref(), m.reason.as_ref()), (None, None));
    }

    /// Issue 17 item 14: a scope that was not asked for is never reported as refused.
    #[test]
    fn scopes_not_asked_for_are_not_reported_as_refused() {
        let mut m = Model::new();
        m.toggle(Scope::Diagnostics);
        m.code = "123 456 789".into();
        assert!(m.connect().is_some());
        m.on_event(Event::Granted {
            technician: ada(),
            granted: [Scope::Diagnostics].into_iter().collect(),
            verification: "12 34".into(),
        });
        assert_eq!(m.inventory.error, None);
        assert_eq!(m.diag.error, None);
        let lines = m.journal();
        let granted = lines
            .iter()
            .find(|l| l.starts_with("consent: granted"))
            .unwrap();
        assert!(granted.contains("not granted: (none)"), "{granted}");
        assert_eq!(m.fetch_inventory(), None);
        let e = m.inventory.error.as_deref().unwrap();
        assert!(
            e.contains("did not ask for inventory") && !e.contains("allow"),
            "{e}"
        );
    }

    /// Issue 17 item 15: a health check gives a summary line of problems, warnings and ok.
    #[test]
    fn the_health_check_has_a_summary() {
        let mut m = Model::new();
        granted(&mut m, "diagnostics");
        assert!(m.health_check().is_some());
        m.on_event(Event::HealthCheck(Ok(vec![
            report(Verdict::Problem),
            report(Verdict::Warning),
            report(Verdict::Warning),
            report(Verdict::Ok),
        ])));
        let summary = m.diag.summary.as_deref().unwrap();
        assert!(
            summary.starts_with("Health check: 1 problems, 2 warnings"),
            "{summary}"
        );
        assert!(summary.ends_with("1 ok"), "{summary}");
        assert!(
            m.journal()
                .iter()
                .any(|l| l.starts_with("health check: 1 problems")),
            "journalled"
        );
        assert_eq!(
            m.diag.results[0].verdict,
            Verdict::Problem,
            "problems first"
        );
    }
}
