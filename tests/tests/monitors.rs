//! Monitors and the user's cursor end to end: one Xvfb split into two RandR monitors
//! (`xrandr --setmonitor`), each painted its own colour by a real X client, the real relay, agent
//! (scrap capture, XFixes cursor, enigo input) and console over QUIC on loopback, checked against
//! independent X tools (ImageMagick `import`, `xdotool`). The viewer window test drives the real
//! `tether-console connect` window with xdotool on the console's own X server.
//!
//! `TETHER_SCREENSHOTS=$PWD/docs cargo test -p tether-tests --test monitors` refreshes
//! docs/viewer-monitors.png and docs/console-monitors.png.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tether_agent::ShareConfig;
use tether_agent::screen::{ScrapScreen, X11Input};
use tether_agent::ui::AgentEvent;
use tether_console::open_session;
use tether_console::screen::ViewStream;
use tether_proto::ScopeSet;
use tether_proto::screen::{ALL_MONITORS, Action, InputEvent, MouseButton};
use tether_tests::gui::{Gui, relay_args};
use tether_tests::procs::bin;
use tether_tests::{TestAgent, TestRelay, WAIT, Xvfb, until_frame_matches};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt, CreateWindowAux, WindowClass};
use x11rb::rust_connection::RustConnection;

const RED: [u8; 3] = [0xcc, 0x22, 0x22];
const BLUE: [u8; 3] = [0x22, 0x44, 0xcc];
const GREEN: [u8; 3] = [0x22, 0xbb, 0x44];

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

/// An X client's window of one colour at a place (kept while the connection lives).
fn paint(
    conn: &RustConnection,
    screen: usize,
    (x, y, w, h): (i16, i16, u16, u16),
    [r, g, b]: [u8; 3],
) {
    let root = conn.setup().roots[screen].root;
    let id = conn.generate_id().unwrap();
    let pixel = u32::from(r) << 16 | u32::from(g) << 8 | u32::from(b);
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        id,
        root,
        x,
        y,
        w,
        h,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new()
            .background_pixel(pixel)
            .override_redirect(1),
    )
    .unwrap();
    conn.map_window(id).unwrap();
    conn.get_input_focus().unwrap().reply().unwrap();
}

/// A 2560x1024 Xvfb as two 1280x1024 RandR monitors, LEFT red and RIGHT blue with a green square at
/// (100, 100) of RIGHT; the painting client is returned with it.
fn two_monitors() -> (Xvfb, RustConnection) {
    two_monitors_on("none")
}

/// As [`two_monitors`]; LEFT takes the output `left_output` ("none": Xvfb keeps its automatic
/// whole-screen monitor beside the two; "screen": it does not).
fn two_monitors_on(left_output: &str) -> (Xvfb, RustConnection) {
    let x = Xvfb::start_free_sized(2560, 1024);
    for (name, geometry, output) in [
        ("LEFT", "1280/338x1024/270+0+0", left_output),
        ("RIGHT", "1280/338x1024/270+1280+0", "none"),
    ] {
        let out = x.cmd("xrandr", &["--setmonitor", name, geometry, output]);
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "xrandr --setmonitor (install x11-xserver-utils): {out:?}"
        );
    }
    let list = x.cmd("xrandr", &["--listmonitors"]);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        list.contains("LEFT") && list.contains("RIGHT"),
        "the X server did not take the monitors: {list}"
    );
    let (conn, screen) = x11rb::connect(Some(&x.display)).unwrap();
    paint(&conn, screen, (0, 0, 1280, 1024), RED);
    paint(&conn, screen, (1280, 0, 1280, 1024), BLUE);
    paint(&conn, screen, (1380, 100, 50, 50), GREEN);
    (x, conn)
}

fn agent_on(relay: &TestRelay, x: &Xvfb, answer: ScopeSet) -> TestAgent {
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    TestAgent::spawn_with(config, Some(answer))
}

/// The `w`x`h` RGB rectangle at (`x0`, `y0`) of an RGB picture `width` wide.
fn crop(rgb: &[u8], width: u32, (x0, y0, w, h): (u32, u32, u32, u32)) -> Vec<u8> {
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in y0..y0 + h {
        let s = ((y * width + x0) * 3) as usize;
        out.extend_from_slice(&rgb[s..s + (w * 3) as usize]);
    }
    out
}

