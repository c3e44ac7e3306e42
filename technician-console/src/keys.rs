//! Keys on the technician's side: egui's physical keys to [`Code`]s, the CLI's xdotool-like key names
//! and chords (`ctrl+alt+t`, `f5`, `KeyA`), and the keyboard capture of the screen pane
//! ([`Capture`]), which turns the window's events into [`InputEvent`]s and owns the release key.
//!
//! While the pane has the keyboard every key goes to the remote, modifiers as keys of their own
//! (held across other keys), except [`RELEASE_KEY`], which gives the keyboard back to the console.
//! Text events are not forwarded (the remote's own layout makes characters from the physical keys);
//! only IME commits, which have no key, go as text. Key repeat is not forwarded either: the remote
//! X server repeats a held key itself.

use eframe::egui;
use tether_proto::screen::{Action, Code, InputEvent, MouseButton, SCROLL_UNITS_PER_NOTCH};

/// The key that releases the keyboard capture (as in VirtualBox). It is never sent to the remote.
pub const RELEASE_KEY: Code = Code::ControlRight;
/// What the pane says while it has the keyboard.
pub const CAPTURED_NOTE: &str =
    "Keyboard captured: every key goes to the remote (Right Ctrl releases)";
/// egui points per wheel notch, for touchpads that scroll in points.
const POINTS_PER_NOTCH: f32 = 40.0;
/// Wheel notches per page, for the rare page-unit wheels.
const NOTCHES_PER_PAGE: f32 = 10.0;

/// egui's key (physical when the platform says, else logical) as a physical key.
pub fn from_egui(key: egui::Key) -> Option<Code> {
    use egui::Key as K;
    Some(match key {
        K::ArrowDown => Code::ArrowDown,
        K::ArrowLeft => Code::ArrowLeft,
        K::ArrowRight => Code::ArrowRight,
        K::ArrowUp => Code::ArrowUp,
        K::Escape => Code::Escape,
        K::Tab => Code::Tab,
        K::Backspace => Code::Backspace,
        K::Enter => Code::Enter,
        K::Space => Code::Space,
        K::Insert => Code::Insert,
        K::Delete => Code::Delete,
        K::Home => Code::Home,
        K::End => Code::End,
        K::PageUp => Code::PageUp,
        K::PageDown => Code::PageDown,
        K::Comma => Code::Comma,
        K::Period => Code::Period,
        K::Semicolon => Code::Semicolon,
        K::Backslash => Code::Backslash,
        K::Slash => Code::Slash,
        K::OpenBracket => Code::BracketLeft,
        K::CloseBracket => Code::BracketRight,
        K::Backtick => Code::Backquote,
        K::Quote => Code::Quote,
        K::Minus => Code::Minus,
        K::Plus => Code::NumpadAdd,
        K::Equals => Code::Equal,
        K::Num0 => Code::Digit0,
        K::Num1 => Code::Digit1,
        K::Num2 => Code::Digit2,
        K::Num3 => Code::Digit3,
        K::Num4 => Code::Digit4,
        K::Num5 => Code::Digit5,
        K::Num6 => Code::Digit6,
        K::Num7 => Code::Digit7,
        K::Num8 => Code::Digit8,
        K::Num9 => Code::Digit9,
        K::A => Code::KeyA,
        K::B => Code::KeyB,
        K::C => Code::KeyC,
        K::D => Code::KeyD,
        K::E => Code::KeyE,
        K::F => Code::KeyF,
        K::G => Code::KeyG,
        K::H => Code::KeyH,
        K::I => Code::KeyI,
        K::J => Code::KeyJ,
        K::K => Code::KeyK,
        K::L => Code::KeyL,
        K::M => Code::KeyM,
        K::N => Code::KeyN,
        K::O => Code::KeyO,
        K::P => Code::KeyP,
        K::Q => Code::KeyQ,
        K::R => Code::KeyR,
        K::S => Code::KeyS,
        K::T => Code::KeyT,
        K::U => Code::KeyU,
        K::V => Code::KeyV,
        K::W => Code::KeyW,
        K::X => Code::KeyX,
        K::Y => Code::KeyY,
        K::Z => Code::KeyZ,
        K::F1 => Code::F1,
        K::F2 => Code::F2,
        K::F3 => Code::F3,
        K::F4 => Code::F4,
        K::F5 => Code::F5,
        K::F6 => Code::F6,
        K::F7 => Code::F7,
        K::F8 => Code::F8,
        K::F9 => Code::F9,
        K::F10 => Code::F10,
        K::F11 => Code::F11,
        K::F12 => Code::F12,
        K::F13 => Code::F13,
        K::F14 => Code::F14,
        K::F15 => Code::F15,
        K::F16 => Code::F16,
        K::F17 => Code::F17,
        K::F18 => Code::F18,
        K::F19 => Code::F19,
        K::F20 => Code::F20,
        K::F21 => Code::F21,
        K::F22 => Code::F22,
        K::F23 => Code::F23,
        K::F24 => Code::F24,
        K::ShiftLeft => Code::ShiftLeft,
        K::ShiftRight => Code::ShiftRight,
        K::ControlLeft => Code::ControlLeft,
        K::ControlRight => Code::ControlRight,
        K::AltLeft => Code::AltLeft,
        K::AltRight => Code::AltRight,
        K::SuperLeft => Code::MetaLeft,
        K::SuperRight => Code::MetaRight,
        K::IntlBackslash => Code::IntlBackslash,
        K::CapsLock => Code::CapsLock,
        K::NumLock => Code::NumLock,
        K::ScrollLock => Code::ScrollLock,
        K::PrintScreen => Code::PrintScreen,
        K::Pause => Code::Pause,
        K::Menu => Code::ContextMenu,
        K::Power => Code::Power,
        _ => return None,
    })
}

