//! Which displays a screen offers, from its monitors, and the pure rectangle arithmetic behind them.
//!
//! An X screen with one monitor (or none known) is one display, as before. An X screen with several
//! RandR monitors (`xrandr --setmonitor`, or one per output) offers each monitor, left to right, then
//! one display for the whole screen ([`ALL_MONITORS`]). A monitor that covers the whole screen among
//! others (Xvfb keeps its automatic "screen" monitor next to the ones set) is that same "all" display,
//! so it is not listed twice. Backends use these functions; they are tested here without an X server.

use tether_proto::screen::{ALL_MONITORS, DisplayInfo};

/// A monitor as the display server reports it, in screen pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    /// Its name (e.g. `DP-1`).
    pub name: String,
    /// Left edge on the screen.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Marked primary.
    pub primary: bool,
}

/// What a listed display captures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// One monitor: the `i`-th of the list given to [`screen_displays`].
    Monitor(usize),
    /// The whole screen.
    All,
}

/// The displays of one screen of `width`x`height` named `screen_name`, numbered from `first`, with
/// what each captures. Monitors are clipped to the screen; empty ones are left out.
pub fn screen_displays(
    first: u32,
    screen_name: &str,
    (width, height): (u32, u32),
    monitors: &[Monitor],
) -> Vec<(DisplayInfo, Region)> {
    let whole = |m: &Monitor| (m.x, m.y, m.width, m.height) == (0, 0, width, height);
    let mut shown: Vec<(usize, Monitor)> = monitors
        .iter()
        .enumerate()
        .filter_map(|(i, m)| clip(m, width, height).map(|c| (i, c)))
        .collect();
    if shown.len() > 1 {
        shown.retain(|(_, m)| !whole(m));
    }
    if shown.len() < 2 {
        let name = match shown.first() {
            Some((_, m)) if whole(m) => m.name.clone(),
            _ => screen_name.to_string(),
        };
        let info = DisplayInfo {
            index: first,
            name,
            x: 0,
            y: 0,
            width,
            height,
            primary: true,
        };
        return vec![(info, Region::All)];
    }
    shown.sort_by_key(|(_, m)| (m.x, m.y));
    let mut out: Vec<(DisplayInfo, Region)> = shown
        .into_iter()
        .enumerate()
        .map(|(n, (i, m))| {
            let info = DisplayInfo {
                index: first + n as u32,
                name: m.name,
                x: m.x,
                y: m.y,
                width: m.width,
                height: m.height,
                primary: m.primary,
            };
            (info, Region::Monitor(i))
        })
        .collect();
    let all = DisplayInfo {
        index: first + out.len() as u32,
        name: ALL_MONITORS.to_string(),
        x: 0,
        y: 0,
        width,
        height,
        primary: false,
    };
    out.push((all, Region::All));
    out
}

/// `m` cut to the screen, or `None` when nothing of it is on the screen.
fn clip(m: &Monitor, width: u32, height: u32) -> Option<Monitor> {
    let (w, h) = (i64::from(width), i64::from(height));
    let x0 = i64::from(m.x).clamp(0, w);
    let y0 = i64::from(m.y).clamp(0, h);
    let x1 = (i64::from(m.x) + i64::from(m.width)).clamp(0, w);
    let y1 = (i64::from(m.y) + i64::from(m.height)).clamp(0, h);
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    // All four lie within 0..=u32::MAX screen pixels, so the casts are exact.
    Some(Monitor {
        x: x0 as i32,
        y: y0 as i32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
        ..m.clone()
    })
}

/// A point given in `display` pixels, kept on that display: a click meant for one monitor never
/// lands on its neighbour, however far out the console's coordinates are.
pub fn clamp_point(display: &DisplayInfo, x: i32, y: i32) -> (i32, i32) {
    let max = |side: u32| i32::try_from(side.saturating_sub(1)).unwrap_or(i32::MAX);
    (
        x.clamp(0, max(display.width)),
        y.clamp(0, max(display.height)),
    )
}

/// A point on the screen as `display` pixels (may be outside the display).
pub fn to_display(display: &DisplayInfo, x: i32, y: i32) -> (i32, i32) {
    (x.saturating_sub(display.x), y.saturating_sub(display.y))
}

