//! Session records: what the relay keeps about each support session, and the technician's questions
//! and notes about them.
//!
//! # What a record holds, and who writes it
//! ```text
//! relay (at claim)          id, org, technician, reason the user gave (`share --reason`), start time
//! relay (agent's reports)   scopes granted (SessionReport::Consent), end reason
//! relay (session end)       duration, end reason if the agent did not report one
//! console (after requests)  probes run with verdicts, inventory taken (digest, time, host name)
//! technician (CLI)          ticket, device, notes (problem, cause, fix), resolution + closed
//! ```
//! The relay only ever sees ciphertext of a session, so the facts about what ran inside it are posted
//! by the technician's console over its own authenticated connection, like a fleet query.
//!
//! # Message flow (`Hello{Console}`, then one `ConsoleToRelay::Records`)
//! ```text
//! console                                          relay
//!   |-- ConsoleToRelay::Records{token, query} -------->|  the token decides org and role
//!   |<------------------------ RecordReply::... -------|  List | Record | Error
//! ```
//! Every record belongs to the org of the technician who claimed the session; nobody reads or writes
//! another org's records. Any role may read; writing (notes, ticket, close, facts) needs the
//! `technician` or `admin` role, and posting probe or inventory facts needs to have been in the session.
//!
//! Free text (reason, ticket, notes) is limited in length and has control characters made harmless by
//! [`clean_text`], which every side applies: the agent before sending, the relay before storing, the
//! console before printing.

use serde::{Deserialize, Serialize};

use crate::ScopeSet;
use crate::diag::Verdict;
use crate::text::{display_safe, display_safe_multiline};

/// Longest reason a user may give with `tether-agent share --reason`, in characters.
pub const MAX_REASON_CHARS: usize = 200;
/// Longest ticket reference or device name, in characters.
pub const MAX_LABEL_CHARS: usize = 128;
/// Longest note field (problem, cause, fix) or resolution, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;
/// Longest search text, in characters.
pub const MAX_SEARCH_CHARS: usize = 200;
/// Most probe results one post may carry (a health check runs about 16).
pub const MAX_PROBES_PER_POST: usize = 64;
/// Most records one list or search returns.
pub const MAX_LIST: u32 = 500;

/// Makes user-supplied text harmless to store and print with the one rule of [`crate::text`]: C0
/// controls (escape sequences, carriage returns, NUL, ...) become their visible pictures, every other
/// control, format character (bidi overrides, zero-width characters, ...) and line or paragraph
/// separator becomes `�` — except `\n` and `\t` when `multiline` — and the text is trimmed. Length
/// is *not* checked here; see [`check_text`].
pub fn clean_text(s: &str, multiline: bool) -> String {
    // Trim first, so a trailing line break goes rather than showing as `␊`.
    let s = s.trim();
    if multiline {
        display_safe_multiline(s).into_owned()
    } else {
        display_safe(s).into_owned()
    }
}

/// Cleans `s` ([`clean_text`]) and checks it is at most `max` characters; `what` names the field in
/// the error.
pub fn check_text(what: &str, s: &str, max: usize, multiline: bool) -> Result<String, RecordError> {
    let n = s.chars().count();
    if n > max {
        return Err(RecordError::new(
            RecordErrorKind::Invalid,
            format!("{what} is {n} characters long; the limit is {max}"),
        ));
    }
    Ok(clean_text(s, multiline))
}

/// Cleans `s` and cuts it to `max` characters (for text from a peer that should have done so already).
pub fn truncate_text(s: &str, max: usize, multiline: bool) -> String {
    clean_text(&s.chars().take(max).collect::<String>(), multiline)
}

/// A technician's question about, or change to, their org's session records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RecordQuery {
    /// The newest records, newest first.
    List {
        /// At most this many ([`MAX_LIST`] at most).
        limit: u32,
    },
    /// One record.
    Show {
        /// Record id.
        id: u64,
    },
    /// Records matching words in reason, ticket, notes and resolution, and/or a device and/or a
    /// technician; newest first.
    Search {
        /// Words that must all appear (empty: any).
        text: String,
        /// Device name (exact, case-insensitive).
        device: Option<String>,
        /// Technician name (exact, case-insensitive).
        technician: Option<String>,
        /// At most this many.
        limit: u32,
    },
    /// Set the notes, ticket or device of an open record; fields left `None` keep their value.
    Note {
        /// Record id.
        id: u64,
        /// The changes.
        note: RecordNote,
    },
    /// Close a record with a resolution.
    Close {
        /// Record id.
        id: u64,
        /// What resolved it.
        resolution: String,
    },
    /// Facts the console learnt in the session: probes run, inventory taken.
    Facts {
        /// Record id.
        id: u64,
        /// The facts.
        facts: SessionFacts,
    },
}

