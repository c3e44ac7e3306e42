//! The viewer window (eframe/egui): the remote screen scaled to fit or at 1:1 with scrolling, the
//! user's cursor drawn where their pointer is, a display picker (switches monitors within the session),
//! a status bar (granted scopes, frame rate, round-trip time, bandwidth, End), and mouse and keyboard
//! forwarded as remote-display pixels when `control` is granted.
//!
//! The pane captures the keyboard while it has egui's focus (a click on the remote screen, or at
//! once in the viewer): every key goes to the remote, Tab and Escape included, and egui's own focus
//! moves are locked out, so no key reaches the console's buttons ("End session"). Right Ctrl, or a
//! click outside, or the window losing focus, gives the keyboard back and releases every key the
//! console pressed ([`crate::keys::Capture`]).
//!
//! The network runs in tokio tasks ([`pump_view`], [`pump_input`]) that share a [`ViewerState`] with the
//! window; the window only reads the state and queues input events. [`ScreenPane`] is the drawing and
//! input part, shared with the console window ([`crate::window`]).
//!
//! Nothing is redrawn on a timer. The view task keeps an RGBA copy of the screen ([`Picture`]),
//! converting only the rectangles each frame changed, and asks the window for a repaint when a frame,
//! the cursor or the status changes ([`ViewerState::repaint`]); the pane then uploads only those
//! rectangles of its texture (`TextureHandle::set_partial`). egui repaints on local input by itself.
//! A static remote screen costs the window nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;
use std::collections::VecDeque;
use tether_proto::ScopeSet;
use tether_proto::cursor::CursorShape;
use tether_proto::screen::{Action, DisplayInfo, InputEvent};
use tokio::sync::mpsc;

use crate::cursor::CursorLayer;
use crate::error::ConsoleError;
use crate::keys::{self, Capture};
use crate::picker as displays;
use crate::picture::{Damage, Picture};
use crate::screen::{ControlStream, ViewEvent, ViewStream};

/// What the network tasks tell the window.
#[derive(Debug, Default)]
pub struct ViewerState {
    /// The remote screen as RGBA, as of the latest complete frame.
    pub picture: Picture,
    /// What changed in `picture` since the window last uploaded it.
    pub damage: Damage,
    /// The window showing this state, told to repaint when something here changes (set by the
    /// pane on its first frame).
    pub window: Option<egui::Context>,
    /// Frames per second over the last second.
    pub fps: f32,
    /// Kilobits per second over the last second (everything received on the connection).
    pub kbps: f32,
    /// Round-trip time.
    pub rtt: Duration,
    /// Whether the packets go straight to the agent (else through the relay).
    pub direct: bool,
    /// Why the view stopped, once it has.
    pub stopped: Option<String>,
    /// The last input problem (e.g. control taken back by the user).
    pub note: Option<String>,
    /// The remote displays (monitors), for the picker.
    pub displays: Vec<DisplayInfo>,
    /// The display being shown.
    pub display: Option<DisplayInfo>,
    /// Where the user's pointer is, in display pixels.
    pub cursor: Option<(i32, i32)>,
    /// The user's cursor shape (checked).
    pub cursor_shape: Option<Arc<CursorShape>>,
}

impl ViewerState {
    /// Asks the window (once it is showing) to draw what changed.
    pub fn repaint(&self) {
        if let Some(ctx) = &self.window {
            ctx.request_repaint();
        }
    }
}

/// Shared between the window and the network tasks.
pub type Shared = Arc<Mutex<ViewerState>>;

