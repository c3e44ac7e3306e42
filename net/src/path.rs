//! The end-to-end connection's socket, which sends its QUIC packets through the relay or straight
//! to the other end ([`tether_proto::path`]).
//!
//! quinn sees one peer, the relay's address, for the whole connection: [`PathSocket`] sends what
//! quinn addresses to the relay to the direct address instead once the [`Prober`] found one, and
//! hands quinn the packets that arrive from a proven direct address as if the relay had sent
//! them. So the connection, its keys and its streams never change when the path does; a lost
//! direct path costs the packets in flight, which QUIC sends again through the relay.

use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tether_proto::path::{Handled, Path, PathOffer, Prober, SECRET_LEN};
use tokio::sync::{Notify, watch};

use crate::transport::poll_recv_filtered;

/// The longest the prober's task sleeps, so it notices a closed socket.
const MAX_SLEEP: Duration = Duration::from_secs(5);

/// Whether this end may take a direct path to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direct {
    /// Probe for a direct path and take it when it works (the default).
    #[default]
    Allowed,
    /// Relayed only (`--relay-only`, or IT's `relay_only = true`): no probe leaves this end and
    /// its addresses are not offered.
    Forbidden,
}

/// This end's offer: a fresh secret, and where it can be reached (the address the relay observed
/// and the local one its route to the relay uses, both at the connection's port) unless direct
/// paths are forbidden here.
pub fn offer(
    direct: Direct,
    observed: SocketAddr,
    local: SocketAddr,
    relay: SocketAddr,
) -> PathOffer {
    let secret: [u8; SECRET_LEN] = rand::random();
    let candidates = match direct {
        Direct::Forbidden => None,
        Direct::Allowed => {
            let mut c = vec![observed];
            if let Some(ip) = route_source(relay) {
                let own = SocketAddr::new(ip, local.port());
                if own != observed {
                    c.push(own);
                }
            }
            Some(c)
        }
    };
    PathOffer { secret, candidates }
}

/// The local address the kernel would send from towards `relay`.
fn route_source(relay: SocketAddr) -> Option<std::net::IpAddr> {
    let probe = UdpSocket::bind(crate::transport::any_port_towards(relay)).ok()?;
    probe.connect(relay).ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

struct State {
    prober: Option<Prober>,
}

/// The end-to-end connection's UDP socket (see the module documentation).
pub struct PathSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    relay: SocketAddr,
    state: Mutex<State>,
    path: watch::Sender<Path>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for PathSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PathSocket")
            .field("relay", &self.relay)
            .field("path", &*self.path.borrow())
            .finish_non_exhaustive()
    }
}

impl PathSocket {
    /// Wraps `inner`, whose QUIC peer is the relay at `relay`; relayed until [`PathSocket::start`].
    pub fn new(inner: Arc<dyn AsyncUdpSocket>, relay: SocketAddr) -> Arc<PathSocket> {
        Arc::new(PathSocket {
            inner,
            relay,
            state: Mutex::new(State { prober: None }),
            path: watch::channel(Path::Relayed).0,
            wake: Arc::new(Notify::new()),
        })
    }

    /// The path in use, as it changes.
    pub fn watch(&self) -> watch::Receiver<Path> {
        self.path.subscribe()
    }

    /// Starts looking for a direct path with `prober`, in a task that lives as long as the socket.
    pub fn start(self: &Arc<Self>, prober: Prober) {
        self.lock().prober = Some(prober);
        tokio::spawn(drive(Arc::downgrade(self), self.wake.clone()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves a prober that is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends the probes that are due; returns when to come back.
    fn tick(&self, now: Instant) -> Instant {
        let mut state = self.lock();
        let Some(prober) = state.prober.as_mut() else {
            return now + MAX_SLEEP;
        };
        while let Some((to, probe)) = prober.poll_transmit(now) {
            self.send_raw(to, &probe);
        }
        let next = prober.poll_timeout();
        self.publish(prober.path());
        next.min(now + MAX_SLEEP)
    }

    fn publish(&self, path: Path) {
        self.path.send_if_modified(|p| {
            let changed = *p != path;
            *p = path;
            changed
        });
    }

    fn send_raw(&self, to: SocketAddr, contents: &[u8]) {
        // A full socket buffer drops the probe, as the network would; the next one follows.
        let _ = self.inner.try_send(&Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: None,
            src_ip: None,
        });
    }

    /// Whether quinn should see this datagram (its source rewritten to the relay's when it came
    /// straight from the peer).
    fn keep(&self, state: &mut State, data: &[u8], meta: &mut RecvMeta, now: Instant) -> bool {
        let Some(prober) = state.prober.as_mut() else {
            return meta.addr == self.relay;
        };
        match prober.handle(meta.addr, data, now) {
            Handled::Probe(answer) => {
                if let Some((to, bytes)) = answer {
                    self.send_raw(to, &bytes);
                }
                false
            }
            Handled::NotProbe if meta.addr == self.relay => true,
            Handled::NotProbe if prober.accepts(meta.addr) => {
                meta.addr = self.relay;
                true
            }
            // From nobody this session knows.
            Handled::NotProbe => false,
        }
    }
}

/// The prober's clock is tokio's, which its task sleeps on (and which tests may pause).
fn clock() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn drive(socket: Weak<PathSocket>, wake: Arc<Notify>) {
    loop {
        let Some(s) = socket.upgrade() else { return };
        let next = s.tick(clock());
        drop(s);
        let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next));
        tokio::select! {
            () = sleep => {}
            () = wake.notified() => {}
        }
    }
}

impl AsyncUdpSocket for PathSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> std::io::Result<()> {
        let destination = match *self.path.borrow() {
            Path::Direct(to) if transmit.destination == self.relay => to,
            _ => transmit.destination,
        };
        self.inner.try_send(&Transmit {
            destination,
            ..*transmit
        })
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<std::io::Result<usize>> {
        let mut state = self.lock();
        let before = state.prober.as_ref().map(Prober::path);
        let now = clock();
        let got = poll_recv_filtered(&*self.inner, cx, bufs, meta, |data, meta, _| {
            self.keep(&mut state, data, meta, now)
        });
        let after = state.prober.as_ref().map(Prober::path);
        drop(state);
        if let Some(path) = after.filter(|_| after != before) {
            self.publish(path);
            // The keep-alive probes of a new direct path are due on another schedule.
            self.wake.notify_one();
        }
        got
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
