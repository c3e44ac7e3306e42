//! The Mutter backend (GNOME without the portal): `org.gnome.Mutter.ScreenCast` for frames (through
//! PipeWire) and `org.gnome.Mutter.RemoteDesktop` for input, on the session bus, with no dialog.
//!
//! Those APIs are for the session's own trusted programs (gnome-remote-desktop uses them); a
//! desktop that does not let the agent reach them needs the portal backend instead. Each view and
//! each control stream is its own remote-desktop session with one screen-cast stream of the
//! primary monitor (`RecordMonitor("")`): absolute pointer motion needs a stream to be relative to.
//! Stopping the session (on drop) ends both.

use std::collections::HashMap;
use std::time::Duration;

use tether_proto::screen::DisplayInfo;
use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{OwnedObjectPath, Value};

use super::pipewire_stream::{PipeWireFrames, PipeWireSource, Remote};
use super::remote_input::{RemoteDesktop, RemoteInput};
use super::{CaptureError, InputError, InputProvider, InputSink, ScreenProvider, ScreenSource};

const RD: &str = "org.gnome.Mutter.RemoteDesktop";
const SC: &str = "org.gnome.Mutter.ScreenCast";

/// How long Mutter may take to announce the stream's PipeWire node.
const STREAM_WAIT: Duration = Duration::from_secs(10);

/// Capture and input through Mutter's own D-Bus APIs.
#[derive(Debug, Clone, Default)]
pub struct MutterDesktop {
    bus: Option<String>,
    pipewire: Option<String>,
}

impl MutterDesktop {
    /// Mutter on the session bus at `bus` (a D-Bus address; `None`: the session's), with PipeWire's
    /// socket at `pipewire` (`None`: the session's default).
    pub fn new(bus: Option<String>, pipewire: Option<String>) -> Self {
        MutterDesktop { bus, pipewire }
    }

    fn connect(&self) -> Result<Connection, String> {
        let conn = match &self.bus {
            Some(a) => {
                zbus::blocking::connection::Builder::address(a.as_str()).and_then(|b| b.build())
            }
            None => Connection::session(),
        };
        conn.map_err(|e| format!("cannot reach the session bus: {e}"))
    }
}

fn dbus(what: &'static str) -> impl Fn(zbus::Error) -> String {
    move |e| format!("Mutter {what}: {e}")
}

/// One Mutter remote-desktop session with a screen-cast stream of the primary monitor.
struct Session {
    rd: Proxy<'static>,
    stream: OwnedObjectPath,
    node: u32,
}

impl Session {
    fn start(conn: &Connection) -> Result<Self, String> {
        let root = Proxy::new(conn, RD, "/org/gnome/Mutter/RemoteDesktop", RD)
            .map_err(dbus("RemoteDesktop"))?;
        let path: OwnedObjectPath = root
            .call("CreateSession", &())
            .map_err(dbus("RemoteDesktop.CreateSession"))?;
        let rd = Proxy::new(conn, RD, path, "org.gnome.Mutter.RemoteDesktop.Session")
            .map_err(dbus("session"))?;
        let id: String = rd.get_property("SessionId").map_err(dbus("SessionId"))?;
        let sc_root =
            Proxy::new(conn, SC, "/org/gnome/Mutter/ScreenCast", SC).map_err(dbus("ScreenCast"))?;
        let options = HashMap::from([("remote-desktop-session-id", Value::from(id.as_str()))]);
        let sc_path: OwnedObjectPath = sc_root
            .call("CreateSession", &(options,))
            .map_err(dbus("ScreenCast.CreateSession"))?;
        let sc = Proxy::new(conn, SC, sc_path, "org.gnome.Mutter.ScreenCast.Session")
            .map_err(dbus("screen cast"))?;
        // The cursor is not drawn into the pixels (as on X11).
        let options = HashMap::from([("cursor-mode", Value::U32(0))]);
        let stream: OwnedObjectPath = sc
            .call("RecordMonitor", &("", options))
            .map_err(dbus("RecordMonitor"))?;
        let sp = Proxy::new(
            conn,
            SC,
            stream.clone(),
            "org.gnome.Mutter.ScreenCast.Stream",
        )
        .map_err(dbus("stream"))?;
        let mut added = sp
            .receive_signal("PipeWireStreamAdded")
            .map_err(dbus("stream signal"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let node = added.next().map(|m| m.body().deserialize::<u32>());
            let _ = tx.send(node);
        });
        rd.call::<_, _, ()>("Start", &()).map_err(dbus("Start"))?;
        let node = match rx.recv_timeout(STREAM_WAIT) {
            Ok(Some(Ok(node))) => node,
            Ok(Some(Err(e))) => return Err(format!("Mutter sent a bad stream node: {e}")),
            Ok(None) => return Err("the Wayland compositor (Mutter) closed the session".into()),
            Err(_) => return Err("Mutter did not start the screen-cast stream".into()),
        };
        Ok(Session { rd, stream, node })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.rd.call::<_, _, ()>("Stop", &());
    }
}

impl RemoteDesktop for Session {
    fn motion(&mut self, x: f64, y: f64) -> Result<(), String> {
        let stream = self.stream.as_str().to_string();
        self.rd
            .call::<_, _, ()>("NotifyPointerMotionAbsolute", &(stream.as_str(), x, y))
            .map_err(dbus("pointer"))
    }

    fn button(&mut self, code: i32, down: bool) -> Result<(), String> {
        self.rd
            .call::<_, _, ()>("NotifyPointerButton", &(code, down))
            .map_err(dbus("button"))
    }

    fn axis(&mut self, axis: u32, steps: i32) -> Result<(), String> {
        self.rd
            .call::<_, _, ()>("NotifyPointerAxisDiscrete", &(axis, steps))
            .map_err(dbus("scroll"))
    }

    fn keycode(&mut self, code: u32, down: bool) -> Result<(), String> {
        self.rd
            .call::<_, _, ()>("NotifyKeyboardKeycode", &(code, down))
            .map_err(dbus("key"))
    }

    fn keysym(&mut self, sym: u32, down: bool) -> Result<(), String> {
        self.rd
            .call::<_, _, ()>("NotifyKeyboardKeysym", &(sym, down))
            .map_err(dbus("key"))
    }
}

impl MutterDesktop {
    /// A screen cast of the primary monitor, in a session of its own.
    fn source(&self) -> Result<PipeWireSource<Session>, CaptureError> {
        let conn = self.connect().map_err(CaptureError::Connect)?;
        let session = Session::start(&conn).map_err(CaptureError::Connect)?;
        let frames = PipeWireFrames::start(Remote::Socket(self.pipewire.clone()), session.node)
            .map_err(CaptureError::Connect)?;
        let info = DisplayInfo {
            index: 0,
            name: "primary monitor".into(),
            x: 0,
            y: 0,
            width: 0,
            height: 0,
            primary: true,
        };
        Ok(PipeWireSource::new(frames, info, session))
    }
}

impl ScreenProvider for MutterDesktop {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        Ok(vec![self.source()?.info()])
    }

    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        if index != 0 {
            return Err(CaptureError::NoSuchDisplay(index));
        }
        Ok(Box::new(self.source()?))
    }
}

impl InputProvider for MutterDesktop {
    fn open(&self) -> Result<Box<dyn InputSink>, InputError> {
        let conn = self.connect().map_err(InputError::Connect)?;
        let session = Session::start(&conn).map_err(InputError::Connect)?;
        Ok(Box::new(RemoteInput::new(session)?))
    }
}