/// Reads frames until the stream ends; `link` reports connection bytes and rtt.
pub async fn pump_view(mut view: ViewStream, link: crate::session::Link, state: Shared) {
    let mut window = Instant::now();
    let (mut frames, mut bytes0) = (0u32, link.bytes_received());
    loop {
        match view.next().await {
            Ok(ViewEvent::Frame { .. }) => {
                frames += 1;
                let damage = view.take_damage();
                if let Ok(mut s) = state.lock() {
                    // Only the changed rectangles are converted (all of it on a new display).
                    let took = s.picture.update(&view.framebuffer, damage);
                    s.damage.merge(took);
                    s.repaint();
                }
            }
            Ok(ViewEvent::Cursor { x, y }) => {
                if let Ok(mut s) = state.lock() {
                    s.cursor = Some((x, y));
                    s.repaint();
                }
            }
            Ok(ViewEvent::CursorShape { .. }) => {
                if let Ok(mut s) = state.lock() {
                    s.cursor_shape = view.cursor_shape.clone().map(Arc::new);
                    s.repaint();
                }
            }
            Ok(ViewEvent::Partial) => {}
            Err(e) => {
                if let Ok(mut s) = state.lock() {
                    s.stopped = Some(e.to_string());
                    s.repaint();
                }
                return;
            }
        }
        let dt = window.elapsed();
        if dt >= Duration::from_secs(1) {
            let bytes = link.bytes_received();
            if let Ok(mut s) = state.lock() {
                s.fps = frames as f32 / dt.as_secs_f32();
                s.kbps = (bytes - bytes0) as f32 * 8.0 / 1000.0 / dt.as_secs_f32();
                s.rtt = link.rtt();
                s.direct = matches!(link.path(), tether_proto::path::Path::Direct(_));
                s.repaint();
            }
            (frames, bytes0, window) = (0, bytes, Instant::now());
        }
    }
}

/// Sends queued input events until the queue closes.
pub async fn pump_input(
    mut control: ControlStream,
    mut events: mpsc::Receiver<InputEvent>,
    state: Shared,
) {
    while let Some(e) = events.recv().await {
        if let Err(err) = control.send(&e).await {
            // Refused (control taken back) or failed (over a limit): the stream goes on.
            let stop = !matches!(err, ConsoleError::ScopeDenied(_) | ConsoleError::Failed(_));
            if let Ok(mut s) = state.lock() {
                s.note = Some(err.to_string());
                s.repaint();
            }
            if stop {
                return;
            }
        }
    }
    control.close().await;
}

/// The live remote screen as a widget: the latest frame scaled to fit, and (when an input queue is
/// given) mouse and keyboard forwarded as remote-display pixels. The viewer window and the console
/// window both draw it.
pub struct ScreenPane {
    state: Shared,
    texture: Option<egui::TextureHandle>,
    input: Option<mpsc::Sender<InputEvent>>,
    last_pos: Option<(i32, i32)>,
    /// Show at 1:1 with scroll bars instead of fitting the window.
    one_to_one: bool,
    cursor: CursorLayer,
    pointer: Option<(i32, i32)>,
    shape: Option<Arc<CursorShape>>,
    displays: Vec<DisplayInfo>,
    display: Option<DisplayInfo>,
    /// Keys and buttons not yet handed to the input queue (it was full); never dropped, unlike motion.
    backlog: VecDeque<InputEvent>,
    capture: Capture,
    /// The pane had the keyboard in the last frame.
    captured: bool,
    /// Take the keyboard as soon as the screen shows (the viewer window, which has nothing else).
    autofocus: bool,
    /// Take the keyboard back at the next frame: the window lost its focus while the pane had the
    /// keyboard, and has it again.
    regain: bool,
    /// The pane had the keyboard when the window lost focus.
    had_it: bool,
    /// Buttons pressed on the remote, released there even when the pointer left the pane.
    buttons_down: Vec<egui::PointerButton>,
    /// The shortcut bar (session-switching shortcuts wait for a confirmation).
    shortcuts: keys::Shortcuts,
}

/// The pane's widget id, stable across frames so that it keeps the keyboard focus.
const PANE_ID: &str = "tether-remote-screen";
/// Most keys and buttons waiting for room in the input queue; beyond, the agent is told to release
/// everything and the rest is dropped.
pub const BACKLOG: usize = 256;

impl std::fmt::Debug for ScreenPane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenPane")
            .field("input", &self.input.is_some())
            .finish_non_exhaustive()
    }
}

/// What the status line shows about a running view.
#[derive(Debug, Clone, Default)]
pub struct ScreenStatus {
    /// Frames per second, round-trip time and bandwidth, in words.
    pub line: String,
    /// Why the view stopped, once it has.
    pub stopped: Option<String>,
    /// The last input problem.
    pub note: Option<String>,
    /// A frame has arrived.
    pub showing: bool,
    /// The display being shown.
    pub display: Option<DisplayInfo>,
}

