//! Capture backends side by side (issue 14), each on its own private desktop, in one run:
//! X11 (Xvfb, scrap), wlroots (headless sway, screencopy), Mutter (headless mutter, its ScreenCast
//! API through PipeWire) and the portal (the same mutter with xdg-desktop-portal-gnome).
//!
//! Run: `cargo run --release -p tether-tests --bin backend-bench [-- --rounds N --static-secs S]`
//! (needs the test packages of packaging/system-packages; run as root or as a desktop user).
//! For each backend it prints one Markdown row:
//! - **change → frame**: the desktop's background (or a terminal's) changes colour; time until the
//!   backend's `capture` returns a 1920x1080 frame showing it (p50 / p95 over the rounds). For
//!   PipeWire backends this includes the compositor's paint and PipeWire's delivery.
//! - **capture call**: what one `capture` costs on a static screen (p50): a full screencopy on X11
//!   and wlroots, a copy of the latest pushed frame on PipeWire.
//! - **agent CPU, static screen**: the real `tether-agent share --backend B` process while the
//!   console views an unchanging screen for `--static-secs`, in % of one core (from /proc).
//! - **view → first frame**: from the console's view request to its first whole frame, through the
//!   real relay; for the portal this includes the portal's handshake (with a stored restore token,
//!   so no dialog; the first, token-less session's dialog is answered by the harness and not timed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_agent::screen::{MutterDesktop, ScrapScreen, ScreenProvider, WlrootsScreen};
use tether_console::open_session;
use tether_net::Trust;
use tether_tests::desktop::Desktop;
use tether_tests::portal_user::answer_portal_dialog;
use tether_tests::procs::{Kill, bin, lines, wait_for, wait_for_code};
use tether_tests::{TestRelay, Xvfb};

struct Args {
    rounds: usize,
    static_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 20,
        static_secs: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok()).expect("a number");
        match flag.as_str() {
            "--rounds" => a.rounds = value() as usize,
            "--static-secs" => a.static_secs = value(),
            "--help" | "-h" => {
                println!("usage: backend-bench [--rounds N] [--static-secs S]");
                std::process::exit(0);
            }
            other => {
                eprintln!("error: unknown argument {other:?} (see --help)");
                std::process::exit(2);
            }
        }
    }
    a
}

/// A desktop under test and how to change what it shows.
enum Bench {
    X11(Xvfb),
    Wayland(Desktop, &'static str),
}

impl Bench {
    fn name(&self) -> &'static str {
        match self {
            Bench::X11(_) => "x11",
            Bench::Wayland(_, name) => name,
        }
    }

    /// Paints the whole background (X11, sway) or a terminal (Mutter, which has no background of
    /// its own without gnome-shell) in colour `i`.
    fn paint(&self, i: usize) {
        let colour = ["#203040", "#c04020"][i % 2];
        match self {
            Bench::X11(x) => {
                x.cmd("xsetroot", &["-solid", colour]);
            }
            Bench::Wayland(d, "wlroots") => {
                d.msg(&["output", "HEADLESS-1", "bg", colour, "solid_color"]);
            }
            Bench::Wayland(d, _) => {
                std::fs::write(d.path("colour"), format!("{colour}\n")).unwrap();
            }
        }
    }

    fn provider(&self) -> Arc<dyn ScreenProvider> {
        match self {
            Bench::X11(x) => Arc::new(ScrapScreen::new(Some(x.display.clone()))),
            Bench::Wayland(d, "wlroots") => {
                Arc::new(WlrootsScreen::new(Some(d.socket.display().to_string())))
            }
            Bench::Wayland(d, _) => Arc::new(MutterDesktop::new(d.bus.clone(), Some(d.pipewire()))),
        }
    }

