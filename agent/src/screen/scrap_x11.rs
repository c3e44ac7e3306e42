//! The X11 backend: capture with scrap (X11 MIT-SHM), RandR monitors and the cursor (XFixes
//! `GetCursorImage`, or only its position through `QueryPointer` without XFixes) through x11rb.
//!
//! scrap's X11 capturer is double-buffered: each `frame()` returns the picture requested by the previous
//! call (the first one: the picture requested when the capturer was created, i.e. when the view started)
//! and starts the next request. At streaming rates the lag is one frame interval; a static screen is exact.
//!
//! Displays come from [`super::monitors::screen_displays`] over each X screen's RandR monitors. scrap
//! lists the same monitors (it asks RandR too) and is matched by rectangle; "all monitors" is scrap's
//! whole-screen monitor when there is one (Xvfb keeps one), otherwise every monitor's capture put
//! together in one picture.
//!
//! An x11rb `ShmGetImage` backend (0.45 ms vs scrap's 0.95 ms per 1080p frame, per platform.md) was not
//! added: mapping the shared segment needs `unsafe` (shmat or mmap), which this workspace forbids, and
//! capture is not the largest cost per changed frame (see BENCHMARKS.md, "Screen").

#![cfg(target_os = "linux")]

use std::ffi::CString;
use std::rc::Rc;
use std::sync::Arc;

use scrap::x11::{Capturer, Display, Server};
use tether_proto::cursor::CursorShape;
use tether_proto::screen::DisplayInfo;
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use super::monitors::{self, Monitor, Region};
use super::{CaptureError, Pointer, ScreenProvider, ScreenSource};

/// scrap on the X server named `display` (e.g. `":5"`); `None` uses `$DISPLAY`.
#[derive(Debug, Clone, Default)]
pub struct ScrapScreen {
    display: Option<String>,
}

/// One listed display: which X screen, and what of it.
struct Entry {
    info: DisplayInfo,
    screen: usize,
    root: u32,
    region: Region,
    monitors: Vec<Monitor>,
    size: (u32, u32),
}

fn connect_err(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Connect(e.to_string())
}

/// The active RandR monitors of `root`; none when RandR is missing (the screen is then one display).
fn randr_monitors(conn: &RustConnection, root: u32) -> Vec<Monitor> {
    let Some(reply) = conn
        .randr_get_monitors(root, true)
        .ok()
        .and_then(|c| c.reply().ok())
    else {
        return Vec::new();
    };
    reply
        .monitors
        .iter()
        .map(|m| {
            let name = conn
                .get_atom_name(m.name)
                .ok()
                .and_then(|c| c.reply().ok())
                .map(|r| String::from_utf8_lossy(&r.name).into_owned())
                .unwrap_or_else(|| format!("monitor {}", m.name));
            Monitor {
                name,
                x: m.x.into(),
                y: m.y.into(),
                width: m.width.into(),
                height: m.height.into(),
                primary: m.primary,
            }
        })
        .collect()
}

impl ScrapScreen {
    /// Captures the X server `display`, or `$DISPLAY` when `None`.
    pub fn new(display: Option<String>) -> Self {
        ScrapScreen { display }
    }

    fn server(&self) -> Result<Rc<Server>, CaptureError> {
        let name = match &self.display {
            Some(d) => Some(CString::new(d.as_str()).map_err(connect_err)?),
            None => None,
        };
        let ptr = name.as_ref().map_or(std::ptr::null(), |n| n.as_ptr());
        // `name` outlives the call; xcb copies what it needs.
        let server = Server::connect(ptr).map_err(|e| CaptureError::Connect(format!("{e:?}")))?;
        Ok(Rc::new(server))
    }

    fn entries(&self, conn: &RustConnection) -> Vec<Entry> {
        let mut out = Vec::new();
        for (screen, root) in conn.setup().roots.iter().enumerate() {
            let size = (
                u32::from(root.width_in_pixels),
                u32::from(root.height_in_pixels),
            );
            let ms = randr_monitors(conn, root.root);
            let first = out.len() as u32;
            for (info, region) in
                monitors::screen_displays(first, &format!("screen {screen}"), size, &ms)
            {
                out.push(Entry {
                    info,
                    screen,
                    root: root.root,
                    region,
                    monitors: ms.clone(),
                    size,
                });
            }
        }
        out
    }
}