impl ScreenPane {
    /// A pane over `state`; `input` forwards mouse and keyboard (`None`: look only).
    pub fn new(state: Shared, input: Option<mpsc::Sender<InputEvent>>) -> Self {
        ScreenPane {
            state,
            texture: None,
            input,
            last_pos: None,
            one_to_one: false,
            cursor: CursorLayer::default(),
            pointer: None,
            shape: None,
            displays: Vec::new(),
            display: None,
            backlog: VecDeque::new(),
            capture: Capture::default(),
            captured: false,
            autofocus: false,
            regain: false,
            had_it: false,
            buttons_down: Vec::new(),
            shortcuts: keys::Shortcuts::default(),
        }
    }

    /// Starts (`Some`) or stops forwarding mouse and keyboard, when `control` comes or goes.
    pub fn set_input(&mut self, input: Option<mpsc::Sender<InputEvent>>) {
        self.input = input;
    }

    /// Takes the keyboard as soon as the screen shows.
    pub fn autofocus(mut self) -> Self {
        self.autofocus = true;
        self
    }

    /// Whether the pane has the keyboard.
    pub fn captured(&self) -> bool {
        self.captured
    }

    /// Takes the latest frame into the texture and says how the view is doing.
    pub fn update(&mut self, ctx: &egui::Context) -> ScreenStatus {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if s.window.is_none() {
            s.window = Some(ctx.clone());
        }
        let damage = s.damage.take();
        let opts = egui::TextureOptions::LINEAR;
        let full = |p: &Picture| egui::ColorImage::from_rgba_unmultiplied(p.size, &p.rgba);
        match (&mut self.texture, damage) {
            // A new pane over a running view starts from the picture, changed or not.
            (None, _) if !s.picture.rgba.is_empty() => {
                self.texture = Some(ctx.load_texture("remote", full(&s.picture), opts))
            }
            (None, _) | (_, Damage::None) => {}
            // A texture of another size (the display changed) is replaced whole.
            (Some(t), Damage::Rects(_)) if t.size() != s.picture.size => {
                t.set(full(&s.picture), opts)
            }
            (Some(t), Damage::Full) => t.set(full(&s.picture), opts),
            (Some(t), Damage::Rects(rects)) => {
                for r in &rects {
                    let (size, rgba) = s.picture.crop(r);
                    if size[0] > 0 && size[1] > 0 {
                        let image = egui::ColorImage::from_rgba_unmultiplied(size, &rgba);
                        t.set_partial([r.x as usize, r.y as usize], image, opts);
                    }
                }
            }
        }
        self.pointer = s.cursor;
        self.shape = s.cursor_shape.clone();
        if self.displays != s.displays {
            self.displays = s.displays.clone();
        }
        if self.display != s.display {
            self.display = s.display.clone();
        }
        ScreenStatus {
            display: s.display.clone(),
            line: format!(
                "{:.0} fps | rtt {:.1} ms | {:.0} kbit/s | {}",
                s.fps,
                s.rtt.as_secs_f64() * 1000.0,
                s.kbps,
                if s.direct { "direct" } else { "via relay" }
            ),
            stopped: s.stopped.clone(),
            note: s.note.clone(),
            showing: self.texture.is_some(),
        }
    }

    /// Draws the picker at `origin` (points): "Fit"/"1:1", then a button per display when there are
    /// several (see [`displays::fit_button`], [`displays::display_button`]). Returns the display the
    /// technician picked, when it is not the one shown.
    pub fn bar(&mut self, ui: &mut egui::Ui, origin: (f32, f32)) -> Option<u32> {
        let rect =
            |r: [f32; 4]| egui::Rect::from_min_size(egui::pos2(r[0], r[1]), egui::vec2(r[2], r[3]));
        let fit = if self.one_to_one { "1:1" } else { "Fit" };
        let hint = if self.one_to_one {
            "Shown at 1:1 with scroll bars; click to fit the window"
        } else {
            "Fitted to the window; click for 1:1 with scroll bars"
        };
        if ui
            .put(rect(displays::fit_button(origin)), egui::Button::new(fit))
            .on_hover_text(hint)
            .clicked()
        {
            self.one_to_one = !self.one_to_one;
        }
        let mut picked = None;
        if self.displays.len() > 1 {
            let current = self.display.as_ref().map(|d| d.index);
            for (i, d) in self.displays.iter().enumerate() {
                let on = current == Some(d.index);
                let b = egui::Button::new(displays::label(d)).selected(on);
                let hover = format!("{}x{} at ({}, {})", d.width, d.height, d.x, d.y);
                if ui
                    .put(rect(displays::display_button(origin, i)), b)
                    .on_hover_text(hover)
                    .clicked()
                    && !on
                {
                    picked = Some(d.index);
                }
            }
        }
        picked
    }

