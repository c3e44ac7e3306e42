//! Physical keys: one table from the W3C `KeyboardEvent.code` name to the USB HID usage (the wire
//! number) and the Linux evdev code (what X11 and Wayland backends inject).
//!
//! # Flow
//! ```text
//! console: a physical key (egui / CLI name) -> Code -> KeyId (HID usage) -> InputEvent::Key
//! agent:   KeyId -> Code (unknown ids refused, session goes on) -> evdev code -> X keycode (+ 8)
//! ```
//! The wire carries the HID usage (page 7) rather than an enum index, so an id this build does not
//! know decodes fine and is refused with its number instead of ending the session, and so the numbers
//! mean the same to every backend (these keys came with protocol version 3, with separate press and
//! release, the back and forward buttons, smooth scrolling and `ReleaseAll`). Everything else — the enum, names, parsing, the evdev codes — is
//! generated from the one table below.

use serde::{Deserialize, Serialize};

macro_rules! keys {
    ($( $code:ident = $hid:literal, $evdev:literal; )*) => {
        /// A physical key, named as W3C `KeyboardEvent.code` names it (layout-independent: `KeyQ` is
        /// the key right of Tab whatever it prints).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $(
                #[doc = concat!("`", stringify!($code), "`")]
                $code,
            )*
        }

        impl Code {
            /// Every key in the table, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$code),*];

            /// The W3C `KeyboardEvent.code` name, e.g. `"ControlLeft"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code),)*
                }
            }

            /// The USB HID usage on the keyboard page (0x07): the number on the wire.
            pub fn hid(self) -> u16 {
                match self {
                    $(Code::$code => $hid,)*
                }
            }

            /// The Linux evdev code (`KEY_*` in `input-event-codes.h`). X servers using the evdev
            /// keycodes (Xorg, Xvfb, Xwayland) number the key `evdev + 8`.
            pub fn evdev(self) -> u16 {
                match self {
                    $(Code::$code => $evdev,)*
                }
            }

            /// The key with this HID usage, if the table has one.
            pub fn from_hid(hid: u16) -> Option<Code> {
                match hid {
                    $($hid => Some(Code::$code),)*
                    _ => None,
                }
            }
        }
    };
}

keys! {
    KeyA = 0x04, 30; KeyB = 0x05, 48; KeyC = 0x06, 46; KeyD = 0x07, 32; KeyE = 0x08, 18;
    KeyF = 0x09, 33; KeyG = 0x0a, 34; KeyH = 0x0b, 35; KeyI = 0x0c, 23; KeyJ = 0x0d, 36;
    KeyK = 0x0e, 37; KeyL = 0x0f, 38; KeyM = 0x10, 50; KeyN = 0x11, 49; KeyO = 0x12, 24;
    KeyP = 0x13, 25; KeyQ = 0x14, 16; KeyR = 0x15, 19; KeyS = 0x16, 31; KeyT = 0x17, 20;
    KeyU = 0x18, 22; KeyV = 0x19, 47; KeyW = 0x1a, 17; KeyX = 0x1b, 45; KeyY = 0x1c, 21;
    KeyZ = 0x1d, 44;
    Digit1 = 0x1e, 2; Digit2 = 0x1f, 3; Digit3 = 0x20, 4; Digit4 = 0x21, 5; Digit5 = 0x22, 6;
    Digit6 = 0x23, 7; Digit7 = 0x24, 8; Digit8 = 0x25, 9; Digit9 = 0x26, 10; Digit0 = 0x27, 11;
    Enter = 0x28, 28; Escape = 0x29, 1; Backspace = 0x2a, 14; Tab = 0x2b, 15; Space = 0x2c, 57;
    Minus = 0x2d, 12; Equal = 0x2e, 13; BracketLeft = 0x2f, 26; BracketRight = 0x30, 27;
    Backslash = 0x31, 43; Semicolon = 0x33, 39; Quote = 0x34, 40; Backquote = 0x35, 41;
    Comma = 0x36, 51; Period = 0x37, 52; Slash = 0x38, 53; CapsLock = 0x39, 58;
    F1 = 0x3a, 59; F2 = 0x3b, 60; F3 = 0x3c, 61; F4 = 0x3d, 62; F5 = 0x3e, 63; F6 = 0x3f, 64;
    F7 = 0x40, 65; F8 = 0x41, 66; F9 = 0x42, 67; F10 = 0x43, 68; F11 = 0x44, 87; F12 = 0x45, 88;
    PrintScreen = 0x46, 99; ScrollLock = 0x47, 70; Pause = 0x48, 119;
    Insert = 0x49, 110; Home = 0x4a, 102; PageUp = 0x4b, 104; Delete = 0x4c, 111; End = 0x4d, 107;
    PageDown = 0x4e, 109; ArrowRight = 0x4f, 106; ArrowLeft = 0x50, 105; ArrowDown = 0x51, 108;
    ArrowUp = 0x52, 103;
    NumLock = 0x53, 69; NumpadDivide = 0x54, 98; NumpadMultiply = 0x55, 55;
    NumpadSubtract = 0x56, 74; NumpadAdd = 0x57, 78; NumpadEnter = 0x58, 96;
    Numpad1 = 0x59, 79; Numpad2 = 0x5a, 80; Numpad3 = 0x5b, 81; Numpad4 = 0x5c, 75;
    Numpad5 = 0x5d, 76; Numpad6 = 0x5e, 77; Numpad7 = 0x5f, 71; Numpad8 = 0x60, 72;
    Numpad9 = 0x61, 73; Numpad0 = 0x62, 82; NumpadDecimal = 0x63, 83;
    IntlBackslash = 0x64, 86; ContextMenu = 0x65, 127; Power = 0x66, 116; NumpadEqual = 0x67, 117;
    F13 = 0x68, 183; F14 = 0x69, 184; F15 = 0x6a, 185; F16 = 0x6b, 186; F17 = 0x6c, 187;
    F18 = 0x6d, 188; F19 = 0x6e, 189; F20 = 0x6f, 190; F21 = 0x70, 191; F22 = 0x71, 192;
    F23 = 0x72, 193; F24 = 0x73, 194;
    NumpadComma = 0x85, 121; IntlRo = 0x87, 89; KanaMode = 0x88, 93; IntlYen = 0x89, 124;
    Convert = 0x8a, 92; NonConvert = 0x8b, 94; Lang1 = 0x90, 122; Lang2 = 0x91, 123;
    ControlLeft = 0xe0, 29; ShiftLeft = 0xe1, 42; AltLeft = 0xe2, 56; MetaLeft = 0xe3, 125;
    ControlRight = 0xe4, 97; ShiftRight = 0xe5, 54; AltRight = 0xe6, 100; MetaRight = 0xe7, 126;
}