impl ScreenProvider for ScrapScreen {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        let (conn, _) = x11rb::connect(self.display.as_deref()).map_err(connect_err)?;
        Ok(self.entries(&conn).into_iter().map(|e| e.info).collect())
    }

    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        let (conn, _) = x11rb::connect(self.display.as_deref()).map_err(connect_err)?;
        let entry = self
            .entries(&conn)
            .into_iter()
            .nth(index as usize)
            .ok_or(CaptureError::NoSuchDisplay(index))?;
        let rect = |d: &Display| {
            let r = d.rect();
            (
                i32::from(r.x),
                i32::from(r.y),
                u32::from(r.w),
                u32::from(r.h),
            )
        };
        let on_screen: Vec<Display> = Server::displays(self.server()?)
            .filter(|d| d.root() == entry.root)
            .collect();
        let i = &entry.info;
        let wanted = (i.x, i.y, i.width, i.height);
        let mut chosen: Vec<Display> = Vec::new();
        let mut rest = Vec::new();
        for d in on_screen {
            if chosen.is_empty() && rect(&d) == wanted {
                chosen.push(d);
            } else {
                rest.push(d);
            }
        }
        if chosen.is_empty() && entry.region == Region::All {
            // No monitor covers the whole screen: put every monitor that lies on it together.
            let (w, h) = entry.size;
            chosen = rest
                .into_iter()
                .filter(|d| {
                    let (x, y, dw, dh) = rect(d);
                    x >= 0
                        && y >= 0
                        && i64::from(x) + i64::from(dw) <= i64::from(w)
                        && i64::from(y) + i64::from(dh) <= i64::from(h)
                })
                .collect();
        }
        if chosen.is_empty() {
            let what = match entry.region {
                Region::Monitor(m) => entry
                    .monitors
                    .get(m)
                    .map_or("a monitor".to_string(), |m| format!("monitor {}", m.name)),
                Region::All => "the screen".to_string(),
            };
            return Err(CaptureError::Capture(format!(
                "the display server no longer shows {what}"
            )));
        }
        let mut parts = Vec::new();
        for d in chosen {
            let (x, y, w, _) = rect(&d);
            let capturer = Capturer::new(d).map_err(|e| CaptureError::Capture(e.to_string()))?;
            parts.push(((x - i.x, y - i.y), w, capturer));
        }
        let pixels = i.width as usize * i.height as usize * 4;
        let stitched = if parts.len() > 1 || parts[0].0 != (0, 0) {
            vec![0; pixels]
        } else {
            Vec::new()
        };
        let xfixes = conn
            .xfixes_query_version(4, 0)
            .ok()
            .and_then(|c| c.reply().ok())
            .is_some();
        let damage = watch_damage(&conn, entry.screen);
        Ok(Box::new(ScrapSource {
            info: entry.info,
            screen: entry.screen,
            parts,
            stitched,
            pointer: conn,
            xfixes,
            shape: None,
            damage,
            damaged: true,
        }))
    }
}

/// A DAMAGE object on the screen's root window (reporting once whenever it goes from clean to
/// damaged), when the server has the extension.
fn watch_damage(conn: &RustConnection, screen: usize) -> Option<damage::Damage> {
    conn.damage_query_version(1, 1).ok()?.reply().ok()?;
    let root = conn.setup().roots.get(screen)?.root;
    let id = conn.generate_id().ok()?;
    conn.damage_create(id, root, damage::ReportLevel::NON_EMPTY)
        .ok()?
        .check()
        .ok()?;
    Some(id)
}

struct ScrapSource {
    info: DisplayInfo,
    screen: usize,
    /// Each capturer with its top-left in display pixels and its width.
    parts: Vec<((i32, i32), u32, Capturer)>,
    /// The picture put together from several parts (empty when one part is the whole display).
    stitched: Vec<u8>,
    pointer: RustConnection,
    xfixes: bool,
    shape: Option<Arc<CursorShape>>,
    /// The screen's DAMAGE object: a still screen is then neither captured nor diffed.
    damage: Option<damage::Damage>,
    /// Something was drawn since the last capture (or the server cannot say).
    damaged: bool,
}

impl ScreenSource for ScrapSource {
    fn info(&self) -> DisplayInfo {
        self.info.clone()
    }

    fn unchanged(&mut self) -> bool {
        let Some(_) = self.damage else {
            return false;
        };
        loop {
            match self.pointer.poll_for_event() {
                Ok(Some(Event::DamageNotify(_))) => self.damaged = true,
                Ok(Some(_)) => {}
                Ok(None) => break,
                // A broken connection: capture, which then says what went wrong.
                Err(_) => return false,
            }
        }
        !self.damaged
    }

    fn capture(&mut self) -> Result<&[u8], CaptureError> {
        // Clear the damage before reading the pixels: anything drawn meanwhile reports again.
        if let Some(d) = self.damage {
            let cleared = self
                .pointer
                .damage_subtract(d, x11rb::NONE, x11rb::NONE)
                .map(|_| ())
                .and_then(|()| self.pointer.flush());
            self.damaged = cleared.is_err();
        }
        let expected = self.info.width as usize * self.info.height as usize * 4;
        if self.stitched.is_empty() {
            let Some((_, _, capturer)) = self.parts.first_mut() else {
                return Err(CaptureError::Capture("nothing to capture".into()));
            };
            let frame = capturer.frame();
            if frame.len() < expected {
                return Err(CaptureError::Capture(format!(
                    "short frame: {} bytes",
                    frame.len()
                )));
            }
            return Ok(&frame[..expected]);
        }
        let width = self.info.width;
        for (at, w, capturer) in &mut self.parts {
            let frame = capturer.frame();
            monitors::blit(&mut self.stitched, width, frame, *at, *w);
        }
        Ok(&self.stitched)
    }

    fn cursor(&mut self) -> Option<Pointer> {
        if self.xfixes
            && let Some(img) = self
                .pointer
                .xfixes_get_cursor_image()
                .ok()
                .and_then(|c| c.reply().ok())
        {
            let serial = u64::from(img.cursor_serial);
            if self.shape.as_ref().is_none_or(|s| s.serial != serial) {
                // A shape over the size limit is not sent: the console then draws no cursor image.
                self.shape = CursorShape::from_argb(
                    serial,
                    (img.width, img.height),
                    (img.xhot, img.yhot),
                    &img.cursor_image,
                )
                .ok()
                .map(Arc::new);
            }
            let (x, y) = monitors::to_display(&self.info, img.x.into(), img.y.into());
            return Some(Pointer {
                x,
                y,
                shape: self.shape.clone(),
            });
        }
        let root = self.pointer.setup().roots.get(self.screen)?.root;
        let reply = self.pointer.query_pointer(root).ok()?.reply().ok()?;
        let (x, y) = monitors::to_display(&self.info, reply.root_x.into(), reply.root_y.into());
        Some(Pointer { x, y, shape: None })
    }
}
