//! The eframe rendering of [`Model`]: draws the current screen, turns clicks into [`Action`]s.

use std::time::{Duration, Instant};

use eframe::egui::{
    self, Align, Color32, FontId, Layout, Pos2, Rect, RichText, Stroke, UiBuilder, Vec2,
    ViewportCommand, WindowLevel,
};
use tether_proto::Scope;
use tether_proto::text::display_safe;

use super::Backend;
use super::layout::{self, scope_row};
use super::model::{Action, Consent, InvitePrompt, Model, Screen, clock, scope_words};
use crate::local_log::LocalLog;
use crate::terminal;

const WARN_BG: Color32 = Color32::from_rgb(255, 236, 179);
const ALERT_BG: Color32 = Color32::from_rgb(255, 205, 205);
const SESSION_BG: Color32 = Color32::from_rgb(200, 230, 201);
const INK: Color32 = Color32::from_rgb(20, 20, 20);

pub(super) struct AgentApp {
    pub(super) model: Model,
    backend: Option<Backend>,
    on_top: bool,
    announced_end: bool,
    /// The banner as last printed to standard output, so each change is printed once.
    banner: Option<String>,
    /// The invitation prompt's line as last printed.
    invite: Option<String>,
    /// The chat note's line as last printed.
    chat_note: Option<String>,
    /// The notice box's line as last printed.
    notice: Option<String>,
    /// The consent dialog's line as last printed.
    dialog: Option<String>,
    /// The banner's "Last:" line as last printed.
    doing: Option<String>,
    /// Put the keyboard back into the chat field on the next frame (after Enter sent a line).
    refocus_chat: bool,
}

/// Prints `now` when it differs from `last` (a state line on standard output, a test channel).
fn print_change(last: &mut Option<String>, now: Option<String>, gone: &str) {
    if now != *last {
        match &now {
            // The lines carry names and reasons from the other side.
            Some(line) => tether_net::quietln!("{}", display_safe(line)),
            None if !gone.is_empty() => tether_net::quietln!("{gone}"),
            None => {}
        }
        *last = now;
    }
}

fn rect(r: [f32; 4]) -> Rect {
    Rect::from_min_size(Pos2::new(r[0], r[1]), Vec2::new(r[2], r[3]))
}

fn big_button(ui: &mut egui::Ui, r: [f32; 4], text: &str, fill: Option<Color32>) -> bool {
    let mut b = egui::Button::new(RichText::new(text).size(20.0).strong());
    if let Some(fill) = fill {
        b = b.fill(fill);
    }
    ui.put(rect(r), b).clicked()
}

/// Text laid out top-down inside a fixed area.
fn area(ui: &mut egui::Ui, r: [f32; 4], add: impl FnOnce(&mut egui::Ui)) {
    ui.scope_builder(
        UiBuilder::new()
            .max_rect(rect(r))
            .layout(Layout::top_down(Align::Min)),
        add,
    );
}

fn boxed(ui: &mut egui::Ui, r: [f32; 4], fill: Color32, add: impl FnOnce(&mut egui::Ui)) {
    ui.painter().rect_filled(rect(r), 6.0, fill);
    area(ui, [r[0] + 12.0, r[1] + 8.0, r[2] - 24.0, r[3] - 16.0], add);
}

