//! Direct paths for a session's end-to-end connection: finding one through the ends' NATs and
//! keeping it, sans I/O (time is passed in).
//!
//! The end-to-end connection ([`crate::forward`]) starts relayed. Each end then sends the other,
//! sealed on the transport stream, a [`PathOffer`]: the addresses it can be reached at (the one
//! the relay observed, and its own), and a secret. When both ends allow direct paths, each
//! [`Prober`] sends probe packets from the connection's own socket to every address of the other
//! at once, so each NAT sees an outgoing packet before the other end's arrives (hole punching). A
//! probe is answered from where it came; an answer to a probe sent to address A, arriving from A,
//! proves A: from then on the end sends its QUIC packets to A instead of the relay. Probes keep
//! going on the direct path; when their answers stop for [`PATH_TIMEOUT`], the end goes back to
//! the relay at once and probes again.
//!
//! QUIC never learns of the switch: its packets are the same either way, end-to-end encrypted
//! and pinned. Probes are authenticated with an HMAC keyed by both ends' secrets, so nobody who
//! did not see the sealed offers can steer a session's packets to an address of their choosing.
//!
//! Probe packets start with a zero byte, like the relay's bind packets, so they never pass for QUIC.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The first bytes of every probe packet: a zero byte (never a QUIC packet), `TP`, the format
/// version.
pub const MAGIC: [u8; 4] = [0x00, b'T', b'P', 1];

/// The most addresses an offer may carry (and the most a prober keeps).
pub const MAX_CANDIDATES: usize = 16;

/// Length of the secret in a [`PathOffer`].
pub const SECRET_LEN: usize = 16;

/// Probes to every candidate this often while looking, for [`FAST_FOR`] after a start.
pub const FAST_PROBE: Duration = Duration::from_millis(100);

/// How long probing stays fast after it starts (or restarts after a lost direct path).
pub const FAST_FOR: Duration = Duration::from_secs(5);

/// Probes to every candidate this often once fast probing found nothing: a NAT that maps anew
/// may still open later, at a cost of a few bytes a second.
pub const SLOW_PROBE: Duration = Duration::from_secs(2);

/// Probes on the direct path this often, to know it still works.
pub const KEEP_PROBE: Duration = Duration::from_millis(250);

/// A direct path whose probes go unanswered this long is given up for the relay.
pub const PATH_TIMEOUT: Duration = Duration::from_millis(1500);

/// Probes sent and not yet answered that are remembered.
const OUTSTANDING: usize = 64;

const TAG_LEN: usize = 16;
const KIND_PROBE: u8 = 1;
const KIND_ANSWER: u8 = 2;
const PACKET_LEN: usize = MAGIC.len() + 1 + 8 + TAG_LEN;

/// What each end tells the other, sealed on the transport stream, once the end-to-end connection
/// is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PathOffer {
    /// Half of the probes' key; random, this session only.
    pub secret: [u8; SECRET_LEN],
    /// Where this end can be reached, or `None`: this end takes no direct path (`--relay-only`, or
    /// IT's policy), and neither end probes.
    pub candidates: Option<Vec<SocketAddr>>,
}

/// Why a [`PathOffer`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    /// More addresses than [`MAX_CANDIDATES`].
    #[error("the path offer names {0} addresses (at most {MAX_CANDIDATES})")]
    TooMany(usize),
    /// An address nobody can send to (unspecified, multicast, broadcast, or port 0).
    #[error("the path offer names {0}, which is not an address of a host")]
    NotHost(SocketAddr),
}

impl PathOffer {
    /// The candidates, checked: a bounded number of unicast host addresses. `None` when the peer
    /// takes no direct path.
    pub fn checked(&self) -> Result<Option<&[SocketAddr]>, OfferError> {
        let Some(c) = &self.candidates else {
            return Ok(None);
        };
        if c.len() > MAX_CANDIDATES {
            return Err(OfferError::TooMany(c.len()));
        }
        if let Some(bad) = c.iter().find(|a| !is_host(a)) {
            return Err(OfferError::NotHost(*bad));
        }
        Ok(Some(c))
    }
}

fn is_host(a: &SocketAddr) -> bool {
    let ip = a.ip();
    let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
    a.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}

/// Whether `datagram` is a probe packet rather than a QUIC packet.
pub fn is_probe_packet(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

/// Which way the session's end-to-end packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Path {
    /// Through the relay's forwarder.
    Relayed,
    /// Straight to the other end at this address.
    Direct(SocketAddr),
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Path::Relayed => f.write_str("relayed"),
            Path::Direct(a) => write!(f, "direct to {a}"),
        }
    }
}

