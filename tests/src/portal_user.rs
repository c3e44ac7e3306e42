//! A user at the GNOME test desktop ([`crate::desktop::Desktop::gnome_portal`]) answering the
//! portal's own dialogs, seen and driven through Mutter's APIs as a person would use them: look at
//! the screen, click the buttons. GNOME 43 centres its dialogs on the 1920x1080 monitor.

use std::time::{Duration, Instant};

use tether_agent::screen::{InputProvider, InputSink, MutterDesktop, ScreenProvider, ScreenSource};
use tether_proto::keys::Code;
use tether_proto::screen::{Action, InputEvent, KeyId, MouseButton};

use crate::WAIT;
use crate::desktop::Desktop;

/// The accent blue of a GNOME dialog's suggested button and switches (`#3584e4`), B G R X.
pub fn accent_blue(p: &[u8]) -> bool {
    let (b, g, r) = (p[0], p[1], p[2]);
    b > 200 && r < 120 && (100..180).contains(&g)
}

/// A user at the Mutter desktop.
pub struct ScreenUser {
    screen: Box<dyn ScreenSource>,
    input: Box<dyn InputSink>,
    deadline: Instant,
}

impl std::fmt::Debug for ScreenUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScreenUser").finish_non_exhaustive()
    }
}

impl ScreenUser {
    /// Opens Mutter's screen and input for the user (no dialog: Mutter's own APIs).
    pub fn new(mutter: &MutterDesktop) -> Self {
        ScreenUser {
            screen: ScreenProvider::open(mutter, 0).expect("Mutter's screen"),
            input: InputProvider::open(mutter).expect("Mutter's input"),
            deadline: Instant::now() + WAIT,
        }
    }

    /// A fresh frame (B G R X) and its width: moving the pointer makes Mutter paint.
    pub fn frame(&mut self) -> (usize, Vec<u8>) {
        for (x, y) in [(5, 5), (6, 6)] {
            self.input
                .inject(&InputEvent::MouseMove { x, y }, (0, 0))
                .expect("pointer");
            std::thread::sleep(Duration::from_millis(120));
        }
        let width = self.screen.info().width as usize;
        (width, self.screen.capture().expect("a frame").to_vec())
    }

    /// The accent-blue pixels of a fresh frame, as (x, y).
    pub fn blue(&mut self) -> Vec<(usize, usize)> {
        let (width, pixels) = self.frame();
        pixels
            .chunks_exact(4)
            .enumerate()
            .filter(|(_, p)| accent_blue(p))
            .map(|(i, _)| (i % width, i / width))
            .collect()
    }

    /// Waits until the pixel at `at` is what `want` says.
    pub fn until(&mut self, (x, y): (usize, usize), want: impl Fn(&[u8]) -> bool, what: &str) {
        loop {
            let (width, pixels) = self.frame();
            let i = (y * width + x) * 4;
            if want(&pixels[i..i + 4]) {
                return;
            }
            self.check_time(what);
        }
    }

    fn check_time(&self, what: &str) {
        assert!(Instant::now() < self.deadline, "{what} never showed");
    }

    /// A left click at `(x, y)`.
    pub fn click(&mut self, x: i32, y: i32) {
        self.input
            .inject(&InputEvent::MouseMove { x, y }, (0, 0))
            .expect("pointer");
        let press = InputEvent::Button {
            button: MouseButton::Left,
            action: Action::Click,
        };
        self.input.inject(&press, (0, 0)).expect("button");
    }

    /// A key pressed and released.
    pub fn key(&mut self, code: Code) {
        let event = InputEvent::Key {
            key: KeyId::from(code),
            action: Action::Click,
        };
        self.input.inject(&event, (0, 0)).expect("key");
    }
}

/// Answers the portal's "Screen Share" dialog on a thread: Share (choose the monitor, which
/// enables Share, then click it) or Escape. The dialog opens with "Remember this selection" ticked
/// (the only blue on the screen) and the monitor list just below it.
pub fn answer_portal_dialog(d: &Desktop, share: bool) -> std::thread::JoinHandle<()> {
    let mutter = MutterDesktop::new(d.bus.clone(), Some(d.pipewire()));
    std::thread::spawn(move || {
        let mut user = ScreenUser::new(&mutter);
        let tick = loop {
            let blue = user.blue();
            if blue.len() > 100 {
                break blue[blue.len() / 2];
            }
            user.check_time("the portal's dialog");
        };
        if !share {
            user.key(Code::Escape);
            return;
        }
        user.click(960, tick.1 as i32 + 54);
        loop {
            let button: Vec<_> = user
                .blue()
                .into_iter()
                .filter(|p| p.1 + 60 < tick.1)
                .collect();
            if button.len() > 1000 {
                let (x, y) = button[button.len() / 2];
                user.click(x as i32, y as i32);
                return;
            }
            user.check_time("the Share button");
        }
    })
}

/// Answers the portal's "Remote desktop" dialog on a thread: choose the monitor, switch on "Allow
/// remote interaction", Share (the monitor row at y 526, the switch at (1148, 612), Share at
/// (1172, 413)).
pub fn answer_remote_desktop_dialog(d: &Desktop) -> std::thread::JoinHandle<()> {
    let mutter = MutterDesktop::new(d.bus.clone(), Some(d.pipewire()));
    std::thread::spawn(move || {
        let mut user = ScreenUser::new(&mutter);
        // The dialog's body is near white where the desktop is dark blue.
        user.until(
            (960, 650),
            |p| p[..3].iter().all(|&c| c > 230),
            "the dialog",
        );
        user.click(960, 526);
        user.click(1148, 612);
        user.until((1135, 612), accent_blue, "the switch turned on");
        user.until((1138, 400), accent_blue, "Share enabled");
        user.click(1172, 413);
    })
}
