//! Wayland end to end on a private headless sway (wlroots, `tests/src/sway.rs`): the agent's
//! wlroots backends (screencopy capture, virtual pointer and keyboard) through the real relay and
//! console over QUIC on loopback, checked against independent tools (`grim`, `swaymsg`, a shell in
//! a real `foot` terminal).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use std::process::Stdio;
use tether_agent::ShareConfig;
use tether_agent::screen::{MutterDesktop, SCREEN_REFUSED, WlrootsInput, WlrootsScreen};
use tether_console::screen::{ControlStream, ViewStream};
use tether_console::{ConsoleError, open_session};
use tether_proto::keys::Code;
use tether_proto::screen::{Action, InputEvent, KeyId, MouseButton};
use tether_proto::{Scope, ScopeSet};

use tether_net::Trust;
use tether_tests::desktop::{Desktop, Sway, wait_for_file};
use tether_tests::grant::nothing_before_the_grant;
use tether_tests::portal_user::{answer_portal_dialog, answer_remote_desktop_dialog};
use tether_tests::procs::{Kill, bin, lines, wait_for, wait_for_code};
use tether_tests::{TestAgent, TestRelay, WAIT, until_frame_matches};

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

fn socket(sway: &Sway) -> Option<String> {
    Some(sway.socket.display().to_string())
}

fn agent_on(relay: &TestRelay, sway: &Sway, answer: ScopeSet) -> TestAgent {
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(WlrootsScreen::new(socket(sway)));
    config.input = Arc::new(WlrootsInput::new(socket(sway)));
    TestAgent::spawn_with(config, Some(answer))
}

/// The physical keys (and whether Shift is needed) for `text` on a US layout.
fn us_keys(text: &str) -> Vec<(Code, bool)> {
    text.chars()
        .map(|c| {
            let (name, shift) = match c {
                'a'..='z' => (format!("Key{}", c.to_ascii_uppercase()), false),
                '0'..='9' => (format!("Digit{c}"), false),
                ' ' => ("Space".into(), false),
                '/' => ("Slash".into(), false),
                '.' => ("Period".into(), false),
                '-' => ("Minus".into(), false),
                '_' => ("Minus".into(), true),
                '>' => ("Period".into(), true),
                '\n' => ("Enter".into(), false),
                other => panic!("no US key for {other:?}"),
            };
            (name.parse().unwrap(), shift)
        })
        .collect()
}

/// Types `line` as physical keys on a US layout, as the viewer sends them: Shift held around the
/// keys that need it.
async fn type_keys(control: &mut ControlStream, line: &str) {
    for (code, shift) in us_keys(line) {
        if shift {
            control
                .send(&key(Code::ShiftLeft, Action::Press))
                .await
                .unwrap();
        }
        control.send(&key(code, Action::Click)).await.unwrap();
        if shift {
            control
                .send(&key(Code::ShiftLeft, Action::Release))
                .await
                .unwrap();
        }
    }
}

/// Types `text` as text, as the CLI's `type` sends it, then presses Enter.
async fn type_line(control: &mut ControlStream, text: &str) {
    control
        .send(&InputEvent::Text(text.to_string()))
        .await
        .unwrap();
    control
        .send(&key(Code::Enter, Action::Click))
        .await
        .unwrap();
}

