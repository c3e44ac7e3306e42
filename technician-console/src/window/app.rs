//! The eframe rendering of [`Model`]: draws the top bar, the consent strip, the side panel and the
//! live screen, and turns clicks into [`Action`]s for the [`Backend`].

use eframe::egui::{
    self, Align, Color32, FontId, Layout, Pos2, Rect, RichText, Stroke, UiBuilder, Vec2,
};
use tether_proto::Scope;
use tether_proto::diag::ProbeKind;
use tether_proto::text::display_safe;

use super::layout;
use super::model::{Action, Consent, Model, Tab, Table, TransferState, verdict_rgb};
use super::{Backend, Job};
use crate::render;
use crate::viewer::ScreenPane;

const WAIT_BG: Color32 = Color32::from_rgb(255, 236, 179);
const DENIED_BG: Color32 = Color32::from_rgb(255, 205, 205);
const GRANTED_BG: Color32 = Color32::from_rgb(200, 230, 201);
const IDLE_BG: Color32 = Color32::from_rgb(230, 230, 230);
const INK: Color32 = Color32::from_rgb(20, 20, 20);

pub(super) struct ConsoleApp {
    model: Model,
    backend: Option<Backend>,
    pane: Option<ScreenPane>,
    /// The session whose screen the pane shows.
    pane_generation: u64,
    /// Whether the pane forwards input (`control` granted) as last set.
    pane_control: bool,
    /// Put the keyboard back into the chat field on the next frame (after Enter sent a line).
    refocus_chat: bool,
    /// Why the live screen stopped, as last printed (a test channel, like the journal).
    screen_stopped: Option<String>,
    /// The live screen's last note (a clipboard sync, ...), printed when it changes.
    screen_note: Option<String>,
    /// The remote display shown, as last printed.
    screen_shown: Option<tether_proto::screen::DisplayInfo>,
    /// Whether the window had the focus at the last frame (the clipboard sync follows it).
    focused: Option<bool>,
}

fn rect(r: [f32; 4]) -> Rect {
    Rect::from_min_size(Pos2::new(r[0], r[1]), Vec2::new(r[2], r[3]))
}

/// Lays out `add` top-down inside a fixed area.
fn area<R>(ui: &mut egui::Ui, r: Rect, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    ui.scope_builder(
        UiBuilder::new()
            .max_rect(r)
            .layout(Layout::top_down(Align::Min)),
        add,
    )
    .inner
}

fn colour([r, g, b]: [u8; 3]) -> Color32 {
    Color32::from_rgb(r, g, b)
}

impl ConsoleApp {
    pub(super) fn new(ctx: &egui::Context, backend: Backend) -> Self {
        ctx.all_styles_mut(|s| {
            s.text_styles
                .insert(egui::TextStyle::Body, FontId::proportional(15.0));
            s.text_styles
                .insert(egui::TextStyle::Button, FontId::proportional(15.0));
            s.text_styles
                .insert(egui::TextStyle::Monospace, FontId::monospace(13.0));
            s.spacing.interact_size.y = 24.0;
            s.spacing.icon_width = 20.0;
            s.spacing.icon_width_inner = 11.0;
            s.visuals.widgets.inactive.bg_stroke = Stroke::new(1.0, Color32::from_gray(120));
            s.visuals.widgets.inactive.fg_stroke = Stroke::new(2.0, INK);
        });
        ctx.set_theme(egui::Theme::Light);
        ConsoleApp {
            model: Model::new(),
            backend: Some(backend),
            pane: None,
            pane_generation: 0,
            pane_control: false,
            refocus_chat: false,
            screen_stopped: None,
            screen_note: None,
            screen_shown: None,
            focused: None,
        }
    }

    fn act(&mut self, action: Option<Action>) {
        let (Some(action), Some(backend)) = (action, self.backend.as_mut()) else {
            return;
        };
        match action {
            Action::Connect {
                code,
                scopes,
                ask_now,
            } => backend.connect(crate::enrolled::Reach::Code(code), scopes, ask_now),
            Action::ConnectDevice {
                device,
                scopes,
                unattended,
            } => {
                let target = crate::enrolled::DeviceTarget {
                    device,
                    unattended,
                    key_dir: crate::technician_key::default_dir(),
                };
                backend.connect(crate::enrolled::Reach::Device(target), scopes, true)
            }
            Action::ListDevices => backend.list_devices(),
            Action::AskConsent => backend.send(Job::AskConsent),
            Action::AskMore(scopes) => backend.send(Job::AskMore(scopes)),
            Action::Say(line) => backend.send(Job::Say(line)),
            Action::Invite { invitee, handover } => backend.send(Job::Invite { invitee, handover }),
            Action::End => backend.send(Job::End),
            Action::FetchInventory => backend.send(Job::Inventory),
            Action::RunProbe(p) => backend.send(Job::Probe(p)),
            Action::HealthCheck => backend.send(Job::HealthCheck),
            Action::ListFiles(dir) => backend.send(Job::ListFiles(dir)),
            Action::PullFile(path) => backend.send(Job::PullFile(path)),
            Action::PushFiles(paths) => backend.send(Job::PushFiles(paths)),
        }
    }