/// A key name the CLI does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyNameError {
    /// Not a key name.
    #[error(
        "unknown key {0:?}: use a name like ctrl, alt, shift, super, enter, tab, esc, f5, home, \
         pgup, a, 5, or a W3C code like KeyA, ControlRight, Numpad7"
    )]
    Unknown(String),
    /// An empty chord, or `+` with nothing on one side.
    #[error("empty key name in {0:?}")]
    Empty(String),
    /// More keys than the agent lets one stream hold.
    #[error("{0} keys in one chord; at most {MAX_CHORD}")]
    TooMany(usize),
}

/// Most keys in one CLI chord (the agent's own bound is higher; nobody needs more than this).
pub const MAX_CHORD: usize = 8;

/// One key by an xdotool-like name (`ctrl`, `super`, `Return`, `pgup`, `a`, `5`, `f5`) or by its W3C
/// code name (`KeyA`, `ControlRight`), ASCII case ignored. Modifiers name the left key.
pub fn parse_key(name: &str) -> Result<Code, KeyNameError> {
    let lower = name.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "ctrl" | "control" | "control_l" | "ctrl_l" => Some(Code::ControlLeft),
        "control_r" | "ctrl_r" => Some(Code::ControlRight),
        "shift" | "shift_l" => Some(Code::ShiftLeft),
        "shift_r" => Some(Code::ShiftRight),
        "alt" | "alt_l" | "meta" => Some(Code::AltLeft),
        "alt_r" | "altgr" => Some(Code::AltRight),
        "super" | "super_l" | "win" | "cmd" => Some(Code::MetaLeft),
        "super_r" => Some(Code::MetaRight),
        "enter" | "return" => Some(Code::Enter),
        "esc" => Some(Code::Escape),
        "bksp" | "backspace" => Some(Code::Backspace),
        "del" => Some(Code::Delete),
        "ins" => Some(Code::Insert),
        "pgup" | "prior" | "page_up" => Some(Code::PageUp),
        "pgdn" | "next" | "page_down" => Some(Code::PageDown),
        "left" => Some(Code::ArrowLeft),
        "right" => Some(Code::ArrowRight),
        "up" => Some(Code::ArrowUp),
        "down" => Some(Code::ArrowDown),
        "space" => Some(Code::Space),
        "print" | "prtsc" | "sysrq" => Some(Code::PrintScreen),
        "menu" => Some(Code::ContextMenu),
        "grave" => Some(Code::Backquote),
        "minus" | "-" => Some(Code::Minus),
        "equal" | "=" => Some(Code::Equal),
        _ => None,
    };
    if let Some(c) = alias {
        return Ok(c);
    }
    let mut chars = lower.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_ascii_lowercase() {
            return format!("Key{}", c.to_ascii_uppercase())
                .parse()
                .map_err(|_| KeyNameError::Unknown(name.into()));
        }
        if c.is_ascii_digit() {
            return format!("Digit{c}")
                .parse()
                .map_err(|_| KeyNameError::Unknown(name.into()));
        }
    }
    name.parse()
        .map_err(|_| KeyNameError::Unknown(name.to_string()))
}

