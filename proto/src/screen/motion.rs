//! Motion as motion: scrolled regions and moved windows sent as copies of pixels the console already
//! has (VNC's CopyRect, RDP's ScrBlt), not as new pixels.
//!
//! # Flow
//! ```text
//! agent: prev, cur ── dirty_rects ──> dirty tiles
//!        find_copies(prev, cur, dirty) ──> [CopyRect]       (bounded: anchors, votes, tile checks)
//!        apply_copies(prev, copies); dirty_rects(prev, cur) ──> the pixels still to send
//!        FrameUpdate { copies, rects, data }  (copies first, on the frame's first part)
//! console: Framebuffer::apply checks every copy ([`check_copies`]), then copies, then pixels
//! ```
//! Detection, bounded in CPU: inside the dirty tiles, *anchors* are pixels where the colour changes
//! and a hash of the pair picks one in [`ANCHOR_EVERY`]; an anchor is keyed by the
//! [`ANCHOR_LEN`] pixels that follow it, so the same content gives the same anchors wherever it moved.
//! Anchors of the previous frame (every row of its dirty tiles) are indexed, those of the current frame
//! (every [`ROW_STEP`]th row) vote for a motion vector `(dx, dy)`; keys seen twice in the previous
//! frame (repeated glyphs) do not vote. The [`MAX_VECTORS`] strongest vectors are then checked tile by
//! tile, exactly: a dirty tile whose pixels equal the previous frame's at the tile minus the vector
//! becomes (part of) a copy. Only exact matches are sent, so the picture stays lossless.
//!
//! All copies of one part read the framebuffer as it was before the part, and their destinations
//! must not overlap (so their total area is at most the display's).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{BPP, Rect, ScreenError, TILE, check_rect};

/// Most copies in one frame part; more is a misbehaving agent (the encoder sends at most
/// [`MAX_VECTORS`] vectors' worth of merged tile runs, far fewer).
pub const MAX_COPIES: usize = 512;
/// Pixels following an anchor that make its key.
pub const ANCHOR_LEN: usize = 16;
/// One colour change in this many (by hash) is an anchor.
pub const ANCHOR_EVERY: u32 = 8;
/// Rows of the current frame sampled for votes.
pub const ROW_STEP: usize = 4;
/// Motion vectors checked per frame.
pub const MAX_VECTORS: usize = 4;
/// Votes a vector needs before its tiles are checked.
pub const MIN_VOTES: u32 = 4;
/// Dirty tiles below which no motion is looked for (a typed character is one or two tiles).
pub const MIN_DIRTY_TILES: usize = 6;
/// Most anchors indexed from the previous frame, so a full-screen change stays bounded in memory.
pub const MAX_ANCHORS: usize = 1 << 17;

/// Copy the `dst`-sized rectangle at (`src_x`, `src_y`) of the framebuffer to `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct CopyRect {
    /// Left of the source.
    pub src_x: u32,
    /// Top of the source.
    pub src_y: u32,
    /// Where it goes (and its size).
    pub dst: Rect,
}

impl CopyRect {
    /// The source rectangle.
    pub fn src(&self) -> Rect {
        Rect {
            x: self.src_x,
            y: self.src_y,
            ..self.dst
        }
    }
}

/// Whether two rectangles share a pixel (in `u64`, so unchecked sizes cannot overflow).
pub(super) fn overlaps(a: &Rect, b: &Rect) -> bool {
    let (ax, ay, bx, by) = (
        u64::from(a.x),
        u64::from(a.y),
        u64::from(b.x),
        u64::from(b.y),
    );
    ax < bx + u64::from(b.w)
        && bx < ax + u64::from(a.w)
        && ay < by + u64::from(b.h)
        && by < ay + u64::from(a.h)
}

/// Checks copies from a (possibly hostile) agent against a `w`x`h` display: at most [`MAX_COPIES`],
/// sources and destinations inside, destinations pairwise disjoint.
pub fn check_copies(copies: &[CopyRect], w: u32, h: u32) -> Result<(), ScreenError> {
    if copies.len() > MAX_COPIES {
        return Err(ScreenError::TooManyCopies(copies.len()));
    }
    for c in copies {
        check_rect(&c.dst, w, h)?;
        check_rect(&c.src(), w, h)?;
    }
    // Quadratic, but over at most MAX_COPIES entries (≈ 130 k comparisons at worst).
    for (i, a) in copies.iter().enumerate() {
        if let Some(b) = copies[i + 1..].iter().find(|b| overlaps(&a.dst, &b.dst)) {
            return Err(ScreenError::Overlap(a.dst, b.dst));
        }
    }
    Ok(())
}

