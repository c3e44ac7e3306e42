//! Enrolled devices: enrollment, inventory reports, and IT's fleet queries.
//!
//! # Message flow: a device (`Hello{Device}` on its control stream)
//! ```text
//! agent (device)                                   relay
//!   |-- Hello{Device} -------------------------------->|
//!   |<------------------------------- HelloReply ------|
//! enrollment, once:
//!   |-- DeviceToRelay::Enroll{token, secret_sha256,  |  token: single use, expiring, stored hashed
//!   |     device_key} -------------------------------->|  device_key: the public half, for consoles
//!   |<------------- RelayToDevice::Enrolled{id, org} --|  or Error(UnknownToken | TokenExpired | TokenUsed)
//! service mode, every connection:
//!   |-- DeviceToRelay::Auth{device_id, secret} ------->|  relay compares SHA-256(secret) with its record
//!   |<-- RelayToDevice::Authenticated{last_seq, policy} |  the last report it stored for this device,
//!   |                                                  |  and IT's signed unattended policy
//!   |-- DeviceToRelay::Report{seq, digest, Full|Delta}>|  seq must be last_seq + 1 (see below)
//!   |<------------------- RelayToDevice::Ack{seq} -----|  or Rejected{seq, error}; the store is unchanged
//!   |<------ RelayToDevice::Resync{seq, expected} -----|  or: renumber, send a full report as `expected`
//! ```
//! # Sequence numbers
//! Reports are numbered 1, 2, 3, ... per device, and the relay is the judge of where a device stands:
//! - `seq == last_seq + 1` is the next report and is stored (if its content checks out);
//! - `seq == last_seq` with the digest the relay holds for it is a resend after a lost ack:
//!   `Ack{duplicate: true}`, nothing changes;
//! - anything else is answered with [`RelayToDevice::Resync`], naming the number the relay expects:
//!   the same `seq` with other content, or an older `seq` ([`FleetErrorKind::SeqConflict`]: the device's
//!   counter went back, e.g. its data directory was restored from a snapshot), a number past
//!   `last_seq + 1` ([`FleetErrorKind::SeqGap`]), or 0 and numbers past [`MAX_SEQ`]
//!   ([`FleetErrorKind::SeqOutOfRange`]). The device then sends its newest inventory as a full report
//!   under `expected`. A report is never acknowledged unless the relay holds exactly that report.
//!
//! A report names its device id, and the relay refuses one that is not the id the connection
//! authenticated as. A delta names its base (`base_seq`) and the digest of the inventory it produces, so
//! a delta against the wrong base, or a tampered one, is refused instead of corrupting the snapshot.
//!
//! # Message flow: IT's console (`Hello{Console}`, then one `ConsoleToRelay::Fleet`)
//! ```text
//!   |-- ConsoleToRelay::Fleet{token, query} ---------->|  the technician's org scopes every answer
//!   |<------------------------- FleetReply::... -------|  Export streams Device(..)* then End
//! ```

use serde::{Deserialize, Serialize};

use crate::inventory::{Inventory, InventoryDelta, Package};
use crate::org::{OrgPublic, PublicKey, SignedPolicy};

/// Longest accepted enrollment token, device id or secret string.
pub const MAX_CREDENTIAL_LEN: usize = 128;

/// Largest report sequence number: the store keeps them as signed 64-bit integers (SQLite's
/// `INTEGER`), and no device makes 2^63 reports, so a larger one is crafted or corrupt.
pub const MAX_SEQ: u64 = i64::MAX as u64;

/// An enrollment token as IT hands it to a device: the relay's token, and after a `.` the org key's
/// public half (64 hex digits) when the organisation has one. The relay is shown only the first
/// part; the device pins the org key, so trust in the organisation comes with the token, out of band,
/// and never from the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollToken {
    /// What the relay checks.
    pub token: String,
    /// The org key the device pins, if the token carries one.
    pub org_key: Option<OrgPublic>,
}

/// Why an enrollment token was not accepted before anything was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty, or longer than [`MAX_CREDENTIAL_LEN`].
    #[error("the enrollment token is empty or too long; paste it as IT gave it")]
    Length,
    /// The part after the `.` is not a public key.
    #[error(
        "the organisation key in the enrollment token is damaged ({0}); paste the whole token as IT gave it"
    )]
    OrgKey(crate::org::TrustError),
}

