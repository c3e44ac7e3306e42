//! One capture per display, however many technicians view it.
//!
//! [`SharedScreen`] wraps any [`ScreenProvider`]. The first viewer of a display starts an owner
//! thread that holds the real [`ScreenSource`]; every viewer's source asks that thread for a frame.
//! A frame captured less than [`REUSE_WITHIN`] ago is handed out again (shared, not copied), so two
//! consoles watching at 30 frames per second cost about one capture per tick, not two. A viewer is
//! never handed the frame it already has, so one that asks again soon (woken by input) sees the
//! screen as it is now. Each viewer still diffs and encodes against what *it* last sent, and is told
//! the backend's damage since *its* last frame (the damage of every capture in between, kept for the
//! last [`DAMAGE_LOG`] captures). A frame no viewer holds any more is updated in place, only in
//! the damaged rectangles. The owner thread ends, and the display is released, when the last viewer's
//! source is dropped.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tether_proto::screen::{self, DisplayInfo, Rect};

use super::{Capture, CaptureError, Pointer, ScreenProvider, ScreenSource};

/// A frame younger than this is reused for another viewer: under one frame interval (33 ms), so a
/// single viewer always gets a fresh capture on each of its own ticks.
pub const REUSE_WITHIN: Duration = Duration::from_millis(25);

/// Captures whose damage is remembered, so a viewer a few captures behind still compares only what
/// changed (more than this behind: it compares everything).
pub const DAMAGE_LOG: usize = 8;
/// Most damage rectangles handed to a viewer; past this it compares everything.
const MAX_DAMAGE_RECTS: usize = 256;

/// A captured picture, the pointer with it, and its number: a frame no viewer holds is updated in
/// place, so its number, not its address, says which capture it is.
#[derive(Debug)]
struct Shot {
    pixels: Vec<u8>,
    pointer: Option<Pointer>,
    number: u64,
}

type Frame = Arc<Shot>;

/// A frame and where it may differ from the frame the viewer had (`None`: anywhere).
type Answer = (Frame, Option<Vec<Rect>>);

/// What a viewer asks the owner thread.
enum Request {
    /// A frame newer than the one the viewer has (if the viewer has one).
    Frame(
        Option<Frame>,
        std_mpsc::SyncSender<Result<Answer, CaptureError>>,
    ),
    /// Whether the viewer's frame is still the picture (the backend knows nothing changed), and
    /// then where the pointer is now (`None`: something changed, ask for a frame).
    Unchanged(Option<Frame>, std_mpsc::SyncSender<Option<Option<Pointer>>>),
}

type Ask = std_mpsc::SyncSender<Request>;

/// The owner thread of one display, reachable while any viewer holds it.
struct Owner {
    ask: Option<Ask>,
    info: DisplayInfo,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Closing the channel ends the thread after its current capture.
        self.ask.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A [`ScreenProvider`] whose displays are captured once for all viewers.
#[derive(Debug)]
pub struct SharedScreen {
    inner: Arc<dyn ScreenProvider>,
    owners: Mutex<HashMap<u32, Weak<Owner>>>,
    reuse: Duration,
}

impl SharedScreen {
    /// Shares `inner`'s captures between viewers, reusing frames younger than [`REUSE_WITHIN`].
    pub fn new(inner: Arc<dyn ScreenProvider>) -> Self {
        Self::with_reuse(inner, REUSE_WITHIN)
    }

    /// As [`SharedScreen::new`], reusing frames younger than `reuse`.
    pub fn with_reuse(inner: Arc<dyn ScreenProvider>, reuse: Duration) -> Self {
        SharedScreen {
            inner,
            owners: Mutex::new(HashMap::new()),
            reuse,
        }
    }

    fn owner(&self, index: u32) -> Result<Arc<Owner>, CaptureError> {
        // The lock is held while a new owner opens the display, so two first viewers never open it
        // twice. A poisoned lock only means a panic elsewhere mid-insert; the map is still usable.
        let mut owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(o) = owners.get(&index).and_then(Weak::upgrade) {
            return Ok(o);
        }
        let (ask, asks) = std_mpsc::sync_channel(4);
        let (opened_tx, opened) = std_mpsc::sync_channel(1);
        let (inner, reuse) = (self.inner.clone(), self.reuse);
        let thread = std::thread::Builder::new()
            .name("tether-capture-owner".into())
            .spawn(move || own(inner, index, reuse, asks, opened_tx))
            .map_err(|e| CaptureError::Capture(format!("cannot start capture: {e}")))?;
        let info = match opened.recv() {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(CaptureError::Capture("capture stopped".into()));
            }
        };
        let owner = Arc::new(Owner {
            ask: Some(ask),
            info,
            thread: Some(thread),
        });
        owners.insert(index, Arc::downgrade(&owner));
        Ok(owner)
    }
}

