//! Pairing: turning the code's secret into a session key, over a stream the relay can read.
//!
//! # Message flow
//! ```text
//! console (SPAKE2 side A)                        agent (SPAKE2 side B)
//!   |-- Spake(msg_a) ------------------------------>|   both sent at once, no ordering needed
//!   |<------------------------------ Spake(msg_b) --|
//!   |   key = SPAKE2(secret, msg_a, msg_b)          |
//!   |-- Confirm(HMAC(k_console, transcript)) ------>|   each side checks the other's tag
//!   |<------ Confirm(HMAC(k_agent, transcript)) ----|
//! ```
//! SPAKE2's `finish` succeeds even when the secrets differ (the keys just differ), so the explicit
//! confirmation is what makes a wrong code fail — on **both** sides, since each checks the other's
//! tag. The SPAKE2 identities include the slot, binding the key to this rendezvous. The relay sees
//! both messages but cannot test a guess offline, and a failed guess burns the slot.
//!
//! The state machine does no I/O: feed it with [`Pairing::handle`], drain it with
//! [`Pairing::poll_transmit`], and read the result with [`Pairing::outcome`].

use std::collections::VecDeque;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use crate::code::{Secret, Slot};
use crate::seal::SessionKeys;

/// A pairing message, sent as a plain frame on spliced stream 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum PairingMsg {
    /// The sender's SPAKE2 message.
    Spake(Vec<u8>),
    /// The sender's key-confirmation tag.
    Confirm([u8; 32]),
}

/// Which side of the pairing this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The technician's console (SPAKE2 side A).
    Console,
    /// The agent (SPAKE2 side B).
    Agent,
}

/// Why pairing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    /// The peer's confirmation tag did not match: the two sides used different secrets.
    #[error("pairing failed: the code does not match (the code is now used up; ask for a new one)")]
    WrongCode,
    /// The peer's SPAKE2 message was invalid.
    #[error("pairing failed: malformed SPAKE2 message")]
    Malformed,
    /// A message arrived out of order or twice.
    #[error("pairing failed: unexpected {0} message")]
    Unexpected(&'static str),
}

enum State {
    AwaitSpake {
        spake: Spake2<Ed25519Group>,
        mine: Vec<u8>,
    },
    AwaitConfirm {
        keys: SessionKeys,
        expected: [u8; 32],
    },
    Done(SessionKeys),
    Failed(PairingError),
}

/// The pairing state machine for one side.
pub struct Pairing {
    side: Side,
    state: State,
    outbox: VecDeque<PairingMsg>,
}

