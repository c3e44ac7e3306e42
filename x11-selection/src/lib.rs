//! X11 selections as text, through x11rb: read `CLIPBOARD` or `PRIMARY`, and own one and serve its
//! text to whoever pastes, for as long as nobody else takes it.
//!
//! The agent's clipboard backend (the user's X display) and the console's viewer (the technician's
//! own display) both use this one implementation: the console may not depend on the agent, and X11
//! selections are a protocol of their own (ICCCM §2) that neither side should have twice.
//!
//! # Layout
//! - [`X11Selections::get`]: a fresh connection and an input-only window per read;
//!   `ConvertSelection` to `UTF8_STRING`, then `STRING` (Latin-1), then `TEXT`; `INCR` transfers
//!   (what owners use for large text) are read chunk by chunk. Nothing beyond the caller's limit is
//!   read: a larger selection is [`SelectionError::TooLarge`].
//! - [`X11Selections::set`]: takes the selection with a window of its own and checks it got it,
//!   then a background thread answers `SelectionRequest`s for `TARGETS`, `UTF8_STRING`, `STRING` and
//!   `TEXT` until a `SelectionClear` (someone else copied) or until the owner is replaced or dropped.
//!   Text is served in one `ChangeProperty`, never by `INCR`: the server's request limit (16 MiB
//!   with BIG-REQUESTS, which every current server has; 256 KiB without) is far above Tether's
//!   1 MiB clipboard limit ([`tether_proto::clipboard::MAX_CLIPBOARD_BYTES`]). A request that would
//!   not fit is refused (the pasting program gets nothing) and logged.
//!
//! Reads wait for the owner's answer by polling the connection every [`POLL_EVERY`], up to
//! [`ANSWER_TIMEOUT`]: x11rb has no blocking wait with a deadline, and a short sleep keeps this
//! free of extra threads and of `unsafe` file-descriptor polling.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tether_proto::clipboard::Selection;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, PropMode,
    Property, SELECTION_NOTIFY_EVENT, SelectionNotifyEvent, SelectionRequestEvent, Window,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{COPY_DEPTH_FROM_PARENT, COPY_FROM_PARENT, CURRENT_TIME, NONE};

/// How long a read waits for the selection's owner to answer (each chunk of an `INCR` transfer too).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a read looks for the owner's answer.
pub const POLL_EVERY: Duration = Duration::from_millis(5);

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        CLIPBOARD,
        UTF8_STRING,
        TEXT,
        TARGETS,
        INCR,
        TETHER_SELECTION,
        TETHER_STOP,
    }
}

/// Why a selection could not be read or set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    /// The X server could not be reached.
    #[error("cannot connect to the X display: {0}")]
    Connect(String),
    /// A request to the X server failed.
    #[error("the X server refused a clipboard request: {0}")]
    X11(String),
    /// The program that owns the selection did not answer in time.
    #[error("the program holding the clipboard did not answer within {} s", ANSWER_TIMEOUT.as_secs())]
    Timeout,
    /// The selection holds something that is not text (an image, files).
    #[error("the clipboard holds something other than text")]
    NotText,
    /// The selection holds more than the caller's limit.
    #[error("the clipboard holds more than {limit} bytes of text")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Another program took the selection the moment it was set.
    #[error("another program took the clipboard over at once")]
    NotOwner,
    /// The thread that serves the text could not start.
    #[error("cannot start serving the clipboard: {0}")]
    Thread(String),
}

fn x11_err(e: impl std::fmt::Display) -> SelectionError {
    SelectionError::X11(e.to_string())
}

/// The selections of one X display: reads them, and owns what was set through it.
#[derive(Debug, Default)]
pub struct X11Selections {
    display: Option<String>,
    /// The owner serving each selection's text, `[Clipboard, Primary]`.
    owners: Mutex<[Option<Owner>; 2]>,
}

impl X11Selections {
    /// The selections of the X display `display` (e.g. `":5"`); `None` uses `$DISPLAY`.
    pub fn new(display: Option<String>) -> Self {
        X11Selections {
            display,
            owners: Mutex::new([None, None]),
        }
    }

    /// The text on `selection` (empty when nobody holds it), at most `limit` bytes of UTF-8.
    pub fn get(&self, selection: Selection, limit: usize) -> Result<String, SelectionError> {
        let x = Client::connect(self.display.as_deref())?;
        let sel = x.atom(selection);
        let owner = x
            .conn
            .get_selection_owner(sel)
            .map_err(x11_err)?
            .reply()
            .map_err(x11_err)?
            .owner;
        if owner == NONE {
            return Ok(String::new());
        }
        for target in [x.atoms.UTF8_STRING, AtomEnum::STRING.into(), x.atoms.TEXT] {
            if let Some((kind, bytes)) = x.convert(sel, target, limit)? {
                return x.decode(kind, bytes);
            }
        }
        Err(SelectionError::NotText)
    }

