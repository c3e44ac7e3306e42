//! The viewer window (eframe/egui): the remote screen scaled to fit, a status bar (granted scopes, frame
//! rate, round-trip time, bandwidth, End), and mouse and keyboard forwarded as remote-display pixels when
//! `control` is granted.
//!
//! The network runs in tokio tasks ([`pump_view`], [`pump_input`]) that share a [`ViewerState`] with the
//! window; the window only reads the state and queues input events. [`ScreenPane`] is the drawing and
//! input part, shared with the console window ([`crate::window`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;
use tether_proto::ScopeSet;
use tether_proto::screen::{Action, InputEvent, Key, MouseButton};
use tokio::sync::mpsc;

use crate::error::ConsoleError;
use crate::screen::{ControlStream, ViewEvent, ViewStream};

/// What the network tasks tell the window.
#[derive(Debug, Default)]
pub struct ViewerState {
    /// The latest complete frame as RGBA, when the window has not taken it yet.
    pub frame: Option<([usize; 2], Vec<u8>)>,
    /// Frames per second over the last second.
    pub fps: f32,
    /// Kilobits per second over the last second (everything received on the connection).
    pub kbps: f32,
    /// Round-trip time.
    pub rtt: Duration,
    /// Why the view stopped, once it has.
    pub stopped: Option<String>,
    /// The last input problem (e.g. control taken back by the user).
    pub note: Option<String>,
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
                let rgba = view.framebuffer.to_rgba();
                let size = [
                    view.framebuffer.width as usize,
                    view.framebuffer.height as usize,
                ];
                if let Ok(mut s) = state.lock() {
                    s.frame = Some((size, rgba));
                }
            }
            Ok(_) => {}
            Err(e) => {
                if let Ok(mut s) = state.lock() {
                    s.stopped = Some(e.to_string());
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
            let stop = !matches!(err, ConsoleError::ScopeDenied(_));
            if let Ok(mut s) = state.lock() {
                s.note = Some(err.to_string());
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
}

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
}

impl ScreenPane {
    /// A pane over `state`; `input` forwards mouse and keyboard (`None`: look only).
    pub fn new(state: Shared, input: Option<mpsc::Sender<InputEvent>>) -> Self {
        ScreenPane {
            state,
            texture: None,
            input,
            last_pos: None,
        }
    }

    /// Starts (`Some`) or stops forwarding mouse and keyboard, when `control` comes or goes.
    pub fn set_input(&mut self, input: Option<mpsc::Sender<InputEvent>>) {
        self.input = input;
    }

    /// Takes the latest frame into the texture and says how the view is doing.
    pub fn update(&mut self, ctx: &egui::Context) -> ScreenStatus {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if let Some((size, rgba)) = s.frame.take() {
            let image = egui::ColorImage::from_rgba_unmultiplied(size, &rgba);
            match &mut self.texture {
                Some(t) => t.set(image, egui::TextureOptions::LINEAR),
                None => {
                    self.texture =
                        Some(ctx.load_texture("remote", image, egui::TextureOptions::LINEAR))
                }
            }
        }
        ScreenStatus {
            line: format!(
                "{:.0} fps | rtt {:.1} ms | {:.0} kbit/s",
                s.fps,
                s.rtt.as_secs_f64() * 1000.0,
                s.kbps
            ),
            stopped: s.stopped.clone(),
            note: s.note.clone(),
            showing: self.texture.is_some(),
        }
    }

    /// Draws the screen into the space left in `ui` and forwards input over it.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let Some(tex) = &self.texture else {
            ui.label("waiting for the first frame...");
            return;
        };
        let size = tex.size_vec2();
        let avail = ui.available_size();
        let scale = (avail.x / size.x).min(avail.y / size.y).min(1.0);
        let image = egui::Image::new((tex.id(), size * scale)).sense(egui::Sense::click_and_drag());
        let resp = ui.add(image);
        self.forward_input(ui, &resp, scale);
    }

    fn send(&self, e: InputEvent) {
        if let Some(tx) = &self.input {
            // A full queue drops pointer motion rather than stalling the window; the next move catches up.
            let _ = tx.try_send(e);
        }
    }

    fn forward_input(&mut self, ui: &egui::Ui, resp: &egui::Response, scale: f32) {
        if self.input.is_none() {
            return;
        }
        let to_remote = |p: egui::Pos2| {
            let v = (p - resp.rect.min) / scale;
            (v.x.round() as i32, v.y.round() as i32)
        };
        if let Some(p) = resp.hover_pos() {
            let r = to_remote(p);
            if self.last_pos != Some(r) {
                self.last_pos = Some(r);
                self.send(InputEvent::MouseMove { x: r.0, y: r.1 });
            }
        }
        let events = ui.input(|i| i.events.clone());
        let hovered = resp.hovered();
        // Keys go to the remote screen unless one of our own fields (a filter, probe parameters)
        // has the keyboard.
        let keys = ui.memory(|m| m.focused().is_none());
        for ev in events {
            match ev {
                egui::Event::PointerButton {
                    button, pressed, ..
                } if hovered => {
                    let button = match button {
                        egui::PointerButton::Primary => MouseButton::Left,
                        egui::PointerButton::Secondary => MouseButton::Right,
                        egui::PointerButton::Middle => MouseButton::Middle,
                        _ => continue,
                    };
                    let action = if pressed {
                        Action::Press
                    } else {
                        Action::Release
                    };
                    self.send(InputEvent::Button { button, action });
                }
                egui::Event::MouseWheel { delta, .. } if hovered => {
                    let dy = -delta.y.signum() as i32;
                    let dx = -delta.x.signum() as i32;
                    if dx != 0 || dy != 0 {
                        self.send(InputEvent::Scroll { dx, dy });
                    }
                }
                egui::Event::Text(t) if keys => self.send(InputEvent::Text(t)),
                egui::Event::Key {
                    key, pressed: true, ..
                } if keys => {
                    let k = match key {
                        egui::Key::Enter => Key::Enter,
                        egui::Key::Tab => Key::Tab,
                        egui::Key::Escape => Key::Escape,
                        egui::Key::Backspace => Key::Backspace,
                        egui::Key::Delete => Key::Delete,
                        egui::Key::ArrowLeft => Key::Left,
                        egui::Key::ArrowRight => Key::Right,
                        egui::Key::ArrowUp => Key::Up,
                        egui::Key::ArrowDown => Key::Down,
                        _ => continue,
                    };
                    self.send(InputEvent::Key {
                        key: k,
                        action: Action::Click,
                    });
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
}

impl eframe::App for Viewer {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let st = self.pane.update(&ctx);
        let granted = *self.granted.borrow();
        let status = format!("{} | granted: {granted} | {}", self.who, st.line);
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
        ctx.request_repaint_after(Duration::from_millis(30));
    }
}

/// Opens the window and blocks until it closes. Call from the main thread.
pub fn run_window(
    state: Shared,
    granted: tokio::sync::watch::Receiver<ScopeSet>,
    who: String,
    input: Option<mpsc::Sender<InputEvent>>,
) -> Result<(), ConsoleError> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Tether viewer")
            .with_position([0.0, 0.0])
            .with_inner_size([1280.0, 760.0]),
        ..Default::default()
    };
    eframe::run_native(
        "Tether viewer",
        options,
        Box::new(move |_cc| {
            Ok(Box::new(Viewer {
                pane: ScreenPane::new(state, input),
                granted,
                who,
            }))
        }),
    )
    .map_err(|e| ConsoleError::Failed(format!("cannot open the viewer window: {e}")))
}
