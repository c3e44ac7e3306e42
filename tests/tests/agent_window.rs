//! The agent window driven as a user would: a real Xvfb per test, the real `tether-agent window`
//! binary, a real relay and console, and xdotool clicks at the window's fixed button positions.
//!
//! Set `TETHER_SCREENSHOTS=DIR` to also save a screenshot of each state (docs/agent-*.png come from
//! `TETHER_SCREENSHOTS=$PWD/docs cargo test -p tether-tests --test agent_window`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tether_tests::procs::{Kill, add_technician, bin};

use tether_agent::window::layout;
use tether_console::{ConsoleError, open_session};
use tether_net::Trust;
use tether_proto::diag::Probe;
use tether_proto::msg::Request;
use tether_proto::{Scope, ScopeSet, SessionCode};
use tether_relay::Limits;
use tether_tests::TestRelay;

/// Our own X server on a display number it picks itself (`-displayfd`), so parallel tests never collide.
struct Xvfb {
    _server: Kill,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        let mut server = Kill(
            Command::new("Xvfb")
                .args([
                    "-displayfd",
                    "1",
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb (install xvfb)"),
        );
        let mut line = String::new();
        BufReader::new(server.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n: u32 = line
            .trim()
            .parse()
            .expect("Xvfb printed its display number");
        Xvfb {
            _server: server,
            display: format!(":{n}"),
        }
    }
}

/// The agent window on its own display, with its standard output read line by line.
struct Window {
    x: Xvfb,
    agent: Kill,
    out: mpsc::Receiver<String>,
    _data: tempfile::TempDir,
}

impl Window {
    /// `tether-agent window` with a consent timeout.
    fn open(relay: &TestRelay, consent_timeout_secs: u64) -> Self {
        Self::start(relay, Some(consent_timeout_secs))
    }

    /// `None`: plain `tether-agent` with no arguments, as a desktop launcher starts it, the relay
    /// taken from the environment.
    fn start(relay: &TestRelay, consent_timeout_secs: Option<u64>) -> Self {
        let target = relay.target();
        let Trust::Fingerprint(fp) = &target.trust else {
            unreachable!("the test relay is pinned by fingerprint")
        };
        Self::start_at(&target.addr, fp, consent_timeout_secs)
    }

    fn start_at(addr: &str, fp: &str, consent_timeout_secs: Option<u64>) -> Self {
        let x = Xvfb::start();
        let data = tempfile::tempdir().unwrap();
        let mut command = Command::new(bin("tether-agent"));
        match consent_timeout_secs {
            Some(secs) => command.args([
                "window",
                "--relay",
                addr,
                "--relay-cert-sha256",
                fp,
                "--consent-timeout",
                &secs.to_string(),
            ]),
            None => command
                .env("TETHER_RELAY", addr)
                .env("TETHER_RELAY_CERT_SHA256", fp),
        };
        let mut agent = Kill(
            command
                .env("DISPLAY", &x.display)
                .env("TETHER_AGENT_DATA", data.path())
                .env_remove("WAYLAND_DISPLAY")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let (tx, out) = mpsc::channel();
        let stdout = agent.0.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let w = Window {
            x,
            agent,
            out,
            _data: data,
        };
        w.xdotool(&["search", "--sync", "--onlyvisible", "--name", layout::TITLE]);
        // Let the first frames render before anyone clicks.
        std::thread::sleep(Duration::from_secs(3));
        w
    }

    fn xdotool(&self, args: &[&str]) {
        let out = Command::new("timeout")
            .arg("30")
            .arg("xdotool")
            .args(args)
            .env("DISPLAY", &self.x.display)
            .output()
            .expect("xdotool (install xdotool)");
        assert!(out.status.success(), "xdotool {args:?}: {out:?}");
    }

    /// Clicks at a point of the window (opened at 0,0, so screen and window coordinates agree), then
    /// gives it a moment to draw the result.
    fn click(&self, (x, y): (i32, i32)) {
        self.xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "1"]);
        std::thread::sleep(Duration::from_millis(700));
    }

    /// Waits for a line of standard output containing `pat`.
    fn expect(&self, pat: &str) -> String {
        loop {
            let line = self
                .out
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("the window never said {pat:?}"));
            if line.contains(pat) {
                return line;
            }
        }
    }

    /// "Get help", then the code it shows.
    fn get_help(&self) -> SessionCode {
        self.click(layout::centre(layout::GET_HELP));
        let line = self.expect("session code:");
        line.split("code:").nth(1).unwrap().trim().parse().unwrap()
    }

    /// Saves a screenshot of the window when `TETHER_SCREENSHOTS` names a directory.
    fn shot(&self, name: &str) {
        let Some(dir) = std::env::var_os("TETHER_SCREENSHOTS") else {
            return;
        };
        // Park the pointer in a corner so no hover highlight shows.
        self.xdotool(&["mousemove", "555", "595"]);
        std::thread::sleep(Duration::from_millis(800));
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        let [w, h] = layout::SIZE;
        let status = Command::new("import")
            .args(["-display", &self.x.display, "-window", "root", "-crop"])
            .arg(format!("{w}x{h}+0+0"))
            .arg(&path)
            .status()
            .expect("import (install imagemagick)");
        assert!(status.success());
    }

    fn still_running(&mut self) -> bool {
        self.agent.0.try_wait().unwrap().is_none()
    }
}

