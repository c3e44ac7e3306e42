//! Sealing session frames end to end.
//!
//! Every stream of a session has two keys, one per direction, derived by HKDF-SHA256 from the pairing's
//! master key with the stream number and direction as `info`. Frames are sealed with ChaCha20-Poly1305
//! under a nonce that is a counter starting at 0 (RFC 8439, through `ring`'s assembly implementation:
//! about twice the speed of the portable one on the machines measured, see BENCHMARKS.md). The counter is never sent: each side knows which
//! frame comes next, so a frame the relay drops, repeats, reorders or moves to another stream fails
//! to open, and a failure to open ends the session. There is no plaintext mode.

use hkdf::Hkdf;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use serde::{Serialize, de::DeserializeOwned};
use sha2::Sha256;

use crate::codec::{self, CodecError};

/// Bytes the AEAD tag adds to every sealed frame.
pub const TAG_LEN: usize = 16;

/// Direction of travel within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the technician's console to the agent.
    ConsoleToAgent,
    /// From the agent to the console.
    AgentToConsole,
}

/// Errors from sealing and opening.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The frame failed authentication: tampered, replayed, reordered, or sealed under another key.
    #[error("a session frame failed authentication (tampered, replayed or out of order)")]
    Tampered,
    /// The counter would wrap; the stream must not carry more frames.
    #[error("stream frame counter exhausted")]
    Exhausted,
    /// The plaintext could not be framed or the opened body did not decode.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// The session's master key from pairing. `Debug` never shows it.
#[derive(Clone)]
pub struct SessionKeys {
    master: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

impl SessionKeys {
    pub(crate) fn from_master(master: [u8; 32]) -> Self {
        SessionKeys { master }
    }

    /// The master key, to hand the session to the process that serves it: the enrolled service
    /// runs the handshake with the device key and gives the keys to the logged-in user's own
    /// agent, over a local socket that checked who is at the other end ([`crate::desktop`]). It
    /// must never be logged, stored or sent anywhere else.
    pub fn handover(&self) -> [u8; 32] {
        self.master
    }

    /// The keys [`SessionKeys::handover`] gave.
    pub fn taken_over(master: [u8; 32]) -> Self {
        SessionKeys { master }
    }

    fn derive(&self, label: &str) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::from_prk(&self.master)
            .unwrap_or_else(|_| unreachable!("32-byte PRK is valid"));
        let mut out = [0u8; 32];
        let _ = hk.expand(label.as_bytes(), &mut out);
        out
    }

    fn cipher(&self, stream: u32, dir: Direction) -> LessSafeKey {
        let d = match dir {
            Direction::ConsoleToAgent => "c2a",
            Direction::AgentToConsole => "a2c",
        };
        let key = self.derive(&format!("tether/1 stream {stream} {d}"));
        let key = UnboundKey::new(&CHACHA20_POLY1305, &key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is valid for ChaCha20-Poly1305"));
        LessSafeKey::new(key)
    }

    /// The sealer for frames this side sends on `stream` in `dir`.
    pub fn sealer(&self, stream: u32, dir: Direction) -> Sealer {
        Sealer {
            cipher: self.cipher(stream, dir),
            counter: 0,
        }
    }

    /// The opener for frames this side receives on `stream` in `dir`.
    pub fn opener(&self, stream: u32, dir: Direction) -> Opener {
        Opener {
            cipher: self.cipher(stream, dir),
            counter: 0,
        }
    }

    /// A short string both sides can read out to each other: `123 456`.
    pub fn verification_code(&self) -> String {
        let k = self.derive("tether/1 verification");
        let n = u32::from_be_bytes([k[0], k[1], k[2], k[3]]) % 1_000_000;
        format!("{:03} {:03}", n / 1000, n % 1000)
    }
}

/// The additional data every frame is authenticated with.
const AAD: &[u8] = b"tether/1";

/// The nonce of frame number `counter`: each key seals each counter value once, as the counter only
/// goes up and a key belongs to one direction of one stream.
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals frames in one direction of one stream.
pub struct Sealer {
    cipher: LessSafeKey,
    counter: u64,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// Seals `plaintext` into a frame body.
    pub fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut frame = Vec::with_capacity(plaintext.len() + TAG_LEN);
        frame.extend_from_slice(plaintext);
        self.seal_owned(frame)
    }

    /// Seals `plaintext` in place, appending the tag.
    pub fn seal_owned(&mut self, mut plaintext: Vec<u8>) -> Result<Vec<u8>, SealError> {
        if plaintext.len() + TAG_LEN > codec::MAX_FRAME_LEN {
            return Err(CodecError::TooLarge(plaintext.len() + TAG_LEN).into());
        }
        let n = nonce(self.counter);
        self.counter = self.counter.checked_add(1).ok_or(SealError::Exhausted)?;
        self.cipher
            .seal_in_place_append_tag(n, Aad::from(AAD), &mut plaintext)
            .map_err(|_| SealError::Exhausted)?;
        Ok(plaintext)
    }

