//! What the console window shows and what each click asks the session to do, without any drawing.
//!
//! [`Model`] is fed the technician's clicks and the session's [`Event`]s; clicks answer with the
//! [`Action`] the front end carries out. Every change a test or a script may want to see is also
//! written to [`Model::journal`] as one line (the window prints them on standard output). No line
//! ever carries the session code.

use tether_proto::chat::ChatText;
use tether_proto::diag::{DiagReport, Probe, ProbeKind, Verdict};
use tether_proto::inventory::Inventory;
use tether_proto::msg::{Invitee, TechnicianIdentity, Tier};
use tether_proto::text::display_safe;
use tether_proto::{Scope, ScopeSet, SessionCode};

use crate::render;

/// Where the session stands with the user's consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consent {
    /// Nothing asked yet: enter a code.
    Idle,
    /// "Chat first": claiming the code and pairing, without asking for anything yet.
    Pairing {
        /// What will be asked for.
        asked: ScopeSet,
    },
    /// "Chat first": paired; chat runs and nothing is asked until "Ask for access".
    Paired {
        /// What will be asked for.
        asked: ScopeSet,
        /// Who we are, as the user was shown.
        technician: TechnicianIdentity,
        /// The verification string the user's screen shows too.
        verification: String,
    },
    /// Claiming the code, pairing, and waiting for the user to answer.
    Waiting {
        /// What we asked for.
        asked: ScopeSet,
    },
    /// The user answered yes to some or all of it; the session runs.
    Granted {
        /// What we asked for.
        asked: ScopeSet,
        /// What the user allowed (the agent enforces exactly this).
        granted: ScopeSet,
        /// Who we are, as the user was shown.
        technician: TechnicianIdentity,
        /// The verification string the user's screen shows too.
        verification: String,
    },
    /// No session: the user refused, or the code did not work.
    Failed {
        /// What we asked for.
        asked: ScopeSet,
        /// Why, in words.
        reason: String,
        /// The user said no (rather than a bad code or a network problem).
        denied: bool,
    },
    /// The session ran and is over.
    Ended {
        /// What had been granted.
        granted: ScopeSet,
        /// Why it ended.
        reason: String,
    },
}

/// Which side panel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    /// Searchable inventory tables.
    Inventory,
    /// Probes and their verdicts.
    Diagnostics,
    /// The conversation with the user, and inviting a colleague.
    Chat,
}

/// The chat side panel: the conversation, and the invitation of a colleague.
#[derive(Debug, Clone, Default)]
pub struct ChatPanel {
    /// Connect without asking for consent, so the technician can explain first.
    pub first: bool,
    /// The agent paired with us: lines can be sent (before consent too).
    pub open: bool,
    /// The conversation, oldest first: (from the user, text).
    pub lines: Vec<(bool, String)>,
    /// What the technician is typing.
    pub draft: String,
    /// Why the last line was not sent.
    pub note: Option<String>,
    /// A colleague's name, or a tier (L2, L3).
    pub invitee: String,
    /// Hand the session over (leave once the colleague is in).
    pub handover: bool,
    /// An invitation is waiting for the user's answer.
    pub inviting: bool,
    /// The last invitation's outcome: the code to give the colleague, or why there is none.
    pub invite: Option<Result<SessionCode, String>>,
    /// Lines from the user that arrived while another tab was open.
    pub unread: usize,
}

/// Reads the invite field: a tier (`L2`, `l3`, `2`) invites whoever of that tier takes it, any
/// other text names a colleague.
pub fn parse_invitee(text: &str) -> Result<Invitee, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("Enter a colleague's name or a tier (L2, L3).".into());
    }
    Ok(match text.parse::<Tier>() {
        Ok(tier) => Invitee::Tier(tier),
        Err(_) => Invitee::Technician(text.to_string()),
    })
}

fn invitee_words(i: &Invitee) -> String {
    match i {
        Invitee::Technician(name) => name.clone(),
        Invitee::Tier(t) => format!("any {t} technician"),
    }
}

/// Which inventory table is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Installed packages.
    Software,
    /// Disks and their partitions.
    Disks,
    /// Network interfaces.
    Network,
    /// Mounted file systems and their use.
    Filesystems,
    /// One row per hardware fact (system, CPU, memory, GPUs, ...).
    Hardware,
}

