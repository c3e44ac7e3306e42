//! A drag-and-drop source for window tests: drops files onto a window the way a file manager does
//! on X11 (the XDND protocol, version 5), so a test can check what a real drop does.
//!
//! The source makes its own (unmapped) window, owns `XdndSelection`, sends `XdndEnter`,
//! `XdndPosition` and, once the target accepts, `XdndDrop`; it answers the target's requests for
//! `text/uri-list` with the files' `file://` URIs until the target says `XdndFinished`.

use std::path::Path;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    ClientMessageEvent, ConnectionExt, CreateWindowAux, EventMask, PropMode, SelectionNotifyEvent,
    WindowClass,
};
use x11rb::rust_connection::RustConnection;

/// The XDND version spoken.
const VERSION: u32 = 5;

/// How long the target has to answer each step.
const STEP: Duration = Duration::from_secs(10);

/// Percent-encodes a path for a `file://` URI (everything but unreserved characters and `/`).
fn file_uri(path: &Path) -> String {
    let mut s = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// Drops `files` onto `target` (a top-level window id) at root position `at`, on X display
/// `display`. Returns once the target says it finished, with whether it accepted the drop.
pub fn drop_files(display: &str, target: u32, at: (i16, i16), files: &[&Path]) -> bool {
    let (conn, screen) = RustConnection::connect(Some(display)).expect("connect to the X display");
    let root = conn.setup().roots[screen].root;
    let atom = |name: &str| {
        conn.intern_atom(false, name.as_bytes())
            .expect("intern")
            .reply()
            .expect("intern reply")
            .atom
    };
    let [
        enter,
        position,
        status,
        drop,
        finished,
        selection,
        copy,
        uri_list,
    ] = [
        "XdndEnter",
        "XdndPosition",
        "XdndStatus",
        "XdndDrop",
        "XdndFinished",
        "XdndSelection",
        "XdndActionCopy",
        "text/uri-list",
    ]
    .map(atom);
    let source = conn.generate_id().expect("id");
    conn.create_window(
        0,
        source,
        root,
        -10,
        -10,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
    )
    .expect("create window");
    conn.set_selection_owner(source, selection, x11rb::CURRENT_TIME)
        .expect("own XdndSelection");
    let body: String = files
        .iter()
        .map(|p| format!("{}\r\n", file_uri(p)))
        .collect();
    let send = |kind: u32, data: [u32; 5]| {
        let ev = ClientMessageEvent::new(32, target, kind, data);
        conn.send_event(false, target, EventMask::NO_EVENT, ev)
            .expect("send");
        conn.flush().expect("flush");
    };
    send(enter, [source, VERSION << 24, uri_list, 0, 0]);
    let pos = ((at.0 as u32) << 16) | (at.1 as u16 as u32);
    send(position, [source, 0, pos, 0, copy]);
    let mut accepted = None;
    let mut dropped = false;
    let deadline = Instant::now() + STEP * 3;
    while Instant::now() < deadline {
        let Some(ev) = conn.poll_for_event().expect("event") else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        match ev {
            Event::SelectionRequest(req) => {
                let property = if req.target == uri_list {
                    let prop = if req.property == x11rb::NONE {
                        req.target
                    } else {
                        req.property
                    };
                    conn.change_property(
                        PropMode::REPLACE,
                        req.requestor,
                        prop,
                        uri_list,
                        8,
                        body.len() as u32,
                        body.as_bytes(),
                    )
                    .expect("property");
                    prop
                } else {
                    x11rb::NONE
                };
                let notify = SelectionNotifyEvent {
                    response_type: x11rb::protocol::xproto::SELECTION_NOTIFY_EVENT,
                    sequence: 0,
                    time: req.time,
                    requestor: req.requestor,
                    selection: req.selection,
                    target: req.target,
                    property,
                };
                conn.send_event(false, req.requestor, EventMask::NO_EVENT, notify)
                    .expect("notify");
                conn.flush().expect("flush");
            }
            Event::ClientMessage(msg) if msg.type_ == status => {
                let ok = msg.data.as_data32()[1] & 1 == 1;
                accepted = Some(ok);
                if !dropped {
                    dropped = true;
                    if ok {
                        send(drop, [source, 0, 0, 0, 0]);
                    } else {
                        send(atom("XdndLeave"), [source, 0, 0, 0, 0]);
                        return false;
                    }
                }
            }
            Event::ClientMessage(msg) if msg.type_ == finished => {
                let _ = conn.destroy_window(source);
                let _ = conn.flush();
                return accepted.unwrap_or(false);
            }
            _ => {}
        }
    }
    panic!(
        "the drop target did not finish the drop within {:?}",
        STEP * 3
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_percent_encoded() {
        assert_eq!(
            file_uri(Path::new("/tmp/a b/ü#.txt")),
            "file:///tmp/a%20b/%C3%BC%23.txt"
        );
    }
}