    fn pump(&mut self) {
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        for ev in backend.poll() {
            self.model.on_event(ev);
        }
        if let Some(granted) = self.model.granted() {
            let control = granted.contains(Scope::Control);
            let input = control.then(|| backend.input.clone());
            if self.pane_generation != backend.generation() {
                self.pane_generation = backend.generation();
                self.pane = Some(ScreenPane::new(backend.screen.clone(), input));
                self.pane_control = control;
            } else if self.pane_control != control
                && let Some(pane) = &mut self.pane
            {
                // Stop control, or "Ask for control" answered yes: the same picture goes on.
                pane.set_input(input);
                self.pane_control = control;
            }
        }
        // Standard output carries every change, one line each (a test and scripting channel).
        for line in self.model.journal() {
            tether_net::quietln!("{line}");
        }
        let stopped = backend.screen.lock().ok().and_then(|s| s.stopped.clone());
        if stopped != self.screen_stopped {
            if let Some(s) = &stopped {
                tether_net::quietln!("screen: view stopped: {s}");
            }
            self.screen_stopped = stopped;
        }
        let note = backend.screen.lock().ok().and_then(|s| s.note.clone());
        if note != self.screen_note {
            if let Some(n) = &note {
                tether_net::quietln!("screen: note: {n}");
            }
            self.screen_note = note;
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.put(
            rect([12.0, 10.0, 50.0, 34.0]),
            egui::Label::new(RichText::new("Code").strong()),
        );
        let busy = self.model.busy();
        let mut code = self.model.code.clone();
        let field = ui.put(
            rect(layout::CODE),
            egui::TextEdit::singleline(&mut code)
                .hint_text("417 302 958")
                .font(FontId::monospace(18.0))
                .interactive(!busy),
        );
        if field.changed() {
            self.model.code = code;
        }
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        for (i, scope) in Scope::ALL.iter().enumerate() {
            let mut ticked = self.model.ask.contains(*scope);
            let changed = ui
                .scope_builder(
                    UiBuilder::new()
                        .max_rect(rect(layout::scope_box(i)))
                        .layout(Layout::left_to_right(Align::Center)),
                    |ui| {
                        ui.add_enabled(!busy, egui::Checkbox::new(&mut ticked, scope.name()))
                            .changed()
                    },
                )
                .inner;
            if changed {
                self.model.toggle(*scope);
            }
        }
        // "End session" takes Connect's place during a session, so both fit down to the smallest width.
        let connect = !busy
            && ui
                .put(
                    rect(layout::CONNECT),
                    egui::Button::new(RichText::new("Connect").strong()),
                )
                .clicked();
        if (connect || enter) && !busy {
            let a = self.model.connect();
            self.act(a);
        }
        if busy
            && ui
                .put(
                    rect(layout::END),
                    egui::Button::new(RichText::new("End session").strong())
                        .fill(Color32::from_rgb(239, 154, 154)),
                )
                .clicked()
        {
            let a = self.model.end();
            self.act(a);
        }
        if matches!(self.model.consent, Consent::Paired { .. })
            && ui
                .put(
                    rect(layout::ASK),
                    egui::Button::new(RichText::new("Ask for access").strong())
                        .fill(Color32::from_rgb(165, 214, 167)),
                )
                .clicked()
        {
            let a = self.model.ask_consent();
            self.act(a);
        }
        if let Some(n) = &self.model.notice {
            let width = ui.ctx().content_rect().width() - layout::NOTICE[0] - 10.0;
            ui.put(
                rect([layout::NOTICE[0], layout::NOTICE[1], width.max(40.0), 34.0]),
                egui::Label::new(RichText::new(n).color(Color32::from_rgb(198, 40, 40))),
            );
        }
    }

    /// "Ask for control", over the consent strip's right end, while a session runs without it.
    fn ask_more(&mut self, ui: &mut egui::Ui) {
        if self.model.more_offer().is_some()
            && ui
                .put(
                    rect(layout::ASK_MORE),
                    egui::Button::new(RichText::new("Ask for control").strong())
                        .fill(Color32::from_rgb(165, 214, 167)),
                )
                .clicked()
        {
            let a = self.model.ask_more();
            self.act(a);
        }
    }

    fn consent_strip(&self, ui: &mut egui::Ui) {
        let width = ui.ctx().content_rect().width() - 20.0;
        let r = rect([
            layout::CONSENT[0],
            layout::CONSENT[1],
            width,
            layout::CONSENT[3],
        ]);
        let (bg, text) = match &self.model.consent {
            Consent::Idle => (
                IDLE_BG,
                "Enter the code the user reads to you, tick what you need, and press Connect."
                    .to_string(),
            ),
            Consent::Pairing { asked } => (
                WAIT_BG,
                format!(
                    "Pairing with the user's computer (chat first; {asked} will be asked later)..."
                ),
            ),
            Consent::Paired {
                asked,
                technician,
                verification,
            } => (
                WAIT_BG,
                format!(
                    "Paired as {} of {}. Verification code {verification}: read it out to the user. \
                     Nothing asked yet: chat, then press \"Ask for access\" ({asked}).",
                    technician.name, technician.org
                ),
            ),
            Consent::Waiting { asked } => (
                WAIT_BG,
                match &self.model.verification {
                    Some(v) => format!(
                        "Verification code {v}: read it out to the user; their screen shows the same. \
                         Asked for: {asked}. Waiting for their answer..."
                    ),
                    None => format!("Asked for: {asked}. Pairing with the user's computer..."),
                },
            ),
            Consent::Granted {
                asked,
                granted,
                technician,
                verification,
            } => {
                let mut missing = *asked;
                for s in granted.iter() {
                    missing.remove(s);
                }
                let mut not = if missing.is_empty() {
                    String::new()
                } else {
                    format!("   Not granted: {missing}.")
                };
                if let Some(more) = self.model.more {
                    not.push_str(&format!("   Asking the user for {more}..."));
                }
                (
                    GRANTED_BG,
                    format!(
                        "Granted: {granted}.{not}   Connected as {} of {}. Verification code {verification}.",
                        technician.name, technician.org
                    ),
                )
            }
            Consent::Failed {
                asked,
                reason,
                denied,
            } => (
                DENIED_BG,
                if *denied {
                    format!("Denied: the user refused ({asked} asked). Nothing is shared.")
                } else {
                    format!("No session: {reason}.")
                },
            ),
            Consent::Ended { granted, reason } => (
                IDLE_BG,
                format!(
                    "Session over ({reason}); it had: {granted}. Enter a new code to start again."
                ),
            ),
        };
        ui.painter().rect_filled(r, 5.0, bg);
        area(ui, r.shrink2(Vec2::new(12.0, 10.0)), |ui| {
            // Names, org and reasons in it come from the relay or the agent.
            ui.label(
                RichText::new(display_safe(&text))
                    .size(16.0)
                    .strong()
                    .color(INK),
            );
        });
    }

    fn tabs(&mut self, ui: &mut egui::Ui) {
        for (tab, r, name) in [
            (Tab::Inventory, layout::TAB_INVENTORY, "Inventory"),
            (Tab::Diagnostics, layout::TAB_DIAGNOSTICS, "Diagnostics"),
            (Tab::Chat, layout::TAB_CHAT, "Chat"),
            (Tab::Files, layout::TAB_FILES, "Files"),
            (Tab::Devices, layout::TAB_DEVICES, "Devices"),
        ] {
            let unread = self.model.chat.unread;
            let name = if tab == Tab::Chat && unread > 0 {
                format!("{name} ({unread} new)")
            } else {
                name.to_string()
            };
            let selected = self.model.tab == tab;
            if ui
                .put(
                    rect(r),
                    egui::Button::selectable(selected, RichText::new(name).strong()),
                )
                .clicked()
            {
                self.model.open_tab(tab);
            }
        }
        let p = layout::PANEL;
        ui.painter().line_segment(
            [
                Pos2::new(p[0], layout::TAB_INVENTORY[1] + 34.0),
                Pos2::new(p[0] + p[2], layout::TAB_INVENTORY[1] + 34.0),
            ],
            Stroke::new(1.0, Color32::GRAY),
        );
    }

    fn inventory(&mut self, ui: &mut egui::Ui) {
        let granted = self.model.granted().is_some();
        let label = if self.model.inventory.loading {
            "Loading..."
        } else {
            "Refresh"
        };
        if ui
            .put(
                rect(layout::REFRESH),
                egui::Button::new(label).sense(if granted {
                    egui::Sense::click()
                } else {
                    egui::Sense::hover()
                }),
            )
            .clicked()
        {
            let a = self.model.fetch_inventory();
            self.act(a);
        }
        let mut filter = self.model.inventory.filter.clone();
        if ui
            .put(
                rect(layout::FILTER),
                egui::TextEdit::singleline(&mut filter).hint_text("Filter rows (any column)"),
            )
            .changed()
        {
            self.model.set_filter(filter);
        }
        for (i, table) in Table::ALL.iter().enumerate() {
            let selected = self.model.inventory.table == *table;
            if ui
                .put(
                    rect(layout::table_tab(i)),
                    egui::Button::selectable(selected, table.name()),
                )
                .clicked()
            {
                self.model.show_table(*table);
            }
        }
        let inv = &self.model.inventory;
        let r = rect(layout::TABLE);
        let r = Rect::from_min_max(
            r.min,
            Pos2::new(r.max.x, ui.ctx().content_rect().max.y - 8.0),
        );
        let table = inv.table;
        let widths: Vec<f32> = table
            .widths()
            .iter()
            .map(|w| w * (r.width() - 16.0))
            .collect();
        let message = match (&inv.inventory, &inv.error) {
            (_, Some(e)) => Some(e.clone()),
            (None, None) if inv.loading => Some("Asking the agent for its inventory...".into()),
            (None, None) => Some("No inventory yet.".into()),
            _ => None,
        };
        area(ui, r, |ui| {
            if let Some(m) = message {
                ui.label(m);
                return;
            }
            ui.label(
                RichText::new(format!("{} of {} rows", inv.shown().len(), inv.total())).italics(),
            );
            row(
                ui,
                &widths,
                table.columns().iter().map(|c| c.to_string()),
                true,
            );
            let row_h = 18.0;
            egui::ScrollArea::vertical()
                .id_salt(("table", table.name()))
                .auto_shrink([false, false])
                .show_rows(ui, row_h, inv.shown().len(), |ui, range| {
                    for n in range {
                        if let Some(cells) = inv.shown_row(n) {
                            row(ui, &widths, cells.iter().cloned(), false);
                        }
                    }
                });
        });
    }

    fn chat(&mut self, ui: &mut egui::Ui) {
        let busy = self.model.busy();
        let mut first = self.model.chat.first;
        let changed = ui
            .scope_builder(
                UiBuilder::new()
                    .max_rect(rect(layout::CHAT_FIRST))
                    .layout(Layout::left_to_right(Align::Center)),
                |ui| {
                    ui.add_enabled(
                        !busy,
                        egui::Checkbox::new(
                            &mut first,
                            "Chat first: connect without asking; ask when ready",
                        ),
                    )
                    .changed()
                },
            )
            .inner;
        if changed {
            self.model.set_chat_first(first);
        }
        let mut invitee = self.model.chat.invitee.clone();
        if ui
            .put(
                rect(layout::INVITEE),
                egui::TextEdit::singleline(&mut invitee).hint_text("Colleague's name, or L2 / L3"),
            )
            .changed()
        {
            self.model.chat.invitee = invitee;
        }
        let mut handover = self.model.chat.handover;
        ui.scope_builder(
            UiBuilder::new()
                .max_rect(rect(layout::HANDOVER))
                .layout(Layout::left_to_right(Align::Center)),
            |ui| ui.checkbox(&mut handover, "hand over"),
        );
        self.model.chat.handover = handover;
        let label = if self.model.chat.inviting {
            "Asking the user..."
        } else {
            "Invite"
        };
        if ui
            .put(
                rect(layout::INVITE),
                egui::Button::new(RichText::new(label).strong()),
            )
            .clicked()
        {
            let a = self.model.invite();
            self.act(a);
        }
        let r = layout::INVITE_RESULT;
        match &self.model.chat.invite {
            Some(Ok(code)) => {
                ui.painter().rect_filled(rect(r), 5.0, GRANTED_BG);
                area(ui, rect(r).shrink2(Vec2::new(10.0, 4.0)), |ui| {
                    ui.horizontal(|ui| {
                        ui.label(
                            RichText::new("Give your colleague this code:")
                                .strong()
                                .color(INK),
                        );
                        ui.label(
                            RichText::new(code.to_string())
                                .font(FontId::monospace(34.0))
                                .strong()
                                .color(INK),
                        );
                    });
                    ui.label(
                        RichText::new("It works once; the user is asked again when they connect.")
                            .size(13.0)
                            .color(INK),
                    );
                });
            }
            Some(Err(e)) => {
                ui.painter().rect_filled(rect(r), 5.0, DENIED_BG);
                area(ui, rect(r).shrink2(Vec2::new(10.0, 6.0)), |ui| {
                    ui.label(
                        RichText::new(format!("No invitation: {e}"))
                            .strong()
                            .color(INK),
                    );
                });
            }
            None => {
                area(ui, rect(r).shrink2(Vec2::new(2.0, 6.0)), |ui| {
                    ui.label(
                        "Invite a colleague by name, or any technician of a tier (L2, L3). The \
                         user is asked first; you get a one-time code to give them.",
                    );
                });
            }
        }
        let height = ui.ctx().content_rect().height();
        let log = layout::chat_log(height);
        ui.painter().rect_stroke(
            rect(log),
            4.0,
            Stroke::new(1.0, Color32::GRAY),
            egui::StrokeKind::Inside,
        );
        let lines = self.model.chat.lines.clone();
        let open = self.model.chat.open;
        area(ui, rect(log).shrink(6.0), |ui| {
            if lines.is_empty() {
                ui.label(
                    RichText::new(if open {
                        "Say hello: the user sees your lines in their window."
                    } else {
                        "The conversation with the user shows here once you are paired."
                    })
                    .italics(),
                );
            }
            egui::ScrollArea::vertical()
                .id_salt("chat")
                .stick_to_bottom(true)
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    for (from_user, text) in &lines {
                        let (who, c) = if *from_user {
                            ("User", Color32::from_rgb(21, 101, 192))
                        } else {
                            ("You", Color32::from_rgb(46, 125, 50))
                        };
                        ui.horizontal_wrapped(|ui| {
                            ui.label(RichText::new(format!("{who}:")).strong().color(c));
                            ui.label(text);
                        });
                    }
                });
        });
        if let Some(n) = &self.model.chat.note {
            ui.put(
                rect([10.0, 820.0, 560.0, 24.0]),
                egui::Label::new(RichText::new(n).color(Color32::from_rgb(198, 40, 40))).truncate(),
            );
        }
        let mut draft = self.model.chat.draft.clone();
        let field = ui.put(
            rect(layout::chat_input(height)),
            egui::TextEdit::singleline(&mut draft)
                .hint_text("Message to the user")
                .interactive(open),
        );
        if self.refocus_chat {
            self.refocus_chat = false;
            field.request_focus();
        }
        if field.changed() {
            self.model.chat.draft = draft;
        }
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui
            .put(
                rect(layout::chat_send(height)),
                egui::Button::new(RichText::new("Send").strong()),
            )
            .clicked()
            || enter
        {
            self.refocus_chat = enter;
            let a = self.model.send_chat();
            self.act(a);
        }
    }

    fn diagnostics(&mut self, ui: &mut egui::Ui) {
        let granted = self.model.granted().is_some();
        for (i, kind) in ProbeKind::ALL.iter().enumerate() {
            let selected = self.model.diag.selected == *kind;
            let resp = ui
                .put(
                    rect(layout::probe(i)),
                    egui::Button::selectable(selected, kind.name()),
                )
                .on_hover_text(crate::diag::describe(*kind));
            if resp.clicked() {
                self.model.select_probe(*kind);
            }
        }
        let kind = self.model.diag.selected;
        let hint = if crate::diag::params(kind).is_empty() {
            "no parameters".to_string()
        } else {
            crate::diag::params(kind)
                .iter()
                .map(|p| format!("{}=<{}>", p.name, p.kind))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut params = self.model.diag.params.clone();
        if ui
            .put(
                rect(layout::PARAMS),
                egui::TextEdit::singleline(&mut params).hint_text(hint),
            )
            .changed()
        {
            self.model.diag.params = params;
        }
        let sense = if granted {
            egui::Sense::click()
        } else {
            egui::Sense::hover()
        };
        if ui
            .put(
                rect(layout::RUN),
                egui::Button::new(RichText::new("Run").strong()).sense(sense),
            )
            .clicked()
        {
            let a = self.model.run_probe();
            self.act(a);
        }
        if ui
            .put(
                rect(layout::HEALTH),
                egui::Button::new("Health check (all probes)").sense(sense),
            )
            .clicked()
        {
            let a = self.model.health_check();
            self.act(a);
        }
        let d = &self.model.diag;
        let status = match (&d.param_error, d.running, &d.error) {
            (Some(e), _, _) => Some((Color32::from_rgb(198, 40, 40), e.clone())),
            (None, n, _) if n > 0 => Some((INK, "Running on the user's computer...".to_string())),
            (None, _, Some(e)) => Some((Color32::from_rgb(198, 40, 40), e.clone())),
            _ => None,
        };
        if let Some((c, text)) = status {
            ui.put(
                rect([218.0, 442.0, 352.0, 30.0]),
                egui::Label::new(RichText::new(display_safe(&text)).color(c)).truncate(),
            );
        }
        let r = rect(layout::RESULTS);
        let r = Rect::from_min_max(
            r.min,
            Pos2::new(r.max.x, ui.ctx().content_rect().max.y - 8.0),
        );
        let results = d.results.clone();
        let summary = d.summary.clone();
        area(ui, r, |ui| {
            if results.is_empty() {
                ui.label(format!("{}: {}", kind.name(), crate::diag::describe(kind)));
                return;
            }
            if let Some(summary) = summary {
                ui.label(RichText::new(summary).size(14.0).strong().color(INK));
                ui.separator();
            }
            egui::ScrollArea::vertical()
                .id_salt("results")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    for (i, rep) in results.iter().enumerate() {
                        ui.horizontal(|ui| {
                            let c = colour(verdict_rgb(rep.verdict));
                            ui.label(
                                RichText::new(format!(
                                    " {} ",
                                    rep.verdict.to_string().to_uppercase()
                                ))
                                .strong()
                                .color(Color32::WHITE)
                                .background_color(c),
                            );
                            ui.label(RichText::new(rep.probe.kind().name()).strong());
                            ui.label(format!("{} ms", rep.elapsed_ms));
                        });
                        ui.label(display_safe(&rep.reason));
                        // The facts, as the command line prints them (its first line repeats the
                        // verdict). Collapsed: the verdicts and reasons are the overview; a long
                        // fact is cut (its full text on hover) rather than wrapped mid-word.
                        let text = render::diag(rep);
                        let facts: Vec<&str> = text.lines().skip(1).collect();
                        if !facts.is_empty() {
                            egui::CollapsingHeader::new("details")
                                .id_salt(("facts", i, rep.elapsed_ms))
                                .default_open(false)
                                .show(ui, |ui| {
                                    for l in facts {
                                        ui.add(
                                            egui::Label::new(
                                                RichText::new(l.trim_start()).monospace(),
                                            )
                                            .truncate(),
                                        );
                                    }
                                });
                        }
                        ui.separator();
                    }
                });
        });
    }

    fn screen(&mut self, ui: &mut egui::Ui) {
        let content = ui.ctx().content_rect();
        let r = Rect::from_min_max(
            Pos2::new(layout::SCREEN_X, layout::SCREEN_TOP),
            content.max - Vec2::splat(8.0),
        );
        ui.painter().line_segment(
            [
                Pos2::new(layout::SCREEN_X - 8.0, layout::PANEL[1]),
                Pos2::new(layout::SCREEN_X - 8.0, r.max.y),
            ],
            Stroke::new(1.0, Color32::GRAY),
        );
        let granted = self.model.granted();
        let asked_view = self.model.asked().contains(Scope::View);
        let reason = self.model.reason.clone();
        let intro = |ui: &mut egui::Ui| {
            if let Some(reason) = &reason {
                ui.label(
                    RichText::new(format!("The user asks for help with: {reason}"))
                        .size(17.0)
                        .strong()
                        .color(INK),
                );
                ui.add_space(6.0);
            }
        };
        let pane = match (&mut self.pane, granted) {
            (Some(p), Some(_)) if asked_view => p,
            _ => {
                area(ui, r, |ui| {
                    intro(ui);
                    ui.label(RichText::new("Live screen").strong());
                    ui.label(if granted.is_some() && !asked_view {
                        "This session did not ask for \"view\"."
                    } else {
                        "The user's screen shows here once they allow \"view\"."
                    });
                });
                return;
            }
        };
        let st = pane.update(ui.ctx());
        if let Some(d) = pane.bar(ui, layout::SCREEN_BAR)
            && let Some(b) = &self.backend
        {
            b.send(Job::Display(d));
        }
        if st.display != self.screen_shown {
            // Standard output says which display is shown (a test and scripting channel).
            if let Some(d) = &st.display {
                tether_net::quietln!("screen: showing {}", crate::displays::describe(d));
            }
            self.screen_shown = st.display.clone();
        }
        let control = granted.is_some_and(|g| g.contains(Scope::Control));
        area(ui, r, |ui| {
            intro(ui);
            ui.horizontal(|ui| {
                ui.label(RichText::new("Live screen").strong());
                ui.label(if control {
                    "(you can use the mouse and keyboard)"
                } else {
                    "(view only)"
                });
                ui.label(&st.line);
            });
            if let Some(n) = &st.note {
                ui.colored_label(Color32::from_rgb(230, 145, 0), n);
            }
            if let Some(s) = &st.stopped {
                ui.colored_label(
                    Color32::from_rgb(198, 40, 40),
                    format!("View stopped: {}", display_safe(s)),
                );
            } else {
                pane.show(ui);
            }
        });
        // No timed repaint: the view task asks for one when a frame, the cursor or the status
        // changes (see `viewer::ViewerState::repaint`), and egui repaints on input.
    }
}

