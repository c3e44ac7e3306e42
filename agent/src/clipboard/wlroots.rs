//! The wlroots clipboard (sway, Hyprland, river, …): `zwlr_data_control_manager_v1` over a
//! pure-Rust Wayland connection, which reads and sets a seat's selection without a window or focus.
//!
//! A read binds the seat's data-control device, takes the offer the compositor announces for the
//! clipboard (or the primary selection, protocol version 2), asks for its text in the first text
//! MIME type it offers, and reads the pipe until the source closes it, up to the limit and within
//! [`ANSWER_TIMEOUT`] (the pipe is non-blocking and polled, as the X11 backend polls its
//! connection). A set offers the text in the usual text MIME types and a thread answers each `send`
//! by writing it into the pipe it is given, until the compositor says `cancelled` (the user copied
//! something else) or the owner is replaced or dropped (a `wl_display.sync` wakes the thread).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tether_proto::clipboard::{MAX_CLIPBOARD_BYTES, Selection};
use wayland_client::globals::GlobalListContents;
use wayland_client::protocol::{wl_callback, wl_registry, wl_seat};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle, event_created_child};
use wayland_protocols_wlr::data_control::v1::client::{
    zwlr_data_control_device_v1::{self, ZwlrDataControlDeviceV1},
    zwlr_data_control_manager_v1::ZwlrDataControlManagerV1,
    zwlr_data_control_offer_v1::{self, ZwlrDataControlOfferV1},
    zwlr_data_control_source_v1::{self, ZwlrDataControlSourceV1},
};

use super::{ClipboardError, ClipboardProvider};

/// How long a read waits for the program holding the clipboard to hand over its text.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a read looks at the pipe.
const POLL_EVERY: Duration = Duration::from_millis(5);

/// The text MIME types, most precise first: what a set offers, and the order a read asks in.
const TEXT_MIMES: [&str; 5] = [
    "text/plain;charset=utf-8",
    "UTF8_STRING",
    "text/plain",
    "TEXT",
    "STRING",
];

/// The clipboard of the wlroots compositor at `socket` (`None`: `$WAYLAND_DISPLAY`).
#[derive(Debug, Default)]
pub struct WlrootsClipboard {
    socket: Option<String>,
    /// The source serving each selection's text, `[Clipboard, Primary]`.
    owners: Mutex<[Option<Owner>; 2]>,
}

impl WlrootsClipboard {
    /// The compositor at the Wayland socket `socket`, or the environment's when `None`.
    pub fn new(socket: Option<String>) -> Self {
        WlrootsClipboard {
            socket,
            owners: Mutex::new([None, None]),
        }
    }

    fn socket(&self) -> Result<PathBuf, ClipboardError> {
        crate::screen::wayland_socket(self.socket.as_deref()).map_err(ClipboardError::Backend)
    }
}

fn wl_err(e: impl std::fmt::Display) -> ClipboardError {
    ClipboardError::Backend(format!("Wayland clipboard: {e}"))
}

/// What the connection's events say: the offers and which is each selection's, and for a source
/// being served, its text and whether it was cancelled.
#[derive(Default)]
struct State {
    offers: Vec<(ZwlrDataControlOfferV1, Vec<String>)>,
    clipboard: Option<ZwlrDataControlOfferV1>,
    primary: Option<ZwlrDataControlOfferV1>,
    text: String,
    cancelled: bool,
}

impl State {
    /// Destroys the offers no selection points at any more.
    fn forget_old_offers(&mut self) {
        let (c, p) = (self.clipboard.clone(), self.primary.clone());
        self.offers.retain(|(o, _)| {
            let keep = c.as_ref() == Some(o) || p.as_ref() == Some(o);
            if !keep {
                o.destroy();
            }
            keep
        });
    }
}

/// A connection with the seat's data-control device bound.
struct Device {
    conn: Connection,
    queue: EventQueue<State>,
    manager: ZwlrDataControlManagerV1,
    device: ZwlrDataControlDeviceV1,
}

fn open(socket: &std::path::Path) -> Result<Device, ClipboardError> {
    let (conn, globals, queue) =
        crate::screen::wayland_connect::<State>(socket).map_err(ClipboardError::Backend)?;
    let qh = queue.handle();
    let manager: ZwlrDataControlManagerV1 = globals.bind(&qh, 1..=2, ()).map_err(|_| {
        ClipboardError::Unsupported("this Wayland compositor has no wlr-data-control")
    })?;
    let seat: wl_seat::WlSeat = globals
        .bind(&qh, 1..=1, ())
        .map_err(|_| wl_err("the compositor has no seat"))?;
    let device = manager.get_data_device(&seat, &qh, ());
    Ok(Device {
        conn,
        queue,
        manager,
        device,
    })
}

