//! Screen benchmarks (issue 18): Tether side by side with x11vnc and ffmpeg on the same workloads, each
//! on its own private 1920x1080x24 Xvfb, measured one after the other in one run.
//!
//! Run: `cargo run --release -p tether-tests --bin screen-bench -- --help`.
//! For each workload it measures, for the same number of seconds each:
//! - Tether: the real `tether-agent share` binary, through the real relay, viewed by the console
//!   library; the UDP bytes the console receives (QUIC and seal overhead included), the pixel payload
//!   inside them, and the agent process's CPU;
//! - x11vnc with a lossless CopyRect + Tight client ([`peers::rfb_bytes`]) and its CPU;
//! - ffmpeg x11grab at 30 fps into VP8 and x264, the stream's bytes and its CPU.
//!
//! Then prints a Markdown table and the ratios Tether/x11vnc and Tether/VP8. A peer that is not
//! installed shows as "not installed". `--workload office` runs the older report (BENCHMARKS.md,
//! "Screen").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod office;
mod peers;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use peers::{Codec, Measured, cpu_secs};
use tether_console::open_session;
use tether_net::Trust;
use tether_tests::procs::{Kill, bin, lines, wait_for, wait_for_code};
use tether_tests::{TestRelay, Xvfb};

const HELP: &str = "\
screen-bench: Tether's screen streaming against x11vnc and ffmpeg, side by side, in one run.

Each workload runs on its own private 1920x1080x24 Xvfb (no window manager):
  static       an xterm with a directory listing, nothing changing
  typing       10 characters a second typed into an xterm (xdotool type)
  scrolling    text scrolling in a 100x40 xterm (pv -qL 20k)
  window-move  an 800x600 window moved 20 times a second (xdotool windowmove)
  video        a 640x480 test video at 30 fps (ffplay testsrc2)
For each, one after the other on the same display for --secs seconds: the real agent through the
real relay to the console (UDP bytes received, pixel payload, agent CPU from /proc), x11vnc read by a
lossless CopyRect + Tight client, and ffmpeg x11grab at 30 fps into VP8 (realtime, cpu-used 8,
1 Mbit/s) and x264 (ultrafast, zerolatency, crf 23); tether-lossless (the agent with --lossless)
only when asked for with --only. Prints a Markdown table and the ratios; a peer
that is not installed is shown as such. Needs Xvfb, xterm, xdotool; peers: x11vnc, ffmpeg, ffplay,
pv (`./dev bench` installs them).

Usage: cargo run --release -p tether-tests --bin screen-bench -- [OPTIONS]

Options:
  --workload W   static, typing, scrolling, window-move, video, all (default), or office (the
                 older in-process report of BENCHMARKS.md \"Screen\")
  --secs N       seconds measured per tool and workload (default 20)
  --settle N     seconds each tool runs before measuring starts (default 3)
  --display N    first X display number to use (default 171; one per workload)
  --only T       measure only this tool: tether, tether-lossless (the same agent with
                 --lossless: no video codec), x11vnc, vp8, x264 (repeatable)
  -h, --help     this text
  -V, --version  the version";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Workload {
    Static,
    Typing,
    Scrolling,
    WindowMove,
    Video,
}

const ALL: [Workload; 5] = [
    Workload::Static,
    Workload::Typing,
    Workload::Scrolling,
    Workload::WindowMove,
    Workload::Video,
];

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Static => "static xterm",
            Workload::Typing => "typing 10 char/s",
            Workload::Scrolling => "scrolling text (`pv -qL 20k`)",
            Workload::WindowMove => "800x600 window moved 20×/s",
            Workload::Video => "640x480 video (testsrc2, 30 fps)",
        }
    }

    /// Whether the goal is lossless parity with x11vnc (video is measured against VP8 instead).
    fn lossless(self) -> bool {
        !matches!(self, Workload::Video)
    }
}

