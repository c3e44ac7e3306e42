//! Messages, grouped by who sends them to whom.
//!
//! # Message flow
//! ```text
//! agent                         relay                          console
//!   |-- Hello{Agent} ------------->|                               |
//!   |<----------- HelloReply ------|                               |
//!   |-- AgentToRelay::OpenSlot --->|                               |  reason the user gave, if any
//!   |<-- RelayToAgent::SlotOpened -|     (agent shows slot+secret) |
//!   |                              |<------------ Hello{Console} --|
//!   |                              |------------- HelloReply ----->|
//!   |                              |<-- ConsoleToRelay::Claim -----|  slot, token, scopes (role-checked)
//!   |<-- RelayToAgent::Claimed ----|                               |  verified name, org, role
//!   |-- AgentToRelay::Accept ----->|--- RelayToConsole::Claimed -->|  (or Decline: refused before pairing)
//!   |                              |   + reason, session record id |
//!   |<=========== spliced stream 0: bytes copied blindly ==========>|
//!   |   PairingMsg::Spake / PairingMsg::Confirm (plain frames)      |
//!   |   then sealed: ConsentRequest -> ConsentDecision, End/Ended   |
//!   |   later, any time: AskMore -> MoreDecision (one at a time)    |
//!   |   GrantChanged when the user takes something back             |
//!   |<=========== spliced stream n (console opens more) ===========>|
//!   |   StreamOpen{n} (plain), then sealed Request -> Response      |
//!   |-- AgentToRelay::Report(..) ->|  audit facts, never content   |
//! ```
//! The relay parses only the frames on its own control streams (`Hello`, `*ToRelay`). Once a stream is
//! spliced it copies bytes without looking at them.
//!
//! A frame that fails to open or decode on any session stream, or a stream that breaks the
//! `StreamOpen`, one request, one answer shape, ends the session: the agent ends it as
//! [`EndReason::ProtocolError`] (reported to the relay, so the audit has it) and tells the console
//! in `Ended`; a console that sees such a frame sends [`ConsoleToAgent::ProtocolError`] on stream 0,
//! and the agent ends the session the same way.

use serde::{Deserialize, Serialize};

use crate::code::Slot;
use crate::diag::{DiagReport, Probe};
use crate::fleet::FleetQuery;
use crate::inventory::Inventory;
use crate::records::RecordQuery;
use crate::scope::{Scope, ScopeSet};
use crate::screen::DisplayInfo;

/// QUIC application close codes, so a peer learns why a connection ended.
pub mod close {
    /// Normal end.
    pub const NORMAL: u32 = 0;
    /// The peer sent something malformed, oversized or out of order.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// The relay is at its connection limit.
    pub const BUSY: u32 = 2;
    /// The relay is shutting down.
    pub const SHUTTING_DOWN: u32 = 3;
    /// The other side of the session went away.
    pub const PEER_GONE: u32 = 4;
    /// The session ended (by the user, the technician or a failed pairing).
    pub const SESSION_ENDED: u32 = 5;
}

/// Who is connecting to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Role {
    /// A `tether-agent` sharing its machine.
    Agent,
    /// A technician's `tether-console`.
    Console,
    /// An enrolled (or enrolling) device reporting inventory; see [`crate::fleet`].
    Device,
}

/// The first frame on a relay control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Hello {
    /// The sender's [`crate::PROTOCOL_VERSION`].
    pub version: u32,
    /// Who the sender is.
    pub role: Role,
}

/// The relay's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum HelloReply {
    /// Go ahead, speaking `version`.
    Accepted {
        /// The version both sides will speak.
        version: u32,
    },
    /// Refused; the connection is closed after this frame.
    Refused(RelayError),
}

/// A technician as the relay knows them: the identity shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TechnicianIdentity {
    /// Display name.
    pub name: String,
    /// Organisation.
    pub org: String,
    /// What the relay lets this technician ask for.
    pub role: TechnicianRole,
    /// Support tier, set by an admin; escalation goes to a higher one.
    pub tier: Tier,
}

/// A technician's support tier: L1 takes first contact, L2 and L3 take escalations.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Tier {
    /// First line.
    #[default]
    L1,
    /// Second line.
    L2,
    /// Third line (specialists).
    L3,
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tier::L1 => "L1",
            Tier::L2 => "L2",
            Tier::L3 => "L3",
        })
    }
}