/// A chord like `ctrl+alt+t`: the keys in press order.
pub fn parse_chord(chord: &str) -> Result<Vec<Code>, KeyNameError> {
    let keys = chord
        .split('+')
        .map(|k| {
            if k.trim().is_empty() {
                Err(KeyNameError::Empty(chord.to_string()))
            } else {
                parse_key(k.trim())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.len() > MAX_CHORD {
        return Err(KeyNameError::TooMany(keys.len()));
    }
    Ok(keys)
}

/// The events for `keys`: `Press` each in order, `Release` in reverse, or both (a chord typed once).
pub fn chord_events(keys: &[Code], press: bool, release: bool) -> Vec<InputEvent> {
    let ev = |c: &Code, action| InputEvent::Key {
        key: (*c).into(),
        action,
    };
    let mut out = Vec::new();
    if press {
        out.extend(keys.iter().map(|c| ev(c, Action::Press)));
    }
    if release {
        out.extend(keys.iter().rev().map(|c| ev(c, Action::Release)));
    }
    out
}

/// The shortcuts a local OS would take before the console sees them, for the pane's menu. Session
/// switching ones (Ctrl+Alt+F1…F7) ask for confirmation first.
pub const SPECIAL: &[(&str, &[Code], bool)] = &[
    (
        "Ctrl+Alt+Del",
        &[Code::ControlLeft, Code::AltLeft, Code::Delete],
        false,
    ),
    ("Super", &[Code::MetaLeft], false),
    ("Alt+Tab", &[Code::AltLeft, Code::Tab], false),
    ("PrintScreen", &[Code::PrintScreen], false),
    (
        "Ctrl+Alt+F1",
        &[Code::ControlLeft, Code::AltLeft, Code::F1],
        true,
    ),
    (
        "Ctrl+Alt+F2",
        &[Code::ControlLeft, Code::AltLeft, Code::F2],
        true,
    ),
    (
        "Ctrl+Alt+F3",
        &[Code::ControlLeft, Code::AltLeft, Code::F3],
        true,
    ),
    (
        "Ctrl+Alt+F4",
        &[Code::ControlLeft, Code::AltLeft, Code::F4],
        true,
    ),
    (
        "Ctrl+Alt+F5",
        &[Code::ControlLeft, Code::AltLeft, Code::F5],
        true,
    ),
    (
        "Ctrl+Alt+F6",
        &[Code::ControlLeft, Code::AltLeft, Code::F6],
        true,
    ),
    (
        "Ctrl+Alt+F7",
        &[Code::ControlLeft, Code::AltLeft, Code::F7],
        true,
    ),
];

/// The shortcut bar: plain shortcuts go at once, session-switching ones wait for a confirmation.
#[derive(Debug, Default)]
pub struct Shortcuts {
    pending: Option<usize>,
}

impl Shortcuts {
    /// The technician picked `SPECIAL[i]`: its events, or none while it waits for confirmation.
    pub fn pick(&mut self, i: usize) -> Vec<InputEvent> {
        match SPECIAL.get(i) {
            Some((_, _, true)) => {
                self.pending = Some(i);
                Vec::new()
            }
            Some((_, chord, false)) => chord_events(chord, true, true),
            None => Vec::new(),
        }
    }

    /// The shortcut waiting for confirmation, by name.
    pub fn pending(&self) -> Option<&'static str> {
        self.pending.and_then(|i| SPECIAL.get(i)).map(|s| s.0)
    }

    /// Sends the waiting shortcut.
    pub fn confirm(&mut self) -> Vec<InputEvent> {
        match self.pending.take().and_then(|i| SPECIAL.get(i)) {
            Some((_, chord, _)) => chord_events(chord, true, true),
            None => Vec::new(),
        }
    }

    /// Drops the waiting shortcut.
    pub fn cancel(&mut self) {
        self.pending = None;
    }
}

/// The pane's keyboard: which keys the console has pressed on the remote, so that losing the
/// keyboard (release key, focus elsewhere, window unfocused) releases exactly those.
#[derive(Debug, Default)]
pub struct Capture {
    down: Vec<Code>,
}

impl Capture {
    /// Translates one window event while the pane has the keyboard. Returns `true` when the release
    /// key was pressed: the caller gives the keyboard back (and calls [`Capture::release`]).
    pub fn key_event(&mut self, ev: &egui::Event, out: &mut Vec<InputEvent>) -> bool {
        let (code, pressed) = match ev {
            egui::Event::Key {
                key,
                physical_key,
                pressed,
                repeat,
                ..
            } => {
                let Some(code) = physical_key.and_then(from_egui).or_else(|| from_egui(*key))
                else {
                    return false;
                };
                if *repeat && *pressed {
                    return false;
                }
                (code, *pressed)
            }
            // With the platform's clipboard shortcuts on (the console window's text fields need
            // them), Ctrl+C/X/V arrive as these instead of key presses; their releases are keys.
            egui::Event::Copy => (Code::KeyC, true),
            egui::Event::Cut => (Code::KeyX, true),
            egui::Event::Paste(_) => (Code::KeyV, true),
            egui::Event::Ime(egui::ImeEvent::Commit(text)) if !text.is_empty() => {
                out.push(InputEvent::Text(text.clone()));
                return false;
            }
            _ => return false,
        };
        if code == RELEASE_KEY {
            return pressed;
        }
        let action = if pressed {
            if !self.down.contains(&code) {
                self.down.push(code);
            }
            Action::Press
        } else {
            self.down.retain(|c| *c != code);
            Action::Release
        };
        out.push(InputEvent::Key {
            key: code.into(),
            action,
        });
        false
    }

    /// Releases what this console pressed and tells the agent to release everything the stream
    /// holds (belt and braces: the agent's own list is the one that counts).
    pub fn release(&mut self, out: &mut Vec<InputEvent>) {
        out.extend(self.down.drain(..).rev().map(|c| InputEvent::Key {
            key: c.into(),
            action: Action::Release,
        }));
        out.push(InputEvent::ReleaseAll);
    }

    /// Whether any key is down.
    pub fn holding(&self) -> bool {
        !self.down.is_empty()
    }
}

/// A pointer button as the remote's.
pub fn button(b: egui::PointerButton) -> MouseButton {
    match b {
        egui::PointerButton::Primary => MouseButton::Left,
        egui::PointerButton::Secondary => MouseButton::Right,
        egui::PointerButton::Middle => MouseButton::Middle,
        egui::PointerButton::Extra1 => MouseButton::Back,
        egui::PointerButton::Extra2 => MouseButton::Forward,
    }
}

/// A wheel or touchpad movement as fine scroll units (positive: down / right on the remote; egui's
/// delta is how the content moves, the opposite).
pub fn scroll(unit: egui::MouseWheelUnit, delta: egui::Vec2) -> (i32, i32) {
    let per = SCROLL_UNITS_PER_NOTCH as f32;
    let k = match unit {
        egui::MouseWheelUnit::Point => per / POINTS_PER_NOTCH,
        egui::MouseWheelUnit::Line => per,
        egui::MouseWheelUnit::Page => per * NOTCHES_PER_PAGE,
    };
    ((-delta.x * k).round() as i32, (-delta.y * k).round() as i32)
}

/// The remote pixel under the pane point `p`, for a picture of `size` remote pixels drawn at
/// `origin` with `scale` points per pixel: floor, not round, so that pixel n covers [n, n+1) at any
/// scale, and clamped so that a drag leaving the pane stays on the display's edge.
pub fn to_remote(p: egui::Pos2, origin: egui::Pos2, scale: f32, size: egui::Vec2) -> (i32, i32) {
    let v = (p - origin) / scale;
    (
        (v.x.floor() as i32).clamp(0, size.x as i32 - 1),
        (v.y.floor() as i32).clamp(0, size.y as i32 - 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: egui::Key, pressed: bool) -> egui::Event {
        egui::Event::Key {
            key: k,
            physical_key: Some(k),
            pressed,
            repeat: false,
            modifiers: egui::Modifiers::default(),
        }
    }

    #[test]
    fn names_and_chords_parse_like_xdotool() {
        assert_eq!(
            parse_chord("ctrl+alt+t"),
            Ok(vec![Code::ControlLeft, Code::AltLeft, Code::KeyT])
        );
        assert_eq!(parse_chord("f5"), Ok(vec![Code::F5]));
        assert_eq!(parse_chord("Return"), Ok(vec![Code::Enter]));
        assert_eq!(parse_chord("super"), Ok(vec![Code::MetaLeft]));
        assert_eq!(
            parse_chord("ctrl+shift+T"),
            Ok(vec![Code::ControlLeft, Code::ShiftLeft, Code::KeyT])
        );
        assert_eq!(parse_chord("KeyA"), Ok(vec![Code::KeyA]));
        assert_eq!(parse_chord("numpadenter"), Ok(vec![Code::NumpadEnter]));
        assert_eq!(parse_chord("7"), Ok(vec![Code::Digit7]));
        assert_eq!(
            parse_chord("ctrl+alt+tt"),
            Err(KeyNameError::Unknown("tt".into()))
        );
        assert_eq!(
            parse_chord("ctrl+"),
            Err(KeyNameError::Empty("ctrl+".into()))
        );
        assert!(matches!(
            parse_chord(&["a"; 50].join("+")),
            Err(KeyNameError::TooMany(50))
        ));
        // Every W3C name parses, whatever its case.
        for c in Code::ALL {
            assert_eq!(parse_key(&c.name().to_lowercase()), Ok(*c));
        }
    }

    #[test]
    fn a_chord_presses_in_order_and_releases_in_reverse() {
        let ev = chord_events(&[Code::ControlLeft, Code::KeyT], true, true);
        let keys: Vec<_> = ev
            .iter()
            .map(|e| match e {
                InputEvent::Key { key, action } => (key.code(), *action),
                _ => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (Some(Code::ControlLeft), Action::Press),
                (Some(Code::KeyT), Action::Press),
                (Some(Code::KeyT), Action::Release),
                (Some(Code::ControlLeft), Action::Release),
            ]
        );
    }

    #[test]
    fn capture_forwards_modifiers_as_keys_and_right_ctrl_releases() {
        let mut c = Capture::default();
        let mut out = Vec::new();
        assert!(!c.key_event(&key(egui::Key::ControlLeft, true), &mut out));
        assert!(!c.key_event(&egui::Event::Copy, &mut out));
        assert!(!c.key_event(&egui::Event::Text("c".into()), &mut out));
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(c.holding());
        out.clear();
        assert!(c.key_event(&key(egui::Key::ControlRight, true), &mut out));
        assert!(out.is_empty(), "the release key never reaches the remote");
        c.release(&mut out);
        assert_eq!(
            out,
            vec![
                InputEvent::Key {
                    key: Code::KeyC.into(),
                    action: Action::Release
                },
                InputEvent::Key {
                    key: Code::ControlLeft.into(),
                    action: Action::Release
                },
                InputEvent::ReleaseAll,
            ]
        );
        assert!(!c.holding());
    }

    #[test]
    fn pane_points_map_to_the_remote_pixel_under_them_at_any_scale() {
        let (o, size) = (egui::pos2(100.0, 50.0), egui::vec2(1920.0, 1080.0));
        // Scaled down to 0.4: the point 0.39 points in is still pixel 0, 0.4 is pixel 1.
        assert_eq!(to_remote(egui::pos2(100.39, 50.0), o, 0.4, size), (0, 0));
        assert_eq!(to_remote(egui::pos2(100.4, 50.4), o, 0.4, size), (1, 1));
        // The last pixel, and beyond the picture (a drag off the pane) clamps to the edge.
        let end = egui::pos2(100.0 + 1919.5 * 0.4, 50.0 + 1079.5 * 0.4);
        assert_eq!(to_remote(end, o, 0.4, size), (1919, 1079));
        assert_eq!(
            to_remote(egui::pos2(5000.0, -20.0), o, 0.4, size),
            (1919, 0)
        );
        // 1:1 and magnified (a high-DPI console at 2 points per pixel).
        assert_eq!(to_remote(egui::pos2(350.0, 60.0), o, 1.0, size), (250, 10));
        assert_eq!(to_remote(egui::pos2(101.9, 51.9), o, 2.0, size), (0, 0));
        assert_eq!(to_remote(egui::pos2(102.0, 52.0), o, 2.0, size), (1, 1));
    }

    #[test]
    fn session_switching_shortcuts_wait_for_a_confirmation() {
        let mut s = Shortcuts::default();
        let index = |name: &str| SPECIAL.iter().position(|x| x.0 == name).unwrap();
        // Ctrl+Alt+Del goes at once: three presses, three releases.
        assert_eq!(s.pick(index("Ctrl+Alt+Del")).len(), 6);
        assert_eq!(s.pending(), None);
        // Ctrl+Alt+F2 waits; cancel sends nothing, confirm sends it.
        assert!(s.pick(index("Ctrl+Alt+F2")).is_empty());
        assert_eq!(s.pending(), Some("Ctrl+Alt+F2"));
        s.cancel();
        assert!(s.confirm().is_empty());
        assert!(s.pick(index("Ctrl+Alt+F2")).is_empty());
        let ev = s.confirm();
        assert_eq!(
            ev[2],
            InputEvent::Key {
                key: Code::F2.into(),
                action: Action::Press
            }
        );
        assert_eq!(s.pending(), None);
        // Every Ctrl+Alt+F1…F7 asks; nothing else does.
        for (name, _, ask) in SPECIAL {
            assert_eq!(*ask, name.starts_with("Ctrl+Alt+F"), "{name}");
        }
    }

    #[test]
    fn wheel_notches_and_touchpad_points_scroll_the_right_way() {
        assert_eq!(
            scroll(egui::MouseWheelUnit::Line, egui::vec2(0.0, 1.0)),
            (0, -120)
        );
        assert_eq!(
            scroll(egui::MouseWheelUnit::Point, egui::vec2(-20.0, 0.0)),
            (60, 0)
        );
    }
}
