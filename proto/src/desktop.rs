//! The local socket between an enrolled device's service and the per-user agent in the logged-in
//! user's desktop session.
//!
//! The service (`tether-agent run`, root) holds the device key and the org key pinned at
//! enrollment, but cannot show a window or capture the user's screen. The per-user agent
//! (`tether-agent desktop`, started when the user logs in) can, but holds no secret. For an
//! attended session without a code, the per-user agent carries the session (relay connection,
//! consent dialog, screen, input), and the service runs the device's side of
//! [`crate::handshake`] for it and hands over the keys only when the technician's certificate
//! verified.
//!
//! # Message flow
//! ```text
//! service                                     per-user agent
//!   (checks the peer: SO_PEERCRED uid = the active graphical session's user)
//!   |-- Welcome(org, device) -------------------->|  or Refused(reason), then close
//!   |-- Wake(ticket, technician) ----------------->|  connects to the relay, trades the ticket
//!   |<----------------------- Handshake(Hello) ----|  from the console, on stream 0
//!   |-- Handshake(Reply) ------------------------->|  or Refused(reason)
//!   |<----------------------- Handshake(Finish) ---|
//!   |-- Keys(master, technician) ----------------->|  or Refused(reason); then the session runs
//!
//!   (an unattended session the service runs itself, at any time)
//!   |-- Unattended(technician, scopes) ----------->|  the user is told
//!   |<---------------------------- EndUnattended --|  the user ends it
//!   |-- UnattendedEnded(reason) ------------------>|
//! ```

use serde::{Deserialize, Serialize};

use crate::handshake::HandshakeMsg;
use crate::msg::TechnicianIdentity;
use crate::org::TechnicianCert;

/// Service → per-user agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ServiceToDesktop {
    /// The peer is the logged-in user's: what this device is.
    Welcome {
        /// The organisation that enrolled this computer.
        org: String,
        /// The device id.
        device_id: String,
        /// The relay's address.
        relay: String,
        /// The relay's certificate fingerprint, when the enrollment pinned one.
        relay_cert_sha256: Option<String>,
        /// Else the CA file that verifies it.
        relay_ca_file: Option<String>,
        /// What IT's signed policy (as the device holds it) lets a signed technician use without
        /// asking the user; shown to them.
        unattended: crate::scope::ScopeSet,
    },
    /// No (this peer, or this session), and why.
    Refused {
        /// In words, for the user or the technician.
        reason: String,
    },
    /// A technician of the organisation asks for an attended session: connect with this ticket.
    Wake {
        /// From the relay's wake; single use.
        ticket: u64,
        /// The technician as the relay named them (the certificate decides).
        technician: TechnicianIdentity,
    },
    /// The device's next handshake message, for the console.
    Handshake(HandshakeMsg),
    /// An unattended session (which the service runs itself, under IT's signed policy) started:
    /// the user is told, and may end it ([`DesktopToService::EndUnattended`]).
    Unattended {
        /// Who, as their organisation's key vouched for them.
        technician: TechnicianIdentity,
        /// What IT's policy let them use.
        scopes: crate::scope::ScopeSet,
    },
    /// An unattended session ended.
    UnattendedEnded {
        /// Why.
        reason: crate::msg::EndReason,
    },
    /// The technician's certificate verified: the session's keys.
    Keys {
        /// [`crate::seal::SessionKeys::handover`].
        master: [u8; 32],
        /// Who the org key vouched for.
        technician: TechnicianCert,
    },
}

/// Per-user agent → service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum DesktopToService {
    /// The console's next handshake message.
    Handshake(HandshakeMsg),
    /// The session for the last wake did not happen (the relay, the console); the service stops
    /// waiting for it.
    Abandoned {
        /// Why.
        reason: String,
    },
    /// The user ends every unattended session running now.
    EndUnattended,
}