impl Table {
    /// Every table, in the order of the picker.
    pub const ALL: [Table; 5] = [
        Table::Software,
        Table::Disks,
        Table::Network,
        Table::Filesystems,
        Table::Hardware,
    ];

    /// Its name in the picker and in journal lines.
    pub fn name(self) -> &'static str {
        match self {
            Table::Software => "software",
            Table::Disks => "disks",
            Table::Network => "network",
            Table::Filesystems => "filesystems",
            Table::Hardware => "hardware",
        }
    }

    /// Column headings.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Software => &["name", "version", "arch", "source"],
            Table::Disks => &["name", "size", "kind / fs", "model / mounts"],
            Table::Network => &["name", "state", "MAC", "addresses"],
            Table::Filesystems => &["mount", "used", "size", "device / fs"],
            Table::Hardware => &["item", "value"],
        }
    }

    /// Each column's share of the table width.
    pub fn widths(self) -> &'static [f32] {
        match self {
            Table::Software => &[0.4, 0.3, 0.1, 0.2],
            Table::Disks | Table::Network | Table::Filesystems => &[0.22, 0.16, 0.22, 0.4],
            Table::Hardware => &[0.25, 0.75],
        }
    }

    /// The table's rows from an inventory, as text.
    pub fn rows(self, inv: &Inventory) -> Vec<Vec<String>> {
        let h = &inv.hardware;
        match self {
            Table::Software => inv
                .software
                .packages
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        p.version.clone(),
                        p.arch.clone(),
                        p.source.name().to_string(),
                    ]
                })
                .collect(),
            Table::Disks => {
                let mut rows = Vec::new();
                for d in &h.disks {
                    rows.push(vec![
                        d.name.clone(),
                        render::bytes(d.size),
                        format!(
                            "{:?}{}",
                            d.kind,
                            if d.removable { ", removable" } else { "" }
                        )
                        .to_lowercase(),
                        d.model.to_string(),
                    ]);
                    for p in &d.partitions {
                        rows.push(vec![
                            format!("  {}", p.name),
                            render::bytes(p.size),
                            p.filesystem.clone().unwrap_or_else(|| "-".into()),
                            p.mount_points.join(" "),
                        ]);
                    }
                }
                rows
            }
            Table::Network => h
                .interfaces
                .iter()
                .map(|i| {
                    let speed = i
                        .speed_mbps
                        .map(|s| format!(" {s} Mbit/s"))
                        .unwrap_or_default();
                    vec![
                        i.name.clone(),
                        format!("{}{speed}", i.oper_state),
                        if i.mac.is_empty() {
                            "-".into()
                        } else {
                            i.mac.clone()
                        },
                        i.ipv4
                            .iter()
                            .chain(i.ipv6.iter())
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" "),
                    ]
                })
                .collect(),
            Table::Filesystems => inv
                .status
                .filesystems
                .iter()
                .map(|f| {
                    let used = f.total.saturating_sub(f.available);
                    let pct = if f.total == 0 {
                        0.0
                    } else {
                        used as f64 * 100.0 / f.total as f64
                    };
                    vec![
                        f.mount_point.clone(),
                        format!("{pct:.0} %"),
                        render::bytes(f.total),
                        format!("{} ({})", f.device, f.filesystem),
                    ]
                })
                .collect(),
            Table::Hardware => {
                let s = &h.system;
                let mut rows = vec![
                    vec!["host".into(), s.hostname.clone()],
                    vec![
                        "os".into(),
                        format!("{} {} ({})", s.os_name, s.os_version, s.arch),
                    ],
                    vec!["kernel".into(), s.kernel.clone()],
                    vec![
                        "cpu".into(),
                        format!(
                            "{} ({} cores, {} threads)",
                            h.cpu.model, h.cpu.cores, h.cpu.threads
                        ),
                    ],
                    vec!["memory".into(), render::bytes(h.memory.total)],
                    vec!["uptime".into(), format!("{} s", inv.status.uptime_secs)],
                    vec!["users".into(), inv.status.users.join(", ")],
                    vec!["system vendor".into(), h.dmi.system_vendor.to_string()],
                    vec!["system model".into(), h.dmi.system_model.to_string()],
                    vec!["system serial".into(), h.dmi.system_serial.to_string()],
                    vec![
                        "bios".into(),
                        format!("{} {}", h.dmi.bios_vendor, h.dmi.bios_version),
                    ],
                ];
                rows.extend(h.gpus.iter().map(|g| vec!["gpu".into(), g.name.clone()]));
                rows.extend(
                    h.displays
                        .iter()
                        .map(|d| vec!["display".into(), format!("{} {}", d.connector, d.mode)]),
                );
                rows.extend(
                    h.batteries
                        .iter()
                        .map(|b| vec!["battery".into(), format!("{} {}", b.name, b.model)]),
                );
                rows
            }
        }
    }
}

