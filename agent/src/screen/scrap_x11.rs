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
//! **Damage capture.** When the server has DAMAGE, XFixes regions and MIT-SHM 1.2 (file descriptor
//! passing), and one capturer is the whole display, only what changed is read: each capture moves the
//! DAMAGE object's region into an XFixes region (`DamageSubtract`, on the same connection as the
//! reads, so nothing drawn in between is lost), fetches its rectangles, and reads just those with
//! `ShmGetImage` into a memfd attached to the server, then `pread`s them into a picture kept here (no
//! mapping, so no `unsafe`). The first capture reads the whole display the same way. The rectangles go
//! to the view loop ([`ScreenSource::capture_damage`]), which then compares only them. Anything else
//! (no extension, a stitched "all monitors" picture, any error on this path) falls back to scrap and
//! the full-frame compare, for good.

#![cfg(target_os = "linux")]

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;

use scrap::x11::{Capturer, Display, Server};
use tether_proto::cursor::CursorShape;
use tether_proto::screen::{BPP, DisplayInfo, Rect};
use tracing::warn;
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder};
use x11rb::rust_connection::RustConnection;

use super::monitors::{self, Monitor, Region};
use super::{Capture, CaptureError, Pointer, ScreenProvider, ScreenSource};

/// Most damage rectangles read one by one; more are read as their bounding box (one request).
pub const MAX_DAMAGE_RECTS: usize = 64;

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
        // Damage capture reads the display straight off the root: only when scrap's one capturer is
        // the whole display (a stitched picture keeps scrap's gaps between monitors).
        let shm = match damage {
            Some(_) if stitched.is_empty() => DamageCapture::new(&conn, entry.root, &entry.info),
            _ => None,
        };
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
            shm,
        }))
    }
}

/// Reading only the damaged rectangles: an XFixes region to move the damage into, a memfd shared
/// with the server for `ShmGetImage`, and the picture as of the last capture.
struct DamageCapture {
    root: u32,
    region: xfixes::Region,
    seg: shm::Seg,
    memfd: OwnedFd,
    /// The display's top-left on the root window.
    origin: (i32, i32),
    size: (u32, u32),
    picture: Vec<u8>,
    scratch: Vec<u8>,
    /// The next capture reads the whole display (the first one).
    whole: bool,
}

impl DamageCapture {
    /// Sets up damage capture of `info` on `root`, when the server can (`None`: use scrap).
    fn new(conn: &RustConnection, root: u32, info: &DisplayInfo) -> Option<Self> {
        let shm_version = conn.shm_query_version().ok()?.reply().ok()?;
        if (shm_version.major_version, shm_version.minor_version) < (1, 2) {
            return None;
        }
        let xfixes_version = conn.xfixes_query_version(4, 0).ok()?.reply().ok()?;
        if xfixes_version.major_version < 2 {
            return None;
        }
        // Pixels as the view loop takes them: 32 bits per pixel, least significant byte first (B G R X).
        let setup = conn.setup();
        let depth = setup.roots.iter().find(|s| s.root == root)?.root_depth;
        let format = setup.pixmap_formats.iter().find(|f| f.depth == depth)?;
        if format.bits_per_pixel != 32 || setup.image_byte_order != ImageOrder::LSB_FIRST {
            return None;
        }
        let len = info.width as usize * info.height as usize * BPP;
        let memfd =
            rustix::fs::memfd_create("tether-x11-capture", rustix::fs::MemfdFlags::CLOEXEC).ok()?;
        rustix::fs::ftruncate(&memfd, len as u64).ok()?;
        let seg = conn.generate_id().ok()?;
        let region = conn.generate_id().ok()?;
        conn.shm_attach_fd(seg, memfd.try_clone().ok()?, false)
            .ok()?
            .check()
            .ok()?;
        conn.xfixes_create_region(region, &[]).ok()?.check().ok()?;
        Some(DamageCapture {
            root,
            region,
            seg,
            memfd,
            origin: (info.x, info.y),
            size: (info.width, info.height),
            picture: vec![0; len],
            scratch: Vec::new(),
            whole: true,
        })
    }

