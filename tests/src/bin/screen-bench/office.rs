//! The office report (issue 3): a scripted 1920x1080 workload under private Xvfb servers :161 and :162.
//!
//! Run: `cargo run --release -p tether-tests --bin screen-bench -- --workload office`.
//! Prints a Markdown table for BENCHMARKS.md ("Screen"):
//! 1. agent work per changed frame, split into capture / diff / compress / seal, measured in-process with
//!    the agent's own backend and functions on the office workload, plus the per-tick cost on a static
//!    screen;
//! 2. bytes per second on the wire at up to 30 fps through the real relay to the real console, office
//!    workload and static screen;
//! 3. code entered → first complete frame latency, p50/p95 over 20 sessions on loopback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_agent::ShareConfig;
use tether_agent::screen::{FRAME_INTERVAL, IDLE_EVERY, ScrapScreen, ScreenProvider, X11Input};
use tether_console::open_session;
use tether_proto::pairing::{Pairing, Side};
use tether_proto::screen::{self, ScreenMsg};
use tether_proto::seal::Direction;
use tether_proto::{ScopeSet, SessionCode};
use tether_tests::{TestAgent, TestRelay, Xvfb};

const OFFICE_SECS: u64 = 10;

/// Scrolling text in one xterm, typing in another, a third window moving.
fn office(n: u32) -> Xvfb {
    let mut x = Xvfb::start(n);
    x.cmd("xsetroot", &["-solid", "#2e5a88"]);
    x.spawn(
        "xterm",
        &[
            "-geometry", "100x40+0+0", "-e", "sh", "-c",
            "i=0; while :; do i=$((i+1)); echo \"line $i: the quick brown fox jumps over the lazy dog $(date +%T.%N)\"; sleep 0.1; done",
        ],
    );
    x.spawn("xterm", &["-geometry", "80x20+800+80", "-e", "cat"]);
    x.spawn(
        "xterm",
        &["-geometry", "30x6+0+700", "-title", "mover", "-e", "top"],
    );
    x.cmd(
        "xdotool",
        &["search", "--sync", "--onlyvisible", "--class", "xterm"],
    );
    std::thread::sleep(Duration::from_secs(1));
    // Keep the pointer over the typing xterm (no window manager: focus follows the pointer).
    x.cmd("xdotool", &["mousemove", "1100", "200"]);
    x.spawn(
        "sh",
        &["-c", "while :; do xdotool type --delay 100 'typing along at ten characters a second. '; done"],
    );
    x.spawn(
        "sh",
        &["-c", "id=$(xdotool search --sync --name mover | head -1); while :; do for p in $(seq 0 12 900); do xdotool windowmove $id $p 700; sleep 0.1; done; done"],
    );
    std::thread::sleep(Duration::from_secs(1));
    x
}

