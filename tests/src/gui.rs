//! Driving the real windows (`tether-agent window`, `tether-console window`) as a person would: each
//! on its own Xvfb, clicked and typed into with xdotool at the windows' fixed layout positions, and
//! observed through the lines each window prints on standard output.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tether_net::Trust;

use crate::TestRelay;
use crate::procs::{Kill, bin};

/// Our own X server on a display number it picks itself (`-displayfd`), so parallel tests never
/// collide. Killed on drop.
#[derive(Debug)]
pub struct Display {
    _server: Kill,
    /// The display name, e.g. `":3"`.
    pub display: String,
}

impl Display {
    /// Starts an Xvfb of `width`x`height` and waits until it has chosen its display.
    pub fn start(width: u32, height: u32) -> Self {
        let (server, display) = crate::spawn_xvfb_displayfd(width, height);
        Display {
            _server: Kill(server),
            display,
        }
    }
}

/// A window process on its own display, with its standard output read line by line.
#[derive(Debug)]
pub struct Gui {
    /// The display it runs on.
    pub x: Display,
    /// The process.
    pub child: Kill,
    out: mpsc::Receiver<String>,
    seen: std::cell::RefCell<Vec<String>>,
    title: String,
    _data: tempfile::TempDir,
}

/// The relay's address and pinned fingerprint, as command-line arguments.
pub fn relay_args(relay: &TestRelay) -> Vec<String> {
    let target = relay.target();
    let Trust::Fingerprint(fp) = &target.trust else {
        unreachable!("the test relay is pinned by fingerprint")
    };
    vec![
        "--relay".into(),
        target.addr.clone(),
        "--relay-cert-sha256".into(),
        fp.clone(),
    ]
}

impl Gui {
    /// Starts `command` (DISPLAY and a private `TETHER_AGENT_DATA` set) on a new display of
    /// `size`, and waits until a window titled `title` shows.
    pub fn start(mut command: Command, size: (u32, u32), title: &str) -> Self {
        let x = Display::start(size.0, size.1);
        let data = tempfile::tempdir().expect("tempdir");
        let mut child = Kill(
            command
                .env("DISPLAY", &x.display)
                .env("TETHER_AGENT_DATA", data.path())
                .env_remove("WAYLAND_DISPLAY")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("the window program starts"),
        );
        let (tx, out) = mpsc::channel();
        let stdout = child.0.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let g = Gui {
            x,
            child,
            out,
            seen: Default::default(),
            title: title.to_string(),
            _data: data,
        };
        g.xdotool(&["search", "--sync", "--onlyvisible", "--name", title]);
        // Let the first frames render before anyone clicks.
        std::thread::sleep(Duration::from_secs(3));
        g
    }

    /// The agent window (`tether-agent window`) with a consent timeout.
    pub fn agent(relay: &TestRelay, consent_timeout_secs: u64) -> Self {
        let mut c = Command::new(bin("tether-agent"));
        c.arg("window")
            .args(relay_args(relay))
            .args(["--consent-timeout", &consent_timeout_secs.to_string()]);
        Self::start(c, (1280, 800), tether_agent::window::layout::TITLE)
    }

    /// The console window (`tether-console window`) with the relay's technician token.
    pub fn console(relay: &TestRelay) -> Self {
        Self::console_on(relay, (1920, 1080))
    }

    /// The console window on a display of `size`; a display smaller than the window's opening size
    /// is where the window is then made smaller ([`Gui::resize`]).
    pub fn console_on(relay: &TestRelay, size: (u32, u32)) -> Self {
        let mut c = Command::new(bin("tether-console"));
        // The relay options belong to `tether-console` itself, before the subcommand.
        c.args(relay_args(relay))
            .arg("window")
            .env("TETHER_TOKEN", &relay.token);
        Self::start(c, size, tether_console::window::layout::TITLE)
    }

    /// The window's X id (the one titled as the window is).
    pub fn window_id(&self) -> u32 {
        let out = Command::new("xdotool")
            .env("DISPLAY", &self.x.display)
            .args(["search", "--onlyvisible", "--name", &self.title])
            .output()
            .expect("xdotool (install xdotool)");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no window titled {:?}: {out:?}", self.title))
    }

    /// Drops `files` on the window at `at` (window coordinates; there is no window manager, so the
    /// window sits at the display's origin), as a file manager would; whether it accepted them.
    pub fn drop_files(&self, at: (i32, i32), files: &[&std::path::Path]) -> bool {
        self.xdotool(&["mousemove", &at.0.to_string(), &at.1.to_string()]);
        crate::xdnd::drop_files(
            &self.x.display,
            self.window_id(),
            (at.0 as i16, at.1 as i16),
            files,
        )
    }

