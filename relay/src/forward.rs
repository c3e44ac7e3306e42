//! The packet forwarder for sessions' end-to-end connections ([`tether_proto::forward`]).
//!
//! Each accepted claim opens a route with two random tokens, one told to each end over its own TLS
//! connection. An end binds a UDP socket to the relay's port with its token (a bind packet); from
//! then on every datagram from that address goes unchanged to the other end's bound address. The
//! forwarder sits under quinn ([`DemuxSocket`]): it takes bind packets and datagrams from bound
//! addresses out of what quinn reads, so the relay's own QUIC connections share the port and the
//! forwarded packets are never decrypted, parsed or queued. A route ends with its session
//! ([`RouteGuard`]): from then on its addresses are QUIC strangers again.
//!
//! Limits per route: [`MAX_PACKETS_PER_SEC`] and [`MAX_BYTES_PER_SEC`], each with a one-second
//! burst; a datagram over either is dropped (QUIC's congestion control backs off).

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use rand::RngCore;
use tether_net::transport;
use tether_proto::forward::{BindPacket, RouteToken, TOKEN_LEN, is_bind_packet};

use crate::config::{ForwardTamper, SpliceTap};
use crate::splice::Counters;

/// Datagrams a route may forward per second (both ends together), with a burst of as many.
pub const MAX_PACKETS_PER_SEC: f64 = 1_000_000.0;

/// Bytes a route may forward per second (both ends together; 10 Gbit/s), with a burst of as many.
pub const MAX_BYTES_PER_SEC: f64 = 1_250_000_000.0;

/// Which end of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The technician's console.
    Console = 0,
    /// The user's agent.
    Agent = 1,
}

impl End {
    fn other(self) -> End {
        match self {
            End::Console => End::Agent,
            End::Agent => End::Console,
        }
    }
}

struct Route {
    tokens: [RouteToken; 2],
    addrs: [Option<SocketAddr>; 2],
    counters: Arc<Counters>,
    packets: Bucket,
    bytes: Bucket,
}

/// A token bucket.
struct Bucket {
    rate: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Bucket {
        Bucket {
            rate,
            level: rate,
            at: now,
        }
    }

    fn take(&mut self, n: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.level = (self.level + dt * self.rate).min(self.rate);
        if self.level < n {
            return false;
        }
        self.level -= n;
        true
    }
}

#[derive(Default)]
struct Routes {
    routes: HashMap<u64, Route>,
    by_token: HashMap<RouteToken, (u64, End)>,
    by_addr: HashMap<SocketAddr, (u64, End)>,
    next: u64,
}

/// The relay's routes, shared by the sessions that open them and the socket that forwards.
pub struct Forwarder {
    routes: Mutex<Routes>,
    tap: Option<SpliceTap>,
    tamper: Option<ForwardTamper>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

/// What to do with one received datagram.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// Hand it to quinn.
    Quic,
    /// Send it, unchanged, to this address.
    Forward(SocketAddr),
    /// Answer the sender with this bind packet.
    Reply(Vec<u8>),
    /// Drop it.
    Drop,
}

