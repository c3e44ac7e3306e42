//! The wlroots capture backend (sway, Hyprland, river, …): `zwlr_screencopy_manager_v1` over a
//! pure-Rust Wayland connection, into shared memory, with no portal and no dialog.
//!
//! Each capture asks the compositor for one frame of the output into a `wl_shm` buffer backed by a
//! memfd, waits for `ready`, and reads the memfd with `pread` (no mapping, so no `unsafe`). The
//! cursor is left out of the pixels (`overlay_cursor` 0), as on X11. After each capture a second frame
//! waits with `copy_with_damage`, which the compositor completes only once something is drawn: until
//! then the screen is known to be still, and once it is complete it is the next capture. One display per output, in the
//! compositor's order. The connection helpers here are shared with the wlroots input backend.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use tether_proto::screen::DisplayInfo;
use wayland_client::globals::{GlobalList, GlobalListContents, registry_queue_init};
use wayland_client::protocol::{wl_buffer, wl_output, wl_registry, wl_shm, wl_shm_pool};
use wayland_client::{Connection, Dispatch, EventQueue, Proxy, QueueHandle, WEnum};
use wayland_protocols_wlr::screencopy::v1::client::{
    zwlr_screencopy_frame_v1::{self, ZwlrScreencopyFrameV1},
    zwlr_screencopy_manager_v1::ZwlrScreencopyManagerV1,
};

use super::{CaptureError, ScreenProvider, ScreenSource};

/// The Wayland socket: `name` (a `WAYLAND_DISPLAY` value, relative to `XDG_RUNTIME_DIR` unless it
/// is absolute), or the environment's.
pub(crate) fn socket_path(name: Option<&str>) -> Result<PathBuf, String> {
    let name = match name {
        Some(n) => n.to_string(),
        None => std::env::var("WAYLAND_DISPLAY").unwrap_or_else(|_| "wayland-0".into()),
    };
    let path = PathBuf::from(&name);
    if path.is_absolute() {
        return Ok(path);
    }
    let dir = std::env::var_os("XDG_RUNTIME_DIR").ok_or_else(|| {
        format!("XDG_RUNTIME_DIR is not set, so the Wayland socket {name} cannot be found")
    })?;
    Ok(PathBuf::from(dir).join(name))
}

/// Connects to the compositor and lists its globals.
pub(crate) fn connect<S>(
    socket: &std::path::Path,
) -> Result<(Connection, GlobalList, EventQueue<S>), String>
where
    S: Dispatch<wl_registry::WlRegistry, GlobalListContents> + 'static,
{
    let stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the Wayland compositor at {}: {e}",
            socket.display()
        )
    })?;
    let conn = Connection::from_socket(stream).map_err(|e| e.to_string())?;
    let (globals, queue) = registry_queue_init::<S>(&conn).map_err(|e| e.to_string())?;
    Ok((conn, globals, queue))
}

/// A memfd of `len` bytes, for a shared-memory buffer or a keymap.
pub(crate) fn memfd(name: &str, len: usize) -> Result<OwnedFd, String> {
    let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| format!("memfd_create: {e}"))?;
    rustix::fs::ftruncate(&fd, len as u64).map_err(|e| format!("ftruncate: {e}"))?;
    Ok(fd)
}

/// What an output said about itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutputInfo {
    pub name: Option<String>,
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

/// The outputs of a connection, bound in the compositor's order, with their geometry after a
/// roundtrip.
pub(crate) fn bind_outputs<S>(globals: &GlobalList, qh: &QueueHandle<S>) -> Vec<wl_output::WlOutput>
where
    S: Dispatch<wl_output::WlOutput, usize> + 'static,
{
    globals
        .contents()
        .clone_list()
        .into_iter()
        .filter(|g| g.interface == "wl_output")
        .enumerate()
        .map(|(i, g)| globals.registry().bind(g.name, g.version.min(4), qh, i))
        .collect()
}

