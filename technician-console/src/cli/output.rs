//! What the command line prints that is not a table: JSON (always serde's, never put together by
//! hand) and the one-line answers of `invitations` and `displays`.

use crate::ConsoleError;
use serde::Serialize;
use tether_proto::msg::{Invitee, OpenInvitation};
use tether_proto::screen::DisplayInfo;

/// `value` as pretty JSON; a value serde cannot write is an output error.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, ConsoleError> {
    serde_json::to_string_pretty(value).map_err(|e| ConsoleError::Output(e.to_string()))
}

/// `value` as pretty JSON, or, should serde fail, `{"error": "..."}` with the reason: either way
/// valid JSON, whatever the reason says.
pub fn json_or_error<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| error_json(&e.to_string()))
}

/// `{"error": message}`, quoted and escaped by serde.
pub fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// `clipboard get --json`: `{"selection": "clipboard", "text": ...}`, the text exact (serde escapes it).
pub fn clipboard_json(selection: tether_proto::clipboard::Selection, text: &str) -> String {
    json_or_error(&serde_json::json!({ "selection": selection.name(), "text": text }))
}

/// `clipboard set --json`: which selection, and how many characters and bytes it holds now.
pub fn clipboard_set_json(
    selection: tether_proto::clipboard::Selection,
    text: &str,
    bytes: u32,
) -> String {
    json_or_error(&serde_json::json!({
        "selection": selection.name(),
        "set": true,
        "chars": text.chars().count(),
        "bytes": bytes,
    }))
}

/// One waiting invitation, as `tether-console invitations` prints it.
pub fn invitation_line(i: &OpenInvitation) -> String {
    format!(
        "{} invites {}{}; the code expires in {} min. Ask {} for it.",
        i.by,
        match &i.invitee {
            Invitee::Technician(_) => "you".to_string(),
            Invitee::Tier(t) => format!("the {t} queue"),
        },
        if i.handover {
            " to take over"
        } else {
            " to join"
        },
        i.expires_in_secs.div_ceil(60),
        i.by
    )
}

/// One remote display, as `tether-console displays` prints it.
pub fn display_line(d: &DisplayInfo) -> String {
    format!(
        "display {}: {} {}x{} at ({}, {}){}",
        d.index,
        tether_proto::text::display_safe(&d.name),
        d.width,
        d.height,
        d.x,
        d.y,
        if d.primary { ", primary" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_with_quotes_and_backslashes_is_valid_json() {
        let message = r#"bad "value" at C:\path, then a newline
and a tab	here"#;
        let text = error_json(message);
        let back: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back["error"], message);
        // What the hand-built `{"error":"{e}"}` of old produced for the same message.
        let by_hand = format!("{{\"error\":\"{message}\"}}");
        assert!(serde_json::from_str::<serde_json::Value>(&by_hand).is_err());
    }

    #[test]
    fn json_or_error_writes_the_value_when_it_can() {
        let text = json_or_error(&vec!["a\"b"]);
        let back: Vec<String> = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back, ["a\"b"]);
    }
}
