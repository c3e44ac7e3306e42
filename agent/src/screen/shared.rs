//! One capture per display, however many technicians view it.
//!
//! [`SharedScreen`] wraps any [`ScreenProvider`]. The first viewer of a display starts an owner
//! thread that holds the real [`ScreenSource`]; every viewer's source asks that thread for a frame.
//! A frame captured less than [`REUSE_WITHIN`] ago is handed out again (shared, not copied), so two
//! consoles watching at 30 frames per second cost about one capture per tick, not two. A viewer is
//! never handed the frame it already has, so one that asks again soon (woken by input) sees the
//! screen as it is now. Each viewer still diffs and encodes against what *it* last sent. The owner thread ends, and the display is
//! released, when the last viewer's source is dropped.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tether_proto::screen::DisplayInfo;

use super::{CaptureError, Pointer, ScreenProvider, ScreenSource};

/// A frame younger than this is reused for another viewer: under one frame interval (33 ms), so a
/// single viewer always gets a fresh capture on each of its own ticks.
pub const REUSE_WITHIN: Duration = Duration::from_millis(25);

/// A captured picture and the pointer position with it.
type Frame = Arc<(Vec<u8>, Option<Pointer>)>;

/// What a viewer asks the owner thread: the frame it already has, and where the answer goes.
/// What a viewer asks the owner thread.
enum Request {
    /// A frame newer than the one the viewer has (if the viewer has one).
    Frame(
        Option<Frame>,
        std_mpsc::SyncSender<Result<Frame, CaptureError>>,
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
    let mut last: Option<(Instant, Frame)> = None;
    while let Ok(request) = asks.recv() {
        let (had, reply) = match request {
            Request::Frame(had, reply) => (had, reply),
            Request::Unchanged(had, reply) => {
                let same = match (&last, &had) {
                    (Some((_, frame)), Some(h)) => Arc::ptr_eq(frame, h) && source.unchanged(),
                    _ => false,
                };
                let _ = reply.send(same.then(|| source.cursor()));
                continue;
            }
        };
        let answer = match &last {
            Some((at, frame))
                if at.elapsed() < reuse && !had.as_ref().is_some_and(|h| Arc::ptr_eq(h, frame)) =>
            {
                Ok(frame.clone())
            }
            _ => source
                .capture()
                .map(|pixels| pixels.to_vec())
                .map(|pixels| {
                    let frame: Frame = Arc::new((pixels, source.cursor()));
                    last = Some((Instant::now(), frame.clone()));
                    frame
                }),
        };
        let _ = reply.send(answer);
    }
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
        let stopped = || CaptureError::Capture("capture stopped".into());
        let (reply, answer) = std_mpsc::sync_channel(1);
        self.owner
            .ask
            .as_ref()
            .ok_or_else(stopped)?
            .send(Request::Frame(self.frame.take(), reply))
            .map_err(|_| stopped())?;
        let frame = answer.recv().map_err(|_| stopped())??;
        self.pointer = frame.1.clone();
        Ok(&self.frame.insert(frame).0)
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
}