    /// Serialises and seals a message into a frame body.
    pub fn seal_msg<T: Serialize>(&mut self, msg: &T) -> Result<Vec<u8>, SealError> {
        self.seal_owned(codec::to_body(msg)?)
    }
}

/// Opens frames in one direction of one stream, in order.
pub struct Opener {
    cipher: LessSafeKey,
    counter: u64,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// Opens the next frame body.
    pub fn open(&mut self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        self.open_owned(sealed.to_vec())
    }

    /// Opens the next frame body in place, without a copy.
    pub fn open_owned(&mut self, mut sealed: Vec<u8>) -> Result<Vec<u8>, SealError> {
        let n = nonce(self.counter);
        let len = self
            .cipher
            .open_in_place(n, Aad::from(AAD), &mut sealed)
            .map_err(|_| SealError::Tampered)?
            .len();
        self.counter = self.counter.checked_add(1).ok_or(SealError::Exhausted)?;
        sealed.truncate(len);
        Ok(sealed)
    }

    /// Opens the next frame body and decodes the message in it.
    pub fn open_msg<T: DeserializeOwned>(&mut self, sealed: Vec<u8>) -> Result<T, SealError> {
        Ok(codec::from_body(&self.open_owned(sealed)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(b: u8) -> SessionKeys {
        SessionKeys::from_master([b; 32])
    }

    #[test]
    fn frames_open_in_order_only() {
        let k = keys(7);
        let mut s = k.sealer(1, Direction::AgentToConsole);
        let f0 = s.seal(b"zero").unwrap();
        let f1 = s.seal(b"one").unwrap();
        assert!(
            !f0.windows(4).any(|w| w == b"zero"),
            "plaintext visible in ciphertext"
        );

        // Reordered: frame 1 first fails.
        assert!(matches!(
            k.opener(1, Direction::AgentToConsole).open(&f1),
            Err(SealError::Tampered)
        ));
        // In order works; replaying frame 0 afterwards fails.
        let mut o = k.opener(1, Direction::AgentToConsole);
        assert_eq!(o.open(&f0).unwrap(), b"zero");
        assert!(matches!(o.open(&f0), Err(SealError::Tampered)));
    }

    #[test]
    fn other_stream_direction_or_key_cannot_open() {
        let k = keys(7);
        let f = k.sealer(1, Direction::AgentToConsole).seal(b"x").unwrap();
        assert!(k.opener(2, Direction::AgentToConsole).open(&f).is_err());
        assert!(k.opener(1, Direction::ConsoleToAgent).open(&f).is_err());
        assert!(
            keys(8)
                .opener(1, Direction::AgentToConsole)
                .open(&f)
                .is_err()
        );
        let mut tampered = f.clone();
        tampered[0] ^= 1;
        assert!(
            k.opener(1, Direction::AgentToConsole)
                .open(&tampered)
                .is_err()
        );
    }

    #[test]
    fn messages_round_trip_sealed() {
        let k = keys(1);
        let msg = crate::msg::ConsoleToAgent::ConsentRequest {
            scopes: crate::ScopeSet::all(),
        };
        let body = k
            .sealer(0, Direction::ConsoleToAgent)
            .seal_msg(&msg)
            .unwrap();
        let back: crate::msg::ConsoleToAgent = k
            .opener(0, Direction::ConsoleToAgent)
            .open_msg(body)
            .unwrap();
        assert_eq!(back, msg);
    }

    /// The frames are RFC 8439 ChaCha20-Poly1305, exactly as protocol 4 sealed them with the
    /// portable `chacha20poly1305` crate: each implementation opens what the other sealed, at every
    /// counter, and a frame of one stream does not open under another stream's key.
    #[test]
    fn frames_are_the_portable_rfc_8439_construction() {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let k = keys(3);
        let portable = |stream: u32| {
            let key = k.derive(&format!("tether/1 stream {stream} c2a"));
            chacha20poly1305::ChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key))
        };
        let n = |i: u64| {
            let mut b = [0u8; 12];
            b[4..].copy_from_slice(&i.to_be_bytes());
            b
        };
        let mut s = k.sealer(5, Direction::ConsoleToAgent);
        let mut o = k.opener(5, Direction::ConsoleToAgent);
        for i in 0..4u64 {
            let text = vec![i as u8; 1000 * i as usize + 3];
            let ours = s.seal(&text).unwrap();
            let theirs = portable(5)
                .encrypt(
                    (&n(i)).into(),
                    Payload {
                        msg: &text,
                        aad: AAD,
                    },
                )
                .unwrap();
            assert_eq!(ours, theirs, "frame {i} differs from the portable seal");
            assert_eq!(o.open(&theirs).unwrap(), text);
            let other = Payload {
                msg: &ours,
                aad: AAD,
            };
            assert!(portable(6).decrypt((&n(i)).into(), other).is_err());
        }
    }
}
