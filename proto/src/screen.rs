//! Screen view and remote control messages, and the pure frame encoding both sides agree on.
//!
//! # Flow on a view stream
//! ```text
//! console                                   agent
//!   |-- Request::View { display } ------------>|  (needs `view`)
//!   |<----------- Response::Viewing { info } --|  capture starts only now
//!   |<----------- ScreenMsg::Frame (part..) ---|  first frame complete, then only dirty tiles
//!   |-- ViewerMsg::Ack { seq } --------------->|  agent keeps ≤ MAX_IN_FLIGHT frames unacked
//!   |<----------- ScreenMsg::CursorShape(..) --|  when the cursor's shape changes (see `cursor`)
//!   |<----------- ScreenMsg::Cursor { x, y } --|  when the pointer moves
//! ```
//! Displays are X screens or, when an X screen has several RandR monitors, each monitor and then one
//! display covering the whole screen ([`ALL_MONITORS`]). A view or control stream on a monitor uses that
//! monitor's rectangle and coordinates.
//! On a control stream the console sends [`InputEvent`]s and the agent answers each with an
//! [`InputReply`]; it checks the `control` grant on every event.
//!
//! Pixels are 4 bytes per pixel, B G R X, rows of `width * 4` bytes (what X11 and most capture APIs give).
//! A frame update carries a list of rectangles and one zstd block holding their rows, one after the other.
//! The zstd stream is continuous over the whole view stream ([`FrameEncoder`] / [`FrameDecoder`] keep
//! their context, with an 8 MiB window), so pixels seen recently — a window that moved, text that scrolled —
//! compress to back-references. Parts must therefore be applied in order, which the stream guarantees.
//! Before its pixels, a part may carry copies ([`CopyRect`], see [`motion`]): a scrolled region or a
//! moved window sent as "these pixels, from there", applied by the console's checked framebuffer.

pub mod cursor;
pub mod motion;
pub mod video;

pub use motion::CopyRect;

use serde::{Deserialize, Serialize};

pub use crate::keys::{Code, KeyId};

/// Bytes per pixel (B, G, R, unused).
pub const BPP: usize = 4;
/// Side of the square tiles compared for changes.
pub const TILE: u32 = 64;
/// Largest accepted display side, so a hostile size cannot make the console allocate without bound.
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted display area, in pixels (2^26: two 8K monitors side by side fit), so the console's
/// framebuffer stays within 256 MiB whatever size a hostile agent announces.
pub const MAX_PIXELS: u64 = 1 << 26;
/// Most frames the agent sends before it waits for an acknowledgement, when any of them is not
/// small. An acknowledgement covers every frame up to its number; see [`InFlight`].
pub const MAX_IN_FLIGHT: u64 = 2;
/// A complete frame whose pixel bytes ([`FrameUpdate::pixel_bytes`], all its parts) are fewer than
/// this is small: a typed character is a frame of a few dozen bytes.
pub const SMALL_FRAME_BYTES: u64 = 2048;
/// Most frames the agent sends before it waits for an acknowledgement while all of them are small.
/// The console acknowledges a small frame only once this many are unacknowledged (or with the next
/// large one), so typing costs one acknowledgement, and one QUIC ACK back, per this many glyphs.
pub const MAX_SMALL_IN_FLIGHT: u64 = 8;
/// Most raw (uncompressed) bytes in one frame part; keeps every part well under the codec's frame limit.
pub const MAX_PART_RAW: usize = 3 << 20;
/// zstd level used for frames: fast, and text compresses well anyway.
pub const ZSTD_LEVEL: i32 = 1;
/// log2 of the zstd window the encoder uses (8 MiB: a whole 1080p frame of history).
pub const ZSTD_WINDOW_LOG: u32 = 23;
/// Largest zstd window the decoder accepts (16 MiB), so a hostile stream cannot demand more memory.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The name of the display that covers every monitor of one screen.
pub const ALL_MONITORS: &str = "all monitors";

/// One monitor (or screen, or all monitors of a screen) of the remote machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DisplayInfo {
    /// Index used in [`crate::msg::Request::View`].
    pub index: u32,
    /// What the remote OS calls it (a RandR monitor name such as `DP-1`, or [`ALL_MONITORS`]); text
    /// from the agent, shown through [`crate::text::display_safe`].
    pub name: String,
    /// Position of its top-left corner on the virtual desktop.
    pub x: i32,
    /// See `x`.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether it is the primary monitor.
    pub primary: bool,
}

/// A rectangle in display pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Rect {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// The agent's side of a view's window (pure): which frames it sent that the console has not
/// acknowledged, and whether it may send another. It may while fewer than [`MAX_IN_FLIGHT`] are
/// unacknowledged, or fewer than [`MAX_SMALL_IN_FLIGHT`] when every one of them is small; the
/// console acknowledges a large frame at once and small ones when [`MAX_SMALL_IN_FLIGHT`] wait, so
/// the agent always has room for the next frame once the console has taken what was sent.
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    /// Frame numbers sent and not acknowledged, with whether each was small.
    frames: std::collections::VecDeque<(u64, bool)>,
}

impl InFlight {
    /// Whether another frame may go.
    pub fn can_send(&self) -> bool {
        let n = self.frames.len() as u64;
        n < MAX_IN_FLIGHT || (n < MAX_SMALL_IN_FLIGHT && self.frames.iter().all(|f| f.1))
    }

    /// Frame `seq` went, with `pixel_bytes` in all its parts.
    pub fn sent(&mut self, seq: u64, pixel_bytes: u64) {
        self.frames
            .push_back((seq, pixel_bytes < SMALL_FRAME_BYTES));
    }

    /// The console acknowledged every frame up to `seq`.
    pub fn acked(&mut self, seq: u64) {
        while self.frames.front().is_some_and(|f| f.0 <= seq) {
            self.frames.pop_front();
        }
    }

    /// Frames unacknowledged.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether every frame sent was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl FrameUpdate {
    /// Frame `seq`'s one and last part, with nothing in it yet (copies or video are put on it).
    pub fn empty(seq: u64, width: u32, height: u32) -> FrameUpdate {
        FrameUpdate {
            seq,
            width,
            height,
            rects: Vec::new(),
            data: Vec::new(),
            standalone: false,
            last: true,
            copies: Vec::new(),
            video: None,
        }
    }

    /// The part's compressed pixel bytes: its zstd block and its video frame.
    pub fn pixel_bytes(&self) -> u64 {
        (self.data.len() + self.video.as_ref().map_or(0, |v| v.data.len())) as u64
    }
}