    /// The agent binary's command on this desktop.
    fn agent(&self) -> Command {
        match self {
            Bench::X11(x) => {
                let mut c = Command::new(bin("tether-agent"));
                c.env("DISPLAY", &x.display).env("TETHER_BACKEND", "x11");
                c
            }
            Bench::Wayland(d, name) => {
                let mut c = d.command(&bin("tether-agent").display().to_string());
                c.env("TETHER_BACKEND", name);
                c
            }
        }
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The pixel at the centre of the screen, where every paint shows.
fn centre(pixels: &[u8], width: u32, height: u32) -> [u8; 3] {
    let i = ((height / 2 * width + width / 2) * 4) as usize;
    [pixels[i], pixels[i + 1], pixels[i + 2]]
}

/// change → frame and the capture call's cost, in-process with the agent's own backend.
fn capture_times(b: &Bench, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let provider = b.provider();
    let mut source = provider.open(0).expect("the backend opens");
    let mut changes = Vec::new();
    for i in 0..rounds {
        let before = {
            let info = source.info();
            centre(source.capture().unwrap(), info.width, info.height)
        };
        let t = Instant::now();
        b.paint(i + 1);
        loop {
            let info = source.info();
            let now = centre(source.capture().unwrap(), info.width, info.height);
            if now != before {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{}: the change never showed",
                b.name()
            );
        }
        changes.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut calls = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        source.capture().unwrap();
        calls.push(t.elapsed());
    }
    (changes, calls)
}

/// CPU seconds (user + system) of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The real agent binary viewed through the real relay: view → first frame, and the agent's CPU
/// on a static screen.
async fn session(
    b: &Bench,
    relay: &TestRelay,
    static_secs: u64,
    portal_dialog: bool,
) -> (Duration, f64) {
    let target = relay.target();
    let Trust::Fingerprint(fp) = &target.trust else {
        unreachable!("the bench relay is pinned by fingerprint")
    };
    let mut cmd = b.agent();
    cmd.args([
        "share",
        "--once",
        "--relay",
        &target.addr.to_string(),
        "--relay-cert-sha256",
        fp,
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if let Bench::Wayland(d, _) = b {
        let data = d.path("agent-data");
        std::fs::create_dir_all(&data).unwrap();
        d.give(&data);
        cmd.env("TETHER_AGENT_DATA", data);
    }
    let mut agent = Kill(cmd.spawn().unwrap());
    let pid = agent.0.id();
    let out = lines(agent.0.stdout.take().unwrap());
    let code = wait_for_code(&out);
    let console = relay.console();
    let opening = tokio::spawn(async move {
        open_session(&console, code.parse().unwrap(), "view".parse().unwrap()).await
    });
    tokio::task::block_in_place(|| {
        wait_for(&out, "Allow?");
        writeln!(agent.0.stdin.as_mut().unwrap(), "y").unwrap();
    });
    let mut s = opening.await.unwrap().unwrap();
    let dialog = match b {
        Bench::Wayland(d, "portal") if portal_dialog => Some(answer_portal_dialog(d, true)),
        _ => None,
    };
    let t = Instant::now();
    let mut view = s.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    let first = t.elapsed();
    if let Some(d) = dialog {
        d.join().unwrap();
    }
    // Let the first frames settle, then count the agent's CPU on a still screen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    let pump = async {
        loop {
            if view.next_frame().await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(static_secs), pump).await;
    let cpu = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64() * 100.0;
    s.end().await;
    (first, cpu)
}

fn mutter_with_terminal(portal: bool) -> Desktop {
    let mut d = if portal {
        Desktop::gnome_portal()
    } else {
        Desktop::mutter()
    };
    std::fs::write(d.path("colour"), "#203040\n").unwrap();
    d.give(&d.path("colour"));
    // A terminal that fills with the colour in the file, repainting only when it changes.
    let script = format!(
        "last=; while :; do c=$(cat {f}); if [ \"$c\" != \"$last\" ]; then printf '\\033]11;%s\\007\\033[2J' \"$c\"; last=$c; fi; sleep 0.005; done",
        f = d.path("colour").display()
    );
    d.spawn(
        "foot",
        &["--window-size-pixels=1920x1080", "sh", "-c", &script],
    );
    std::thread::sleep(Duration::from_secs(2));
    d
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let relay = TestRelay::start().await;
    println!(
        "| backend | change → frame p50 / p95 (ms) | capture call p50 (ms) | agent CPU, static screen | view → first frame (ms) |"
    );
    println!("|---|---|---|---|---|");
    for name in ["x11", "wlroots", "mutter", "portal"] {
        let bench = match name {
            "x11" => Bench::X11(Xvfb::start_free()),
            "wlroots" => Bench::Wayland(Desktop::sway(""), "wlroots"),
            "mutter" => Bench::Wayland(mutter_with_terminal(false), "mutter"),
            _ => Bench::Wayland(mutter_with_terminal(true), "portal"),
        };
        // The portal's first session asks (answered here, not timed); it stores the token.
        if name == "portal" {
            session(&bench, &relay, 1, true).await;
        }
        let (mut changes, mut calls) = if name == "portal" {
            // The portal's frames are Mutter's through PipeWire: the in-process figures are the
            // mutter row's.
            (vec![Duration::ZERO], vec![Duration::ZERO])
        } else {
            tokio::task::block_in_place(|| capture_times(&bench, a.rounds))
        };
        let (first, cpu) = session(&bench, &relay, a.static_secs, false).await;
        let (c50, c95, k50) = if name == "portal" {
            (
                "(as mutter)".to_string(),
                "".to_string(),
                "(as mutter)".to_string(),
            )
        } else {
            (
                ms(percentile(&mut changes, 0.5)),
                format!(" / {}", ms(percentile(&mut changes, 0.95))),
                ms(percentile(&mut calls, 0.5)),
            )
        };
        println!(
            "| {name} | {c50}{c95} | {k50} | {cpu:.2} % | {} |",
            ms(first)
        );
    }
}
