//! What only the two ends see: sealed stream 0 (consent, chat, invitations, grant changes, the
//! end) and the sealed request and answer on every other stream. The relay copies these frames
//! without parsing them; the one plain frame here, [`StreamOpen`], is read by the agent only.

use serde::{Deserialize, Serialize};

use super::relay::{EndReason, Invitee};
use crate::clipboard::Selection;
use crate::diag::{DiagReport, Probe};
use crate::files::{FileRequest, FileResponse};
use crate::inventory::Inventory;
use crate::scope::{Scope, ScopeSet};
use crate::screen::DisplayInfo;

/// The first (plain) frame on every extra stream the console opens in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct StreamOpen {
    /// The stream's number, ≥ 1 and never reused in a session; it selects the stream's keys.
    pub stream_id: u32,
}

/// The one sealed frame each end sends on the transport stream (`StreamOpen{u32::MAX}`, opened by
/// the console right after pairing), console first: the SHA-256 fingerprint of
/// the fresh certificate it will present on the session's end-to-end QUIC connection
/// ([`crate::forward`]). Each end accepts exactly that certificate from the other, so the relay,
/// which carries the connection's packets, can neither read them nor stand in for either end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct E2eOffer {
    /// SHA-256 of the DER certificate.
    pub fingerprint: [u8; 32],
}

/// Console → agent on stream 0, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ConsoleToAgent {
    /// Ask the user for these scopes.
    ConsentRequest {
        /// Scopes asked for.
        scopes: ScopeSet,
    },
    /// The technician ends the session.
    End,
    /// A chat line for the user; allowed from pairing on, before and after consent. The agent
    /// re-checks it with [`crate::chat::ChatText::new`].
    Chat {
        /// The line.
        text: String,
    },
    /// Bring another technician in (needs a session with a grant); the user is asked first.
    /// Answered with [`AgentToConsole::InviteCode`] or [`AgentToConsole::InviteFailed`].
    Invite {
        /// Whom.
        invitee: Invitee,
        /// Leave once the invitee is in.
        handover: bool,
    },
    /// A frame from the agent failed to open or decode on one of the session's streams: the console
    /// ends the session, and the agent ends it too as [`EndReason::ProtocolError`] (so the relay's
    /// audit has it). Sent once, last.
    ProtocolError {
        /// What the console saw.
        reason: String,
    },
    /// During the session (after the first [`AgentToConsole::ConsentDecision`]; before it, this
    /// breaks protocol): ask the user for more, e.g. `control` after a `view` session or after
    /// the user pressed Stop control. The agent checks the role again and asks the user only for
    /// what is not granted yet, with the same countdown as the first consent (silence means no).
    /// Answered with exactly one [`AgentToConsole::MoreDecision`]; one ask at a time (a second one
    /// while the user decides is answered at once as [`MoreOutcome::Busy`]).
    AskMore {
        /// Scopes asked for (those granted already are not asked again).
        scopes: ScopeSet,
    },
}

/// How an [`ConsoleToAgent::AskMore`] ended. Only [`MoreOutcome::Answered`] can change the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum MoreOutcome {
    /// The user answered: the grant holds what they allowed (unchanged if they said no).
    Answered,
    /// The user did not answer before the countdown ended: silence means no.
    TimedOut,
    /// The technician's role does not allow a scope asked for: the user was not asked, and the
    /// session goes on.
    Forbidden,
    /// Another question is waiting for the user, or a colleague is in the session: the user was
    /// not asked.
    Busy,
    /// Everything asked for is granted already: the user was not asked.
    NothingNew,
}

impl std::fmt::Display for MoreOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MoreOutcome::Answered => "the user answered",
            MoreOutcome::TimedOut => "the user did not answer in time",
            MoreOutcome::Forbidden => "your role does not allow it",
            MoreOutcome::Busy => {
                "the user is answering another question, or a colleague is in the session"
            }
            MoreOutcome::NothingNew => "all of it is allowed already",
        })
    }
}

