//! The console's side of screen view and remote control.
//!
//! [`Session::view`] opens a view stream and returns a [`ViewStream`] that keeps the remote screen in a
//! [`Framebuffer`] and acknowledges complete frames (the agent sends at most two ahead, or eight while
//! they are small, whose acknowledgements wait; see [`SMALL_FRAME_BYTES`]).
//! [`Session::control`] opens a control stream; [`ControlStream::send`] waits for the agent's answer to
//! each event, so a script knows whether it was injected or refused.

use std::path::Path;

use tether_net::sealed::{SealedRecv, SealedSend};
use tether_proto::Scope;
use tether_proto::cursor::CursorShape;
use tether_proto::msg::{Request, Response};
use tether_proto::screen::video::{MAX_VIDEO_PACKET, VideoPart};
use tether_proto::screen::{
    DisplayInfo, FrameDecoder, FrameUpdate, Framebuffer, InputEvent, InputReply,
    MAX_SMALL_IN_FLIGHT, ScreenError, ScreenMsg, ViewerMsg, check_rect,
};

use crate::error::ConsoleError;
use crate::picture::Damage;
use crate::session::Session;

/// A complete frame whose pixel data is smaller than this is acknowledged only once
/// [`MAX_SMALL_IN_FLIGHT`] small frames wait, or with the next large one: a typed character is a
/// frame of a few dozen bytes, and each acknowledgement makes the agent send an ACK-only QUIC packet
/// back, which cost more than the pixels. Larger frames are acknowledged at once, so a busy screen
/// keeps its pipeline full. The agent's side of the rule is [`tether_proto::screen::InFlight`].
pub use tether_proto::screen::SMALL_FRAME_BYTES;

/// What [`ViewStream::next`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewEvent {
    /// A frame is complete in the framebuffer (acknowledged, or, if small, with the next one).
    Frame {
        /// Its number.
        seq: u64,
    },
    /// Part of a frame arrived; more follow.
    Partial,
    /// The cursor's shape changed (it passed [`CursorShape::check`]).
    CursorShape {
        /// Its serial.
        serial: u64,
    },
    /// The pointer moved to this position.
    Cursor {
        /// Column.
        x: i32,
        /// Row.
        y: i32,
    },
}

/// A live view of one remote display.
#[derive(Debug)]
pub struct ViewStream {
    tx: SealedSend,
    rx: SealedRecv,
    decoder: FrameDecoder,
    /// The running video region's decoder, if the agent started one.
    video: Option<tether_video::Decoder>,
    /// The display being shown.
    pub display: DisplayInfo,
    /// The remote screen as of the last complete frame (mid-frame while parts arrive).
    pub framebuffer: Framebuffer,
    /// The last pointer position the agent reported.
    pub cursor: Option<(i32, i32)>,
    /// The last cursor shape the agent sent (checked).
    pub cursor_shape: Option<CursorShape>,
    /// Complete frames received.
    pub frames: u64,
    /// The number of the last frame part applied (a patch is the next one).
    seq: u64,
    /// Compressed pixel bytes received.
    pub pixel_bytes: u64,
    /// Copies (scrolled or moved rectangles) received.
    pub copies: u64,
    /// Video bytes received (VP8 frames of video regions; also in `pixel_bytes`).
    pub video_bytes: u64,
    /// Acknowledgements sent (fewer than `frames`: small frames share one).
    pub acks: u64,
    /// What the framebuffer took since the last [`ViewStream::take_damage`].
    damage: Damage,
    /// When to acknowledge.
    ack: AckPolicy,
}

/// When the viewer acknowledges a complete frame (pure). An acknowledgement covers every frame up to
/// its number, so small frames' may wait: the agent sends up to [`MAX_SMALL_IN_FLIGHT`] small frames
/// ahead (or [`tether_proto::screen::MAX_IN_FLIGHT`] once one is large, which is acknowledged at once), so those held back
/// never keep the next frame from coming, and at most `MAX_SMALL_IN_FLIGHT - 1` are ever held back.
#[derive(Debug, Default)]
struct AckPolicy {
    /// Pixel bytes of the frame being received (its parts so far).
    frame_bytes: u64,
    /// Complete frames not acknowledged yet.
    unacked: u64,
}

impl AckPolicy {
    /// A part of the current frame arrived with `bytes` of pixel data.
    fn part(&mut self, bytes: u64) {
        self.frame_bytes += bytes;
    }

