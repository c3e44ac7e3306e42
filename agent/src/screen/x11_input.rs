//! Input injection on X11 through XTEST (x11rb): physical keys, every mouse button, motion and
//! scrolling. Text (what has no key) goes through enigo, which types any character by briefly
//! remapping a spare keycode; libei is deliberately not enabled: `Enigo::new` panics there without a
//! session D-Bus.
//!
//! Keys are injected by keycode, never by keysym, so they are physical: `KeyQ` is the key right of
//! Tab whatever the user's layout prints on it, and the user's own layout turns it into a character,
//! as it does for their own keyboard. X servers using the evdev keycodes (Xorg with libinput or evdev,
//! Xvfb, Xwayland: all current ones) number a key `evdev + 8`. [`X11Input::open`] checks that against
//! the server's keyboard map (`Home` must be keycode 110 and `Up` 111, which the old "xfree86"
//! numbering has elsewhere) and refuses keys, with that reason, on a server that numbers otherwise.

use enigo::{Enigo, Keyboard, Settings};
use tether_proto::screen::{Action, InputEvent, KeyId, MouseButton};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use super::{InputError, InputProvider, InputSink, whole_notches};

/// X keycode = evdev code + this, on servers with the evdev keycodes.
pub const EVDEV_OFFSET: u16 = 8;

/// XTEST (and enigo for text) on the X server named `display`; `None` uses `$DISPLAY`.
#[derive(Debug, Clone, Default)]
pub struct X11Input {
    display: Option<String>,
}

impl X11Input {
    /// Injects into the X server `display`, or `$DISPLAY` when `None`.
    pub fn new(display: Option<String>) -> Self {
        X11Input { display }
    }
}

fn connect_err(e: impl std::fmt::Display) -> InputError {
    InputError::Connect(e.to_string())
}

fn inject_err(e: impl std::fmt::Display) -> InputError {
    InputError::Inject(e.to_string())
}

/// Why keys cannot be mapped on this server, if they cannot: the keysyms at the evdev positions of
/// two keys that the old numbering puts elsewhere.
fn evdev_keymap_problem(conn: &RustConnection) -> Result<Option<String>, InputError> {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .map_err(connect_err)?
        .reply()
        .map_err(connect_err)?;
    let per = usize::from(map.keysyms_per_keycode);
    let sym = |keycode: u8| {
        let i = usize::from(keycode.checked_sub(min)?) * per;
        map.keysyms.get(i).copied()
    };
    // XK_Home, XK_Up.
    for (name, keycode, keysym) in [("Home", 110u8, 0xff50u32), ("Up", 111, 0xff52)] {
        if sym(keycode) != Some(keysym) {
            return Ok(Some(format!(
                "this X server does not number keys as evdev does ({name} is not keycode \
                 {keycode}), so physical keys cannot be mapped"
            )));
        }
    }
    Ok(None)
}

impl InputProvider for X11Input {
    fn open(&self) -> Result<Box<dyn InputSink>, InputError> {
        let (conn, screen) = x11rb::connect(self.display.as_deref()).map_err(connect_err)?;
        let root = conn
            .setup()
            .roots
            .get(screen)
            .ok_or_else(|| connect_err(format!("the X server has no screen {screen}")))?
            .root;
        conn.xtest_get_version(2, 2)
            .map_err(connect_err)?
            .reply()
            .map_err(|e| connect_err(format!("the X server has no XTEST extension: {e}")))?;
        let keymap_problem = evdev_keymap_problem(&conn)?;
        let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
        Ok(Box::new(X11Sink {
            conn,
            root,
            keycodes: (min, max),
            keymap_problem,
            display: self.display.clone(),
            text: None,
            fine: (0, 0),
        }))
    }
}