/// Applies checked copies to `pixels` (`w`x`h`, B G R X): every source is read before any
/// destination is written.
pub fn apply_copies(
    pixels: &mut [u8],
    w: u32,
    h: u32,
    copies: &[CopyRect],
) -> Result<(), ScreenError> {
    check_copies(copies, w, h)?;
    let expected = w as usize * h as usize * BPP;
    if pixels.len() != expected {
        return Err(ScreenError::BufferSize {
            got: pixels.len(),
            expected,
        });
    }
    let stride = w as usize * BPP;
    let mut saved = Vec::new();
    for c in copies {
        let row = c.dst.w as usize * BPP;
        for y in c.src_y..c.src_y + c.dst.h {
            let s = y as usize * stride + c.src_x as usize * BPP;
            saved.extend_from_slice(&pixels[s..s + row]);
        }
    }
    let mut off = 0;
    for c in copies {
        let row = c.dst.w as usize * BPP;
        for y in c.dst.y..c.dst.y + c.dst.h {
            let s = y as usize * stride + c.dst.x as usize * BPP;
            pixels[s..s + row].copy_from_slice(&saved[off..off + row]);
            off += row;
        }
    }
    Ok(())
}

/// A pixel without its unused byte.
fn px(p: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([p[i], p[i + 1], p[i + 2], 0])
}

fn mix(mut h: u64) -> u64 {
    // splitmix64's finaliser: cheap, and spreads the bits well enough for bucketing.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Multiplier of the rolling hash over [`ANCHOR_LEN`] pixels.
const ROLL: u64 = 0x0000_0100_0000_01b3;

/// Calls `f(x, key)` for each anchor of row `y` between columns `x0..x1`. The key is a rolling hash
/// of the [`ANCHOR_LEN`] pixels from `x` and the pixel left of it, so each pixel costs O(1) however
/// many colour changes the row has; which changes are anchors is decided by the key, so two-colour
/// text (every change the same pair of colours) still has a sparse, content-defined set.
fn anchors(p: &[u8], stride: usize, y: u32, x0: u32, x1: u32, mut f: impl FnMut(u32, u64)) {
    let len = ANCHOR_LEN as u32;
    if x1 < x0 + len + 1 {
        return;
    }
    let base = y as usize * stride;
    let at = |x: u32| u64::from(px(p, base + x as usize * BPP)) + 1;
    let top = (0..len).fold(1u64, |a, _| a.wrapping_mul(ROLL));
    let mut h = (x0 + 1..x0 + 1 + len).fold(0u64, |h, x| h.wrapping_mul(ROLL).wrapping_add(at(x)));
    let mut left = at(x0);
    for x in x0 + 1..=x1 - len {
        // Here `h` covers the pixels x..x + len.
        let here = at(x);
        if here != left {
            let k = mix(h ^ left.rotate_left(40));
            if (k as u32).is_multiple_of(ANCHOR_EVERY) {
                f(x, k);
            }
        }
        if x + len < x1 {
            h = h
                .wrapping_mul(ROLL)
                .wrapping_add(at(x + len))
                .wrapping_sub(here.wrapping_mul(top));
        }
        left = here;
    }
}

/// Where an anchor key was seen in the previous frame (`None`: more than once).
type Index = HashMap<u64, Option<(u32, u32)>>;

/// The copies that turn `prev` into `cur` on the `dirty` tiles (from [`super::dirty_rects`]) as far
/// as exact tile matches go; empty when nothing moved. Both frames are `w`x`h` B G R X.
pub fn find_copies(prev: &[u8], cur: &[u8], w: u32, h: u32, dirty: &[Rect]) -> Vec<CopyRect> {
    let expected = w as usize * h as usize * BPP;
    if prev.len() != expected || cur.len() != expected {
        return Vec::new();
    }
    let tiles: usize = dirty
        .iter()
        .map(|r| (r.w.div_ceil(TILE) * r.h.div_ceil(TILE)) as usize)
        .sum();
    if tiles < MIN_DIRTY_TILES {
        return Vec::new();
    }
    let stride = w as usize * BPP;
    let mut index: Index = HashMap::new();
    'rows: for r in dirty {
        for y in r.y..r.y + r.h {
            if index.len() >= MAX_ANCHORS {
                break 'rows;
            }
            anchors(prev, stride, y, r.x, r.x + r.w, |x, k| {
                index
                    .entry(k)
                    .and_modify(|e| *e = None)
                    .or_insert(Some((x, y)));
            });
        }
    }
    let mut votes: HashMap<(i64, i64), u32> = HashMap::new();
    for r in dirty {
        for y in (r.y..r.y + r.h).step_by(ROW_STEP) {
            anchors(cur, stride, y, r.x, r.x + r.w, |x, k| {
                if let Some(Some((px, py))) = index.get(&k) {
                    let v = (i64::from(x) - i64::from(*px), i64::from(y) - i64::from(*py));
                    if v != (0, 0) {
                        *votes.entry(v).or_default() += 1;
                    }
                }
            });
        }
    }
    let mut ranked: Vec<((i64, i64), u32)> =
        votes.into_iter().filter(|(_, n)| *n >= MIN_VOTES).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(MAX_VECTORS);
    if ranked.is_empty() {
        return Vec::new();
    }
    // Each dirty tile, checked against each vector in turn; the first exact match wins.
    let mut matched: Vec<(Rect, (i64, i64))> = Vec::new();
    for r in dirty {
        for ty in (r.y..r.y + r.h).step_by(TILE as usize) {
            for tx in (r.x..r.x + r.w).step_by(TILE as usize) {
                let t = Rect {
                    x: tx,
                    y: ty,
                    w: TILE.min(r.x + r.w - tx),
                    h: TILE.min(r.y + r.h - ty),
                };
                if let Some((v, _)) = ranked
                    .iter()
                    .find(|(v, _)| tile_moved(prev, cur, stride, w, h, &t, *v))
                {
                    matched.push((t, *v));
                }
            }
        }
    }
    merge(matched)
}