impl Rect {
    fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    /// The smallest rectangle holding both (of rectangles inside a display).
    fn union(&self, b: &Rect) -> Rect {
        let (x0, y0) = (self.x.min(b.x), self.y.min(b.y));
        let (x1, y1) = (
            (self.x + self.w).max(b.x + b.w),
            (self.y + self.h).max(b.y + b.h),
        );
        Rect {
            x: x0,
            y: y0,
            w: x1 - x0,
            h: y1 - y0,
        }
    }

    fn bytes(&self) -> usize {
        self.w as usize * self.h as usize * BPP
    }
}

/// A frame, or one part of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct FrameUpdate {
    /// Frame number, from 1; every part of a frame carries the same number.
    pub seq: u64,
    /// Display width (the framebuffer is resized when it changes).
    pub width: u32,
    /// Display height.
    pub height: u32,
    /// The changed rectangles in this part.
    pub rects: Vec<Rect>,
    /// zstd of the rectangles' rows, in order.
    pub data: Vec<u8>,
    /// `data` is a self-contained zstd frame, outside the continuous stream (used for the complete first
    /// frame, where long-distance matching would cost more time than it saves bytes).
    pub standalone: bool,
    /// Whether this is the frame's last part (acknowledge it then).
    pub last: bool,
    /// Copies applied before `rects` (checked by [`motion::check_copies`]): each reads the framebuffer
    /// as it was before this part.
    pub copies: Vec<CopyRect>,
    /// One frame of the video region ([`video`]), applied after the copies and the rectangles
    /// (which never overlap a region that plays); on a frame's last part. Last, so the older
    /// fields keep their places on the wire.
    pub video: Option<video::VideoPart>,
}

/// Agent → console on a view stream, after [`crate::msg::Response::Viewing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ScreenMsg {
    /// Changed pixels.
    Frame(FrameUpdate),
    /// The pointer moved (display pixels; may be outside the display).
    Cursor {
        /// Column.
        x: i32,
        /// Row.
        y: i32,
    },
    /// The view stopped (for example `view` was revoked).
    Stopped {
        /// Why, in words.
        reason: String,
    },
    /// The cursor's shape, sent when it changes (checked with [`cursor::CursorShape::check`]).
    CursorShape(cursor::CursorShape),
    /// A frame of one rectangle and nothing else, in a fraction of [`FrameUpdate`]'s bytes (a typed
    /// glyph): see [`Patch`]. Last, so that the older variants keep their numbers on the wire.
    Patch(Patch),
}

/// A frame that is one part with one rectangle of the continuous zstd stream, no copies and no
/// video, numbered one after the frame before it, on a display of the same size: what a typed
/// character is. It leaves out what the console already knows (about 12 bytes of a 79-byte packet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Patch {
    /// The rectangle.
    pub rect: Rect,
    /// zstd of its rows, in the view's continuous stream.
    pub data: Vec<u8>,
}

impl Patch {
    /// `parts` as a patch, when they are one frame that can be one: numbered `prev_seq + 1`, on a
    /// display of `size` (the frame before it's).
    pub fn of(parts: &[FrameUpdate], prev_seq: u64, size: (u32, u32)) -> Option<Patch> {
        let [u] = parts else { return None };
        let plain = u.seq == prev_seq + 1
            && (u.width, u.height) == size
            && u.rects.len() == 1
            && !u.standalone
            && u.last
            && u.copies.is_empty()
            && u.video.is_none();
        plain.then(|| Patch {
            rect: u.rects[0],
            data: u.data.clone(),
        })
    }

    /// The frame it stands for, after frame `prev_seq` on a display of `width` x `height`.
    pub fn expand(self, prev_seq: u64, width: u32, height: u32) -> FrameUpdate {
        FrameUpdate {
            rects: vec![self.rect],
            data: self.data,
            ..FrameUpdate::empty(prev_seq + 1, width, height)
        }
    }
}

/// Console → agent on a view stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ViewerMsg {
    /// Every part of frame `seq` arrived and was applied.
    Ack {
        /// The frame.
        seq: u64,
    },
}

/// A mouse button. X11 numbers them 1 (left), 2 (middle), 3 (right), 8 (back), 9 (forward).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum MouseButton {
    /// Left.
    Left,
    /// Middle (wheel press).
    Middle,
    /// Right.
    Right,
    /// Back (the side button nearer the user).
    Back,
    /// Forward.
    Forward,
}

/// Press, release, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Action {
    /// Press and hold.
    Press,
    /// Release.
    Release,
    /// Press, then release.
    Click,
}

/// Fine scroll units per wheel notch (Windows' `WHEEL_DELTA`): smooth scrolling sends fractions.
pub const SCROLL_UNITS_PER_NOTCH: i32 = 120;

/// Console → agent on a control stream.
///
/// Keys are physical ([`KeyId`], see [`crate::keys`]) and pressed and released separately, so
/// modifiers stay held across keys (Ctrl+Shift+T is four presses and four releases). The agent tracks
/// what it pressed and releases all of it when the stream ends, `control` is revoked, or on
/// [`InputEvent::ReleaseAll`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum InputEvent {
    /// Move the pointer to display pixels.
    MouseMove {
        /// Column.
        x: i32,
        /// Row.
        y: i32,
    },
    /// A mouse button.
    Button {
        /// Which.
        button: MouseButton,
        /// What.
        action: Action,
    },
    /// Scroll by whole notches (positive: down / right).
    Scroll {
        /// Horizontal.
        dx: i32,
        /// Vertical.
        dy: i32,
    },
    /// Smooth scrolling in [`SCROLL_UNITS_PER_NOTCH`]ths of a notch (positive: down / right). A
    /// backend without smooth scrolling (X11 core) adds them up and sends whole notches.
    ScrollFine {
        /// Horizontal.
        dx: i32,
        /// Vertical.
        dy: i32,
    },
    /// A physical key.
    Key {
        /// Which (a USB HID usage; unknown ones are refused).
        key: KeyId,
        /// What.
        action: Action,
    },
    /// Type this text (for what has no key: IME, composed characters, the CLI's `type`).
    Text(String),
    /// Release every key and button this stream holds (the console lost focus).
    ReleaseAll,
}

/// Agent → console: the answer to one [`InputEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum InputReply {
    /// Injected.
    Done,
    /// Not injected: `control` is not (or no longer) granted.
    Refused,
    /// Harmless and not injected, e.g. the release of a key this stream never pressed.
    Ignored {
        /// Why, in words.
        reason: String,
    },
    /// The OS refused, the event was invalid or over a limit (the session goes on).
    Failed {
        /// Why.
        message: String,
    },
}