fn scopes(list: &str) -> ScopeSet {
    list.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_really_denies() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    // No arguments on a desktop: the window opens.
    let w = Window::start(&relay, None);
    let code = w.get_help();
    let config = relay.console();
    let console =
        tokio::spawn(async move { open_session(&config, code, scopes("inventory")).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    w.click(layout::centre(layout::DENY));
    let result = console.await.unwrap();
    assert!(
        matches!(result, Err(ConsoleError::ConsentDenied)),
        "{:?}",
        result.err()
    );
    w.expect("You refused. Nothing was shared.");
    w.expect("Session ended: the user denied consent");
}

#[tokio::test(flavor = "multi_thread")]
async fn unticked_scope_is_not_granted() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let w = Window::open(&relay, 60);
    let code = w.get_help();
    let config = relay.console();
    let asked = scopes("diagnostics,inventory");
    let console = tokio::spawn(async move { open_session(&config, code, asked).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    // Rows follow the display order of scopes: diagnostics (0), inventory (1). Untick inventory.
    assert_eq!(
        asked.iter().collect::<Vec<_>>(),
        [Scope::Diagnostics, Scope::Inventory]
    );
    w.click(layout::scope_box(1));
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    assert_eq!(session.granted, scopes("diagnostics"));
    let refused = session.request(&Request::Inventory).await;
    assert!(
        matches!(refused, Err(ConsoleError::ScopeDenied(Scope::Inventory))),
        "{refused:?}"
    );
    w.expect("refused: the technician asked for");
    let served = session
        .request(&Request::Diagnostic {
            probe: Probe::Uptime,
            timeout_secs: None,
        })
        .await;
    assert!(served.is_ok(), "{served:?}");
    w.expect("sent the technician");
    session.end().await;
    w.expect("Session ended: the technician ended the session");
}

#[tokio::test(flavor = "multi_thread")]
async fn countdown_denies() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let w = Window::open(&relay, 4);
    let code = w.get_help();
    let config = relay.console();
    let console = tokio::spawn(async move { open_session(&config, code, ScopeSet::all()).await });
    w.expect("asks to:");
    w.shot("agent-consent-countdown");
    // Nobody clicks.
    let result = console.await.unwrap();
    assert!(
        matches!(result, Err(ConsoleError::ConsentDenied)),
        "{:?}",
        result.err()
    );
    w.expect("You refused. Nothing was shared.");
    w.expect("Session ended: the user denied consent");
}

#[tokio::test(flavor = "multi_thread")]
async fn end_really_ends_the_session_on_both_sides() {
    let relay = TestRelay::start_with(Limits::default(), None).await;
    let mut w = Window::open(&relay, 60);
    w.shot("agent-start");
    let old = w.get_help();
    // "New code" ends the first share and shows a fresh code.
    w.click(layout::centre(layout::NEW_CODE));
    let code: SessionCode = w
        .expect("session code:")
        .split("code:")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(code.to_string(), old.to_string());
    w.shot("agent-code");
    let config = relay.console();
    let console = tokio::spawn(async move { open_session(&config, code, ScopeSet::all()).await });
    w.expect("asks to:");
    w.shot("agent-consent");
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    assert_eq!(session.granted, ScopeSet::all());
    session.request(&Request::Inventory).await.unwrap();
    w.expect("sent the technician the hardware and software inventory");
    w.shot("agent-banner");

    w.click(layout::centre(layout::END_SESSION));
    w.expect("Session ended: the user ended the session");
    let after = session.request(&Request::Inventory).await;
    assert!(
        matches!(after, Err(ConsoleError::Ended(_))),
        "the console's next request must fail as ended: {after:?}"
    );
    // The window stays open on the ended screen and shows the local log.
    assert!(w.still_running());
    w.click(layout::centre(layout::SHOW_LOG));
    w.shot("agent-ended");

    // The code replaced by "New code" opens nothing.
    let replaced = open_session(&relay.console(), old, ScopeSet::all()).await;
    assert!(replaced.is_err(), "a replaced code must not open a session");
}

/// Ending works with the network gone: the relay process is frozen (SIGSTOP), so nothing reaches the
/// technician any more, and "End session" still ends the session on the user's side at once.
#[tokio::test(flavor = "multi_thread")]
async fn end_works_without_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut relay = Kill(
        Command::new(bin("tether-relay"))
            .args(["--data-dir", data, "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut relay_out = BufReader::new(relay.0.stdout.take().unwrap()).lines();
    let mut next = |pat: &str| loop {
        let line = relay_out.next().unwrap().unwrap();
        if line.contains(pat) {
            return line
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>();
        }
    };
    let addr = next("listening on")[3].clone();
    let fp = next("certificate SHA-256").last().unwrap().clone();
    let token = add_technician(data, "Ada", "Acme IT");
    let config = tether_console::ConsoleConfig {
        relay: tether_net::client::RelayTarget {
            addr: addr.clone(),
            trust: Trust::Fingerprint(fp.clone()),
            connect_timeout: Duration::from_secs(5),
        },
        token,
    };

    let w = Window::start_at(&addr, &fp, Some(60));
    let code = w.get_help();
    let console =
        tokio::spawn(async move { open_session(&config, code, scopes("inventory")).await });
    w.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    w.click(layout::centre(layout::ALLOW));
    let mut session = console.await.unwrap().expect("session opens");
    session.request(&Request::Inventory).await.unwrap();
    w.expect("sent the technician the hardware and software inventory");

    let pid = relay.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    w.click(layout::centre(layout::END_SESSION));
    w.expect("Session ended: the user ended the session");
    w.shot("agent-ended-offline");
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
}