impl ConsoleApp {
    fn devices(&mut self, ui: &mut egui::Ui) {
        let label = if self.model.devices.loading {
            "Loading..."
        } else {
            "Refresh"
        };
        if ui
            .put(rect(layout::DEVICES_REFRESH), egui::Button::new(label))
            .clicked()
        {
            let a = self.model.refresh_devices();
            self.act(a);
        }
        let mut unattended = self.model.devices.unattended;
        if ui
            .put(
                rect(layout::DEVICES_UNATTENDED),
                egui::Checkbox::new(
                    &mut unattended,
                    "Unattended: nobody is asked, only what IT's policy allows",
                ),
            )
            .changed()
        {
            self.model.devices.unattended = unattended;
        }
        if let Some(e) = &self.model.devices.error {
            ui.put(
                rect(layout::device_row(0)),
                egui::Label::new(RichText::new(display_safe(e)).color(INK)),
            );
            return;
        }
        let busy = self.model.busy();
        let rows: Vec<(String, bool)> = self
            .model
            .devices
            .devices
            .iter()
            .map(|d| {
                let seen = d.last_seen_unix.map_or("never reported".to_string(), |t| {
                    format!("last report {}", crate::units::utc(t))
                });
                // Host names and OS come from the device.
                let text = format!(
                    "{} · {} · {seen}",
                    display_safe(&d.hostname),
                    display_safe(&d.os)
                );
                (text, d.device_key.is_some())
            })
            .collect();
        for (i, (text, reachable)) in rows.into_iter().enumerate() {
            ui.put(
                rect(layout::device_row(i)),
                egui::Label::new(text).truncate(),
            );
            let sense = if reachable && !busy {
                egui::Sense::click()
            } else {
                egui::Sense::hover()
            };
            if ui
                .put(
                    rect(layout::device_connect(i)),
                    egui::Button::new("Connect").sense(sense),
                )
                .clicked()
            {
                let a = self.model.connect_device(i);
                self.act(a);
            }
        }
    }