/// Reads frames until the view equals the `rect` of an independent screenshot, or fails after WAIT.
async fn until_rect(view: &mut ViewStream, x: &Xvfb, rect: (u32, u32, u32, u32)) {
    let what = format!("the screenshot's {rect:?}");
    until_frame_matches(view, &what, || {
        let (w, _, shot) = x.screenshot();
        (rect.2, rect.3, crop(&shot, w, rect))
    })
    .await;
}

fn pixel(rgb_bgrx: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * width + x) * 4) as usize;
    [rgb_bgrx[i + 2], rgb_bgrx[i + 1], rgb_bgrx[i]]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_monitors_are_two_displays_plus_all_each_showing_its_pixels_and_taking_its_clicks() {
    let (x, _painter) = two_monitors();
    assert!(
        x.cmd("xdotool", &["mousemove", "5", "1000"])
            .status
            .success()
    );
    let relay = TestRelay::start().await;
    let mut agent = agent_on(&relay, &x, scopes("view,control"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view,control"))
        .await
        .unwrap();

    let displays = session.displays().await.unwrap();
    let got: Vec<_> = displays
        .iter()
        .map(|d| (d.index, d.name.as_str(), d.x, d.y, d.width, d.height))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "LEFT", 0, 0, 1280, 1024),
            (1, "RIGHT", 1280, 0, 1280, 1024),
            (2, ALL_MONITORS, 0, 0, 2560, 1024),
        ]
    );

    // Each monitor's view is that monitor's pixels, exactly; "all" is the whole screen. All three
    // on one session, one after the other (as the picker switches).
    for (i, rect) in [
        (0, (0, 0, 1280, 1024)),
        (1, (1280, 0, 1280, 1024)),
        (2, (0, 0, 2560, 1024)),
    ] {
        let mut view = session.view(i).await.unwrap();
        view.next_frame().await.unwrap();
        until_rect(&mut view, &x, rect).await;
        let (fb, w) = (&view.framebuffer.pixels, view.framebuffer.width);
        match i {
            0 => assert_eq!(pixel(fb, w, 640, 512), RED),
            1 => {
                assert_eq!(pixel(fb, w, 640, 512), BLUE);
                assert_eq!(pixel(fb, w, 120, 120), GREEN, "RIGHT's own pattern");
            }
            _ => {
                assert_eq!(pixel(fb, w, 640, 512), RED);
                assert_eq!(pixel(fb, w, 1920, 512), BLUE);
            }
        }
        view.close().await;
    }

    // Clicks on monitor 2 land at its origin + the point, and stay on it however far out.
    let mut control = session.control(1).await.unwrap();
    control
        .send(&InputEvent::MouseMove { x: 100, y: 200 })
        .await
        .unwrap();
    control
        .send(&InputEvent::Button {
            button: MouseButton::Left,
            action: Action::Click,
        })
        .await
        .unwrap();
    assert_eq!(x.pointer(), (1380, 200));
    control
        .send(&InputEvent::MouseMove { x: -500, y: 5000 })
        .await
        .unwrap();
    assert_eq!(x.pointer(), (1280, 1023), "kept on monitor 2");
    control.close().await;
    // The same point on monitor 1 is 1280 pixels to the left.
    let mut control = session.control(0).await.unwrap();
    control
        .send(&InputEvent::MouseMove { x: 100, y: 200 })
        .await
        .unwrap();
    assert_eq!(x.pointer(), (100, 200));
    control.close().await;
    session.end().await;
}

/// With no monitor covering the whole screen (LEFT took Xvfb's output), "all monitors" is put
/// together from the two monitors' captures, and still equals the screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_monitors_is_put_together_when_no_monitor_covers_the_screen() {
    let (x, _painter) = two_monitors_on("screen");
    let list = x.cmd("xrandr", &["--listmonitors"]);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.starts_with("Monitors: 2"), "{list}");
    let relay = TestRelay::start().await;
    let mut agent = agent_on(&relay, &x, scopes("view"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view"))
        .await
        .unwrap();
    let names: Vec<_> = session
        .displays()
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.width))
        .collect();
    assert_eq!(
        names,
        vec![
            ("LEFT".to_string(), 1280),
            ("RIGHT".to_string(), 1280),
            (ALL_MONITORS.to_string(), 2560)
        ]
    );
    let mut view = session.view(2).await.unwrap();
    view.next_frame().await.unwrap();
    until_rect(&mut view, &x, (0, 0, 2560, 1024)).await;
    let (fb, w) = (&view.framebuffer.pixels, view.framebuffer.width);
    assert_eq!(pixel(fb, w, 1279, 0), RED);
    assert_eq!(pixel(fb, w, 1280, 0), BLUE);
    assert_eq!(pixel(fb, w, 1405, 125), GREEN);
    view.close().await;
    session.end().await;
}

