//! A UDP forwarder on loopback that a test can cut, so that a peer vanishes without sending a close
//! frame — as when a laptop lid shuts or a network drops — or impair, with a fixed delay and random
//! loss each way (a user-space stand-in for `tc netem` where the kernel has no netem). Each client
//! gets its own socket towards the upstream (a session's relay connection and its end-to-end
//! socket are two clients).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A cuttable UDP forwarder in front of `upstream`. Stops when dropped.
#[derive(Debug)]
pub struct UdpProxy {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl UdpProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        Self::start_impaired(upstream, Duration::ZERO, 0.0).await
    }

    /// Like [`UdpProxy::start`], but each packet is delayed by `delay` and dropped with probability
    /// `loss`, in each direction.
    pub async fn start_impaired(
        upstream: SocketAddr,
        delay: Duration,
        loss: f64,
    ) -> std::io::Result<Self> {
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(forward(front, upstream, cut.clone(), delay, loss));
        Ok(UdpProxy { addr, cut, task })
    }

    /// Where clients should send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, every packet in either direction is dropped.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Packets waiting out their delay, per direction. Beyond this they are dropped, as a full queue would.
const QUEUE: usize = 4096;

async fn forward(
    front: UdpSocket,
    upstream: SocketAddr,
    cut: Arc<AtomicBool>,
    delay: Duration,
    loss: f64,
) {
    let front = Arc::new(front);
    let (up_tx, mut up_rx) = mpsc::channel::<(Instant, Vec<u8>, Arc<UdpSocket>)>(QUEUE);
    let (down_tx, mut down_rx) = mpsc::channel::<(Instant, Vec<u8>, SocketAddr)>(QUEUE);
    let keep = move |cut: &AtomicBool| {
        !cut.load(Ordering::SeqCst) && (loss == 0.0 || !rand::thread_rng().gen_bool(loss))
    };
    let mut backs = tokio::task::JoinSet::new();
    let receive = async {
        let mut a = vec![0u8; 65536];
        // Each client (an address in front) gets its own socket towards the upstream, so the
        // upstream sees as many peers as there are clients, as through a NAT.
        let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        loop {
            let Ok((n, from)) = front.recv_from(&mut a).await else {
                return;
            };
            let back = match clients.get(&from) {
                Some(b) => b.clone(),
                None => {
                    let Ok(b) = UdpSocket::bind("127.0.0.1:0").await else {
                        continue;
                    };
                    if b.connect(upstream).await.is_err() {
                        continue;
                    }
                    let b = Arc::new(b);
                    clients.insert(from, b.clone());
                    let (b2, down, cut) = (b.clone(), down_tx.clone(), cut.clone());
                    backs.spawn(async move {
                        let mut buf = vec![0u8; 65536];
                        loop {
                            let Ok(n) = b2.recv(&mut buf).await else {
                                continue;
                            };
                            if keep(&cut) {
                                let _ = down.try_send((
                                    Instant::now() + delay,
                                    buf[..n].to_vec(),
                                    from,
                                ));
                            }
                        }
                    });
                    b
                }
            };
            if keep(&cut) {
                let _ = up_tx.try_send((Instant::now() + delay, a[..n].to_vec(), back));
            }
        }
    };
    let up = async {
        while let Some((due, p, back)) = up_rx.recv().await {
            tokio::time::sleep_until(due).await;
            let _ = back.send(&p).await;
        }
    };
    let down = async {
        while let Some((due, p, to)) = down_rx.recv().await {
            tokio::time::sleep_until(due).await;
            let _ = front.send_to(&p, to).await;
        }
    };
    tokio::select! {
        () = receive => {}
        () = up => {}
        () = down => {}
    }
}