/// Copies the `width`x`height` B G R X picture `src`, whose top-left sits at (`x`, `y`) of the
/// `dst_width`-wide `dst`, into `dst`, cutting whatever falls outside.
pub fn blit(dst: &mut [u8], dst_width: u32, src: &[u8], (x, y): (i32, i32), width: u32) {
    const BPP: usize = tether_proto::screen::BPP;
    let (dw, sw) = (dst_width as usize, width as usize);
    if dw == 0 || sw == 0 {
        return;
    }
    let dst_height = dst.len() / (dw * BPP);
    for (row, line) in src.chunks_exact(sw * BPP).enumerate() {
        let dy = i64::from(y) + row as i64;
        if dy < 0 || dy >= dst_height as i64 {
            continue;
        }
        let x0 = i64::from(x).max(0);
        let x1 = (i64::from(x) + sw as i64).min(dw as i64);
        if x1 <= x0 {
            continue;
        }
        let skip = (x0 - i64::from(x)) as usize;
        let n = (x1 - x0) as usize;
        let d = (dy as usize * dw + x0 as usize) * BPP;
        dst[d..d + n * BPP].copy_from_slice(&line[skip * BPP..(skip + n) * BPP]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mon(name: &str, x: i32, y: i32, width: u32, height: u32) -> Monitor {
        Monitor {
            name: name.into(),
            x,
            y,
            width,
            height,
            primary: false,
        }
    }

    #[test]
    fn one_monitor_or_none_is_the_screen_as_before() {
        let d = screen_displays(0, "screen 0", (1920, 1080), &[]);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].1, Region::All);
        assert_eq!(
            (d[0].0.name.as_str(), d[0].0.width, d[0].0.height),
            ("screen 0", 1920, 1080)
        );
        let d = screen_displays(
            3,
            "screen 1",
            (1920, 1080),
            &[mon("screen", 0, 0, 1920, 1080)],
        );
        assert_eq!(
            (d.len(), d[0].0.index, d[0].0.name.as_str()),
            (1, 3, "screen")
        );
    }

    #[test]
    fn two_monitors_are_listed_left_to_right_then_all() {
        // Xvfb's automatic whole-screen monitor stays next to the two set with --setmonitor.
        let ms = [
            mon("RIGHT", 1280, 0, 1280, 1024),
            mon("screen", 0, 0, 2560, 1024),
            mon("LEFT", 0, 0, 1280, 1024),
        ];
        let d = screen_displays(0, "screen 0", (2560, 1024), &ms);
        let got: Vec<_> = d
            .iter()
            .map(|(i, r)| (i.index, i.name.as_str(), i.x, i.width, *r))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "LEFT", 0, 1280, Region::Monitor(2)),
                (1, "RIGHT", 1280, 1280, Region::Monitor(0)),
                (2, ALL_MONITORS, 0, 2560, Region::All),
            ]
        );
    }

    #[test]
    fn monitors_are_clipped_to_the_screen_and_empty_ones_dropped() {
        let ms = [
            mon("A", -100, 0, 600, 400),
            mon("B", 500, 0, 9000, 400),
            mon("gone", 4000, 0, 10, 10),
            mon("zero", 0, 0, 0, 10),
        ];
        let d = screen_displays(0, "s", (1000, 400), &ms);
        let rects: Vec<_> = d.iter().map(|(i, _)| (i.x, i.width)).collect();
        assert_eq!(rects, vec![(0, 500), (500, 500), (0, 1000)]);
    }

    #[test]
    fn points_stay_on_their_monitor() {
        let right = screen_displays(
            0,
            "s",
            (2560, 1024),
            &[mon("L", 0, 0, 1280, 1024), mon("R", 1280, 0, 1280, 1024)],
        )[1]
        .0
        .clone();
        assert_eq!(clamp_point(&right, 100, 200), (100, 200));
        assert_eq!(clamp_point(&right, -5, 5000), (0, 1023));
        assert_eq!(clamp_point(&right, i32::MAX, i32::MIN), (1279, 0));
        // Desktop position = monitor origin + point: (1380, 200) for (100, 200) on the right one.
        let (x, y) = clamp_point(&right, 100, 200);
        assert_eq!((right.x + x, right.y + y), (1380, 200));
        assert_eq!(to_display(&right, 1380, 200), (100, 200));
        assert_eq!(to_display(&right, 10, 10), (-1270, 10), "left of it");
    }

    #[test]
    fn blit_places_and_cuts() {
        // A 4x2 destination; a 2x2 source at (3, 1) keeps only its top-left pixel.
        let mut dst = vec![0u8; 4 * 2 * 4];
        let src: Vec<u8> = (1..=16).collect();
        blit(&mut dst, 4, &src, (3, 1), 2);
        assert_eq!(&dst[(4 + 3) * 4..(4 + 3) * 4 + 4], &[1, 2, 3, 4]);
        assert_eq!(dst.iter().filter(|b| **b != 0).count(), 4);
        let mut dst = vec![0u8; 4 * 2 * 4];
        blit(&mut dst, 4, &src, (-1, 0), 2);
        assert_eq!(
            &dst[..4],
            &[5, 6, 7, 8],
            "the right column of the first row"
        );
        assert_eq!(&dst[16..20], &[13, 14, 15, 16]);
        blit(&mut dst, 4, &src, (i32::MIN, i32::MAX), 2);
    }
}