    /// Moves the damage into the region and reads what it covers into the picture. Returns the
    /// rectangles read (display pixels), or `None` when the whole display was read.
    fn capture(
        &mut self,
        conn: &RustConnection,
        damage: damage::Damage,
    ) -> Result<Option<Vec<Rect>>, String> {
        let e = |e: &dyn std::fmt::Display| e.to_string();
        let (w, h) = self.size;
        let whole = Rect { x: 0, y: 0, w, h };
        let rects = if self.whole {
            conn.damage_subtract(damage, x11rb::NONE, x11rb::NONE)
                .map_err(|x| e(&x))?;
            vec![whole]
        } else {
            conn.damage_subtract(damage, x11rb::NONE, self.region)
                .map_err(|x| e(&x))?;
            let reply = conn
                .xfixes_fetch_region(self.region)
                .map_err(|x| e(&x))?
                .reply()
                .map_err(|x| e(&x))?;
            let mut rects: Vec<Rect> = reply
                .rectangles
                .iter()
                .filter_map(|r| self.clip(r.x.into(), r.y.into(), r.width.into(), r.height.into()))
                .collect();
            if rects.len() > MAX_DAMAGE_RECTS {
                rects = vec![bounding_box(&rects)];
            }
            rects
        };
        // The region's rectangles do not overlap, so they fit the display-sized segment side by side;
        // all requests go out before the first reply is awaited.
        let mut cookies = Vec::with_capacity(rects.len());
        let mut offset = 0usize;
        for r in &rects {
            let (x, y) = (self.origin.0 + r.x as i32, self.origin.1 + r.y as i32);
            let cookie = conn
                .shm_get_image(
                    self.root,
                    i16::try_from(x).map_err(|x| e(&x))?,
                    i16::try_from(y).map_err(|x| e(&x))?,
                    u16::try_from(r.w).map_err(|x| e(&x))?,
                    u16::try_from(r.h).map_err(|x| e(&x))?,
                    !0,
                    ImageFormat::Z_PIXMAP.into(),
                    self.seg,
                    u32::try_from(offset).map_err(|x| e(&x))?,
                )
                .map_err(|x| e(&x))?;
            cookies.push((*r, offset, cookie));
            offset += r.w as usize * r.h as usize * BPP;
        }
        let stride = w as usize * BPP;
        for (r, at, cookie) in cookies {
            let reply = cookie.reply().map_err(|x| e(&x))?;
            let row = r.w as usize * BPP;
            let len = row * r.h as usize;
            if reply.size as usize != len {
                return Err(format!("an image of {} bytes for {len}", reply.size));
            }
            self.scratch.resize(len, 0);
            let mut done = 0;
            while done < len {
                let n =
                    rustix::io::pread(&self.memfd, &mut self.scratch[done..], (at + done) as u64)
                        .map_err(|x| e(&x))?;
                if n == 0 {
                    return Err("the capture buffer is short".into());
                }
                done += n;
            }
            for (i, src) in self.scratch.chunks_exact(row).enumerate() {
                let s = (r.y as usize + i) * stride + r.x as usize * BPP;
                self.picture[s..s + row].copy_from_slice(src);
            }
        }
        if std::mem::take(&mut self.whole) {
            return Ok(None);
        }
        Ok(Some(rects))
    }

    /// A damage rectangle on the root, as display pixels clipped to the display.
    fn clip(&self, x: i32, y: i32, w: i32, h: i32) -> Option<Rect> {
        let (dw, dh) = (self.size.0 as i32, self.size.1 as i32);
        let (x0, y0) = ((x - self.origin.0).max(0), (y - self.origin.1).max(0));
        let (x1, y1) = (
            (x - self.origin.0 + w).min(dw),
            (y - self.origin.1 + h).min(dh),
        );
        (x0 < x1 && y0 < y1).then(|| Rect {
            x: x0 as u32,
            y: y0 as u32,
            w: (x1 - x0) as u32,
            h: (y1 - y0) as u32,
        })
    }
}

fn bounding_box(rects: &[Rect]) -> Rect {
    let x0 = rects.iter().map(|r| r.x).min().unwrap_or(0);
    let y0 = rects.iter().map(|r| r.y).min().unwrap_or(0);
    let x1 = rects.iter().map(|r| r.x + r.w).max().unwrap_or(0);
    let y1 = rects.iter().map(|r| r.y + r.h).max().unwrap_or(0);
    Rect {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
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
    /// Reading only what DAMAGE reports, when the server can; `None`: scrap reads everything.
    shm: Option<DamageCapture>,
}

impl ScrapSource {
    /// The whole display through scrap (the fallback without damage capture).
    fn capture_whole(&mut self) -> Result<&[u8], CaptureError> {
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
        self.capture_damage().map(|c| c.pixels)
    }

    fn capture_damage(&mut self) -> Result<Capture<'_>, CaptureError> {
        let read = match (&mut self.shm, self.damage) {
            (Some(shm), Some(d)) => {
                // Damage drawn after the subtract reports again, so the flag can be cleared first.
                self.damaged = false;
                Some(shm.capture(&self.pointer, d))
            }
            _ => None,
        };
        let damage = match read {
            Some(Ok(damage)) => Some(damage),
            Some(Err(e)) => {
                warn!(error = %e, "damage capture failed; capturing whole frames from now on");
                self.shm = None;
                None
            }
            None => None,
        };
        if let Some(damage) = damage
            && self.shm.is_some()
        {
            // Some just above; the empty slice is never returned.
            let pixels = self.shm.as_ref().map_or(&[][..], |s| &s.picture[..]);
            return Ok(Capture { pixels, damage });
        }
        self.capture_whole().map(|pixels| Capture {
            pixels,
            damage: None,
        })
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