impl std::str::FromStr for EnrollToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, TokenError> {
        let s = s.trim();
        let (token, org_key) = match s.split_once('.') {
            Some((token, key)) => (token, Some(key.parse().map_err(TokenError::OrgKey)?)),
            None => (s, None),
        };
        if token.is_empty() || token.len() > MAX_CREDENTIAL_LEN {
            return Err(TokenError::Length);
        }
        Ok(EnrollToken {
            token: token.to_string(),
            org_key,
        })
    }
}

impl std::fmt::Display for EnrollToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.token)?;
        if let Some(key) = &self.org_key {
            write!(f, ".{key}")?;
        }
        Ok(())
    }
}

/// Device → relay on a `Role::Device` control stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum DeviceToRelay {
    /// Enroll with a token from `tether-relay enroll-token create`.
    Enroll {
        /// The enrollment token.
        token: String,
        /// SHA-256 (hex) of the device secret the agent just made; the secret itself never travels
        /// at enrollment.
        secret_sha256: String,
        /// The host name, so IT recognises the device.
        hostname: String,
        /// The public half of the device key the agent just made (see [`crate::org`]): what a
        /// technician's console checks in a session without a code. Its secret never leaves the
        /// device.
        device_key: PublicKey,
    },
    /// Prove the device identity for this connection.
    Auth {
        /// The id the relay assigned at enrollment.
        device_id: String,
        /// The device secret (hex).
        secret: String,
    },
    /// An inventory report (after `Auth`).
    Report(Report),
}

/// One inventory report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Report {
    /// The reporting device; must be the authenticated one.
    pub device_id: String,
    /// Sequence number, from 1, increasing by one per report (at most [`MAX_SEQ`]).
    pub seq: u64,
    /// [`Inventory::digest`] of the full inventory this report describes.
    pub digest: String,
    /// The content.
    pub body: ReportBody,
}

/// A report's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ReportBody {
    /// A full inventory.
    Full(Box<Inventory>),
    /// Changes since report `base_seq`.
    Delta {
        /// The report this delta applies to.
        base_seq: u64,
        /// The changes.
        delta: Box<InventoryDelta>,
    },
}

/// Relay → device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum RelayToDevice {
    /// Enrollment succeeded.
    Enrolled {
        /// The device's id from now on.
        device_id: String,
        /// The organisation the token belonged to.
        org: String,
    },
    /// `Auth` succeeded.
    Authenticated {
        /// The last report the relay stored for this device, if any.
        last_seq: Option<u64>,
        /// The organisation's unattended policy as IT signed it, if the relay holds one. The device
        /// checks it under the org key it pinned and takes it only if it is newer than its own, so
        /// the relay can withhold a policy but never widen or roll one back.
        policy: Option<SignedPolicy>,
    },
    /// Report `seq` is stored (or was already: `duplicate`).
    Ack {
        /// The report.
        seq: u64,
        /// It had been stored before (a resend after a lost ack).
        duplicate: bool,
    },
    /// Report `seq` was refused; nothing was stored.
    Rejected {
        /// The report.
        seq: u64,
        /// Why.
        error: FleetError,
    },
    /// Report `seq` was not stored because its number does not follow the relay's last report for
    /// this device (see the module doc); the device sends its newest inventory as a full report
    /// numbered `expected` and continues from there.
    Resync {
        /// The report.
        seq: u64,
        /// The number the relay expects next (its last stored report + 1).
        expected: u64,
        /// Why: [`FleetErrorKind::SeqConflict`], [`FleetErrorKind::SeqGap`] or
        /// [`FleetErrorKind::SeqOutOfRange`].
        error: FleetError,
    },
    /// The request failed; the relay closes the connection after this.
    Error(FleetError),
}

/// How long a [`Wake`]'s ticket may wait for the device's session connection, in seconds.
pub const WAKE_TTL_SECS: u64 = 20;

/// Relay → device, alone on a stream the relay opens on the device's service connection: a
/// technician wants a session without a code. The device answers with one [`WakeAnswer`] on the
/// same stream, then (when coming) opens an agent connection and sends
/// [`crate::msg::AgentToRelay::OpenWakeSlot`] with the ticket.
///
/// Nothing here is trusted for the session itself: who the technician is and whether the session
/// is unattended are checked again in [`crate::handshake`], signed by the technician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Wake {
    /// Single use, valid for [`WAKE_TTL_SECS`].
    pub ticket: u64,
    /// The technician as the relay's directory knows them.
    pub technician: crate::msg::TechnicianIdentity,
    /// Whether the technician asks for an unattended session (nobody is asked).
    pub unattended: bool,
}

