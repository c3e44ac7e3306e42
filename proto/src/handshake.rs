//! The authenticated key exchange for sessions on enrolled devices, run over the relay-spliced stream
//! instead of [`crate::pairing`] when there is no code.
//!
//! # Message flow
//! ```text
//! console (signed technician)                         agent (enrolled device)
//!   |-- Hello(cert, device, eph_c) -------------------->|  checks cert under the pinned org key
//!   |<------------------- Reply(eph_d, sig_device(th1)) |  th1 = H(label, device, hello, eph_d)
//!   |   checks sig_device with the device key it knows  |
//!   |-- Finish(sig_technician(th2)) ------------------->|  th2 = H(th1, sig_device)
//!   |   keys = HKDF(X25519(eph_c, eph_d), th2)          |  checks sig_technician with the cert's key
//! ```
//! Both ephemeral keys are fresh for every session, so a recorded handshake replays nothing: the
//! device signs a transcript that holds the console's fresh key, the technician one that holds the
//! device's. Each signature covers both identities (the certificate and the device's key), so
//! neither side can be talked into a session with someone else. The relay sees all three messages
//! and holds no secret that would let it finish either side: it is not trusted at any step.
//!
//! The device trusts the org key it pinned at enrollment, never the relay; the console trusts the
//! device key from its fleet record. The machine does no I/O and takes the time as an argument.

use std::collections::VecDeque;

use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey as X25519Public};

use crate::codec;
use crate::org::{
    DeviceSecret, OrgPublic, PublicKey, SignedTechnician, TechnicianCert, TechnicianSecret,
    TrustError,
};
use crate::seal::SessionKeys;

const DEVICE_LABEL: &[u8] = b"tether/1 enrolled device transcript\0";
const TECHNICIAN_LABEL: &[u8] = b"tether/1 enrolled technician transcript\0";

/// A handshake message, sent as a plain frame on spliced stream 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum HandshakeMsg {
    /// The console's certificate, the device it means, and its ephemeral X25519 key.
    Hello {
        /// The technician's certificate, signed by the org key.
        technician: SignedTechnician,
        /// The device the console expects to reach (its enrolled key).
        device: PublicKey,
        /// The console's ephemeral X25519 public key.
        eph: [u8; 32],
        /// The technician asks for a session nobody is asked about (only IT's signed policy's
        /// scopes). Signed with the rest of the transcript, so the relay cannot turn an attended
        /// session into an unattended one or back.
        unattended: bool,
    },
    /// The device's ephemeral key and its signature over the transcript so far.
    Reply {
        /// The device's ephemeral X25519 public key.
        eph: [u8; 32],
        /// The device key's signature over `th1`.
        sig: Vec<u8>,
    },
    /// The technician key's signature over the whole transcript.
    Finish {
        /// The technician key's signature over `th2`.
        sig: Vec<u8>,
    },
    /// The device will not go on, and says why, before the stream closes. Not authenticated (the
    /// relay could send one too): it only explains an end that the relay could cause anyway.
    Refused {
        /// Why, in words.
        reason: String,
    },
}

