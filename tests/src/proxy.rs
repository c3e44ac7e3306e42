//! A UDP forwarder on loopback that a test can cut, so that a peer vanishes without sending a close
//! frame — as when a laptop lid shuts or a network drops. One client at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
        let front = UdpSocket::bind("127.0.0.1:0").await?;
        let back = UdpSocket::bind("127.0.0.1:0").await?;
        back.connect(upstream).await?;
        let addr = front.local_addr()?;
        let cut = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(forward(front, back, cut.clone()));
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

async fn forward(front: UdpSocket, back: UdpSocket, cut: Arc<AtomicBool>) {
    let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
    let mut client: Option<SocketAddr> = None;
    loop {
        tokio::select! {
            r = front.recv_from(&mut a) => {
                let Ok((n, from)) = r else { return };
                client = Some(from);
                if !cut.load(Ordering::SeqCst) {
                    let _ = back.send(&a[..n]).await;
                }
            }
            r = back.recv(&mut b) => {
                let Ok(n) = r else { continue };
                if let (false, Some(c)) = (cut.load(Ordering::SeqCst), client) {
                    let _ = front.send_to(&b[..n], c).await;
                }
            }
        }
    }
}