/// Device → relay: the answer to a [`Wake`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum WakeAnswer {
    /// The device opens its session connection now.
    Coming,
    /// The device will not take the session (nobody is logged in, no pinned org key, ...); the
    /// technician sees the reason.
    Refused {
        /// Why, in words.
        reason: String,
    },
}

/// An error about enrollment, reports or fleet queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[error("{message}")]
pub struct FleetError {
    /// What went wrong, for programs.
    pub kind: FleetErrorKind,
    /// What went wrong, for people.
    pub message: String,
}

impl FleetError {
    /// Builds an error of `kind` with a human message.
    pub fn new(kind: FleetErrorKind, message: impl Into<String>) -> Self {
        FleetError {
            kind,
            message: message.into(),
        }
    }
}

/// The kinds of [`FleetError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum FleetErrorKind {
    /// No enrollment token has this value.
    UnknownToken,
    /// The enrollment token expired.
    TokenExpired,
    /// The enrollment token has no uses left.
    TokenUsed,
    /// Device id or secret wrong (or the device was removed).
    BadDeviceCredentials,
    /// A message that makes no sense now (a report before `Auth`, a second `Auth`, ...).
    UnexpectedMessage,
    /// A report names a device other than the authenticated one.
    WrongDevice,
    /// A delta's base is not the last stored report; send a full report.
    BaseMismatch,
    /// The report's content does not match its digest (tampered or corrupted).
    DigestMismatch,
    /// A field is empty, too long or malformed.
    Invalid,
    /// The technician token is not valid.
    BadToken,
    /// The technician's role may not read the fleet (viewers).
    Forbidden,
    /// No device of the technician's org matches.
    UnknownDevice,
    /// The relay's store failed.
    StoreFailed,
    /// The relay already holds a different report under this number, or a later one: the device's
    /// counter went back (a restored data directory). Answered with [`RelayToDevice::Resync`].
    SeqConflict,
    /// The number skips past the relay's last report + 1. Answered with [`RelayToDevice::Resync`].
    SeqGap,
    /// The number is 0 or above [`MAX_SEQ`]. Answered with [`RelayToDevice::Resync`].
    SeqOutOfRange,
    /// The relay cannot write its audit log right now, so it refuses to enroll devices until it can.
    AuditUnavailable,
}

/// A technician's question about their org's fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum FleetQuery {
    /// All devices of the org.
    ListDevices,
    /// One device with its current inventory (by id or unique host name).
    ShowDevice {
        /// Id or host name.
        device: String,
    },
    /// Every device with its current inventory.
    Export,
    /// What changed on a device, oldest first.
    History {
        /// Id or host name.
        device: String,
    },
    /// Devices with a package of this name (and version, if given).
    Search {
        /// Package name (exact).
        name: String,
        /// Version (exact).
        version: Option<String>,
    },
}

/// The relay's answer to a [`FleetQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum FleetReply {
    /// For `ListDevices`.
    Devices(Vec<DeviceSummary>),
    /// For `ShowDevice`, and one per device for `Export` (followed by `End`).
    Device(Box<DeviceRecord>),
    /// For `History`.
    History(Vec<ChangeRecord>),
    /// For `Search`.
    Hits(Vec<SearchHit>),
    /// The end of an `Export`.
    End,
    /// Refused.
    Error(FleetError),
}

/// A device as the fleet list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeviceSummary {
    /// Id.
    pub device_id: String,
    /// Organisation.
    pub org: String,
    /// Host name (from the last report, else from enrollment).
    pub hostname: String,
    /// OS name and version, if reported.
    pub os: String,
    /// Enrollment time (Unix seconds).
    pub enrolled_unix: u64,
    /// First report (Unix seconds).
    pub first_seen_unix: Option<u64>,
    /// Last report (Unix seconds).
    pub last_seen_unix: Option<u64>,
    /// Last stored report's sequence number.
    pub last_seq: Option<u64>,
    /// Number of packages in the current snapshot.
    pub packages: u32,
    /// The device key it enrolled with (`None` for a device enrolled before device keys).
    pub device_key: Option<PublicKey>,
}

/// A device and its current inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeviceRecord {
    /// The summary.
    pub summary: DeviceSummary,
    /// The current snapshot, once one was reported.
    pub inventory: Option<Inventory>,
}

/// Kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ChangeKind {
    /// The first full inventory arrived.
    FirstReport,
    /// A package appeared.
    Installed,
    /// A package's version changed.
    Upgraded,
    /// A package went away.
    Removed,
    /// A hardware fact changed (RAM, disks, NICs, OS version, ...).
    Hardware,
}