    /// The current frame is complete: whether to acknowledge it now (and every one before it).
    fn complete(&mut self) -> bool {
        self.unacked += 1;
        let now = self.frame_bytes >= SMALL_FRAME_BYTES || self.unacked >= MAX_SMALL_IN_FLIGHT;
        if now {
            self.unacked = 0;
        }
        self.frame_bytes = 0;
        now
    }
}

impl ViewStream {
    /// Waits for the next message from the agent and applies it.
    pub async fn next(&mut self) -> Result<ViewEvent, ConsoleError> {
        match self.rx.recv::<ScreenMsg>().await? {
            ScreenMsg::Frame(u) => self.apply(u).await,
            ScreenMsg::Patch(p) => {
                let (w, h) = (self.framebuffer.width, self.framebuffer.height);
                let u = p.expand(self.seq, w, h);
                self.apply(u).await
            }
            ScreenMsg::CursorShape(shape) => {
                // Like every frame part: a shape out of bounds is a misbehaving agent.
                shape
                    .check()
                    .map_err(|e| ConsoleError::Protocol(e.to_string()))?;
                let serial = shape.serial;
                self.cursor_shape = Some(shape);
                Ok(ViewEvent::CursorShape { serial })
            }
            ScreenMsg::Cursor { x, y } => {
                self.cursor = Some((x, y));
                Ok(ViewEvent::Cursor { x, y })
            }
            ScreenMsg::Stopped { reason } => Err(ConsoleError::Failed(reason)),
        }
    }

    async fn apply(&mut self, u: FrameUpdate) -> Result<ViewEvent, ConsoleError> {
        let size = (self.framebuffer.width, self.framebuffer.height);
        let protocol = |e: ScreenError| ConsoleError::Protocol(e.to_string());
        self.framebuffer
            .apply(&mut self.decoder, &u)
            .map_err(protocol)?;
        if size == (self.framebuffer.width, self.framebuffer.height) {
            // Copies change their destinations just as pixels do.
            let copied: Vec<_> = u.copies.iter().map(|c| c.dst).collect();
            self.damage.add(&copied);
            self.damage.add(&u.rects);
        } else {
            self.damage = Damage::Full;
            self.video = None;
        }
        self.seq = u.seq;
        let bytes = u.pixel_bytes();
        if let Some(v) = &u.video {
            play(&mut self.video, &mut self.framebuffer, v).map_err(protocol)?;
            self.damage.add(&[v.rect]);
            self.video_bytes += v.data.len() as u64;
        }
        self.pixel_bytes += bytes;
        self.copies += u.copies.len() as u64;
        self.ack.part(bytes);
        if !u.last {
            return Ok(ViewEvent::Partial);
        }
        self.frames += 1;
        if self.ack.complete() {
            self.tx.send(&ViewerMsg::Ack { seq: u.seq }).await?;
            self.acks += 1;
        }
        Ok(ViewEvent::Frame { seq: u.seq })
    }

    /// The rectangles of the framebuffer that changed since the last call (all of it at first), so a
    /// window updates only those.
    pub fn take_damage(&mut self) -> Damage {
        self.damage.take()
    }

    /// Waits until a complete frame is in the framebuffer.
    pub async fn next_frame(&mut self) -> Result<u64, ConsoleError> {
        loop {
            if let ViewEvent::Frame { seq } = self.next().await? {
                return Ok(seq);
            }
        }
    }

    /// The framebuffer with the user's cursor drawn where the agent last saw it (unchanged when no
    /// shape or position has arrived).
    pub fn with_cursor(&self) -> Framebuffer {
        let mut fb = self.framebuffer.clone();
        if let (Some(shape), Some((x, y))) = (&self.cursor_shape, self.cursor) {
            shape.draw(&mut fb, x, y);
        }
        fb
    }

    /// Stops viewing (the agent stops capturing).
    pub async fn close(mut self) {
        self.tx
            .finish_and_flush(std::time::Duration::from_secs(1))
            .await;
    }
}

/// Decodes one frame of the video region onto `fb` (checked: a stream that was never started, a
/// corrupt packet or a picture of the wrong size is [`ScreenError::Video`], a region outside the
/// display [`ScreenError::OutOfBounds`]; the framebuffer then keeps its pixels).
fn play(
    video: &mut Option<tether_video::Decoder>,
    fb: &mut Framebuffer,
    v: &VideoPart,
) -> Result<(), ScreenError> {
    let fail = |e: &dyn std::fmt::Display| ScreenError::Video(e.to_string());
    if v.data.len() > MAX_VIDEO_PACKET {
        return Err(fail(&format!("a packet of {} bytes", v.data.len())));
    }
    check_rect(&v.rect, fb.width, fb.height)?;
    if v.start {
        *video = Some(tether_video::Decoder::new(v.rect).map_err(|e| fail(&e))?);
    }
    let decoder = match video {
        Some(d) if d.rect() == v.rect => d,
        _ => return Err(fail(&"a frame of a video stream that was not started")),
    };
    let pixels = decoder.decode(&v.data).map_err(|e| fail(&e))?;
    fb.paint(&v.rect, &pixels)
}