impl RecordQuery {
    /// Whether this query changes a record (needs the technician or admin role).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            RecordQuery::Note { .. } | RecordQuery::Close { .. } | RecordQuery::Facts { .. }
        )
    }
}

/// Changes to a record's notes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RecordNote {
    /// Ticket reference in the helpdesk's system.
    pub ticket: Option<String>,
    /// The device (host name) the session was about.
    pub device: Option<String>,
    /// What the user saw.
    pub problem: Option<String>,
    /// Why it happened.
    pub cause: Option<String>,
    /// What fixed it.
    pub fix: Option<String>,
}

impl RecordNote {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        self == &RecordNote::default()
    }
}

/// What the console reports after a request inside the session succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SessionFacts {
    /// Probes ran (one, or a whole health check).
    Probes(Vec<ProbeRun>),
    /// The inventory was taken. Only a reference is kept, never the data.
    Inventory(InventoryRef),
    /// A file went to or came from the user's machine (only the console posts names).
    File(FileMoved),
}

/// Which way a file went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum FileDirection {
    /// The technician sent it to the user's machine.
    Push,
    /// The technician fetched it from the user's machine.
    Pull,
}

impl FileDirection {
    /// Lower-case name, as the record shows it.
    pub fn name(self) -> &'static str {
        match self {
            FileDirection::Push => "push",
            FileDirection::Pull => "pull",
        }
    }
}

/// One file transferred in a session, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FileMoved {
    /// Push or pull.
    pub direction: FileDirection,
    /// The path on the user's machine: where a pushed file landed, or the pulled file's path.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex, as both ends verified it.
    pub sha256: String,
    /// When the console saw it complete (Unix seconds; the relay uses its own clock when storing).
    pub at_unix: u64,
}

/// One probe run in a session, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ProbeRun {
    /// The probe with its parameters, as `tether-console diag` writes it (`tcp-connect host=.. port=..`).
    pub probe: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// The verdict's one-line reason.
    pub reason: String,
    /// When the console received it (Unix seconds; the relay uses its own clock when storing).
    pub at_unix: u64,
}

/// A reference to an inventory taken in a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct InventoryRef {
    /// [`crate::inventory::Inventory::digest`].
    pub digest: String,
    /// When the agent collected it (Unix seconds).
    pub collected_unix: u64,
    /// The host name it reports; the record's device if none was set.
    pub hostname: String,
    /// Number of packages in it.
    pub packages: u32,
}

/// Open or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RecordState {
    /// Still being worked on.
    Open,
    /// Closed with a resolution; no more changes.
    Closed,
}

impl RecordState {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            RecordState::Open => "open",
            RecordState::Closed => "closed",
        }
    }
}

/// A record in a list or search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RecordSummary {
    /// Record id.
    pub id: u64,
    /// When the session started (Unix seconds).
    pub started_unix: u64,
    /// Ticket reference.
    pub ticket: Option<String>,
    /// Device.
    pub device: Option<String>,
    /// The user's reason.
    pub reason: Option<String>,
    /// Technicians involved, in the order they joined.
    pub technicians: Vec<String>,
    /// Open or closed.
    pub state: RecordState,
    /// The resolution, once closed.
    pub resolution: Option<String>,
}

/// A whole record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SessionRecord {
    /// The summary fields.
    pub summary: RecordSummary,
    /// The org the session belongs to.
    pub org: String,
    /// Scopes the technician asked for.
    pub scopes_requested: ScopeSet,
    /// Scopes the user granted (empty until, or unless, they did).
    pub scopes_granted: ScopeSet,
    /// Probes run, oldest first.
    pub probes: Vec<ProbeRun>,
    /// Inventories taken, oldest first.
    pub inventories: Vec<InventoryRef>,
    /// Files transferred, oldest first.
    pub files: Vec<FileMoved>,
    /// When the session ended (Unix seconds), if it did.
    pub ended_unix: Option<u64>,
    /// How long it lasted, in seconds.
    pub duration_secs: Option<u64>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// The technician's notes.
    pub notes: Notes,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// When (Unix seconds).
    pub closed_unix: Option<u64>,
}