impl AgentApp {
    pub(super) fn new(ctx: &egui::Context, backend: Backend) -> Self {
        ctx.all_styles_mut(|s| {
            s.text_styles
                .insert(egui::TextStyle::Body, FontId::proportional(17.0));
            s.text_styles
                .insert(egui::TextStyle::Button, FontId::proportional(18.0));
            s.text_styles
                .insert(egui::TextStyle::Heading, FontId::proportional(26.0));
            s.spacing.interact_size.y = 26.0;
            s.spacing.icon_width = 22.0;
            s.spacing.icon_width_inner = 12.0;
            // Visible edges on tick boxes and buttons, dark ticks: nothing should look greyed out.
            s.visuals.widgets.inactive.bg_stroke = Stroke::new(1.0, Color32::from_gray(90));
            s.visuals.widgets.inactive.fg_stroke = Stroke::new(2.0, INK);
        });
        ctx.set_theme(egui::Theme::Light);
        let desktop = backend.is_desktop();
        let mut app = AgentApp {
            model: Model::new(),
            backend: Some(backend),
            on_top: false,
            announced_end: false,
            banner: None,
            invite: None,
            chat_note: None,
            notice: None,
            dialog: None,
            doing: None,
            refocus_chat: false,
        };
        // The per-user agent of an enrolled computer answers its service from the start.
        if desktop {
            let start = app.model.get_help();
            app.act(start);
        }
        app
    }

    fn act(&mut self, action: Option<Action>) {
        let (Some(action), Some(backend)) = (action, self.backend.as_mut()) else {
            return;
        };
        match action {
            Action::StartShare | Action::NewCode => {
                self.announced_end = false;
                backend.start();
            }
            Action::Send(cmd) => backend.send(cmd),
            Action::ReadLog => {
                let lines = match backend.state_dir() {
                    None => vec!["No session log is kept on this computer.".into()],
                    Some(dir) => match LocalLog::new(dir).read() {
                        Ok(l) if l.is_empty() => vec!["No sessions recorded yet.".into()],
                        Ok(l) => l,
                        Err(e) => vec![format!("Could not read the session log: {e}")],
                    },
                };
                self.model.show_log(lines);
            }
        }
    }

