//! The lossy path for what is video (issue 18): which part of the screen plays video, and what
//! crosses for it. Pure: the codec itself (VP8, `tether-video`) runs in the agent and the console.
//!
//! A [`Detector`] watches the tiles each frame would send as pixels. A tile is *busy* when some of
//! it changed and its pixels are colourful (many distinct colours among a sample: a picture, not
//! text, whose glyphs have a handful). A tile busy for [`HOT_FRAMES`] frames in a row is *hot*; the
//! bounding box of the hot tiles, once it spans [`MIN_VIDEO_TILES`] tiles, becomes the video
//! region. While a region plays, what changes inside it goes through the video codec as a
//! [`VideoPart`] and everything outside it stays lossless (zstd, copies). A region with no hot tile
//! for [`COOL_AFTER`] ends, and its pixels are sent once more losslessly (a *refresh*), so a still
//! screen is pixel-exact again. Copies never read or write a region that plays (the console's
//! pixels there are approximate), see [`clear_of`].
//!
//! Time is passed in; the detector keeps no clock of its own.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::motion::{self, CopyRect};
use super::{BPP, Rect, TILE};

/// Frames in a row a tile must be busy to count as video.
pub const HOT_FRAMES: u8 = 6;
/// Fewest hot tiles that make a video region (4 tiles: 128x128 pixels or more): a blinking
/// cursor or a spinner stays lossless.
pub const MIN_VIDEO_TILES: usize = 4;
/// Fewest distinct colours among a busy tile's sampled pixels (text and flat UI have a few,
/// moving pictures hundreds).
pub const MIN_COLOURS: usize = 16;
/// Every `SAMPLE_STEP`-th pixel of a tile, in both directions, is sampled for its colours.
pub const SAMPLE_STEP: u32 = 2;
/// A region whose tiles stopped being hot this long ago ends with a lossless refresh.
pub const COOL_AFTER: Duration = Duration::from_millis(400);
/// The video codec's bitrate, per pixel of the region, in bits per second (300 kbit/s for a
/// 640x480 region, about 2 Mbit/s for a whole 1080p screen).
pub const BITS_PER_PIXEL_SECOND: u64 = 1;
/// Bounds of the bitrate given to the codec, in kbit/s.
pub const MIN_KBPS: u32 = 100;
/// See [`MIN_KBPS`].
pub const MAX_KBPS: u32 = 2_500;
/// Largest video packet the console accepts (a key frame of a whole 8K region at the highest
/// bitrate is far below it).
pub const MAX_VIDEO_PACKET: usize = 1 << 20;

/// One frame of the video region, in a frame update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct VideoPart {
    /// The region (even position and size); its pixels are replaced by the decoded frame.
    pub rect: Rect,
    /// A new video stream starts (its first packet is a key frame): the console starts a new
    /// decoder of this size. Otherwise `rect` must be the running stream's.
    pub start: bool,
    /// One VP8 frame.
    pub data: Vec<u8>,
}

/// The codec's bitrate for a region, in kbit/s.
pub fn kbps(rect: &Rect) -> u32 {
    let bits = u64::from(rect.w) * u64::from(rect.h) * BITS_PER_PIXEL_SECOND;
    ((bits / 1000).min(u64::from(MAX_KBPS)) as u32).max(MIN_KBPS)
}

/// What one frame does about video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Step {
    /// The region that plays after this frame, if any.
    pub region: Option<Rect>,
    /// Whether the region starts a new stream this frame (key frame; the whole region is encoded).
    pub start: bool,
    /// A rectangle whose pixels must be sent losslessly this frame whatever the diff says (a region
    /// that ended or was replaced).
    pub refresh: Option<Rect>,
}

/// Finds the video region from frame to frame (pure; see the module's documentation).
#[derive(Debug, Clone)]
pub struct Detector {
    width: u32,
    height: u32,
    cols: u32,
    heat: Vec<u8>,
    region: Option<Rect>,
    /// When a frame last had hot tiles.
    last_hot: Option<Instant>,
    /// Frames in a row whose hot tiles covered under a quarter of the region.
    shrinking: u8,
}

impl Detector {
    /// A detector for a `width` x `height` display.
    pub fn new(width: u32, height: u32) -> Self {
        let cols = width.div_ceil(TILE);
        let rows = height.div_ceil(TILE);
        Detector {
            width,
            height,
            cols,
            heat: vec![0; cols as usize * rows as usize],
            region: None,
            last_hot: None,
            shrinking: 0,
        }
    }

    /// The region that plays now.
    pub fn region(&self) -> Option<Rect> {
        self.region
    }

