//! Screen view and remote control end to end: a private Xvfb per test, the real relay, agent (scrap
//! capture, enigo input) and console over QUIC on loopback, checked against independent X tools
//! (ImageMagick `import`, `xdotool`, a real xterm).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use tether_agent::ShareConfig;
use tether_agent::screen::{ScrapScreen, X11Input};
use tether_agent::ui::{AgentEvent, UserCommand};
use tether_console::screen::ViewStream;
use tether_console::{ConsoleError, Session, open_session};
use tether_proto::screen::{Action, InputEvent, MouseButton};
use tether_proto::{Scope, ScopeSet};
use tether_tests::grant::nothing_before_the_grant;
use tether_tests::{TestAgent, TestRelay, WAIT, Xvfb, until_frame_matches};

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

/// An agent on `x` whose user grants `answer`, and a console session asking for `ask`.
async fn session_on(
    relay: &TestRelay,
    x: &Xvfb,
    answer: ScopeSet,
    ask: ScopeSet,
) -> (TestAgent, Session) {
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    let mut agent = TestAgent::spawn_with(config, Some(answer));
    let code = agent.code().await;
    let session = open_session(&relay.console(), code, ask).await.unwrap();
    (agent, session)
}

fn pixel(view: &ViewStream, px: u32, py: u32) -> [u8; 3] {
    let i = (py * view.framebuffer.width + px) as usize * 4;
    let p = &view.framebuffer.pixels[i..i + 4];
    [p[2], p[1], p[0]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewed_screen_equals_an_independent_screenshot_and_changes_arrive() {
    let mut x = Xvfb::start(141);
    assert!(x.cmd("xsetroot", &["-solid", "#3366cc"]).status.success());
    x.spawn(
        "xterm",
        &[
            "-geometry",
            "60x8+100+100",
            "-hold",
            "-e",
            "echo",
            "TETHER KNOWN TEXT 12345",
        ],
    );
    assert!(
        x.cmd(
            "xdotool",
            &["search", "--sync", "--onlyvisible", "--class", "xterm"]
        )
        .status
        .success()
    );
    let relay = TestRelay::start().await;
    let (mut agent, mut session) = session_on(&relay, &x, scopes("view"), scopes("view")).await;

    let displays = session.displays().await.unwrap();
    assert_eq!(displays.len(), 1);
    assert_eq!((displays[0].width, displays[0].height), (1920, 1080));

    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    until_frame_matches(&mut view, "the screenshot", || x.screenshot()).await;
    assert_eq!(pixel(&view, 5, 5), [0x33, 0x66, 0xcc], "root colour");
    // The xterm (white background by default) covers part of the screen.
    assert_ne!(
        pixel(&view, 150, 130),
        [0x33, 0x66, 0xcc],
        "the xterm is visible"
    );
    agent
        .expect("viewing shown to the user", |e| {
            matches!(e, AgentEvent::Viewing { technician, active: true, .. }
                if technician == "Ada Lovelace of Acme IT")
        })
        .await;

    // Change the screen: the change arrives, as dirty tiles.
    let before = view.pixel_bytes;
    assert!(x.cmd("xsetroot", &["-solid", "#cc6633"]).status.success());
    until_frame_matches(&mut view, "the screenshot", || x.screenshot()).await;
    assert_eq!(pixel(&view, 5, 5), [0xcc, 0x66, 0x33]);
    assert!(view.pixel_bytes > before);

    view.close().await;
    session.end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_is_refused_without_control_and_arrives_with_it() {
    let mut x = Xvfb::start(142);
    let dir = tempfile::tempdir().unwrap();
    let typed = dir.path().join("typed.txt");
    // A real xterm whose shell writes the first line typed into it to a file.
    let script = format!("head -n 1 > {}", typed.display());
    x.spawn(
        "xterm",
        &["-geometry", "80x24+0+0", "-e", "sh", "-c", &script],
    );
    assert!(
        x.cmd(
            "xdotool",
            &["search", "--sync", "--onlyvisible", "--class", "xterm"]
        )
        .status
        .success()
    );
    assert!(
        x.cmd("xdotool", &["mousemove", "700", "600"])
            .status
            .success()
    );
    let relay = TestRelay::start().await;

    // 1. The user grants view only: the control stream is refused and the pointer does not move.
    let (agent, mut session) = session_on(&relay, &x, scopes("view"), scopes("view,control")).await;
    assert_eq!(session.granted, scopes("view"));
    let err = session.control(0).await.unwrap_err();
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Control)),
        "{err:?}"
    );
    assert_eq!(
        x.pointer(),
        (700, 600),
        "a refused click must not move the pointer"
    );
    session.end().await;
    let _ = tokio::time::timeout(WAIT, agent.task).await;

    // 2. With control: the click moves the pointer, and typing reaches the xterm.
    let (mut agent, mut session) =
        session_on(&relay, &x, scopes("view,control"), scopes("view,control")).await;
    let mut control = session.control(0).await.unwrap();
    control
        .send(&InputEvent::MouseMove { x: 200, y: 150 })
        .await
        .unwrap();
    control
        .send(&InputEvent::Button {
            button: MouseButton::Left,
            action: Action::Click,
        })
        .await
        .unwrap();
    assert_eq!(x.pointer(), (200, 150));
    agent
        .expect("control in use shown to the user", |e| {
            matches!(e, AgentEvent::Controlling { active: true, .. })
        })
        .await;
    control
        .send(&InputEvent::Text("hello tether\n".into()))
        .await
        .unwrap();
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&typed).unwrap_or_default();
        if text.ends_with('\n') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(text, "hello tether\n");

    // 3. The user takes control back: the session goes on, the next event is refused.
    agent
        .commands
        .send(UserCommand::RevokeControl)
        .await
        .unwrap();
    agent
        .expect("revocation", |e| {
            matches!(
                e,
                AgentEvent::Revoked {
                    scope: Scope::Control
                }
            )
        })
        .await;
    let err = control
        .send(&InputEvent::MouseMove { x: 20, y: 20 })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Control)),
        "{err:?}"
    );
    assert_eq!(
        x.pointer(),
        (200, 150),
        "a revoked move must not move the pointer"
    );
    // View still works: the session was not ended.
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    session.end().await;
}