/// Applies one `wl_output` event to what is known of output `i`.
pub(crate) fn output_event(outputs: &mut Vec<OutputInfo>, i: usize, event: wl_output::Event) {
    if outputs.len() <= i {
        outputs.resize(i + 1, OutputInfo::default());
    }
    let o = &mut outputs[i];
    match event {
        wl_output::Event::Geometry { x, y, .. } => (o.x, o.y) = (x, y),
        wl_output::Event::Mode {
            flags,
            width,
            height,
            ..
        } => {
            let current = matches!(flags, WEnum::Value(f) if f.contains(wl_output::Mode::Current));
            if current || o.width == 0 {
                (o.width, o.height) = (width, height);
            }
        }
        wl_output::Event::Name { name } => o.name = Some(name),
        _ => {}
    }
}

/// Captures from a wlroots compositor's outputs.
#[derive(Debug, Clone, Default)]
pub struct WlrootsScreen {
    socket: Option<String>,
}

impl WlrootsScreen {
    /// The compositor at the Wayland socket `socket` (a `WAYLAND_DISPLAY` value), or the
    /// environment's.
    pub fn new(socket: Option<String>) -> Self {
        WlrootsScreen { socket }
    }

    fn start(&self) -> Result<Capture, CaptureError> {
        let path = socket_path(self.socket.as_deref()).map_err(CaptureError::Connect)?;
        let (conn, globals, mut queue) =
            connect::<Capture0>(&path).map_err(CaptureError::Connect)?;
        let qh = queue.handle();
        let manager: ZwlrScreencopyManagerV1 = globals.bind(&qh, 1..=3, ()).map_err(|_| {
            CaptureError::Connect(
                "this Wayland compositor has no wlroots screencopy (zwlr_screencopy_manager_v1)"
                    .into(),
            )
        })?;
        let shm: wl_shm::WlShm = globals
            .bind(&qh, 1..=1, ())
            .map_err(|_| CaptureError::Connect("the compositor offers no wl_shm".into()))?;
        let handles = bind_outputs(&globals, &qh);
        let mut state = Capture0::default();
        queue.roundtrip(&mut state).map_err(capture_err)?;
        Ok(Capture {
            conn,
            queue,
            state,
            manager,
            shm,
            handles,
        })
    }
}

fn capture_err(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Capture(format!("the Wayland compositor: {e}"))
}

/// The event-side state of a capture connection.
#[derive(Debug, Default)]
struct Capture0 {
    outputs: Vec<OutputInfo>,
    /// The frame `capture` waits for ([`NOW`]) and the one that waits for damage ([`WATCH`]).
    frames: [FrameState; 2],
}

/// What a shared-memory buffer must be: `(format, width, height, stride)`.
type BufferKey = (WEnum<wl_shm::Format>, u32, u32, u32);

/// The frame a capture copies at once.
const NOW: usize = 0;
/// The frame that the compositor completes only once something was drawn (`copy_with_damage`).
const WATCH: usize = 1;

#[derive(Debug, Default)]
struct FrameState {
    /// `(format, width, height, stride)` of the shared-memory buffer the compositor wants.
    shm: Option<BufferKey>,
    buffer_done: bool,
    y_invert: bool,
    ready: bool,
    failed: bool,
}

struct Capture {
    conn: Connection,
    queue: EventQueue<Capture0>,
    state: Capture0,
    manager: ZwlrScreencopyManagerV1,
    shm: wl_shm::WlShm,
    handles: Vec<wl_output::WlOutput>,
}

impl Capture {
    fn infos(&self) -> Vec<DisplayInfo> {
        self.state
            .outputs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.width > 0 && o.height > 0)
            .map(|(i, o)| DisplayInfo {
                index: i as u32,
                name: o
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("output {}", i + 1)),
                x: o.x,
                y: o.y,
                width: o.width as u32,
                height: o.height as u32,
                primary: i == 0,
            })
            .collect()
    }

    fn dispatch_until(
        &mut self,
        slot: usize,
        done: impl Fn(&FrameState) -> bool,
    ) -> Result<(), CaptureError> {
        while !done(&self.state.frames[slot]) {
            self.queue
                .blocking_dispatch(&mut self.state)
                .map_err(|e| capture_err(format!("connection lost ({e})")))?;
            if self.state.frames[slot].failed {
                return Err(CaptureError::Capture(
                    "the compositor refused to copy the output".into(),
                ));
            }
        }
        Ok(())
    }
}

