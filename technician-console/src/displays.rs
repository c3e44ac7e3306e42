//! Switching the remote display during a session, and where the display picker sits.
//!
//! [`ScreenStreams`] owns the view and control streams of the display being shown. [`ScreenStreams::open`]
//! closes them and opens new ones on another display of the same session (no reconnect, no new
//! consent): the agent ends the old capture when its view stream closes. The window's input queue
//! stays the same across switches; a forwarding task hands each event to the current control stream.
//!
//! The picker ([`crate::viewer::ScreenPane::bar`]) is a row of buttons at fixed offsets from an origin
//! the window chooses, so the UI tests click there: "Fit"/"1:1" first, then one button per display.

use std::sync::{Arc, Mutex};

use tether_proto::screen::InputEvent;
use tether_proto::{Scope, ScopeSet};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::error::ConsoleError;
use crate::session::Session;
use crate::viewer::{self, Shared};

pub use crate::picker::{MAX_NAME_SHOWN, describe, display_button, fit_button, label};

/// Depth of the queue to one control stream.
pub const CONTROL_QUEUE: usize = 64;

/// Closes the way from the window's input queue to the remote: once the user took back control,
/// nothing more is forwarded, on this display or any other the technician switches to.
#[derive(Debug, Clone)]
pub struct InputGate {
    current: Arc<Mutex<Option<mpsc::Sender<InputEvent>>>>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl InputGate {
    /// Closes the gate; `true` if it was open.
    pub fn close(&self) -> bool {
        if let Ok(mut c) = self.current.lock() {
            *c = None;
        }
        !self.closed.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Opens the gate again: the user allowed `control` again (asked for mid-session).
    fn reopen(&self) {
        self.closed
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// The grant is now `granted`: without `control` the gate closes and the screen says so. Asks
    /// for a repaint either way, since the window shows the grant (there is no repaint timer).
    pub fn follow(&self, granted: ScopeSet, screen: &Shared) {
        let lost = !granted.contains(Scope::Control) && self.close();
        if let Ok(mut s) = screen.lock() {
            if lost {
                s.note = Some(CONTROL_TAKEN_BACK.into());
            }
            s.repaint();
        }
    }
}

/// What the screen says once the user pressed "Stop control".
pub const CONTROL_TAKEN_BACK: &str =
    "The user took back control: your mouse and keyboard no longer reach their computer.";

/// The view (and, with `control`, input) streams of the display being shown.
#[derive(Debug)]
pub struct ScreenStreams {
    state: Shared,
    tasks: JoinSet<()>,
    forward: JoinSet<()>,
    /// Also holds the current control stream's queue.
    gate: InputGate,
}

impl ScreenStreams {
    /// Streams into `state`; `input` (when given) is the window's queue of events for the remote.
    pub fn new(state: Shared, input: Option<mpsc::Receiver<InputEvent>>) -> Self {
        let current: Arc<Mutex<Option<mpsc::Sender<InputEvent>>>> = Arc::new(Mutex::new(None));
        let mut forward = JoinSet::new();
        if let Some(mut input) = input {
            let to = current.clone();
            forward.spawn(async move {
                while let Some(e) = input.recv().await {
                    // Cloned out so that the lock is never held across the send.
                    let tx = to.lock().ok().and_then(|c| c.clone());
                    if let Some(tx) = tx {
                        let _ = tx.send(e).await;
                    }
                }
            });
        }
        let gate = InputGate {
            current,
            closed: Default::default(),
        };
        ScreenStreams {
            state,
            tasks: JoinSet::new(),
            forward,
            gate,
        }
    }

    /// The gate that stops input for good (the user took back control).
    pub fn input_gate(&self) -> InputGate {
        self.gate.clone()
    }

    /// Closes the current streams, if any, and shows display `display` instead: its view, and its
    /// control when `control` is granted. The list of displays is fetched again each time.
    pub async fn open(&mut self, session: &mut Session, display: u32) -> Result<(), ConsoleError> {
        self.stop().await;
        // Asked again on every switch: a monitor plugged in or removed shows in the picker.
        if let Ok(list) = session.displays().await
            && let Ok(mut s) = self.state.lock()
        {
            s.displays = list;
        }
        if let Ok(mut s) = self.state.lock() {
            s.stopped = None;
            s.note = None;
            s.cursor = None;
            s.cursor_shape = None;
        }
        let view = match session.view(display).await {
            Ok(v) => v,
            Err(e) => {
                if let Ok(mut s) = self.state.lock() {
                    s.stopped = Some(e.to_string());
                    s.repaint();
                }
                return Err(e);
            }
        };
        if let Ok(mut s) = self.state.lock() {
            s.display = Some(view.display.clone());
        }
        self.tasks
            .spawn(viewer::pump_view(view, session.link(), self.state.clone()));
        if session.granted.contains(Scope::Control) && !self.gate.is_closed() {
            self.open_control(session, display).await;
        }
        Ok(())
    }

    /// Opens a control stream on `display`; a failure shows in the screen's note.
    async fn open_control(&mut self, session: &mut Session, display: u32) {
        match session.control(display).await {
            Ok(control) => {
                let (tx, rx) = mpsc::channel(CONTROL_QUEUE);
                if let Ok(mut c) = self.gate.current.lock() {
                    *c = Some(tx);
                }
                if let Ok(mut s) = self.state.lock() {
                    s.note = None;
                }
                self.tasks
                    .spawn(viewer::pump_input(control, rx, self.state.clone()));
            }
            Err(e) => {
                if let Ok(mut s) = self.state.lock() {
                    s.note = Some(e.to_string());
                    s.repaint();
                }
            }
        }
    }

    /// `control` was granted (again) during the session: opens the gate and a control stream on
    /// the display being shown, unless one runs already.
    pub async fn start_control(&mut self, session: &mut Session) {
        let shown = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.display.as_ref().map(|d| d.index));
        let running = self.gate.current.lock().is_ok_and(|c| c.is_some());
        let Some(display) = shown else {
            return;
        };
        if !session.granted.contains(Scope::Control) || running {
            return;
        }
        self.gate.reopen();
        self.open_control(session, display).await;
    }

    /// Closes the current display's streams (the agent stops capturing it).
    pub async fn stop(&mut self) {
        if let Ok(mut c) = self.gate.current.lock() {
            *c = None;
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Closes everything, the input forwarding too.
    pub async fn shutdown(&mut self) {
        self.stop().await;
        self.forward.abort_all();
        while self.forward.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::screen::{ALL_MONITORS, DisplayInfo};

    fn display(index: u32, name: &str) -> DisplayInfo {
        DisplayInfo {
            index,
            name: name.into(),
            x: 1280,
            y: 0,
            width: 1280,
            height: 1024,
            primary: false,
        }
    }

    #[test]
    fn labels_count_from_one_and_hostile_names_are_cut_and_made_safe() {
        assert_eq!(label(&display(1, "HDMI-1")), "2: HDMI-1");
        assert_eq!(label(&display(2, ALL_MONITORS)), "All");
        assert_eq!(label(&display(0, "")), "1");
        let hostile = label(&display(0, "\u{202e}evil\nname that goes on and on"));
        assert!(hostile.chars().count() <= 13, "{hostile}");
        assert!(
            !hostile.contains('\u{202e}') && !hostile.contains('\n'),
            "{hostile}"
        );
        assert_eq!(
            describe(&display(0, &"x".repeat(5000))).len(),
            "display 0  1280x1024 at (1280, 0)".len() + MAX_NAME_SHOWN
        );
        assert_eq!(
            describe(&display(1, "RIGHT")),
            "display 1 RIGHT 1280x1024 at (1280, 0)"
        );
    }

    #[test]
    fn picker_buttons_sit_in_a_row_without_overlapping() {
        let o = (100.0, 20.0);
        let fit = fit_button(o);
        let mut right = fit[0] + fit[2];
        for i in 0..4 {
            let b = display_button(o, i);
            assert!(b[0] > right, "button {i} overlaps the one before");
            assert_eq!(b[1], o.1);
            right = b[0] + b[2];
        }
    }
}
