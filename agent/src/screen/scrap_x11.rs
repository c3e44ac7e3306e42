//! Capture with scrap (X11 MIT-SHM), and the pointer position with x11rb's QueryPointer.
//!
//! scrap's X11 capturer is double-buffered: each `frame()` returns the picture requested by the previous
//! call (the first one: the picture requested when the capturer was created, i.e. when the view started)
//! and starts the next request. At streaming rates the lag is one frame interval; a static screen is exact.
//!
//! An x11rb `ShmGetImage` backend (0.45 ms vs scrap's 0.95 ms per 1080p frame, per platform.md) was not
//! added: mapping the shared segment needs `unsafe` (shmat or mmap), which this workspace forbids, and
//! capture is not the largest cost per changed frame (see BENCHMARKS.md, "Screen").

#![cfg(target_os = "linux")]

use std::ffi::CString;
use std::rc::Rc;

use scrap::x11::{Capturer, Display, Server};
use tether_proto::screen::DisplayInfo;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt;
use x11rb::rust_connection::RustConnection;

use super::{CaptureError, ScreenProvider, ScreenSource};

/// scrap on the X server named `display` (e.g. `":5"`); `None` uses `$DISPLAY`.
#[derive(Debug, Clone, Default)]
pub struct ScrapScreen {
    display: Option<String>,
}

impl ScrapScreen {
    /// Captures the X server `display`, or `$DISPLAY` when `None`.
    pub fn new(display: Option<String>) -> Self {
        ScrapScreen { display }
    }

    fn server(&self) -> Result<Rc<Server>, CaptureError> {
        let name = match &self.display {
            Some(d) => {
                Some(CString::new(d.as_str()).map_err(|e| CaptureError::Connect(e.to_string()))?)
            }
            None => None,
        };
        let ptr = name.as_ref().map_or(std::ptr::null(), |n| n.as_ptr());
        // `name` outlives the call; xcb copies what it needs.
        let server = Server::connect(ptr).map_err(|e| CaptureError::Connect(format!("{e:?}")))?;
        Ok(Rc::new(server))
    }

    fn all(&self) -> Result<Vec<(DisplayInfo, Display)>, CaptureError> {
        let server = self.server()?;
        Ok(Server::displays(server)
            .enumerate()
            .map(|(i, d)| {
                let r = d.rect();
                let info = DisplayInfo {
                    index: i as u32,
                    x: r.x.into(),
                    y: r.y.into(),
                    width: r.w.into(),
                    height: r.h.into(),
                    primary: d.is_default(),
                };
                (info, d)
            })
            .collect())
    }
}

impl ScreenProvider for ScrapScreen {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        Ok(self.all()?.into_iter().map(|(i, _)| i).collect())
    }

    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        let (info, display) = self
            .all()?
            .into_iter()
            .nth(index as usize)
            .ok_or(CaptureError::NoSuchDisplay(index))?;
        let capturer = Capturer::new(display).map_err(|e| CaptureError::Capture(e.to_string()))?;
        let pointer = x11rb::connect(self.display.as_deref()).ok();
        Ok(Box::new(ScrapSource {
            info,
            capturer,
            pointer,
        }))
    }
}

struct ScrapSource {
    info: DisplayInfo,
    capturer: Capturer,
    pointer: Option<(RustConnection, usize)>,
}

impl ScreenSource for ScrapSource {
    fn info(&self) -> DisplayInfo {
        self.info.clone()
    }

    fn capture(&mut self) -> Result<&[u8], CaptureError> {
        let frame = self.capturer.frame();
        let expected = self.info.width as usize * self.info.height as usize * 4;
        if frame.len() < expected {
            return Err(CaptureError::Capture(format!(
                "short frame: {} bytes",
                frame.len()
            )));
        }
        Ok(&frame[..expected])
    }

    fn cursor(&mut self) -> Option<(i32, i32)> {
        let (conn, screen) = self.pointer.as_ref()?;
        let root = conn.setup().roots.get(*screen)?.root;
        let reply = conn.query_pointer(root).ok()?.reply().ok()?;
        Some((
            i32::from(reply.root_x) - self.info.x,
            i32::from(reply.root_y) - self.info.y,
        ))
    }
}