impl ScreenProvider for WlrootsScreen {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        Ok(self.start()?.infos())
    }

    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        let capture = self.start()?;
        let info = capture
            .infos()
            .into_iter()
            .find(|d| d.index == index)
            .ok_or(CaptureError::NoSuchDisplay(index))?;
        let output = capture.handles[index as usize].clone();
        let mut source = WlrootsSource {
            capture,
            output,
            info,
            buffers: [None, None],
            watch: None,
            raw: Vec::new(),
            pixels: Vec::new(),
        };
        // The buffer the compositor hands over is the truth about the size (scale, transform).
        source.capture()?;
        Ok(Box::new(source))
    }
}

/// A shared-memory buffer the compositor copies into.
struct ShmBuffer {
    fd: std::fs::File,
    pool: wl_shm_pool::WlShmPool,
    buffer: wl_buffer::WlBuffer,
    key: BufferKey,
}

impl Drop for ShmBuffer {
    fn drop(&mut self) {
        self.buffer.destroy();
        self.pool.destroy();
    }
}

struct WlrootsSource {
    capture: Capture,
    output: wl_output::WlOutput,
    info: DisplayInfo,
    /// The buffers of the two frames ([`NOW`], [`WATCH`]).
    buffers: [Option<ShmBuffer>; 2],
    /// The frame waiting for damage, once a capture started it: until the compositor completes
    /// it, nothing was drawn, so a still screen costs no copy.
    watch: Option<ZwlrScreencopyFrameV1>,
    raw: Vec<u8>,
    pixels: Vec<u8>,
}

/// Whether the format's bytes in memory are B G R X (true) or R G B X (false); others are refused.
fn bgr_order(format: WEnum<wl_shm::Format>) -> Result<bool, CaptureError> {
    match format {
        WEnum::Value(wl_shm::Format::Xrgb8888 | wl_shm::Format::Argb8888) => Ok(true),
        WEnum::Value(wl_shm::Format::Xbgr8888 | wl_shm::Format::Abgr8888) => Ok(false),
        other => Err(CaptureError::Capture(format!(
            "the compositor offers only an unsupported pixel format ({other:?})"
        ))),
    }
}

/// Packs `raw` rows of `stride` bytes into `out` as `width * height` B G R X pixels.
fn pack(
    raw: &[u8],
    (width, height, stride): (u32, u32, u32),
    bgr: bool,
    y_invert: bool,
    out: &mut Vec<u8>,
) {
    let (w, h, stride) = (width as usize * 4, height as usize, stride as usize);
    out.clear();
    out.reserve(w * h);
    for row in 0..h {
        let src = if y_invert { h - 1 - row } else { row };
        let line = &raw[src * stride..src * stride + w];
        if bgr {
            out.extend_from_slice(line);
        } else {
            out.extend(line.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0], p[3]]));
        }
    }
}

impl WlrootsSource {
    fn shm_buffer(&mut self, slot: usize, key: BufferKey) -> Result<(), CaptureError> {
        if self.buffers[slot].as_ref().is_some_and(|b| b.key == key) {
            return Ok(());
        }
        self.buffers[slot] = None;
        let (format, width, height, stride) = key;
        let len = stride as usize * height as usize;
        let size =
            i32::try_from(len).map_err(|_| CaptureError::Capture("frame too large".into()))?;
        let fd = memfd("tether-screencopy", len).map_err(CaptureError::Capture)?;
        let qh = self.capture.queue.handle();
        let pool = self.capture.shm.create_pool(fd.as_fd(), size, &qh, ());
        let format = match format {
            WEnum::Value(f) => f,
            WEnum::Unknown(n) => {
                return Err(CaptureError::Capture(format!("unknown pixel format {n}")));
            }
        };
        let buffer = pool.create_buffer(
            0,
            width as i32,
            height as i32,
            stride as i32,
            format,
            &qh,
            (),
        );
        self.buffers[slot] = Some(ShmBuffer {
            fd: std::fs::File::from(fd),
            pool,
            buffer,
            key,
        });
        Ok(())
    }
}

