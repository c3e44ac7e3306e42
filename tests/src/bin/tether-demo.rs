//! `tether-demo`: Tether's main job on one machine with no setup — a relay, an agent and a technician's
//! console pair by one-time code, the user consents, and the console pulls the inventory, runs the
//! diagnostics and, when an X server can be started (Xvfb), views the user's screen and types into a
//! terminal on it. Each step is explained as it happens.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tether_agent::ShareConfig;
use tether_agent::screen::{ScrapScreen, X11Input};
use tether_agent::ui::{self, AgentEvent, UserCommand};
use tether_console::{Session, open_session, render};
use tether_net::{RelayTarget, Trust};
use tether_proto::screen::{Action, InputEvent, MouseButton};
use tether_proto::{Scope, ScopeSet};
use tether_relay::technicians::Technicians;
use tether_relay::{Relay, RelayConfig};
use tether_tests::Xvfb;

const HELP: &str = "\
tether-demo: Tether's main job on this machine, with no configuration and no external server.

It starts a relay (fresh certificate, temporary data directory), registers a technician, starts an
agent that shows a one-time code, and a technician's console that enters the code. They pair over real
QUIC on 127.0.0.1 with SPAKE2; a scripted user grants access; the console then
  - pulls the hardware and software inventory,
  - runs the health check (every diagnostic probe that needs no parameters),
  - and, when Xvfb and xterm are installed, views the user's screen (a private X server with a
    terminal on it), writes the picture to a PNG file it names, and types one key into that
    terminal, showing that it arrived.
Each step is explained as it happens. Nothing is left running afterwards.

Usage: tether-demo [--help] [--version]
`./dev demo` installs the system packages it needs first.";

/// How many steps the demo shows (the screen steps only when an X server can be started).
struct Steps(u32);

impl Steps {
    fn step(&self, n: u32, text: &str) {
        println!("\n[{n}/{}] {text}", self.0);
    }
}

/// A private X server with a terminal on it, standing in for the user's desktop.
struct Desktop {
    x: Xvfb,
    /// The terminal writes the first key it receives here.
    typed: PathBuf,
    _dir: tempfile::TempDir,
}

impl Desktop {
    /// Starts one when Xvfb and xterm are installed; otherwise says what is missing.
    fn start() -> Result<Desktop, String> {
        for tool in ["Xvfb", "xterm", "xdotool", "xdpyinfo"] {
            if !on_path(tool) {
                return Err(format!(
                    "{tool} is not installed (`./dev demo` installs it)"
                ));
            }
        }
        let mut x = Xvfb::start_free();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let typed = dir.path().join("typed.txt");
        // Raw mode: the first key pressed is written out at once, no Enter needed.
        let script = format!("stty raw -echo; head -c 1 > {}", typed.display());
        x.spawn(
            "xterm",
            &[
                "-geometry",
                "60x12+40+40",
                "-title",
                "user's terminal",
                "-e",
                "sh",
                "-c",
                &script,
            ],
        );
        let found = x.cmd(
            "xdotool",
            &["search", "--sync", "--onlyvisible", "--class", "xterm"],
        );
        if !found.status.success() {
            return Err("the terminal did not appear on the X server".into());
        }
        Ok(Desktop {
            x,
            typed,
            _dir: dir,
        })
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tether_tests::no_args_but_help("tether-demo", HELP);
    tether_net::cli::init_logging();
    println!("Tether demo: one machine plays all three parts, over real QUIC on 127.0.0.1.");
    let desktop = Desktop::start();
    let steps = Steps(if desktop.is_ok() { 8 } else { 6 });
    let step = |n, text| steps.step(n, text);

    step(
        1,
        "Starting a relay with a fresh certificate and data directory (nothing to configure).",
    );
    let dir = tempfile::tempdir()?;
    let relay = Relay::spawn(RelayConfig::new(
        "127.0.0.1:0".parse()?,
        dir.path().to_path_buf(),
    ))
    .await?;
    println!("      relay listening on {}", relay.local_addr());
    println!("      certificate SHA-256 {}", relay.fingerprint());
    println!("      (agent and console pin this fingerprint; there is no way to skip the check)");

    step(
        2,
        "Registering a technician on the relay (the relay keeps only a hash of the token).",
    );
    let token = Technicians::new(dir.path()).add("Ada Lovelace", "Acme IT")?;
    println!(
        "      technician \"Ada Lovelace\" of \"Acme IT\", token {}…",
        &token[..10]
    );

    step(
        3,
        "The user starts the agent; it asks the relay for a slot and shows a one-time code.",
    );
    let target = RelayTarget {
        addr: relay.local_addr().to_string(),
        trust: Trust::Fingerprint(relay.fingerprint().to_string()),
        connect_timeout: Duration::from_secs(5),
        direct: Default::default(),
    };
    let (link, mut user) = ui::channels();
    let mut share = ShareConfig::new(target.clone());
    if let Ok(d) = &desktop {
        share.screen = Arc::new(ScrapScreen::new(Some(d.x.display.clone())));
        share.input = Arc::new(X11Input::new(Some(d.x.display.clone())));
    }
    let agent = tokio::spawn(tether_agent::share(share, link));
    let code = loop {
        match user.events.recv().await {
            Some(AgentEvent::Code { code, .. }) => break code,
            Some(_) => {}
            None => anyhow::bail!("the agent stopped before showing a code"),
        }
    };
    println!("      agent shows:  session code {code}");
    println!(
        "      only the first group (the slot) ever reaches the relay; the rest is the pairing secret"
    );

    // The scripted user: prints what the agent shows and answers the consent prompt with "y".
    let user_task = tokio::spawn(async move {
        while let Some(ev) = user.events.recv().await {
            for line in tether_agent::terminal::render(&ev)
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                println!("      agent │ {line}");
            }
            if let AgentEvent::ConsentRequested { scopes, .. } = ev {
                println!("      user types: y");
                let _ = user.commands.send(UserCommand::Consent(scopes)).await;
            }
        }
    });