impl ChangeKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::FirstReport => "first-report",
            ChangeKind::Installed => "installed",
            ChangeKind::Upgraded => "upgraded",
            ChangeKind::Removed => "removed",
            ChangeKind::Hardware => "hardware",
        }
    }
}

/// One change in a device's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ChangeRecord {
    /// The device.
    pub device_id: String,
    /// The report that brought it.
    pub seq: u64,
    /// When the relay stored it (Unix seconds).
    pub at_unix: u64,
    /// Kind.
    pub kind: ChangeKind,
    /// What changed: a package "source:name:arch" or a hardware path such as "memory.total".
    pub item: String,
    /// The value before.
    pub old: Option<String>,
    /// The value after.
    pub new: Option<String>,
}

/// A device with a matching package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SearchHit {
    /// The device.
    pub device_id: String,
    /// Its host name.
    pub hostname: String,
    /// The package found.
    pub package: Package,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;

    /// Encodes one message as a frame, decodes it back, and checks it is unchanged and fully used.
    pub(crate) fn round_trip<T>(msg: T) -> Result<(), TestCaseError>
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let frame = codec::encode(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (back, used) = codec::decode::<T>(&frame)
            .map_err(|e| TestCaseError::fail(e.to_string()))?
            .unwrap();
        prop_assert_eq!(used, frame.len());
        prop_assert_eq!(back, msg);
        Ok(())
    }

    #[test]
    fn an_enrollment_token_carries_the_org_key_after_a_dot() {
        let key = crate::org::SecretKey::from_bytes([7; 32]).public();
        let t: EnrollToken = format!(" et_abc.{key}\n").parse().unwrap();
        assert_eq!(t.token, "et_abc");
        assert_eq!(t.org_key, Some(key));
        assert_eq!(t.to_string(), format!("et_abc.{key}"));
        let plain: EnrollToken = "et_abc".parse().unwrap();
        assert_eq!(plain.org_key, None);
        assert_eq!(plain.to_string(), "et_abc");
        // A key cut short in copying is refused before anything is sent, not taken as no key.
        let cut = format!("et_abc.{}", &key.to_string()[..60]);
        assert!(matches!(
            cut.parse::<EnrollToken>(),
            Err(TokenError::OrgKey(_))
        ));
        assert_eq!("".parse::<EnrollToken>(), Err(TokenError::Length));
        assert_eq!(
            format!(".{key}").parse::<EnrollToken>(),
            Err(TokenError::Length)
        );
    }

    /// A config with `cases` cases and short collections: the default (up to 100 elements per
    /// collection, nested four deep in an inventory) makes values of millions of elements.
    pub(crate) fn small(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            max_default_size_range: 6,
            max_shrink_iters: 0,
            ..ProptestConfig::default()
        }
    }

    /// Round-trips `cases` arbitrary `T`s on a thread with a large stack: the derived strategies for
    /// the inventory types nest deeply enough to overflow a test thread's default stack in debug builds.
    pub(crate) fn round_trip_all<T>(cases: u32)
    where
        T: Arbitrary
            + Serialize
            + serde::de::DeserializeOwned
            + PartialEq
            + std::fmt::Debug
            + 'static,
    {
        std::thread::Builder::new()
            .stack_size(256 * 1024 * 1024)
            .spawn(move || {
                // A fixed seed: these values are huge and slow to generate, so a run covers few of them;
                // the same few every time keeps CI repeatable (a failure reproduces on every run).
                let rng = proptest::test_runner::TestRng::deterministic_rng(
                    proptest::test_runner::RngAlgorithm::ChaCha,
                );
                let mut runner = proptest::test_runner::TestRunner::new_with_rng(small(cases), rng);
                // A value past MAX_FRAME_LEN is refused at encoding, which is the behaviour wanted.
                runner
                    .run(&any::<T>(), |m| match codec::encode(&m) {
                        Err(codec::CodecError::TooLarge(_)) => Ok(()),
                        _ => round_trip(m),
                    })
                    .unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn device_to_relay() {
        round_trip_all::<DeviceToRelay>(4);
    }
    #[test]
    fn relay_to_device() {
        round_trip_all::<RelayToDevice>(4);
    }
    #[test]
    fn fleet_query() {
        round_trip_all::<FleetQuery>(4);
    }
    #[test]
    fn fleet_reply() {
        round_trip_all::<FleetReply>(8);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = codec::from_body::<DeviceToRelay>(&bytes);
            let _ = codec::from_body::<FleetReply>(&bytes);
        }
    }
}
