//! What can go wrong for a technician, and the exit code each one gets.

use tether_net::ConnectError;
use tether_proto::Scope;
use tether_proto::msg::{EndReason, RelayError, RelayErrorKind};

/// A console failure. Each variant says what happened in words a technician can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The relay could not be reached, or failed its identity check.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// A relay cluster's node sent the claim to another node, and the console could not follow
    /// (it pins one relay's fingerprint, the node could not be reached or failed the cluster CA's
    /// check, or it redirected again).
    #[error("the relay says node {node} at {addr} holds this code, but: {reason}")]
    Redirect {
        /// The node's name, as the relay gave it (made safe to show).
        node: String,
        /// Its address (made safe to show).
        addr: String,
        /// Why the console did not claim there.
        reason: String,
    },
    /// The technician token was refused (unknown, revoked or expired).
    #[error("the relay does not accept this technician token: {0} (check TETHER_TOKEN)")]
    BadToken(String),
    /// The technician's role does not allow the scopes asked for.
    #[error("not allowed: {0}")]
    Forbidden(String),
    /// The user's agent declined before pairing (its IT allows other organisations only).
    #[error("{0}")]
    Declined(String),
    /// No such code is open (mistyped, used or burned).
    #[error(
        "no such session code: it may be mistyped, already used, or burned by a wrong attempt; ask the user for a new code"
    )]
    UnknownCode,
    /// The code expired.
    #[error("the session code has expired; ask the user for a new one")]
    ExpiredCode,
    /// The relay refused for another reason (rate limit, busy, ...).
    #[error("relay refused: {0}")]
    Refused(RelayError),
    /// Key confirmation failed: the secret digits were wrong. The code is burned.
    #[error("wrong code: pairing failed, and the code is now burned; ask the user for a new code")]
    WrongCode,
    /// The user granted nothing.
    #[error("the user denied consent")]
    ConsentDenied,
    /// The user did not answer the consent request in time (silence means no).
    #[error("the user did not answer in time")]
    ConsentTimeout,
    /// The agent refused a request because its scope was not granted.
    #[error("scope denied: the user did not grant \"{0}\"")]
    ScopeDenied(Scope),
    /// The relay closed the connection mid-session (it is shutting down, or the agent vanished).
    #[error("the relay closed the session: {0}")]
    RelayClosed(String),
    /// The session ended.
    #[error("session ended: {0}")]
    Ended(EndReason),
    /// The agent could not do what was asked.
    #[error("the agent could not complete the request: {0}")]
    Failed(String),
    /// The relay refused a fleet query (bad token, unknown device, store failure).
    #[error("{0}")]
    Fleet(tether_proto::fleet::FleetError),
    /// The relay refused a session-record query or change (bad token, viewer role, unknown id,
    /// closed record, bad input); nothing changed.
    #[error("{0}")]
    Record(tether_proto::records::RecordError),
    /// A local file could not be written.
    #[error("{0}")]
    Output(String),
    /// An invitation did not happen (the user said no, or the relay knows no such colleague).
    #[error("invitation failed: {0}")]
    Invite(String),
    /// A chat line was empty or too long; nothing was sent.
    #[error("chat message not sent: {0}")]
    Chat(#[from] tether_proto::chat::ChatError),
    /// Clipboard text over the limit; nothing was sent (or, from the agent, nothing was taken).
    #[error("{0}")]
    Clipboard(#[from] tether_proto::clipboard::ClipboardError),
    /// A session on an enrolled device did not start: the device refused (the technician's
    /// certificate, nobody logged in, IT's policy), or the console could not check the device.
    #[error("{0}")]
    Device(String),
    /// The session's end-to-end connection could not be made; the session ended (nothing falls
    /// back to the relay's streams).
    #[error("{0}")]
    EndToEnd(#[from] tether_net::e2e::E2eError),
    /// Something broke protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A session frame from the agent failed to open or decode (tampered, replayed, moved from
    /// another stream, or malformed). On a request the session ends: the agent is told, and every
    /// later request fails with [`ConsoleError::Ended`].
    #[error("protocol error: {0}")]
    Broken(String),
}

impl ConsoleError {
    /// The process exit code for this error (documented in README.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            ConsoleError::Connect(ConnectError::FingerprintMismatch { .. }) => 4,
            ConsoleError::Connect(_) | ConsoleError::Redirect { .. } => 3,
            ConsoleError::BadToken(_) | ConsoleError::Forbidden(_) => 5,
            ConsoleError::UnknownCode | ConsoleError::ExpiredCode | ConsoleError::Refused(_) => 6,
            ConsoleError::WrongCode => 7,
            ConsoleError::Chat(_) | ConsoleError::Clipboard(_) => 2,
            ConsoleError::ConsentDenied
            | ConsoleError::ConsentTimeout
            | ConsoleError::Declined(_)
            | ConsoleError::Device(_)
            | ConsoleError::Invite(_) => 8,
            ConsoleError::ScopeDenied(_) => 9,
            ConsoleError::Fleet(e)
                if matches!(
                    e.kind,
                    tether_proto::fleet::FleetErrorKind::BadToken
                        | tether_proto::fleet::FleetErrorKind::Forbidden
                ) =>
            {
                5
            }
            ConsoleError::Fleet(e)
                if e.kind == tether_proto::fleet::FleetErrorKind::UnknownDevice =>
            {
                11
            }
            ConsoleError::Record(e) => {
                use tether_proto::records::RecordErrorKind as K;
                match e.kind {
                    K::BadToken | K::Forbidden => 5,
                    K::UnknownRecord => 11,
                    K::Invalid => 2,
                    K::Closed => 12,
                    K::StoreFailed => 10,
                }
            }
            ConsoleError::Ended(_)
            | ConsoleError::RelayClosed(_)
            | ConsoleError::Failed(_)
            | ConsoleError::Protocol(_)
            | ConsoleError::Broken(_)
            | ConsoleError::EndToEnd(_)
            | ConsoleError::Fleet(_)
            | ConsoleError::Output(_) => 10,
        }
    }
}

impl From<RelayError> for ConsoleError {
    fn from(e: RelayError) -> Self {
        match e.kind {
            RelayErrorKind::BadToken => ConsoleError::BadToken(e.message),
            RelayErrorKind::Forbidden => ConsoleError::Forbidden(e.message),
            RelayErrorKind::Declined => ConsoleError::Declined(e.message),
            RelayErrorKind::UnknownSlot => ConsoleError::UnknownCode,
            RelayErrorKind::ExpiredSlot => ConsoleError::ExpiredCode,
            _ => ConsoleError::Refused(e),
        }
    }
}