    fn pump(&mut self, ctx: &egui::Context) {
        let Some(backend) = self.backend.as_mut() else {
            return;
        };
        let polled = backend.poll();
        let now = Instant::now();
        for ev in &polled.events {
            // Standard output carries the same words as the terminal front end (a test channel).
            tether_net::quietln!("{}", terminal::render(ev));
            self.model.on_event(ev, now);
        }
        if let Some(result) = polled.stopped {
            self.model.on_share_stopped(result);
        }
        if let Screen::Ended { reason, .. } = &self.model.screen
            && !self.announced_end
        {
            self.announced_end = true;
            if polled
                .events
                .iter()
                .all(|e| !matches!(e, crate::ui::AgentEvent::Ended { .. }))
            {
                tether_net::quietln!("{}", display_safe(reason));
            }
        }
        // What the banner shows, as a line on standard output whenever it changes (a test channel).
        print_change(&mut self.banner, self.model.banner_line(), "");
        print_change(
            &mut self.invite,
            self.model.invite_line(),
            "invite prompt: closed",
        );
        print_change(&mut self.chat_note, self.model.chat_line(), "");
        print_change(
            &mut self.notice,
            self.model.notice_text(now).map(|n| format!("notice: {n}")),
            "notice: cleared",
        );
        print_change(&mut self.dialog, self.model.consent_line(), "");
        print_change(&mut self.doing, self.model.doing_line(), "");
        let tick = self.model.tick(now);
        self.act(tick);
        let on_top = self.model.on_top();
        if on_top != self.on_top {
            self.on_top = on_top;
            let level = if on_top {
                WindowLevel::AlwaysOnTop
            } else {
                WindowLevel::Normal
            };
            ctx.send_viewport_cmd(ViewportCommand::WindowLevel(level));
        }
        // New events wake the window themselves (see `Backend`); only countdowns need a timer.
        // Repaint just after the shown second changes: once a second, never a stale digit.
        let deadline = match (&self.model.invite, &self.model.screen) {
            (Some(i), _) => Some(i.deadline),
            (None, Screen::Code { expires_at, .. }) => Some(*expires_at),
            (None, Screen::Consent(c)) => Some(c.deadline),
            _ => self.model.outage.as_ref().map(|o| o.retry_at),
        };
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(now);
            ctx.request_repaint_after(
                Duration::from_nanos(u64::from(left.subsec_nanos())) + Duration::from_millis(10),
            );
        }
    }

    fn header(&self, ui: &mut egui::Ui) {
        area(ui, [20.0, 14.0, 520.0, 40.0], |ui| {
            ui.label(RichText::new("Tether remote help").heading().strong());
        });
        if let Some(notice) = self.model.notice_text(Instant::now()) {
            boxed(ui, [20.0, 52.0, 520.0, 78.0], WARN_BG, |ui| {
                ui.label(RichText::new(display_safe(&notice)).size(15.0).color(INK));
            });
        }
    }

    fn start(&mut self, ui: &mut egui::Ui) {
        area(ui, [40.0, 130.0, 480.0, 150.0], |ui| {
            ui.label(
                "If someone from your support team is helping you, press \"Get help\". You will \
                 get a code to read to them.",
            );
            ui.add_space(10.0);
            ui.label(
                "Nothing is shared until you say so, and you can end the session at any time.",
            );
        });
        if big_button(ui, layout::GET_HELP, "Get help", None) {
            let a = self.model.get_help();
            self.act(a);
        }
    }

    fn code(&mut self, ui: &mut egui::Ui, code: &str, expires_at: Instant) {
        let left = expires_at.saturating_duration_since(Instant::now());
        area(ui, [40.0, 142.0, 480.0, 270.0], |ui| {
            ui.label("Read this code to your support person:");
            ui.add_space(16.0);
            ui.vertical_centered(|ui| {
                ui.label(
                    RichText::new(code)
                        .font(FontId::monospace(64.0))
                        .strong()
                        .color(INK),
                );
            });
            ui.add_space(16.0);
            ui.label(format!(
                "It works once and expires in {}. Waiting for them to enter it...",
                clock(left)
            ));
            if let Some(reason) = &self.model.reason {
                ui.add_space(8.0);
                ui.label(RichText::new(format!("Your request: {}", display_safe(reason))).strong());
            }
            if let Some(backend) = &self.model.backend {
                ui.add_space(8.0);
                ui.label(RichText::new(format!("Screen sharing goes through {backend}.")).weak());
            }
        });
        if big_button(ui, layout::NEW_CODE, "New code", None) {
            let a = self.model.new_code();
            self.act(a);
        }
        if big_button(ui, layout::STOP, "Stop", None) {
            let a = self.model.end_session();
            self.act(a);
        }
    }

    fn consent(&mut self, ui: &mut egui::Ui, c: &Consent) {
        let left = c.deadline.saturating_duration_since(Instant::now());
        let verification = Some(c.verification.clone());
        area(ui, [30.0, 56.0, 500.0, 100.0], |ui| {
            let asks = if c.more.is_some() {
                "asks for more access"
            } else {
                "asks to help you"
            };
            ui.label(
                RichText::new(format!(
                    "{} of {} {asks}",
                    display_safe(&c.technician.name),
                    display_safe(&c.technician.org)
                ))
                .size(22.0)
                .strong(),
            );
            match &c.enrolled_by {
                Some(org) => ui.label(
                    RichText::new(format!(
                        "IT of {} enrolled this computer, so no code was read out: this computer \
                         checked the technician against {}'s key itself",
                        display_safe(org),
                        display_safe(org)
                    ))
                    .size(14.0),
                ),
                None => {
                    ui.label(RichText::new(format!("Checked by the relay {}", c.relay)).size(14.0))
                }
            };
            if let Some(v) = verification {
                ui.label(
                    RichText::new(format!(
                        "Verification code: {v} (your helper sees the same)"
                    ))
                    .size(14.0),
                );
            }
        });
        let (bg, text) = if let Some(already) = c.more {
            let words: Vec<String> = already
                .iter()
                .map(|s| scope_words(s).to_lowercase())
                .collect();
            (
                WARN_BG,
                format!(
                    "You already allow them to: {}. That stays as it is whatever you answer. \
                     Tick only what you also want to allow now.",
                    words.join(", ")
                ),
            )
        } else if c.first_contact {
            (
                ALERT_BG,
                format!(
                    "Warning: {} has never had access to this computer before. Genuine support \
                     never calls you out of the blue asking for access. If someone called you \
                     unexpectedly, press Deny.",
                    display_safe(&c.technician.org)
                ),
            )
        } else {
            (
                WARN_BG,
                "Genuine support never calls you out of the blue asking for access. Only allow \
                 this if you asked for help."
                    .to_string(),
            )
        };
        let text = if self.model.desktop_asks
            && c.requested
                .iter()
                .any(|s| matches!(s, Scope::View | Scope::Control))
        {
            format!("{text} Your desktop will then ask you too.")
        } else {
            text
        };
        boxed(ui, [20.0, 160.0, 520.0, 92.0], bg, |ui| {
            ui.label(RichText::new(text).color(INK).strong());
        });
        for (i, scope) in c.requested.iter().enumerate() {
            let mut ticked = c.ticked.contains(scope);
            let r = scope_row(i);
            let changed = ui
                .scope_builder(
                    UiBuilder::new()
                        .max_rect(rect(r))
                        .layout(Layout::left_to_right(Align::Center)),
                    |ui| {
                        ui.checkbox(
                            &mut ticked,
                            RichText::new(format!("{} ({})", scope_words(scope), scope.name())),
                        )
                        .changed()
                    },
                )
                .inner;
            if changed {
                self.model.toggle(scope);
            }
        }
        let rows = c.requested.iter().count().max(1);
        area(ui, [30.0, scope_row(rows)[1], 500.0, 60.0], |ui| {
            ui.label(
                RichText::new(format!(
                    "Tick only what you allow. No answer in {} means Deny.",
                    clock(left)
                ))
                .strong(),
            );
        });
        // Nothing ticked: "Allow" is not offered (greyed out); "Deny" is the answer then.
        let can_allow = c.can_allow();
        let allow = ui
            .add_enabled_ui(can_allow, |ui| {
                big_button(
                    ui,
                    layout::ALLOW,
                    "Allow ticked",
                    can_allow.then_some(Color32::from_rgb(165, 214, 167)),
                )
            })
            .inner;
        if allow {
            let a = self.model.allow();
            self.act(a);
        }
        if big_button(
            ui,
            layout::DENY,
            "Deny",
            Some(Color32::from_rgb(239, 154, 154)),
        ) {
            let a = self.model.deny();
            self.act(a);
        }
    }

    fn session(&mut self, ui: &mut egui::Ui) {
        let Screen::Session {
            technician,
            granted,
            doing,
            activity,
            others,
        } = &self.model.screen
        else {
            return;
        };
        let with: Vec<String> = others
            .iter()
            .map(|(t, g)| {
                let what: Vec<&str> = g.iter().map(|s| s.name()).collect();
                format!(
                    "Also connected: {} of {} (allowed: {})",
                    display_safe(&t.name),
                    display_safe(&t.org),
                    what.join(", ")
                )
            })
            .collect();
        let now = activity.words();
        let allowed: Vec<&str> = Scope::ALL
            .iter()
            .filter(|s| granted.contains(**s))
            .map(|s| scope_words(*s))
            .collect();
        let doing = doing.clone();
        let (name, org) = (
            display_safe(&technician.name).into_owned(),
            display_safe(&technician.org).into_owned(),
        );
        let verification = self.model.verification.clone();
        let direct = self.model.direct;
        let files = self.model.transfers.files.clone();
        // With files listed in the banner's lower part, what was allowed goes on one wrapped line.
        let compact = !files.is_empty();
        boxed(ui, [20.0, 60.0, 520.0, 420.0], SESSION_BG, |ui| {
            ui.label(
                RichText::new(format!("{name} of {org} is connected"))
                    .size(22.0)
                    .strong()
                    .color(INK),
            );
            for w in &with {
                ui.label(RichText::new(w).size(15.0).strong().color(INK));
            }
            ui.add_space(12.0);
            let whom = if with.is_empty() {
                "You allowed them to:".to_string()
            } else {
                format!("You allowed {name} to:")
            };
            if compact {
                ui.label(RichText::new(format!("{whom} {}.", allowed.join("; "))).color(INK));
            } else {
                ui.label(RichText::new(whom).strong().color(INK));
                for a in &allowed {
                    ui.label(RichText::new(format!("  - {a}")).color(INK));
                }
            }
            ui.label(RichText::new("Everything else stays refused.").color(INK));
            ui.add_space(12.0);
            ui.label(RichText::new("Right now:").strong().color(INK));
            ui.label(
                RichText::new(display_safe(&now))
                    .size(19.0)
                    .strong()
                    .color(INK),
            );
            if let Some(d) = doing {
                ui.label(
                    RichText::new(format!("Last: {}", display_safe(&d)))
                        .size(15.0)
                        .color(INK),
                );
            }
            ui.add_space(12.0);
            if !compact {
                ui.label(
                    RichText::new("This window stays on top while the session runs.").color(INK),
                );
            }
            if let Some(v) = &verification {
                ui.label(RichText::new(format!("Verification code: {v}")).color(INK));
            }
            if let Some(direct) = direct {
                let path = if direct {
                    "Connection: direct between your computers (encrypted)"
                } else {
                    "Connection: through the relay (encrypted)"
                };
                ui.label(RichText::new(path).color(INK));
            }
        });
        let mut stop = None;
        if compact {
            ui.painter()
                .rect_filled(rect(layout::FILES), 4.0, Color32::from_rgb(236, 246, 236));
        }
        for (i, f) in files.iter().rev().take(layout::FILE_ROWS).enumerate() {
            let b = layout::file_stop(i);
            let mut text_x = b[0];
            if f.running() {
                let button = egui::Button::new(RichText::new("Stop").strong());
                if ui.put(rect(b), button).clicked() {
                    stop = Some(f.id);
                }
                let bar = [b[0] + b[2] + 8.0, b[1] + 4.0, 90.0, 16.0];
                ui.put(rect(bar), egui::ProgressBar::new(f.fraction()));
                text_x = bar[0] + bar[2] + 8.0;
            }
            let right = layout::FILES[0] + layout::FILES[2] - 6.0;
            let label = egui::Label::new(RichText::new(f.row_words()).color(INK)).truncate();
            area(ui, [text_x, b[1] + 3.0, right - text_x, b[3]], |ui| {
                ui.add(label).on_hover_text(f.words());
            });
        }
        if let Some(id) = stop {
            let a = self.model.transfers.stop(id);
            self.act(a);
        }
        if self.model.can_stop_control()
            && big_button(
                ui,
                layout::STOP_CONTROL,
                "Stop control",
                Some(Color32::from_rgb(255, 204, 128)),
            )
        {
            let a = self.model.stop_control();
            self.act(a);
        }
        if self.model.can_stop_clipboard()
            && ui
                .put(
                    rect(layout::STOP_CLIPBOARD),
                    egui::Button::new(RichText::new("Stop clipboard sharing").size(15.0).strong())
                        .fill(Color32::from_rgb(255, 224, 178)),
                )
                .clicked()
        {
            let a = self.model.stop_clipboard();
            self.act(a);
        }
        let label = if self.model.ending {
            "Ending..."
        } else {
            "End session"
        };
        if big_button(
            ui,
            layout::END_SESSION,
            label,
            Some(Color32::from_rgb(239, 154, 154)),
        ) {
            let a = self.model.end_session();
            self.act(a);
        }
    }

    /// The invitation prompt, drawn over the session banner until the user answers.
    fn invite(&mut self, ui: &mut egui::Ui, i: &InvitePrompt) {
        let left = i.deadline.saturating_duration_since(Instant::now());
        let r = layout::INVITE;
        ui.painter().rect(
            rect(r),
            6.0,
            WARN_BG,
            Stroke::new(2.0, Color32::from_rgb(230, 145, 0)),
            egui::StrokeKind::Inside,
        );
        area(ui, [r[0] + 16.0, r[1] + 12.0, r[2] - 32.0, 320.0], |ui| {
            ui.label(
                RichText::new(format!(
                    "{} asks to bring in a colleague",
                    display_safe(&i.by)
                ))
                .size(22.0)
                .strong()
                .color(INK),
            );
            ui.add_space(10.0);
            ui.label(RichText::new("Who would join:").strong().color(INK));
            ui.label(
                RichText::new(display_safe(&i.invitee))
                    .size(19.0)
                    .strong()
                    .color(INK),
            );
            ui.add_space(10.0);
            let handover = if i.handover {
                format!(
                    "This is a hand-over: {} leaves once the colleague is in.",
                    display_safe(&i.by)
                )
            } else {
                format!("{} stays; both would be connected.", display_safe(&i.by))
            };
            ui.label(RichText::new(handover).color(INK));
            ui.add_space(10.0);
            ui.label(
                RichText::new(
                    "The colleague gets nothing yet: when they connect, you are asked what they \
                     may do, and you can refuse then too.",
                )
                .color(INK),
            );
            ui.add_space(10.0);
            ui.label(
                RichText::new(format!("No answer in {} means Deny.", clock(left)))
                    .strong()
                    .color(INK),
            );
        });
        if big_button(
            ui,
            layout::INVITE_ALLOW,
            "Allow",
            Some(Color32::from_rgb(165, 214, 167)),
        ) {
            let a = self.model.answer_invite(true);
            self.act(a);
        }
        if big_button(
            ui,
            layout::INVITE_DENY,
            "Deny",
            Some(Color32::from_rgb(239, 154, 154)),
        ) {
            let a = self.model.answer_invite(false);
            self.act(a);
        }
    }

    /// The chat column: the conversation, a text field and "Send" (Enter sends too).
    fn chat(&mut self, ui: &mut egui::Ui) {
        let c = layout::CHAT;
        ui.painter().line_segment(
            [
                Pos2::new(c[0] - 8.0, c[1]),
                Pos2::new(c[0] - 8.0, c[1] + c[3]),
            ],
            Stroke::new(1.0, Color32::GRAY),
        );
        area(ui, [c[0], c[1], c[2], 30.0], |ui| {
            ui.label(RichText::new("Chat with your helper").size(19.0).strong());
        });
        let open = self.model.chat.open;
        let lines = self.model.chat.lines.clone();
        let log = layout::CHAT_LOG;
        ui.painter().rect_stroke(
            rect(log),
            4.0,
            Stroke::new(1.0, Color32::GRAY),
            egui::StrokeKind::Inside,
        );
        area(
            ui,
            [log[0] + 6.0, log[1] + 4.0, log[2] - 12.0, log[3] - 8.0],
            |ui| {
                if lines.is_empty() {
                    ui.label(
                        RichText::new(if open {
                            "Type a message below to talk to your helper."
                        } else {
                            "You can write to your helper here once they have connected."
                        })
                        .italics()
                        .color(Color32::from_gray(80)),
                    );
                }
                egui::ScrollArea::vertical()
                    .stick_to_bottom(true)
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        for l in &lines {
                            let (who, colour) = match &l.from {
                                Some(f) => (f.as_str(), Color32::from_rgb(21, 101, 192)),
                                None => ("You", Color32::from_rgb(46, 125, 50)),
                            };
                            ui.label(
                                RichText::new(display_safe(who))
                                    .size(14.0)
                                    .strong()
                                    .color(colour),
                            );
                            ui.label(RichText::new(&l.text).size(16.0).color(INK));
                            ui.add_space(4.0);
                        }
                    });
            },
        );
        let mut draft = self.model.chat.draft.clone();
        let field = ui.put(
            rect(layout::CHAT_INPUT),
            egui::TextEdit::singleline(&mut draft)
                .hint_text(if open { "Your message" } else { "" })
                .font(FontId::proportional(17.0))
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
        let send = ui.put(
            rect(layout::CHAT_SEND),
            egui::Button::new(RichText::new("Send").size(18.0).strong()),
        );
        if send.clicked() || enter {
            self.refocus_chat = enter;
            let a = self.model.send_chat();
            self.act(a);
        }
        if let Some(n) = self.model.chat.note.clone() {
            area(ui, layout::CHAT_NOTE, |ui| {
                ui.label(
                    RichText::new(n)
                        .size(15.0)
                        .strong()
                        .color(Color32::from_rgb(198, 40, 40)),
                );
            });
        }
    }

    fn ended(&mut self, ui: &mut egui::Ui) {
        let Screen::Ended { reason, log } = &self.model.screen else {
            return;
        };
        let (reason, log) = (reason.clone(), log.clone());
        area(ui, [30.0, 70.0, 500.0, 70.0], |ui| {
            ui.label(RichText::new(display_safe(&reason)).size(20.0).strong());
        });
        if big_button(ui, layout::SHOW_LOG, "Show my session log", None) {
            let a = self.model.want_log();
            self.act(a);
        }
        if big_button(ui, layout::START_AGAIN, "Get help again", None) {
            let a = self.model.get_help();
            self.act(a);
        }
        if let Some(lines) = log {
            let r = [20.0, 210.0, 520.0, 370.0];
            ui.painter().rect_stroke(
                rect(r),
                4.0,
                Stroke::new(1.0, Color32::GRAY),
                egui::StrokeKind::Inside,
            );
            area(ui, [26.0, 214.0, 508.0, 362.0], |ui| {
                // Newest first, so the session that just ended is at the top.
                egui::ScrollArea::vertical()
                    .id_salt("session log")
                    .show(ui, |ui| {
                        for l in &lines {
                            ui.label(RichText::new(display_safe(l)).size(13.0));
                        }
                    });
            });
        }
    }
}

