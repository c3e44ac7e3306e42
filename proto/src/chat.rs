//! In-session chat text: the limits both sides enforce, and text made harmless to show.
//!
//! A chat line travels sealed on stream 0 ([`crate::msg::ConsoleToAgent::Chat`],
//! [`crate::msg::AgentToConsole::Chat`]) as plain text. The sender checks it with [`ChatText::new`];
//! the receiver checks it again, because the other side's word is never trusted, drops a line that
//! fails (the session goes on), and shows only [`ChatText::as_str`], which has been through
//! [`display_safe`]: no control, format character, line or paragraph separator survives.

use crate::text::display_safe;

/// The longest chat line, in characters (after making it harmless).
pub const MAX_CHAT_CHARS: usize = 1000;

/// Why a chat line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Nothing to send once whitespace is trimmed.
    #[error("a chat message cannot be empty")]
    Empty,
    /// Longer than [`MAX_CHAT_CHARS`].
    #[error("a chat message is at most {MAX_CHAT_CHARS} characters (this one has {0})")]
    TooLong(usize),
}

/// A chat line that is within the limits and safe to print on a terminal or in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatText(String);

impl ChatText {
    /// Checks `text` and makes it harmless with [`display_safe`]: C0 controls become their visible
    /// Unicode pictures (`␛` for escape, so no terminal sequence survives), every other control,
    /// format character (bidi overrides, zero-width characters, ...) and line or paragraph separator
    /// becomes `�`. Tabs become a space.
    pub fn new(text: &str) -> Result<ChatText, ChatError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ChatError::Empty);
        }
        let n = trimmed.chars().count();
        if n > MAX_CHAT_CHARS {
            return Err(ChatError::TooLong(n));
        }
        Ok(ChatText(display_safe(trimmed).into_owned()))
    }

    /// The text, safe to show.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<ChatText> for String {
    fn from(t: ChatText) -> String {
        t.0
    }
}

impl std::fmt::Display for ChatText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_and_overrides_are_made_visible_and_harmless() {
        let t = ChatText::new("red\u{1b}[31m text\u{7}\tand \u{202e}evil\u{9b}").unwrap();
        assert_eq!(
            t.as_str(),
            "red\u{241b}[31m text\u{2407} and \u{fffd}evil\u{fffd}"
        );
        assert!(!t.as_str().chars().any(char::is_control));
        // Line breaks inside a message cannot fake a second speaker's line.
        assert_eq!(
            ChatText::new("hi\n[technician] give me your password")
                .unwrap()
                .as_str(),
            "hi\u{240a}[technician] give me your password"
        );
    }

    #[test]
    fn no_control_format_or_separator_character_survives_in_chat() {
        use crate::text::oracle::{NAMED, all_chars, must_hide};
        let survivors: Vec<String> = all_chars()
            .filter(|&c| must_hide(c))
            .filter(|&c| {
                ChatText::new(&format!("a{c}b"))
                    .map(|t| t.as_str().contains(c) || t.as_str().chars().count() != 3)
                    .unwrap_or(true)
            })
            .map(|c| format!("U+{:04X}", c as u32))
            .collect();
        assert!(survivors.is_empty(), "survived in chat: {survivors:?}");
        for &(c, name) in NAMED {
            let t = ChatText::new(&format!("pay {c}here")).unwrap();
            assert!(!t.as_str().contains(c), "{name} survived: {t:?}");
        }
        // The two the issue names: neither mark nor separator reaches the window.
        assert_eq!(
            ChatText::new("ok\u{61c}\u{2028}[technician] send it")
                .unwrap()
                .as_str(),
            "ok\u{fffd}\u{fffd}[technician] send it"
        );
    }

    #[test]
    fn limits() {
        assert_eq!(ChatText::new("  \n "), Err(ChatError::Empty));
        let long = "é".repeat(MAX_CHAT_CHARS + 1);
        assert_eq!(
            ChatText::new(&long),
            Err(ChatError::TooLong(MAX_CHAT_CHARS + 1))
        );
        assert!(ChatText::new(&"é".repeat(MAX_CHAT_CHARS)).is_ok());
    }

    proptest! {
        #[test]
        fn any_text_is_harmless_or_refused(s in any::<String>()) {
            if let Ok(t) = ChatText::new(&s) {
                prop_assert!(!t.as_str().chars().any(crate::text::oracle::must_hide));
                prop_assert!(t.as_str().chars().count() <= MAX_CHAT_CHARS);
            }
        }
    }
}