    fn files(&mut self, ui: &mut egui::Ui) {
        let allowed = self
            .model
            .granted()
            .is_some_and(|g| g.contains(Scope::Files));
        let mut dir = self.model.files.dir.clone();
        let field = ui.put(
            rect(layout::FILES_DIR),
            egui::TextEdit::singleline(&mut dir)
                .hint_text("Folder on the user's computer (empty: home)"),
        );
        if field.changed() {
            self.model.files.dir = dir;
        }
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let label = if self.model.files.listing_pending {
            "Listing..."
        } else {
            "List"
        };
        let list = ui.put(
            rect(layout::FILES_LIST),
            egui::Button::new(label).sense(if allowed {
                egui::Sense::click()
            } else {
                egui::Sense::hover()
            }),
        );
        if list.clicked() || enter {
            let a = self.model.list_files();
            self.act(a);
        }
        let up = self
            .model
            .files
            .listing
            .as_ref()
            .and_then(|l| std::path::Path::new(&l.dir).parent())
            .map(|p| p.to_string_lossy().into_owned());
        if ui
            .put(
                rect(layout::FILES_UP),
                egui::Button::new("Up").sense(if up.is_some() && allowed {
                    egui::Sense::click()
                } else {
                    egui::Sense::hover()
                }),
            )
            .clicked()
            && let Some(up) = up
        {
            self.model.files.dir = up;
            let a = self.model.list_files();
            self.act(a);
        }
        let mut clicked = None;
        let l = layout::FILES_LISTING;
        area(ui, rect([l[0], l[1], l[2], 20.0]), |ui| {
            let files = &self.model.files;
            let line = match (&files.error, &files.listing) {
                (Some(e), _) => {
                    RichText::new(display_safe(e)).color(Color32::from_rgb(198, 40, 40))
                }
                (None, Some(listing)) => RichText::new(format!(
                    "{} ({} entries)",
                    display_safe(&listing.dir),
                    listing.entries.len()
                ))
                .italics(),
                (None, None) if allowed => RichText::new(
                    "Press List. Click a folder to open it, a file to fetch it; drop files on the screen to send them.",
                ),
                (None, None) => RichText::new("Files show here once the user allows \"files\"."),
            };
            ui.add(egui::Label::new(line).truncate());
        });
        // Rows at fixed places (`layout::files_entry`), scrolled when there are more.
        let first = layout::files_entry(0);
        area(
            ui,
            rect([l[0], first[1], l[2], l[1] + l[3] - first[1]]),
            |ui| {
                let Some(listing) = &self.model.files.listing else {
                    return;
                };
                let spacing = ui.spacing().item_spacing.y;
                egui::ScrollArea::vertical()
                    .id_salt("files")
                    .auto_shrink([false, false])
                    .show_rows(
                        ui,
                        layout::FILES_ROW - spacing,
                        listing.entries.len(),
                        |ui, range| {
                            for n in range {
                                let e = &listing.entries[n];
                                let text = if e.is_dir {
                                    format!("[folder] {}", e.name)
                                } else {
                                    format!("{}  ({})", e.name, crate::units::bytes(e.size))
                                };
                                let button = egui::Button::new(RichText::new(text).monospace())
                                    .frame(false)
                                    .truncate();
                                let row = ui.allocate_ui_with_layout(
                                    Vec2::new(l[2] - 16.0, layout::FILES_ROW - spacing),
                                    Layout::left_to_right(Align::Center),
                                    |ui| {
                                        ui.set_min_width(l[2] - 16.0);
                                        ui.add(button)
                                    },
                                );
                                // The whole row is the click target, not only its text.
                                let whole = ui.interact(
                                    row.response.rect,
                                    ui.make_persistent_id(("file-row", n)),
                                    egui::Sense::click(),
                                );
                                if row.inner.clicked() || whole.clicked() {
                                    clicked = Some(n);
                                }
                            }
                        },
                    );
            },
        );
        if let Some(n) = clicked {
            let a = self.model.open_entry(n);
            self.act(a);
        }
        let bottom = ui.ctx().content_rect().max.y - 8.0;
        let t = layout::FILES_TRANSFERS;
        let r = Rect::from_min_max(
            Pos2::new(t[0], t[1]),
            Pos2::new(t[0] + t[2], bottom.max(t[1] + 40.0)),
        );
        area(ui, r, |ui| {
            let files = &self.model.files;
            ui.label(RichText::new(format!("Transfers ({} running)", files.running())).strong());
            egui::ScrollArea::vertical()
                .id_salt("transfers")
                .auto_shrink([false, false])
                .stick_to_bottom(true)
                .show(ui, |ui| {
                    for tr in &files.transfers {
                        ui.label(tr.line());
                        if tr.state == TransferState::Running {
                            ui.add(egui::ProgressBar::new(tr.fraction()).show_percentage());
                        }
                    }
                });
        });
    }