    /// Draws the screen into the space left in `ui` (fitted, or 1:1 with scroll bars), the user's
    /// cursor over it, and forwards input over it.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let Some((tex_id, size)) = self.texture.as_ref().map(|t| (t.id(), t.size_vec2())) else {
            ui.label("waiting for the first frame...");
            return;
        };
        // The bar wraps within the pane's width rather than widening it (and the picture with it).
        let width = ui.available_width();
        if self.input.is_some() {
            self.keys_bar(ui, width);
        }
        if self.one_to_one {
            egui::ScrollArea::both()
                .auto_shrink(false)
                .show(ui, |ui| self.picture(ui, tex_id, size, 1.0));
        } else {
            let avail = egui::vec2(width, ui.available_height());
            let scale = (avail.x / size.x).min(avail.y / size.y).min(1.0);
            self.picture(ui, tex_id, size, scale);
        }
    }

    fn picture(&mut self, ui: &mut egui::Ui, id: egui::TextureId, size: egui::Vec2, scale: f32) {
        let image = ui.add(egui::Image::new((id, size * scale)));
        let resp = ui.interact(
            image.rect,
            egui::Id::unique(PANE_ID),
            egui::Sense::click_and_drag(),
        );
        let shape = self.shape.clone();
        self.cursor
            .paint(ui, image.rect, scale, self.pointer, shape.as_deref());
        self.forward_input(ui, &resp, scale, size);
    }

    /// The capture note and the shortcuts a local OS would take for itself.
    fn keys_bar(&mut self, ui: &mut egui::Ui, width: f32) {
        ui.horizontal_wrapped(|ui| {
            ui.set_max_width(width);
            if self.captured {
                ui.colored_label(egui::Color32::from_rgb(0, 150, 70), keys::CAPTURED_NOTE);
            } else {
                ui.label("Click the screen to send it your keyboard.");
            }
            ui.separator();
            if let Some(name) = self.shortcuts.pending() {
                ui.colored_label(
                    egui::Color32::from_rgb(230, 145, 0),
                    format!("Send {name}? It switches the user's session."),
                );
                if ui.button("Send").clicked() {
                    let events = self.shortcuts.confirm();
                    self.send_events(events, ui);
                }
                if ui.button("Cancel").clicked() {
                    self.shortcuts.cancel();
                }
                return;
            }
            ui.label("Send:");
            for (i, (name, _, ask)) in keys::SPECIAL.iter().enumerate() {
                if !*ask && ui.button(*name).clicked() {
                    let events = self.shortcuts.pick(i);
                    self.send_events(events, ui);
                }
            }
            ui.menu_button("Ctrl+Alt+F1…F7", |ui| {
                for (i, (name, _, ask)) in keys::SPECIAL.iter().enumerate() {
                    if *ask && ui.button(*name).clicked() {
                        let _ = self.shortcuts.pick(i);
                        ui.close();
                    }
                }
            });
        });
    }

    fn send_events(&mut self, events: Vec<InputEvent>, ui: &egui::Ui) {
        for e in events {
            self.queue(e);
        }
        // Clicking the button took the keyboard from the pane; give it back.
        ui.memory_mut(|m| m.request_focus(egui::Id::unique(PANE_ID)));
    }

    /// Queues a key or button event: kept in order and never dropped (up to [`BACKLOG`]).
    fn queue(&mut self, e: InputEvent) {
        if self.backlog.len() >= BACKLOG {
            self.backlog.clear();
            self.backlog.push_back(InputEvent::ReleaseAll);
        }
        self.backlog.push_back(e);
        self.flush();
    }

    fn flush(&mut self) {
        let Some(tx) = &self.input else {
            self.backlog.clear();
            return;
        };
        while let Some(e) = self.backlog.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(e)) = tx.try_send(e) {
                self.backlog.push_front(e);
                return;
            }
        }
    }

    /// Pointer motion: dropped when the queue is full (the next move catches up).
    fn motion(&mut self, e: InputEvent) {
        self.flush();
        if let (Some(tx), true) = (&self.input, self.backlog.is_empty()) {
            let _ = tx.try_send(e);
        }
    }

    fn release_keyboard(&mut self) {
        let mut out = Vec::new();
        self.capture.release(&mut out);
        for e in out {
            self.queue(e);
        }
    }

    fn forward_input(
        &mut self,
        ui: &egui::Ui,
        resp: &egui::Response,
        scale: f32,
        size: egui::Vec2,
    ) {
        if self.input.is_none() {
            return;
        }
        self.flush();
        let id = resp.id;
        let to_remote = |p: egui::Pos2| keys::to_remote(p, resp.rect.min, scale, size);
        if resp.is_pointer_button_down_on() || resp.clicked() || self.autofocus || self.regain {
            self.autofocus = false;
            self.regain = false;
            resp.request_focus();
        }
        let mut captured = ui.memory(|m| m.has_focus(id));
        if captured {
            // Tab, arrows and Escape stay with the pane instead of moving egui's focus.
            ui.memory_mut(|m| {
                m.set_focus_lock_filter(
                    id,
                    egui::EventFilter {
                        tab: true,
                        horizontal_arrows: true,
                        vertical_arrows: true,
                        escape: true,
                    },
                )
            });
        }
        // Ctrl+plus/minus belong to the remote, not to egui's zoom.
        ui.ctx().options_mut(|o| o.zoom_with_keyboard = !captured);
        if self.captured && !captured {
            self.release_keyboard();
        }
        self.captured = captured;
        let pointer = if self.buttons_down.is_empty() {
            resp.hover_pos()
        } else {
            ui.input(|i| i.pointer.latest_pos())
        };
        if let Some(p) = pointer {
            let r = to_remote(p);
            if self.last_pos != Some(r) {
                self.last_pos = Some(r);
                self.motion(InputEvent::MouseMove { x: r.0, y: r.1 });
            }
        }
        let events = ui.input(|i| i.events.clone());
        let hovered = resp.hovered();
        for ev in events {
            match &ev {
                egui::Event::PointerButton {
                    button, pressed, ..
                } => {
                    let down = self.buttons_down.contains(button);
                    let action = match (*pressed, hovered, down) {
                        (true, true, false) => {
                            self.buttons_down.push(*button);
                            Action::Press
                        }
                        (false, _, true) => {
                            self.buttons_down.retain(|b| b != button);
                            Action::Release
                        }
                        _ => continue,
                    };
                    self.queue(InputEvent::Button {
                        button: keys::button(*button),
                        action,
                    });
                }
                egui::Event::MouseWheel { unit, delta, .. } if hovered => {
                    let (dx, dy) = keys::scroll(*unit, *delta);
                    if dx != 0 || dy != 0 {
                        self.queue(InputEvent::ScrollFine { dx, dy });
                    }
                }
                // Back at once, so that keys in the same frame already go to the remote.
                egui::Event::WindowFocused(true) if self.had_it => {
                    self.had_it = false;
                    ui.memory_mut(|m| m.request_focus(id));
                    captured = true;
                    self.captured = true;
                    self.regain = true;
                }
                egui::Event::WindowFocused(false) => {
                    self.had_it = self.had_it || self.captured;
                    if self.captured {
                        ui.memory_mut(|m| m.surrender_focus(id));
                        self.captured = false;
                    }
                    captured = false;
                    self.release_keyboard();
                    for b in std::mem::take(&mut self.buttons_down) {
                        self.queue(InputEvent::Button {
                            button: keys::button(b),
                            action: Action::Release,
                        });
                    }
                }
                _ if captured => {
                    let mut out = Vec::new();
                    let release = self.capture.key_event(&ev, &mut out);
                    for e in out {
                        self.queue(e);
                    }
                    if release {
                        self.had_it = false;
                        ui.memory_mut(|m| m.surrender_focus(id));
                        captured = false;
                        self.captured = false;
                        self.release_keyboard();
                    }
                }
                _ => {}
            }
        }
    }
}