/// Whether tile `t` of `cur` equals `prev` at `t - v` (inside the display).
fn tile_moved(
    prev: &[u8],
    cur: &[u8],
    stride: usize,
    w: u32,
    h: u32,
    t: &Rect,
    v: (i64, i64),
) -> bool {
    let (sx, sy) = (i64::from(t.x) - v.0, i64::from(t.y) - v.1);
    if sx < 0 || sy < 0 || sx + i64::from(t.w) > i64::from(w) || sy + i64::from(t.h) > i64::from(h)
    {
        return false;
    }
    let row = t.w as usize * BPP;
    (0..t.h as usize).all(|dy| {
        let c = (t.y as usize + dy) * stride + t.x as usize * BPP;
        let p = (sy as usize + dy) * stride + sx as usize * BPP;
        cur[c..c + row] == prev[p..p + row]
    })
}

/// Merges matched tiles (in row-major order per dirty rectangle) into copies: horizontal runs of one
/// vector, then runs with the same columns and vector stacked vertically.
fn merge(matched: Vec<(Rect, (i64, i64))>) -> Vec<CopyRect> {
    let mut runs: Vec<(Rect, (i64, i64))> = Vec::new();
    for (t, v) in matched {
        match runs.last_mut() {
            Some((r, rv)) if *rv == v && r.y == t.y && r.h == t.h && r.x + r.w == t.x => r.w += t.w,
            _ => runs.push((t, v)),
        }
    }
    let mut stacked: Vec<(Rect, (i64, i64))> = Vec::new();
    for (t, v) in runs {
        match stacked
            .iter_mut()
            .find(|(r, rv)| *rv == v && r.x == t.x && r.w == t.w && r.y + r.h == t.y)
        {
            Some((r, _)) => r.h += t.h,
            None => stacked.push((t, v)),
        }
    }
    stacked
        .into_iter()
        .take(MAX_COPIES)
        .map(|(dst, v)| CopyRect {
            // tile_moved checked the source lies inside the display, so these do not wrap.
            src_x: (i64::from(dst.x) - v.0) as u32,
            src_y: (i64::from(dst.y) - v.1) as u32,
            dst,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::dirty_rects;
    use super::*;

    /// A desktop-like picture: a solid background and a "window" of pseudo-text at (x0, y0).
    fn desktop(w: u32, h: u32, x0: u32, y0: u32, ww: u32, wh: u32, scroll: u32) -> Vec<u8> {
        let mut f = vec![0u8; w as usize * h as usize * BPP];
        for p in f.chunks_exact_mut(BPP) {
            p.copy_from_slice(&[0x88, 0x5a, 0x2e, 0]);
        }
        for y in 0..wh {
            for x in 0..ww {
                let (gx, gy) = (x0 + x, y0 + y);
                if gx >= w || gy >= h {
                    continue;
                }
                let i = (gy as usize * w as usize + gx as usize) * BPP;
                // Text-like: 6x13 cells, each one of 40 glyphs (by line and column), a glyph's
                // rows taken from its bits; the text moves up with `scroll`.
                let (line, row) = ((y + scroll) / 13, (y + scroll) % 13);
                let glyph = mix(u64::from(line) * 1000 + u64::from(x / 6)) % 40;
                let on = x % 6 != 5 && (mix(glyph * 16 + u64::from(row)) >> (x % 6)) & 1 == 1;
                let border = x < 2 || y < 2 || x >= ww - 2 || y >= wh - 2;
                let c = if border || on {
                    [0, 0, 0, 0]
                } else {
                    [0xff, 0xff, 0xff, 0]
                };
                f[i..i + BPP].copy_from_slice(&c);
            }
        }
        f
    }

    fn round_trip(prev: &[u8], cur: &[u8], w: u32, h: u32) -> (Vec<CopyRect>, usize, usize) {
        let dirty = dirty_rects(Some(prev), cur, w, h).unwrap();
        let copies = find_copies(prev, cur, w, h, &dirty);
        let mut moved = prev.to_vec();
        apply_copies(&mut moved, w, h, &copies).unwrap();
        let left = dirty_rects(Some(&moved), cur, w, h).unwrap();
        let area = |rs: &[Rect]| rs.iter().map(|r| (r.w * r.h) as usize).sum::<usize>();
        (copies, area(&dirty), area(&left))
    }

    #[test]
    fn a_moved_window_becomes_copies() {
        let (w, h) = (1280, 800);
        let a = desktop(w, h, 100, 90, 500, 400, 0);
        let b = desktop(w, h, 137, 111, 500, 400, 0);
        let (copies, before, after) = round_trip(&a, &b, w, h);
        assert!(!copies.is_empty());
        assert!(
            copies
                .iter()
                .all(|c| (c.dst.x - c.src_x, c.dst.y - c.src_y) == (37, 21))
        );
        // Most of the window moved as copies; what is left is its border tiles and what it uncovered.
        assert!(after * 2 < before, "{after} of {before} pixels left");
    }

    #[test]
    fn scrolled_text_becomes_copies() {
        let (w, h) = (1024, 768);
        let a = desktop(w, h, 64, 64, 600, 520, 0);
        let b = desktop(w, h, 64, 64, 600, 520, 26);
        let (copies, before, after) = round_trip(&a, &b, w, h);
        assert!(
            copies
                .iter()
                .all(|c| c.src_y == c.dst.y + 26 && c.src_x == c.dst.x)
        );
        // Left: the tiles holding the window's top edge and the new lines at the bottom.
        assert!(after * 2 < before, "{after} of {before} pixels left");
    }

    #[test]
    fn unrelated_changes_give_no_copies() {
        let (w, h) = (640, 480);
        let a = desktop(w, h, 10, 10, 300, 300, 0);
        let mut b = a.clone();
        for (i, p) in b.iter_mut().enumerate() {
            *p = p.wrapping_add((mix(i as u64) & 0xff) as u8);
        }
        let dirty = dirty_rects(Some(&a), &b, w, h).unwrap();
        assert!(find_copies(&a, &b, w, h, &dirty).is_empty());
    }

    #[test]
    fn copies_read_the_frame_before_any_write() {
        // A 1x3 column shifted down by one: with snapshot semantics the result is a, a, b.
        let (w, h) = (1, 3);
        let mut p: Vec<u8> = [1u8, 2, 3].iter().flat_map(|v| [*v, 0, 0, 0]).collect();
        let down = CopyRect {
            src_x: 0,
            src_y: 0,
            dst: Rect {
                x: 0,
                y: 1,
                w: 1,
                h: 2,
            },
        };
        apply_copies(&mut p, w, h, &[down]).unwrap();
        assert_eq!(p.chunks(4).map(|c| c[0]).collect::<Vec<_>>(), [1, 1, 2]);
    }

    #[test]
    fn hostile_copies_are_refused() {
        let r = |x, y, w, h| Rect { x, y, w, h };
        let outside = CopyRect {
            src_x: 8,
            src_y: 0,
            dst: r(0, 0, 4, 4),
        };
        assert!(matches!(
            check_copies(&[outside], 10, 10),
            Err(ScreenError::OutOfBounds(_))
        ));
        let wraps = CopyRect {
            src_x: u32::MAX,
            src_y: 0,
            dst: r(0, 0, 2, 2),
        };
        assert!(check_copies(&[wraps], 10, 10).is_err());
        let a = CopyRect {
            src_x: 0,
            src_y: 0,
            dst: r(2, 2, 4, 4),
        };
        let b = CopyRect {
            src_x: 5,
            src_y: 5,
            dst: r(5, 5, 3, 3),
        };
        assert_eq!(
            check_copies(&[a, b], 10, 10),
            Err(ScreenError::Overlap(a.dst, b.dst))
        );
        let many = vec![a; MAX_COPIES + 1];
        assert_eq!(
            check_copies(&many, 10, 10),
            Err(ScreenError::TooManyCopies(MAX_COPIES + 1))
        );
        let mut p = vec![7u8; 10 * 10 * BPP];
        assert!(apply_copies(&mut p, 10, 10, &[outside]).is_err());
        assert_eq!(p, vec![7u8; 10 * 10 * BPP]);
    }
}