/// The owner thread: opens the display, then answers each ask with a fresh or a recent frame.
fn own(
    provider: Arc<dyn ScreenProvider>,
    index: u32,
    reuse: Duration,
    asks: std_mpsc::Receiver<Request>,
    opened: std_mpsc::SyncSender<Result<DisplayInfo, CaptureError>>,
) {
    let mut source = match provider.open(index) {
        Ok(s) => {
            let _ = opened.send(Ok(s.info()));
            s
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    let info = source.info();
    let mut last: Option<(Instant, Frame)> = None;
    // The damage of each recent capture against the one before it, by frame number.
    let mut log: VecDeque<(u64, Option<Vec<Rect>>)> = VecDeque::with_capacity(DAMAGE_LOG);
    let mut number = 0u64;
    while let Ok(request) = asks.recv() {
        let (had, reply) = match request {
            Request::Frame(had, reply) => (had, reply),
            Request::Unchanged(had, reply) => {
                let same = match (&last, &had) {
                    (Some((_, frame)), Some(h)) => frame.number == h.number && source.unchanged(),
                    _ => false,
                };
                let _ = reply.send(same.then(|| source.cursor()));
                continue;
            }
        };
        // Given back: the viewer's frame may now be the owner's alone, and be updated in place.
        let had = had.map(|h| h.number);
        let answer = match last.take() {
            Some((at, frame)) if at.elapsed() < reuse && had != Some(frame.number) => {
                let damage = damage_since(&log, had, frame.number);
                last = Some((at, frame.clone()));
                Ok((frame, damage))
            }
            old => {
                capture(&mut *source, &info, old.map(|(_, f)| f), number + 1).map(|(frame, d)| {
                    number += 1;
                    if log.len() == DAMAGE_LOG {
                        log.pop_front();
                    }
                    log.push_back((number, d));
                    last = Some((Instant::now(), frame.clone()));
                    let damage = damage_since(&log, had, number);
                    (frame, damage)
                })
            }
        };
        let _ = reply.send(answer);
    }
}

/// Captures a frame numbered `number`, reusing `old`'s buffer when no viewer holds it and the backend
/// says where the picture changed (only those rectangles are copied). Returns the frame and the
/// backend's damage against the previous capture.
fn capture(
    source: &mut dyn ScreenSource,
    info: &DisplayInfo,
    old: Option<Frame>,
    number: u64,
) -> Result<(Frame, Option<Vec<Rect>>), CaptureError> {
    let Capture { pixels, damage } = source.capture_damage()?;
    let reused = match (old, &damage) {
        (Some(mut frame), Some(d)) => Arc::get_mut(&mut frame)
            .map(|shot| {
                screen::copy_rects(&mut shot.pixels, pixels, info.width, info.height, d);
                shot.number = number;
            })
            .map(|()| frame),
        _ => None,
    };
    let mut frame = reused.unwrap_or_else(|| {
        Arc::new(Shot {
            pixels: pixels.to_vec(),
            pointer: None,
            number,
        })
    });
    let pointer = source.cursor();
    // Just made or reused above: no viewer holds it yet.
    if let Some(shot) = Arc::get_mut(&mut frame) {
        shot.pointer = pointer;
    }
    Ok((frame, damage))
}

/// Where frame `now` may differ from frame `had`: the union of the damage of every capture after
/// `had` up to `now`, when all of them are remembered and known; `None` otherwise.
fn damage_since(
    log: &VecDeque<(u64, Option<Vec<Rect>>)>,
    had: Option<u64>,
    now: u64,
) -> Option<Vec<Rect>> {
    let had = had?;
    let mut out = Vec::new();
    for n in had + 1..=now {
        let (_, d) = log.iter().find(|(m, _)| *m == n)?;
        out.extend_from_slice(d.as_deref()?);
        if out.len() > MAX_DAMAGE_RECTS {
            return None;
        }
    }
    Some(out)
}

impl ScreenProvider for SharedScreen {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        self.inner.displays()
    }

    fn control_displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        self.inner.control_displays()
    }

    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        let owner = self.owner(index)?;
        Ok(Box::new(Viewer {
            owner,
            frame: None,
            pointer: None,
        }))
    }
}