    /// One captured frame `cur` (B G R X, the detector's size) in which `changed` would be sent
    /// as pixels.
    pub fn frame(&mut self, cur: &[u8], changed: &[Rect], now: Instant) -> Step {
        let mut area = vec![0u32; self.heat.len()];
        for r in changed {
            for (t, a) in self.tiles_of(r) {
                area[t] += a;
            }
        }
        for (t, heat) in self.heat.iter_mut().enumerate() {
            let busy = area[t] > 0 && {
                let tile = tile_rect(t as u32, self.cols, self.width, self.height);
                colours(cur, self.width, &tile) >= MIN_COLOURS
            };
            *heat = if busy {
                heat.saturating_add(1).min(2 * HOT_FRAMES)
            } else {
                heat.saturating_sub(2)
            };
        }
        let candidate = self.candidate();
        if candidate.is_some() {
            self.last_hot = Some(now);
        }
        self.decide(candidate, now)
    }

    /// A capture that found nothing changed (the backend's damage was empty).
    pub fn still(&mut self, now: Instant) -> Step {
        if self.cooled(now) {
            self.heat.fill(0);
        }
        self.decide(None, now)
    }

    fn cooled(&self, now: Instant) -> bool {
        self.last_hot
            .is_none_or(|t| now.saturating_duration_since(t) >= COOL_AFTER)
    }

    fn decide(&mut self, candidate: Option<Rect>, now: Instant) -> Step {
        let step = match (self.region, candidate) {
            (None, None) => Step::default(),
            (None, Some(c)) => Step {
                region: Some(c),
                start: true,
                refresh: None,
            },
            (Some(r), None) if self.cooled(now) => Step {
                region: None,
                start: false,
                refresh: Some(r),
            },
            (Some(r), None) => Step {
                region: Some(r),
                ..Step::default()
            },
            (Some(r), Some(c)) if !contains(&r, &c) => {
                // The video grew or moved: one stream over both, no refresh needed.
                self.shrinking = 0;
                Step {
                    region: Some(even(r.union(&c), self.width, self.height)),
                    start: true,
                    refresh: None,
                }
            }
            (Some(r), Some(c)) => {
                let small = c.area() * 4 < r.area();
                self.shrinking = if small { self.shrinking + 1 } else { 0 };
                if self.shrinking >= HOT_FRAMES {
                    // The video now plays in a small part of the region: start again there and
                    // make the rest exact.
                    self.shrinking = 0;
                    Step {
                        region: Some(c),
                        start: true,
                        refresh: Some(r),
                    }
                } else {
                    Step {
                        region: Some(r),
                        ..Step::default()
                    }
                }
            }
        };
        self.region = step.region;
        step
    }

    /// The bounding box of the hot tiles, when there are enough of them.
    fn candidate(&self) -> Option<Rect> {
        let (mut n, mut x0, mut y0, mut x1, mut y1) = (0usize, u32::MAX, u32::MAX, 0, 0);
        for (t, &h) in self.heat.iter().enumerate() {
            if h >= HOT_FRAMES {
                let r = tile_rect(t as u32, self.cols, self.width, self.height);
                n += 1;
                x0 = x0.min(r.x);
                y0 = y0.min(r.y);
                x1 = x1.max(r.x + r.w);
                y1 = y1.max(r.y + r.h);
            }
        }
        (n >= MIN_VIDEO_TILES).then(|| {
            let r = Rect {
                x: x0,
                y: y0,
                w: x1 - x0,
                h: y1 - y0,
            };
            even(r, self.width, self.height)
        })
    }

    /// The tiles `r` touches, each with the area of `r` inside it.
    fn tiles_of(&self, r: &Rect) -> impl Iterator<Item = (usize, u32)> + '_ {
        let (tx0, ty0) = (r.x / TILE, r.y / TILE);
        let tx1 = (r.x + r.w).div_ceil(TILE).min(self.cols);
        let rows = self.heat.len() as u32 / self.cols.max(1);
        let ty1 = (r.y + r.h).div_ceil(TILE).min(rows);
        let r = *r;
        (ty0..ty1).flat_map(move |ty| {
            (tx0..tx1).filter_map(move |tx| {
                let t = tile_rect(ty * self.cols + tx, self.cols, self.width, self.height);
                intersection(&r, &t).map(|i| ((ty * self.cols + tx) as usize, i.w * i.h))
            })
        })
    }
}

fn tile_rect(t: u32, cols: u32, width: u32, height: u32) -> Rect {
    let (x, y) = ((t % cols) * TILE, (t / cols) * TILE);
    Rect {
        x,
        y,
        w: TILE.min(width - x),
        h: TILE.min(height - y),
    }
}

