//! Frames from a PipeWire screen-cast stream (what GNOME, KDE and the portals hand out), kept as the
//! latest frame.
//!
//! PipeWire pushes and [`super::ScreenSource::capture`] pulls: a thread runs PipeWire's loop and
//! copies each buffer into one shared latest frame (B G R X), and `capture` takes whatever is newest.
//! The compositor sends a frame only when the screen changes, so the last frame stays valid. Buffers
//! are shared memory (MemFd/MemPtr, all there is without a GPU) or DMA-BUF where PipeWire can map
//! it; BGRx, BGRA, RGBx and RGBA are accepted. Dropping the [`PipeWireFrames`] stops the thread.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use pipewire as pw;
use pw::spa;
use spa::param::video::VideoFormat;
use tether_proto::screen::DisplayInfo;

use super::{CaptureError, ScreenSource};

/// How long the first frame may take after the stream is connected.
pub const FIRST_FRAME_WAIT: Duration = Duration::from_secs(10);

/// Where the PipeWire daemon is.
#[derive(Debug)]
pub enum Remote {
    /// A connection the portal handed over (`OpenPipeWireRemote`).
    Fd(OwnedFd),
    /// The daemon at this socket (`None`: the session's default).
    Socket(Option<String>),
}

#[derive(Debug, Default)]
struct Latest {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    /// Bumped with every frame.
    serial: u64,
    /// Why the stream ended, once it has.
    ended: Option<String>,
}

/// The latest frame of one stream.
pub struct PipeWireFrames {
    shared: Arc<(Mutex<Latest>, Condvar)>,
    stop: Option<pw::channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for PipeWireFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeWireFrames").finish_non_exhaustive()
    }
}

impl PipeWireFrames {
    /// Connects to stream `node` and waits for its first frame.
    pub fn start(remote: Remote, node: u32) -> Result<Self, String> {
        let shared = Arc::new((Mutex::new(Latest::default()), Condvar::new()));
        let (stop_tx, stop_rx) = pw::channel::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("pipewire".into())
            .spawn(move || {
                let result = run(remote, node, thread_shared.clone(), stop_rx, &ready_tx);
                let reason = match result {
                    Ok(()) => "the screen-cast stream ended".to_string(),
                    Err(e) => e,
                };
                let _ = ready_tx.send(Err(reason.clone()));
                end(&thread_shared, reason);
            })
            .map_err(|e| format!("cannot start the PipeWire thread: {e}"))?;
        let frames = PipeWireFrames {
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(FIRST_FRAME_WAIT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("PipeWire did not connect the screen-cast stream".into()),
        }
        frames.wait_first()?;
        Ok(frames)
    }

    fn wait_first(&self) -> Result<(), String> {
        let (lock, cv) = &*self.shared;
        let guard = lock.lock().map_err(|_| "poisoned".to_string())?;
        let (guard, _) = cv
            .wait_timeout_while(guard, FIRST_FRAME_WAIT, |l| {
                l.serial == 0 && l.ended.is_none()
            })
            .map_err(|_| "poisoned".to_string())?;
        if let Some(e) = &guard.ended {
            return Err(e.clone());
        }
        if guard.serial == 0 {
            return Err("the screen-cast stream sent no frame".into());
        }
        Ok(())
    }

    /// The size of the latest frame.
    pub fn size(&self) -> (u32, u32) {
        let l = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        (l.width, l.height)
    }

    /// Copies the latest frame into `out` and returns its size and its number (bumped with every
    /// frame PipeWire delivers), or why the stream ended.
    pub fn latest(&self, out: &mut Vec<u8>) -> Result<(u32, u32, u64), String> {
        let l = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &l.ended {
            return Err(e.clone());
        }
        out.clear();
        out.extend_from_slice(&l.pixels);
        Ok((l.width, l.height, l.serial))
    }

    /// The number of the latest frame (see [`Self::latest`]); an ended stream counts as new, so
    /// the next `latest` reports why.
    pub fn serial(&self) -> Option<u64> {
        let l = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        l.ended.is_none().then_some(l.serial)
    }
}

/// A display captured from one PipeWire stream (Mutter's or the portal's), holding `K`, what must
/// outlive the stream (the compositor's session), until after the stream is gone.
pub struct PipeWireSource<K> {
    // Declared first, so dropped first: the stream ends before its session does.
    frames: PipeWireFrames,
    _keep: K,
    info: DisplayInfo,
    pixels: Vec<u8>,
    /// The number of the frame `capture` last returned.
    seen: Option<u64>,
}

impl<K> PipeWireSource<K> {
    /// `info` with the size of the stream's first frame.
    pub fn new(frames: PipeWireFrames, mut info: DisplayInfo, keep: K) -> Self {
        (info.width, info.height) = frames.size();
        PipeWireSource {
            frames,
            _keep: keep,
            info,
            pixels: Vec::new(),
            seen: None,
        }
    }
}

impl<K> ScreenSource for PipeWireSource<K> {
    fn info(&self) -> DisplayInfo {
        self.info.clone()
    }

