//! What the relay parses: the frames on the relay's own control streams, and the types they carry.
//! Nothing here may hold session content (a request, an answer, a chat line): the relay only
//! splices those streams.

use serde::{Deserialize, Serialize};

use crate::code::Slot;
use crate::fleet::FleetQuery;
use crate::forward::RouteToken;
use crate::records::RecordQuery;
use crate::scope::{Scope, ScopeSet};

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
    /// On a fresh agent connection of an enrolled device: reserve the slot a signed technician's
    /// `ConnectDevice` waits for; the relay claims it for them at once.
    OpenWakeSlot {
        /// From [`crate::fleet::Wake`]; single use, valid for [`crate::fleet::WAKE_TTL_SECS`].
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
        /// The agent's end of the session's packet forwarding ([`crate::forward`]).
        route: RouteToken,
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
    /// Connect to one of the technician's org's enrolled devices, with no code: the relay wakes the
    /// device over its service connection and answers like a claim (`Claimed`, then stream 0 is
    /// spliced). The device, not the relay, decides: stream 0 starts with
    /// [`crate::handshake`], which needs the technician's org-signed key.
    ConnectDevice {
        /// The technician's token.
        token: String,
        /// The device's host name or id, as `devices list` shows it.
        device: String,
        /// The scopes the technician will ask for; the relay checks them against the role.
        scopes: ScopeSet,
        /// Whether nobody is to be asked: only what IT's signed policy names is then served.
        unattended: bool,
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
        /// The console's end of the session's packet forwarding ([`crate::forward`]).
        route: RouteToken,
    },
    /// The claim was refused.
    Error(RelayError),
    /// The answer to [`ConsoleToRelay::Invitations`].
    Invitations(Vec<OpenInvitation>),
    /// In a relay cluster: another node holds this claim's slot. The console connects to that
    /// node once (checking its certificate against the cluster CA, under `node`'s name) and claims
    /// there; a second redirect is an error. Nothing was consumed here. Last, so the frames of
    /// older relays decode as before.
    Redirect(NodeAddress),
}

/// A relay node of a cluster, as a redirect names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct NodeAddress {
    /// The node's name: a DNS name its certificate (signed by the cluster CA) carries.
    pub node: String,
    /// Where consoles reach it, `host:port`.
    pub addr: String,
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
    /// An unattended session asked for scopes IT's signed policy does not name: nothing was served.
    NotInPolicy {
        /// What was asked beyond the policy.
        scopes: ScopeSet,
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
            EndReason::NotInPolicy { scopes } => write!(
                f,
                "IT's policy does not allow {scopes} in an unattended session"
            ),
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