impl std::fmt::Debug for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::AwaitSpake { .. } => "await-spake",
            State::AwaitConfirm { .. } => "await-confirm",
            State::Done(_) => "done",
            State::Failed(_) => "failed",
        };
        f.debug_struct("Pairing")
            .field("side", &self.side)
            .field("state", &state)
            .finish()
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Pairing {
    /// Starts pairing for `side` with the code's secret; the first message is ready to transmit.
    pub fn new(side: Side, slot: Slot, secret: &Secret) -> Self {
        let password = Password::new(secret.password());
        let id_a = Identity::new(format!("tether/1 console slot {slot}").as_bytes());
        let id_b = Identity::new(format!("tether/1 agent slot {slot}").as_bytes());
        let (spake, mine) = match side {
            Side::Console => Spake2::<Ed25519Group>::start_a(&password, &id_a, &id_b),
            Side::Agent => Spake2::<Ed25519Group>::start_b(&password, &id_a, &id_b),
        };
        let outbox = VecDeque::from([PairingMsg::Spake(mine.clone())]);
        Pairing {
            side,
            state: State::AwaitSpake { spake, mine },
            outbox,
        }
    }

    /// The next message to send to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<PairingMsg> {
        self.outbox.pop_front()
    }

    /// Feeds one message from the peer.
    pub fn handle(&mut self, msg: PairingMsg) -> Result<(), PairingError> {
        let state = std::mem::replace(
            &mut self.state,
            State::Failed(PairingError::Unexpected("any")),
        );
        let next = match (state, msg) {
            (State::AwaitSpake { spake, mine }, PairingMsg::Spake(theirs)) => {
                self.on_spake(spake, &mine, &theirs)
            }
            (State::AwaitConfirm { keys, expected }, PairingMsg::Confirm(tag)) => {
                // Constant-time comparison through the MAC's verify path.
                if ct_eq(&tag, &expected) {
                    State::Done(keys)
                } else {
                    State::Failed(PairingError::WrongCode)
                }
            }
            (State::Failed(e), _) => State::Failed(e),
            (_, PairingMsg::Spake(_)) => State::Failed(PairingError::Unexpected("SPAKE2")),
            (_, PairingMsg::Confirm(_)) => State::Failed(PairingError::Unexpected("confirmation")),
        };
        self.state = next;
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    fn on_spake(&mut self, spake: Spake2<Ed25519Group>, mine: &[u8], theirs: &[u8]) -> State {
        let Ok(shared) = spake.finish(theirs) else {
            return State::Failed(PairingError::Malformed);
        };
        let (msg_a, msg_b) = match self.side {
            Side::Console => (mine, theirs),
            Side::Agent => (theirs, mine),
        };
        let mut transcript = Vec::with_capacity(msg_a.len() + msg_b.len() + 8);
        transcript.extend_from_slice(&(msg_a.len() as u32).to_be_bytes());
        transcript.extend_from_slice(msg_a);
        transcript.extend_from_slice(&(msg_b.len() as u32).to_be_bytes());
        transcript.extend_from_slice(msg_b);

        let hk = Hkdf::<Sha256>::new(Some(&transcript), &shared);
        let mut master = [0u8; 32];
        let mut confirm_console = [0u8; 32];
        let mut confirm_agent = [0u8; 32];
        // expand() only fails for outputs longer than 255 * 32 bytes; these are 32.
        let _ = hk.expand(b"tether/1 session master", &mut master);
        let _ = hk.expand(b"tether/1 confirm console", &mut confirm_console);
        let _ = hk.expand(b"tether/1 confirm agent", &mut confirm_agent);
        let tag = |key: &[u8; 32]| -> [u8; 32] {
            // HMAC accepts keys of any length; new_from_slice cannot fail.
            let mut mac =
                <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
            mac.update(&transcript);
            mac.finalize().into_bytes().into()
        };
        let (mine_tag, expected) = match self.side {
            Side::Console => (tag(&confirm_console), tag(&confirm_agent)),
            Side::Agent => (tag(&confirm_agent), tag(&confirm_console)),
        };
        self.outbox.push_back(PairingMsg::Confirm(mine_tag));
        State::AwaitConfirm {
            keys: SessionKeys::from_master(master),
            expected,
        }
    }

    /// `None` while pairing is in progress, then the keys or the error.
    pub fn outcome(&self) -> Option<Result<&SessionKeys, PairingError>> {
        match &self.state {
            State::Done(keys) => Some(Ok(keys)),
            State::Failed(e) => Some(Err(e.clone())),
            _ => None,
        }
    }

    /// Consumes a finished pairing, returning its keys.
    pub fn into_keys(self) -> Result<SessionKeys, PairingError> {
        match self.state {
            State::Done(keys) => Ok(keys),
            State::Failed(e) => Err(e),
            _ => Err(PairingError::Unexpected("early finish")),
        }
    }
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Direction;
    use rand::SeedableRng;

    /// Runs two state machines against each other in memory until both have an outcome.
    fn run_pair(
        console: &mut Pairing,
        agent: &mut Pairing,
    ) -> (Result<(), PairingError>, Result<(), PairingError>) {
        let (mut rc, mut ra) = (Ok(()), Ok(()));
        for _ in 0..10 {
            while let Some(m) = console.poll_transmit() {
                if ra.is_ok() {
                    ra = agent.handle(m);
                }
            }
            while let Some(m) = agent.poll_transmit() {
                if rc.is_ok() {
                    rc = console.handle(m);
                }
            }
            if console.outcome().is_some() && agent.outcome().is_some() {
                break;
            }
        }
        (rc, ra)
    }

    fn secrets(seed: u64) -> (Secret, Secret) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let a = Secret::random(&mut rng);
        let mut b = Secret::random(&mut rng);
        while b == a {
            b = Secret::random(&mut rng);
        }
        (a, b)
    }

    #[test]
    fn right_secret_pairs_with_equal_keys() {
        let (secret, _) = secrets(1);
        let mut c = Pairing::new(Side::Console, Slot(417), &secret);
        let mut a = Pairing::new(Side::Agent, Slot(417), &secret);
        assert_eq!(run_pair(&mut c, &mut a), (Ok(()), Ok(())));
        let (kc, ka) = (c.into_keys().unwrap(), a.into_keys().unwrap());
        assert_eq!(kc.verification_code(), ka.verification_code());
        // Keys really agree: what one side seals the other opens.
        let sealed = kc.sealer(0, Direction::ConsoleToAgent).seal(b"hi").unwrap();
        assert_eq!(
            ka.opener(0, Direction::ConsoleToAgent)
                .open(&sealed)
                .unwrap(),
            b"hi"
        );
    }

    #[test]
    fn wrong_secret_fails_on_both_sides() {
        let (right, wrong) = secrets(2);
        let mut c = Pairing::new(Side::Console, Slot(417), &wrong);
        let mut a = Pairing::new(Side::Agent, Slot(417), &right);
        let (rc, ra) = run_pair(&mut c, &mut a);
        assert_eq!(rc, Err(PairingError::WrongCode));
        assert_eq!(ra, Err(PairingError::WrongCode));
        assert!(c.into_keys().is_err() && a.into_keys().is_err());
    }

    #[test]
    fn different_slot_fails() {
        let (secret, _) = secrets(3);
        let mut c = Pairing::new(Side::Console, Slot(417), &secret);
        let mut a = Pairing::new(Side::Agent, Slot(418), &secret);
        let (rc, ra) = run_pair(&mut c, &mut a);
        assert!(rc.is_err() && ra.is_err());
    }

    #[test]
    fn out_of_order_and_malformed_messages_fail() {
        let (secret, _) = secrets(4);
        let mut a = Pairing::new(Side::Agent, Slot(417), &secret);
        assert_eq!(
            a.handle(PairingMsg::Confirm([0; 32])),
            Err(PairingError::Unexpected("confirmation"))
        );
        let mut a = Pairing::new(Side::Agent, Slot(417), &secret);
        assert_eq!(
            a.handle(PairingMsg::Spake(vec![1, 2, 3])),
            Err(PairingError::Malformed)
        );
        // Once failed, it stays failed.
        assert!(a.handle(PairingMsg::Confirm([0; 32])).is_err());
        assert!(matches!(a.outcome(), Some(Err(_))));
    }
}