/// Why the handshake failed. Each ends the session before anything is sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A certificate, key or signature was not trusted.
    #[error("the session was refused: {0}")]
    Trust(#[from] TrustError),
    /// The console asked for another device than this one.
    #[error("the session was refused: the technician's console asked for another device")]
    WrongDevice,
    /// IT revoked this technician's key (in the signed policy the device holds).
    #[error("the session was refused: IT revoked this technician's key ({0})")]
    Revoked(String),
    /// An ephemeral key was a low-order point (no shared secret would come of it).
    #[error("the session was refused: the peer's key exchange value is invalid")]
    WeakKey,
    /// A message arrived out of order or twice.
    #[error("the session was refused: unexpected {0} message")]
    Unexpected(&'static str),
    /// The peer said it will not go on (unauthenticated words; see [`HandshakeMsg::Refused`]).
    #[error("the device refused the session: {0}")]
    PeerRefused(String),
}

/// What the device knows before a session: its own key and the organisation it pinned.
#[derive(Debug, Clone)]
pub struct DeviceTrust {
    /// The device key made at enrollment.
    pub key: DeviceSecret,
    /// The org key pinned at enrollment.
    pub org_key: OrgPublic,
    /// The organisation's name pinned at enrollment.
    pub org_name: String,
    /// Technician keys IT revoked (from the signed policy the device holds).
    pub revoked: Vec<PublicKey>,
}

/// What the console brings: the technician's key and certificate, and the device key it expects.
#[derive(Debug, Clone)]
pub struct TechnicianTrust {
    /// The technician's own key.
    pub key: TechnicianSecret,
    /// Its certificate, signed by the org key.
    pub cert: SignedTechnician,
    /// The device's enrolled key, from the fleet record.
    pub device: PublicKey,
    /// Ask for an unattended session (see [`HandshakeMsg::Hello`]).
    pub unattended: bool,
}

enum State {
    /// Console: sent Hello, waiting for Reply.
    ConsoleAwaitReply {
        eph: EphemeralSecret,
        hello: Vec<u8>,
        trust: Box<TechnicianTrust>,
    },
    /// Device: waiting for Hello.
    DeviceAwaitHello {
        trust: Box<DeviceTrust>,
        eph: EphemeralSecret,
    },
    /// Device: sent Reply, waiting for Finish.
    DeviceAwaitFinish {
        th2: [u8; 32],
        shared: [u8; 32],
        cert: Box<TechnicianCert>,
        unattended: bool,
    },
    Done {
        keys: SessionKeys,
        technician: Option<Box<TechnicianCert>>,
        unattended: bool,
    },
    Failed(HandshakeError),
}

/// The handshake for one side.
pub struct Handshake {
    state: State,
    outbox: VecDeque<HandshakeMsg>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handshake(..)")
    }
}

fn th1(device: &PublicKey, hello: &[u8], eph_d: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"tether/1 enrolled handshake\0");
    h.update(device.0);
    h.update((hello.len() as u64).to_be_bytes());
    h.update(hello);
    h.update(eph_d);
    h.finalize().into()
}

fn th2(th1: &[u8; 32], device_sig: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(th1);
    h.update((device_sig.len() as u64).to_be_bytes());
    h.update(device_sig);
    h.finalize().into()
}

fn keys(shared: &[u8; 32], th2: &[u8; 32]) -> SessionKeys {
    let hk = Hkdf::<Sha256>::new(Some(th2), shared);
    let mut master = [0u8; 32];
    // expand() only fails for outputs longer than 255 * 32 bytes.
    let _ = hk.expand(b"tether/1 enrolled session master", &mut master);
    SessionKeys::from_master(master)
}

fn agree(eph: EphemeralSecret, theirs: &[u8; 32]) -> Result<[u8; 32], HandshakeError> {
    let shared = eph.diffie_hellman(&X25519Public::from(*theirs));
    if !shared.was_contributory() {
        return Err(HandshakeError::WeakKey);
    }
    Ok(shared.to_bytes())
}

fn hello_body(msg: &HandshakeMsg) -> Vec<u8> {
    // Encoding a message this module built cannot fail; an empty transcript would only make the
    // signatures fail to verify, never succeed.
    codec::to_body(msg).unwrap_or_default()
}

impl Handshake {
    /// The console's side: the Hello is ready to transmit.
    pub fn console(trust: TechnicianTrust, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let eph = EphemeralSecret::random_from_rng(&mut *rng);
        let hello = HandshakeMsg::Hello {
            technician: trust.cert.clone(),
            device: trust.device,
            eph: X25519Public::from(&eph).to_bytes(),
            unattended: trust.unattended,
        };
        let body = hello_body(&hello);
        Handshake {
            state: State::ConsoleAwaitReply {
                eph,
                hello: body,
                trust: Box::new(trust),
            },
            outbox: VecDeque::from([hello]),
        }
    }

