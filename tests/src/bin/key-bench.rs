//! Key latency (issue 16): a key pressed in the console → the changed pixels seen by the console.
//!
//! Run: `cargo run -p tether-tests --bin key-bench` (needs Xvfb and xterm). The real relay, agent
//! (XTEST input, scrap capture) and console library on loopback, with a 1920x1080 Xvfb whose xterm
//! echoes what is typed. Each sample sends one physical key click on the control stream (the reply
//! says it was injected) and waits for the first frame whose pixels differ from before. Printed as a
//! Markdown table for BENCHMARKS.md ("Keys"): presses 150 ms apart (capture at its active 30/s)
//! and presses after 2 s of quiet (capture has dropped to its idle 5/s; input wakes it, issue 18).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_agent::ShareConfig;
use tether_agent::screen::{ScrapScreen, X11Input};
use tether_console::open_session;
use tether_console::screen::{ControlStream, ViewStream};
use tether_proto::screen::{Action, Code, InputEvent};
use tether_tests::{TestAgent, TestRelay, Xvfb};

const HELP: &str = "\
key-bench: key press in the console -> changed pixel seen by the console, on loopback.

Starts a private 1920x1080 Xvfb with an xterm, the real relay and agent, and the console library;
sends key clicks on a control stream and times each until a frame with changed pixels arrives.
Prints a Markdown table for BENCHMARKS.md. Needs Xvfb and xterm (`./dev test` installs them).

Usage: cargo run -p tether-tests --bin key-bench [-- OPTIONS]

Options:
  --presses N      presses in each case (default 60 active, 16 after quiet; N sets both)
  --quiet-ms MS    quiet before each press of the idle case (default 2000)
  -h, --help       this text
  -V, --version    the version";

/// What to run, from the command line.
struct Args {
    /// Presses per case; `None`: 60 active and 16 after quiet.
    presses: Option<usize>,
    quiet: Duration,
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{HELP}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        presses: None,
        quiet: Duration::from_millis(2000),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> u64 {
            let v = it
                .next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")));
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{name}: {v:?} is not a whole number")))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0)
            }
            "-V" | "--version" => {
                println!("key-bench {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0)
            }
            "--presses" => match value("--presses") {
                0 => usage("--presses must be at least 1"),
                n => args.presses = Some(n as usize),
            },
            "--quiet-ms" => args.quiet = Duration::from_millis(value("--quiet-ms")),
            other => usage(&format!("unexpected argument {other:?}")),
        }
    }
    args
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Reads frames for `d`, so the framebuffer is current.
async fn drain(view: &mut ViewStream, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        let _ = tokio::time::timeout(end - Instant::now(), view.next_frame()).await;
    }
}

/// One sample: click `key`, then wait for the picture to change.
async fn sample(control: &mut ControlStream, view: &mut ViewStream, key: Code) -> f64 {
    let before = view.framebuffer.pixels.clone();
    let t0 = Instant::now();
    control
        .send(&InputEvent::Key {
            key: key.into(),
            action: Action::Click,
        })
        .await
        .unwrap();
    loop {
        tokio::time::timeout(Duration::from_secs(5), view.next_frame())
            .await
            .expect("the key press never changed the picture")
            .unwrap();
        if view.framebuffer.pixels != before {
            return ms(t0.elapsed());
        }
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut x = Xvfb::start_free();
    x.spawn("xterm", &["-geometry", "100x30+0+0", "-e", "cat"]);
    x.cmd(
        "xdotool",
        &["search", "--sync", "--onlyvisible", "--class", "xterm"],
    );
    x.cmd("xdotool", &["mousemove", "200", "200"]);
    let relay = TestRelay::start().await;
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    let mut agent = TestAgent::spawn_with(config, Some("view,control".parse().unwrap()));
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, "view,control".parse().unwrap())
        .await
        .unwrap();
    let mut view = session.view(0).await.unwrap();
    let mut control = session.control(0).await.unwrap();
    view.next_frame().await.unwrap();
    drain(&mut view, Duration::from_millis(500)).await;

    // A letter, then Backspace erasing it: each changes the echoed line.
    let keys = [Code::KeyX, Code::Backspace];
    let mut active = Vec::new();
    for i in 0..args.presses.unwrap_or(60) {
        active.push(sample(&mut control, &mut view, keys[i % 2]).await);
        drain(&mut view, Duration::from_millis(150)).await;
    }
    let mut idle = Vec::new();
    for i in 0..args.presses.unwrap_or(16) {
        drain(&mut view, args.quiet).await;
        idle.push(sample(&mut control, &mut view, keys[i % 2]).await);
    }
    println!("| measurement | p50 | p95 |");
    println!("|---|---|---|");
    let n = active.len();
    println!(
        "| key press → changed pixel, presses 150 ms apart ({n} presses) | **{:.1} ms** | **{:.1} ms** |",
        pct(&mut active, 0.5),
        pct(&mut active, 0.95)
    );
    let n = idle.len();
    println!(
        "| key press → changed pixel, after {} s of quiet ({n} presses) | **{:.1} ms** | **{:.1} ms** |",
        args.quiet.as_secs_f64(),
        pct(&mut idle, 0.5),
        pct(&mut idle, 0.95)
    );
    control.close().await;
    session.end().await;
}