/// Writes a framebuffer to `path` as an RGB PNG.
pub fn write_png(fb: &Framebuffer, path: &Path) -> Result<(), ConsoleError> {
    let fail = |e: &dyn std::fmt::Display| {
        ConsoleError::Failed(format!("writing {}: {e}", path.display()))
    };
    let file = std::fs::File::create(path).map_err(|e| fail(&e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), fb.width, fb.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| fail(&e))?;
    let rgb: Vec<u8> = fb
        .pixels
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    w.write_image_data(&rgb).map_err(|e| fail(&e))?;
    w.finish().map_err(|e| fail(&e))
}

/// Sends input to one remote display.
#[derive(Debug)]
pub struct ControlStream {
    tx: SealedSend,
    rx: SealedRecv,
    /// The display the coordinates refer to.
    pub display: DisplayInfo,
}

impl ControlStream {
    /// Sends one event and waits for the agent's answer: `Ok(None)` injected, `Ok(Some(reason))`
    /// harmless and not injected (a release of a key this stream does not hold).
    pub async fn send(&mut self, event: &InputEvent) -> Result<Option<String>, ConsoleError> {
        self.tx.send(event).await?;
        match self.rx.recv::<InputReply>().await? {
            InputReply::Done => Ok(None),
            InputReply::Ignored { reason } => Ok(Some(reason)),
            InputReply::Refused => Err(ConsoleError::ScopeDenied(Scope::Control)),
            InputReply::Failed { message } => Err(ConsoleError::Failed(message)),
        }
    }

    /// Closes the stream.
    pub async fn close(mut self) {
        self.tx
            .finish_and_flush(std::time::Duration::from_secs(1))
            .await;
    }
}