/// One viewer's source: asks the owner thread, keeps the frame it got.
struct Viewer {
    owner: Arc<Owner>,
    frame: Option<Frame>,
    /// The pointer as of the last frame or the last "unchanged" answer.
    pointer: Option<Pointer>,
}

impl ScreenSource for Viewer {
    fn info(&self) -> DisplayInfo {
        self.owner.info.clone()
    }

    fn capture(&mut self) -> Result<&[u8], CaptureError> {
        self.capture_damage().map(|c| c.pixels)
    }

    fn capture_damage(&mut self) -> Result<Capture<'_>, CaptureError> {
        let stopped = || CaptureError::Capture("capture stopped".into());
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.owner
            .ask
            .as_ref()
            .ok_or_else(stopped)?
            .send(Request::Frame(self.frame.take(), reply))
            .map_err(|_| stopped())?;
        let (frame, damage) = answer.recv().map_err(|_| stopped())??;
        self.pointer = frame.pointer.clone();
        Ok(Capture {
            pixels: &self.frame.insert(frame).pixels,
            damage,
        })
    }

    fn unchanged(&mut self) -> bool {
        let Some(ask) = &self.owner.ask else {
            return false;
        };
        let (reply, answer) = std_mpsc::sync_channel(1);
        if ask
            .send(Request::Unchanged(self.frame.clone(), reply))
            .is_err()
        {
            return false;
        }
        match answer.recv() {
            Ok(Some(pointer)) => {
                self.pointer = pointer;
                true
            }
            _ => false,
        }
    }

    fn cursor(&mut self) -> Option<Pointer> {
        self.pointer.clone()
    }
}

