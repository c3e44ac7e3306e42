//! The portal backend (GNOME, KDE, and wlroots with xdg-desktop-portal-wlr):
//! `org.freedesktop.portal.ScreenCast` for frames (through PipeWire) and
//! `org.freedesktop.portal.RemoteDesktop` for input, through `ashpd`.
//!
//! The portal asks the user itself, after Tether's own consent (nothing here runs before the grant).
//! If the user cancels that dialog, capture or input fails with a clear reason and the session goes
//! on. The view's screen cast asks to persist (`persist_mode` 2) and keeps the restore token in the
//! agent's data directory, replaced after every start, so a user who chose to remember is not asked
//! again. Control is a RemoteDesktop session with its own screen-cast sources (absolute pointer
//! motion needs a stream); portals before RemoteDesktop version 2 cannot restore it, so that
//! dialog shows every time there.
//!
//! One screen cast serves every view of a share while any is open; it is closed with the last one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ashpd::desktop::remote_desktop::{
    Axis, DeviceType, KeyState, RemoteDesktop as Rd, SelectDevicesOptions, StartOptions,
};
use ashpd::desktop::screencast::{
    CursorMode, Screencast, SelectSourcesOptions, SourceType, StartCastOptions,
};
use ashpd::desktop::{PersistMode, Session};
use tether_proto::screen::DisplayInfo;

use super::pipewire_stream::{PipeWireFrames, PipeWireSource, Remote};
use super::remote_input::{RemoteDesktop, RemoteInput};
use super::{CaptureError, InputError, InputProvider, InputSink, ScreenProvider, ScreenSource};

/// What the user reads when their desktop's own dialog was cancelled.
pub const SCREEN_REFUSED: &str = "the user's desktop did not allow screen sharing";
/// The same for remote control.
pub const CONTROL_REFUSED: &str = "the user's desktop did not allow remote control";

/// Capture and input through the desktop portal.
#[derive(Debug, Default)]
pub struct PortalDesktop {
    /// Where the screen cast's restore token is kept (`None`: not kept).
    token_file: Option<PathBuf>,
    cast: Cache,
    /// A remote-desktop session started to list displays for a control stream, waiting for that
    /// stream's input to open.
    control: Mutex<Option<Control>>,
}

/// The shared screen cast, if one is running.
type Cache = Arc<Mutex<Option<Arc<Cast>>>>;

/// Forgets the shared screen cast once nothing but the cache holds it (which closes it).
fn release(cache: &Cache) {
    let mut cached = cache.lock().unwrap_or_else(|e| e.into_inner());
    if cached.as_ref().is_some_and(|c| Arc::strong_count(c) == 1) {
        *cached = None;
    }
}

impl PortalDesktop {
    /// The portal on the session bus; the restore token lives in `token_file`.
    pub fn new(token_file: Option<PathBuf>) -> Self {
        PortalDesktop {
            token_file,
            cast: Cache::default(),
            control: Mutex::new(None),
        }
    }

    fn token(&self) -> Option<String> {
        let t = std::fs::read_to_string(self.token_file.as_ref()?).ok()?;
        Some(t.trim().to_string()).filter(|t| !t.is_empty())
    }

    fn keep_token(&self, token: Option<&str>) {
        if let (Some(file), Some(token)) = (&self.token_file, token)
            && let Err(e) = tether_net::private_file::write(file, token.as_bytes())
        {
            tracing::warn!(
                "cannot keep the portal's restore token in {}: {e}",
                file.display()
            );
        }
    }

