//! Clipboard sharing: which selection, how much text, and what of it is shown to a person.
//!
//! # Flow
//! Each transfer is one request stream (`StreamOpen{n}`, then sealed [`crate::msg::Request`] →
//! [`crate::msg::Response`]), and needs [`crate::Scope::Clipboard`], which `control` never implies:
//! - `ClipboardGet{selection}` → `ClipboardText{selection, text}`: the text on the user's clipboard
//!   (empty when nothing is on it);
//! - `ClipboardSet{selection, text}` → `ClipboardStored{selection, bytes}`: the user's clipboard
//!   now holds `text`.
//!
//! Refused (`Refused{scope: Clipboard}`) outside the grant; `Failed{message}` when the user's desktop
//! cannot do it (no clipboard, text too large, not text).
//!
//! # Text
//! Clipboard text is data someone will paste: it travels and is stored exactly as it was copied,
//! tabs, line breaks and every other character included, so that code or a command pastes as it was
//! written. It is checked against [`MAX_CLIPBOARD_BYTES`] on both ends ([`check_text`]): the sender
//! refuses before anything is sent, the receiver refuses again, because the other side's word is never
//! trusted. Whatever of it is *shown* to a person (the user's "the technician put … on your clipboard",
//! the console's terminal) goes through [`crate::text::display_safe`] ([`preview`]), the rule chat
//! lines follow too.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::text::display_safe;

/// The most clipboard text one transfer carries, in bytes of UTF-8 (1 MiB): a long log or a
/// config file, and well below the 4 MiB frame ([`crate::codec::MAX_FRAME_LEN`]) that carries it.
pub const MAX_CLIPBOARD_BYTES: usize = 1024 * 1024;

/// How many characters of clipboard text a notice shows the user.
pub const PREVIEW_CHARS: usize = 60;

/// Which clipboard: the one Copy and Paste use, or X11's primary selection (what is highlighted,
/// pasted with the middle button).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Selection {
    /// The clipboard of Copy and Paste (`CLIPBOARD`).
    #[default]
    Clipboard,
    /// The primary selection (`PRIMARY`): the text last highlighted.
    Primary,
}

impl Selection {
    /// Its name on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Selection::Clipboard => "clipboard",
            Selection::Primary => "primary",
        }
    }

    /// In words for the user.
    pub fn words(self) -> &'static str {
        match self {
            Selection::Clipboard => "your clipboard",
            Selection::Primary => "your highlighted text (primary selection)",
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why clipboard text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipboardError {
    /// More than [`MAX_CLIPBOARD_BYTES`] of UTF-8.
    #[error(
        "the clipboard text is {0} bytes, more than the {MAX_CLIPBOARD_BYTES}-byte (1 MiB) limit; \
         nothing was copied"
    )]
    TooLarge(usize),
}

/// Checks clipboard text against [`MAX_CLIPBOARD_BYTES`]. The text itself is kept as it is.
pub fn check_text(text: &str) -> Result<(), ClipboardError> {
    if text.len() > MAX_CLIPBOARD_BYTES {
        return Err(ClipboardError::TooLarge(text.len()));
    }
    Ok(())
}

/// What a notice shows of clipboard text: its first [`PREVIEW_CHARS`] characters on one line,
/// through [`display_safe`] (a line break shows as `␊`, an escape as `␛`), with `…` when cut.
pub fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    let mut out = display_safe(&head).into_owned();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_limit_is_on_bytes_of_utf8() {
        assert_eq!(check_text(&"a".repeat(MAX_CLIPBOARD_BYTES)), Ok(()));
        assert_eq!(
            check_text(&"a".repeat(MAX_CLIPBOARD_BYTES + 1)),
            Err(ClipboardError::TooLarge(MAX_CLIPBOARD_BYTES + 1))
        );
        // Two bytes a character: half as many characters fit.
        let e = "é".repeat(MAX_CLIPBOARD_BYTES / 2 + 1);
        assert_eq!(check_text(&e), Err(ClipboardError::TooLarge(e.len())));
        let msg = ClipboardError::TooLarge(2_000_000).to_string();
        assert!(msg.contains("1 MiB") && msg.contains("2000000"), "{msg}");
    }

    #[test]
    fn a_preview_is_one_safe_line() {
        assert_eq!(preview("naïve\tcafé\n日本"), "naïve café␊日本");
        assert_eq!(preview("\u{1b}[2J\u{202e}x"), "␛[2J\u{fffd}x");
        let long = "ab".repeat(PREVIEW_CHARS);
        let p = preview(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS + 1);
        assert!(p.ends_with('…'));
        assert_eq!(preview(""), "");
    }

    #[test]
    fn both_requests_need_the_clipboard_scope_and_nothing_else() {
        use crate::Scope;
        use crate::msg::Request;
        let get = Request::ClipboardGet {
            selection: Selection::Primary,
        };
        let set = Request::ClipboardSet {
            selection: Selection::Clipboard,
            text: "x".into(),
        };
        assert_eq!(get.scope(), Scope::Clipboard);
        assert_eq!(set.scope(), Scope::Clipboard);
        assert_eq!(Selection::default(), Selection::Clipboard);
    }

    proptest! {
        #[test]
        fn any_preview_is_harmless_and_short(s in any::<String>()) {
            let p = preview(&s);
            prop_assert!(!p.chars().any(crate::text::oracle::must_hide));
            prop_assert!(p.chars().count() <= PREVIEW_CHARS + 1);
        }
    }
}