/// Nothing is captured (nor injected) before the grant, on X11 (`tether_tests::grant`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_captured_before_view_is_granted() {
    let x = Xvfb::start(143);
    nothing_before_the_grant(
        Arc::new(ScrapScreen::new(Some(x.display.clone()))),
        Arc::new(X11Input::new(Some(x.display.clone()))),
    )
    .await;
}

/// Issue 18: with X11 DAMAGE a still screen is not captured, and one pixel drawn on it is seen
/// through the damage path: the agent's own backend reads only the damaged rectangles, reports
/// them, and its picture still equals an independent screenshot (ImageMagick `import`) pixel for
/// pixel, after changes in two places.
#[test]
fn damage_driven_capture_sees_a_one_pixel_change() {
    use tether_agent::screen::ScreenProvider;
    use tether_proto::screen::Rect;
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt, CoordMode, CreateGCAux, Point};

    let x = Xvfb::start(144);
    assert!(x.cmd("xsetroot", &["-solid", "#3366cc"]).status.success());
    let mut source = ScrapScreen::new(Some(x.display.clone())).open(0).unwrap();
    let width = source.info().width as usize;
    let deadline = std::time::Instant::now() + WAIT;
    // Until the screen has settled: a capture clears the damage, and nothing more is drawn.
    let before = loop {
        let frame = source.capture().unwrap().to_vec();
        std::thread::sleep(Duration::from_millis(300));
        if source.unchanged() {
            break frame;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the screen never settled"
        );
    };
    assert!(source.unchanged(), "a still screen stays unchanged");

    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, root, &CreateGCAux::new().foreground(0x00ff_0000))
        .unwrap();
    let mut expected = before;
    for (i, (px, py)) in [(777usize, 555usize), (1900, 20)].into_iter().enumerate() {
        let colour = [0x00ff_0000u32, 0x0000_ff00][i];
        conn.change_gc(gc, &ChangeGCAux::new().foreground(colour))
            .unwrap();
        let at = Point {
            x: px as i16,
            y: py as i16,
        };
        conn.poly_point(CoordMode::ORIGIN, root, gc, &[at]).unwrap();
        conn.get_input_focus().unwrap().reply().unwrap();

        while source.unchanged() {
            assert!(
                std::time::Instant::now() < deadline,
                "the one-pixel change was never reported"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let shot = source.capture_damage().unwrap();
        let damage = shot
            .damage
            .clone()
            .expect("the damage path reports what it read");
        let inside = |r: &Rect| {
            (r.x as usize..(r.x + r.w) as usize).contains(&px)
                && (r.y as usize..(r.y + r.h) as usize).contains(&py)
        };
        assert!(damage.iter().any(inside), "{damage:?} misses ({px}, {py})");
        let area: u64 = damage.iter().map(|r| u64::from(r.w) * u64::from(r.h)).sum();
        assert!(
            area < 64 * 64,
            "only the damage is read, not {area} pixels: {damage:?}"
        );
        let after = shot.pixels.to_vec();
        let differ: Vec<usize> = (0..expected.len() / 4)
            .filter(|i| expected[i * 4..i * 4 + 3] != after[i * 4..i * 4 + 3])
            .collect();
        assert_eq!(differ, vec![py * width + px], "exactly the pixel drawn");
        let j = (py * width + px) * 4;
        let bgr = [colour as u8, (colour >> 8) as u8, (colour >> 16) as u8];
        assert_eq!(&after[j..j + 3], &bgr, "the colour drawn, as B G R");
        expected = after;
    }
    // The picture kept from damaged rectangles is the screen, pixel for pixel.
    let (w, h, rgb) = x.screenshot();
    assert_eq!(
        (w as usize, h as usize),
        (width, expected.len() / 4 / width)
    );
    assert!(
        tether_tests::bgrx_to_rgb(&expected) == rgb,
        "the damage-captured picture differs from the screenshot"
    );
}

/// Issue 18: a small frame's acknowledgement waits for the next frame. One-pixel changes, each
/// followed by a still screen (nothing more to send), must each arrive: a held-back acknowledgement
/// must not keep the agent from sending the next frame. They also cost fewer acknowledgements than
/// frames (what the holding back is for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pixel_changes_after_still_screens_each_arrive_with_fewer_acknowledgements() {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt, CoordMode, CreateGCAux, Point};

    let x = Xvfb::start(146);
    assert!(x.cmd("xsetroot", &["-solid", "#3366cc"]).status.success());
    let relay = TestRelay::start().await;
    let (_agent, mut session) = session_on(&relay, &x, scopes("view"), scopes("view")).await;
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    until_frame_matches(&mut view, "the first screenshot", || x.screenshot()).await;

    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
    let (frames, acks) = (view.frames, view.acks);
    let changes = 6u32;
    for i in 0..changes {
        let colour = [0x00ff_0000, 0x0000_ff00, 0x0000_00ff][i as usize % 3];
        conn.change_gc(gc, &ChangeGCAux::new().foreground(colour))
            .unwrap();
        let at = Point {
            x: 300 + 40 * i as i16,
            y: 400,
        };
        conn.poly_point(CoordMode::ORIGIN, root, gc, &[at]).unwrap();
        conn.get_input_focus().unwrap().reply().unwrap();
        until_frame_matches(
            &mut view,
            &format!("the screenshot after change {i}"),
            || x.screenshot(),
        )
        .await;
        // A still screen: the agent has nothing to send until the next change.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let (frames, acks) = (view.frames - frames, view.acks - acks);
    assert!(frames >= u64::from(changes), "{frames} frames");
    assert!(
        acks < frames,
        "small frames share acknowledgements: {acks} for {frames} frames"
    );
    view.close().await;
    session.end().await;
}

/// Issue 18: text scrolling in an xterm and a window moved across the screen arrive as copies, and
/// once the screen is still the console's framebuffer equals an independent screenshot pixel for
/// pixel (copies are exact, never approximations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolled_and_moved_pixels_arrive_as_copies_and_stay_lossless() {
    let mut x = Xvfb::start(145);
    assert!(x.cmd("xsetroot", &["-solid", "#2e5a88"]).status.success());
    x.spawn(
        "xterm",
        &[
            "-geometry",
            "90x30+0+0",
            "-e",
            "sh",
            "-c",
            "sleep 2; for i in $(seq 1 120); do echo \"line $i: the quick brown fox $i jumps\"; sleep 0.03; done; sleep 100000",
        ],
    );
    x.spawn(
        "xterm",
        &[
            "-geometry",
            "60x20+1100+500",
            "-title",
            "mover",
            "-e",
            "sh",
            "-c",
            "ls -la /usr/bin | head -20; sleep 100000",
        ],
    );
    assert!(
        x.cmd(
            "xdotool",
            &["search", "--sync", "--onlyvisible", "--name", "mover"]
        )
        .status
        .success()
    );
    let relay = TestRelay::start().await;
    let (_agent, mut session) = session_on(&relay, &x, scopes("view"), scopes("view")).await;
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    x.spawn(
        "sh",
        &[
            "-c",
            "id=$(xdotool search --name mover | head -1); for p in $(seq 1 40); do xdotool windowmove $id $((1100 - p * 17)) $((500 - p * 6)); sleep 0.05; done",
        ],
    );
    // Scrolling and moving go on for about 4 s; read frames meanwhile.
    let end = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < end {
        if let Ok(r) = tokio::time::timeout_at(end, view.next()).await {
            r.unwrap();
        }
    }
    until_frame_matches(
        &mut view,
        "the screenshot after scrolling and moving",
        || x.screenshot(),
    )
    .await;
    assert!(
        view.copies > 10,
        "scrolling and moving should arrive as copies, got {}",
        view.copies
    );
    view.close().await;
    session.end().await;
}