impl Code {
    /// Whether this is a modifier (Shift, Control, Alt, Meta on either side).
    pub fn is_modifier(self) -> bool {
        (0xe0..=0xe7).contains(&self.hid())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a W3C `KeyboardEvent.code` in the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key {0:?} (W3C KeyboardEvent.code names, e.g. KeyA, ControlLeft, F5)")]
pub struct UnknownKey(pub String);

impl std::str::FromStr for Code {
    type Err = UnknownKey;

    /// Exact W3C names, ASCII case ignored (`controlleft` is `ControlLeft`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownKey(s.to_string()))
    }
}

/// A physical key on the wire: its USB HID usage. Any number decodes; [`KeyId::code`] says whether
/// this build knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct KeyId(pub u16);

impl KeyId {
    /// The key, when the table has this usage.
    pub fn code(self) -> Option<Code> {
        Code::from_hid(self.0)
    }
}

impl From<Code> for KeyId {
    fn from(c: Code) -> Self {
        KeyId(c.hid())
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code() {
            Some(c) => f.write_str(c.name()),
            None => write!(f, "unknown key 0x{:02x}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn names_hid_and_evdev_are_each_unique() {
        let mut names = HashSet::new();
        let mut hids = HashSet::new();
        let mut evdevs = HashSet::new();
        for c in Code::ALL {
            assert!(names.insert(c.name().to_ascii_lowercase()), "{c}");
            assert!(hids.insert(c.hid()), "{c}");
            assert!(evdevs.insert(c.evdev()), "{c}");
            // X keycodes are 8..=255.
            assert!(c.evdev() + 8 <= 255, "{c}");
        }
    }

    #[test]
    fn a_105_key_keyboard_plus_f13_to_f24_is_covered() {
        // 26 letters, 10 digits, 24 function keys, 17 numpad keys, 8 modifiers, and the rest.
        let count = |f: &dyn Fn(&str) -> bool| Code::ALL.iter().filter(|c| f(c.name())).count();
        assert_eq!(count(&|n| n.starts_with("Key")), 26);
        assert_eq!(count(&|n| n.starts_with("Digit")), 10);
        assert_eq!(
            count(&|n| n.starts_with('F') && n[1..].parse::<u8>().is_ok()),
            24
        );
        assert_eq!(count(&|n| n.starts_with("Numpad")), 18);
        assert_eq!(Code::ALL.iter().filter(|c| c.is_modifier()).count(), 8);
        for n in [
            "Backquote",
            "Minus",
            "Equal",
            "IntlBackslash",
            "PrintScreen",
            "ScrollLock",
            "Pause",
            "ContextMenu",
            "CapsLock",
            "NumLock",
            "Insert",
            "Home",
            "PageUp",
            "PageDown",
            "End",
            "Delete",
        ] {
            assert!(n.parse::<Code>().is_ok(), "{n}");
        }
        assert!(Code::ALL.len() >= 105, "{}", Code::ALL.len());
    }

    #[test]
    fn spot_checks_against_input_event_codes_h() {
        assert_eq!(Code::KeyA.evdev(), 30);
        assert_eq!(Code::ControlLeft.evdev(), 29);
        assert_eq!(Code::F12.evdev(), 88);
        assert_eq!(Code::NumpadEnter.evdev(), 96);
        assert_eq!(Code::MetaLeft.evdev(), 125);
        assert_eq!(Code::IntlBackslash.evdev(), 86);
        assert_eq!(Code::F24.evdev(), 194);
    }

    #[test]
    fn an_unknown_name_or_usage_is_an_error() {
        assert_eq!("Ctrl".parse::<Code>(), Err(UnknownKey("Ctrl".to_string())));
        assert_eq!(KeyId(0x01).code(), None);
        assert_eq!(KeyId(0xffff).to_string(), "unknown key 0xffff");
    }

    /// Exhaustive rather than sampled: the table is small.
    #[test]
    fn every_name_and_hid_round_trips() {
        for &c in Code::ALL {
            assert_eq!(c.name().parse::<Code>(), Ok(c));
            assert_eq!(c.name().to_ascii_uppercase().parse::<Code>(), Ok(c));
            assert_eq!(KeyId::from(c).code(), Some(c));
            let bytes = crate::codec::to_body(&KeyId::from(c)).unwrap();
            assert_eq!(
                crate::codec::from_body::<KeyId>(&bytes).unwrap(),
                KeyId::from(c)
            );
        }
    }

    proptest! {
        #[test]
        fn any_usage_decodes_and_names_itself(n: u16) {
            let id = KeyId(n);
            prop_assert_eq!(id.code().map(Code::hid), id.code().map(|_| n));
            prop_assert!(!id.to_string().is_empty());
        }
    }
}
