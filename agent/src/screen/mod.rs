//! Screen capture and input injection behind traits, and the two long-lived request streams that use them.
//!
//! # Layout
//! - [`ScreenProvider`] / [`ScreenSource`]: list displays, open a capturer on one. A provider is `Send`
//!   and lives in [`crate::ShareConfig`]; a source is created and used only on the capture thread
//!   (scrap's capturer is not `Send`). Nothing is opened before the user grants `view`.
//! - [`InputProvider`] / [`InputSink`]: open an injector; used only after `control` is granted.
//! - [`backend`]: the one place a platform's backends are chosen ([`backend::default_providers`]).
//! - `scrap_x11`: the X11 backend: only the rectangles DAMAGE reports (MIT-SHM 1.2 into a memfd),
//!   scrap's whole frames where that is not available, RandR monitors and the cursor (XFixes) via x11rb.
//! - `monitors`: which displays a screen offers (each monitor, then "all monitors"), and the pure
//!   rectangle arithmetic (clipping, keeping a click on its monitor, putting captures together).
//! - `x11_input`: the X11 input backend (XTEST through x11rb for keys, buttons and motion; enigo for
//!   text).
//! - `wlroots`: the wlroots capture backend (sway, Hyprland, river): `zwlr_screencopy_manager_v1`
//!   into shared memory.
//! - `wlroots_input`: the wlroots input backend: virtual pointer and virtual keyboard protocols.
//! - `mutter`: GNOME through Mutter's own ScreenCast and RemoteDesktop D-Bus APIs (no dialog).
//! - `portal`: the desktop portal's ScreenCast and RemoteDesktop (GNOME, KDE, wlroots with
//!   xdg-desktop-portal-wlr), after Tether's consent; the restore token is kept.
//! - `pipewire_stream`: frames from a PipeWire screen-cast stream, kept as the latest frame.
//! - `remote_input`: input events mapped onto a desktop's remote-desktop calls (Mutter, portal).
//! - `activity`: the guard that tells the user a view or control started, and that it stopped.
//! - `held`: what a control stream holds down, and the key-press rate bound (pure).
//! - `pace`: when the view stream captures (pure, time passed in): 30/s while the screen changes,
//!   5/s when idle, at once after injected input.
//! - `view`: the view stream — capture thread, tile diff + zstd, latest frame wins.
//! - `control`: the control stream — one reply per event, grant checked on every event.
//!
//! Backends take the X display name (e.g. `":5"`) instead of reading `DISPLAY`, so several agents in one
//! process (the tests) can each use their own X server.

mod activity;
pub mod backend;
mod control;
mod held;
pub mod monitors;
mod mutter;
mod pace;
mod pipewire_stream;
mod portal;
mod remote_input;
mod scrap_x11;
mod shared;
mod video;
mod view;
mod wlroots;
mod wlroots_input;
mod x11_input;

use std::fmt::Debug;

use std::sync::Arc;

use tether_proto::ScopeSet;
use tether_proto::cursor::CursorShape;
use tether_proto::msg::SessionReport;
use tether_proto::screen::{DisplayInfo, InputEvent, Rect};
use tokio::sync::{mpsc, watch};

use crate::ui::AgentEvent;

pub use held::{KEY_BURST, KEY_PRESSES_PER_SECOND, MAX_HELD_KEYS, MAX_SCROLL_NOTCHES};
pub use mutter::MutterDesktop;
pub use portal::{CONTROL_REFUSED, PortalDesktop, SCREEN_REFUSED};
pub use scrap_x11::ScrapScreen;
pub use shared::{REUSE_WITHIN, SharedScreen};
pub use wlroots::WlrootsScreen;
/// The Wayland connection helpers, shared with the wlroots clipboard.
pub(crate) use wlroots::{connect as wayland_connect, socket_path as wayland_socket};
pub use wlroots_input::{FIRST_KEY_SETTLE, WlrootsInput};
pub use x11_input::X11Input;

pub(crate) use control::serve_control;
pub use pace::{FRAME_INTERVAL, IDLE_AFTER, IDLE_EVERY, WAKE_FOR, WAKE_INTERVAL};
pub(crate) use view::{InputSeen, serve_view};

/// What a screen stream (view or control) needs from its session.
pub(crate) struct StreamCtx {
    /// The current grant; a screen stream watches it for revocation.
    pub grant: watch::Receiver<ScopeSet>,
    pub events: mpsc::Sender<AgentEvent>,
    pub reports: mpsc::Sender<SessionReport>,
    /// Capture backend; opened only by a granted view stream.
    pub screen: Arc<dyn ScreenProvider>,
    /// Whether video regions may go through the video codec (see `ShareConfig::video`).
    pub video: bool,
    /// Input backend; opened only by a granted control stream.
    pub input: Arc<dyn InputProvider>,
    /// Input injected on this session's control streams; its view streams wake on it.
    pub input_seen: InputSeen,
    /// Who is on the other side, for "viewed by" messages.
    pub technician: String,
}