impl ScreenSource for WlrootsSource {
    fn info(&self) -> DisplayInfo {
        self.info.clone()
    }

    fn capture(&mut self) -> Result<&[u8], CaptureError> {
        // A watched frame the compositor completed holds what changed: use it, no second copy.
        let watched = self.watch.is_some() && self.pump() && self.capture.state.frames[WATCH].ready;
        let result = if watched {
            self.read(WATCH)
        } else {
            self.stop_watch();
            self.copy_now()
        };
        self.stop_watch();
        if result.is_ok() {
            // A failed watch only costs the next capture its shortcut.
            let _ = self.start_watch();
        }
        let _ = self.capture.conn.flush();
        result.map(|()| &self.pixels[..])
    }

    fn unchanged(&mut self) -> bool {
        self.watch.is_some()
            && self.pump()
            && !self.capture.state.frames[WATCH].ready
            && !self.capture.state.frames[WATCH].failed
    }
}

impl WlrootsSource {
    /// Asks for a frame of the output in `slot` and waits for the buffer it wants.
    fn request(&mut self, slot: usize) -> Result<(ZwlrScreencopyFrameV1, BufferKey), CaptureError> {
        let qh = self.capture.queue.handle();
        self.capture.state.frames[slot] = FrameState::default();
        let frame = self
            .capture
            .manager
            .capture_output(0, &self.output, &qh, slot);
        let v3 = self.capture.manager.version() >= 3;
        let wanted = self
            .capture
            .dispatch_until(slot, |f| if v3 { f.buffer_done } else { f.shm.is_some() })
            .and_then(|()| {
                self.capture.state.frames[slot].shm.ok_or_else(|| {
                    CaptureError::Capture("the compositor offers no shared-memory buffer".into())
                })
            });
        match wanted {
            Ok(key) => Ok((frame, key)),
            Err(e) => {
                frame.destroy();
                Err(e)
            }
        }
    }

    /// Copies the output now into the capture buffer.
    fn copy_now(&mut self) -> Result<(), CaptureError> {
        let (frame, key) = self.request(NOW)?;
        let result = self.shm_buffer(NOW, key).and_then(|()| {
            let Some(buffer) = &self.buffers[NOW] else {
                return Err(CaptureError::Capture("no buffer".into()));
            };
            frame.copy(&buffer.buffer);
            self.capture.dispatch_until(NOW, |f| f.ready)?;
            self.read(NOW)
        });
        frame.destroy();
        result
    }

    /// Asks the compositor to copy the output into the watch buffer once something is drawn.
    fn start_watch(&mut self) -> Result<(), CaptureError> {
        let (frame, key) = self.request(WATCH)?;
        if let Err(e) = self.shm_buffer(WATCH, key) {
            frame.destroy();
            return Err(e);
        }
        if let Some(buffer) = &self.buffers[WATCH] {
            frame.copy_with_damage(&buffer.buffer);
        }
        self.watch = Some(frame);
        let _ = self.capture.conn.flush();
        Ok(())
    }

    fn stop_watch(&mut self) {
        if let Some(w) = self.watch.take() {
            w.destroy();
        }
    }