/// Reads until the view has a cursor shape and the pointer at `at`.
async fn until_cursor_at(view: &mut ViewStream, at: (i32, i32)) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while view.cursor != Some(at) || view.cursor_shape.is_none() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, view.next()).await {
            Ok(r) => {
                r.unwrap();
            }
            Err(_) => panic!(
                "the cursor never arrived at {at:?}: {:?}, shape {}",
                view.cursor,
                view.cursor_shape.is_some()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_cursor_is_drawn_where_their_pointer_is_and_nowhere_else() {
    let (x, _painter) = two_monitors();
    assert!(
        x.cmd("xdotool", &["mousemove", "1500", "300"])
            .status
            .success()
    );
    let relay = TestRelay::start().await;
    let mut agent = agent_on(&relay, &x, scopes("view"));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view"))
        .await
        .unwrap();

    // On monitor 2 the pointer at (1500, 300) of the screen is (220, 300) of the display.
    let mut view = session.view(1).await.unwrap();
    view.next_frame().await.unwrap();
    until_cursor_at(&mut view, (220, 300)).await;
    let shape = view.cursor_shape.clone().unwrap();
    shape.check().unwrap();
    assert!(shape.serial > 0, "the XFixes serial");
    let drawn = view.with_cursor();
    let (w, h) = (drawn.width, drawn.height);
    let (left, top) = (220 - i64::from(shape.hot_x), 300 - i64::from(shape.hot_y));
    let (mut inside, mut outside) = (0, 0);
    for y in 0..h {
        for x in 0..w {
            if pixel(&drawn.pixels, w, x, y) != pixel(&view.framebuffer.pixels, w, x, y) {
                let (x, y) = (i64::from(x), i64::from(y));
                let within = x >= left
                    && x < left + i64::from(shape.width)
                    && y >= top
                    && y < top + i64::from(shape.height);
                if within {
                    inside += 1;
                } else {
                    outside += 1;
                }
            }
        }
    }
    assert!(inside > 10, "cursor pixels at the pointer: {inside}");
    assert_eq!(outside, 0, "no cursor pixels elsewhere");

    // It follows the pointer.
    assert!(
        x.cmd("xdotool", &["mousemove", "2000", "800"])
            .status
            .success()
    );
    until_cursor_at(&mut view, (720, 800)).await;

    // On a still screen (idle capture is 5 per second) a moving pointer is still followed at the
    // full rate: 50 moves over a second arrive as far more than 5 positions.
    let idle = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(r) = tokio::time::timeout_at(idle, view.next()).await {
        r.unwrap();
    }
    let display = x.display.clone();
    let mover = tokio::task::spawn_blocking(move || {
        let mut args: Vec<String> = Vec::new();
        for i in 0..50 {
            args.extend(["mousemove".into(), (1400 + 4 * i).to_string(), "500".into()]);
            args.extend(["sleep".into(), "0.02".into()]);
        }
        Command::new("xdotool")
            .args(args)
            .env("DISPLAY", display)
            .status()
            .unwrap()
    });
    let (mut positions, end) = (0, tokio::time::Instant::now() + Duration::from_millis(1500));
    while let Ok(r) = tokio::time::timeout_at(end, view.next()).await {
        if let tether_console::screen::ViewEvent::Cursor { .. } = r.unwrap() {
            positions += 1;
        }
    }
    assert!(mover.await.unwrap().success());
    eprintln!("{positions} pointer positions in 1.5 s");
    assert!(
        positions >= 12,
        "the pointer is followed at the full rate on a still screen: {positions} positions"
    );
    view.close().await;

    // On monitor 1 the pointer is off the display: nothing is drawn.
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    until_cursor_at(&mut view, (1596, 500)).await;
    assert_eq!(view.with_cursor(), view.framebuffer);
    view.close().await;
    session.end().await;
}

/// `connect --headless --snapshot F --cursor`: the PNG has the cursor where the pointer is, and
/// without `--cursor` it does not; `displays` names the monitors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_draws_the_cursor_when_asked_and_displays_lists_the_monitors() {
    let (x, _painter) = two_monitors();
    assert!(
        x.cmd("xdotool", &["mousemove", "640", "512"])
            .status
            .success()
    );
    let relay = TestRelay::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut pictures = Vec::new();
    for with_cursor in [false, true] {
        let mut agent = agent_on(&relay, &x, scopes("view"));
        let code = agent.code().await.to_string();
        let path = dir.path().join(format!("{with_cursor}.png"));
        let path_s = path.to_str().unwrap().to_string();
        let mut args = vec![
            "connect",
            "--code",
            &code,
            "--display",
            "0",
            "--headless",
            "--snapshot",
            &path_s,
        ];
        if with_cursor {
            args.push("--cursor");
        }
        let out = tokio::task::spawn_blocking({
            let (relay_args, token) = (relay_args(&relay), relay.token.clone());
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            move || {
                Command::new("timeout")
                    .arg("60")
                    .arg(bin("tether-console"))
                    .args(relay_args)
                    .args(args)
                    .env("TETHER_TOKEN", token)
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("not known"), "{err}");
        let mut dec =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        dec.set_transformations(png::Transformations::EXPAND);
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (1280, 1024));
        buf.truncate(info.buffer_size());
        pictures.push(buf);
    }
    let differ: Vec<(usize, usize)> = pictures[0]
        .chunks(3)
        .zip(pictures[1].chunks(3))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| (i % 1280, i / 1280))
        .collect();
    assert!(
        differ.len() > 10,
        "the cursor is drawn: {} pixels",
        differ.len()
    );
    for (px, py) in &differ {
        assert!(
            (576..704).contains(px) && (448..576).contains(py),
            "cursor pixel at ({px}, {py}), far from the pointer at (640, 512)"
        );
    }
    assert!(
        pictures[0].chunks(3).all(|p| p == RED),
        "no cursor without --cursor"
    );

    // `displays` lists both monitors and "all monitors", by name.
    let mut agent = agent_on(&relay, &x, scopes("view"));
    let code = agent.code().await.to_string();
    let out = tokio::task::spawn_blocking({
        let (relay_args, token) = (relay_args(&relay), relay.token.clone());
        move || {
            Command::new("timeout")
                .arg("60")
                .arg(bin("tether-console"))
                .args(relay_args)
                .args(["displays", "--code", &code])
                .env("TETHER_TOKEN", token)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "display 0: LEFT 1280x1024 at (0, 0)\n\
         display 1: RIGHT 1280x1024 at (1280, 0)\n\
         display 2: all monitors 2560x1024 at (0, 0)\n"
    );
}

/// The pixel at (`x`, `y`) of a screenshot of `display`.
fn shot_pixel(display: &str, x: i32, y: i32) -> [u8; 3] {
    let out = Command::new("import")
        .args(["-display", display, "-window", "root", "-crop"])
        .arg(format!("1x1+{x}+{y}"))
        .args(["-depth", "8", "rgb:-"])
        .output()
        .expect("import (install imagemagick)");
    assert!(out.status.success(), "{out:?}");
    [out.stdout[0], out.stdout[1], out.stdout[2]]
}

/// Waits until the screenshot pixel at `at` is `want`.
fn until_pixel(display: &str, at: (i32, i32), want: [u8; 3]) {
    let mut last = [0; 3];
    for _ in 0..60 {
        last = shot_pixel(display, at.0, at.1);
        if last == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("the viewer never showed {want:?} at {at:?}; it shows {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_switches_monitors_within_the_session() {
    use tether_console::displays::{display_button, fit_button};
    use tether_console::viewer::PICKER;
    let (x, painter) = two_monitors();
    assert!(
        x.cmd("xdotool", &["mousemove", "5", "1000"])
            .status
            .success()
    );
    let relay = TestRelay::start().await;
    let mut agent = agent_on(&relay, &x, scopes("view,control"));
    let code = agent.code().await.to_string();
    let mut c = Command::new(bin("tether-console"));
    c.args(relay_args(&relay))
        .args(["connect", "--code", &code])
        .env("TETHER_TOKEN", &relay.token);
    let viewer = tokio::task::spawn_blocking(move || Gui::start(c, (1920, 1080), "Tether viewer"))
        .await
        .unwrap();
    let v = viewer;
    let d = v.x.display.clone();
    let centre = |r: [f32; 4]| ((r[0] + r[2] / 2.0) as i32, (r[1] + r[3] / 2.0) as i32);
    // Somewhere inside the fitted picture, away from the remote pointer (parked bottom-left).
    let inside = (500, 300);
    let shown = tokio::task::spawn_blocking({
        let d = d.clone();
        move || {
            let line = v.expect("viewer: showing display 0");
            assert!(line.contains("LEFT 1280x1024 at (0, 0)"), "{line}");
            until_pixel(&d, inside, RED);
            // Switch to monitor 2 with the picker: the same session shows RIGHT.
            v.click(centre(display_button(PICKER, 1)));
            let line = v.expect("viewer: showing display");
            assert!(
                line.contains("display 1 RIGHT 1280x1024 at (1280, 0)"),
                "{line}"
            );
            until_pixel(&d, inside, BLUE);
            // A click in the picture lands on monitor 2.
            v.click(inside);
            // Fitted, RIGHT's green square (100..150 of 1280) is near the picture's corner; at
            // 1:1 it is at 100..150 points from the corner (with scroll bars for the rest).
            let square = (8 + 125, 46 + 125);
            until_pixel(&d, square, BLUE);
            v.click(centre(fit_button(PICKER)));
            until_pixel(&d, square, GREEN);
            v.screenshot("viewer-monitors", [1280.0, 760.0], (1270, 20));
            v.click(centre(fit_button(PICKER)));
            until_pixel(&d, square, BLUE);
            // "All monitors", then back to the first.
            v.click(centre(display_button(PICKER, 2)));
            let line = v.expect("viewer: showing display");
            assert!(line.contains("display 2 all monitors 2560x1024"), "{line}");
            v.click(centre(display_button(PICKER, 0)));
            let line = v.expect("viewer: showing display");
            assert!(line.contains("display 0 LEFT"), "{line}");
            until_pixel(&d, inside, RED);
            v
        }
    })
    .await
    .unwrap();
    // A change once the picture is up reaches the window as a partial texture update, and the
    // window, which has no repaint timer, is woken to draw it (issue 18).
    paint(&painter, 0, (400, 300, 800, 700), GREEN);
    tokio::task::spawn_blocking(move || until_pixel(&d, inside, GREEN))
        .await
        .unwrap();
    let (px, _) = x.pointer();
    assert!(
        px > 1280 + 100,
        "the click on monitor 2's picture moved the user's pointer onto monitor 2: x = {px}"
    );
    // One session all along: a view per display shown, one pairing, no end.
    let seen = agent.seen.lock().unwrap().clone();
    let views = seen
        .iter()
        .filter(|e| matches!(e, AgentEvent::Viewing { active: true, .. }))
        .count();
    let paired = seen
        .iter()
        .filter(|e| matches!(e, AgentEvent::Paired { .. }))
        .count();
    assert_eq!((views, paired), (4, 1), "{seen:?}");
    assert!(!agent.saw(|e| matches!(e, AgentEvent::Ended { .. })));
    drop(shown);
}

/// How many pixels of `rgb` (`width` wide) in `[x0, x1) x [y0, y1)` are `colour`.
fn count(rgb: &[u8], width: u32, (x0, y0, x1, y1): (u32, u32, u32, u32), colour: [u8; 3]) -> usize {
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|(x, y)| {
            let i = ((y * width + x) * 3) as usize;
            rgb[i..i + 3] == colour
        })
        .count()
}

/// The console window made 1024x700 keeps End and the live screen; its picker switches between
/// the user's two monitors within the session; the user's cursor is drawn where their pointer is.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_window_at_1024x700_keeps_end_and_the_screen_and_switches_monitors() {
    use tether_agent::window::layout as agent;
    use tether_console::window::layout as console;
    const ROOT: [u8; 3] = [0x22, 0xbb, 0x44];
    let relay = TestRelay::start().await;
    let a = Gui::agent(&relay, 60);
    // The user's 1280x800 screen as two 640x800 monitors, the agent window (900x600) over the left.
    let xa = |args: &[&str]| {
        let out = Command::new(args[0])
            .args(&args[1..])
            .env("DISPLAY", &a.x.display)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{args:?}: {out:?}"
        );
    };
    xa(&[
        "xrandr",
        "--setmonitor",
        "LEFT",
        "640/169x800/211+0+0",
        "none",
    ]);
    xa(&[
        "xrandr",
        "--setmonitor",
        "RIGHT",
        "640/169x800/211+640+0",
        "none",
    ]);
    xa(&["xsetroot", "-solid", "#22bb44"]);
    a.click(agent::centre(agent::GET_HELP));
    let code = a.code();

    let c = Gui::console_on(&relay, (1024, 700));
    c.resize((1024, 700));
    // View only: the technician's pointer over the picture moves nothing on the user's side.
    c.click(console::tick(console::scope_box(0)));
    c.type_into(console::centre(console::CODE), &code);
    c.click(console::centre(console::CONNECT));
    a.expect("asks to:");
    std::thread::sleep(Duration::from_secs(1));
    a.click(agent::scope_box(0));
    a.click(agent::centre(agent::ALLOW));
    c.expect("consent: granted view;");
    let line = c.expect("screen: showing display 0");
    assert!(line.ends_with("LEFT 640x800 at (0, 0)"), "{line}");

    // The picker: the second monitor, on the same session.
    c.click(console::centre(console::screen_display(1)));
    let line = c.expect("screen: showing display");
    assert!(
        line.ends_with("display 1 RIGHT 640x800 at (640, 0)"),
        "{line}"
    );
    // The user's pointer on the right monitor, over the root colour: at (460, 700) of RIGHT.
    xa(&["xdotool", "mousemove", "1100", "700"]);
    c.xdotool(&["mousemove", "1000", "80"]);
    std::thread::sleep(Duration::from_secs(3));
    let (w, h, rgb) = c.grab();
    assert_eq!((w, h), (1024, 700));

    // End is whole inside the window: its fill across the row above its label.
    let end_fill = [239, 154, 154];
    let e = console::END;
    let row = (e[1] + 4.0) as u32;
    let end = count(&rgb, w, (0, row, w, row + 1), end_fill);
    assert!(
        end >= (e[2] as usize) - 12 && e[0] + e[2] < 1024.0,
        "End shows whole: {end} pixels of its fill"
    );
    // The screen: RIGHT's bottom rows are all root colour; find the picture by them.
    let area = (console::SCREEN_X as u32, console::SCREEN_TOP as u32, w, h);
    let green = count(&rgb, w, area, ROOT);
    assert!(
        green > 20_000,
        "the user's right monitor shows: {green} pixels"
    );
    let (mut left, mut right, mut bottom) = (w, 0, 0);
    for y in area.1..h {
        for x in area.0..w {
            let i = ((y * w + x) * 3) as usize;
            if rgb[i..i + 3] == ROOT {
                (left, right, bottom) = (left.min(x), right.max(x), bottom.max(y));
            }
        }
    }
    let scale = (right - left + 1) as f32 / 640.0;
    assert!(scale > 0.5 && scale <= 1.0, "fitted: {scale}");
    let top = bottom as f32 + 1.0 - 800.0 * scale;
    let at = |x: f32, y: f32| ((left as f32 + x * scale) as u32, (top + y * scale) as u32);
    // The cursor: pixels not of the root colour around the pointer, none at a spot beside it.
    let box_at = |(x, y): (u32, u32)| (x - 10, y - 10, x + 10, y + 10);
    let (cx, cy) = at(460.0, 700.0);
    let cursor = 400 - count(&rgb, w, box_at((cx, cy)), ROOT);
    let beside = 400 - count(&rgb, w, box_at(at(360.0, 700.0)), ROOT);
    assert!(
        cursor > 10,
        "the user's cursor is drawn at ({cx}, {cy}): {cursor} pixels"
    );
    assert_eq!(beside, 0, "and not beside it");
    c.screenshot("console-monitors", console::MIN_SIZE, (1000, 80));

    // End, at this size, ends the session.
    c.click(console::centre(console::END));
    c.expect("session ended: you ended the session");
    a.expect("Session ended: the technician ended the session");
}