    /// The shared screen cast, started (and the dialog shown, unless restored) on first use.
    fn cast(&self) -> Result<Arc<Cast>, CaptureError> {
        let mut cached = self.cast.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = &*cached {
            return Ok(c.clone());
        }
        let cast = Arc::new(Cast::start(self.token().as_deref()).map_err(CaptureError::Connect)?);
        self.keep_token(cast.token.as_deref());
        *cached = Some(cast.clone());
        Ok(cast)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the portal's runtime: {e}"))
}

fn portal_err(refused: &'static str) -> impl Fn(ashpd::Error) -> String {
    move |e| match e {
        ashpd::Error::Response(ashpd::desktop::ResponseError::Cancelled) => refused.to_string(),
        other => format!("the desktop portal: {other}"),
    }
}

/// A stream the portal started: PipeWire node, position and size.
#[derive(Debug, Clone, Copy)]
struct PortalStream {
    node: u32,
    position: Option<(i32, i32)>,
    size: Option<(i32, i32)>,
}

fn streams(list: &[ashpd::desktop::screencast::Stream]) -> Vec<PortalStream> {
    list.iter()
        .map(|s| PortalStream {
            node: s.pipe_wire_node_id(),
            position: s.position(),
            size: s.size(),
        })
        .collect()
}

/// The displays of the streams a portal session started, in its order.
fn infos(streams: &[PortalStream]) -> Vec<DisplayInfo> {
    streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (x, y) = s.position.unwrap_or((0, 0));
            let (w, h) = s.size.unwrap_or((0, 0));
            DisplayInfo {
                index: i as u32,
                name: format!("monitor {}", i + 1),
                x,
                y,
                width: w.max(0) as u32,
                height: h.max(0) as u32,
                primary: i == 0,
            }
        })
        .collect()
}

/// A running portal screen cast.
#[derive(Debug)]
struct Cast {
    rt: tokio::runtime::Runtime,
    proxy: Screencast,
    session: Session<Screencast>,
    streams: Vec<PortalStream>,
    token: Option<String>,
}

impl Cast {
    fn start(restore: Option<&str>) -> Result<Self, String> {
        let rt = runtime()?;
        let err = portal_err(SCREEN_REFUSED);
        let (proxy, session, started) = rt.block_on(async {
            let proxy = Screencast::new().await.map_err(&err)?;
            let session = proxy
                .create_session(Default::default())
                .await
                .map_err(&err)?;
            let options = SelectSourcesOptions::default()
                .set_cursor_mode(CursorMode::Hidden)
                .set_sources(enumflags2::BitFlags::from(SourceType::Monitor))
                .set_multiple(true)
                .set_persist_mode(PersistMode::ExplicitlyRevoked)
                .set_restore_token(restore);
            proxy
                .select_sources(&session, options)
                .await
                .map_err(&err)?;
            let started = proxy
                .start(&session, None, StartCastOptions::default())
                .await
                .map_err(&err)?
                .response()
                .map_err(&err)?;
            Ok::<_, String>((proxy, session, started))
        })?;
        Ok(Cast {
            streams: streams(started.streams()),
            token: started.restore_token().map(str::to_string),
            rt,
            proxy,
            session,
        })
    }

    fn infos(&self) -> Vec<DisplayInfo> {
        infos(&self.streams)
    }

    fn frames(&self, index: usize) -> Result<PipeWireFrames, String> {
        let stream = self
            .streams
            .get(index)
            .ok_or_else(|| format!("no display number {index}"))?;
        let fd = self
            .rt
            .block_on(
                self.proxy
                    .open_pipe_wire_remote(&self.session, Default::default()),
            )
            .map_err(portal_err(SCREEN_REFUSED))?;
        PipeWireFrames::start(Remote::Fd(fd), stream.node)
    }
}

impl Drop for Cast {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.session.close());
    }
}

/// A view's hold on the shared screen cast: released (and the cast closed, if it was the last)
/// once the view's stream is gone.
struct CastHold {
    cast: Option<Arc<Cast>>,
    cache: Cache,
}

impl ScreenProvider for PortalDesktop {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        Ok(self.cast()?.infos())
    }

    fn control_displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        if let Some(cast) = &*self.cast.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(cast.infos());
        }
        let control = Control::start().map_err(CaptureError::Connect)?;
        let infos = infos(&control.streams);
        *self.control.lock().unwrap_or_else(|e| e.into_inner()) = Some(control);
        Ok(infos)
    }

    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        let cast = self.cast()?;
        let info = cast
            .infos()
            .into_iter()
            .find(|d| d.index == index)
            .ok_or(CaptureError::NoSuchDisplay(index))?;
        let frames = cast.frames(index as usize).map_err(CaptureError::Connect)?;
        let hold = CastHold {
            cast: Some(cast),
            cache: self.cast.clone(),
        };
        Ok(Box::new(PipeWireSource::new(frames, info, hold)))
    }
}