/// Capture failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CaptureError {
    /// The display server could not be reached.
    #[error("cannot connect to the display server: {0}")]
    Connect(String),
    /// There is no display with this index.
    #[error("no display number {0}")]
    NoSuchDisplay(u32),
    /// Capturing a frame failed.
    #[error("capture failed: {0}")]
    Capture(String),
}

/// Input injection failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InputError {
    /// The display server could not be reached.
    #[error("cannot connect to the display server: {0}")]
    Connect(String),
    /// The OS refused the event.
    #[error("injection failed: {0}")]
    Inject(String),
}

/// Lists displays and opens capturers. Shared by all sessions, so `Send + Sync`.
pub trait ScreenProvider: Send + Sync + Debug {
    /// The displays, with size and position.
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError>;
    /// Opens a capturer on display `index`. Called on the capture thread.
    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError>;
    /// The displays as a control stream about to open sees them. The same as [`Self::displays`],
    /// except where listing displays is itself a request to the user (the portal): there it is
    /// the start of the remote-desktop session that input then uses, so the user answers one
    /// dialog for control, not two.
    fn control_displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        self.displays()
    }
}

/// One display being captured. Lives on the capture thread only.
pub trait ScreenSource {
    /// The display.
    fn info(&self) -> DisplayInfo;
    /// The current picture: `width * height * 4` bytes, B G R X.
    fn capture(&mut self) -> Result<&[u8], CaptureError>;
    /// Like [`Self::capture`], also saying where the picture may differ from the one the previous
    /// call returned, when the backend knows (X11 DAMAGE): the view loop then compares and keeps
    /// only those rectangles instead of the whole screen. The default knows nothing (`None`:
    /// compare everything), which is always correct.
    fn capture_damage(&mut self) -> Result<Capture<'_>, CaptureError> {
        Ok(Capture {
            pixels: self.capture()?,
            damage: None,
        })
    }
    /// Whether the backend knows that the picture is the same as at the last `capture` (X11's
    /// DAMAGE, PipeWire's frame count), so the view loop can skip capturing and diffing a still
    /// screen. `false` when it cannot tell.
    fn unchanged(&mut self) -> bool {
        false
    }
    /// The pointer (position in display pixels, and its shape when the backend has it), when the
    /// backend knows it. Backends without a cursor leave it out.
    fn cursor(&mut self) -> Option<Pointer> {
        None
    }
}

/// A picture from [`ScreenSource::capture_damage`].
#[derive(Debug)]
pub struct Capture<'a> {
    /// The whole picture, as [`ScreenSource::capture`] returns it.
    pub pixels: &'a [u8],
    /// Rectangles (display pixels, possibly overlapping) outside which `pixels` equals the previous
    /// capture's picture; `None`: it may differ anywhere (the first capture, or no damage known).
    pub damage: Option<Vec<Rect>>,
}

/// The user's pointer as a backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    /// Column, in display pixels (may be outside the display).
    pub x: i32,
    /// Row.
    pub y: i32,
    /// The cursor image, shared while its serial stays the same.
    pub shape: Option<Arc<CursorShape>>,
}

/// Adds smooth scrolling (in [`tether_proto::screen::SCROLL_UNITS_PER_NOTCH`]ths of a notch) to
/// what is left over in `rest` and returns the whole notches to send `(dx, dy)`, keeping the
/// remainder: for backends that scroll by notches only.
pub(crate) fn whole_notches(rest: &mut (i32, i32), dx: i32, dy: i32) -> (i32, i32) {
    let u = tether_proto::screen::SCROLL_UNITS_PER_NOTCH;
    let (fx, fy) = (rest.0 + dx, rest.1 + dy);
    *rest = (fx % u, fy % u);
    (fx / u, fy / u)
}

/// A mouse button's Linux evdev code (`linux/input-event-codes.h`), as Wayland protocols and the
/// remote-desktop APIs take it.
pub(crate) fn evdev_button(b: tether_proto::screen::MouseButton) -> u16 {
    use tether_proto::screen::MouseButton;
    match b {
        MouseButton::Left => 0x110,
        MouseButton::Right => 0x111,
        MouseButton::Middle => 0x112,
        MouseButton::Back => 0x113,
        MouseButton::Forward => 0x114,
    }
}

/// Opens input injectors. Shared by all sessions.
pub trait InputProvider: Send + Sync + Debug {
    /// Opens an injector. Called on the input thread.
    fn open(&self) -> Result<Box<dyn InputSink>, InputError>;
}

/// Injects input events. Coordinates are already on the virtual desktop.
pub trait InputSink {
    /// Injects one event; `origin` is the top-left of the display the coordinates refer to.
    fn inject(&mut self, event: &InputEvent, origin: (i32, i32)) -> Result<(), InputError>;
}
