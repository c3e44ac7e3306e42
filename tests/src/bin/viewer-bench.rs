//! Viewer CPU on a static remote screen (issue 18): the real viewer window (`tether-console
//! connect`) on its own Xvfb, showing an agent whose 1920x1080 Xvfb holds a still xterm; the
//! viewer process's CPU time (utime + stime from `/proc/PID/stat`, all its threads) over a quiet
//! spell, as a share of one core. Printed as a Markdown row for BENCHMARKS.md ("Viewer CPU").
//!
//! Run: `cargo run -p tether-tests --bin viewer-bench` (needs Xvfb, xterm and xdotool).
//! `--console PATH` measures another build of `tether-console` (an older one, for a before/after).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_agent::ShareConfig;
use tether_agent::screen::{ScrapScreen, X11Input};
use tether_tests::gui::{Gui, relay_args};
use tether_tests::procs::bin;
use tether_tests::{TestAgent, TestRelay, Xvfb};

const HELP: &str = "\
viewer-bench: the viewer window's CPU on a static remote screen, on loopback.

Starts a private 1920x1080 Xvfb with a still xterm, the real relay and agent, and the real viewer
window (`tether-console connect`) on a second Xvfb; once the picture is up, reads the viewer
process's utime+stime from /proc/PID/stat over the measuring time and prints it as a share of one
core. Needs Xvfb, xterm and xdotool.

Usage: cargo run -p tether-tests --bin viewer-bench [-- OPTIONS]

Options:
  --secs N         measuring time in seconds (default 20)
  --settle N       seconds to wait after the window shows, before measuring (default 5)
  --console PATH   the tether-console binary to run (default: this workspace's, built if needed)
  -h, --help       this text
  -V, --version    the version";

struct Args {
    secs: u64,
    settle: u64,
    console: Option<std::path::PathBuf>,
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}\n\n{HELP}");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        secs: 20,
        settle: 5,
        console: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> String {
            it.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        let number = |name: &str, v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{name}: {v:?} is not a whole number")))
        };
        match a.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                std::process::exit(0)
            }
            "-V" | "--version" => {
                println!("viewer-bench {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0)
            }
            "--secs" => match number("--secs", value("--secs")) {
                0 => usage("--secs must be at least 1"),
                n => args.secs = n,
            },
            "--settle" => args.settle = number("--settle", value("--settle")),
            "--console" => args.console = Some(value("--console").into()),
            other => usage(&format!("unexpected argument {other:?}")),
        }
    }
    args
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the viewer runs");
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis start
    // at field 3 (state), so utime (14) and stime (15) are the 12th and 13th.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let mut x = Xvfb::start_free();
    x.spawn("xterm", &["-geometry", "100x30+0+0", "-e", "cat"]);
    x.cmd(
        "xdotool",
        &["search", "--sync", "--onlyvisible", "--class", "xterm"],
    );
    x.cmd("xdotool", &["mousemove", "1900", "1060"]);
    let relay = TestRelay::start().await;
    let mut config = ShareConfig::new(relay.target());
    config.screen = Arc::new(ScrapScreen::new(Some(x.display.clone())));
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    let mut agent = TestAgent::spawn_with(config, Some("view,control".parse().unwrap()));
    let code = agent.code().await.to_string();
    let console = args
        .console
        .clone()
        .unwrap_or_else(|| bin("tether-console"));
    let mut c = Command::new(console);
    c.args(relay_args(&relay))
        .args(["connect", "--code", &code])
        .env("TETHER_TOKEN", &relay.token);
    let viewer = tokio::task::spawn_blocking(move || Gui::start(c, (1400, 900), "Tether viewer"))
        .await
        .unwrap();
    // The viewer's own pointer rests outside its window, as a technician's would on a still screen.
    viewer.xdotool(&["mousemove", "1399", "899"]);
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let pid = viewer.child.0.id();
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    tokio::time::sleep(Duration::from_secs(args.secs)).await;
    let (dt, c1) = (t0.elapsed(), cpu_ticks(pid));
    let cpu = (c1 - c0) as f64 / clock_ticks_per_second() as f64;
    let share = cpu / dt.as_secs_f64() * 100.0;
    println!("| measurement | result | goal |");
    println!("|---|---|---|");
    println!(
        "| viewer window, static 1920x1080 remote screen, {:.0} s | **{share:.1} % of a core** ({cpu:.2} s CPU) | ≤ 2 % |",
        dt.as_secs_f64()
    );
    drop(viewer);
    drop(agent);
}