/// Distinct colours among every [`SAMPLE_STEP`]-th pixel of `r` in `cur`.
fn colours(cur: &[u8], width: u32, r: &Rect) -> usize {
    let stride = width as usize * BPP;
    let mut seen = Vec::with_capacity(((TILE / SAMPLE_STEP) * (TILE / SAMPLE_STEP)) as usize);
    for y in (r.y..r.y + r.h).step_by(SAMPLE_STEP as usize) {
        for x in (r.x..r.x + r.w).step_by(SAMPLE_STEP as usize) {
            let i = y as usize * stride + x as usize * BPP;
            if let Some(p) = cur.get(i..i + 3) {
                seen.push(u32::from_le_bytes([p[0], p[1], p[2], 0]));
            }
        }
    }
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// `r` grown to an even position and size (4:2:0 video), within the display.
fn even(r: Rect, width: u32, height: u32) -> Rect {
    let (x, y) = (r.x & !1, r.y & !1);
    let fit = |start: u32, end: u32, limit: u32| {
        let len = end.div_ceil(2) * 2 - start;
        if start + len <= limit {
            len
        } else {
            (limit - start) & !1
        }
    };
    Rect {
        x,
        y,
        w: fit(x, r.x + r.w, width).max(2),
        h: fit(y, r.y + r.h, height).max(2),
    }
}

fn contains(outer: &Rect, inner: &Rect) -> bool {
    inner.x >= outer.x
        && inner.y >= outer.y
        && inner.x + inner.w <= outer.x + outer.w
        && inner.y + inner.h <= outer.y + outer.h
}

/// The part of `a` inside `b`, if any.
pub fn intersection(a: &Rect, b: &Rect) -> Option<Rect> {
    let (x0, y0) = (a.x.max(b.x), a.y.max(b.y));
    let (x1, y1) = ((a.x + a.w).min(b.x + b.w), (a.y + a.h).min(b.y + b.h));
    (x0 < x1 && y0 < y1).then(|| Rect {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    })
}

/// `rects` with `hole` cut out (each rectangle becomes up to four), so nothing sent losslessly
/// lands on the region the video covers.
pub fn outside(rects: &[Rect], hole: &Rect) -> Vec<Rect> {
    let mut out = Vec::with_capacity(rects.len());
    for r in rects {
        let Some(i) = intersection(r, hole) else {
            out.push(*r);
            continue;
        };
        let (rx1, ry1, ix1, iy1) = (r.x + r.w, r.y + r.h, i.x + i.w, i.y + i.h);
        let pieces = [
            (r.x, r.y, r.w, i.y - r.y), // above
            (r.x, iy1, r.w, ry1 - iy1), // below
            (r.x, i.y, i.x - r.x, i.h), // left
            (ix1, i.y, rx1 - ix1, i.h), // right
        ];
        for (x, y, w, h) in pieces {
            if w > 0 && h > 0 {
                out.push(Rect { x, y, w, h });
            }
        }
    }
    out
}

/// Whether a copy stays clear of `region` (reads and writes only exact pixels).
pub fn clear_of(copy: &CopyRect, region: &Rect) -> bool {
    !motion::overlaps(&copy.src(), region) && !motion::overlaps(&copy.dst, region)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const W: u32 = 640;
    const H: u32 = 480;

    /// A frame whose `r` is noise seeded by `seed`, the rest two colours of "text".
    fn frame(r: Option<Rect>, seed: u32) -> Vec<u8> {
        let mut px = vec![0u8; (W * H) as usize * BPP];
        for y in 0..H {
            for x in 0..W {
                let i = (y * W + x) as usize * BPP;
                let inside =
                    r.is_some_and(|r| x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h);
                let v = if inside {
                    (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503) ^ seed.wrapping_mul(97))
                        .to_le_bytes()
                } else if (x + y + seed).is_multiple_of(7) {
                    [255, 255, 255, 0]
                } else {
                    [0, 0, 0, 0]
                };
                px[i..i + 3].copy_from_slice(&v[..3]);
            }
        }
        px
    }

    fn video_rect() -> Rect {
        Rect {
            x: 128,
            y: 64,
            w: 256,
            h: 192,
        }
    }

    #[test]
    fn colourful_changes_become_a_region_after_hot_frames_then_refresh_when_still() {
        let t0 = Instant::now();
        let mut d = Detector::new(W, H);
        let v = video_rect();
        for i in 0..u32::from(HOT_FRAMES) - 1 {
            let s = d.frame(
                &frame(Some(v), i),
                &[v],
                t0 + Duration::from_millis(33 * u64::from(i)),
            );
            assert_eq!(s, Step::default(), "frame {i}: not yet video");
        }
        let s = d.frame(&frame(Some(v), 9), &[v], t0 + Duration::from_millis(200));
        assert_eq!(
            s,
            Step {
                region: Some(v),
                start: true,
                refresh: None
            }
        );
        let s = d.frame(&frame(Some(v), 10), &[v], t0 + Duration::from_millis(233));
        assert_eq!(
            s,
            Step {
                region: Some(v),
                start: false,
                refresh: None
            }
        );
        // Still, but not for long enough: the region stays.
        assert_eq!(d.still(t0 + Duration::from_millis(400)).region, Some(v));
        let s = d.still(t0 + Duration::from_millis(233) + COOL_AFTER);
        assert_eq!(
            s,
            Step {
                region: None,
                start: false,
                refresh: Some(v)
            }
        );
        assert_eq!(d.still(t0 + Duration::from_secs(5)), Step::default());
    }

    #[test]
    fn text_that_changes_every_frame_stays_lossless() {
        let t0 = Instant::now();
        let mut d = Detector::new(W, H);
        let all = Rect {
            x: 0,
            y: 0,
            w: W,
            h: H,
        };
        for i in 0..30 {
            let s = d.frame(
                &frame(None, i),
                &[all],
                t0 + Duration::from_millis(33 * u64::from(i)),
            );
            assert_eq!(s.region, None, "frame {i}");
        }
    }

    #[test]
    fn a_small_busy_area_stays_lossless() {
        let t0 = Instant::now();
        let mut d = Detector::new(W, H);
        let spinner = Rect {
            x: 128,
            y: 128,
            w: 64,
            h: 128,
        };
        for i in 0..30 {
            let s = d.frame(
                &frame(Some(spinner), i),
                &[spinner],
                t0 + Duration::from_millis(33 * u64::from(i)),
            );
            assert_eq!(s.region, None);
        }
    }

    #[test]
    fn a_region_that_moves_grows_then_shrinks_with_a_refresh() {
        let t0 = Instant::now();
        let mut d = Detector::new(W, H);
        let a = Rect {
            x: 0,
            y: 0,
            w: 128,
            h: 128,
        };
        let b = Rect {
            x: 384,
            y: 256,
            w: 256,
            h: 192,
        };
        let mut t = t0;
        let mut last = Step::default();
        for i in 0..20 {
            t += Duration::from_millis(33);
            last = d.frame(&frame(Some(a), i), &[a], t);
        }
        assert_eq!(last.region, Some(a));
        let mut steps = Vec::new();
        for i in 0..40 {
            t += Duration::from_millis(33);
            steps.push(d.frame(&frame(Some(b), i), &[b], t));
        }
        let grown = steps.iter().find(|s| s.start).expect("a new stream");
        assert_eq!(grown.region, Some(a.union(&b)));
        assert_eq!(grown.refresh, None);
        let shrunk = steps
            .iter()
            .rev()
            .find(|s| s.start)
            .expect("a second stream");
        assert_eq!(shrunk.region, Some(b));
        assert_eq!(shrunk.refresh, Some(a.union(&b)));
        assert_eq!(d.region(), Some(b));
    }

    #[test]
    fn bitrate_scales_with_the_region_within_bounds() {
        assert_eq!(
            kbps(&Rect {
                x: 0,
                y: 0,
                w: 640,
                h: 480
            }),
            307
        );
        assert_eq!(
            kbps(&Rect {
                x: 0,
                y: 0,
                w: 16,
                h: 16
            }),
            MIN_KBPS
        );
        assert_eq!(
            kbps(&Rect {
                x: 0,
                y: 0,
                w: 7680,
                h: 4320
            }),
            MAX_KBPS
        );
    }

    #[test]
    fn even_stays_inside_the_display() {
        assert_eq!(
            even(
                Rect {
                    x: 1,
                    y: 3,
                    w: 4,
                    h: 4
                },
                9,
                9
            ),
            Rect {
                x: 0,
                y: 2,
                w: 6,
                h: 6
            }
        );
        assert_eq!(
            even(
                Rect {
                    x: 4,
                    y: 4,
                    w: 5,
                    h: 5
                },
                9,
                9
            ),
            Rect {
                x: 4,
                y: 4,
                w: 4,
                h: 4
            }
        );
    }

    fn small_rect() -> impl Strategy<Value = Rect> {
        (0u32..60, 0u32..60, 1u32..40, 1u32..40).prop_map(|(x, y, w, h)| Rect { x, y, w, h })
    }

    proptest! {
        /// `outside` covers exactly the pixels of the rectangles that are not in the hole, once each.
        #[test]
        fn outside_is_the_difference(rects in prop::collection::vec(small_rect(), 0..4), hole in small_rect()) {
            let inside = |r: &Rect, x: u32, y: u32| x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h;
            let cut = outside(&rects, &hole);
            for y in 0..100 {
                for x in 0..100 {
                    let want = rects.iter().filter(|r| inside(r, x, y)).count() * usize::from(!inside(&hole, x, y));
                    let got = cut.iter().filter(|r| inside(r, x, y)).count();
                    prop_assert_eq!(got, want, "pixel {},{}", x, y);
                }
            }
        }
    }
}