impl Drop for CastHold {
    fn drop(&mut self) {
        self.cast = None;
        release(&self.cache);
    }
}

/// A running portal remote-desktop session (input, with screen-cast sources to aim at).
#[derive(Debug)]
struct Control {
    rt: tokio::runtime::Runtime,
    proxy: Rd,
    session: Session<Rd>,
    streams: Vec<PortalStream>,
}

impl Control {
    fn start() -> Result<Self, String> {
        let rt = runtime()?;
        let err = portal_err(CONTROL_REFUSED);
        let (proxy, session, started) = rt.block_on(async {
            let proxy = Rd::new().await.map_err(&err)?;
            let cast = Screencast::new().await.map_err(&err)?;
            let session = proxy
                .create_session(Default::default())
                .await
                .map_err(&err)?;
            let devices = SelectDevicesOptions::default()
                .set_devices(DeviceType::Keyboard | DeviceType::Pointer);
            proxy
                .select_devices(&session, devices)
                .await
                .map_err(&err)?;
            let sources = SelectSourcesOptions::default()
                .set_cursor_mode(CursorMode::Hidden)
                .set_sources(enumflags2::BitFlags::from(SourceType::Monitor))
                .set_multiple(true);
            cast.select_sources(&session, sources).await.map_err(&err)?;
            let started = proxy
                .start(&session, None, StartOptions::default())
                .await
                .map_err(&err)?
                .response()
                .map_err(&err)?;
            Ok::<_, String>((proxy, session, started))
        })?;
        Ok(Control {
            streams: streams(started.streams()),
            rt,
            proxy,
            session,
        })
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.session.close());
    }
}

fn call(e: ashpd::Error) -> String {
    format!("the desktop portal: {e}")
}

fn state(down: bool) -> KeyState {
    if down {
        KeyState::Pressed
    } else {
        KeyState::Released
    }
}

impl RemoteDesktop for Control {
    fn motion(&mut self, x: f64, y: f64) -> Result<(), String> {
        let node = self
            .streams
            .first()
            .ok_or("the portal started no stream")?
            .node;
        self.rt
            .block_on(self.proxy.notify_pointer_motion_absolute(
                &self.session,
                node,
                x,
                y,
                Default::default(),
            ))
            .map_err(call)
    }

    fn button(&mut self, code: i32, down: bool) -> Result<(), String> {
        self.rt
            .block_on(self.proxy.notify_pointer_button(
                &self.session,
                code,
                state(down),
                Default::default(),
            ))
            .map_err(call)
    }

    fn axis(&mut self, axis: u32, steps: i32) -> Result<(), String> {
        let axis = if axis == 0 {
            Axis::Vertical
        } else {
            Axis::Horizontal
        };
        self.rt
            .block_on(self.proxy.notify_pointer_axis_discrete(
                &self.session,
                axis,
                steps,
                Default::default(),
            ))
            .map_err(call)
    }

    fn keycode(&mut self, code: u32, down: bool) -> Result<(), String> {
        let code = i32::try_from(code).map_err(|_| "key code out of range")?;
        self.rt
            .block_on(self.proxy.notify_keyboard_keycode(
                &self.session,
                code,
                state(down),
                Default::default(),
            ))
            .map_err(call)
    }

    fn keysym(&mut self, sym: u32, down: bool) -> Result<(), String> {
        let sym = i32::try_from(sym).map_err(|_| "keysym out of range")?;
        self.rt
            .block_on(self.proxy.notify_keyboard_keysym(
                &self.session,
                sym,
                state(down),
                Default::default(),
            ))
            .map_err(call)
    }
}

impl InputProvider for PortalDesktop {
    fn open(&self) -> Result<Box<dyn InputSink>, InputError> {
        let pending = self
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let control = match pending {
            Some(c) => c,
            None => Control::start().map_err(InputError::Connect)?,
        };
        Ok(Box::new(RemoteInput::new(control)?))
    }
}