struct Args {
    workloads: Vec<Workload>,
    office: bool,
    secs: u64,
    settle: u64,
    display: u32,
    only: Vec<String>,
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{HELP}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        workloads: ALL.to_vec(),
        office: false,
        secs: 20,
        settle: 3,
        display: 171,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> String {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        let number = |name: &str, v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{name}: {v:?} is not a whole number")))
        };
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0)
            }
            "-V" | "--version" => {
                println!("screen-bench {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0)
            }
            "--workload" => {
                let v = value("--workload");
                a.workloads = match v.as_str() {
                    "all" => ALL.to_vec(),
                    "static" => vec![Workload::Static],
                    "typing" => vec![Workload::Typing],
                    "scrolling" => vec![Workload::Scrolling],
                    "window-move" => vec![Workload::WindowMove],
                    "video" => vec![Workload::Video],
                    "office" => {
                        a.office = true;
                        Vec::new()
                    }
                    other => usage(&format!("unknown workload {other:?}")),
                }
            }
            "--secs" => match number("--secs", value("--secs")) {
                0 => usage("--secs must be at least 1"),
                n => a.secs = n,
            },
            "--settle" => a.settle = number("--settle", value("--settle")),
            "--display" => {
                a.display = u32::try_from(number("--display", value("--display")))
                    .unwrap_or_else(|_| usage("--display is too large"))
            }
            "--only" => {
                let v = value("--only");
                if !["tether", "tether-lossless", "x11vnc", "vp8", "x264"].contains(&v.as_str()) {
                    usage(&format!("unknown tool {v:?}"));
                }
                a.only.push(v);
            }
            other => usage(&format!("unexpected argument {other:?}")),
        }
    }
    a
}