    /// Puts `text` on `selection` and serves it from a background thread until another program
    /// takes the selection, the next `set` of the same selection, or this value is dropped.
    pub fn set(&self, selection: Selection, text: String) -> Result<(), SelectionError> {
        let x = Client::connect(self.display.as_deref())?;
        let sel = x.atom(selection);
        x.conn
            .set_selection_owner(x.window, sel, CURRENT_TIME)
            .map_err(x11_err)?;
        let owner = x
            .conn
            .get_selection_owner(sel)
            .map_err(x11_err)?
            .reply()
            .map_err(x11_err)?
            .owner;
        if owner != x.window {
            return Err(SelectionError::NotOwner);
        }
        let conn = Arc::new(x.conn);
        let (window, atoms) = (x.window, x.atoms);
        let serving = conn.clone();
        let thread = std::thread::Builder::new()
            .name(format!("x11-{}-owner", selection.name()))
            .spawn(move || serve(&serving, window, &atoms, sel, &text))
            .map_err(|e| SelectionError::Thread(e.to_string()))?;
        let owner = Owner {
            conn,
            window,
            stop: atoms.TETHER_STOP,
            thread: Some(thread),
        };
        // The previous owner had its SelectionClear already (its thread has ended or is ending).
        let old = match self.owners.lock() {
            Ok(mut o) => o[slot(selection)].replace(owner),
            Err(p) => p.into_inner()[slot(selection)].replace(owner),
        };
        drop(old);
        Ok(())
    }
}

fn slot(selection: Selection) -> usize {
    match selection {
        Selection::Clipboard => 0,
        Selection::Primary => 1,
    }
}

/// One connection with an input-only window that receives the answers.
struct Client {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
}

impl Client {
    fn connect(display: Option<&str>) -> Result<Client, SelectionError> {
        let (conn, screen) =
            x11rb::connect(display).map_err(|e| SelectionError::Connect(e.to_string()))?;
        let root = conn
            .setup()
            .roots
            .get(screen)
            .ok_or_else(|| SelectionError::Connect(format!("the X server has no screen {screen}")))?
            .root;
        let atoms = Atoms::new(&conn)
            .map_err(x11_err)?
            .reply()
            .map_err(x11_err)?;
        let window = conn.generate_id().map_err(x11_err)?;
        conn.create_window(
            COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            COPY_FROM_PARENT,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )
        .map_err(x11_err)?;
        conn.flush().map_err(x11_err)?;
        Ok(Client {
            conn,
            window,
            atoms,
        })
    }

    fn atom(&self, selection: Selection) -> u32 {
        match selection {
            Selection::Clipboard => self.atoms.CLIPBOARD,
            Selection::Primary => AtomEnum::PRIMARY.into(),
        }
    }

    /// Waits (up to [`ANSWER_TIMEOUT`]) for an event `want` accepts.
    fn wait(&self, mut want: impl FnMut(&Event) -> bool) -> Result<Event, SelectionError> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            while let Some(ev) = self.conn.poll_for_event().map_err(x11_err)? {
                if want(&ev) {
                    return Ok(ev);
                }
            }
            if Instant::now() >= deadline {
                return Err(SelectionError::Timeout);
            }
            std::thread::sleep(POLL_EVERY);
        }
    }

    /// Asks the owner for `target`; `None` when it has no such form. Returns the property's type and
    /// bytes, an `INCR` transfer put together.
    fn convert(
        &self,
        sel: u32,
        target: u32,
        limit: usize,
    ) -> Result<Option<(u32, Vec<u8>)>, SelectionError> {
        let prop = self.atoms.TETHER_SELECTION;
        self.conn
            .delete_property(self.window, prop)
            .map_err(x11_err)?;
        self.conn
            .convert_selection(self.window, sel, target, prop, CURRENT_TIME)
            .map_err(x11_err)?;
        self.conn.flush().map_err(x11_err)?;
        let window = self.window;
        let ev = self.wait(|e| matches!(e, Event::SelectionNotify(n) if n.requestor == window))?;
        let Event::SelectionNotify(n) = ev else {
            return Ok(None);
        };
        if n.property == NONE {
            return Ok(None);
        }
        // A little more than the limit, in 4-byte units, so that "more" is seen as such.
        let units = u32::try_from(limit / 4 + 1).unwrap_or(u32::MAX);
        let reply = self
            .conn
            .get_property(true, window, prop, AtomEnum::ANY, 0, units)
            .map_err(x11_err)?
            .reply()
            .map_err(x11_err)?;
        if reply.type_ != self.atoms.INCR {
            if reply.bytes_after > 0 || reply.value.len() > limit {
                return Err(SelectionError::TooLarge { limit });
            }
            return Ok(Some((reply.type_, reply.value)));
        }
        // INCR: deleting the property (done by the read above) asks for the first chunk; each
        // chunk is a new value of the property, and an empty one ends the transfer.
        self.conn.flush().map_err(x11_err)?;
        let (mut kind, mut bytes) = (NONE, Vec::new());
        loop {
            self.wait(|e| {
                matches!(e, Event::PropertyNotify(p)
                    if p.window == window && p.atom == prop && p.state == Property::NEW_VALUE)
            })?;
            let chunk = self
                .conn
                .get_property(true, window, prop, AtomEnum::ANY, 0, units)
                .map_err(x11_err)?
                .reply()
                .map_err(x11_err)?;
            self.conn.flush().map_err(x11_err)?;
            if chunk.value.is_empty() {
                return Ok(Some((kind, bytes)));
            }
            kind = chunk.type_;
            bytes.extend_from_slice(&chunk.value);
            if bytes.len() > limit || chunk.bytes_after > 0 {
                return Err(SelectionError::TooLarge { limit });
            }
        }
    }

    /// The text in a converted property of type `kind`.
    fn decode(&self, kind: u32, bytes: Vec<u8>) -> Result<String, SelectionError> {
        if kind == u32::from(AtomEnum::STRING) {
            return Ok(latin1_to_string(&bytes));
        }
        match String::from_utf8(bytes) {
            Ok(s) => Ok(s),
            // UTF8_STRING that is not UTF-8: keep what is readable.
            Err(e) if kind == self.atoms.UTF8_STRING => {
                Ok(String::from_utf8_lossy(e.as_bytes()).into_owned())
            }
            // TEXT answered in another encoding (COMPOUND_TEXT) Tether does not read.
            Err(_) => Err(SelectionError::NotText),
        }
    }
}