/// The inventory side panel: the last inventory, one table of it, and the filter.
#[derive(Debug, Clone)]
pub struct InventoryPanel {
    /// The last inventory the agent sent.
    pub inventory: Option<Box<Inventory>>,
    /// A request is under way.
    pub loading: bool,
    /// Why the last request failed.
    pub error: Option<String>,
    /// The table shown.
    pub table: Table,
    /// Rows are kept when any cell contains this (case-insensitive).
    pub filter: String,
    all: Vec<Vec<String>>,
    shown: Vec<usize>,
}

impl Default for InventoryPanel {
    fn default() -> Self {
        InventoryPanel {
            inventory: None,
            loading: false,
            error: None,
            table: Table::Software,
            filter: String::new(),
            all: Vec::new(),
            shown: Vec::new(),
        }
    }
}

impl InventoryPanel {
    /// Every row of the current table.
    pub fn total(&self) -> usize {
        self.all.len()
    }

    /// The rows the filter keeps, in order.
    pub fn shown(&self) -> impl ExactSizeIterator<Item = &[String]> {
        self.shown.iter().map(|&i| self.all[i].as_slice())
    }

    /// The `n`-th row the filter keeps.
    pub fn shown_row(&self, n: usize) -> Option<&[String]> {
        self.shown.get(n).map(|&i| self.all[i].as_slice())
    }

    fn rebuild(&mut self) {
        // Every cell is text the user's machine reported (package names, mount points, ...).
        self.all = match &self.inventory {
            Some(inv) => self
                .table
                .rows(inv)
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|c| display_safe(&c).into_owned())
                        .collect()
                })
                .collect(),
            None => Vec::new(),
        };
        self.refilter();
    }

    fn refilter(&mut self) {
        let needle = self.filter.trim().to_lowercase();
        self.shown = (0..self.all.len())
            .filter(|&i| {
                needle.is_empty()
                    || self.all[i]
                        .iter()
                        .any(|c| c.to_lowercase().contains(&needle))
            })
            .collect();
    }

    /// One journal line: how many rows match, and the first few of them.
    fn line(&self) -> String {
        let first: Vec<&str> = self
            .shown()
            .take(5)
            .map(|r| r.first().map(|c| c.trim()).unwrap_or(""))
            .collect();
        let more = if self.shown.len() > first.len() {
            ", ..."
        } else {
            ""
        };
        format!(
            "inventory table {}: {} of {} rows match {:?}: {}{more}",
            self.table.name(),
            self.shown.len(),
            self.all.len(),
            self.filter.trim(),
            first.join(", ")
        )
    }
}

/// The diagnostics side panel: the probe to run, its parameters, and the verdicts so far.
#[derive(Debug, Clone)]
pub struct DiagPanel {
    /// The probe the Run button runs.
    pub selected: ProbeKind,
    /// Its parameters, as `key=value` words.
    pub params: String,
    /// Why the parameters were not accepted.
    pub param_error: Option<String>,
    /// Requests under way (a probe, or the health check).
    pub running: usize,
    /// Results, newest first.
    pub results: Vec<DiagReport>,
    /// Why the last request failed (e.g. `diagnostics` not granted).
    pub error: Option<String>,
    /// The last health check's counts ("1 problems, 2 warnings, ... 12 ok").
    pub summary: Option<String>,
}