/// Agent → console on stream 0, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum AgentToConsole {
    /// The user's answer. Empty means denied.
    ConsentDecision {
        /// What was granted.
        granted: ScopeSet,
    },
    /// The session ended on the agent's side.
    Ended {
        /// Why.
        reason: EndReason,
    },
    /// A chat line from the user. The console re-checks it with [`crate::chat::ChatText::new`].
    Chat {
        /// The line.
        text: String,
    },
    /// The user agreed: give the invitee this one-time code (sealed here, so the relay never sees
    /// it). The invitee pairs with it and the user is asked again for their scopes.
    InviteCode {
        /// The code, as printed (`SessionCode`'s display form).
        code: String,
    },
    /// The invitation did not happen.
    InviteFailed {
        /// Why (the user refused, or the relay did not know the invitee).
        reason: String,
    },
    /// The user changed the grant during the session (e.g. pressed "Stop control"): this is what
    /// is granted now. Requests and input outside it are refused from here on.
    GrantChanged {
        /// The grant from now on.
        granted: ScopeSet,
    },
    /// The answer to [`ConsoleToAgent::AskMore`]: the full grant from now on (unchanged unless
    /// the user allowed something), and how the ask ended.
    MoreDecision {
        /// The grant from now on.
        granted: ScopeSet,
        /// How the ask ended.
        outcome: MoreOutcome,
    },
}

/// A request on its own stream, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Request {
    /// The full inventory (needs `inventory`).
    Inventory,
    /// Run one probe (needs `diagnostics`).
    Diagnostic {
        /// Which one, with its parameters (re-validated by the agent).
        probe: Probe,
        /// Overrides the probe's default timeout, 1–[`crate::diag::MAX_TIMEOUT_SECS`] seconds.
        timeout_secs: Option<u16>,
    },
    /// List the displays (needs `view`).
    Displays,
    /// Stream a display's screen on this stream (needs `view`); see [`crate::screen`].
    View {
        /// [`DisplayInfo::index`] of the display.
        display: u32,
    },
    /// Send input events on this stream (needs `control`, checked again on every event).
    Control {
        /// Display whose pixels the event coordinates are in.
        display: u32,
    },
    /// List, push or pull a file on this stream (needs `files`); see [`crate::files`].
    Files(FileRequest),
    /// The text on the user's clipboard (needs `clipboard`); see [`crate::clipboard`].
    ClipboardGet {
        /// Which clipboard.
        selection: Selection,
    },
    /// Put `text` on the user's clipboard (needs `clipboard`), at most
    /// [`crate::clipboard::MAX_CLIPBOARD_BYTES`], kept exactly as sent.
    ClipboardSet {
        /// Which clipboard.
        selection: Selection,
        /// The text.
        text: String,
    },
}

impl Request {
    /// The scope the agent requires before serving this request.
    pub fn scope(&self) -> Scope {
        match self {
            Request::Inventory => Scope::Inventory,
            Request::Diagnostic { .. } => Scope::Diagnostics,
            Request::Displays | Request::View { .. } => Scope::View,
            Request::Control { .. } => Scope::Control,
            Request::Files(_) => Scope::Files,
            Request::ClipboardGet { .. } | Request::ClipboardSet { .. } => Scope::Clipboard,
        }
    }
}

/// The answer to a [`Request`], sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Response {
    /// The full inventory.
    Inventory(Box<Inventory>),
    /// A probe's result.
    Diagnostic(Box<DiagReport>),
    /// Not served: the user did not grant `scope`.
    Refused {
        /// The scope the request needed.
        scope: Scope,
    },
    /// The agent tried and failed.
    Failed {
        /// Why.
        message: String,
    },
    /// The displays, for [`Request::Displays`].
    Displays(Vec<DisplayInfo>),
    /// Screen messages follow on this stream, for [`Request::View`].
    Viewing {
        /// The display being streamed.
        display: DisplayInfo,
    },
    /// Input events are accepted on this stream, for [`Request::Control`].
    Controlling {
        /// The display the coordinates refer to.
        display: DisplayInfo,
    },
    /// The first answer on a file stream, for [`Request::Files`].
    Files(FileResponse),
    /// The text on the user's clipboard, for [`Request::ClipboardGet`] (empty: nothing on it).
    ClipboardText {
        /// Which clipboard.
        selection: Selection,
        /// The text, exactly as the user's desktop had it.
        text: String,
    },
    /// The user's clipboard holds the text now, for [`Request::ClipboardSet`].
    ClipboardStored {
        /// Which clipboard.
        selection: Selection,
        /// How many bytes of UTF-8 it holds.
        bytes: u32,
    },
}
