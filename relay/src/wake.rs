//! Sessions on enrolled devices without a code: the relay wakes the device and splices, and
//! vouches for nobody (the device checks the technician's org-signed key itself, in
//! `tether_proto::handshake`).
//!
//! # Flow
//! 1. A console's `ConnectDevice` passes the claim checks (token, role) and names a device of the
//!    technician's own organisation (`session.rs`).
//! 2. [`Wakes::call`]: the device's service connection, registered here while it is up
//!    ([`Wakes::register`], `device.rs`), gets a [`Wake`] on a stream of its own and answers
//!    [`WakeAnswer::Coming`] or [`WakeAnswer::Refused`] (the technician sees the reason).
//! 3. Coming: the device opens an agent connection and sends `OpenWakeSlot` with the ticket;
//!    [`Wakes::opened`] hands the slot it got to the waiting console task, which claims it as it
//!    would a code's slot. A ticket is used once and lives [`WAKE_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use tether_net::framed;
use tether_proto::Slot;
use tether_proto::fleet::{WAKE_TTL_SECS, Wake, WakeAnswer};
use tether_proto::msg::TechnicianIdentity;
use tokio::sync::{mpsc, oneshot};

/// How long the device has to answer a wake and open its session connection.
pub const WAKE_TTL: Duration = Duration::from_secs(WAKE_TTL_SECS);

/// Wakes waiting to reach one device's service connection at a time.
const WAKE_QUEUE: usize = 4;

/// One wake for a device's service connection to deliver; the answer says whether it is coming.
#[derive(Debug)]
pub struct WakeCall {
    /// What the device is told.
    pub wake: Wake,
    /// `Ok` when the device is coming, else the reason it gave (or why it could not be asked).
    pub answer: oneshot::Sender<Result<(), String>>,
}

/// The devices connected now, and the tickets waiting for their session connections.
#[derive(Debug, Default)]
pub struct Wakes {
    /// Device id → its service connection's queue, with the registration's number (a device that
    /// reconnects replaces its entry; the old connection's end must not remove the new one).
    devices: Mutex<HashMap<String, (u64, mpsc::Sender<WakeCall>)>>,
    tickets: Mutex<HashMap<u64, (oneshot::Sender<Slot>, Instant)>>,
    registrations: AtomicU64,
}

/// A device's registration; removes it when dropped.
#[derive(Debug)]
pub struct Registered<'a> {
    wakes: &'a Wakes,
    device_id: String,
    number: u64,
    /// The wakes for this connection.
    pub calls: mpsc::Receiver<WakeCall>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut devices = self.wakes.devices.lock().unwrap_or_else(|p| p.into_inner());
        if devices
            .get(&self.device_id)
            .is_some_and(|(n, _)| *n == self.number)
        {
            devices.remove(&self.device_id);
        }
    }
}

/// Why a device could not be woken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WakeError {
    /// Its service is not connected to this relay.
    #[error("the device is not connected to the relay now (is `tether-agent run` running there?)")]
    NotConnected,
    /// It said no.
    #[error("the device refused: {0}")]
    Refused(String),
    /// It did not answer or open its session connection in time.
    #[error("the device did not start the session within {} s", WAKE_TTL_SECS)]
    TimedOut,
}

impl Wakes {
    /// Registers a device's service connection for wakes, until the returned guard drops.
    pub fn register(&self, device_id: &str) -> Registered<'_> {
        let (tx, calls) = mpsc::channel(WAKE_QUEUE);
        let number = self.registrations.fetch_add(1, Ordering::Relaxed);
        self.devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device_id.to_string(), (number, tx));
        Registered {
            wakes: self,
            device_id: device_id.to_string(),
            number,
            calls,
        }
    }

    /// Wakes `device_id` for `technician` and waits (at most [`WAKE_TTL`]) for the slot its
    /// session connection opened.
    pub async fn call(
        &self,
        device_id: &str,
        technician: TechnicianIdentity,
        unattended: bool,
    ) -> Result<Slot, WakeError> {
        let queue = self
            .devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(device_id)
            .map(|(_, q)| q.clone())
            .ok_or(WakeError::NotConnected)?;
        let ticket = rand::thread_rng().r#gen::<u64>();
        let (slot_tx, slot) = oneshot::channel();
        {
            let now = Instant::now();
            let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
            tickets.retain(|_, (_, at)| now.duration_since(*at) < WAKE_TTL);
            tickets.insert(ticket, (slot_tx, now));
        }
        let (answer, answered) = oneshot::channel();
        let wake = Wake {
            ticket,
            technician,
            unattended,
        };
        let result = tokio::time::timeout(WAKE_TTL, async {
            queue
                .send(WakeCall { wake, answer })
                .await
                .map_err(|_| WakeError::NotConnected)?;
            answered
                .await
                .map_err(|_| WakeError::NotConnected)?
                .map_err(WakeError::Refused)?;
            slot.await.map_err(|_| WakeError::TimedOut)
        })
        .await
        .unwrap_or(Err(WakeError::TimedOut));
        self.tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ticket);
        result
    }

    /// Takes `ticket` (once, if it has not expired): the session connection that opened `slot` for
    /// it is the one its console waits for. `false` for a ticket that is unknown, used or expired.
    pub fn opened(&self, ticket: u64, slot: Slot) -> bool {
        let taken = self
            .tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ticket);
        match taken {
            Some((tx, at)) if at.elapsed() < WAKE_TTL => tx.send(slot).is_ok(),
            _ => false,
        }
    }

    /// Whether `ticket` waits for a session connection now.
    pub fn waiting(&self, ticket: u64) -> bool {
        self.tickets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ticket)
            .is_some_and(|(_, at)| at.elapsed() < WAKE_TTL)
    }
}

