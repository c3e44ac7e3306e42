//! The user's clipboard from the console: [`get`] and [`set`] (each one request, needing the
//! `clipboard` scope), and the viewer's focus sync ([`FocusSync`]) with the technician's own
//! clipboard ([`LocalClipboard`], X11 through `tether-x11-selection`).
//!
//! # The viewer's rule: copy on one side, paste on the other
//! - The technician **enters** the viewer (its window gains focus) to paste there: their own
//!   clipboard goes to the user's, so Ctrl+V on the remote pastes what they copied locally.
//! - The technician **leaves** the viewer (it loses focus) to paste at home: the user's clipboard
//!   comes back to theirs, so what was copied on the remote pastes locally.
//!
//! Only a change crosses: text that is the one both sides last agreed on is not sent again, so
//! focusing the viewer back and forth never rewrites a clipboard (which would drop the pictures or
//! rich text a program put there beside the plain text), and an empty or unreadable clipboard never
//! wipes the other side's. Nothing happens while `clipboard` is not granted.

use tether_proto::Scope;
use tether_proto::clipboard::{self, MAX_CLIPBOARD_BYTES, Selection};
use tether_proto::msg::{Request, Response};
use tether_x11_selection::{SelectionError, X11Selections};

use crate::{ConsoleError, Session};

/// The text on the user's `selection` (empty when nothing is on it). Needs `clipboard`.
pub async fn get(session: &mut Session, selection: Selection) -> Result<String, ConsoleError> {
    match session
        .request(&Request::ClipboardGet { selection })
        .await?
    {
        Response::ClipboardText { text, .. } => {
            // Checked here too: the agent's word is not trusted.
            clipboard::check_text(&text)?;
            Ok(text)
        }
        other => Err(ConsoleError::Protocol(format!(
            "unexpected answer {other:?}"
        ))),
    }
}

/// Puts `text` on the user's `selection`, exactly as given; returns how many bytes it holds now.
/// Text over [`MAX_CLIPBOARD_BYTES`] is refused before anything is sent. Needs `clipboard`.
pub async fn set(
    session: &mut Session,
    selection: Selection,
    text: &str,
) -> Result<u32, ConsoleError> {
    clipboard::check_text(text)?;
    let request = Request::ClipboardSet {
        selection,
        text: text.to_string(),
    };
    match session.request(&request).await? {
        Response::ClipboardStored { bytes, .. } => Ok(bytes),
        other => Err(ConsoleError::Protocol(format!(
            "unexpected answer {other:?}"
        ))),
    }
}

/// The technician's own clipboard, as the viewer syncs it.
pub trait LocalClipboard: Send {
    /// The text on it; `None` when it is empty, not text, or unreadable.
    fn get(&mut self) -> Option<String>;
    /// Puts `text` on it.
    fn set(&mut self, text: String) -> Result<(), String>;
}

/// The technician's X11 clipboard (the viewer is an X11 window, so its display has one).
#[derive(Debug, Default)]
pub struct X11LocalClipboard(X11Selections);

impl X11LocalClipboard {
    /// The clipboard of `$DISPLAY`.
    pub fn new() -> Self {
        X11LocalClipboard(X11Selections::new(None))
    }
}

impl LocalClipboard for X11LocalClipboard {
    fn get(&mut self) -> Option<String> {
        match self.0.get(Selection::Clipboard, MAX_CLIPBOARD_BYTES) {
            Ok(t) if !t.is_empty() => Some(t),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "the local clipboard is not readable as text");
                None
            }
        }
    }

    fn set(&mut self, text: String) -> Result<(), String> {
        self.0
            .set(Selection::Clipboard, text)
            .map_err(|e: SelectionError| e.to_string())
    }
}

/// The viewer's sync rule (see the module docs), without I/O: it is told what each side holds and
/// says what to copy where.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FocusSync {
    /// The text both clipboards last held after a sync.
    agreed: Option<String>,
}

impl FocusSync {
    /// The viewer gained focus and the technician's clipboard holds `local`: the text to put on
    /// the user's clipboard, if any.
    pub fn entered(&mut self, local: Option<String>) -> Option<String> {
        let text = local.filter(|t| !t.is_empty())?;
        if self.agreed.as_ref() == Some(&text) || clipboard::check_text(&text).is_err() {
            return None;
        }
        self.agreed = Some(text.clone());
        Some(text)
    }

    /// The viewer lost focus and the user's clipboard holds `remote`: the text to put on the
    /// technician's clipboard, if any.
    pub fn left(&mut self, remote: Option<String>) -> Option<String> {
        let text = remote.filter(|t| !t.is_empty())?;
        if self.agreed.as_ref() == Some(&text) {
            return None;
        }
        self.agreed = Some(text.clone());
        Some(text)
    }
}

/// Carries out one focus change for a session: reads and writes the clipboards by [`FocusSync`]'s
/// rule, when `clipboard` is granted now. Returns what happened, in words for the status line
/// (`None`: nothing crossed).
pub async fn sync_focus(
    session: &mut Session,
    rule: &mut FocusSync,
    local: &mut dyn LocalClipboard,
    focused: bool,
) -> Option<String> {
    if !session.grant().borrow().contains(Scope::Clipboard) {
        return None;
    }
    if focused {
        let text = rule.entered(local.get())?;
        match set(session, Selection::Clipboard, &text).await {
            Ok(_) => Some(format!(
                "clipboard: sent {} characters to the user",
                text.chars().count()
            )),
            Err(e) => Some(format!("clipboard not sent: {e}")),
        }
    } else {
        let remote = match get(session, Selection::Clipboard).await {
            Ok(t) => Some(t),
            Err(e) => return Some(format!("clipboard not fetched: {e}")),
        };
        let text = rule.left(remote)?;
        let chars = text.chars().count();
        match local.set(text) {
            Ok(()) => Some(format!(
                "clipboard: copied {chars} characters from the user"
            )),
            Err(e) => Some(format!("clipboard not copied here: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_here_paste_there_and_back() {
        let mut rule = FocusSync::default();
        // The technician copied a command before opening the viewer: it goes over on entering.
        assert_eq!(rule.entered(Some("ls -la".into())), Some("ls -la".into()));
        // Leaving while the user's clipboard still holds it: nothing comes back.
        assert_eq!(rule.left(Some("ls -la".into())), None);
        // The user copied an error message on their side: leaving brings it here.
        assert_eq!(
            rule.left(Some("Error 0x80070005".into())),
            Some("Error 0x80070005".into())
        );
        // Entering again with that same text here: not sent back.
        assert_eq!(rule.entered(Some("Error 0x80070005".into())), None);
        // The technician copies something new locally: it goes over.
        assert_eq!(
            rule.entered(Some("naïve\tcafé\n日本".into())),
            Some("naïve\tcafé\n日本".into())
        );
    }

    #[test]
    fn nothing_wipes_the_other_side() {
        let mut rule = FocusSync::default();
        assert_eq!(rule.entered(None), None);
        assert_eq!(rule.entered(Some(String::new())), None);
        assert_eq!(rule.left(None), None);
        assert_eq!(rule.left(Some(String::new())), None);
        // Over the limit: not sent (the agent would refuse it anyway).
        let big = "x".repeat(MAX_CLIPBOARD_BYTES + 1);
        assert_eq!(rule.entered(Some(big)), None);
        assert_eq!(rule, FocusSync::default());
    }
}