/// Why a frame update could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScreenError {
    /// Width or height is zero or above [`MAX_SIDE`], or the area is above [`MAX_PIXELS`].
    #[error("display size {0}x{1} is out of range")]
    BadSize(u32, u32),
    /// A part's rectangles add up to more than [`MAX_PART_RAW`] bytes, which no encoder sends;
    /// refused before anything is allocated for them.
    #[error("a frame part of {0} bytes exceeds the maximum of {MAX_PART_RAW}")]
    PartTooLarge(usize),
    /// A rectangle lies outside the display.
    #[error("rectangle {0:?} lies outside the display")]
    OutOfBounds(Rect),
    /// The pixel buffer does not match the size.
    #[error("pixel buffer has {got} bytes, expected {expected}")]
    BufferSize {
        /// Bytes given.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The compressed block is corrupt or decompresses to the wrong length.
    #[error("frame data is corrupt: {0}")]
    Corrupt(String),
    /// A part carries more than [`motion::MAX_COPIES`] copies.
    #[error("a frame part carries {0} copies, more than {max}", max = motion::MAX_COPIES)]
    TooManyCopies(usize),
    /// Two copies of one part write to overlapping rectangles.
    #[error("copies to {0:?} and {1:?} overlap")]
    Overlap(Rect, Rect),
    /// A video part is corrupt, continues a stream that was never started, or decodes to a
    /// picture of another size than its region.
    #[error("video is corrupt: {0}")]
    Video(String),
}

/// The console's copy of a remote display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framebuffer {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// B G R X pixels, `width * 4` bytes per row.
    pub pixels: Vec<u8>,
}

impl Framebuffer {
    /// A black framebuffer.
    pub fn new(width: u32, height: u32) -> Result<Self, ScreenError> {
        check_size(width, height)?;
        Ok(Framebuffer {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * BPP],
        })
    }

    /// Applies one frame part, decoded with `decoder` (which has seen every earlier part of the stream).
    /// On error the framebuffer is unchanged (the decoder is not: end the stream).
    pub fn apply(
        &mut self,
        decoder: &mut FrameDecoder,
        u: &FrameUpdate,
    ) -> Result<(), ScreenError> {
        check_size(u.width, u.height)?;
        motion::check_copies(&u.copies, u.width, u.height)?;
        let mut total = 0usize;
        for r in &u.rects {
            check_rect(r, u.width, u.height)?;
            // The encoder keeps every part within MAX_PART_RAW; checked before the output buffer is
            // allocated, so announced rectangles cannot make us allocate gigabytes.
            total = total.saturating_add(r.bytes());
            if total > MAX_PART_RAW {
                return Err(ScreenError::PartTooLarge(total));
            }
        }
        let raw = if u.rects.is_empty() {
            // A part of copies only: the encoder sends no block, and the stream must not move.
            if !u.data.is_empty() {
                return Err(ScreenError::Corrupt("pixel data without rectangles".into()));
            }
            Vec::new()
        } else if u.standalone {
            zstd::bulk::decompress(&u.data, total)
                .map_err(|e| ScreenError::Corrupt(e.to_string()))?
        } else {
            decoder.decode(&u.data, total)?
        };
        if raw.len() != total {
            return Err(ScreenError::Corrupt(format!(
                "{} bytes instead of {total}",
                raw.len()
            )));
        }
        if (u.width, u.height) != (self.width, self.height) {
            *self = Framebuffer::new(u.width, u.height)?;
        }
        // Checked above against this size; cannot fail.
        motion::apply_copies(&mut self.pixels, self.width, self.height, &u.copies)?;
        let stride = self.width as usize * BPP;
        let mut off = 0;
        for r in &u.rects {
            let row = r.w as usize * BPP;
            for y in r.y..r.y + r.h {
                let start = y as usize * stride + r.x as usize * BPP;
                self.pixels[start..start + row].copy_from_slice(&raw[off..off + row]);
                off += row;
            }
        }
        Ok(())
    }

    /// Writes `pixels` (B G R X rows of `r.w`) over `r`: a decoded video frame. Checked like every
    /// rectangle; on error the framebuffer is unchanged.
    pub fn paint(&mut self, r: &Rect, pixels: &[u8]) -> Result<(), ScreenError> {
        check_rect(r, self.width, self.height)?;
        if pixels.len() != r.bytes() {
            return Err(ScreenError::BufferSize {
                got: pixels.len(),
                expected: r.bytes(),
            });
        }
        let (stride, row) = (self.width as usize * BPP, r.w as usize * BPP);
        for (y, line) in (r.y..r.y + r.h).zip(pixels.chunks_exact(row)) {
            let start = y as usize * stride + r.x as usize * BPP;
            self.pixels[start..start + row].copy_from_slice(line);
        }
        Ok(())
    }

    /// The pixels as R G B A (alpha opaque), for images and textures.
    pub fn to_rgba(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixels.len());
        for p in self.pixels.chunks_exact(BPP) {
            out.extend_from_slice(&[p[2], p[1], p[0], 255]);
        }
        out
    }
}

fn check_size(w: u32, h: u32) -> Result<(), ScreenError> {
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS
    {
        return Err(ScreenError::BadSize(w, h));
    }
    Ok(())
}

/// Whether `r` is a non-empty rectangle inside a `w` x `h` display ([`ScreenError::OutOfBounds`]
/// if not); what every rectangle from the agent is checked with before it touches pixels.
pub fn check_rect(r: &Rect, w: u32, h: u32) -> Result<(), ScreenError> {
    let inside = r.w > 0
        && r.h > 0
        && r.x.checked_add(r.w).is_some_and(|e| e <= w)
        && r.y.checked_add(r.h).is_some_and(|e| e <= h);
    if inside {
        Ok(())
    } else {
        Err(ScreenError::OutOfBounds(*r))
    }
}

/// The tiles that differ between `prev` and `cur` (or all of them without `prev`), with horizontally
/// adjacent dirty tiles merged into one rectangle.
pub fn dirty_rects(
    prev: Option<&[u8]>,
    cur: &[u8],
    width: u32,
    height: u32,
) -> Result<Vec<Rect>, ScreenError> {
    dirty_rects_in(prev, cur, width, height, None)
}

/// Like [`dirty_rects`], comparing only the tiles that overlap `damage` (what the display server
/// says may have changed since `prev`, e.g. X11 DAMAGE): a typed character costs the compare of a
/// tile or two instead of the whole screen. Rectangles of `damage` may overlap and may reach outside
/// the display (clipped). Everything outside them must be equal in `prev` and `cur`; it is not read.
pub fn dirty_rects_within(
    prev: &[u8],
    cur: &[u8],
    width: u32,
    height: u32,
    damage: &[Rect],
) -> Result<Vec<Rect>, ScreenError> {
    dirty_rects_in(Some(prev), cur, width, height, Some(damage))
}