/// Delivers one wake on the device's service connection: a stream of its own, the [`Wake`], one
/// [`WakeAnswer`] back.
pub async fn deliver(conn: &quinn::Connection, call: WakeCall) {
    let WakeCall { wake, answer } = call;
    let result = tokio::time::timeout(WAKE_TTL, async {
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|_| "the device's connection closed".to_string())?;
        framed::write_msg(&mut send, &wake)
            .await
            .map_err(|e| format!("could not reach the device: {e}"))?;
        let _ = send.finish();
        match framed::read_msg::<WakeAnswer>(&mut recv).await {
            Ok(WakeAnswer::Coming) => Ok(()),
            Ok(WakeAnswer::Refused { reason }) => {
                Err(tether_proto::records::truncate_text(&reason, 300, false))
            }
            Err(e) => Err(format!("the device did not answer: {e}")),
        }
    })
    .await
    .unwrap_or_else(|_| Err("the device did not answer in time".into()));
    let _ = answer.send(result);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::msg::{TechnicianRole, Tier};

    fn ada() -> TechnicianIdentity {
        TechnicianIdentity {
            name: "Ada".into(),
            org: "Acme".into(),
            role: TechnicianRole::Technician,
            tier: Tier::L1,
        }
    }

    #[tokio::test]
    async fn a_device_that_is_not_connected_cannot_be_woken() {
        let wakes = std::sync::Arc::new(Wakes::default());
        assert_eq!(
            wakes.call("d1", ada(), false).await,
            Err(WakeError::NotConnected)
        );
        // A registration that ended is gone, and an older one's end leaves a newer one in place.
        let old = wakes.register("d1");
        let mut new = wakes.register("d1");
        drop(old);
        let w = wakes.clone();
        let call = tokio::spawn(async move { w.call("d1", ada(), true).await });
        let got = new
            .calls
            .recv()
            .await
            .expect("the newer registration hears the wake");
        assert!(got.wake.unattended);
        assert!(wakes.waiting(got.wake.ticket));
        got.answer.send(Ok(())).unwrap();
        assert!(wakes.opened(got.wake.ticket, Slot(7)));
        assert!(!wakes.opened(got.wake.ticket, Slot(7)), "single use");
        assert_eq!(call.await.unwrap(), Ok(Slot(7)));
        drop(new);
        assert_eq!(
            wakes.call("d1", ada(), false).await,
            Err(WakeError::NotConnected)
        );
    }

    #[tokio::test]
    async fn a_refusal_reaches_the_technician_and_the_ticket_is_gone() {
        let wakes = std::sync::Arc::new(Wakes::default());
        let mut reg = wakes.register("d1");
        let w = wakes.clone();
        let call = tokio::spawn(async move { w.call("d1", ada(), false).await });
        let got = reg.calls.recv().await.unwrap();
        let ticket = got.wake.ticket;
        got.answer.send(Err("nobody is logged in".into())).unwrap();
        assert_eq!(
            call.await.unwrap(),
            Err(WakeError::Refused("nobody is logged in".into()))
        );
        assert!(
            !wakes.opened(ticket, Slot(1)),
            "a refused wake's ticket is void"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_device_that_never_comes_times_out() {
        let wakes = std::sync::Arc::new(Wakes::default());
        let mut reg = wakes.register("d1");
        let w = wakes.clone();
        let call = tokio::spawn(async move { w.call("d1", ada(), false).await });
        let got = reg.calls.recv().await.unwrap();
        got.answer.send(Ok(())).unwrap();
        assert_eq!(call.await.unwrap(), Err(WakeError::TimedOut));
    }
}
