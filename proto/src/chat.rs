//! In-session chat text: the limits both sides enforce and how text is made harmless to show.
//!
//! A chat line travels sealed on stream 0 ([`crate::msg::ConsoleToAgent::Chat`],
//! [`crate::msg::AgentToConsole::Chat`]) as plain text. The sender checks it with [`ChatText::new`];
//! the receiver checks it again, because the other side's word is never trusted, drops a line that
//! fails (the session goes on), and shows only [`ChatText::as_str`], in which no control character
//! or direction override survives.

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
    /// Checks `text` and renders its control characters harmless: C0 controls become their visible
    /// Unicode pictures (`␛` for escape, so no terminal sequence survives), other controls and the
    /// bidirectional overrides that could disguise text become `�`. Tabs become a space.
    pub fn new(text: &str) -> Result<ChatText, ChatError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ChatError::Empty);
        }
        let n = trimmed.chars().count();
        if n > MAX_CHAT_CHARS {
            return Err(ChatError::TooLong(n));
        }
        Ok(ChatText(trimmed.chars().map(harmless).collect()))
    }

    /// The text, safe to show.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn harmless(c: char) -> char {
    match c {
        '\t' => ' ',
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}',
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => '\u{fffd}',
        c if c.is_control() => '\u{fffd}',
        c => c,
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
                prop_assert!(!t.as_str().chars().any(char::is_control));
                prop_assert!(t.as_str().chars().count() <= MAX_CHAT_CHARS);
            }
        }
    }
}