    /// Resizes the window (there is no window manager: the X server does it as asked).
    pub fn resize(&self, (w, h): (u32, u32)) {
        let title = self.title.clone();
        self.xdotool(&[
            "search",
            "--onlyvisible",
            "--name",
            &title,
            "windowsize",
            "--sync",
            &w.to_string(),
            &h.to_string(),
        ]);
        std::thread::sleep(Duration::from_secs(1));
    }

    /// A screenshot of the whole display as (width, height, RGB), with ImageMagick `import`.
    pub fn grab(&self) -> (u32, u32, Vec<u8>) {
        let out = Command::new("import")
            .args(["-display", &self.x.display, "-window", "root"])
            .args(["-depth", "8", "rgb:-"])
            .output()
            .expect("import (install imagemagick)");
        assert!(out.status.success(), "import: {out:?}");
        let size = Command::new("xdpyinfo")
            .env("DISPLAY", &self.x.display)
            .output()
            .expect("xdpyinfo");
        let text = String::from_utf8_lossy(&size.stdout).to_string();
        let dims = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("dimensions:"))
            .and_then(|d| d.split_whitespace().next())
            .expect("xdpyinfo gives the dimensions");
        let (w, h) = dims.split_once('x').expect("WxH");
        let (w, h): (u32, u32) = (w.parse().expect("width"), h.parse().expect("height"));
        assert_eq!(
            out.stdout.len(),
            (w * h * 3) as usize,
            "RGB of the whole root"
        );
        (w, h, out.stdout)
    }

    /// Runs xdotool against this display; panics if it fails.
    pub fn xdotool(&self, args: &[&str]) {
        let out = Command::new("timeout")
            .arg("30")
            .arg("xdotool")
            .args(args)
            .env("DISPLAY", &self.x.display)
            .output()
            .expect("xdotool (install xdotool)");
        assert!(out.status.success(), "xdotool {args:?}: {out:?}");
    }

    /// Clicks at a point of the window (opened at 0,0 with no window manager, so screen and window
    /// coordinates agree), then gives it a moment to draw the result.
    pub fn click(&self, (x, y): (i32, i32)) {
        self.xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "1"]);
        std::thread::sleep(Duration::from_millis(700));
    }

    /// Clicks into a text field at `at` and types `text` there (real key events through XTEST).
    pub fn type_into(&self, at: (i32, i32), text: &str) {
        let title = self.title.clone();
        self.xdotool(&[
            "search",
            "--onlyvisible",
            "--name",
            &title,
            "windowfocus",
            "--sync",
        ]);
        self.click(at);
        self.xdotool(&["type", "--delay", "60", "--", text]);
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Waits for a line of standard output containing `pat` (skipping others); panics after 30 s
    /// of silence.
    /// Waits for the agent window's `session code:` line and returns the code.
    pub fn code(&self) -> String {
        crate::procs::code_in(&self.expect("session code:"))
    }

    pub fn expect(&self, pat: &str) -> String {
        loop {
            let line = self
                .out
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!(
                        "the window never said {pat:?}; last lines: {:?}",
                        self.seen.borrow().iter().rev().take(8).collect::<Vec<_>>()
                    )
                });
            self.seen.borrow_mut().push(line.clone());
            if line.contains(pat) {
                return line;
            }
        }
    }

    /// Whether any line read so far, or printed by now, contains `pat` (does not wait).
    pub fn saw(&self, pat: &str) -> bool {
        while let Ok(line) = self.out.try_recv() {
            self.seen.borrow_mut().push(line);
        }
        self.seen.borrow().iter().any(|l| l.contains(pat))
    }

    /// Saves a `width`x`height` screenshot of the window's corner when `TETHER_SCREENSHOTS` names a
    /// directory, with the pointer parked at `park` so no hover highlight shows.
    pub fn screenshot(&self, name: &str, [w, h]: [f32; 2], park: (i32, i32)) {
        let Some(dir) = std::env::var_os("TETHER_SCREENSHOTS") else {
            return;
        };
        self.xdotool(&["mousemove", &park.0.to_string(), &park.1.to_string()]);
        std::thread::sleep(Duration::from_millis(800));
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        let status = Command::new("import")
            .args(["-display", &self.x.display, "-window", "root", "-crop"])
            .arg(format!("{w}x{h}+0+0"))
            .arg(&path)
            .status()
            .expect("import (install imagemagick)");
        assert!(status.success());
    }

    /// Whether the process still runs.
    pub fn still_running(&mut self) -> bool {
        self.child.0.try_wait().expect("try_wait").is_none()
    }
}