    step(
        4,
        "The technician types the code into the console: claim, SPAKE2 pairing, then a consent request.",
    );
    let config = tether_console::ConsoleConfig {
        relay: target,
        token,
    };
    let mut scopes: ScopeSet = [Scope::Inventory, Scope::Diagnostics].into_iter().collect();
    if desktop.is_ok() {
        scopes.insert(Scope::View);
        scopes.insert(Scope::Control);
    }
    let mut session = open_session(&config, code, scopes).await?;
    println!(
        "      console: paired with verification code {}; the user granted: {}",
        session.verification, session.granted
    );

    step(
        5,
        "The console pulls the inventory (sealed end to end; the relay copies ciphertext).",
    );
    let inv = session.inventory().await?;
    for line in render::inventory(&inv).lines() {
        println!("      {line}");
    }

    step(
        6,
        "The console runs the standard health check (every probe that needs no parameters), problems first.",
    );
    let reports = session.health_check(None).await?;
    for line in render::diag_summary(&reports).lines() {
        println!("      {line}");
    }
    match &desktop {
        Ok(d) => screen_steps(&steps, &mut session, d).await?,
        Err(why) => {
            println!("\nThe screen part was left out: {why}. Viewing and control need an X server.")
        }
    }
    session.end().await;
    let reason = agent.await??;
    let _ = tokio::time::timeout(Duration::from_secs(1), user_task).await;
    println!("\nSession over ({reason}). The relay's audit log recorded:");
    for line in std::fs::read_to_string(relay.audit_path())?.lines() {
        println!("  {line}");
    }
    relay.shutdown().await;
    println!("\nNext: run the three parts yourself in three terminals — see README.md.");
    Ok(())
}

/// Steps 7 and 8: view the user's screen into a PNG, then press one key in their terminal.
async fn screen_steps(
    steps: &Steps,
    session: &mut Session,
    desktop: &Desktop,
) -> anyhow::Result<()> {
    steps.step(
        7,
        "The console views the user's screen: a full frame, then only what changes (zstd, sealed).",
    );
    let mut view = session.view(0).await?;
    tokio::time::timeout(Duration::from_secs(10), view.next_frame()).await??;
    let png = std::env::temp_dir().join(format!("tether-demo-screen-{}.png", std::process::id()));
    tether_console::screen::write_png(&view.framebuffer, &png)?;
    println!(
        "      received a {}x{} frame of display {}; wrote it to {}",
        view.framebuffer.width,
        view.framebuffer.height,
        desktop.x.display,
        png.display()
    );
    view.close().await;

    steps.step(
        8,
        "The console takes control: it clicks into the user's terminal and presses the key t.",
    );
    let mut control = session.control(0).await?;
    control
        .send(&InputEvent::MouseMove { x: 120, y: 80 })
        .await?;
    control
        .send(&InputEvent::Button {
            button: MouseButton::Left,
            action: Action::Click,
        })
        .await?;
    control.send(&InputEvent::Text("t".into())).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let typed = loop {
        let text = std::fs::read_to_string(&desktop.typed).unwrap_or_default();
        if !text.is_empty() || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    control.close().await;
    if typed != "t" {
        anyhow::bail!("the key did not arrive in the user's terminal (it read {typed:?})");
    }
    println!("      the terminal on the user's screen received the key: {typed:?}");
    Ok(())
}
