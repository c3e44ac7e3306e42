//! Why the relay ended a session, and the stable names of refusal kinds, as stored in the audit
//! log and the session records. The strings are storage: existing logs, databases and tests read
//! them, so each one is spelled out here and never derived from `Debug`.

use tether_proto::fleet::FleetErrorKind;
use tether_proto::msg::RelayErrorKind;

/// Why a spliced session ended, as far as the relay saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The console's connection broke or it left before the session started.
    ConsoleLeft,
    /// The agent's connection broke or it could not open a stream.
    AgentLeft,
    /// One side ended it normally (or the agent reported the end).
    Ended,
    /// The session reached `Limits::max_session`.
    TimeLimit,
    /// The relay is shutting down.
    ShuttingDown,
}

impl EndReason {
    /// The stored name (audit `reason`, record `end_reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ConsoleLeft => "console left",
            EndReason::AgentLeft => "agent left",
            EndReason::Ended => "ended",
            EndReason::TimeLimit => "time limit",
            EndReason::ShuttingDown => "relay shutting down",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for EndReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The stored name of a claim refusal's kind (audit `claim_refused` `reason`).
pub fn relay_error_name(kind: RelayErrorKind) -> &'static str {
    match kind {
        RelayErrorKind::UnsupportedVersion => "UnsupportedVersion",
        RelayErrorKind::Malformed => "Malformed",
        RelayErrorKind::UnexpectedMessage => "UnexpectedMessage",
        RelayErrorKind::UnknownSlot => "UnknownSlot",
        RelayErrorKind::ExpiredSlot => "ExpiredSlot",
        RelayErrorKind::BadToken => "BadToken",
        RelayErrorKind::RateLimited => "RateLimited",
        RelayErrorKind::TooManySlots => "TooManySlots",
        RelayErrorKind::Forbidden => "Forbidden",
        RelayErrorKind::Declined => "Declined",
        RelayErrorKind::Busy => "Busy",
        RelayErrorKind::ShuttingDown => "ShuttingDown",
        RelayErrorKind::UnknownTechnician => "UnknownTechnician",
    }
}

/// The stored name of an enrollment refusal's kind (audit `enroll_refused` `reason`).
pub fn fleet_error_name(kind: FleetErrorKind) -> &'static str {
    match kind {
        FleetErrorKind::UnknownToken => "UnknownToken",
        FleetErrorKind::TokenExpired => "TokenExpired",
        FleetErrorKind::TokenUsed => "TokenUsed",
        FleetErrorKind::BadDeviceCredentials => "BadDeviceCredentials",
        FleetErrorKind::UnexpectedMessage => "UnexpectedMessage",
        FleetErrorKind::WrongDevice => "WrongDevice",
        FleetErrorKind::BaseMismatch => "BaseMismatch",
        FleetErrorKind::DigestMismatch => "DigestMismatch",
        FleetErrorKind::Invalid => "Invalid",
        FleetErrorKind::BadToken => "BadToken",
        FleetErrorKind::Forbidden => "Forbidden",
        FleetErrorKind::UnknownDevice => "UnknownDevice",
        FleetErrorKind::StoreFailed => "StoreFailed",
        FleetErrorKind::SeqConflict => "SeqConflict",
        FleetErrorKind::SeqGap => "SeqGap",
        FleetErrorKind::SeqOutOfRange => "SeqOutOfRange",
        FleetErrorKind::AuditUnavailable => "AuditUnavailable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names were the `Debug` spelling before they were spelled out; they must never drift.
    #[test]
    fn stored_names_are_the_historic_spelling() {
        use RelayErrorKind as R;
        for k in [
            R::UnsupportedVersion,
            R::Malformed,
            R::UnexpectedMessage,
            R::UnknownSlot,
            R::ExpiredSlot,
            R::BadToken,
            R::RateLimited,
            R::TooManySlots,
            R::Forbidden,
            R::Declined,
            R::Busy,
            R::ShuttingDown,
            R::UnknownTechnician,
        ] {
            assert_eq!(relay_error_name(k), format!("{k:?}"));
        }
        use FleetErrorKind as F;
        for k in [
            F::UnknownToken,
            F::TokenExpired,
            F::TokenUsed,
            F::BadDeviceCredentials,
            F::UnexpectedMessage,
            F::WrongDevice,
            F::BaseMismatch,
            F::DigestMismatch,
            F::Invalid,
            F::BadToken,
            F::Forbidden,
            F::UnknownDevice,
            F::StoreFailed,
            F::SeqConflict,
            F::SeqGap,
            F::SeqOutOfRange,
            F::AuditUnavailable,
        ] {
            assert_eq!(fleet_error_name(k), format!("{k:?}"));
        }
        let reasons = [
            (EndReason::ConsoleLeft, "console left"),
            (EndReason::AgentLeft, "agent left"),
            (EndReason::Ended, "ended"),
            (EndReason::TimeLimit, "time limit"),
            (EndReason::ShuttingDown, "relay shutting down"),
        ];
        for (r, s) in reasons {
            assert_eq!(r.as_str(), s);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{s}\""));
        }
    }
}