/// ICCCM's `STRING` is ISO Latin-1: each byte is the code point of the same number.
pub fn latin1_to_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// `text` as ISO Latin-1 for a `STRING` request; characters beyond Latin-1 become `?`.
pub fn string_to_latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// A selection this process owns: the connection whose window owns it, and the thread serving it.
struct Owner {
    conn: Arc<RustConnection>,
    window: Window,
    stop: u32,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Wake the serving thread with a message to its own window; it returns, and the window
        // (and with it the selection) goes when the connection closes.
        let msg = ClientMessageEvent::new(32, self.window, self.stop, [0u32; 5]);
        let _ = self
            .conn
            .send_event(false, self.window, EventMask::NO_EVENT, msg);
        let _ = self.conn.flush();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers requests for `sel` until another program takes it or the owner is stopped.
fn serve(conn: &RustConnection, window: Window, atoms: &Atoms, sel: u32, text: &str) {
    let max = conn.maximum_request_bytes();
    loop {
        let ev = match conn.wait_for_event() {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(error = %e, "the clipboard owner's connection ended");
                return;
            }
        };
        match ev {
            Event::SelectionRequest(r) if r.selection == sel && r.owner == window => {
                answer(conn, atoms, &r, text, max)
            }
            Event::SelectionClear(c) if c.selection == sel && c.owner == window => return,
            Event::ClientMessage(m) if m.window == window && m.type_ == atoms.TETHER_STOP => {
                return;
            }
            // X errors from a requestor that went away before its answer, and the rest.
            _ => {}
        }
    }
}

/// Answers one `SelectionRequest` (ICCCM 2.2): writes the property, then tells the requestor.
fn answer(
    conn: &RustConnection,
    atoms: &Atoms,
    r: &SelectionRequestEvent,
    text: &str,
    max_request: usize,
) {
    // Obsolete clients name no property: the target is the property then.
    let property = if r.property == NONE {
        r.target
    } else {
        r.property
    };
    let string = u32::from(AtomEnum::STRING);
    let data = if r.target == atoms.UTF8_STRING || r.target == atoms.TEXT {
        Some((atoms.UTF8_STRING, text.as_bytes().to_vec()))
    } else if r.target == string {
        Some((string, string_to_latin1(text)))
    } else {
        None
    };
    let written = if r.target == atoms.TARGETS {
        let targets = [atoms.TARGETS, atoms.UTF8_STRING, string, atoms.TEXT];
        conn.change_property32(
            PropMode::REPLACE,
            r.requestor,
            property,
            AtomEnum::ATOM,
            &targets,
        )
        .is_ok()
    } else if let Some((kind, bytes)) = data {
        // The request's own header and fields take 24 bytes.
        if bytes.len() + 24 > max_request {
            tracing::warn!(
                bytes = bytes.len(),
                max_request,
                "clipboard text too large for one X request; not served"
            );
            false
        } else {
            conn.change_property8(PropMode::REPLACE, r.requestor, property, kind, &bytes)
                .is_ok()
        }
    } else {
        false
    };
    let notify = SelectionNotifyEvent {
        response_type: SELECTION_NOTIFY_EVENT,
        sequence: 0,
        time: r.time,
        requestor: r.requestor,
        selection: r.selection,
        target: r.target,
        property: if written { property } else { NONE },
    };
    let _ = conn.send_event(false, r.requestor, EventMask::NO_EVENT, notify);
    let _ = conn.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_round_trips_what_it_can_hold() {
        let s = "café ÿ";
        assert_eq!(latin1_to_string(&string_to_latin1(s)), s);
        assert_eq!(string_to_latin1("日本é"), b"??\xe9");
        assert_eq!(latin1_to_string(b"na\xefve"), "naïve");
    }
}