impl Default for DiagPanel {
    fn default() -> Self {
        DiagPanel {
            selected: ProbeKind::Uptime,
            params: String::new(),
            param_error: None,
            running: 0,
            results: Vec::new(),
            error: None,
            summary: None,
        }
    }
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

/// A verdict's colour, as RGB: green, amber, red, grey.
pub fn verdict_rgb(v: Verdict) -> [u8; 3] {
    match v {
        Verdict::Ok => [46, 125, 50],
        Verdict::Warning => [230, 145, 0],
        Verdict::Problem | Verdict::Failed | Verdict::TimedOut => [198, 40, 40],
        Verdict::NotAvailable => [110, 110, 110],
    }
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

    /// Whether a session runs or is being set up (the code field is locked).
    pub fn busy(&self) -> bool {
        matches!(
            self.consent,
            Consent::Waiting { .. }
                | Consent::Granted { .. }
                | Consent::Pairing { .. }
                | Consent::Paired { .. }
        )
    }

    /// What was (or will be) asked for in the current attempt.
    pub fn asked(&self) -> ScopeSet {
        match self.consent {
            Consent::Waiting { asked }
            | Consent::Pairing { asked }
            | Consent::Paired { asked, .. }
            | Consent::Granted { asked, .. }
            | Consent::Failed { asked, .. } => asked,
            _ => self.ask,
        }
    }

    /// What "Ask for control" asks for: `control` while a session runs without it, the role
    /// allows it, and no other ask waits; `None` hides the button.
    pub fn more_offer(&self) -> Option<ScopeSet> {
        let Consent::Granted {
            granted,
            technician,
            ..
        } = &self.consent
        else {
            return None;
        };
        let control: ScopeSet = [Scope::Control].into_iter().collect();
        let offer = control
            .intersection(technician.role.allowed_scopes())
            .difference(*granted);
        (self.more.is_none() && !offer.is_empty()).then_some(offer)
    }

    /// "Ask for control": asks the user, during the session, for what [`Model::more_offer`] says.
    pub fn ask_more(&mut self) -> Option<Action> {
        let offer = self.more_offer()?;
        self.more = Some(offer);
        self.notice = None;
        self.say(format!(
            "grant: asking the user for {offer}; waiting for the answer"
        ));
        Some(Action::AskMore(offer))
    }

    /// "Chat first" tick box: connect without asking, ask later.
    pub fn set_chat_first(&mut self, first: bool) {
        if !self.busy() && self.chat.first != first {
            self.chat.first = first;
            self.say(format!("chat first: {}", if first { "on" } else { "off" }));
        }
    }

    /// "Ask for access" once paired in a "chat first" session.
    pub fn ask_consent(&mut self) -> Option<Action> {
        let Consent::Paired { asked, .. } = self.consent else {
            return None;
        };
        self.consent = Consent::Waiting { asked };
        self.say(format!(
            "consent: asking for {asked}; waiting for the user's answer"
        ));
        Some(Action::AskConsent)
    }

    /// "Send" (or Enter) in the chat panel: the line is checked here first.
    pub fn send_chat(&mut self) -> Option<Action> {
        if !self.chat.open {
            return self.chat_note("nobody is connected yet".into());
        }
        match ChatText::new(&self.chat.draft) {
            Ok(_) => {
                self.chat.note = None;
                Some(Action::Say(std::mem::take(&mut self.chat.draft)))
            }
            Err(e) => self.chat_note(e.to_string()),
        }
    }

    fn chat_note(&mut self, why: String) -> Option<Action> {
        self.say(format!("chat: not sent: {why}"));
        self.chat.note = Some(format!("Not sent: {why}."));
        None
    }

    /// "Invite": asks the user to let a colleague in (needs a running session).
    pub fn invite(&mut self) -> Option<Action> {
        if self.chat.inviting {
            return None;
        }
        if self.granted().is_none() {
            self.chat.invite = Some(Err("Inviting needs a session the user has allowed.".into()));
            self.say("invite: failed: no session the user has allowed".into());
            return None;
        }
        match parse_invitee(&self.chat.invitee) {
            Ok(invitee) => {
                self.chat.inviting = true;
                self.chat.invite = None;
                let handover = self.chat.handover;
                self.say(format!(
                    "invite: asking the user to let in {}{}",
                    invitee_words(&invitee),
                    if handover { " (hand-over)" } else { "" }
                ));
                Some(Action::Invite { invitee, handover })
            }
            Err(e) => {
                self.say(format!("invite: failed: {e}"));
                self.chat.invite = Some(Err(e));
                None
            }
        }
    }

    /// Ticks or unticks a scope to ask for.
    pub fn toggle(&mut self, scope: Scope) {
        if self.busy() {
            return;
        }
        if self.ask.contains(scope) {
            self.ask.remove(scope);
        } else {
            self.ask.insert(scope);
        }
    }

    /// "Connect": parses the code and asks for the ticked scopes.
    pub fn connect(&mut self) -> Option<Action> {
        if self.busy() {
            return None;
        }
        let code: SessionCode = match self.code.trim().parse() {
            Ok(c) => c,
            Err(e) => {
                let text = format!("That is not a session code: {e}.");
                self.say(format!("notice: {text}"));
                self.notice = Some(text);
                return None;
            }
        };
        if self.ask.is_empty() {
            let text = "Tick at least one thing to ask for.".to_string();
            self.say(format!("notice: {text}"));
            self.notice = Some(text);
            return None;
        }
        self.notice = None;
        self.inventory = InventoryPanel {
            table: self.inventory.table,
            filter: self.inventory.filter.clone(),
            ..InventoryPanel::default()
        };
        self.diag.results.clear();
        self.diag.running = 0;
        self.diag.error = None;
        self.diag.summary = None;
        self.verification = None;
        self.reason = None;
        self.chat = ChatPanel {
            first: self.chat.first,
            invitee: self.chat.invitee.clone(),
            handover: self.chat.handover,
            ..ChatPanel::default()
        };
        let ask_now = !self.chat.first;
        if ask_now {
            self.consent = Consent::Waiting { asked: self.ask };
            self.say(format!(
                "consent: asking for {}; waiting for the user's answer",
                self.ask
            ));
        } else {
            self.consent = Consent::Pairing { asked: self.ask };
            self.say("connecting: pairing without asking for anything yet (chat first)".into());
        }
        Some(Action::Connect {
            code,
            scopes: self.ask,
            ask_now,
        })
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

    /// "Fetch inventory" (also "Refresh").
    pub fn fetch_inventory(&mut self) -> Option<Action> {
        if self.granted().is_none() || self.inventory.loading {
            return None;
        }
        if !self.asked().contains(Scope::Inventory) {
            self.inventory.error = Some(not_asked(Scope::Inventory));
            return None;
        }
        self.inventory.loading = true;
        self.inventory.error = None;
        Some(Action::FetchInventory)
    }

    /// Shows another inventory table.
    pub fn show_table(&mut self, table: Table) {
        if self.inventory.table != table {
            self.inventory.table = table;
            self.inventory.rebuild();
            let line = self.inventory.line();
            self.say(line);
        }
    }

    /// The filter text changed.
    pub fn set_filter(&mut self, filter: String) {
        if self.inventory.filter != filter {
            self.inventory.filter = filter;
            self.inventory.refilter();
            let line = self.inventory.line();
            self.say(line);
        }
    }

    /// Picks the probe the Run button runs.
    pub fn select_probe(&mut self, kind: ProbeKind) {
        if self.diag.selected != kind {
            self.diag.selected = kind;
            self.diag.params.clear();
            self.diag.param_error = None;
            self.say(format!("probe selected: {}", kind.name()));
        }
    }

    /// "Run": checks the parameters here first, so a bad one never leaves this machine.
    pub fn run_probe(&mut self) -> Option<Action> {
        self.granted()?;
        if !self.asked().contains(Scope::Diagnostics) {
            self.diag.error = Some(not_asked(Scope::Diagnostics));
            return None;
        }
        let kind = self.diag.selected;
        let words: Vec<&str> = self.diag.params.split_whitespace().collect();
        match Probe::parse(kind, &words) {
            Ok(p) => {
                self.diag.param_error = None;
                self.diag.running += 1;
                self.say(format!("probe {}: running", kind.name()));
                Some(Action::RunProbe(p))
            }
            Err(e) => {
                self.say(format!("probe {}: bad parameters: {e}", kind.name()));
                self.diag.param_error = Some(e.to_string());
                None
            }
        }
    }

    /// "Health check": every probe that needs no parameters.
    pub fn health_check(&mut self) -> Option<Action> {
        self.granted()?;
        if !self.asked().contains(Scope::Diagnostics) {
            self.diag.error = Some(not_asked(Scope::Diagnostics));
            return None;
        }
        self.diag.running += 1;
        self.say("health check: running".into());
        Some(Action::HealthCheck)
    }

    fn report(&mut self, r: DiagReport) {
        self.say(format!(
            "probe {}: {} in {} ms: {}",
            r.probe.kind().name(),
            r.verdict.to_string().to_uppercase(),
            r.elapsed_ms,
            r.reason
        ));
        self.diag.results.insert(0, r);
    }

    /// Applies one event from the session.
    pub fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Paired {
                technician,
                verification,
                reason,
            } => {
                self.chat.open = true;
                self.say(format!(
                    "paired: as {} of {}; verification {verification}: read it out to the user; chat open",
                    technician.name, technician.org
                ));
                if let Some(r) = &reason {
                    self.say(format!("reason: the user asks for help with: {r}"));
                }
                self.verification = Some(verification.clone());
                self.reason = reason;
                if let Consent::Pairing { asked } = self.consent {
                    self.consent = Consent::Paired {
                        asked,
                        technician,
                        verification,
                    };
                }
            }
            Event::Chat { from_user, text } => {
                self.say(format!(
                    "chat: {}: {text}",
                    if from_user { "user" } else { "you" }
                ));
                self.chat.lines.push((from_user, text));
                if from_user && self.tab != Tab::Chat {
                    self.chat.unread += 1;
                }
            }
            Event::ChatRefused(why) => {
                self.chat_note(why);
            }
            Event::Invite(result) => {
                self.chat.inviting = false;
                match &result {
                    // Never the code itself: it is for the colleague's eyes (shown in the window).
                    Ok(_) => self.say(
                        "invite: code ready; give it to your colleague (shown in the window)"
                            .into(),
                    ),
                    Err(e) => self.say(format!("invite: failed: {e}")),
                }
                self.chat.invite = Some(result);
            }
            Event::Granted {
                technician,
                granted,
                verification,
            } => {
                let asked = self.asked();
                let mut missing = asked;
                for s in granted.iter() {
                    missing.remove(s);
                }
                self.say(format!(
                    "consent: granted {granted}; not granted: {missing}; as {} of {}; verification {verification}",
                    technician.name, technician.org
                ));
                self.consent = Consent::Granted {
                    asked,
                    granted,
                    technician,
                    verification,
                };
                // Only what was asked for is reported as refused; the rest was never in question.
                if granted.contains(Scope::Inventory) {
                    self.inventory.loading = true;
                } else if asked.contains(Scope::Inventory) {
                    self.inventory.error = Some("The user did not allow inventory.".into());
                }
                if !granted.contains(Scope::Diagnostics) && asked.contains(Scope::Diagnostics) {
                    self.diag.error = Some("The user did not allow diagnostics.".into());
                }
            }
            Event::Failed { reason, denied } => {
                let asked = self.asked();
                self.chat.open = false;
                let word = if denied { "denied" } else { "failed" };
                self.say(format!("consent: {word}: {reason}"));
                self.consent = Consent::Failed {
                    asked,
                    reason,
                    denied,
                };
            }
            Event::Inventory(r) => {
                self.inventory.loading = false;
                match r {
                    Ok(inv) => {
                        self.say(format!(
                            "inventory: {} packages, {} disks, {} interfaces, {} filesystems",
                            inv.software.packages.len(),
                            inv.hardware.disks.len(),
                            inv.hardware.interfaces.len(),
                            inv.status.filesystems.len()
                        ));
                        self.inventory.inventory = Some(inv);
                        self.inventory.error = None;
                        self.inventory.rebuild();
                        let line = self.inventory.line();
                        self.say(line);
                    }
                    Err(e) => {
                        self.say(format!("inventory: failed: {e}"));
                        self.inventory.error = Some(e);
                    }
                }
            }
            Event::Probe { kind, result } => {
                self.diag.running = self.diag.running.saturating_sub(1);
                match result {
                    Ok(r) => self.report(*r),
                    Err(e) => {
                        self.say(format!("probe {}: failed: {e}", kind.name()));
                        self.diag.error = Some(e);
                    }
                }
            }
            Event::HealthCheck(result) => {
                self.diag.running = self.diag.running.saturating_sub(1);
                match result {
                    // Shown problems first: insert the least urgent first.
                    Ok(reports) => {
                        let summary = format!("Health check: {}", render::health_counts(&reports));
                        self.say(summary.to_lowercase());
                        self.diag.summary = Some(summary);
                        reports.into_iter().rev().for_each(|r| self.report(r));
                    }
                    Err(e) => {
                        self.say(format!("health check: failed: {e}"));
                        self.diag.error = Some(e);
                    }
                }
            }
            Event::GrantChanged { granted: now } => {
                let Consent::Granted { granted, asked, .. } = &mut self.consent else {
                    return;
                };
                let gone = granted.difference(now);
                let added = now.difference(*granted);
                *granted = now;
                *asked = asked.union(now);
                if !added.is_empty() {
                    self.say(format!(
                        "grant: the user allowed {added}; now allowed: {now}"
                    ));
                    if added.contains(Scope::Control) {
                        self.notice = None;
                    }
                }
                if !gone.is_empty() {
                    self.say(format!(
                        "grant: the user took back {gone}; now allowed: {now}"
                    ));
                    if gone.contains(Scope::Control) {
                        self.notice = Some(
                            "The user took back control. Your mouse and keyboard no longer \
                             reach their computer; the rest of the session goes on."
                                .into(),
                        );
                    }
                }
            }
            Event::MoreAnswered {
                asked: more,
                granted: now,
                words,
            } => {
                self.more = None;
                self.say(format!("grant: asked for {more}: {words}"));
                if let Consent::Granted { granted, asked, .. } = &mut self.consent {
                    *granted = now;
                    *asked = asked.union(more);
                }
                if now.intersection(more).is_empty() {
                    self.notice = Some(format!("Not allowed: {words}."));
                }
            }
            Event::Ended(reason) => {
                self.more = None;
                self.inventory.loading = false;
                self.diag.running = 0;
                let granted = self.granted().unwrap_or(ScopeSet::EMPTY);
                self.chat.open = false;
                self.chat.inviting = false;
                match &self.consent {
                    Consent::Waiting { .. } | Consent::Pairing { .. } | Consent::Paired { .. } => {
                        let asked = self.asked();
                        self.say(format!("consent: failed: {reason}"));
                        self.consent = Consent::Failed {
                            asked,
                            reason,
                            denied: false,
                        };
                    }
                    Consent::Granted { .. } => {
                        self.say(format!("session ended: {reason}"));
                        self.consent = Consent::Ended { granted, reason };
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::msg::TechnicianRole;

    fn ada() -> TechnicianIdentity {
        TechnicianIdentity {
            name: "Ada".into(),
            org: "Acme".into(),
            role: TechnicianRole::Technician,
            tier: tether_proto::msg::Tier::L1,
        }
    }

    fn inventory(names: &[&str]) -> Box<Inventory> {
        use tether_proto::inventory::*;
        let nic = |name: &str| Interface {
            name: name.into(),
            mac: String::new(),
            ipv4: vec!["127.0.0.1/8".into()],
            ipv6: vec![],
            speed_mbps: None,
            up: true,
            oper_state: "up".into(),
        };
        Box::new(Inventory {
            collected_unix: 1,
            hardware: Hardware {
                system: SystemFacts {
                    hostname: "h".into(),
                    os_name: "o".into(),
                    os_version: "1".into(),
                    kernel: "k".into(),
                    arch: "x86_64".into(),
                },
                cpu: Cpu {
                    model: "m".into(),
                    vendor: "v".into(),
                    sockets: 1,
                    cores: 2,
                    threads: 4,
                    max_mhz: None,
                    current_mhz: None,
                },
                memory: Memory {
                    total: 1,
                    swap_total: 0,
                    modules: ModuleListing::Unavailable,
                },
                disks: vec![],
                interfaces: vec![nic("lo"), nic("eth0")],
                gpus: vec![],
                displays: vec![],
                batteries: vec![],
                dmi: Dmi {
                    system_vendor: Fact::Unavailable,
                    system_model: Fact::Unavailable,
                    system_serial: Fact::NeedsRoot,
                    system_uuid: Fact::NeedsRoot,
                    bios_vendor: Fact::Unavailable,
                    bios_version: Fact::Unavailable,
                    bios_date: Fact::Unavailable,
                    board_vendor: Fact::Unavailable,
                    board_model: Fact::Unavailable,
                    board_serial: Fact::NeedsRoot,
                },
            },
            status: Status {
                uptime_secs: 1,
                boot_unix: 0,
                users: vec![],
                memory_available: 1,
                swap_free: 0,
                filesystems: vec![],
                battery_percent: vec![],
            },
            software: Software {
                sources: vec![(PackageSource::Dpkg, SourceState::Read)],
                packages: names
                    .iter()
                    .map(|n| Package {
                        source: PackageSource::Dpkg,
                        name: n.to_string(),
                        arch: "amd64".into(),
                        version: "1.0".into(),
                    })
                    .collect(),
            },
        })
    }

    fn granted(m: &mut Model, scopes: &str) {
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
                "consent: granted view,inventory; not granted: control,diagnostics; as Ada of Acme"
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