impl std::str::FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "L1" | "1" => Ok(Tier::L1),
            "L2" | "2" => Ok(Tier::L2),
            "L3" | "3" => Ok(Tier::L3),
            other => Err(format!("unknown tier {other:?} (expected L1, L2 or L3)")),
        }
    }
}

/// Whom a technician in a session invites: a named colleague, or whoever of a tier takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Invitee {
    /// This technician of the inviter's organisation.
    Technician(String),
    /// Any technician of the inviter's organisation at this tier or higher.
    Tier(Tier),
}

impl Invitee {
    /// Whether `who`, a technician of `org`, is the one invited.
    pub fn admits(&self, org: &str, who: &TechnicianIdentity) -> bool {
        who.org == org
            && match self {
                Invitee::Technician(name) => &who.name == name,
                Invitee::Tier(t) => who.tier >= *t,
            }
    }
}

impl std::fmt::Display for Invitee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invitee::Technician(name) => f.write_str(name),
            Invitee::Tier(t) => write!(f, "any {t} technician"),
        }
    }
}

/// A technician's role on the relay. The relay refuses claims asking for more than the role allows, and
/// the agent refuses them again on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum TechnicianRole {
    /// May only view the screen.
    Viewer,
    /// May ask for every session scope.
    Technician,
    /// Every session scope, plus managing technicians, enrollment tokens, the audit log and the fleet.
    Admin,
}

impl TechnicianRole {
    /// The session scopes this role may ask for.
    pub fn allowed_scopes(self) -> ScopeSet {
        match self {
            TechnicianRole::Viewer => [Scope::View].into_iter().collect(),
            TechnicianRole::Technician | TechnicianRole::Admin => ScopeSet::all(),
        }
    }

    /// The lowercase name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            TechnicianRole::Viewer => "viewer",
            TechnicianRole::Technician => "technician",
            TechnicianRole::Admin => "admin",
        }
    }
}

impl std::fmt::Display for TechnicianRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TechnicianRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(TechnicianRole::Viewer),
            "technician" => Ok(TechnicianRole::Technician),
            "admin" => Ok(TechnicianRole::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected viewer, technician or admin)"
            )),
        }
    }
}

/// An error the relay reports to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[error("{message}")]
pub struct RelayError {
    /// What went wrong, for programs.
    pub kind: RelayErrorKind,
    /// What went wrong, for people.
    pub message: String,
}

impl RelayError {
    /// Builds an error of `kind` with a human message.
    pub fn new(kind: RelayErrorKind, message: impl Into<String>) -> Self {
        RelayError {
            kind,
            message: message.into(),
        }
    }
}

/// The kinds of [`RelayError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RelayErrorKind {
    /// The client speaks a protocol version the relay does not.
    UnsupportedVersion,
    /// A frame could not be decoded or was too large.
    Malformed,
    /// A message that makes no sense in the current state.
    UnexpectedMessage,
    /// No open code has this slot (never issued, already used, or burned).
    UnknownSlot,
    /// The code behind this slot expired.
    ExpiredSlot,
    /// The technician token is unknown.
    BadToken,
    /// Too many claims in too short a time.
    RateLimited,
    /// The agent already holds the maximum number of open slots.
    TooManySlots,
    /// The technician's role does not allow the scopes asked for.
    Forbidden,
    /// The agent declined the session before pairing (e.g. its IT pinned other organisations).
    Declined,
    /// The relay is at a capacity limit.
    Busy,
    /// The relay is shutting down.
    ShuttingDown,
    /// No such technician (or nobody at that tier) in the inviter's organisation.
    UnknownTechnician,
}

/// Agent → relay, on the agent's control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum AgentToRelay {
    /// Ask for a slot to build a session code around.
    OpenSlot {
        /// Why the user asks for help (`share --reason`), shown to the technician who claims the
        /// code; at most [`crate::records::MAX_REASON_CHARS`] characters (the relay cuts longer ones).
        reason: Option<String>,
    },
    /// Answer to [`RelayToAgent::Claimed`]: go ahead and splice.
    Accept,
    /// Answer to [`RelayToAgent::Claimed`]: refuse this technician before any pairing.
    Decline {
        /// Why, for the technician.
        reason: String,
    },
    /// An audit fact about the current session. Carries no content.
    Report(SessionReport),
    /// The user agreed that the current session's technician brings in `invitee`: the relay checks
    /// the invitee exists and answers [`RelayToAgent::InviteTicket`] (or an error).
    Invite {
        /// Whom.
        invitee: Invitee,
        /// The inviting technician leaves once the invitee is in.
        handover: bool,
    },
    /// On a fresh agent connection: reserve a slot only `ticket`'s invitee can claim.
    OpenInviteSlot {
        /// From [`RelayToAgent::InviteTicket`]; single use.
        ticket: u64,
    },
}