fn static_screen(n: u32) -> Xvfb {
    let mut x = Xvfb::start(n);
    x.cmd("xsetroot", &["-solid", "#2e5a88"]);
    x.spawn(
        "xterm",
        &[
            "-geometry",
            "100x40+100+100",
            "-e",
            "sh",
            "-c",
            "ls -la /usr/bin | head -30; sleep 100000",
        ],
    );
    x.cmd(
        "xdotool",
        &["search", "--sync", "--onlyvisible", "--class", "xterm"],
    );
    std::thread::sleep(Duration::from_secs(1));
    x
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Per-phase agent work, in-process, ticking at 30 fps for `secs`.
fn phases(display: &str, secs: u64) -> (usize, usize, [f64; 4], f64, usize) {
    let mut source = ScrapScreen::new(Some(display.into())).open(0).unwrap();
    let info = source.info();
    let code: SessionCode = "123 456 789".parse().unwrap();
    let mut a = Pairing::new(Side::Agent, code.slot, &code.secret);
    let mut c = Pairing::new(Side::Console, code.slot, &code.secret);
    for _ in 0..4 {
        while let Some(m) = a.poll_transmit() {
            let _ = c.handle(m);
        }
        while let Some(m) = c.poll_transmit() {
            let _ = a.handle(m);
        }
    }
    let keys = a.into_keys().unwrap();
    let mut sealer = keys.sealer(1, Direction::AgentToConsole);
    let t = Instant::now();
    let mut encoder = screen::FrameEncoder::new().unwrap();
    println!("encoder created in {:.2} ms", ms(t.elapsed()));
    let mut prev: Option<Vec<u8>> = None;
    let (mut cap, mut dif, mut enc, mut sea) = (vec![], vec![], vec![], vec![]);
    let mut idle = vec![];
    let (mut ticks, mut changed, mut bytes) = (0, 0, 0usize);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut next = Instant::now();
    while Instant::now() < end {
        ticks += 1;
        let t0 = Instant::now();
        let cur = source.capture().unwrap().to_vec();
        let t1 = Instant::now();
        let rects = screen::dirty_rects(prev.as_deref(), &cur, info.width, info.height).unwrap();
        let t2 = Instant::now();
        if rects.is_empty() {
            idle.push(ms(t2 - t0));
        } else {
            let parts = if prev.is_none() {
                encoder.encode_standalone(ticks as u64, &cur, info.width, info.height, &rects)
            } else {
                encoder.encode(ticks as u64, &cur, info.width, info.height, &rects)
            }
            .unwrap();
            let t3 = Instant::now();
            for p in parts {
                bytes += sealer.seal_msg(&ScreenMsg::Frame(p)).unwrap().len();
            }
            let t4 = Instant::now();
            if prev.is_none() {
                println!(
                    "first frame on {display}: capture {:.2} ms, diff {:.2} ms, compress {:.2} ms, seal {:.2} ms, {} KiB sealed",
                    ms(t1 - t0),
                    ms(t2 - t1),
                    ms(t3 - t2),
                    ms(t4 - t3),
                    bytes / 1024
                );
            } else {
                changed += 1;
                cap.push(ms(t1 - t0));
                dif.push(ms(t2 - t1));
                enc.push(ms(t3 - t2));
                sea.push(ms(t4 - t3));
            }
            prev = Some(cur);
        }
        next += Duration::from_millis(33);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    (
        ticks,
        changed,
        [mean(&cap), mean(&dif), mean(&enc), mean(&sea)],
        mean(&idle),
        bytes,
    )
}

fn agent_on(relay: &TestRelay, x: &Xvfb) -> TestAgent {
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    TestAgent::spawn_with(config, Some("view".parse().unwrap()))
}

/// Wire bytes per second received by the console while viewing for `secs`, and frames per second.
async fn bandwidth(relay: &TestRelay, x: &Xvfb, secs: u64) -> (f64, f64) {
    let mut agent = agent_on(relay, x);
    let code = agent.code().await;
    let scopes: ScopeSet = "view".parse().unwrap();
    let mut session = open_session(&relay.console(), code, scopes).await.unwrap();
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    // Let the first (complete) frame drain before counting.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        let _ = tokio::time::timeout(Duration::from_millis(50), view.next()).await;
    }
    let link = session.link();
    let (b0, f0, t0) = (link.bytes_received(), view.frames, Instant::now());
    let end = t0 + Duration::from_secs(secs);
    while Instant::now() < end {
        let _ = tokio::time::timeout(end - Instant::now(), view.next()).await;
    }
    let dt = t0.elapsed().as_secs_f64();
    let r = (
        (link.bytes_received() - b0) as f64 / dt,
        (view.frames - f0) as f64 / dt,
    );
    view.close().await;
    session.end().await;
    r
}

async fn first_frame(relay: &TestRelay, x: &Xvfb, n: usize) -> Vec<f64> {
    let mut out = vec![];
    for _ in 0..n {
        let mut agent = agent_on(relay, x);
        let code = agent.code().await;
        let t0 = Instant::now();
        let scopes: ScopeSet = "view".parse().unwrap();
        let mut session = open_session(&relay.console(), code, scopes).await.unwrap();
        let mut view = session.view(0).await.unwrap();
        view.next_frame().await.unwrap();
        out.push(ms(t0.elapsed()));
        view.close().await;
        session.end().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), agent.task).await;
    }
    out
}

/// The office report (the section "Screen" of BENCHMARKS.md).
pub async fn report() {
    let office_x = office(161);
    let static_x = static_screen(162);

    let (ticks, changed, [c, d, e, s], _, bytes) = phases(&office_x.display, OFFICE_SECS);
    let (sticks, _, _, idle, _) = phases(&static_x.display, 5);
    // Many sessions in a row: lift the per-technician claim rate limit.
    let limits = tether_relay::Limits {
        claims_per_technician_per_minute: 10_000,
        ..tether_relay::Limits::default()
    };
    let relay = TestRelay::start_with(limits, None).await;
    let (office_bps, office_fps) = bandwidth(&relay, &office_x, OFFICE_SECS).await;
    let (static_bps, static_fps) = bandwidth(&relay, &static_x, 5).await;
    let mut lat = first_frame(&relay, &static_x, 20).await;

    let idle_rate = 1000.0 / (FRAME_INTERVAL.as_millis() as f64 * f64::from(IDLE_EVERY));
    println!("| measurement | result | goal |");
    println!("|---|---|---|");
    println!(
        "| office workload, agent per changed frame ({changed} of {ticks} ticks changed) | capture {c:.2} ms, diff {d:.2} ms, compress {e:.2} ms, seal {s:.2} ms = **{:.2} ms** | ≤ 5 ms |",
        c + d + e + s
    );
    println!(
        "| office workload, sealed bytes produced in-process | {:.0} kbit/s | |",
        bytes as f64 * 8.0 / 1000.0 / OFFICE_SECS as f64
    );
    println!(
        "| static screen, agent per capture (capture + diff, {sticks} ticks) | {idle:.2} ms: {:.1} % of one core at 30 captures/s, **{:.1} %** at the idle rate of {idle_rate:.0}/s | < 1 % CPU |",
        idle * 30.0 / 10.0,
        idle * idle_rate / 10.0
    );
    println!(
        "| office workload on the wire (relay → console, QUIC) | **{:.0} kbit/s** at {office_fps:.1} fps | ≤ 500 kbit/s |",
        office_bps * 8.0 / 1000.0
    );
    println!(
        "| static screen on the wire | **{:.1} kbit/s** at {static_fps:.1} fps | ≤ 20 kbit/s |",
        static_bps * 8.0 / 1000.0
    );
    let p50 = pct(&mut lat, 0.5);
    let p95 = pct(&mut lat, 0.95);
    println!(
        "| code entered → first frame (1920x1080, 20 sessions, loopback) | p50 **{p50:.1} ms**, p95 **{p95:.1} ms** | p95 < 50 ms |"
    );
}