fn key(code: Code, action: Action) -> InputEvent {
    InputEvent::Key {
        key: KeyId::from(code),
        action,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frame_equals_grim_and_typed_keys_and_text_run_in_foot() {
    let mut sway = Sway::start("");
    sway.spawn("foot", &[]);
    sway.wait_windows(1);
    let relay = TestRelay::start().await;
    let mut agent = agent_on(&relay, &sway, scopes("view,control"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view,control"))
        .await
        .unwrap();

    let displays = session.displays().await.unwrap();
    assert_eq!(displays.len(), 1, "{displays:?}");
    assert_eq!(
        (
            displays[0].name.as_str(),
            displays[0].width,
            displays[0].height
        ),
        ("HEADLESS-1", 1920, 1080)
    );
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    // Let foot's shell print its prompt, then compare with an independent screenshot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    until_frame_matches(&mut view, "grim's screenshot", || sway.screenshot()).await;

    // Physical keys, as the viewer sends them, Shift held for '>' and '_'.
    let mut control = session.control(0).await.unwrap();
    let by_keys = sway.path("by-keys.txt");
    let line = format!("echo typed_by_keys > {}\n", by_keys.display());
    type_keys(&mut control, &line).await;
    assert_eq!(wait_for_file(&by_keys), "typed_by_keys\n");

    // Text, as the CLI's `type` sends it, goes key by key through the agent's keymap.
    let by_text = sway.path("by-text.txt");
    type_line(
        &mut control,
        &format!("echo Typed-As_Text > {}", by_text.display()),
    )
    .await;
    assert_eq!(wait_for_file(&by_text), "Typed-As_Text\n");

    // And the picture follows: the terminal shows what was typed.
    until_frame_matches(&mut view, "grim's screenshot", || sway.screenshot()).await;
    view.close().await;
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_moves_focus_between_two_windows() {
    let mut sway = Sway::start("focus_follows_mouse no");
    sway.spawn("foot", &["--app-id", "left"]);
    sway.wait_windows(1);
    sway.spawn("foot", &["--app-id", "right"]);
    let windows = sway.wait_windows(2);
    let focused = |sway: &Sway| {
        sway.windows()
            .into_iter()
            .find(|w| w.1)
            .map(|w| w.0)
            .unwrap_or_default()
    };
    assert_eq!(
        focused(&sway),
        "right",
        "the newest window has focus: {windows:?}"
    );
    let left = windows.iter().find(|w| w.0 == "left").unwrap().clone();
    let right = windows.iter().find(|w| w.0 == "right").unwrap().clone();

    let relay = TestRelay::start().await;
    let mut agent = agent_on(&relay, &sway, scopes("view,control"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view,control"))
        .await
        .unwrap();
    let mut control = session.control(0).await.unwrap();
    for (target, name) in [(&left, "left"), (&right, "right"), (&left, "left")] {
        let (x, y) = (target.2 + target.4 / 2, target.3 + target.5 / 2);
        control
            .send(&InputEvent::MouseMove {
                x: x as i32,
                y: y as i32,
            })
            .await
            .unwrap();
        control
            .send(&InputEvent::Button {
                button: MouseButton::Left,
                action: Action::Click,
            })
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while focused(&sway) != name {
            assert!(
                std::time::Instant::now() < deadline,
                "a click on {name} did not focus it"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_captured_or_injected_before_the_grant_on_wlroots() {
    let sway = Sway::start("");
    nothing_before_the_grant(
        Arc::new(WlrootsScreen::new(socket(&sway))),
        Arc::new(WlrootsInput::new(socket(&sway))),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_captured_or_injected_before_the_grant_on_mutter() {
    let d = Desktop::mutter();
    let mutter = Arc::new(MutterDesktop::new(d.bus.clone(), Some(d.pipewire())));
    nothing_before_the_grant(mutter.clone(), mutter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sway_killed_mid_view_stops_the_view_and_the_session_goes_on() {
    let mut sway = Sway::start("");
    let relay = TestRelay::start().await;
    let agent = agent_on(&relay, &sway, scopes("view,inventory"));
    killed_mid_view(&relay, agent, &mut sway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutter_killed_mid_view_stops_the_view_and_the_session_goes_on() {
    let mut d = Desktop::mutter();
    let relay = TestRelay::start().await;
    let agent = mutter_agent(&relay, &d, scopes("view,inventory"));
    killed_mid_view(&relay, agent, &mut d).await;
}

async fn killed_mid_view(relay: &TestRelay, mut agent: TestAgent, desktop: &mut Desktop) {
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view,inventory"))
        .await
        .unwrap();
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    desktop.kill();
    let err = loop {
        match tokio::time::timeout(WAIT, view.next_frame()).await {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => break e,
            Err(_) => panic!("the view never stopped after the compositor died"),
        }
    };
    let text = err.to_string();
    assert!(
        text.contains("Wayland compositor"),
        "a clear reason: {text}"
    );
    // The session goes on for the other scopes.
    session.inventory().await.unwrap();
    session.end().await;
}

// ---- Mutter (GNOME) through its own ScreenCast and RemoteDesktop APIs ----

/// Reads frames until the view equals an independent GStreamer frame of the Mutter desktop.
async fn until_mutter_frame(view: &mut ViewStream, d: &Desktop) {
    until_frame_matches(view, "GStreamer's frame", || {
        tokio::task::block_in_place(|| d.mutter_frame())
    })
    .await;
}

fn mutter_agent(relay: &TestRelay, d: &Desktop, answer: ScopeSet) -> TestAgent {
    let mutter = Arc::new(MutterDesktop::new(d.bus.clone(), Some(d.pipewire())));
    let mut config = ShareConfig::new(relay.target());
    config.screen = mutter.clone();
    config.input = mutter;
    TestAgent::spawn_with(config, Some(answer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutter_frames_match_and_typed_text_runs_in_foot() {
    let mut d = Desktop::mutter();
    d.spawn("foot", &[]);
    std::thread::sleep(Duration::from_secs(1));
    let relay = TestRelay::start().await;
    let mut agent = mutter_agent(&relay, &d, scopes("view,control"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view,control"))
        .await
        .unwrap();
    let displays = session.displays().await.unwrap();
    assert_eq!(
        (displays[0].width, displays[0].height),
        (1920, 1080),
        "{displays:?}"
    );
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    until_mutter_frame(&mut view, &d).await;

    let mut control = session.control(0).await.unwrap();
    control
        .send(&InputEvent::MouseMove { x: 960, y: 540 })
        .await
        .unwrap();
    let typed = d.path("typed.txt");
    type_keys(
        &mut control,
        &format!("echo by_mutter_keys > {}\n", typed.display()),
    )
    .await;
    assert_eq!(wait_for_file(&typed), "by_mutter_keys\n");
    let by_text = d.path("text.txt");
    type_line(
        &mut control,
        &format!("echo Mutter-Text > {}", by_text.display()),
    )
    .await;
    assert_eq!(wait_for_file(&by_text), "Mutter-Text\n");
    until_mutter_frame(&mut view, &d).await;
    session.end().await;
}

// ---- The desktop portal on GNOME (Mutter + xdg-desktop-portal-gnome) ----

/// `tether-agent share --once --backend portal` as the desktop's user (the portal serves only its
/// own user), with its data directory in the session; returns it with its stdout and code.
fn portal_agent(
    relay: &TestRelay,
    d: &Desktop,
    data: &std::path::Path,
) -> (Kill, std::sync::mpsc::Receiver<String>, String) {
    let target = relay.target();
    let Trust::Fingerprint(fp) = &target.trust else {
        unreachable!("the test relay is pinned by fingerprint")
    };
    let mut cmd = d.command(&bin("tether-agent").display().to_string());
    cmd.args([
        "share",
        "--once",
        "--backend",
        "portal",
        "--relay",
        &target.addr.to_string(),
    ])
    .args(["--relay-cert-sha256", fp])
    .env("TETHER_AGENT_DATA", data)
    .env("RUST_LOG", "info")
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut agent = Kill(cmd.spawn().unwrap());
    let out = lines(agent.0.stdout.take().unwrap());
    let code = wait_for_code(&out);
    (agent, out, code)
}

fn allow(agent: &mut Kill, out: &std::sync::mpsc::Receiver<String>) {
    use std::io::Write;
    wait_for(out, "Allow?");
    writeln!(agent.0.stdin.as_mut().unwrap(), "y").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_asks_after_our_consent_then_remembers_and_a_cancel_is_a_clear_reason() {
    let mut d = Desktop::gnome_portal();
    d.spawn("foot", &[]);
    let data = d.path("agent-data");
    std::fs::create_dir_all(&data).unwrap();
    d.give(&data);
    let relay = TestRelay::start().await;

    // Nothing before the grant: granted only inventory, a view is refused by the agent, and no
    // portal session was ever opened (so no dialog either).
    let (mut agent, out, code) = portal_agent(&relay, &d, &data);
    let console = relay.console();
    let opening = tokio::spawn(async move {
        open_session(&console, code.parse().unwrap(), scopes("inventory")).await
    });
    tokio::task::block_in_place(|| allow(&mut agent, &out));
    let mut session = opening.await.unwrap().unwrap();
    let err = session.view(0).await.unwrap_err();
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::View)),
        "{err:?}"
    );
    session.inventory().await.unwrap();
    assert_eq!(d.portal_sessions(), 0, "no portal session before the grant");
    session.end().await;
    drop(agent);

    // First session: the desktop's dialog comes after Tether's consent; the test answers Share.
    let (mut agent, out, code) = portal_agent(&relay, &d, &data);
    let console = relay.console();
    let opening =
        tokio::spawn(
            async move { open_session(&console, code.parse().unwrap(), scopes("view")).await },
        );
    tokio::task::block_in_place(|| allow(&mut agent, &out));
    let mut session = opening.await.unwrap().unwrap();
    let dialog = answer_portal_dialog(&d, true);
    let mut view = session.view(0).await.unwrap();
    dialog.join().unwrap();
    view.next_frame().await.unwrap();
    assert_eq!(
        (view.framebuffer.width, view.framebuffer.height),
        (1920, 1080)
    );
    until_mutter_frame(&mut view, &d).await;
    assert!(
        d.portal_sessions() >= 1,
        "the count does see an open screen cast"
    );
    session.end().await;
    drop(agent);
    let token = std::fs::read_to_string(data.join("portal-restore-token")).unwrap();
    assert!(!token.trim().is_empty(), "the restore token is kept");

    // Second session: the stored token restores the choice, and no dialog shows.
    let (mut agent, out, code) = portal_agent(&relay, &d, &data);
    let console = relay.console();
    let opening =
        tokio::spawn(
            async move { open_session(&console, code.parse().unwrap(), scopes("view")).await },
        );
    tokio::task::block_in_place(|| allow(&mut agent, &out));
    let mut session = opening.await.unwrap().unwrap();
    let mut view = tokio::time::timeout(WAIT, session.view(0))
        .await
        .expect("no dialog to wait for")
        .unwrap();
    view.next_frame().await.unwrap();
    until_mutter_frame(&mut view, &d).await;
    session.end().await;
    drop(agent);

    // Third session, without the token: the user cancels the desktop's dialog; the console hears
    // why and the session goes on for the other scopes.
    std::fs::remove_file(data.join("portal-restore-token")).unwrap();
    let (mut agent, out, code) = portal_agent(&relay, &d, &data);
    let console = relay.console();
    let opening = tokio::spawn(async move {
        open_session(&console, code.parse().unwrap(), scopes("view,inventory")).await
    });
    tokio::task::block_in_place(|| allow(&mut agent, &out));
    let mut session = opening.await.unwrap().unwrap();
    let dialog = answer_portal_dialog(&d, false);
    let err = match session.view(0).await {
        Err(e) => e,
        Ok(mut v) => v.next_frame().await.unwrap_err(),
    };
    dialog.join().unwrap();
    assert!(err.to_string().contains(SCREEN_REFUSED), "{err}");
    session.inventory().await.unwrap();
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_gives_control_after_its_dialog_and_typed_text_arrives() {
    let mut d = Desktop::gnome_portal();
    d.spawn("foot", &[]);
    let data = d.path("agent-data");
    std::fs::create_dir_all(&data).unwrap();
    d.give(&data);
    let relay = TestRelay::start().await;
    let (mut agent, out, code) = portal_agent(&relay, &d, &data);
    let console = relay.console();
    let opening = tokio::spawn(async move {
        open_session(&console, code.parse().unwrap(), scopes("control")).await
    });
    tokio::task::block_in_place(|| allow(&mut agent, &out));
    let mut session = opening.await.unwrap().unwrap();
    let dialog = answer_remote_desktop_dialog(&d);
    let mut control = session.control(0).await.unwrap();
    dialog.join().unwrap();
    // The dialog had the focus; give it back to the terminal, then type.
    control
        .send(&InputEvent::MouseMove { x: 960, y: 540 })
        .await
        .unwrap();
    control
        .send(&InputEvent::Button {
            button: MouseButton::Left,
            action: Action::Click,
        })
        .await
        .unwrap();
    let typed = d.path("portal-typed.txt");
    type_keys(
        &mut control,
        &format!("echo through_the_portal > {}\n", typed.display()),
    )
    .await;
    assert_eq!(wait_for_file(&typed), "through_the_portal\n");
    session.end().await;
}