/// The technician's notes on a record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Notes {
    /// What the user saw.
    pub problem: Option<String>,
    /// Why it happened.
    pub cause: Option<String>,
    /// What fixed it.
    pub fix: Option<String>,
}

/// The relay's answer to a [`RecordQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RecordReply {
    /// For `List` and `Search`.
    List(Vec<RecordSummary>),
    /// For `Show`, `Note`, `Close` and `Facts`: the record as it now is.
    Record(Box<SessionRecord>),
    /// Refused; nothing changed.
    Error(RecordError),
}

/// An error about session records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[error("{message}")]
pub struct RecordError {
    /// What went wrong, for programs.
    pub kind: RecordErrorKind,
    /// What went wrong, for people.
    pub message: String,
}

impl RecordError {
    /// Builds an error of `kind` with a human message.
    pub fn new(kind: RecordErrorKind, message: impl Into<String>) -> Self {
        RecordError {
            kind,
            message: message.into(),
        }
    }
}

/// The kinds of [`RecordError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RecordErrorKind {
    /// The technician token is not valid.
    BadToken,
    /// The technician's role (or absence from the session) does not allow this change.
    Forbidden,
    /// No record of the technician's org has this id.
    UnknownRecord,
    /// The record is closed; it can no longer change.
    Closed,
    /// A field is too long, empty where it must not be, or malformed.
    Invalid,
    /// The relay's store failed.
    StoreFailed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::fleet::tests::round_trip;
    use proptest::prelude::*;

    proptest! {
        // Short collections: with the default sizes a reply holds thousands of records and the
        // test takes half a minute.
        #![proptest_config(crate::fleet::tests::small(16))]
        #[test] fn record_query(m: RecordQuery) { round_trip(m)?; }
        #[test] fn record_reply(m: RecordReply) { round_trip(m)?; }
    }

    proptest! {

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = codec::from_body::<RecordQuery>(&bytes);
            let _ = codec::from_body::<RecordReply>(&bytes);
        }

        #[test]
        fn cleaned_text_has_no_control_characters(s in ".*") {
            use crate::text::oracle::must_hide;
            prop_assert!(!clean_text(&s, false).chars().any(must_hide));
            prop_assert!(!clean_text(&s, true).chars().any(|c| must_hide(c) && c != '\n' && c != '\t'));
            // Cleaning again changes nothing: the agent, the relay and the console each clean.
            prop_assert_eq!(clean_text(&clean_text(&s, true), true), clean_text(&s, true));
        }
    }

    #[test]
    fn escape_sequences_are_defused() {
        assert_eq!(
            clean_text("printer\u{1b}[2J offline\r\n", false),
            "printer\u{241b}[2J offline"
        );
        assert_eq!(clean_text("a\nb\u{7}", true), "a\nb\u{2407}");
        assert_eq!(clean_text("x\u{202E}y", false), "x\u{fffd}y");
    }

    #[test]
    fn no_control_format_or_separator_character_survives_in_record_text() {
        use crate::text::oracle::{NAMED, all_chars, must_hide};
        for c in all_chars().filter(|&c| must_hide(c)) {
            let s = format!("a{c}b");
            assert!(!clean_text(&s, false).contains(c), "U+{:04X}", c as u32);
            assert!(
                !truncate_text(&s, MAX_REASON_CHARS, false).contains(c),
                "U+{:04X}",
                c as u32
            );
            if c != '\n' && c != '\t' {
                assert!(!clean_text(&s, true).contains(c), "U+{:04X}", c as u32);
            }
        }
        for &(c, name) in NAMED {
            let r = check_text(
                "reason",
                &format!("printer{c}offline"),
                MAX_REASON_CHARS,
                false,
            );
            assert!(!r.unwrap().contains(c), "{name} survived");
        }
    }

    #[test]
    fn length_is_checked_in_characters() {
        assert!(check_text("reason", &"é".repeat(200), MAX_REASON_CHARS, false).is_ok());
        let e = check_text("reason", &"é".repeat(201), MAX_REASON_CHARS, false).unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::Invalid);
        assert!(e.message.contains("201"), "{e}");
        assert_eq!(truncate_text(&"a".repeat(300), 5, false), "aaaaa");
    }
}