/// The window.
struct Viewer {
    pane: ScreenPane,
    /// The grant now: the status line shows Stop control at once.
    granted: tokio::sync::watch::Receiver<ScopeSet>,
    who: String,
    switch: Option<mpsc::Sender<u32>>,
    shown: Option<DisplayInfo>,
    /// The grant and note the status bar last showed, printed when they change.
    status_shown: Option<(ScopeSet, Option<String>)>,
    /// Where focus changes go (the clipboard sync, [`crate::clipboard::FocusSync`]).
    focus: Option<mpsc::Sender<bool>>,
    /// Whether the window had the focus at the last frame.
    focused: Option<bool>,
}

/// Where the viewer's picker sits (its top bar), in points from the window's top-left.
pub const PICKER: (f32, f32) = (8.0, 6.0);

impl eframe::App for Viewer {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let focused = ctx.input(|i| i.viewport().focused);
        if focused.is_some() && focused != self.focused {
            self.focused = focused;
            if let (Some(tx), Some(f)) = (&self.focus, focused) {
                let _ = tx.try_send(f);
            }
        }
        let st = self.pane.update(&ctx);
        if st.display != self.shown {
            // Standard output says which display is shown (a test and scripting channel).
            if let Some(d) = &st.display {
                tether_net::quietln!("viewer: showing {}", displays::describe(d));
            }
            self.shown = st.display.clone();
        }
        egui::Panel::top("displays")
            .exact_size(38.0)
            .show(ui, |ui| {
                if let Some(i) = self.pane.bar(ui, PICKER)
                    && let Some(tx) = &self.switch
                {
                    let _ = tx.try_send(i);
                }
            });
        let granted = *self.granted.borrow();
        if !granted.contains(tether_proto::Scope::Control) {
            // Control was taken back: no keyboard capture and no shortcut bar any more.
            self.pane.set_input(None);
        }
        let status = format!("{} | granted: {granted} | {}", self.who, st.line);
        let now = Some((granted, st.note.clone()));
        if now != self.status_shown {
            // Standard output says what the status bar shows of the grant (a test channel).
            tether_net::quietln!(
                "viewer: granted: {granted} | note: {}",
                st.note.as_deref().unwrap_or("none")
            );
            self.status_shown = now;
        }
        egui::Panel::bottom("status").show(ui, |ui| {
            ui.horizontal(|ui| {
                if ui.button("End session").clicked() {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                ui.label(status);
                if let Some(n) = &st.note {
                    ui.colored_label(egui::Color32::YELLOW, n);
                }
                if let Some(s) = &st.stopped {
                    ui.colored_label(egui::Color32::LIGHT_RED, format!("view stopped: {s}"));
                }
            });
        });
        egui::CentralPanel::default().show(ui, |ui| self.pane.show(ui));
        // No timed repaint: the view task asks for one when something changes.
    }
}

/// Opens the window and blocks until it closes. Call from the main thread. A display picked in the
/// window is sent on `switch`; each time the window gains (`true`) or loses focus, it is said on
/// `focus`.
pub fn run_window(
    state: Shared,
    granted: tokio::sync::watch::Receiver<ScopeSet>,
    who: String,
    input: Option<mpsc::Sender<InputEvent>>,
    switch: Option<mpsc::Sender<u32>>,
    focus: Option<mpsc::Sender<bool>>,
) -> Result<(), ConsoleError> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Tether viewer")
            .with_position([0.0, 0.0])
            .with_inner_size([1280.0, 760.0]),
        // Ctrl+C/X/V are keys for the remote here, not the console's clipboard.
        clipboard_shortcuts: false,
        ..Default::default()
    };
    eframe::run_native(
        "Tether viewer",
        options,
        Box::new(move |_cc| {
            Ok(Box::new(Viewer {
                pane: ScreenPane::new(state, input).autofocus(),
                granted,
                who,
                switch,
                shown: None,
                status_shown: None,
                focus,
                focused: None,
            }))
        }),
    )
    .map_err(|e| ConsoleError::Failed(format!("cannot open the viewer window: {e}")))
}