    /// The device's side: it waits for the console's Hello.
    pub fn device(trust: DeviceTrust, rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Handshake {
            state: State::DeviceAwaitHello {
                trust: Box::new(trust),
                eph: EphemeralSecret::random_from_rng(&mut *rng),
            },
            outbox: VecDeque::new(),
        }
    }

    /// The next message to send to the peer, if any.
    pub fn poll_transmit(&mut self) -> Option<HandshakeMsg> {
        self.outbox.pop_front()
    }

    /// Feeds one message from the peer, at `now_unix` (certificates are checked against it).
    pub fn handle(&mut self, msg: HandshakeMsg, now_unix: u64) -> Result<(), HandshakeError> {
        let state = std::mem::replace(
            &mut self.state,
            State::Failed(HandshakeError::Unexpected("any")),
        );
        self.state = match self.step(state, msg, now_unix) {
            Ok(s) => s,
            Err(e) => State::Failed(e),
        };
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    fn step(
        &mut self,
        state: State,
        msg: HandshakeMsg,
        now_unix: u64,
    ) -> Result<State, HandshakeError> {
        match (state, msg) {
            (State::DeviceAwaitHello { trust, eph }, hello @ HandshakeMsg::Hello { .. }) => {
                let HandshakeMsg::Hello {
                    technician,
                    device,
                    eph: eph_c,
                    unattended,
                } = &hello
                else {
                    unreachable!("matched above")
                };
                let cert = technician
                    .verify(&trust.org_key, &trust.org_name, now_unix)?
                    .clone();
                if trust.revoked.contains(&cert.key) {
                    return Err(HandshakeError::Revoked(cert.key.fingerprint()));
                }
                if *device != trust.key.public() {
                    return Err(HandshakeError::WrongDevice);
                }
                let eph_d = X25519Public::from(&eph).to_bytes();
                let shared = agree(eph, eph_c)?;
                let t1 = th1(device, &hello_body(&hello), &eph_d);
                let sig = trust.key.sign(DEVICE_LABEL, &t1);
                let t2 = th2(&t1, &sig);
                self.outbox
                    .push_back(HandshakeMsg::Reply { eph: eph_d, sig });
                Ok(State::DeviceAwaitFinish {
                    th2: t2,
                    shared,
                    cert: Box::new(cert),
                    unattended: *unattended,
                })
            }
            (
                State::ConsoleAwaitReply { eph, hello, trust },
                HandshakeMsg::Reply { eph: eph_d, sig },
            ) => {
                let t1 = th1(&trust.device, &hello, &eph_d);
                trust
                    .device
                    .verify("device signature", DEVICE_LABEL, &t1, &sig)?;
                let shared = agree(eph, &eph_d)?;
                let t2 = th2(&t1, &sig);
                let mine = trust.key.sign(TECHNICIAN_LABEL, &t2);
                self.outbox.push_back(HandshakeMsg::Finish { sig: mine });
                Ok(State::Done {
                    keys: keys(&shared, &t2),
                    technician: None,
                    unattended: trust.unattended,
                })
            }
            (
                State::DeviceAwaitFinish {
                    th2,
                    shared,
                    cert,
                    unattended,
                },
                HandshakeMsg::Finish { sig },
            ) => {
                cert.key
                    .verify("technician signature", TECHNICIAN_LABEL, &th2, &sig)?;
                Ok(State::Done {
                    keys: keys(&shared, &th2),
                    technician: Some(cert),
                    unattended,
                })
            }
            (State::Failed(e), _) => Err(e),
            (_, HandshakeMsg::Refused { reason }) => Err(HandshakeError::PeerRefused(
                crate::records::truncate_text(&reason, 300, false),
            )),
            (_, HandshakeMsg::Hello { .. }) => Err(HandshakeError::Unexpected("hello")),
            (_, HandshakeMsg::Reply { .. }) => Err(HandshakeError::Unexpected("reply")),
            (_, HandshakeMsg::Finish { .. }) => Err(HandshakeError::Unexpected("finish")),
        }
    }

    /// `None` while the handshake runs, then the keys or the error.
    pub fn outcome(&self) -> Option<Result<&SessionKeys, HandshakeError>> {
        match &self.state {
            State::Done { keys, .. } => Some(Ok(keys)),
            State::Failed(e) => Some(Err(e.clone())),
            _ => None,
        }
    }

    /// On the device, once done: the technician the org key vouched for (name, organisation).
    pub fn technician(&self) -> Option<&TechnicianCert> {
        match &self.state {
            State::Done { technician, .. } => technician.as_deref(),
            _ => None,
        }
    }

    /// Whether the session is unattended, as the console's Hello says (the technician signs it
    /// with the rest of the transcript): on the device from the Hello on, so a session of the wrong
    /// kind is refused before the device answers; on the console once done.
    pub fn unattended(&self) -> Option<bool> {
        match &self.state {
            State::DeviceAwaitFinish { unattended, .. } | State::Done { unattended, .. } => {
                Some(*unattended)
            }
            _ => None,
        }
    }

    /// Consumes a finished handshake, returning its keys.
    pub fn into_keys(self) -> Result<SessionKeys, HandshakeError> {
        match self.state {
            State::Done { keys, .. } => Ok(keys),
            State::Failed(e) => Err(e),
            _ => Err(HandshakeError::Unexpected("early finish")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::SecretKey;
    use crate::seal::Direction;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const NOW: u64 = 1_500;

    struct World {
        org: SecretKey,
        tech: SecretKey,
        device: SecretKey,
        cert: SignedTechnician,
        rng: StdRng,
        revoked: Vec<PublicKey>,
    }

    fn world(seed: u64) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let org = SecretKey::generate(&mut rng);
        let tech = SecretKey::generate(&mut rng);
        let device = SecretKey::generate(&mut rng);
        let cert = SignedTechnician::issue(
            &org,
            TechnicianCert {
                org: "Acme IT".into(),
                name: "Ada Lovelace".into(),
                key: tech.public(),
                not_before_unix: 1_000,
                not_after_unix: 2_000,
            },
        )
        .unwrap();
        World {
            org,
            tech,
            device,
            cert,
            rng,
            revoked: Vec::new(),
        }
    }

    impl World {
        fn console(&mut self) -> Handshake {
            let trust = TechnicianTrust {
                key: self.tech.clone(),
                cert: self.cert.clone(),
                device: self.device.public(),
                unattended: false,
            };
            Handshake::console(trust, &mut self.rng)
        }

        fn device(&mut self) -> Handshake {
            let trust = DeviceTrust {
                key: self.device.clone(),
                org_key: self.org.public(),
                org_name: "Acme IT".into(),
                revoked: self.revoked.clone(),
            };
            Handshake::device(trust, &mut self.rng)
        }
    }

    /// Runs both sides to the end, passing every message through `relay` (which may change it).
    fn run(
        console: &mut Handshake,
        device: &mut Handshake,
        mut relay: impl FnMut(HandshakeMsg) -> HandshakeMsg,
    ) -> (Result<(), HandshakeError>, Result<(), HandshakeError>) {
        let (mut c, mut d) = (Ok(()), Ok(()));
        for _ in 0..4 {
            while let Some(m) = console.poll_transmit() {
                if d.is_ok() {
                    d = device.handle(relay(m), NOW);
                }
            }
            while let Some(m) = device.poll_transmit() {
                if c.is_ok() {
                    c = console.handle(relay(m), NOW);
                }
            }
        }
        (c, d)
    }

    fn same_keys(a: &Handshake, b: &Handshake) -> bool {
        let (Some(Ok(ka)), Some(Ok(kb))) = (a.outcome(), b.outcome()) else {
            return false;
        };
        let mut s = ka.sealer(1, Direction::ConsoleToAgent);
        let mut o = kb.opener(1, Direction::ConsoleToAgent);
        o.open(&s.seal(b"hello").unwrap()).is_ok()
    }

    #[test]
    fn a_signed_technician_and_the_enrolled_device_agree_on_keys() {
        let mut w = world(1);
        let (mut c, mut d) = (w.console(), w.device());
        assert_eq!(run(&mut c, &mut d, |m| m), (Ok(()), Ok(())));
        assert!(same_keys(&c, &d));
        assert_eq!(d.technician().unwrap().name, "Ada Lovelace");
        assert_eq!((c.unattended(), d.unattended()), (Some(false), Some(false)));
        assert_eq!(
            c.outcome().unwrap().unwrap().verification_code(),
            d.outcome().unwrap().unwrap().verification_code()
        );
    }

    #[test]
    fn a_technician_the_org_did_not_sign_is_refused_whatever_the_relay_says() {
        let mut w = world(2);
        let rogue_org = SecretKey::generate(&mut w.rng);
        w.cert = SignedTechnician::issue(&rogue_org, w.cert.cert.clone()).unwrap();
        let (mut c, mut d) = (w.console(), w.device());
        let (_, dr) = run(&mut c, &mut d, |m| m);
        assert_eq!(
            dr,
            Err(HandshakeError::Trust(TrustError::BadSignature(
                "technician certificate"
            )))
        );
        assert!(c.outcome().is_none(), "the console never gets keys");
    }

    #[test]
    fn a_stolen_certificate_without_its_key_does_not_finish() {
        // The relay (or anyone) holds a real certificate but not the technician's secret key.
        let mut w = world(3);
        w.tech = SecretKey::generate(&mut w.rng);
        let (mut c, mut d) = (w.console(), w.device());
        let (cr, dr) = run(&mut c, &mut d, |m| m);
        assert_eq!(cr, Ok(()));
        assert_eq!(
            dr,
            Err(HandshakeError::Trust(TrustError::BadSignature(
                "technician signature"
            )))
        );
        assert!(!same_keys(&c, &d));
    }

    #[test]
    fn a_relay_posing_as_the_device_is_refused_by_the_console() {
        let mut w = world(4);
        let mut c = w.console();
        // The relay answers with a device key of its own.
        w.device = SecretKey::generate(&mut w.rng);
        let mut fake = w.device();
        let (cr, dr) = run(&mut c, &mut fake, |m| m);
        // The fake device refuses a Hello meant for another device, so it never replies.
        assert_eq!(dr, Err(HandshakeError::WrongDevice));
        assert!(cr.is_ok() && c.outcome().is_none());
        // Were it to reply anyway, its signature is not the enrolled device's.
        let mut w = world(4);
        let mut c = w.console();
        let mut d = w.device();
        let _ = d.handle(c.poll_transmit().unwrap(), NOW);
        let HandshakeMsg::Reply { eph, .. } = d.poll_transmit().unwrap() else {
            panic!()
        };
        let other = SecretKey::generate(&mut w.rng);
        let sig = other.sign(DEVICE_LABEL, &[0; 32]);
        assert_eq!(
            c.handle(HandshakeMsg::Reply { eph, sig }, NOW),
            Err(HandshakeError::Trust(TrustError::BadSignature(
                "device signature"
            )))
        );
    }

    #[test]
    fn an_expired_certificate_is_refused() {
        let mut w = world(5);
        let (mut c, mut d) = (w.console(), w.device());
        let hello = c.poll_transmit().unwrap();
        assert!(matches!(
            d.handle(hello, 2_000),
            Err(HandshakeError::Trust(TrustError::NotValidNow { .. }))
        ));
    }

    #[test]
    fn a_low_order_key_and_messages_out_of_order_are_refused() {
        let mut w = world(6);
        let (mut c, mut d) = (w.console(), w.device());
        let HandshakeMsg::Hello {
            technician, device, ..
        } = c.poll_transmit().unwrap()
        else {
            panic!()
        };
        assert_eq!(
            d.handle(
                HandshakeMsg::Hello {
                    technician,
                    device,
                    eph: [0; 32],
                    unattended: false,
                },
                NOW
            ),
            Err(HandshakeError::WeakKey)
        );
        let mut d = w.device();
        assert_eq!(
            d.handle(HandshakeMsg::Finish { sig: vec![0; 64] }, NOW),
            Err(HandshakeError::Unexpected("finish"))
        );
        let mut c2 = w.console();
        let hello = c2.poll_transmit().unwrap();
        assert_eq!(
            c2.handle(hello, NOW),
            Err(HandshakeError::Unexpected("hello"))
        );
        // A failed handshake stays failed.
        let hello = w.console().poll_transmit().unwrap();
        assert_eq!(
            d.handle(hello, NOW),
            Err(HandshakeError::Unexpected("finish"))
        );
    }

    #[test]
    fn a_revoked_technician_key_is_refused_though_its_certificate_verifies() {
        let mut w = world(10);
        w.revoked = vec![w.tech.public()];
        let (mut c, mut d) = (w.console(), w.device());
        let (_, dr) = run(&mut c, &mut d, |m| m);
        assert_eq!(
            dr,
            Err(HandshakeError::Revoked(w.tech.public().fingerprint()))
        );
        assert!(c.outcome().is_none(), "the console never gets keys");
    }

    #[test]
    fn a_relay_that_makes_an_attended_session_unattended_breaks_the_handshake() {
        let mut w = world(9);
        let (mut c, mut d) = (w.console(), w.device());
        let (rc, rd) = run(&mut c, &mut d, |m| match m {
            HandshakeMsg::Hello {
                technician,
                device,
                eph,
                ..
            } => HandshakeMsg::Hello {
                technician,
                device,
                eph,
                unattended: true,
            },
            other => other,
        });
        assert!(
            matches!(rc, Err(HandshakeError::Trust(_))),
            "the console must refuse the device's signature over another hello: {rc:?}"
        );
        assert!(rd.is_ok(), "the device waits for a Finish that never comes");
        assert_eq!(
            d.unattended(),
            Some(true),
            "the device read the changed hello (and its driver refuses a mode it was not woken for)"
        );
    }

    #[test]
    fn a_replayed_reply_from_an_earlier_session_does_not_verify() {
        let mut w = world(7);
        let (mut c1, mut d1) = (w.console(), w.device());
        let mut recorded = None;
        let _ = run(&mut c1, &mut d1, |m| {
            if matches!(m, HandshakeMsg::Reply { .. }) {
                recorded = Some(m.clone());
            }
            m
        });
        let mut c2 = w.console();
        let _ = c2.poll_transmit();
        assert!(matches!(
            c2.handle(recorded.unwrap(), NOW),
            Err(HandshakeError::Trust(TrustError::BadSignature(_)))
        ));
    }

    proptest! {
        #[test]
        fn a_relay_that_changes_one_byte_of_any_message_gets_no_session(
            which in 0usize..3, pos in any::<prop::sample::Index>(), bit in 0u8..8, seed in 0u64..4
        ) {
            let mut w = world(100 + seed);
            let (mut c, mut d) = (w.console(), w.device());
            let (mut n, mut changed) = (0, false);
            let _ = run(&mut c, &mut d, |m| {
                let this = n;
                n += 1;
                if this != which {
                    return m;
                }
                let mut body = codec::to_body(&m).unwrap();
                let i = pos.index(body.len());
                body[i] ^= 1 << bit;
                // A change that no longer decodes would end the stream; pass the original then.
                match codec::from_body::<HandshakeMsg>(&body) {
                    Ok(other) => {
                        changed = other != m;
                        other
                    }
                    Err(_) => m,
                }
            });
            let both_done = matches!(c.outcome(), Some(Ok(_))) && matches!(d.outcome(), Some(Ok(_)));
            if changed {
                prop_assert!(!both_done, "a changed message still gave a session");
            } else {
                prop_assert!(both_done && same_keys(&c, &d));
            }
        }

        #[test]
        fn garbage_messages_are_refused_without_panics(msg in any::<HandshakeMsg>()) {
            let mut w = world(9);
            let mut d = w.device();
            prop_assert!(d.handle(msg.clone(), NOW).is_err());
            let mut c = w.console();
            let _ = c.poll_transmit();
            prop_assert!(c.handle(msg, NOW).is_err());
        }
    }
}