impl Forwarder {
    /// A forwarder; `tap` sees every forwarded datagram (as the splice's tap sees spliced bytes),
    /// `tamper` may change them (tests only).
    pub fn new(tap: Option<SpliceTap>, tamper: Option<ForwardTamper>) -> Arc<Forwarder> {
        Arc::new(Forwarder {
            routes: Mutex::new(Routes::default()),
            tap,
            tamper,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a route for one session; its bytes are counted in `counters`. The route ends when
    /// the guard is dropped.
    pub fn open(self: &Arc<Self>, counters: Arc<Counters>) -> RouteGuard {
        let mut tokens = [RouteToken([0; TOKEN_LEN]); 2];
        for t in &mut tokens {
            rand::thread_rng().fill_bytes(&mut t.0);
        }
        let now = Instant::now();
        let mut r = self.lock();
        r.next += 1;
        let id = r.next;
        r.by_token.insert(tokens[0], (id, End::Console));
        r.by_token.insert(tokens[1], (id, End::Agent));
        r.routes.insert(
            id,
            Route {
                tokens,
                addrs: [None, None],
                counters,
                packets: Bucket::new(MAX_PACKETS_PER_SEC, now),
                bytes: Bucket::new(MAX_BYTES_PER_SEC, now),
            },
        );
        RouteGuard {
            forwarder: self.clone(),
            id,
            tokens,
        }
    }

    fn close(&self, id: u64) {
        let mut r = self.lock();
        if let Some(route) = r.routes.remove(&id) {
            for t in route.tokens {
                r.by_token.remove(&t);
            }
            for a in route.addrs.into_iter().flatten() {
                r.by_addr.remove(&a);
            }
        }
    }

    /// Routes open now.
    pub fn open_routes(&self) -> usize {
        self.lock().routes.len()
    }

    /// Decides what one datagram (of `segments` segments) from `from` is.
    fn classify(&self, from: SocketAddr, data: &[u8], segments: usize, now: Instant) -> Action {
        let mut r = self.lock();
        // A bind packet is never QUIC, so it is a bind even from a bound address (an end that
        // binds again).
        if let Some(&(id, end)) = r.by_addr.get(&from).filter(|_| !is_bind_packet(data)) {
            let Some(route) = r.routes.get_mut(&id) else {
                return Action::Drop;
            };
            let Some(to) = route.addrs[end.other() as usize] else {
                return Action::Drop;
            };
            if !route.packets.take(segments as f64, now)
                || !route.bytes.take(data.len() as f64, now)
            {
                return Action::Drop;
            }
            let n = data.len() as u64;
            let (this, global) = match end {
                End::Console => (
                    &route.counters.to_agent,
                    route.counters.global.as_ref().map(|g| &g.bytes_to_agent),
                ),
                End::Agent => (
                    &route.counters.to_console,
                    route.counters.global.as_ref().map(|g| &g.bytes_to_console),
                ),
            };
            this.fetch_add(n, Ordering::Relaxed);
            if let Some(g) = global {
                g.fetch_add(n, Ordering::Relaxed);
            }
            return Action::Forward(to);
        }
        if !is_bind_packet(data) {
            return Action::Quic;
        }
        // A datagram of several bind packets (coalesced by the kernel) does not decode: dropped,
        // and the end sends its bind again.
        let Ok(BindPacket::Bind(token)) = BindPacket::decode(data) else {
            return Action::Drop;
        };
        let Some(&(id, end)) = r.by_token.get(&token) else {
            return Action::Reply(BindPacket::Unknown(token).encode());
        };
        // An address already bound to another route's end is not taken over.
        if let Some(&(other, other_end)) = r.by_addr.get(&from)
            && (other, other_end) != (id, end)
        {
            return Action::Drop;
        }
        let previous = r
            .routes
            .get_mut(&id)
            .and_then(|route| route.addrs[end as usize].replace(from));
        if let Some(old) = previous
            && old != from
        {
            r.by_addr.remove(&old);
        }
        r.by_addr.insert(from, (id, end));
        Action::Reply(
            BindPacket::Bound {
                token,
                observed: from,
            }
            .encode(),
        )
    }
}

/// One session's route; dropping it ends the forwarding.
#[derive(Debug)]
pub struct RouteGuard {
    forwarder: Arc<Forwarder>,
    id: u64,
    tokens: [RouteToken; 2],
}

impl RouteGuard {
    /// The token for `end`.
    pub fn token(&self, end: End) -> RouteToken {
        self.tokens[end as usize]
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.forwarder.close(self.id);
    }
}

/// The relay's UDP socket as quinn sees it: bind packets and forwarded datagrams are handled here
/// and never reach quinn.
#[derive(Debug)]
pub struct DemuxSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    forwarder: Arc<Forwarder>,
}

impl DemuxSocket {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, forwarder: Arc<Forwarder>) -> Arc<DemuxSocket> {
        Arc::new(DemuxSocket { inner, forwarder })
    }

    fn send(&self, to: SocketAddr, contents: &[u8], segment_size: Option<usize>) {
        // A full socket buffer drops the datagram, as the network would.
        let _ = self.inner.try_send(&Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        });
    }

    /// Handles the datagram in slot `i`; true if quinn should see it.
    fn handle(&self, data: &mut [u8], meta: &RecvMeta, now: Instant) -> bool {
        let stride = meta.stride.max(1);
        let segments = data.len().div_ceil(stride);
        match self.forwarder.classify(meta.addr, data, segments, now) {
            Action::Quic => true,
            Action::Drop => false,
            Action::Reply(bytes) => {
                self.send(meta.addr, &bytes, None);
                false
            }
            Action::Forward(to) => {
                if let Some(tap) = &self.forwarder.tap {
                    tap(data);
                }
                if let Some(tamper) = &self.forwarder.tamper {
                    tamper(data);
                }
                let segment_size = (segments > 1).then_some(stride);
                self.send(to, data, segment_size);
                false
            }
        }
    }
}