    /// Files dropped anywhere on the window are pushed to the user's machine; while they are
    /// dragged over it, the live screen says where they will go.
    fn dropped(&mut self, ui: &mut egui::Ui) {
        let (hovering, dropped): (bool, Vec<std::path::PathBuf>) = ui.input(|i| {
            (
                !i.raw.hovered_files.is_empty(),
                i.raw
                    .dropped_files
                    .iter()
                    .map(|f| f.path().to_path_buf())
                    .collect(),
            )
        });
        if hovering {
            let content = ui.ctx().content_rect();
            let r = Rect::from_min_max(
                Pos2::new(layout::SCREEN_X, layout::SCREEN_TOP),
                content.max - Vec2::splat(8.0),
            );
            ui.painter().rect_stroke(
                r,
                4.0,
                Stroke::new(3.0, Color32::from_rgb(25, 118, 210)),
                egui::StrokeKind::Inside,
            );
            ui.painter().text(
                r.center(),
                egui::Align2::CENTER_CENTER,
                "Drop to send to the user's Downloads/Tether folder",
                FontId::proportional(20.0),
                Color32::from_rgb(25, 118, 210),
            );
        }
        if !dropped.is_empty() {
            self.model.open_tab(Tab::Files);
            let a = self.model.drop_files(dropped);
            self.act(a);
        }
    }
}