fn dirty_rects_in(
    prev: Option<&[u8]>,
    cur: &[u8],
    width: u32,
    height: u32,
    damage: Option<&[Rect]>,
) -> Result<Vec<Rect>, ScreenError> {
    check_size(width, height)?;
    let expected = width as usize * height as usize * BPP;
    for got in [Some(cur.len()), prev.map(<[u8]>::len)]
        .into_iter()
        .flatten()
    {
        if got != expected {
            return Err(ScreenError::BufferSize { got, expected });
        }
    }
    let cols = width.div_ceil(TILE) as usize;
    // Which tiles to compare: all of them, or those that `damage` touches.
    let wanted: Option<Vec<bool>> = damage.map(|d| {
        let mut mask = vec![false; cols * height.div_ceil(TILE) as usize];
        for r in d {
            let (x1, y1) = (
                r.x.saturating_add(r.w).min(width),
                r.y.saturating_add(r.h).min(height),
            );
            if r.x >= x1 || r.y >= y1 {
                continue;
            }
            for ty in r.y / TILE..=(y1 - 1) / TILE {
                for tx in r.x / TILE..=(x1 - 1) / TILE {
                    mask[ty as usize * cols + tx as usize] = true;
                }
            }
        }
        mask
    });
    let stride = width as usize * BPP;
    let mut rects = Vec::new();
    for ty in (0..height).step_by(TILE as usize) {
        let th = TILE.min(height - ty);
        let mut run: Option<Rect> = None;
        for tx in (0..width).step_by(TILE as usize) {
            let tw = TILE.min(width - tx);
            let tile = (ty / TILE) as usize * cols + (tx / TILE) as usize;
            let dirty = match prev {
                None => true,
                Some(_) if wanted.as_ref().is_some_and(|m| !m[tile]) => false,
                Some(p) => (ty..ty + th).any(|y| {
                    let s = y as usize * stride + tx as usize * BPP;
                    let e = s + tw as usize * BPP;
                    p[s..e] != cur[s..e]
                }),
            };
            match (&mut run, dirty) {
                (Some(r), true) => r.w += tw,
                (None, true) => {
                    run = Some(Rect {
                        x: tx,
                        y: ty,
                        w: tw,
                        h: th,
                    })
                }
                (Some(_), false) => rects.extend(run.take()),
                (None, false) => {}
            }
        }
        rects.extend(run);
    }
    Ok(rects)
}

/// Copies the `rects` of `src` into `dst` (both whole pictures `width` pixels wide): what keeps the
/// agent's previous frame up to date after a change, without copying the whole screen. Rectangles
/// are clipped to the picture; pictures of another size than `width` x `height` are left alone.
pub fn copy_rects(dst: &mut [u8], src: &[u8], width: u32, height: u32, rects: &[Rect]) {
    let stride = width as usize * BPP;
    let expected = stride * height as usize;
    if dst.len() != expected || src.len() != expected {
        return;
    }
    for r in rects {
        let (x1, y1) = (
            r.x.saturating_add(r.w).min(width),
            r.y.saturating_add(r.h).min(height),
        );
        if r.x >= x1 || r.y >= y1 {
            continue;
        }
        for y in r.y..y1 {
            let s = y as usize * stride + r.x as usize * BPP;
            let e = y as usize * stride + x1 as usize * BPP;
            dst[s..e].copy_from_slice(&src[s..e]);
        }
    }
}

/// Shrinks each of `rects` (dirty rectangles of `cur` against `prev`, from [`dirty_rects`]) to the
/// bounding box of the pixels that really differ, so a typed character costs its glyph's pixels
/// rather than a whole tile's. Rectangles with no difference left are dropped. Costs one more compare
/// of the dirty rectangles only.
pub fn tighten(prev: &[u8], cur: &[u8], width: u32, height: u32, rects: &[Rect]) -> Vec<Rect> {
    let expected = width as usize * height as usize * BPP;
    if prev.len() != expected || cur.len() != expected {
        return rects.to_vec();
    }
    let stride = width as usize * BPP;
    let mut out = Vec::with_capacity(rects.len());
    for r in rects {
        if check_rect(r, width, height).is_err() {
            out.push(*r);
            continue;
        }
        let (mut x0, mut x1, mut y0, mut y1) = (u32::MAX, 0u32, u32::MAX, 0u32);
        for y in r.y..r.y + r.h {
            let s = y as usize * stride + r.x as usize * BPP;
            let (a, b) = (
                &prev[s..s + r.w as usize * BPP],
                &cur[s..s + r.w as usize * BPP],
            );
            if a == b {
                continue;
            }
            let first = a
                .chunks_exact(BPP)
                .zip(b.chunks_exact(BPP))
                .position(|(p, q)| p != q);
            let last = a
                .chunks_exact(BPP)
                .zip(b.chunks_exact(BPP))
                .rposition(|(p, q)| p != q);
            if let (Some(f), Some(l)) = (first, last) {
                x0 = x0.min(r.x + f as u32);
                x1 = x1.max(r.x + l as u32 + 1);
                y0 = y0.min(y);
                y1 = y + 1;
            }
        }
        if x0 < x1 && y0 < y1 {
            let r = Rect {
                x: x0,
                y: y0,
                w: x1 - x0,
                h: y1 - y0,
            };
            // A glyph across a tile row's edge is one rectangle, not two: each costs its header.
            match out.last_mut() {
                Some(last) if last.union(&r).area() <= last.area() + r.area() + MERGE_SLACK => {
                    *last = last.union(&r);
                }
                _ => out.push(r),
            }
        }
    }
    out
}

/// Unchanged pixels [`tighten`] may add to join two neighbouring rectangles into one (a rectangle's
/// header on the wire costs more than a few dozen pixels that compress to nearly nothing).
pub const MERGE_SLACK: u64 = 256;

/// The agent's side of the continuous zstd stream.
pub struct FrameEncoder {
    z: zstd::stream::write::Encoder<'static, Vec<u8>>,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameEncoder")
    }
}

impl FrameEncoder {
    /// A fresh stream (one per view stream).
    pub fn new() -> Result<Self, ScreenError> {
        let err = |e: std::io::Error| ScreenError::Corrupt(e.to_string());
        let mut raw = zstd::stream::raw::Encoder::new(ZSTD_LEVEL).map_err(err)?;
        raw.set_parameter(zstd::stream::raw::CParameter::WindowLog(ZSTD_WINDOW_LOG))
            .map_err(err)?;
        // Long-distance matching finds the far back-references (a frame ago) that level 1's small hash
        // table forgets.
        raw.set_parameter(zstd::stream::raw::CParameter::EnableLongDistanceMatching(
            true,
        ))
        .map_err(err)?;
        Ok(FrameEncoder {
            z: zstd::stream::write::Encoder::with_encoder(Vec::new(), raw),
        })
    }

