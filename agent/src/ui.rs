//! The boundary between the agent's session logic and whatever the user looks at.
//!
//! The session sends [`AgentEvent`]s and receives [`UserCommand`]s over bounded channels. The terminal
//! front end ([`crate::terminal`]) is one implementation; the small window of a later issue is another;
//! tests script the channels directly.

use tether_proto::chat::ChatText;
use tether_proto::clipboard::Selection;
use tether_proto::msg::{EndReason, TechnicianIdentity};
use tether_proto::records::FileDirection;
use tether_proto::{Scope, ScopeSet, SessionCode};
use tokio::sync::mpsc;

/// Depth of both queues. Events are small and the user is slow; the session never blocks long on them.
pub const QUEUE: usize = 64;

/// What the user should see.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// Connected to the relay; waiting for a code.
    Connected {
        /// Relay address.
        relay: String,
    },
    /// Read this code to the technician.
    Code {
        /// The code (shown in full only to the user).
        code: SessionCode,
        /// Minutes until it expires.
        expires_in_secs: u32,
        /// The reason the user gave (`share --reason`), sent to the relay with the slot request
        /// and shown to the technician who claims the code.
        reason: Option<String>,
    },
    /// The code expired unused; a new one follows.
    CodeExpired,
    /// A technician claimed the code; pairing runs now.
    Claimed {
        /// Who, as verified by the relay.
        technician: TechnicianIdentity,
    },
    /// The technician was declined before pairing (IT pinned other organisations); a new code follows.
    Declined {
        /// Who was declined.
        technician: TechnicianIdentity,
        /// Why.
        reason: String,
    },
    /// The per-user agent is connected to this enrolled computer's service: sessions without a
    /// code by `org`'s technicians are asked here.
    Enrolled {
        /// The organisation that enrolled this computer.
        org: String,
        /// What IT's signed policy lets its technicians use without asking (shown to the user).
        unattended: ScopeSet,
    },
    /// The technician typed the wrong code: it is burned; a new one follows.
    PairingFailed,
    /// An unattended session on this enrolled device: IT's signed policy let this technician in
    /// without asking (only for `scopes`). The user is told, and can end it like any session.
    Unattended {
        /// Who is in, as their organisation's key vouched for them.
        technician: TechnicianIdentity,
        /// What IT's policy let them use.
        scopes: ScopeSet,
    },
    /// Paired. Both sides can read this string to each other.
    Paired {
        /// Short verification string.
        verification: String,
    },
    /// The technician asks for these scopes. Answer with [`UserCommand::Consent`].
    ConsentRequested {
        /// Who asks.
        technician: TechnicianIdentity,
        /// What they ask for.
        scopes: ScopeSet,
        /// Seconds before silence counts as "no".
        timeout_secs: u64,
        /// True when this organisation has never been granted access on this machine.
        first_contact: bool,
        /// The relay's identity (certificate fingerprint, shortened), as verified by the agent.
        relay: String,
        /// This session's verification string (a colleague's session has its own), shown beside
        /// the question so the user compares it with what the asking technician reads out.
        verification: String,
        /// A session without a code on this enrolled computer: the organisation that enrolled it
        /// (the technician's certificate verified under its key). `None`: a code session.
        enrolled_by: Option<String>,
    },
    /// The decision that was sent.
    ConsentDecided {
        /// What was granted (empty: denied).
        granted: ScopeSet,
    },
    /// During a session, the technician asks for more than the user allowed so far (e.g.
    /// `control` after `view`). Answer with [`UserCommand::Consent`] (what of `scopes` the user
    /// allows, nothing pre-ticked); silence until the timeout means no, and the session goes on
    /// either way.
    MoreRequested {
        /// Who asks.
        technician: TechnicianIdentity,
        /// Only what is not granted yet.
        scopes: ScopeSet,
        /// What the user allowed so far (stays allowed whatever the answer).
        granted: ScopeSet,
        /// Seconds before silence counts as "no".
        timeout_secs: u64,
        /// The relay's identity, as for the first consent.
        relay: String,
        /// This session's verification string.
        verification: String,
    },
    /// The answer to [`AgentEvent::MoreRequested`] (or its timeout) was sent.
    MoreDecided {
        /// Who had asked.
        technician: TechnicianIdentity,
        /// The whole grant from now on.
        granted: ScopeSet,
        /// What the user added (empty: they said no or did not answer).
        added: ScopeSet,
    },
    /// A request is being served now (a diagnostic probe runs), so the user sees it as it happens.
    Running {
        /// What runs, in words.
        what: String,
    },
    /// A request was served.
    Served {
        /// What was handed over, in words.
        what: String,
    },
    /// A request outside the grant was refused.
    Refused {
        /// What was asked for, in words.
        what: String,
        /// The scope it needed.
        scope: Scope,
    },
    /// The connection to the relay ended (it shut down, or the network went away).
    RelayLost {
        /// What happened, in words (the relay's close reason, or a timeout).
        reason: String,
        /// When waiting for a claim, the agent reconnects after this delay and then shows a new
        /// code; `None` when a session was running (it ends, and `Ended` follows).
        retry_in: Option<std::time::Duration>,
    },
    /// A screen view started (`active`) or stopped.
    Viewing {
        /// Who is looking ("name of org").
        technician: String,
        /// Which display.
        display: u32,
        /// Started or stopped.
        active: bool,
    },
    /// The technician started (`active`) or stopped using the mouse and keyboard.
    Controlling {
        /// Who ("name of org").
        technician: String,
        /// Started or stopped.
        active: bool,
    },
    /// The technician read the user's clipboard or put text on it (each time).
    Clipboard {
        /// Who ("name of org").
        technician: String,
        /// Read or put.
        used: ClipboardUse,
        /// Which clipboard.
        selection: Selection,
        /// How many characters.
        chars: usize,
        /// The start of the text, made safe to show ([`tether_proto::clipboard::preview`]).
        preview: String,
    },
    /// The user took back a scope; the session goes on without it.
    Revoked {
        /// The scope.
        scope: Scope,
    },
    /// A chat line (already made harmless to show).
    Chat {
        /// Who wrote it ("name of org"); `None` for the user's own line, once it was sent.
        from: Option<String>,
        /// The line.
        text: ChatText,
    },
    /// The technician in the session wants to bring in a colleague. Answer with
    /// [`UserCommand::AnswerInvite`]; silence until the timeout means no.
    InviteRequested {
        /// Who asks ("name of org").
        by: String,
        /// Whom, as the relay knows them (e.g. "Grace Hopper (L2) of Acme", "any L2 technician of
        /// Acme").
        invitee: String,
        /// The asking technician leaves once the colleague is in.
        handover: bool,
        /// Seconds before silence counts as "no".
        timeout_secs: u64,
    },
    /// The invitation was answered or failed; `code_sent` when the colleague may now connect.
    InviteDecided {
        /// Whether the colleague was given a code.
        code_sent: bool,
    },
    /// One technician left while another stays connected.
    TechnicianLeft {
        /// Who ("name of org").
        technician: String,
        /// Why.
        reason: EndReason,
    },
    /// The session's packets changed path: straight between the two computers, or through the
    /// relay (still end-to-end encrypted either way).
    Path {
        /// Direct (true) or through the relay.
        direct: bool,
    },
    /// The session is over.
    Ended {
        /// Why.
        reason: EndReason,
    },
    /// A file is arriving or leaving (every one is shown, and written to the local log). Stop it
    /// with [`UserCommand::StopTransfer`].
    Transfer(Transfer),
}