/// What [`Prober::handle`] made of a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Not a probe packet: QUIC's.
    NotProbe,
    /// A probe packet, dealt with; send the answer, if any.
    Probe(Option<(SocketAddr, Vec<u8>)>),
}

struct Candidate {
    addr: SocketAddr,
    next: Instant,
}

/// One end's search for a direct path, and its watch over the one it found. Feed it every probe
/// packet that arrives ([`Prober::handle`]), send what [`Prober::poll_transmit`] gives, and call
/// again at [`Prober::poll_timeout`].
pub struct Prober {
    key: [u8; 32],
    candidates: Vec<Candidate>,
    /// Probes out: nonce, where to, when.
    outstanding: Vec<(u64, SocketAddr)>,
    next_nonce: u64,
    fast_until: Instant,
    path: Path,
    last_answer: Instant,
    /// Addresses that sent an authentic probe or answer: QUIC packets from them are the peer's.
    peers: Vec<SocketAddr>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("candidates", &self.candidates.len())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Prober {
    /// A prober for this end, whose own offer is `mine`, towards the peer's `candidates` (checked
    /// with [`PathOffer::checked`]). `first_nonce` should be random.
    pub fn new(
        mine: &PathOffer,
        theirs: &PathOffer,
        candidates: &[SocketAddr],
        first_nonce: u64,
        now: Instant,
    ) -> Prober {
        Prober {
            key: probe_key(mine, theirs),
            candidates: candidates
                .iter()
                .take(MAX_CANDIDATES)
                .map(|&addr| Candidate { addr, next: now })
                .collect(),
            outstanding: Vec::new(),
            next_nonce: first_nonce,
            fast_until: now + FAST_FOR,
            path: Path::Relayed,
            last_answer: now,
            peers: Vec::new(),
        }
    }

    /// The path in use.
    pub fn path(&self) -> Path {
        self.path
    }

    /// Whether a QUIC packet from `from` (not the relay) is the peer's: `from` proved itself with
    /// an authentic probe or answer.
    pub fn accepts(&self, from: SocketAddr) -> bool {
        self.peers.contains(&from)
    }

    /// The next probe to send, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, Vec<u8>)> {
        self.check_path(now);
        let to = match self.path {
            Path::Direct(addr) => {
                let c = self.candidates.iter_mut().find(|c| c.addr == addr)?;
                if c.next > now {
                    return None;
                }
                c.next = now + KEEP_PROBE;
                addr
            }
            Path::Relayed => {
                let interval = if now < self.fast_until {
                    FAST_PROBE
                } else {
                    SLOW_PROBE
                };
                let c = self.candidates.iter_mut().find(|c| c.next <= now)?;
                c.next = now + interval;
                c.addr
            }
        };
        let nonce = self.next_nonce;
        self.next_nonce = self.next_nonce.wrapping_add(1);
        if self.outstanding.len() == OUTSTANDING {
            self.outstanding.remove(0);
        }
        self.outstanding.push((nonce, to));
        Some((to, self.packet(KIND_PROBE, nonce)))
    }