impl AsyncUdpSocket for DemuxSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> std::io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<std::io::Result<usize>> {
        transport::poll_recv_filtered(&*self.inner, cx, bufs, meta, |data, meta, now| {
            self.handle(data, meta, now)
        })
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn bound(f: &Forwarder, from: SocketAddr, token: RouteToken) -> Action {
        f.classify(from, &BindPacket::Bind(token).encode(), 1, Instant::now())
    }

    #[test]
    fn datagrams_go_between_the_two_bound_ends_and_nowhere_else() {
        let f = Forwarder::new(None, None);
        let counters = Arc::new(Counters::default());
        let route = f.open(counters.clone());
        let now = Instant::now();
        let quic = [0xc0u8, 1, 2, 3];
        // Before binding, an address is a QUIC stranger.
        assert_eq!(f.classify(addr(1), &quic, 1, now), Action::Quic);
        let answer = bound(&f, addr(1), route.token(End::Console));
        assert_eq!(
            answer,
            Action::Reply(
                BindPacket::Bound {
                    token: route.token(End::Console),
                    observed: addr(1)
                }
                .encode()
            )
        );
        // The other end is not bound yet: dropped, not sent to quinn.
        assert_eq!(f.classify(addr(1), &quic, 1, now), Action::Drop);
        bound(&f, addr(2), route.token(End::Agent));
        assert_eq!(f.classify(addr(1), &quic, 1, now), Action::Forward(addr(2)));
        assert_eq!(f.classify(addr(2), &quic, 1, now), Action::Forward(addr(1)));
        assert_eq!(f.classify(addr(3), &quic, 1, now), Action::Quic);
        assert_eq!(counters.to_agent.load(Ordering::Relaxed), 4);
        assert_eq!(counters.to_console.load(Ordering::Relaxed), 4);
        // The session ends: the route, its tokens and its addresses are gone.
        let token = route.token(End::Agent);
        drop(route);
        assert_eq!(f.open_routes(), 0);
        assert_eq!(f.classify(addr(1), &quic, 1, now), Action::Quic);
        assert_eq!(
            bound(&f, addr(2), token),
            Action::Reply(BindPacket::Unknown(token).encode())
        );
    }

    #[test]
    fn an_end_that_moves_is_followed_and_one_address_serves_one_end() {
        let f = Forwarder::new(None, None);
        let a = f.open(Arc::default());
        let b = f.open(Arc::default());
        bound(&f, addr(1), a.token(End::Console));
        bound(&f, addr(2), a.token(End::Agent));
        // The console's NAT gave it a new port: it binds again from there.
        bound(&f, addr(5), a.token(End::Console));
        let now = Instant::now();
        assert_eq!(
            f.classify(addr(2), &[0x40], 1, now),
            Action::Forward(addr(5))
        );
        assert_eq!(f.classify(addr(1), &[0x40], 1, now), Action::Quic);
        // An address bound to one route's end cannot bind another's.
        assert_eq!(bound(&f, addr(2), b.token(End::Console)), Action::Drop);
        // A malformed bind packet is dropped.
        let mut bad = BindPacket::Bind(a.token(End::Agent)).encode();
        bad.push(0);
        assert_eq!(f.classify(addr(9), &bad, 1, now), Action::Drop);
    }

    #[test]
    fn a_route_over_its_packet_rate_drops_what_is_over() {
        let f = Forwarder::new(None, None);
        let r = f.open(Arc::default());
        bound(&f, addr(1), r.token(End::Console));
        bound(&f, addr(2), r.token(End::Agent));
        let now = Instant::now();
        let burst = MAX_PACKETS_PER_SEC as usize;
        assert_eq!(
            f.classify(addr(1), &[0x40], burst, now),
            Action::Forward(addr(2))
        );
        assert_eq!(f.classify(addr(1), &[0x40], 1, now), Action::Drop);
        let later = now + std::time::Duration::from_millis(10);
        assert_eq!(
            f.classify(addr(1), &[0x40], 1, later),
            Action::Forward(addr(2))
        );
    }
}