    /// Reads what the compositor sent without waiting; false when the connection broke.
    fn pump(&mut self) -> bool {
        let _ = self.capture.conn.flush();
        if let Some(guard) = self.capture.queue.prepare_read() {
            match guard.read() {
                Ok(_) => {}
                Err(wayland_client::backend::WaylandError::Io(e))
                    if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        }
        self.capture
            .queue
            .dispatch_pending(&mut self.capture.state)
            .is_ok()
    }

    /// Packs the frame in `slot`'s buffer into the picture.
    fn read(&mut self, slot: usize) -> Result<(), CaptureError> {
        let Some(key) = self.capture.state.frames[slot].shm else {
            return Err(CaptureError::Capture("no frame".into()));
        };
        let Some(buffer) = &self.buffers[slot] else {
            return Err(CaptureError::Capture("no buffer".into()));
        };
        let bgr = bgr_order(key.0)?;
        let (_, width, height, stride) = key;
        self.raw.resize(stride as usize * height as usize, 0);
        buffer
            .fd
            .read_exact_at(&mut self.raw, 0)
            .map_err(|e| CaptureError::Capture(format!("reading the frame: {e}")))?;
        pack(
            &self.raw,
            (width, height, stride),
            bgr,
            self.capture.state.frames[slot].y_invert,
            &mut self.pixels,
        );
        (self.info.width, self.info.height) = (width, height);
        Ok(())
    }
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for Capture0 {
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

impl Dispatch<wl_output::WlOutput, usize> for Capture0 {
    fn event(
        state: &mut Self,
        _: &wl_output::WlOutput,
        event: wl_output::Event,
        i: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        output_event(&mut state.outputs, *i, event);
    }
}

impl Dispatch<ZwlrScreencopyFrameV1, usize> for Capture0 {
    fn event(
        state: &mut Self,
        _: &ZwlrScreencopyFrameV1,
        event: zwlr_screencopy_frame_v1::Event,
        slot: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwlr_screencopy_frame_v1::Event;
        let Some(f) = state.frames.get_mut(*slot) else {
            return;
        };
        match event {
            Event::Buffer {
                format,
                width,
                height,
                stride,
            } => f.shm = Some((format, width, height, stride)),
            Event::BufferDone => f.buffer_done = true,
            Event::Flags { flags } => {
                f.y_invert = matches!(flags, WEnum::Value(x) if x.contains(zwlr_screencopy_frame_v1::Flags::YInvert));
            }
            Event::Ready { .. } => f.ready = true,
            Event::Failed => f.failed = true,
            _ => {}
        }
    }
}

wayland_client::delegate_noop!(Capture0: ignore wl_shm::WlShm);
wayland_client::delegate_noop!(Capture0: ignore wl_shm_pool::WlShmPool);
wayland_client::delegate_noop!(Capture0: ignore wl_buffer::WlBuffer);
wayland_client::delegate_noop!(Capture0: ignore ZwlrScreencopyManagerV1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_drops_the_stride_padding_swaps_rgb_and_flips() {
        // 2x2, stride 12 (4 bytes of padding per row).
        let raw = [
            1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, //
            9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 0, 0,
        ];
        let mut out = Vec::new();
        pack(&raw, (2, 2, 12), true, false, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        pack(&raw, (2, 2, 12), false, false, &mut out);
        assert_eq!(out[..4], [3, 2, 1, 4]);
        pack(&raw, (2, 2, 12), true, true, &mut out);
        assert_eq!(out[..4], [9, 10, 11, 12]);
    }

    #[test]
    fn the_socket_is_found_under_the_runtime_dir_unless_absolute() {
        assert_eq!(
            socket_path(Some("/tmp/w/wayland-9")).unwrap(),
            PathBuf::from("/tmp/w/wayland-9")
        );
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
            assert_eq!(
                socket_path(Some("wayland-1")).unwrap(),
                PathBuf::from(dir).join("wayland-1")
            );
        }
    }

    #[test]
    fn only_32_bit_rgb_formats_are_accepted() {
        assert!(bgr_order(WEnum::Value(wl_shm::Format::Xrgb8888)).unwrap());
        assert!(!bgr_order(WEnum::Value(wl_shm::Format::Abgr8888)).unwrap());
        assert!(bgr_order(WEnum::Value(wl_shm::Format::Rgb565)).is_err());
    }
}