    /// When to call [`Prober::poll_transmit`] again.
    pub fn poll_timeout(&self) -> Instant {
        let probes = match self.path {
            Path::Direct(addr) => self
                .candidates
                .iter()
                .find(|c| c.addr == addr)
                .map(|c| c.next),
            Path::Relayed => self.candidates.iter().map(|c| c.next).min(),
        };
        let give_up = match self.path {
            Path::Direct(_) => Some(self.last_answer + PATH_TIMEOUT),
            Path::Relayed => None,
        };
        match (probes, give_up) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            // No candidates at all: nothing will ever be due.
            (None, None) => self.fast_until + Duration::from_secs(3600),
        }
    }

    /// Takes a datagram that arrived from `from`.
    pub fn handle(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> Handled {
        if !is_probe_packet(datagram) {
            return Handled::NotProbe;
        }
        let Some((kind, nonce)) = self.open(datagram) else {
            // Not ours (or forged): dropped, as the network might have.
            return Handled::Probe(None);
        };
        match kind {
            KIND_PROBE => {
                self.learn(from, now);
                Handled::Probe(Some((from, self.packet(KIND_ANSWER, nonce))))
            }
            _ => {
                let Some(i) = self
                    .outstanding
                    .iter()
                    .position(|&(n, to)| n == nonce && to == from)
                else {
                    return Handled::Probe(None);
                };
                self.outstanding.remove(i);
                self.learn(from, now);
                self.last_answer = now;
                if self.path == Path::Relayed {
                    self.path = Path::Direct(from);
                }
                Handled::Probe(None)
            }
        }
    }

    /// Gives up a direct path that stopped answering.
    fn check_path(&mut self, now: Instant) {
        if matches!(self.path, Path::Direct(_)) && now >= self.last_answer + PATH_TIMEOUT {
            self.path = Path::Relayed;
            self.fast_until = now + FAST_FOR;
            self.peers.clear();
            self.outstanding.clear();
            for c in &mut self.candidates {
                c.next = now;
            }
        }
    }

    /// Remembers an address that proved itself: QUIC packets from it are accepted, and probes go
    /// to it too (a NAT may show the peer at an address it could not know to offer).
    fn learn(&mut self, from: SocketAddr, now: Instant) {
        if !self.peers.contains(&from) && self.peers.len() < MAX_CANDIDATES {
            self.peers.push(from);
        }
        if !self.candidates.iter().any(|c| c.addr == from) && self.candidates.len() < MAX_CANDIDATES
        {
            self.candidates.push(Candidate {
                addr: from,
                next: now,
            });
        }
    }

    fn packet(&self, kind: u8, nonce: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(PACKET_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(kind);
        out.extend_from_slice(&nonce.to_be_bytes());
        let tag = self.tag(&out);
        out.extend_from_slice(&tag[..TAG_LEN]);
        out
    }

    /// The kind and nonce of an authentic probe packet.
    fn open(&self, datagram: &[u8]) -> Option<(u8, u64)> {
        if datagram.len() != PACKET_LEN {
            return None;
        }
        let (body, tag) = datagram.split_at(PACKET_LEN - TAG_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_truncated_left(tag).ok()?;
        let kind = body[MAGIC.len()];
        let nonce = u64::from_be_bytes(body[MAGIC.len() + 1..].try_into().ok()?);
        matches!(kind, KIND_PROBE | KIND_ANSWER).then_some((kind, nonce))
    }

    fn mac(&self) -> Hmac<Sha256> {
        hmac(&self.key)
    }

    fn tag(&self, body: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; new_from_slice cannot fail.
    Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// Both ends derive the same key from both secrets, whichever end is "mine".
fn probe_key(mine: &PathOffer, theirs: &PathOffer) -> [u8; 32] {
    let (a, b) = if mine.secret <= theirs.secret {
        (&mine.secret, &theirs.secret)
    } else {
        (&theirs.secret, &mine.secret)
    };
    let mut mac = hmac(b"tether path probe key v1");
    mac.update(a);
    mac.update(b);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn offer(secret: u8, candidates: &[&str]) -> PathOffer {
        PathOffer {
            secret: [secret; SECRET_LEN],
            candidates: Some(candidates.iter().map(|a| addr(a)).collect()),
        }
    }

    /// Two probers that see each other at `a` and `b`, with their offers.
    fn pair(now: Instant) -> (Prober, Prober) {
        let a = offer(1, &["10.0.0.1:1000"]);
        let b = offer(2, &["10.0.0.2:2000"]);
        let pa = Prober::new(&a, &b, b.checked().unwrap().unwrap(), 100, now);
        let pb = Prober::new(&b, &a, a.checked().unwrap().unwrap(), 900, now);
        (pa, pb)
    }

    /// Delivers every due probe from `from` (at `from_addr`) to `to`, and the answers back.
    fn exchange(from: &mut Prober, from_addr: &str, to: &mut Prober, now: Instant) {
        while let Some((_, probe)) = from.poll_transmit(now) {
            if let Handled::Probe(Some((back, answer))) = to.handle(addr(from_addr), &probe, now) {
                assert_eq!(back, addr(from_addr));
                assert_eq!(
                    from.handle(addr("10.0.0.2:2000"), &answer, now),
                    Handled::Probe(None)
                );
            }
        }
    }

    #[test]
    fn an_answered_probe_makes_the_path_direct_and_its_silence_unmakes_it() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        assert_eq!(a.path(), Path::Relayed);
        exchange(&mut a, "10.0.0.1:1000", &mut b, t0);
        assert_eq!(a.path(), Path::Direct(addr("10.0.0.2:2000")));
        assert!(b.accepts(addr("10.0.0.1:1000")));
        assert!(!b.accepts(addr("10.0.0.9:1000")));
        // Answers keep it; then silence gives it up, and probing starts again at once.
        let t1 = t0 + KEEP_PROBE;
        exchange(&mut a, "10.0.0.1:1000", &mut b, t1);
        assert_eq!(a.path(), Path::Direct(addr("10.0.0.2:2000")));
        assert!(a.poll_timeout() <= t1 + KEEP_PROBE);
        let late = t1 + PATH_TIMEOUT;
        assert!(a.poll_transmit(late).is_some());
        assert_eq!(a.path(), Path::Relayed);
        assert!(!a.accepts(addr("10.0.0.2:2000")));
    }

    #[test]
    fn forged_stale_and_misdirected_answers_change_nothing() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        let (_, probe) = a.poll_transmit(t0).unwrap();
        let Handled::Probe(Some((_, answer))) = b.handle(addr("10.0.0.1:1000"), &probe, t0) else {
            panic!("no answer");
        };
        // The right answer from another address than the probe went to.
        assert_eq!(
            a.handle(addr("10.6.6.6:2000"), &answer, t0),
            Handled::Probe(None)
        );
        assert_eq!(a.path(), Path::Relayed);
        // A bit flipped anywhere.
        for i in 0..answer.len() {
            let mut bad = answer.clone();
            bad[i] ^= 1;
            a.handle(addr("10.0.0.2:2000"), &bad, t0);
            assert_eq!(a.path(), Path::Relayed, "byte {i}");
        }
        // Another session's keys.
        let other = offer(7, &[]);
        let mut stranger = Prober::new(&other, &offer(8, &[]), &[], 5, t0);
        assert_eq!(
            stranger.handle(addr("10.0.0.1:1000"), &probe, t0),
            Handled::Probe(None)
        );
        // A QUIC packet is not a probe.
        assert_eq!(
            a.handle(addr("10.0.0.2:2000"), &[0x40, 1, 2, 3], t0),
            Handled::NotProbe
        );
        // The genuine answer still works once; replayed, it is stale.
        a.handle(addr("10.0.0.2:2000"), &answer, t0);
        assert_eq!(a.path(), Path::Direct(addr("10.0.0.2:2000")));
    }

    #[test]
    fn probing_slows_after_the_fast_window_and_a_probe_teaches_its_source() {
        let t0 = Instant::now();
        let (mut a, mut b) = pair(t0);
        assert!(a.poll_transmit(t0).is_some());
        assert!(a.poll_transmit(t0).is_none());
        assert_eq!(a.poll_timeout(), t0 + FAST_PROBE);
        let late = t0 + FAST_FOR;
        assert!(a.poll_transmit(late).is_some());
        assert_eq!(a.poll_timeout(), late + SLOW_PROBE);
        // b hears a's probe from an address a never offered (a NAT's): b probes there too.
        let (_, probe) = a.poll_transmit(late + SLOW_PROBE).unwrap();
        b.handle(addr("192.0.2.5:7000"), &probe, late);
        let mut to = Vec::new();
        while let Some((addr, _)) = b.poll_transmit(late) {
            to.push(addr);
        }
        assert!(to.contains(&addr("192.0.2.5:7000")), "{to:?}");
    }

    #[test]
    fn offers_are_checked() {
        assert_eq!(
            offer(1, &["10.0.0.1:1"]).checked().unwrap().unwrap().len(),
            1
        );
        let none = PathOffer {
            secret: [0; SECRET_LEN],
            candidates: None,
        };
        assert_eq!(none.checked(), Ok(None));
        for bad in [
            "0.0.0.0:5",
            "10.0.0.1:0",
            "224.0.0.1:5",
            "255.255.255.255:5",
            "[::]:5",
        ] {
            assert!(matches!(
                offer(1, &[bad]).checked(),
                Err(OfferError::NotHost(_))
            ));
        }
        let many: Vec<String> = (0..17).map(|i| format!("10.0.0.{i}:5")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(offer(1, &many).checked(), Err(OfferError::TooMany(17)));
    }

    #[test]
    fn both_ends_derive_one_key() {
        let a = offer(1, &[]);
        let b = offer(2, &[]);
        assert_eq!(probe_key(&a, &b), probe_key(&b, &a));
        assert_ne!(probe_key(&a, &b), probe_key(&a, &offer(3, &[])));
    }
}