impl ClipboardProvider for WlrootsClipboard {
    fn get(&self, selection: Selection) -> Result<String, ClipboardError> {
        let mut d = open(&self.socket()?)?;
        if selection == Selection::Primary && d.manager.version() < 2 {
            return Err(ClipboardError::Unsupported(
                "this compositor's data-control has no primary selection",
            ));
        }
        let mut state = State::default();
        // The device announces the offers and the selections in answer to its creation.
        for _ in 0..2 {
            d.queue.roundtrip(&mut state).map_err(wl_err)?;
        }
        let offer = match selection {
            Selection::Clipboard => state.clipboard.clone(),
            Selection::Primary => state.primary.clone(),
        };
        let Some(offer) = offer else {
            return Ok(String::new());
        };
        let mimes = state
            .offers
            .iter()
            .find(|(o, _)| *o == offer)
            .map(|(_, m)| m.clone())
            .unwrap_or_default();
        let Some(mime) = TEXT_MIMES.iter().find(|m| mimes.iter().any(|x| x == *m)) else {
            return Err(ClipboardError::Backend(
                "the clipboard holds something other than text".into(),
            ));
        };
        let (mut reader, writer) = std::io::pipe().map_err(wl_err)?;
        offer.receive(mime.to_string(), writer.as_fd());
        d.conn.flush().map_err(wl_err)?;
        // Our copy of the write end goes, so the pipe ends when the source closes its copy.
        drop(writer);
        rustix::fs::fcntl_setfl(&reader, rustix::fs::OFlags::NONBLOCK).map_err(wl_err)?;
        let (mut text, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    text.extend_from_slice(&chunk[..n]);
                    if text.len() > MAX_CLIPBOARD_BYTES {
                        return Err(ClipboardError::TooLarge);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(wl_err(format!(
                            "the program holding the clipboard did not answer within {} s",
                            ANSWER_TIMEOUT.as_secs()
                        )));
                    }
                    std::thread::sleep(POLL_EVERY);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(wl_err(e)),
            }
        }
        offer.destroy();
        d.device.destroy();
        let _ = d.conn.flush();
        Ok(String::from_utf8(text)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    fn set(&self, selection: Selection, text: String) -> Result<(), ClipboardError> {
        let mut d = open(&self.socket()?)?;
        let qh = d.queue.handle();
        let source = d.manager.create_data_source(&qh, ());
        for m in TEXT_MIMES {
            source.offer(m.to_string());
        }
        match selection {
            Selection::Clipboard => d.device.set_selection(Some(&source)),
            Selection::Primary if d.manager.version() >= 2 => {
                d.device.set_primary_selection(Some(&source))
            }
            Selection::Primary => {
                return Err(ClipboardError::Unsupported(
                    "this compositor's data-control has no primary selection",
                ));
            }
        }
        let mut state = State {
            text,
            ..State::default()
        };
        d.queue.roundtrip(&mut state).map_err(wl_err)?;
        if state.cancelled {
            return Err(wl_err("another program took the clipboard over at once"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let Device {
            conn,
            mut queue,
            device,
            ..
        } = d;
        let serving = conn.clone();
        let thread = std::thread::Builder::new()
            .name(format!("wayland-{}-owner", selection.name()))
            .spawn(move || {
                while !stopped.load(Ordering::SeqCst) && !state.cancelled {
                    if let Err(e) = queue.blocking_dispatch(&mut state) {
                        tracing::debug!(error = %e, "the clipboard source's connection ended");
                        break;
                    }
                }
                source.destroy();
                device.destroy();
                let _ = serving.flush();
            })
            .map_err(|e| wl_err(format!("cannot start serving the clipboard: {e}")))?;
        let owner = Owner {
            conn,
            qh,
            stop,
            thread: Some(thread),
        };
        let slot = match selection {
            Selection::Clipboard => 0,
            Selection::Primary => 1,
        };
        let old = match self.owners.lock() {
            Ok(mut o) => o[slot].replace(owner),
            Err(p) => p.into_inner()[slot].replace(owner),
        };
        drop(old);
        Ok(())
    }
}

/// A selection this agent set: the connection, and the thread serving its source.
struct Owner {
    conn: Connection,
    qh: QueueHandle<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner").finish_non_exhaustive()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The answer to a sync is an event, which wakes the thread to see the flag.
        let _ = self.conn.display().sync(&self.qh, ());
        let _ = self.conn.flush();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for State {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<ZwlrDataControlDeviceV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &ZwlrDataControlDeviceV1,
        event: zwlr_data_control_device_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            zwlr_data_control_device_v1::Event::DataOffer { id } => {
                state.offers.push((id, Vec::new()))
            }
            zwlr_data_control_device_v1::Event::Selection { id } => {
                state.clipboard = id;
                state.forget_old_offers();
            }
            zwlr_data_control_device_v1::Event::PrimarySelection { id } => {
                state.primary = id;
                state.forget_old_offers();
            }
            _ => {}
        }
    }

    event_created_child!(State, ZwlrDataControlDeviceV1, [
        zwlr_data_control_device_v1::EVT_DATA_OFFER_OPCODE => (ZwlrDataControlOfferV1, ()),
    ]);
}

impl Dispatch<ZwlrDataControlOfferV1, ()> for State {
    fn event(
        state: &mut Self,
        offer: &ZwlrDataControlOfferV1,
        event: zwlr_data_control_offer_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwlr_data_control_offer_v1::Event::Offer { mime_type } = event
            && let Some((_, mimes)) = state.offers.iter_mut().find(|(o, _)| o == offer)
        {
            mimes.push(mime_type);
        }
    }
}

impl Dispatch<ZwlrDataControlSourceV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &ZwlrDataControlSourceV1,
        event: zwlr_data_control_source_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            // One paste: the text into the pipe, then the pipe closed (the file dropped).
            zwlr_data_control_source_v1::Event::Send { fd, .. } => {
                let mut pipe = std::fs::File::from(fd);
                if let Err(e) = pipe.write_all(state.text.as_bytes()) {
                    tracing::debug!(error = %e, "a paste stopped reading the clipboard");
                }
            }
            zwlr_data_control_source_v1::Event::Cancelled => state.cancelled = true,
            _ => {}
        }
    }
}

impl Dispatch<wl_callback::WlCallback, ()> for State {
    fn event(
        _: &mut Self,
        _: &wl_callback::WlCallback,
        _: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

wayland_client::delegate_noop!(State: ignore wl_seat::WlSeat);
wayland_client::delegate_noop!(State: ZwlrDataControlManagerV1);