/// Starts the workload on display `:n` and waits until its windows show.
fn start(w: Workload, n: u32) -> Xvfb {
    let mut x = Xvfb::start(n);
    x.cmd("xsetroot", &["-solid", "#2e5a88"]);
    let sync = |x: &Xvfb, class: &str| {
        x.cmd(
            "xdotool",
            &["search", "--sync", "--onlyvisible", "--class", class],
        );
    };
    match w {
        Workload::Static => {
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
            sync(&x, "xterm");
        }
        Workload::Typing => {
            x.spawn("xterm", &["-geometry", "100x40+100+100", "-e", "cat"]);
            sync(&x, "xterm");
            // No window manager: the keyboard focus follows the pointer.
            x.cmd("xdotool", &["mousemove", "400", "300"]);
            x.spawn(
                "sh",
                &["-c", "while :; do xdotool type --delay 100 'typing along at ten characters a second. '; done"],
            );
        }
        Workload::Scrolling => {
            x.spawn(
                "xterm",
                &["-geometry", "100x40+100+100", "-e", "sh", "-c",
                  "while :; do cat /usr/share/common-licenses/GPL-3 ARCHITECTURE.md BENCHMARKS.md 2>/dev/null; done | pv -qL 20k"],
            );
            sync(&x, "xterm");
        }
        Workload::WindowMove => {
            x.spawn(
                "xterm",
                &[
                    "-geometry",
                    "100x40+0+0",
                    "-title",
                    "mover",
                    "-e",
                    "sh",
                    "-c",
                    "ls -la /usr/bin | head -40; sleep 100000",
                ],
            );
            sync(&x, "xterm");
            x.spawn(
                "sh",
                &["-c", "id=$(xdotool search --sync --name mover | head -1); xdotool windowsize $id 800 600; \
                  while :; do for p in $(seq 0 10 1000); do xdotool windowmove $id $p $((p * 4 / 10)); sleep 0.05; done; done"],
            );
        }
        Workload::Video => {
            x.spawn(
                "ffplay",
                &[
                    "-loglevel",
                    "quiet",
                    "-an",
                    "-noborder",
                    "-left",
                    "200",
                    "-top",
                    "150",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=640x480:rate=30",
                ],
            );
            x.cmd(
                "xdotool",
                &["search", "--sync", "--onlyvisible", "--name", "testsrc2"],
            );
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    x
}

/// Reads the view for `d`, keeping the framebuffer current.
async fn run_for(view: &mut tether_console::screen::ViewStream, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if let Ok(r) = tokio::time::timeout(end - Instant::now(), view.next()).await {
            r.unwrap();
        }
    }
}

/// What Tether measured: wire and payload kbit/s, agent CPU %.
struct TetherFigures {
    wire: f64,
    payload: f64,
    /// The part of `payload` that was video (VP8).
    video: f64,
    cpu: f64,
}

/// The real agent binary on `x`, viewed through `relay` for `secs` after `settle`; `lossless`
/// runs it with `--lossless` (no video codec for regions that play video).
async fn tether(
    relay: &TestRelay,
    x: &Xvfb,
    settle: u64,
    secs: u64,
    lossless: bool,
) -> TetherFigures {
    let target = relay.target();
    let Trust::Fingerprint(fp) = &target.trust else {
        unreachable!("the bench relay is pinned by fingerprint")
    };
    let mut agent = Kill(
        std::process::Command::new(bin("tether-agent"))
            .env("DISPLAY", &x.display)
            .env("TETHER_BACKEND", "x11")
            .args([
                "share",
                "--once",
                "--relay",
                &target.addr.to_string(),
                "--relay-cert-sha256",
                fp,
            ])
            .args(lossless.then_some("--lossless"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = agent.0.id();
    let out = lines(agent.0.stdout.take().unwrap());
    let code = tokio::task::block_in_place(|| wait_for_code(&out));
    let console = relay.console();
    let opening = tokio::spawn(async move {
        open_session(&console, code.parse().unwrap(), "view".parse().unwrap()).await
    });
    tokio::task::block_in_place(|| {
        wait_for(&out, "Allow?");
        writeln!(agent.0.stdin.as_mut().unwrap(), "y").unwrap();
    });
    let mut session = opening.await.unwrap().unwrap();
    let mut view = session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    run_for(&mut view, Duration::from_secs(settle)).await;
    let link = session.link();
    let (d0, f0) = (link.datagrams_received(), view.frames);
    let (b0, p0, v0, c0, t0) = (
        link.bytes_received(),
        view.pixel_bytes,
        view.video_bytes,
        cpu_secs(pid),
        Instant::now(),
    );
    run_for(&mut view, Duration::from_secs(secs)).await;
    let dt = t0.elapsed().as_secs_f64();
    let (datagrams, frames) = (link.datagrams_received() - d0, view.frames - f0);
    eprintln!(
        "screen-bench: tether{}: {:.1} datagrams/s ({:.0} bytes each), {:.1} frames/s",
        if lossless { " --lossless" } else { "" },
        datagrams as f64 / dt,
        (link.bytes_received() - b0) as f64 / datagrams.max(1) as f64,
        frames as f64 / dt,
    );
    let f = TetherFigures {
        wire: (link.bytes_received() - b0) as f64 * 8.0 / 1000.0 / dt,
        payload: (view.pixel_bytes - p0) as f64 * 8.0 / 1000.0 / dt,
        video: (view.video_bytes - v0) as f64 * 8.0 / 1000.0 / dt,
        cpu: (cpu_secs(pid) - c0) / dt * 100.0,
    };
    view.close().await;
    session.end().await;
    f
}

/// "wire (payload)", and the video part of the payload when there was any.
fn payload(t: &TetherFigures) -> String {
    if t.video > 0.0 {
        format!("{:.1} ({:.1}; video {:.1})", t.wire, t.payload, t.video)
    } else {
        format!("{:.1} ({:.1})", t.wire, t.payload)
    }
}

fn cell(m: &Measured) -> (String, String) {
    match m {
        Measured::Ran { kbps, cpu } => (format!("{kbps:.1}"), format!("{cpu:.1} %")),
        Measured::NotInstalled(what) => (format!("not installed ({what})"), "–".into()),
        Measured::Failed(why) => (format!("failed: {why}"), "–".into()),
    }
}

fn ratio(a: f64, b: &Measured, cpu: bool) -> String {
    match b {
        Measured::Ran { kbps, cpu: c } => {
            let d = if cpu { *c } else { *kbps };
            if d <= 0.0 {
                if a <= 0.0 {
                    "= (both 0)".into()
                } else {
                    "∞".into()
                }
            } else {
                format!("{:.2}", a / d)
            }
        }
        _ => "–".into(),
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if args.office {
        office::report().await;
        return;
    }
    let want = |t: &str| {
        (args.only.is_empty() && t != "tether-lossless") || args.only.iter().any(|o| o == t)
    };
    let settle = Duration::from_secs(args.settle);
    let relay = TestRelay::start().await;
    let mut rows = Vec::new();
    let mut exacts = Vec::new();
    for (i, w) in args.workloads.iter().enumerate() {
        let n = args.display + i as u32;
        eprintln!("screen-bench: {} on :{n}", w.name());
        let x = start(*w, n);
        let skipped = || Measured::Failed("not asked for".into());
        let t = if want("tether") {
            Some(tether(&relay, &x, args.settle, args.secs, false).await)
        } else {
            None
        };
        let exact = if want("tether-lossless") {
            Some(tether(&relay, &x, args.settle, args.secs, true).await)
        } else {
            None
        };
        let (secs, disp, only) = (args.secs, x.display.clone(), args.only.clone());
        let port = 5900 + (n as u16 % 1000);
        let peers = tokio::task::spawn_blocking(move || {
            let want_t = |t: &str| only.is_empty() || only.iter().any(|o| o == t);
            let vnc = if want_t("x11vnc") {
                peers::x11vnc(&disp, port, settle, secs)
            } else {
                skipped()
            };
            let vp8 = if want_t("vp8") {
                peers::ffmpeg(&disp, Codec::Vp8, settle, secs)
            } else {
                skipped()
            };
            let x264 = if want_t("x264") {
                peers::ffmpeg(&disp, Codec::X264, settle, secs)
            } else {
                skipped()
            };
            (vnc, vp8, x264)
        });
        let (vnc, vp8, x264) = peers.await.unwrap();
        rows.push((*w, t, vnc, vp8, x264));
        exacts.push(exact);
        drop(x);
    }
    println!();
    println!(
        "| workload | Tether kbit/s (payload) | Tether CPU | x11vnc kbit/s | x11vnc CPU | VP8 kbit/s | VP8 CPU | x264 kbit/s | x264 CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (w, t, vnc, vp8, x264) in &rows {
        let (tk, tc) = t.as_ref().map_or(("–".into(), "–".into()), |t| {
            (payload(t), format!("{:.1} %", t.cpu))
        });
        let (vk, vc) = cell(vnc);
        let (pk, pc) = cell(vp8);
        let (xk, xc) = cell(x264);
        println!(
            "| {} | {tk} | {tc} | {vk} | {vc} | {pk} | {pc} | {xk} | {xc} |",
            w.name()
        );
    }
    if exacts.iter().any(Option::is_some) {
        println!();
        println!(
            "| workload | Tether kbit/s (payload) | Tether CPU | `--lossless` kbit/s (payload) | `--lossless` CPU | bytes Tether/lossless |"
        );
        println!("|---|---|---|---|---|---|");
        for ((w, t, ..), e) in rows.iter().zip(&exacts) {
            let fig = |f: &Option<TetherFigures>| {
                f.as_ref().map_or(("–".into(), "–".into()), |f| {
                    (payload(f), format!("{:.1} %", f.cpu))
                })
            };
            let ((tk, tc), (ek, ec)) = (fig(t), fig(e));
            let r = match (t, e) {
                (Some(t), Some(e)) if e.wire > 0.0 => format!("{:.2}", t.wire / e.wire),
                _ => "–".into(),
            };
            println!("| {} | {tk} | {tc} | {ek} | {ec} | {r} |", w.name());
        }
    }
    println!();
    println!(
        "| workload | bytes Tether/x11vnc | CPU Tether/x11vnc | bytes Tether/VP8 | CPU Tether/VP8 | goal |"
    );
    println!("|---|---|---|---|---|---|");
    for (w, t, vnc, vp8, _) in &rows {
        let Some(t) = t else { continue };
        let goal = if w.lossless() {
            "bytes and CPU ≤ x11vnc (ratios ≤ 1)"
        } else {
            "bytes ≤ VP8, CPU ≤ ½ VP8"
        };
        println!(
            "| {} | {} | {} | {} | {} | {goal} |",
            w.name(),
            ratio(t.wire, vnc, false),
            ratio(t.cpu, vnc, true),
            ratio(t.wire, vp8, false),
            ratio(t.cpu, vp8, true),
        );
    }
}