/// Audit facts an agent reports about its session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum SessionReport {
    /// Key confirmation succeeded.
    Paired,
    /// Key confirmation failed: the console had the wrong secret. The slot is burned.
    PairingFailed,
    /// The user granted these scopes (possibly none).
    Consent {
        /// What was asked.
        requested: ScopeSet,
        /// What was granted.
        granted: ScopeSet,
    },
    /// A request outside the grant was refused.
    ScopeRefused {
        /// The scope the request needed.
        scope: Scope,
    },
    /// The session ended on the agent's side.
    Ended {
        /// Why.
        reason: EndReason,
    },
    /// The user asked to be handed over from this session's technician to the invitee, who is in.
    HandedOver,
}

/// Relay → agent, on the agent's control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RelayToAgent {
    /// A slot is reserved for this agent until it expires.
    SlotOpened {
        /// The slot.
        slot: Slot,
        /// Seconds until it expires.
        expires_in_secs: u32,
    },
    /// A technician claimed the slot. The agent answers [`AgentToRelay::Accept`] (a spliced stream
    /// follows) or [`AgentToRelay::Decline`].
    Claimed {
        /// The slot that was claimed.
        slot: Slot,
        /// Who claimed it, as verified by the relay.
        technician: TechnicianIdentity,
    },
    /// The slot expired unclaimed.
    SlotExpired {
        /// The slot.
        slot: Slot,
    },
    /// The console side of the session went away.
    PeerGone,
    /// A request was refused.
    Error(RelayError),
    /// The invitee exists; open a guest connection with this ticket
    /// ([`AgentToRelay::OpenInviteSlot`]).
    InviteTicket {
        /// Single use, valid as long as a code.
        ticket: u64,
        /// The invitee as the relay knows them, when invited by name.
        technician: Option<TechnicianIdentity>,
    },
}

/// Console → relay, on the console's claim stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ConsoleToRelay {
    /// Claim a slot. The secret is never sent.
    Claim {
        /// The slot half of the code.
        slot: Slot,
        /// The technician's token, as printed by `tether-relay technician add`.
        token: String,
        /// The scopes the technician will ask the user for; the relay checks them against the role.
        scopes: ScopeSet,
    },
    /// Ask about the technician's org's enrolled devices; answered with
    /// [`crate::fleet::FleetReply`] frames on this stream.
    Fleet {
        /// The technician's token.
        token: String,
        /// The question.
        query: FleetQuery,
    },
    /// Read or write the technician's org's session records; answered with one
    /// [`crate::records::RecordReply`] on this stream.
    Records {
        /// The technician's token.
        token: String,
        /// The question or change.
        query: RecordQuery,
    },
    /// The invitations waiting for this technician (named, or their tier's queue); answered with
    /// [`RelayToConsole::Invitations`] or an error.
    Invitations {
        /// The technician's token.
        token: String,
    },
}

/// An invitation waiting for a colleague to connect, as listed to those who may take it. The code
/// is not here: the relay never has its secret; the inviting technician gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct OpenInvitation {
    /// Who invited.
    pub by: String,
    /// Whom: you by name, or your tier.
    pub invitee: Invitee,
    /// The inviting technician leaves once the colleague is in.
    pub handover: bool,
    /// Seconds until the invitation's code expires.
    pub expires_in_secs: u32,
}

/// Relay → console, on the claim stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RelayToConsole {
    /// The claim is accepted: this stream is now spliced to the agent.
    Claimed {
        /// The identity the agent was shown.
        technician: TechnicianIdentity,
        /// The reason the user gave when sharing (`tether-agent share --reason`), cleaned.
        reason: Option<String>,
        /// The session's record on the relay (`tether-console sessions show ID`); `None` if the
        /// relay could not create one (the session goes ahead without).
        record: Option<u64>,
    },
    /// The claim was refused.
    Error(RelayError),
    /// The answer to [`ConsoleToRelay::Invitations`].
    Invitations(Vec<OpenInvitation>),
}