    /// Compresses `raw` and flushes, so the result decodes on its own (given the earlier blocks).
    fn block(&mut self, raw: &[u8]) -> Result<Vec<u8>, ScreenError> {
        use std::io::Write;
        let err = |e: std::io::Error| ScreenError::Corrupt(e.to_string());
        self.z.write_all(raw).map_err(err)?;
        self.z.flush().map_err(err)?;
        Ok(std::mem::take(self.z.get_mut()))
    }

    /// Encodes the `rects` of `cur` as frame parts numbered `seq`, each holding at most
    /// [`MAX_PART_RAW`] raw bytes (a rectangle larger than that is split by rows).
    pub fn encode(
        &mut self,
        seq: u64,
        cur: &[u8],
        width: u32,
        height: u32,
        rects: &[Rect],
    ) -> Result<Vec<FrameUpdate>, ScreenError> {
        self.encode_moved(seq, cur, width, height, &[], rects)
    }

    /// Like [`Self::encode`], with `copies` (from [`motion::find_copies`]) on the first part, applied
    /// before the pixels of `rects`; a frame of copies only is one part with no pixel data.
    pub fn encode_moved(
        &mut self,
        seq: u64,
        cur: &[u8],
        width: u32,
        height: u32,
        copies: &[CopyRect],
        rects: &[Rect],
    ) -> Result<Vec<FrameUpdate>, ScreenError> {
        motion::check_copies(copies, width, height)?;
        let mut parts = encode_with(seq, cur, width, height, rects, false, |raw| self.block(raw))?;
        if !copies.is_empty() {
            match parts.first_mut() {
                Some(p) => p.copies = copies.to_vec(),
                None => parts.push(FrameUpdate {
                    copies: copies.to_vec(),
                    ..FrameUpdate::empty(seq, width, height)
                }),
            }
        }
        Ok(parts)
    }

    /// Like [`Self::encode`], but as self-contained zstd frames outside the stream: fast for a complete
    /// frame (no long-distance matching over 8 MB).
    pub fn encode_standalone(
        &mut self,
        seq: u64,
        cur: &[u8],
        width: u32,
        height: u32,
        rects: &[Rect],
    ) -> Result<Vec<FrameUpdate>, ScreenError> {
        encode_with(seq, cur, width, height, rects, true, |raw| {
            zstd::bulk::compress(raw, ZSTD_LEVEL).map_err(|e| ScreenError::Corrupt(e.to_string()))
        })
    }
}

/// The console's side of the continuous zstd stream.
pub struct FrameDecoder {
    z: zstd::stream::raw::Decoder<'static>,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameDecoder")
    }
}

impl FrameDecoder {
    /// A fresh stream (one per view stream).
    pub fn new() -> Result<Self, ScreenError> {
        let err = |e: std::io::Error| ScreenError::Corrupt(e.to_string());
        let mut z = zstd::stream::raw::Decoder::new().map_err(err)?;
        z.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(
            ZSTD_WINDOW_LOG_MAX,
        ))
        .map_err(err)?;
        Ok(FrameDecoder { z })
    }

    /// Decodes one block that must expand to exactly `total` bytes.
    fn decode(&mut self, data: &[u8], total: usize) -> Result<Vec<u8>, ScreenError> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let err = |e: std::io::Error| ScreenError::Corrupt(e.to_string());
        let mut out = vec![0u8; total];
        let mut input = InBuffer::around(data);
        let mut output = OutBuffer::around(&mut out[..]);
        loop {
            let (inp, outp) = (input.pos(), output.pos());
            self.z.run(&mut input, &mut output).map_err(err)?;
            let done = input.pos() == data.len();
            if (done && output.pos() == total) || (input.pos() == inp && output.pos() == outp) {
                break;
            }
        }
        if input.pos() != data.len() || output.pos() != total {
            return Err(ScreenError::Corrupt(format!(
                "block gave {} bytes for {total}",
                output.pos()
            )));
        }
        Ok(out)
    }
}