    fn capture(&mut self) -> Result<&[u8], CaptureError> {
        let (w, h, serial) = self
            .frames
            .latest(&mut self.pixels)
            .map_err(|e| CaptureError::Capture(format!("the Wayland compositor: {e}")))?;
        (self.info.width, self.info.height) = (w, h);
        self.seen = Some(serial);
        Ok(&self.pixels)
    }

    fn unchanged(&mut self) -> bool {
        self.seen.is_some() && self.frames.serial() == self.seen
    }
}

impl Drop for PipeWireFrames {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn end(shared: &Arc<(Mutex<Latest>, Condvar)>, reason: String) {
    let mut l = shared.0.lock().unwrap_or_else(|e| e.into_inner());
    l.ended.get_or_insert(reason);
    shared.1.notify_all();
}

/// Byte order of a negotiated format: B G R X (true) or R G B X (false).
fn bgr(format: VideoFormat) -> Option<bool> {
    match format {
        VideoFormat::BGRx | VideoFormat::BGRA => Some(true),
        VideoFormat::RGBx | VideoFormat::RGBA => Some(false),
        _ => None,
    }
}

struct StreamState {
    shared: Arc<(Mutex<Latest>, Condvar)>,
    format: spa::param::video::VideoInfoRaw,
}

fn run(
    remote: Remote,
    node: u32,
    shared: Arc<(Mutex<Latest>, Condvar)>,
    stop: pw::channel::Receiver<()>,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    pw::init();
    fn err(what: &'static str) -> impl Fn(pw::Error) -> String {
        move |e| format!("PipeWire: {what}: {e}")
    }
    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(err("main loop"))?;
    let context = pw::context::ContextRc::new(&mainloop, None).map_err(err("context"))?;
    let core = match remote {
        Remote::Fd(fd) => context.connect_fd_rc(fd, None),
        Remote::Socket(Some(path)) => context.connect_rc(Some(pw::properties::properties! {
            *pw::keys::REMOTE_NAME => path,
        })),
        Remote::Socket(None) => context.connect_rc(None),
    }
    .map_err(err("cannot reach the PipeWire daemon"))?;
    let _quit = stop.attach(mainloop.loop_(), {
        let ml = mainloop.clone();
        move |()| ml.quit()
    });
    let stream = pw::stream::StreamBox::new(
        &core,
        "tether-screen",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )
    .map_err(err("stream"))?;
    let state = StreamState {
        shared: shared.clone(),
        format: Default::default(),
    };
    let _listener = stream
        .add_local_listener_with_user_data(state)
        .state_changed({
            let ml = mainloop.clone();
            move |_, s, _, new| match new {
                pw::stream::StreamState::Error(e) => {
                    end(&s.shared, format!("the screen-cast stream failed: {e}"));
                    ml.quit();
                }
                pw::stream::StreamState::Unconnected => {
                    end(&s.shared, "the screen-cast stream was disconnected".into());
                    ml.quit();
                }
                _ => {}
            }
        })
        .param_changed(|_, s, id, param| {
            let Some(param) = param else { return };
            if id != spa::param::ParamType::Format.as_raw() {
                return;
            }
            if s.format.parse(param).is_err() {
                end(
                    &s.shared,
                    "PipeWire offered a video format it could not describe".into(),
                );
            }
        })
        .process(|stream, s| {
            let Some(mut buffer) = stream.dequeue_buffer() else {
                return;
            };
            let Some(order) = bgr(s.format.format()) else {
                end(
                    &s.shared,
                    format!("unsupported pixel format {:?}", s.format.format()),
                );
                return;
            };
            let (w, h) = (s.format.size().width, s.format.size().height);
            let Some(data) = buffer.datas_mut().first_mut() else {
                return;
            };
            let (offset, stride, size) = (
                data.chunk().offset() as usize,
                data.chunk().stride(),
                data.chunk().size() as usize,
            );
            let stride = if stride > 0 {
                stride as usize
            } else {
                w as usize * 4
            };
            let Some(bytes) = data.data() else { return };
            let row = w as usize * 4;
            if size == 0 || bytes.len() < offset + stride * (h as usize - 1) + row {
                return; // an empty buffer: nothing changed (or only the cursor)
            }
            let mut l = s.shared.0.lock().unwrap_or_else(|e| e.into_inner());
            l.pixels.clear();
            l.pixels.reserve(row * h as usize);
            for y in 0..h as usize {
                let line = &bytes[offset + y * stride..offset + y * stride + row];
                if order {
                    l.pixels.extend_from_slice(line);
                } else {
                    l.pixels
                        .extend(line.chunks_exact(4).flat_map(|p| [p[2], p[1], p[0], p[3]]));
                }
            }
            (l.width, l.height) = (w, h);
            l.serial += 1;
            s.shared.1.notify_all();
        })
        .register()
        .map_err(err("listener"))?;

    let format = spa::pod::object!(
        spa::utils::SpaTypes::ObjectParamFormat,
        spa::param::ParamType::EnumFormat,
        spa::pod::property!(
            spa::param::format::FormatProperties::MediaType,
            Id,
            spa::param::format::MediaType::Video
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::MediaSubtype,
            Id,
            spa::param::format::MediaSubtype::Raw
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            VideoFormat::BGRx,
            VideoFormat::BGRx,
            VideoFormat::BGRA,
            VideoFormat::RGBx,
            VideoFormat::RGBA,
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            spa::utils::Rectangle {
                width: 1920,
                height: 1080
            },
            spa::utils::Rectangle {
                width: 1,
                height: 1
            },
            spa::utils::Rectangle {
                width: 16384,
                height: 16384
            }
        ),
        spa::pod::property!(
            spa::param::format::FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            spa::utils::Fraction { num: 30, denom: 1 },
            spa::utils::Fraction { num: 0, denom: 1 },
            spa::utils::Fraction {
                num: 1000,
                denom: 1
            }
        ),
    );
    let bytes: Vec<u8> = spa::pod::serialize::PodSerializer::serialize(
        std::io::Cursor::new(Vec::new()),
        &spa::pod::Value::Object(format),
    )
    .map_err(|e| format!("PipeWire: format: {e:?}"))?
    .0
    .into_inner();
    let pod = spa::pod::Pod::from_bytes(&bytes).ok_or("PipeWire: format pod")?;
    stream
        .connect(
            spa::utils::Direction::Input,
            Some(node),
            pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
            &mut [pod],
        )
        .map_err(err("cannot connect to the screen-cast stream"))?;
    let _ = ready.send(Ok(()));
    mainloop.run();
    Ok(())
}