impl eframe::App for AgentApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.pump(&ctx);
        egui::CentralPanel::default().show(ui, |ui| {
            self.header(ui);
            match self.model.screen.clone() {
                Screen::Start => self.start(ui),
                Screen::Connecting => {
                    let text = match &self.model.enrolled {
                        Some((org, unattended)) => format!(
                            "This computer is enrolled by {}'s IT. When one of their technicians \
                             connects without a code, you are asked here first. {}",
                            display_safe(org),
                            crate::ui::unattended_words(*unattended)
                        ),
                        None => "Connecting to the relay for a code...".to_string(),
                    };
                    area(ui, [40.0, 140.0, 480.0, 60.0], |ui| {
                        ui.label(text);
                    });
                    if big_button(ui, layout::STOP, "Stop", None) {
                        let a = self.model.end_session();
                        self.act(a);
                    }
                }
                Screen::Code { code, expires_at } => self.code(ui, &code, expires_at),
                Screen::Joining { technician } => {
                    area(ui, [40.0, 140.0, 480.0, 100.0], |ui| {
                        ui.label(format!(
                            "{} of {} is connecting...",
                            display_safe(&technician.name),
                            display_safe(&technician.org)
                        ));
                    });
                    if big_button(ui, layout::STOP, "Stop", None) {
                        let a = self.model.end_session();
                        self.act(a);
                    }
                }
                Screen::Consent(c) => self.consent(ui, &c),
                Screen::Session { .. } => self.session(ui),
                Screen::Ended { .. } => self.ended(ui),
            }
            if let Some(i) = self.model.invite.clone() {
                self.invite(ui, &i);
            }
            self.chat(ui);
        });
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if let Some(b) = self.backend.take() {
            b.shutdown();
        }
    }
}