impl Debug for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Owner").field("info", &self.info).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fake display that counts opens and captures, and changes on every capture.
    #[derive(Debug, Default)]
    struct Counting {
        opens: AtomicUsize,
        captures: Arc<AtomicUsize>,
    }

    struct CountingSource {
        captures: Arc<AtomicUsize>,
        pixels: Vec<u8>,
    }

    fn info() -> DisplayInfo {
        DisplayInfo {
            index: 0,
            name: "fake".into(),
            width: 2,
            height: 1,
            x: 0,
            y: 0,
            primary: true,
        }
    }

    impl ScreenProvider for Counting {
        fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
            Ok(vec![info()])
        }
        fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
            if index != 0 {
                return Err(CaptureError::NoSuchDisplay(index));
            }
            self.opens.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(CountingSource {
                captures: self.captures.clone(),
                pixels: vec![0; 8],
            }))
        }
    }

    impl ScreenSource for CountingSource {
        fn info(&self) -> DisplayInfo {
            info()
        }
        fn capture(&mut self) -> Result<&[u8], CaptureError> {
            let n = self.captures.fetch_add(1, Ordering::SeqCst) + 1;
            self.pixels[0] = n as u8;
            Ok(&self.pixels)
        }
        fn cursor(&mut self) -> Option<Pointer> {
            Some(Pointer {
                x: 1,
                y: 0,
                shape: None,
            })
        }
    }

    #[test]
    fn two_viewers_share_one_capture_and_the_display_is_released_after_the_last() {
        let counting = Arc::new(Counting::default());
        // A long reuse window, so the second viewer's ask is "right after" however slow the machine.
        let shared = SharedScreen::with_reuse(counting.clone(), Duration::from_secs(3600));
        let mut a = shared.open(0).unwrap();
        let mut b = shared.open(0).unwrap();
        assert_eq!(counting.opens.load(Ordering::SeqCst), 1, "opened once");
        let first = a.capture().unwrap().to_vec();
        // The second viewer, right after, gets the same picture without another capture.
        assert_eq!(b.capture().unwrap(), &first[..]);
        assert_eq!(b.cursor().map(|p| (p.x, p.y)), Some((1, 0)));
        assert_eq!(counting.captures.load(Ordering::SeqCst), 1);
        // A viewer asking again is never handed the frame it already has.
        assert_ne!(a.capture().unwrap(), &first[..]);
        assert_eq!(counting.captures.load(Ordering::SeqCst), 2);
        drop((a, b));
        let mut c = shared.open(0).unwrap();
        assert_eq!(
            counting.opens.load(Ordering::SeqCst),
            2,
            "reopened after release"
        );
        assert_ne!(
            c.capture().unwrap(),
            &first[..],
            "a fresh owner captures afresh"
        );

        // With nothing to reuse, every ask captures.
        let fresh = SharedScreen::with_reuse(counting.clone(), Duration::ZERO);
        let mut d = fresh.open(0).unwrap();
        let before = counting.captures.load(Ordering::SeqCst);
        d.capture().unwrap();
        d.capture().unwrap();
        assert_eq!(counting.captures.load(Ordering::SeqCst), before + 2);
        assert!(matches!(
            shared.open(3),
            Err(CaptureError::NoSuchDisplay(3))
        ));
    }

    /// A fake display that paints the next pixel on every capture and reports it as the damage.
    struct Painting {
        pixels: Vec<u8>,
        n: usize,
    }

    impl ScreenSource for Painting {
        fn info(&self) -> DisplayInfo {
            DisplayInfo {
                width: 8,
                height: 1,
                ..info()
            }
        }
        fn capture(&mut self) -> Result<&[u8], CaptureError> {
            self.capture_damage().map(|c| c.pixels)
        }
        fn capture_damage(&mut self) -> Result<Capture<'_>, CaptureError> {
            let x = self.n % 8;
            self.n += 1;
            self.pixels[x * 4] = self.n as u8;
            Ok(Capture {
                pixels: &self.pixels,
                damage: Some(vec![Rect {
                    x: x as u32,
                    y: 0,
                    w: 1,
                    h: 1,
                }]),
            })
        }
    }

    #[derive(Debug)]
    struct PaintingProvider;

    impl ScreenProvider for PaintingProvider {
        fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
            Ok(vec![info()])
        }
        fn open(&self, _: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
            Ok(Box::new(Painting {
                pixels: vec![0; 32],
                n: 0,
            }))
        }
    }

    /// Each viewer is told the damage since *its* last frame (every capture in between), a frame
    /// updated in place never changes under a viewer that still holds it, and every picture handed
    /// out is the backend's.
    #[test]
    fn each_viewer_gets_the_damage_since_its_own_last_frame() {
        let shared = SharedScreen::with_reuse(Arc::new(PaintingProvider), Duration::ZERO);
        let (mut a, mut b) = (shared.open(0).unwrap(), shared.open(0).unwrap());
        let px = |x: u32| Rect {
            x,
            y: 0,
            w: 1,
            h: 1,
        };
        let shot = |c: Capture<'_>| (c.pixels.to_vec(), c.damage);
        let (first, d) = shot(a.capture_damage().unwrap());
        assert_eq!(d, None, "a first frame may differ anywhere");
        assert_eq!(&first[..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
        // `b` holds the newest frame while `a` captures twice: it is not updated in place under `b`.
        let held = b.capture_damage().unwrap();
        assert_eq!(held.damage, None);
        let (_, d) = shot(a.capture_damage().unwrap());
        assert_eq!(d, Some(vec![px(1), px(2)]), "b's capture in between counts");
        let (third, d) = shot(a.capture_damage().unwrap());
        assert_eq!(d, Some(vec![px(3)]));
        assert_eq!(
            &third[..16],
            &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]
        );
        assert_eq!(&held.pixels[..12], &[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        // `b`, three captures behind, gets the union of their damage.
        let (pic, d) = shot(b.capture_damage().unwrap());
        assert_eq!(d, Some(vec![px(2), px(3), px(4)]));
        assert_eq!(&pic[16..20], &[5, 0, 0, 0]);
        // A viewer more than DAMAGE_LOG captures behind compares everything.
        for _ in 0..DAMAGE_LOG {
            a.capture_damage().unwrap();
        }
        let (_, d) = shot(b.capture_damage().unwrap());
        assert_eq!(d, None);
    }
}