/// One file transfer, as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Names this transfer in [`UserCommand::StopTransfer`]; unique in the share.
    pub id: u64,
    /// Push: the file arrives on this computer; pull: it leaves it.
    pub direction: FileDirection,
    /// Who moves it ("name of org").
    pub technician: String,
    /// The file's path on this computer (a push's final name once it is done).
    pub path: String,
    /// Its size in bytes.
    pub total: u64,
    /// Where it is.
    pub state: TransferState,
}

/// Where a transfer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// It started (at `offset` when it resumes an earlier, cut transfer).
    Started {
        /// Bytes already there from an earlier session.
        offset: u64,
    },
    /// Bytes moved so far (at most a few updates a second).
    Progress {
        /// Bytes done.
        done: u64,
    },
    /// Complete, its SHA-256 verified.
    Done {
        /// Lower-case hex.
        sha256: String,
    },
    /// It failed or was stopped; nothing was left under the final name.
    Failed {
        /// Why, in words.
        reason: String,
    },
}

/// What the technician did with the user's clipboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipboardUse {
    /// Read the text on it.
    Read,
    /// Put text on it.
    Put,
}

impl AgentEvent {
    /// The words for a path change.
    pub fn path_words(direct: bool) -> &'static str {
        if direct {
            "The connection to the technician now goes directly between your computers (still end-to-end encrypted)."
        } else {
            "The connection to the technician goes through the relay (end-to-end encrypted)."
        }
    }

    /// The one sentence every front end shows for [`AgentEvent::Clipboard`], e.g. `Ada of Acme put
    /// 12 characters on your clipboard: "naïve café␊日本"`. Names and text already made safe.
    pub fn clipboard_words(
        technician: &str,
        used: ClipboardUse,
        selection: Selection,
        chars: usize,
        preview: &str,
    ) -> String {
        let technician = tether_proto::text::display_safe(technician);
        let preview = tether_proto::text::display_safe(preview);
        let what = selection.words();
        match used {
            ClipboardUse::Read => {
                format!("{technician} read {what} ({chars} characters: \"{preview}\").")
            }
            ClipboardUse::Put => {
                format!("{technician} put {chars} characters on {what}: \"{preview}\".")
            }
        }
    }
}

