//! Keyboard and mouse through the real viewer window (`tether-console connect`), driven by xdotool on
//! the console's own Xvfb as a technician's keyboard would, into real xterms on the agent's Xvfb;
//! plus the key table checked against a real X server's keyboard map. Needs Xvfb, xterm, xdotool
//! and xev (x11-utils), all in `packaging/system-packages` (group `demo`); without them these tests
//! fail loudly rather than skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_agent::ShareConfig;
use tether_agent::screen::{
    KEY_BURST, KEY_PRESSES_PER_SECOND, MAX_HELD_KEYS, ScrapScreen, X11Input,
};
use tether_agent::ui::{AgentEvent, UserCommand};
use tether_console::{ConsoleError, open_session};
use tether_proto::screen::{Action, Code, InputEvent, KeyId, MouseButton};
use tether_tests::gui::{Gui, relay_args};
use tether_tests::procs::bin;
use tether_tests::{TestAgent, TestRelay, Xvfb};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::ConnectionExt;

/// The agent's side: an Xvfb with the user's terminals, and the library agent whose user allows
/// `view` and `control`.
struct Remote {
    x: Xvfb,
    agent: TestAgent,
    dir: tempfile::TempDir,
}

fn remote(relay: &TestRelay) -> Remote {
    let x = Xvfb::start_free();
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    let agent = TestAgent::spawn_with(config, Some("view,control".parse().unwrap()));
    Remote {
        x,
        agent,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Remote {
    /// An xterm titled `title` at `geometry` running `script` under sh.
    fn xterm(&mut self, title: &str, geometry: &str, script: &str) {
        self.x.spawn(
            "xterm",
            &[
                // Alt+x as ESC x, as most terminal users configure it (xterm's default sets bit 8).
                "-xrm",
                "XTerm*metaSendsEscape: true",
                "-title",
                title,
                "-geometry",
                geometry,
                "-e",
                "sh",
                "-c",
                script,
            ],
        );
        let out = self.x.cmd(
            "xdotool",
            &["search", "--sync", "--onlyvisible", "--name", title],
        );
        assert!(out.status.success(), "xterm {title} did not show: {out:?}");
    }

    /// Gives `title` the agent's keyboard focus (what the user would do by clicking it).
    fn focus(&self, title: &str) {
        let out = self.x.cmd(
            "xdotool",
            &["search", "--name", title, "windowfocus", "--sync"],
        );
        assert!(out.status.success(), "focus {title}: {out:?}");
    }

    fn file(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

/// The real viewer on its own Xvfb, connected with the agent's code.
async fn viewer(relay: &TestRelay, r: &mut Remote) -> Gui {
    let code = r.agent.code().await.to_string();
    let mut c = Command::new(bin("tether-console"));
    c.args(relay_args(relay))
        .args(["connect", "--code", &code])
        .env("TETHER_TOKEN", &relay.token);
    let g = tokio::task::block_in_place(|| Gui::start(c, (1400, 900), "Tether viewer"));
    // The window opens only once the user has allowed the session.
    g
}

/// Types `keys` (xdotool names) into the viewer as a technician would: the viewer's window has
/// the focus and the pointer is over the remote screen.
fn press(g: &Gui, keys: &[&str]) {
    g.xdotool(&[
        "search",
        "--onlyvisible",
        "--name",
        "Tether viewer",
        "windowfocus",
        "--sync",
    ]);
    g.xdotool(&["mousemove", "300", "300"]);
    let mut args = vec!["key", "--clearmodifiers", "--delay", "120"];
    args.extend_from_slice(keys);
    g.xdotool(&args);
}

/// Waits until `path` holds at least `len` bytes (or 20 s), then returns them.
fn bytes(path: &Path, len: usize) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = std::fs::read(path).unwrap_or_default();
        if got.len() >= len || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The keycodes held down on the X server `display` (core `QueryKeymap`).
fn keys_down(display: &str) -> Vec<u8> {
    let (conn, _) = x11rb::connect(Some(display)).expect("connect to the agent's X server");
    let map = conn.query_keymap().unwrap().reply().unwrap();
    (0u16..256)
        .filter(|k| map.keys[usize::from(k / 8)] & (1 << (k % 8)) != 0)
        .map(|k| k as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shortcuts_typed_into_the_viewer_reach_a_remote_xterm_byte_for_byte() {
    let relay = TestRelay::start().await;
    let mut r = remote(&relay);
    let raw = r.file("bytes");
    // Raw mode: every byte the terminal sends is written as it comes, Ctrl+C included.
    r.xterm(
        "KEYS-RAW",
        "80x20+0+0",
        &format!(
            "stty raw -echo; exec dd bs=1 of={} 2>/dev/null",
            raw.display()
        ),
    );
    r.focus("KEYS-RAW");
    let g = viewer(&relay, &mut r).await;
    let cases: &[(&str, &[u8])] = &[
        ("ctrl+a", b"\x01"),
        ("ctrl+c", b"\x03"),
        ("ctrl+l", b"\x0c"),
        ("alt+x", b"\x1bx"),
        ("shift+Tab", b"\x1b[Z"),
        ("Tab", b"\t"),
        ("F1", b"\x1bOP"),
        ("F5", b"\x1b[15~"),
        ("F12", b"\x1b[24~"),
        ("Home", b"\x1b[H"),
        ("End", b"\x1b[F"),
        ("Prior", b"\x1b[5~"),
        ("Insert", b"\x1b[2~"),
        // xterm gives Ctrl+Shift+letter the letter's control code; Ctrl+Shift+F5 shows that both
        // modifiers were held across the key.
        ("ctrl+shift+a", b"\x01"),
        ("ctrl+shift+F5", b"\x1b[15;6~"),
        // Tab then Enter: in the old viewer this pressed "End session".
        ("Tab", b"\t"),
        ("Return", b"\r"),
    ];
    let keys: Vec<&str> = cases.iter().map(|(k, _)| *k).collect();
    let want: Vec<u8> = cases.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    tokio::task::block_in_place(|| press(&g, &keys));
    let got = tokio::task::block_in_place(|| bytes(&raw, want.len()));
    assert_eq!(
        String::from_utf8_lossy(&got).escape_debug().to_string(),
        String::from_utf8_lossy(&want).escape_debug().to_string(),
        "keys {keys:?}"
    );
    // The session goes on after Tab, Enter: no end on either side, and the viewer still runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut g = g;
    assert!(g.still_running(), "the viewer ended after Tab, Enter");
    assert!(
        !r.agent.saw(|e| matches!(e, AgentEvent::Ended { .. })),
        "the session ended"
    );

    // Ctrl+C stops a running command in a normal (cooked) terminal.
    let log = r.file("sleep.log");
    r.xterm(
        "KEYS-SLEEP",
        "80x20+900+0",
        &format!(
            "trap 'echo interrupted >> {0}' INT; echo started >> {0}; sleep 100; echo finished >> {0}",
            log.display()
        ),
    );
    tokio::task::block_in_place(|| bytes(&log, "started\n".len()));
    r.focus("KEYS-SLEEP");
    let t0 = Instant::now();
    tokio::task::block_in_place(|| press(&g, &["ctrl+c"]));
    let text = tokio::task::block_in_place(|| bytes(&log, "started\ninterrupted\n".len()));
    assert!(
        String::from_utf8_lossy(&text).contains("interrupted"),
        "sleep 100 was not interrupted: {:?}",
        String::from_utf8_lossy(&text)
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_stays_down_on_the_agent_after_the_viewer_dies_mid_chord() {
    let relay = TestRelay::start().await;
    let mut r = remote(&relay);
    r.xterm("KEYS-HOLD", "80x20+0+0", "exec cat > /dev/null");
    r.focus("KEYS-HOLD");
    let mut g = viewer(&relay, &mut r).await;
    let (ctrl, shift) = (
        (Code::ControlLeft.evdev() + 8) as u8,
        (Code::ShiftLeft.evdev() + 8) as u8,
    );
    tokio::task::block_in_place(|| {
        g.xdotool(&[
            "search",
            "--onlyvisible",
            "--name",
            "Tether viewer",
            "windowfocus",
            "--sync",
        ]);
        g.xdotool(&["mousemove", "300", "300"]);
        g.xdotool(&["keydown", "ctrl", "shift"]);
    });
    // First the chord really is held on the user's machine...
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(keys_down(&r.x.display).contains(&ctrl) && keys_down(&r.x.display).contains(&shift)) {
        assert!(
            Instant::now() < deadline,
            "Ctrl+Shift never went down on the agent: {:?}",
            keys_down(&r.x.display)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...then the technician's console dies without a word.
    g.child.0.kill().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let down = keys_down(&r.x.display);
        if down.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys still down on the agent 20 s after the viewer died: {down:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every key in the table has a keycode on a real X server's default (evdev) map, and the keys of a
/// 105-key keyboard have a symbol there.
#[test]
fn every_key_maps_to_a_keycode_on_xvfbs_default_map() {
    let x = Xvfb::start_free();
    let (conn, _) = x11rb::connect(Some(&x.display)).unwrap();
    let (min, max) = (conn.setup().min_keycode, conn.setup().max_keycode);
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .unwrap()
        .reply()
        .unwrap();
    let per = usize::from(map.keysyms_per_keycode);
    let mut missing = Vec::new();
    for c in Code::ALL {
        let k = u8::try_from(c.evdev() + 8).unwrap();
        assert!((min..=max).contains(&k), "{c}: keycode {k} out of range");
        let syms = &map.keysyms[usize::from(k - min) * per..][..per];
        // Keys of Asian layouts and F13 and up may have no symbol on a US map; everything on a
        // 105-key keyboard must.
        let optional = c.name().starts_with("Lang")
            || c.name().starts_with("Intl") && *c != Code::IntlBackslash
            || matches!(
                c,
                Code::KanaMode | Code::Convert | Code::NonConvert | Code::NumpadComma
            )
            || c.name().len() == 3 && c.name().starts_with('F') && c.name()[1..] > *"12";
        if !optional && syms.iter().all(|s| *s == 0) {
            missing.push(c.name());
        }
    }
    assert!(missing.is_empty(), "no keysym on Xvfb for {missing:?}");
    // Spot checks of the keysyms themselves (layout-independent keys).
    let sym = |c: Code| map.keysyms[usize::from((c.evdev() + 8) as u8 - min) * per];
    assert_eq!(sym(Code::Escape), 0xff1b);
    assert_eq!(sym(Code::Home), 0xff50);
    assert_eq!(sym(Code::ControlRight), 0xffe4);
    assert_eq!(sym(Code::F12), 0xffc9);
    assert_eq!(sym(Code::KeyA), u32::from(b'a'));
}

fn key(c: Code, action: Action) -> InputEvent {
    InputEvent::Key {
        key: c.into(),
        action,
    }
}

/// Bad input on a control stream, from a console library that sends whatever it is told: each is
/// answered with a reason, nothing stays down, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_key_input_is_bounded_answered_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let mut r = remote(&relay);
    r.xterm("KEYS-BAD", "80x20+0+0", "exec cat > /dev/null");
    r.focus("KEYS-BAD");
    let code = r.agent.code().await;
    let mut session = open_session(&relay.console(), code, "view,control".parse().unwrap())
        .await
        .unwrap();
    let mut control = session.control(0).await.unwrap();

    // 1. An id no key has (the wire carries a number, so this decodes): refused, with its number.
    let err = control
        .send(&InputEvent::Key {
            key: KeyId(0x0001),
            action: Action::Press,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConsoleError::Failed(m) if m == "unknown key 0x01 is not a key this agent knows"),
        "{err:?}"
    );

    // 2. A release without a press: harmless, and said so.
    let note = control
        .send(&key(Code::AltLeft, Action::Release))
        .await
        .unwrap();
    assert_eq!(
        note.as_deref(),
        Some("AltLeft was not pressed; release ignored")
    );

    // 3. A chord of 50 keys: the first MAX_HELD_KEYS go down, the rest are refused by name.
    let mut refused = Vec::new();
    for c in &Code::ALL[..50] {
        if let Err(ConsoleError::Failed(m)) = control.send(&key(*c, Action::Press)).await {
            refused.push(m);
        }
    }
    assert_eq!(refused.len(), 50 - MAX_HELD_KEYS, "{refused:?}");
    assert!(
        refused[0].contains(&format!("at most {MAX_HELD_KEYS} keys can be held at once")),
        "{}",
        refused[0]
    );
    assert_eq!(keys_down(&r.x.display).len(), MAX_HELD_KEYS);
    // ReleaseAll (what the console sends when its window loses focus) lets go of all of them.
    control.send(&InputEvent::ReleaseAll).await.unwrap();
    assert_eq!(keys_down(&r.x.display), Vec::<u8>::new());

    // 4. 10,000 key presses as fast as the stream goes: bounded by the rate, the rest refused.
    let t0 = Instant::now();
    let mut injected = 0u32;
    for _ in 0..10_000 {
        match control.send(&key(Code::KeyQ, Action::Click)).await {
            Ok(_) => injected += 1,
            Err(ConsoleError::Failed(m)) => assert!(m.contains("key presses a second"), "{m}"),
            Err(e) => panic!("{e:?}"),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let bound = f64::from(KEY_BURST) + f64::from(KEY_PRESSES_PER_SECOND) * secs + 1.0;
    assert!(
        f64::from(injected) <= bound,
        "{injected} presses injected in {secs:.1} s; the bound is {bound:.0}"
    );
    assert!(injected >= KEY_BURST, "{injected}");

    // The session goes on: after a quiet moment a key works, nothing is held, viewing works.
    tokio::time::sleep(Duration::from_millis(500)).await;
    control.send(&key(Code::KeyW, Action::Click)).await.unwrap();
    assert_eq!(keys_down(&r.x.display), Vec::<u8>::new());
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    assert!(!r.agent.saw(|e| matches!(e, AgentEvent::Ended { .. })));
}

/// The user pressing "Stop control" mid-chord releases the technician's keys at once, without
/// waiting for the technician's next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_control_mid_chord_releases_the_held_keys() {
    let relay = TestRelay::start().await;
    let mut r = remote(&relay);
    r.xterm("KEYS-REVOKE", "80x20+0+0", "exec cat > /dev/null");
    r.focus("KEYS-REVOKE");
    let code = r.agent.code().await;
    let mut session = open_session(&relay.console(), code, "view,control".parse().unwrap())
        .await
        .unwrap();
    let mut control = session.control(0).await.unwrap();
    for c in [Code::ControlLeft, Code::AltLeft] {
        control.send(&key(c, Action::Press)).await.unwrap();
    }
    control
        .send(&InputEvent::Button {
            button: MouseButton::Left,
            action: Action::Press,
        })
        .await
        .unwrap();
    assert_eq!(keys_down(&r.x.display).len(), 2);
    r.agent
        .commands
        .send(UserCommand::RevokeControl)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !keys_down(&r.x.display).is_empty() || button_down(&r.x.display) {
        assert!(
            Instant::now() < deadline,
            "still down after Stop control: keys {:?}",
            keys_down(&r.x.display)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(control);
    session.end().await;
}

/// Whether any pointer button is down on `display`.
fn button_down(display: &str) -> bool {
    let (conn, screen) = x11rb::connect(Some(display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let q = conn.query_pointer(root).unwrap().reply().unwrap();
    u16::from(q.mask) & 0x1f00 != 0
}

/// `tether-console input key CHORD`, the real binary: a chord in xdotool's syntax arrives as the
/// keys held together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_a_chord_in_xdotool_syntax() {
    let relay = TestRelay::start().await;
    let mut r = remote(&relay);
    let raw = r.file("bytes");
    r.xterm(
        "KEYS-CLI",
        "80x20+0+0",
        &format!(
            "stty raw -echo; exec dd bs=1 of={} 2>/dev/null",
            raw.display()
        ),
    );
    r.focus("KEYS-CLI");
    let code = r.agent.code().await.to_string();
    let out = tokio::task::block_in_place(|| {
        Command::new(bin("tether-console"))
            .args(relay_args(&relay))
            .args(["input", "--code", &code, "key", "ctrl+shift+F5"])
            .env("TETHER_TOKEN", &relay.token)
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{out:?}");
    let got = tokio::task::block_in_place(|| bytes(&raw, 7));
    assert_eq!(got, b"\x1b[15;6~");
    assert_eq!(keys_down(&r.x.display), Vec::<u8>::new());
}

/// The console window's live screen: a click on it captures the keyboard, Tab, Enter, Ctrl+C and
/// Escape reach the remote xterm and end nothing, and Right Ctrl gives the keyboard back (the next
/// Tab stays in the console).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_windows_screen_captures_the_keyboard_until_right_ctrl() {
    use tether_agent::window::layout as agent;
    use tether_console::window::layout as console;
    use tether_proto::{Scope, ScopeSet};
    let relay = TestRelay::start().await;
    let (a, c, raw, _xterm, _dir) = tokio::task::block_in_place(|| {
        let a = Gui::agent(&relay, 60);
        a.click(agent::centre(agent::GET_HELP));
        let code = a.code();
        let c = Gui::console(&relay);
        for (i, s) in Scope::ALL.iter().enumerate() {
            if ScopeSet::all().contains(*s) {
                c.click(console::tick(console::scope_box(i)));
            }
        }
        c.type_into(console::centre(console::CODE), &code);
        c.click(console::centre(console::CONNECT));
        a.expect("asks to:");
        std::thread::sleep(Duration::from_secs(1));
        for row in [0, 1, 2, 3] {
            a.click(agent::scope_box(row));
        }
        a.click(agent::centre(agent::ALLOW));
        c.expect("consent: granted view,control");
        // The user's terminal, on top of the agent window, with the keyboard.
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("bytes");
        let xterm = tether_tests::procs::Kill(
            Command::new("xterm")
                .args([
                    "-title",
                    "KEYS-WINDOW",
                    "-geometry",
                    "80x20+0+0",
                    "-e",
                    "sh",
                    "-c",
                ])
                .arg(format!(
                    "stty raw -echo; exec dd bs=1 of={} 2>/dev/null",
                    raw.display()
                ))
                .env("DISPLAY", &a.x.display)
                .spawn()
                .unwrap(),
        );
        for args in [
            &["search", "--sync", "--onlyvisible", "--name", "KEYS-WINDOW"][..],
            &["search", "--name", "KEYS-WINDOW", "windowfocus", "--sync"][..],
        ] {
            a.xdotool(args);
        }
        std::thread::sleep(Duration::from_secs(2));
        (a, c, raw, xterm, dir)
    });
    tokio::task::block_in_place(|| {
        // A click on the live screen (it lands on the remote xterm) captures the keyboard.
        c.click((console::SCREEN_X as i32 + 60, 220));
        c.xdotool(&["key", "--delay", "150", "Tab", "Return", "ctrl+c", "Escape"]);
        let got = bytes(&raw, 4);
        assert_eq!(got, b"\t\r\x03\x1b");
        std::thread::sleep(Duration::from_secs(1));
        assert!(
            !c.saw("session ended"),
            "a key in the screen ended the session"
        );
        // Right Ctrl releases: the next Tab is the console's, not the remote's.
        c.xdotool(&["key", "Control_R"]);
        std::thread::sleep(Duration::from_millis(500));
        c.xdotool(&["key", "Tab"]);
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(std::fs::read(&raw).unwrap(), b"\t\r\x03\x1b");
        assert!(!c.saw("session ended"));
    });
    drop(a);
}

/// The technician switches to another window on their own desktop while holding Ctrl: nothing
/// stays down on the user's machine, and the session goes on. (winit also reports a release for
/// keys held when the window loses focus, so this passes without the pane's own release-all too;
/// `ReleaseAll` itself is checked in `hostile_key_input_is_bounded_answered_and_the_session_goes_on`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_losing_focus_releases_held_keys_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let mut r = remote(&relay);
    r.xterm("KEYS-FOCUS", "80x20+0+0", "exec cat > /dev/null");
    r.focus("KEYS-FOCUS");
    let mut g = viewer(&relay, &mut r).await;
    let ctrl = (Code::ControlLeft.evdev() + 8) as u8;
    // Another window on the technician's desktop to switch to.
    let _other = tokio::task::block_in_place(|| {
        let other = tether_tests::procs::Kill(
            Command::new("xterm")
                .args(["-title", "TECH-OTHER", "-geometry", "20x5+1000+800"])
                .env("DISPLAY", &g.x.display)
                .spawn()
                .unwrap(),
        );
        g.xdotool(&["search", "--sync", "--onlyvisible", "--name", "TECH-OTHER"]);
        g.xdotool(&[
            "search",
            "--onlyvisible",
            "--name",
            "Tether viewer",
            "windowfocus",
            "--sync",
        ]);
        g.xdotool(&["mousemove", "300", "300"]);
        g.xdotool(&["keydown", "ctrl"]);
        other
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !keys_down(&r.x.display).contains(&ctrl) {
        assert!(
            Instant::now() < deadline,
            "Ctrl never went down on the agent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Focus moves to the other window with Ctrl still held on the technician's keyboard.
    tokio::task::block_in_place(|| {
        g.xdotool(&["search", "--name", "TECH-OTHER", "windowfocus", "--sync"]);
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !keys_down(&r.x.display).is_empty() {
        assert!(
            Instant::now() < deadline,
            "keys still down on the agent after the viewer lost focus: {:?}",
            keys_down(&r.x.display)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::block_in_place(|| g.xdotool(&["keyup", "ctrl"]));
    assert!(g.still_running());
    assert!(!r.agent.saw(|e| matches!(e, AgentEvent::Ended { .. })));
}

/// Every mouse button and both scroll directions, smooth scrolling added up into whole notches, as
/// an independent X client (`xev` on the root window) sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_buttons_and_smooth_and_horizontal_scrolling_reach_the_x_server() {
    let relay = TestRelay::start().await;
    let mut r = remote(&relay);
    let log = r.file("xev.log");
    let xev = tether_tests::procs::Kill(
        Command::new("sh")
            .arg("-c")
            .arg(format!("exec xev -root -event button > {}", log.display()))
            .env("DISPLAY", &r.x.display)
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let code = r.agent.code().await;
    let mut session = open_session(&relay.console(), code, "view,control".parse().unwrap())
        .await
        .unwrap();
    let mut control = session.control(0).await.unwrap();
    control
        .send(&InputEvent::MouseMove { x: 900, y: 600 })
        .await
        .unwrap();
    for button in [
        MouseButton::Left,
        MouseButton::Middle,
        MouseButton::Right,
        MouseButton::Back,
        MouseButton::Forward,
    ] {
        control
            .send(&InputEvent::Button {
                button,
                action: Action::Click,
            })
            .await
            .unwrap();
    }
    // Smooth: two half notches down make one (button 5); one notch right (7); two notches up (4).
    for (dx, dy) in [(0, 60), (0, 60), (120, 0), (0, -240)] {
        control
            .send(&InputEvent::ScrollFine { dx, dy })
            .await
            .unwrap();
    }
    control
        .send(&InputEvent::Scroll { dx: -1, dy: 0 })
        .await
        .unwrap();
    let want = [1, 2, 3, 8, 9, 5, 7, 4, 4, 6];
    // xev prints "ButtonPress event, ..." and, two lines on, "..., button N, same_screen YES".
    let presses = |text: &str| -> Vec<u32> {
        let lines: Vec<&str> = text.lines().collect();
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("ButtonPress"))
            .filter_map(|(i, _)| {
                lines[i..].iter().take(4).find_map(|l| {
                    l.split("button ")
                        .nth(1)
                        .and_then(|n| n.split(',').next())
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let got = presses(&text);
        if got.len() >= want.len() || Instant::now() > deadline {
            break (got, text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(got.0, want, "xev saw:\n{}", got.1);
    drop(xev);
    session.end().await;
}