struct X11Sink {
    conn: RustConnection,
    root: xproto::Window,
    keycodes: (u8, u8),
    keymap_problem: Option<String>,
    display: Option<String>,
    /// enigo, opened at the first text event.
    text: Option<Enigo>,
    /// Smooth-scroll remainders (fine units) not yet sent as whole notches.
    fine: (i32, i32),
}

/// X button numbers (4-7 are the wheel).
fn button_number(b: MouseButton) -> u8 {
    match b {
        MouseButton::Left => 1,
        MouseButton::Middle => 2,
        MouseButton::Right => 3,
        MouseButton::Back => 8,
        MouseButton::Forward => 9,
    }
}

fn clamp16(v: i32) -> i16 {
    v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

impl X11Sink {
    fn fake(&self, kind: u8, detail: u8, x: i16, y: i16) -> Result<(), InputError> {
        self.conn
            .xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, self.root, x, y, 0)
            .map_err(inject_err)?
            .check()
            .map_err(inject_err)
    }

    fn press_release(&self, press: u8, detail: u8, action: Action) -> Result<(), InputError> {
        // X event codes: press + 1 is the matching release.
        if matches!(action, Action::Press | Action::Click) {
            self.fake(press, detail, 0, 0)?;
        }
        if matches!(action, Action::Release | Action::Click) {
            self.fake(press + 1, detail, 0, 0)?;
        }
        Ok(())
    }

    fn keycode(&self, key: KeyId) -> Result<u8, InputError> {
        if let Some(p) = &self.keymap_problem {
            return Err(InputError::Inject(p.clone()));
        }
        let code = key
            .code()
            .ok_or_else(|| InputError::Inject(format!("{key} is not a key this agent knows")))?;
        u8::try_from(code.evdev() + EVDEV_OFFSET)
            .ok()
            .filter(|k| (self.keycodes.0..=self.keycodes.1).contains(k))
            .ok_or_else(|| InputError::Inject(format!("{code} has no keycode on this X server")))
    }

    fn notches(&self, dx: i32, dy: i32) -> Result<(), InputError> {
        for (n, neg, pos) in [(dy, 4u8, 5u8), (dx, 6, 7)] {
            let b = if n < 0 { neg } else { pos };
            for _ in 0..n.unsigned_abs() {
                self.press_release(xproto::BUTTON_PRESS_EVENT, b, Action::Click)?;
            }
        }
        Ok(())
    }
}

impl InputSink for X11Sink {
    fn inject(&mut self, event: &InputEvent, origin: (i32, i32)) -> Result<(), InputError> {
        match event {
            InputEvent::MouseMove { x, y } => {
                let (x, y) = (
                    clamp16(origin.0.saturating_add(*x)),
                    clamp16(origin.1.saturating_add(*y)),
                );
                self.fake(xproto::MOTION_NOTIFY_EVENT, 0, x, y)
            }
            InputEvent::Button { button, action } => {
                self.press_release(xproto::BUTTON_PRESS_EVENT, button_number(*button), *action)
            }
            InputEvent::Scroll { dx, dy } => self.notches(*dx, *dy),
            InputEvent::ScrollFine { dx, dy } => {
                // X11's core protocol has only whole notches: keep the remainder for later.
                let (nx, ny) = whole_notches(&mut self.fine, *dx, *dy);
                self.notches(nx, ny)
            }
            InputEvent::Key { key, action } => {
                let k = self.keycode(*key)?;
                self.press_release(xproto::KEY_PRESS_EVENT, k, *action)
            }
            InputEvent::Text(t) => {
                if self.text.is_none() {
                    let settings = Settings {
                        x11_display: self.display.clone(),
                        linux_delay: 0,
                        ..Settings::default()
                    };
                    self.text = Some(Enigo::new(&settings).map_err(connect_err)?);
                }
                match &mut self.text {
                    Some(e) => e.text(t).map_err(inject_err),
                    None => Ok(()),
                }
            }
            // The control stream turns this into releases of what it holds.
            InputEvent::ReleaseAll => Ok(()),
        }
    }
}