impl Session {
    /// The remote displays (needs `view`).
    pub async fn displays(&mut self) -> Result<Vec<DisplayInfo>, ConsoleError> {
        match self.request(&Request::Displays).await? {
            Response::Displays(d) => Ok(d),
            other => Err(ConsoleError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Starts viewing display `display` (needs `view`).
    pub async fn view(&mut self, display: u32) -> Result<ViewStream, ConsoleError> {
        let (tx, rx, response) = self.open_stream(&Request::View { display }).await?;
        match response {
            Response::Viewing { display } => Ok(ViewStream {
                tx,
                rx,
                decoder: FrameDecoder::new().map_err(|e| ConsoleError::Failed(e.to_string()))?,
                video: None,
                framebuffer: Framebuffer::new(display.width, display.height)
                    .map_err(|e| ConsoleError::Protocol(e.to_string()))?,
                display,
                cursor: None,
                cursor_shape: None,
                frames: 0,
                seq: 0,
                pixel_bytes: 0,
                copies: 0,
                video_bytes: 0,
                acks: 0,
                damage: Damage::Full,
                ack: AckPolicy::default(),
            }),
            other => Err(ConsoleError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Opens a control stream on display `display` (needs `control`).
    pub async fn control(&mut self, display: u32) -> Result<ControlStream, ConsoleError> {
        let (tx, rx, response) = self.open_stream(&Request::Control { display }).await?;
        match response {
            Response::Controlling { display } => Ok(ControlStream { tx, rx, display }),
            other => Err(ConsoleError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::screen::Rect;

    /// Every sequence of up to 10 small and large frames, each followed by a still screen (the agent
    /// sends nothing until the next change): after the viewer has taken every frame sent, the agent
    /// (`InFlight`, the rule `proto::screen` states) always has room for the next one, so a change
    /// after a pause is never stalled.
    #[test]
    fn a_held_back_acknowledgement_never_stalls_the_next_frame() {
        use tether_proto::screen::InFlight;
        let sizes = [0, SMALL_FRAME_BYTES - 1, SMALL_FRAME_BYTES, 100_000];
        for len in 1..=10u32 {
            for n in 0..sizes.len().pow(len) {
                let (mut agent, mut viewer, mut held) =
                    (InFlight::default(), AckPolicy::default(), 0);
                let mut k = n;
                for seq in 1..=u64::from(len) {
                    assert!(agent.can_send(), "stalled after {n} of length {len}");
                    let size = sizes[k % sizes.len()];
                    agent.sent(seq, size);
                    // A frame in two parts, the pixel bytes in the first.
                    viewer.part(size);
                    viewer.part(0);
                    k /= sizes.len();
                    if viewer.complete() {
                        agent.acked(seq);
                        held = 0;
                    } else {
                        held += 1;
                    }
                    assert!(held < MAX_SMALL_IN_FLIGHT, "{held} frames held back");
                }
                assert!(agent.can_send());
            }
        }
    }

    #[test]
    fn small_frames_share_an_acknowledgement_and_large_ones_are_acknowledged_at_once() {
        let mut viewer = AckPolicy::default();
        for i in 1..MAX_SMALL_IN_FLIGHT {
            viewer.part(30);
            assert!(!viewer.complete(), "typed glyph {i} waits");
        }
        viewer.part(30);
        assert!(viewer.complete(), "the last one acknowledges them all");
        viewer.part(30);
        assert!(!viewer.complete(), "a glyph waits");
        viewer.part(SMALL_FRAME_BYTES);
        assert!(viewer.complete(), "a large frame acknowledges it at once");
        viewer.part(SMALL_FRAME_BYTES);
        assert!(viewer.complete(), "a large frame at once");
        // Parts add up: a frame of small parts is not small.
        viewer.part(SMALL_FRAME_BYTES / 2);
        viewer.part(SMALL_FRAME_BYTES / 2);
        assert!(viewer.complete());
    }

    fn noise(w: u32, h: u32, seed: u32) -> Vec<u8> {
        (0..w * h * 4)
            .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(97)) as u8 >> 1)
            .collect()
    }

    /// Bad video from a hostile agent: a corrupt packet, a stream never started, a picture of
    /// another size, a region outside the display, an oversized packet: each a typed error that
    /// leaves the framebuffer as it was. A good stream paints its region only.
    #[test]
    fn hostile_video_is_refused_without_change() {
        use std::time::Duration;
        let mut fb = Framebuffer::new(128, 96).unwrap();
        fb.pixels.iter_mut().for_each(|p| *p = 7);
        let before = fb.clone();
        let rect = Rect {
            x: 32,
            y: 16,
            w: 64,
            h: 48,
        };
        let mut enc = tether_video::Encoder::new(rect).unwrap();
        let key = enc
            .encode(&noise(128, 96, 1), 128, Duration::from_millis(33))
            .unwrap();
        let part = |rect, start, data: &[u8]| VideoPart {
            rect,
            start,
            data: data.to_vec(),
        };
        let mut video = None;
        let cases = [
            ("never started", part(rect, false, &key)),
            ("corrupt", part(rect, true, &[0x5a; 300])),
            ("another size", part(Rect { w: 32, ..rect }, true, &key)),
            ("outside", part(Rect { x: 100, ..rect }, true, &key)),
            (
                "oversized",
                part(rect, true, &vec![0; MAX_VIDEO_PACKET + 1]),
            ),
        ];
        for (name, bad) in cases {
            let e = play(&mut video, &mut fb, &bad).unwrap_err();
            assert!(
                matches!(e, ScreenError::Video(_) | ScreenError::OutOfBounds(_)),
                "{name}: {e}"
            );
            assert_eq!(fb, before, "{name} changed the framebuffer");
            video = None;
        }
        play(&mut video, &mut fb, &part(rect, true, &key)).unwrap();
        let next = enc
            .encode(&noise(128, 96, 2), 128, Duration::from_millis(33))
            .unwrap();
        play(&mut video, &mut fb, &part(rect, false, &next)).unwrap();
        for y in 0..96u32 {
            for x in 0..128u32 {
                let inside = (32..96).contains(&x) && (16..64).contains(&y);
                let i = (y * 128 + x) as usize * 4;
                if !inside {
                    assert_eq!(
                        fb.pixels[i..i + 4],
                        before.pixels[i..i + 4],
                        "pixel {x},{y}"
                    );
                }
            }
        }
        assert_ne!(fb, before, "the region was painted");
        // A continuation of another region is refused too.
        let other = part(Rect { x: 0, ..rect }, false, &next);
        assert!(matches!(
            play(&mut video, &mut fb, &other),
            Err(ScreenError::Video(_))
        ));
    }
}