/// Why the session ended, in words for the user at this computer: "you ended the session" rather
/// than the technician's "the user ended the session".
pub fn end_words(reason: &EndReason) -> String {
    match reason {
        EndReason::UserEnded => "you ended the session".into(),
        EndReason::ConsentDenied => "you did not allow anything".into(),
        EndReason::ConsentTimeout => "you did not answer in time, so nothing was shared".into(),
        other => tether_proto::text::display_safe(&other.to_string()).into_owned(),
    }
}

/// What the user decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// The answer to [`AgentEvent::ConsentRequested`] or [`AgentEvent::MoreRequested`].
    Consent(ScopeSet),
    /// End the session now.
    EndSession,
    /// Take back `control` without ending the session.
    RevokeControl,
    /// Take back any one scope (e.g. `clipboard`) without ending the session.
    Revoke(Scope),
    /// Send a chat line to the technician (from pairing on).
    Chat(ChatText),
    /// The answer to [`AgentEvent::InviteRequested`].
    AnswerInvite(bool),
    /// Stop the file transfer with this [`Transfer::id`]; the technician is told.
    StopTransfer(u64),
}

/// The session's side of the channels.
#[derive(Debug)]
pub struct UiLink {
    /// Events out.
    pub events: mpsc::Sender<AgentEvent>,
    /// Commands in.
    pub commands: mpsc::Receiver<UserCommand>,
}

/// The front end's side of the channels.
#[derive(Debug)]
pub struct UiHandle {
    /// Events in.
    pub events: mpsc::Receiver<AgentEvent>,
    /// Commands out.
    pub commands: mpsc::Sender<UserCommand>,
}

/// A connected pair of channel ends.
pub fn channels() -> (UiLink, UiHandle) {
    let (etx, erx) = mpsc::channel(QUEUE);
    let (ctx, crx) = mpsc::channel(QUEUE);
    (
        UiLink {
            events: etx,
            commands: crx,
        },
        UiHandle {
            events: erx,
            commands: ctx,
        },
    )
}

/// A size in words for the user: `512 bytes`, `3.4 MB`, `1.1 GB` (decimal units, as file managers
/// show them).
pub fn size_words(n: u64) -> String {
    const UNITS: [(&str, f64); 4] = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    for (unit, size) in UNITS {
        if n as f64 >= size {
            return format!("{:.1} {unit}", n as f64 / size);
        }
    }
    format!("{n} bytes")
}

/// IT's unattended policy in the user's words (the per-user agent says it when it starts).
pub fn unattended_words(unattended: ScopeSet) -> String {
    if unattended.is_empty() {
        "IT's policy lets nobody in without your yes.".into()
    } else {
        let what: Vec<&str> = unattended.iter().map(|s| s.describe()).collect();
        format!(
            "IT's policy lets its technicians, without asking you: {}. You are told when one \
             does, and you can end it.",
            what.join("; ").to_lowercase()
        )
    }
}