/// The first (plain) frame on every extra stream the console opens in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct StreamOpen {
    /// The stream's number, ≥ 1 and never reused in a session; it selects the stream's keys.
    pub stream_id: u32,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum EndReason {
    /// The user ended it.
    UserEnded,
    /// The technician ended it.
    TechnicianEnded,
    /// The user granted nothing.
    ConsentDenied,
    /// Pairing failed.
    PairingFailed,
    /// The session reached its maximum length.
    TimeLimit,
    /// The technician asked for more than their role allows.
    Forbidden,
    /// The other side vanished or the connection broke.
    ConnectionLost,
    /// A protocol error.
    ProtocolError(String),
    /// The technician handed the session over to a colleague, who carries on.
    HandedOver,
    /// The user did not answer the consent prompt before it timed out (silence means no).
    ConsentTimeout,
    /// Paired, but the technician asked for nothing within this many seconds.
    NoRequest {
        /// How long the agent waited.
        secs: u32,
    },
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::UserEnded => f.write_str("the user ended the session"),
            EndReason::TechnicianEnded => f.write_str("the technician ended the session"),
            EndReason::ConsentDenied => f.write_str("the user denied consent"),
            EndReason::PairingFailed => f.write_str("pairing failed (wrong code)"),
            EndReason::TimeLimit => f.write_str("the session reached its time limit"),
            EndReason::Forbidden => {
                f.write_str("the technician asked for more than their role allows")
            }
            EndReason::ConnectionLost => f.write_str("the connection was lost"),
            EndReason::ProtocolError(e) => write!(f, "protocol error: {e}"),
            EndReason::HandedOver => f.write_str("the session was handed over to a colleague"),
            EndReason::ConsentTimeout => f.write_str("the user did not answer in time"),
            EndReason::NoRequest { secs } => {
                write!(
                    f,
                    "no request within {}",
                    crate::time::duration_words(u64::from(*secs))
                )
            }
        }
    }
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
}

impl Request {
    /// The scope the agent requires before serving this request.
    pub fn scope(&self) -> Scope {
        match self {
            Request::Inventory => Scope::Inventory,
            Request::Diagnostic { .. } => Scope::Diagnostics,
            Request::Displays | Request::View { .. } => Scope::View,
            Request::Control { .. } => Scope::Control,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;

    use crate::fleet::tests::round_trip;

    proptest! {
        #[test] fn hello(m: Hello) { round_trip(m)?; }
        #[test] fn hello_reply(m: HelloReply) { round_trip(m)?; }
        #[test] fn agent_to_relay(m: AgentToRelay) { round_trip(m)?; }
        #[test] fn relay_to_agent(m: RelayToAgent) { round_trip(m)?; }
        #[test] fn console_to_relay(m: ConsoleToRelay) { round_trip(m)?; }
        #[test] fn relay_to_console(m: RelayToConsole) { round_trip(m)?; }
        #[test] fn stream_open(m: StreamOpen) { round_trip(m)?; }
        #[test] fn console_to_agent(m: ConsoleToAgent) { round_trip(m)?; }
        #[test] fn agent_to_console(m: AgentToConsole) { round_trip(m)?; }
        #[test] fn request(m: Request) { round_trip(m)?; }
        #[test] fn pairing(m: crate::pairing::PairingMsg) { round_trip(m)?; }
        #[test] fn screen_msg(m: crate::screen::ScreenMsg) { round_trip(m)?; }
        #[test] fn viewer_msg(m: crate::screen::ViewerMsg) { round_trip(m)?; }
        #[test] fn input_event(m: crate::screen::InputEvent) { round_trip(m)?; }
        #[test] fn input_reply(m: crate::screen::InputReply) { round_trip(m)?; }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = codec::decode::<RelayToAgent>(&bytes);
            let _ = codec::decode::<Response>(&bytes);
            let _ = codec::from_body::<ConsoleToRelay>(&bytes);
        }
    }

    // `Response` carries a full inventory, whose strategy needs a large stack.
    #[test]
    fn response() {
        crate::fleet::tests::round_trip_all::<Response>(4);
    }
}