/// Issue 18: a window that plays video (ImageMagick's `animate` over frames of noise) goes through
/// the video codec while it plays, the xterm beside it stays lossless, and once it stops the region
/// is sent exactly again: the console's framebuffer equals an independent screenshot pixel for
/// pixel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playing_video_goes_lossy_and_is_exact_again_once_it_stops() {
    let mut x = Xvfb::start(147);
    assert!(x.cmd("xsetroot", &["-solid", "#2e5a88"]).status.success());
    let frames = tempfile::tempdir().unwrap();
    for i in 0..10 {
        let out = frames.path().join(format!("f{i}.png"));
        let made = std::process::Command::new("convert")
            .args(["-size", "320x240", "xc:gray", "-seed", &i.to_string()])
            .args(["+noise", "Random", "-blur", "0x1"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(made.success(), "convert made frame {i}");
    }
    x.spawn(
        "xterm",
        &[
            "-geometry",
            "60x10+900+600",
            "-hold",
            "-e",
            "echo",
            "TEXT BESIDE THE VIDEO 0123456789",
        ],
    );
    let relay = TestRelay::start().await;
    let (_agent, mut session) = session_on(&relay, &x, scopes("view"), scopes("view")).await;
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    let pattern = frames.path().join("f*.png");
    let pattern = pattern.to_str().unwrap();
    // 10 frames 40 ms apart, 8 times over (about 3 s), then the last frame stays up.
    x.spawn(
        "animate",
        &[
            "-geometry",
            "+200+150",
            "-delay",
            "4",
            "-loop",
            "8",
            pattern,
        ],
    );
    let end = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < end {
        if let Ok(r) = tokio::time::timeout_at(end, view.next()).await {
            r.unwrap();
        }
    }
    assert!(
        view.video_bytes > 0,
        "the playing window should have gone through the video codec ({} pixel bytes, no video)",
        view.pixel_bytes
    );
    until_frame_matches(&mut view, "the screenshot once the video stopped", || {
        x.screenshot()
    })
    .await;
    view.close().await;
    session.end().await;
}