/// One table row with fixed column widths; long cells are cut with an ellipsis.
fn row(ui: &mut egui::Ui, widths: &[f32], cells: impl Iterator<Item = String>, head: bool) {
    ui.horizontal(|ui| {
        for (w, c) in widths.iter().zip(cells) {
            let text = if head {
                RichText::new(c).strong()
            } else {
                RichText::new(c).monospace()
            };
            ui.allocate_ui_with_layout(
                Vec2::new(*w, 18.0),
                Layout::left_to_right(Align::Center),
                |ui| {
                    ui.set_width(*w);
                    ui.add(egui::Label::new(text).truncate());
                },
            );
        }
    });
}

impl eframe::App for ConsoleApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.pump();
        let focused = ui.ctx().input(|i| i.viewport().focused);
        if focused.is_some() && focused != self.focused {
            self.focused = focused;
            if let (Some(b), Some(f)) = (&self.backend, focused) {
                b.send(super::Job::Focus(f));
            }
        }
        egui::CentralPanel::default().show(ui, |ui| {
            self.top_bar(ui);
            self.consent_strip(ui);
            self.ask_more(ui);
            self.tabs(ui);
            match self.model.tab {
                Tab::Inventory => self.inventory(ui),
                Tab::Diagnostics => self.diagnostics(ui),
                Tab::Chat => self.chat(ui),
                Tab::Files => self.files(ui),
                Tab::Devices => self.devices(ui),
            }
            self.screen(ui);
            self.dropped(ui);
        });
        // Clicks above may have changed the model: print those lines now, not on the next event.
        for line in self.model.journal() {
            tether_net::quietln!("{line}");
        }
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if let Some(b) = self.backend.take() {
            b.shutdown();
        }
    }
}