fn encode_with(
    seq: u64,
    cur: &[u8],
    width: u32,
    height: u32,
    rects: &[Rect],
    standalone: bool,
    mut compress: impl FnMut(&[u8]) -> Result<Vec<u8>, ScreenError>,
) -> Result<Vec<FrameUpdate>, ScreenError> {
    check_size(width, height)?;
    let expected = width as usize * height as usize * BPP;
    if cur.len() != expected {
        return Err(ScreenError::BufferSize {
            got: cur.len(),
            expected,
        });
    }
    let stride = width as usize * BPP;
    let max_rows = |r: &Rect| (MAX_PART_RAW / (r.w as usize * BPP)).max(1) as u32;
    // Split tall rectangles so that each fits a part on its own.
    let mut pieces = Vec::new();
    for r in rects {
        check_rect(r, width, height)?;
        let step = max_rows(r);
        let mut y = r.y;
        while y < r.y + r.h {
            let h = step.min(r.y + r.h - y);
            pieces.push(Rect { y, h, ..*r });
            y += h;
        }
    }
    let mut parts = Vec::new();
    let mut batch: Vec<Rect> = Vec::new();
    let mut raw = Vec::new();
    let mut flush = |batch: &mut Vec<Rect>, raw: &mut Vec<u8>| -> Result<(), ScreenError> {
        let data = compress(raw)?;
        parts.push(FrameUpdate {
            seq,
            width,
            height,
            rects: std::mem::take(batch),
            data,
            standalone,
            last: false,
            copies: Vec::new(),
            video: None,
        });
        raw.clear();
        Ok(())
    };
    for r in pieces {
        if !batch.is_empty() && raw.len() + r.bytes() > MAX_PART_RAW {
            flush(&mut batch, &mut raw)?;
        }
        for y in r.y..r.y + r.h {
            let s = y as usize * stride + r.x as usize * BPP;
            raw.extend_from_slice(&cur[s..s + r.w as usize * BPP]);
        }
        batch.push(r);
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut raw)?;
    }
    if let Some(p) = parts.last_mut() {
        p.last = true;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn picture(w: u32, h: u32, seed: u8) -> Vec<u8> {
        (0..w as usize * h as usize * BPP)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i / 997) as u8)
            .collect()
    }

    struct Pipe {
        enc: FrameEncoder,
        dec: FrameDecoder,
    }

    fn pipe() -> Pipe {
        Pipe {
            enc: FrameEncoder::new().unwrap(),
            dec: FrameDecoder::new().unwrap(),
        }
    }

    fn send_via(
        p: &mut Pipe,
        fb: &mut Framebuffer,
        prev: Option<&[u8]>,
        cur: &[u8],
        w: u32,
        h: u32,
    ) -> usize {
        let rects = dirty_rects(prev, cur, w, h).unwrap();
        let parts = if prev.is_none() {
            p.enc.encode_standalone(7, cur, w, h, &rects).unwrap()
        } else {
            p.enc.encode(7, cur, w, h, &rects).unwrap()
        };
        for u in &parts {
            fb.apply(&mut p.dec, u).unwrap();
        }
        parts.len()
    }

    fn send(fb: &mut Framebuffer, prev: Option<&[u8]>, cur: &[u8], w: u32, h: u32) -> usize {
        send_via(&mut pipe(), fb, prev, cur, w, h)
    }

    #[test]
    fn first_frame_is_complete_and_static_sends_nothing() {
        let (w, h) = (300, 170);
        let a = picture(w, h, 1);
        let mut fb = Framebuffer::new(1, 1).unwrap();
        send(&mut fb, None, &a, w, h);
        assert_eq!((fb.width, fb.height), (w, h));
        assert_eq!(fb.pixels, a);
        assert!(dirty_rects(Some(&a), &a, w, h).unwrap().is_empty());
        assert!(pipe().enc.encode(2, &a, w, h, &[]).unwrap().is_empty());
    }

    #[test]
    fn one_changed_pixel_sends_one_tile() {
        let (w, h) = (300, 170);
        let a = picture(w, h, 1);
        let mut b = a.clone();
        b[(100 * w as usize + 130) * BPP] ^= 0xff;
        let rects = dirty_rects(Some(&a), &b, w, h).unwrap();
        assert_eq!(
            rects,
            vec![Rect {
                x: 128,
                y: 64,
                w: 64,
                h: 64
            }]
        );
        let mut p = pipe();
        let mut fb = Framebuffer::new(1, 1).unwrap();
        send_via(&mut p, &mut fb, None, &a, w, h);
        send_via(&mut p, &mut fb, Some(&a), &b, w, h);
        assert_eq!(fb.pixels, b);
    }

    #[test]
    fn tightened_rectangles_hold_exactly_the_changed_pixels() {
        let (w, h) = (300, 170);
        let a = picture(w, h, 1);
        let mut b = a.clone();
        for (x, y) in [(130usize, 100usize), (135, 104), (70, 20)] {
            b[(y * w as usize + x) * BPP + 1] ^= 0x5a;
        }
        let r = |x, y, w, h| Rect { x, y, w, h };
        assert_eq!(
            tight_and_exact(&a, &b, w, h),
            vec![r(70, 20, 1, 1), r(130, 100, 6, 5)]
        );
        let rects = dirty_rects(Some(&a), &b, w, h).unwrap();
        assert!(tighten(&a, &a, w, h, &rects).is_empty());
    }

    /// `b`'s changes from `a`, tightened, after checking that sent as pixels they make the
    /// console's picture exactly `b`.
    fn tight_and_exact(a: &[u8], b: &[u8], w: u32, h: u32) -> Vec<Rect> {
        let rects = dirty_rects(Some(a), b, w, h).unwrap();
        let tight = tighten(a, b, w, h, &rects);
        let mut p = pipe();
        let mut fb = Framebuffer::new(1, 1).unwrap();
        send_via(&mut p, &mut fb, None, a, w, h);
        for u in &p.enc.encode(2, b, w, h, &tight).unwrap() {
            fb.apply(&mut p.dec, u).unwrap();
        }
        assert_eq!(fb.pixels, b);
        tight
    }

    /// A one-rectangle frame after the one before it is a patch, which expands to the same
    /// update; a first frame, a gap in the numbers, a new size, copies, video or two parts are not.
    #[test]
    fn a_plain_next_frame_is_a_patch_and_nothing_else_is() {
        let u = FrameUpdate {
            seq: 8,
            width: 300,
            height: 170,
            rects: vec![Rect {
                x: 1,
                y: 2,
                w: 3,
                h: 4,
            }],
            data: vec![1, 2, 3],
            standalone: false,
            last: true,
            copies: Vec::new(),
            video: None,
        };
        let p = Patch::of(std::slice::from_ref(&u), 7, (300, 170)).expect("a patch");
        assert_eq!(p.clone().expand(7, 300, 170), u);
        let codec_len = |m: &ScreenMsg| crate::codec::encode(m).unwrap().len();
        assert!(
            codec_len(&ScreenMsg::Patch(p)) + 10 <= codec_len(&ScreenMsg::Frame(u.clone())),
            "a patch is smaller"
        );
        let not = |v: &FrameUpdate, prev: u64, size: (u32, u32)| {
            Patch::of(std::slice::from_ref(v), prev, size).is_none()
        };
        assert!(not(&u, 6, (300, 170)), "a gap");
        assert!(not(&u, 7, (300, 171)), "another size");
        assert!(not(
            &FrameUpdate {
                standalone: true,
                ..u.clone()
            },
            7,
            (300, 170)
        ));
        assert!(not(
            &FrameUpdate {
                last: false,
                ..u.clone()
            },
            7,
            (300, 170)
        ));
        assert!(not(
            &FrameUpdate {
                rects: vec![u.rects[0]; 2],
                ..u.clone()
            },
            7,
            (300, 170)
        ));
        let copy = CopyRect {
            src_x: 0,
            src_y: 0,
            dst: u.rects[0],
        };
        assert!(not(
            &FrameUpdate {
                copies: vec![copy],
                ..u.clone()
            },
            7,
            (300, 170)
        ));
        let video = video::VideoPart {
            rect: u.rects[0],
            start: true,
            data: Vec::new(),
        };
        assert!(not(
            &FrameUpdate {
                video: Some(video),
                ..u.clone()
            },
            7,
            (300, 170)
        ));
        assert!(
            Patch::of(&[u.clone(), u.clone()], 7, (300, 170)).is_none(),
            "two parts"
        );
    }

    /// A glyph drawn across a tile row's edge (rows 120..133 cross y = 128) is one rectangle;
    /// two changes far apart stay two.
    #[test]
    fn a_glyph_across_a_tile_edge_is_one_rectangle() {
        let (w, h) = (300, 170);
        let a = picture(w, h, 1);
        let mut b = a.clone();
        for y in 120..133usize {
            for x in [40usize, 45] {
                b[(y * w as usize + x) * BPP] ^= 0x33;
            }
        }
        b[(10 * w as usize + 290) * BPP] ^= 0x33;
        let r = |x, y, w, h| Rect { x, y, w, h };
        assert_eq!(
            tight_and_exact(&a, &b, w, h),
            vec![r(290, 10, 1, 1), r(40, 120, 6, 13)]
        );
    }

    #[test]
    fn a_change_outside_the_damage_is_not_looked_at() {
        // The contract: outside the damage nothing is read. A change there (which the display server
        // would have reported) is not found, and no damage means nothing to compare.
        let (w, h) = (300, 170);
        let a = picture(w, h, 1);
        let mut b = a.clone();
        b[(100 * w as usize + 200) * BPP] ^= 1;
        let r = |x, y, w, h| Rect { x, y, w, h };
        assert!(dirty_rects_within(&a, &b, w, h, &[]).unwrap().is_empty());
        assert!(
            dirty_rects_within(&a, &b, w, h, &[r(0, 0, 64, 64)])
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            dirty_rects_within(&a, &b, w, h, &[r(199, 99, 2, 2)]).unwrap(),
            vec![r(192, 64, 64, 64)]
        );
        assert!(matches!(
            dirty_rects_within(&a, &b[1..], w, h, &[]),
            Err(ScreenError::BufferSize { .. })
        ));
    }

    #[test]
    fn repeated_content_compresses_against_history() {
        // A "window" that moves: the same pixels at a new place cost far less the second time.
        let (w, h) = (640, 480);
        let bg = vec![0x40u8; w as usize * h as usize * BPP];
        let paint = |x0: usize| {
            let mut f = bg.clone();
            for y in 100..300 {
                for x in x0..x0 + 200 {
                    let i = (y * w as usize + x) * BPP;
                    f[i] = (x - x0) as u8 ^ y as u8;
                    f[i + 1] = ((x - x0) * 7) as u8;
                    f[i + 2] = (y * 13) as u8;
                }
            }
            f
        };
        // The complete first frame is standalone; the window then appears and moves within the stream.
        let (first, a, b) = (bg.clone(), paint(50), paint(300));
        let mut p = pipe();
        let mut fb = Framebuffer::new(1, 1).unwrap();
        send_via(&mut p, &mut fb, None, &first, w, h);
        send_via(&mut p, &mut fb, Some(&first), &a, w, h);
        let rects = dirty_rects(Some(&a), &b, w, h).unwrap();
        let parts = p.enc.encode(2, &b, w, h, &rects).unwrap();
        let with_history: usize = parts.iter().map(|u| u.data.len()).sum();
        for u in &parts {
            fb.apply(&mut p.dec, u).unwrap();
        }
        assert_eq!(fb.pixels, b);
        let fresh: usize = pipe()
            .enc
            .encode(2, &b, w, h, &rects)
            .unwrap()
            .iter()
            .map(|u| u.data.len())
            .sum();
        assert!(with_history * 2 < fresh, "{with_history} vs {fresh}");
    }

    #[test]
    fn large_frames_split_into_parts_under_the_limit() {
        let (w, h) = (1920, 1080);
        let a = picture(w, h, 3);
        let mut fb = Framebuffer::new(w, h).unwrap();
        let n = send(&mut fb, None, &a, w, h);
        assert!(n >= 3, "8 MB raw must need several parts, got {n}");
        assert_eq!(fb.pixels, a);
    }

    #[test]
    fn hostile_updates_are_refused_without_change() {
        let mut fb = Framebuffer::new(10, 10).unwrap();
        let before = fb.clone();
        let bad_rect = FrameUpdate {
            seq: 1,
            width: 10,
            height: 10,
            rects: vec![Rect {
                x: 8,
                y: 0,
                w: 4,
                h: 1,
            }],
            data: zstd::bulk::compress(&[0u8; 16], 1).unwrap(),
            standalone: true,
            last: true,
            copies: Vec::new(),
            video: None,
        };
        let mut dec = FrameDecoder::new().unwrap();
        assert!(matches!(
            fb.apply(&mut dec, &bad_rect),
            Err(ScreenError::OutOfBounds(_))
        ));
        let short = FrameUpdate {
            rects: vec![Rect {
                x: 0,
                y: 0,
                w: 5,
                h: 1,
            }],
            ..bad_rect.clone()
        };
        let mut dec = FrameDecoder::new().unwrap();
        assert!(matches!(
            fb.apply(&mut dec, &short),
            Err(ScreenError::Corrupt(_))
        ));
        let huge = FrameUpdate {
            width: MAX_SIDE + 1,
            ..short.clone()
        };
        assert!(matches!(
            fb.apply(&mut dec, &huge),
            Err(ScreenError::BadSize(..))
        ));
        assert_eq!(fb, before);
    }

    /// Found by the `frame_apply` fuzz target: a 16320x16320 display announced with one pixel of data
    /// made the console allocate a 1 GiB framebuffer.
    #[test]
    fn a_display_above_max_pixels_is_refused_before_allocating() {
        let mut fb = Framebuffer::new(10, 10).unwrap();
        let before = fb.clone();
        let one_pixel = FrameUpdate {
            seq: 1,
            width: 16_320,
            height: 16_320,
            rects: vec![Rect {
                x: 0,
                y: 0,
                w: 1,
                h: 1,
            }],
            data: zstd::bulk::compress(&[7u8; BPP], 1).unwrap(),
            standalone: true,
            last: true,
            copies: Vec::new(),
            video: None,
        };
        let mut dec = FrameDecoder::new().unwrap();
        assert_eq!(
            fb.apply(&mut dec, &one_pixel),
            Err(ScreenError::BadSize(16_320, 16_320))
        );
        assert_eq!(fb, before);
        assert!(Framebuffer::new(MAX_SIDE, MAX_SIDE).is_err());
        // Two 8K monitors side by side still fit.
        assert!(check_size(2 * 7680, 4320).is_ok());
    }

    /// Rectangles that each fit the display but add up to gigabytes are refused before the decoder
    /// allocates its output (it used to allocate the sum, then fail on the short data).
    #[test]
    fn rectangles_adding_up_past_a_part_are_refused_before_allocating() {
        let mut fb = Framebuffer::new(4096, 4096).unwrap();
        let whole = Rect {
            x: 0,
            y: 0,
            w: 4096,
            h: 4096,
        };
        for standalone in [true, false] {
            let u = FrameUpdate {
                seq: 1,
                width: 4096,
                height: 4096,
                rects: vec![whole; 100],
                data: vec![0x28, 0xb5, 0x2f, 0xfd],
                standalone,
                last: true,
                copies: Vec::new(),
                video: None,
            };
            let mut dec = FrameDecoder::new().unwrap();
            assert!(matches!(
                fb.apply(&mut dec, &u),
                Err(ScreenError::PartTooLarge(n)) if n > MAX_PART_RAW
            ));
        }
        // A part just within the limit is still accepted (what the encoder sends).
        let rows = (MAX_PART_RAW / (4096 * BPP)) as u32;
        let raw = vec![9u8; 4096 * rows as usize * BPP];
        let u = FrameUpdate {
            seq: 1,
            width: 4096,
            height: 4096,
            rects: vec![Rect { h: rows, ..whole }],
            data: zstd::bulk::compress(&raw, 1).unwrap(),
            standalone: true,
            last: true,
            copies: Vec::new(),
            video: None,
        };
        fb.apply(&mut FrameDecoder::new().unwrap(), &u).unwrap();
    }

    /// A window moved and text scrolled: the agent's path (find copies, apply them to its copy of the
    /// previous frame, send what still differs) leaves the console's framebuffer equal to the frame.
    #[test]
    fn copies_and_pixels_together_are_lossless() {
        let (w, h) = (640, 480);
        let bg = vec![0x40u8; w as usize * h as usize * BPP];
        let paint = |x0: usize, y0: usize| {
            let mut f = bg.clone();
            for y in y0..y0 + 200 {
                for x in x0..x0 + 260 {
                    let i = (y * w as usize + x) * BPP;
                    let (dx, dy) = (x - x0, y - y0);
                    f[i] = ((dx * 31) ^ (dy * 17)) as u8;
                    f[i + 1] = ((dx / 6) * 7 + dy / 13) as u8;
                    f[i + 2] = (dy * 13) as u8;
                }
            }
            f
        };
        let (a, b) = (paint(40, 30), paint(171, 93));
        let mut p = pipe();
        let mut fb = Framebuffer::new(1, 1).unwrap();
        send_via(&mut p, &mut fb, None, &a, w, h);
        let mut prev = a.clone();
        let dirty = dirty_rects(Some(&prev), &b, w, h).unwrap();
        let copies = motion::find_copies(&prev, &b, w, h, &dirty);
        assert!(!copies.is_empty(), "the moved window is found");
        motion::apply_copies(&mut prev, w, h, &copies).unwrap();
        let rects = dirty_rects(Some(&prev), &b, w, h).unwrap();
        let parts = p.enc.encode_moved(2, &b, w, h, &copies, &rects).unwrap();
        assert_eq!(parts[0].copies, copies);
        for u in &parts {
            fb.apply(&mut p.dec, u).unwrap();
        }
        assert_eq!(fb.pixels, b);
        // A frame of copies only is one part without pixel data.
        let back = motion::find_copies(&b, &a, w, h, &dirty_rects(Some(&b), &a, w, h).unwrap());
        let only = p.enc.encode_moved(3, &a, w, h, &back, &[]).unwrap();
        assert_eq!(only.len(), 1);
        assert!(only[0].data.is_empty() && only[0].last);
        fb.apply(&mut p.dec, &only[0]).unwrap();
    }

    /// Copies from a hostile agent: outside the display, or overlapping, are typed errors and leave
    /// the framebuffer as it was; pixel data with no rectangles is corrupt.
    #[test]
    fn hostile_copies_are_refused_without_change() {
        let mut fb = Framebuffer::new(10, 10).unwrap();
        fb.pixels
            .iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = i as u8);
        let before = fb.clone();
        let r = |x, y, w, h| Rect { x, y, w, h };
        let part = |copies: Vec<CopyRect>| FrameUpdate {
            seq: 1,
            width: 10,
            height: 10,
            rects: Vec::new(),
            data: Vec::new(),
            standalone: false,
            last: true,
            copies,
            video: None,
        };
        let mut dec = FrameDecoder::new().unwrap();
        let outside = CopyRect {
            src_x: 0,
            src_y: 7,
            dst: r(0, 0, 5, 5),
        };
        assert_eq!(
            fb.apply(&mut dec, &part(vec![outside])),
            Err(ScreenError::OutOfBounds(r(0, 7, 5, 5)))
        );
        let a = CopyRect {
            src_x: 0,
            src_y: 0,
            dst: r(4, 4, 3, 3),
        };
        let b = CopyRect {
            src_x: 0,
            src_y: 0,
            dst: r(6, 6, 3, 3),
        };
        assert_eq!(
            fb.apply(&mut dec, &part(vec![a, b])),
            Err(ScreenError::Overlap(a.dst, b.dst))
        );
        let data_without_rects = FrameUpdate {
            data: vec![1, 2, 3],
            ..part(vec![a])
        };
        assert!(matches!(
            fb.apply(&mut dec, &data_without_rects),
            Err(ScreenError::Corrupt(_))
        ));
        assert_eq!(fb, before);
        // A good copy is applied.
        fb.apply(&mut dec, &part(vec![a])).unwrap();
        assert_eq!(fb.pixels[(4 * 10 + 4) * BPP], before.pixels[0]);
    }

    proptest! {
        #[test]
        fn any_change_round_trips(w in 1u32..200, h in 1u32..150, seed: u8,
                                  edits in prop::collection::vec((any::<u32>(), any::<u8>()), 0..20)) {
            let a = picture(w, h, seed);
            let mut b = a.clone();
            for (i, v) in edits {
                let n = b.len();
                b[i as usize % n] = v;
            }
            let mut p = pipe();
            let mut fb = Framebuffer::new(w, h).unwrap();
            send_via(&mut p, &mut fb, None, &a, w, h);
            send_via(&mut p, &mut fb, Some(&a), &b, w, h);
            prop_assert_eq!(fb.pixels, b);
        }

        /// Comparing only the damaged tiles finds exactly what the full compare finds, as long as
        /// every change lies inside the damage (which may be larger, overlap and reach outside);
        /// and `copy_rects` of the dirty rectangles brings the old picture up to date.
        #[test]
        fn damage_limited_compare_equals_the_full_compare(
            w in 1u32..300, h in 1u32..200, seed: u8,
            edits in prop::collection::vec((any::<u32>(), any::<u8>(), 0u32..80, 0u32..80), 0..12),
            extra in prop::collection::vec((any::<u32>(), any::<u32>(), 0u32..400, 0u32..400), 0..4),
        ) {
            let a = picture(w, h, seed);
            let mut b = a.clone();
            let mut damage = Vec::new();
            for (i, v, dw, dh) in edits {
                let px = (i as usize / BPP) % (w as usize * h as usize);
                b[px * BPP + i as usize % BPP] = v;
                let (x, y) = ((px % w as usize) as u32, (px / w as usize) as u32);
                // A damage rectangle around the changed pixel, sometimes past the edges.
                damage.push(Rect { x: x.saturating_sub(dw / 2), y: y.saturating_sub(dh / 2), w: dw + 1, h: dh + 1 });
            }
            damage.extend(extra.into_iter().map(|(x, y, w, h)| Rect { x: x % 400, y: y % 300, w, h }));
            let full = dirty_rects(Some(&a), &b, w, h).unwrap();
            let within = dirty_rects_within(&a, &b, w, h, &damage).unwrap();
            prop_assert_eq!(&within, &full);
            let mut old = a.clone();
            copy_rects(&mut old, &b, w, h, &within);
            prop_assert_eq!(old, b);
        }

        #[test]
        fn garbage_updates_never_panic(u: FrameUpdate) {
            let mut fb = Framebuffer::new(4, 4).unwrap();
            let mut dec = FrameDecoder::new().unwrap();
            let _ = fb.apply(&mut dec, &u);
        }
    }
}
