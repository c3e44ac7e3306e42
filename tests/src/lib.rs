//! Harness for end-to-end tests: a real relay on loopback, real agents and consoles from the libraries,
//! with a scripted user in place of the terminal.
//!
//! # Layout
//! - [`TestRelay`]: a relay in a temporary data directory, with one registered technician.
//! - [`TestAgent`]: share mode with a scripted user who answers consent with a fixed set.
//! - [`proxy::UdpProxy`]: a cuttable UDP forwarder, so a peer can vanish without a close frame.
//! - [`pg::PgServer`]: a private PostgreSQL server for the storage tests on both backends.
//! - [`gui`]: the real agent and console windows on private Xvfb displays, driven with xdotool.
//! - `src/bin/tether-demo.rs`: the one-command demo from README.md, built on the same pieces.

// Test support: a failed expectation should panic loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod device;
pub mod enrolled;
pub mod gui;
pub mod netns;
pub mod pg;
pub mod procs;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_agent::ui::{self, AgentEvent, UserCommand};
use tether_agent::{ShareConfig, ShareError};
use tether_console::ConsoleConfig;
use tether_net::{RelayTarget, Trust};
use tether_proto::msg::EndReason;
use tether_proto::{ScopeSet, SessionCode};
use tether_relay::config::SpliceTap;
use tether_relay::technicians::Technicians;
use tether_relay::{Limits, Relay, RelayConfig, RelayHandle};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub mod desktop;
pub mod grant;
pub mod portal_user;
pub mod proxy;
pub mod xdnd;

/// How long a test waits for any one expected event.
pub const WAIT: Duration = Duration::from_secs(20);

/// A relay on 127.0.0.1 with a temporary data directory and one technician.
#[derive(Debug)]
pub struct TestRelay {
    /// The running relay.
    pub handle: RelayHandle,
    /// Its data directory (deleted on drop).
    pub dir: tempfile::TempDir,
    /// Token of "Ada Lovelace" of "Acme IT".
    pub token: String,
    /// The limits it runs with (kept across [`TestRelay::restart`]).
    pub limits: Limits,
}

impl TestRelay {
    /// Starts a relay with default limits.
    pub async fn start() -> Self {
        Self::start_with(Limits::default(), None).await
    }

    /// Starts a relay that passes every datagram it forwards for sessions' end-to-end
    /// connections through `tamper` first (a relay that watches, or changes, those packets).
    pub async fn start_tampering(tamper: tether_relay::config::ForwardTamper) -> Self {
        Self::start_configured(Limits::default(), None, Some(tamper)).await
    }

    /// Starts a relay with the given limits and splice tap.
    pub async fn start_with(limits: Limits, tap: Option<SpliceTap>) -> Self {
        Self::start_configured(limits, tap, None).await
    }

    async fn start_configured(
        limits: Limits,
        tap: Option<SpliceTap>,
        tamper: Option<tether_relay::config::ForwardTamper>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = Technicians::new(dir.path())
            .add("Ada Lovelace", "Acme IT")
            .expect("add technician");
        let mut config = RelayConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            dir.path().to_path_buf(),
        );
        config.limits = limits.clone();
        config.splice_tap = tap;
        config.forward_tamper = tamper;
        let handle = Relay::spawn(config).await.expect("relay starts");
        TestRelay {
            handle,
            dir,
            token,
            limits,
        }
    }

    /// Shuts the relay down gracefully (as Ctrl-C does) and starts it again on the same address
    /// with the same data directory, so certificate, technicians and audit log carry over.
    pub async fn restart(self) -> Self {
        self.restart_after(Duration::ZERO).await
    }

    /// As [`TestRelay::restart`], with the relay down for `down` in between (an outage).
    pub async fn restart_after(self, down: Duration) -> Self {
        let TestRelay {
            handle,
            dir,
            token,
            limits,
        } = self;
        let addr = handle.local_addr();
        handle.shutdown().await;
        tokio::time::sleep(down).await;
        let mut config = RelayConfig::new(addr, dir.path().to_path_buf());
        config.limits = limits.clone();
        // The old endpoint's driver releases the UDP port a moment after shutdown returns (a new
        // process would not wait for that); retry the bind briefly.
        let mut tries = 0;
        let handle = loop {
            match Relay::spawn(config.clone()).await {
                Ok(h) => break h,
                Err(tether_relay::StartError::Endpoint(e)) if tries < 100 => {
                    tries += 1;
                    tracing::debug!(error = %e, "port still held; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("relay restarts on its address: {e}"),
            }
        };
        TestRelay {
            handle,
            dir,
            token,
            limits,
        }
    }

    /// A target for this relay, pinned, but sent to `addr` (a [`proxy::UdpProxy`] in front of it).
    pub fn target_via(&self, addr: std::net::SocketAddr) -> RelayTarget {
        RelayTarget {
            addr: addr.to_string(),
            ..self.target()
        }
    }

    /// `tether-console chat --ask ASK --code CODE` on this relay (`--json` if asked), as a script
    /// runs it: the process, its stdout lines and its stdin.
    pub fn chat_command(
        &self,
        code: &str,
        ask: &str,
        json: bool,
    ) -> (
        procs::Kill,
        std::sync::mpsc::Receiver<String>,
        std::process::ChildStdin,
    ) {
        use std::process::{Command, Stdio};
        let mut c = Command::new(procs::bin("tether-console"));
        c.args(["--relay", &self.handle.local_addr().to_string()])
            .args(["--relay-cert-sha256", self.handle.fingerprint()]);
        if json {
            c.arg("--json");
        }
        let mut console = procs::Kill(
            c.args(["chat", "--ask", ask, "--code", code])
                .env("TETHER_TOKEN", &self.token)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("tether-console starts"),
        );
        let out = procs::lines(console.0.stdout.take().expect("piped stdout"));
        let stdin = console.0.stdin.take().expect("piped stdin");
        (console, out, stdin)
    }

    /// A target that pins this relay.
    pub fn target(&self) -> RelayTarget {
        RelayTarget {
            addr: self.handle.local_addr().to_string(),
            trust: Trust::Fingerprint(self.handle.fingerprint().to_string()),
            connect_timeout: Duration::from_secs(5),
            direct: Default::default(),
        }
    }

    /// [`TestRelay::target`] for an end that takes no direct path (`--relay-only`).
    pub fn target_relay_only(&self) -> RelayTarget {
        RelayTarget {
            direct: tether_net::path::Direct::Forbidden,
            ..self.target()
        }
    }

    /// [`TestRelay::console`] with `--relay-only`.
    pub fn console_relay_only(&self) -> ConsoleConfig {
        ConsoleConfig {
            relay: self.target_relay_only(),
            token: self.token.clone(),
        }
    }

    /// A console config for Ada.
    pub fn console(&self) -> ConsoleConfig {
        ConsoleConfig {
            relay: self.target(),
            token: self.token.clone(),
        }
    }

    /// The audit log's lines, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.handle.audit_path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }
}

/// An agent in share mode whose user answers every consent prompt with `answer`.
#[derive(Debug)]
pub struct TestAgent {
    /// The share task.
    pub task: JoinHandle<Result<EndReason, ShareError>>,
    /// Every event the user was shown, in order.
    pub seen: Arc<Mutex<Vec<AgentEvent>>>,
    events: mpsc::Receiver<AgentEvent>,
    /// Commands as the user would give them.
    pub commands: mpsc::Sender<UserCommand>,
    _user: JoinHandle<()>,
}

impl TestAgent {
    /// Starts sharing through `relay`; the scripted user answers consent with `answer`.
    pub fn spawn(relay: &TestRelay, answer: ScopeSet) -> Self {
        Self::spawn_with(ShareConfig::new(relay.target()), Some(answer))
    }

    /// Starts sharing with `config`; `answer: None` means the user never answers.
    pub fn spawn_with(config: ShareConfig, answer: Option<ScopeSet>) -> Self {
        let (link, mut handle) = ui::channels();
        let (tx, events) = mpsc::channel(256);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let commands = handle.commands.clone();
        let log = seen.clone();
        let user = tokio::spawn(async move {
            while let Some(ev) = handle.events.recv().await {
                if let (AgentEvent::ConsentRequested { .. }, Some(a)) = (&ev, answer) {
                    let _ = handle.commands.send(UserCommand::Consent(a)).await;
                }
                log.lock().expect("log").push(ev.clone());
                let _ = tx.send(ev).await;
            }
        });
        let task = tokio::spawn(tether_agent::share(config, link));
        TestAgent {
            task,
            seen,
            events,
            commands,
            _user: user,
        }
    }

    /// Waits for the next event matching `pred`, skipping others.
    pub async fn expect(
        &mut self,
        what: &str,
        pred: impl FnMut(&AgentEvent) -> bool,
    ) -> AgentEvent {
        self.expect_within(what, WAIT, pred).await
    }

    /// [`TestAgent::expect`] with a wait of its own (a GiB file in a debug build takes longer).
    pub async fn expect_within(
        &mut self,
        what: &str,
        wait: Duration,
        mut pred: impl FnMut(&AgentEvent) -> bool,
    ) -> AgentEvent {
        tokio::time::timeout(wait, async {
            loop {
                match self.events.recv().await {
                    Some(ev) if pred(&ev) => return ev,
                    Some(_) => {}
                    None => panic!("agent stopped while waiting for {what}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
    }

    /// Waits for the next session code.
    pub async fn code(&mut self) -> SessionCode {
        match self
            .expect("a session code", |e| matches!(e, AgentEvent::Code { .. }))
            .await
        {
            AgentEvent::Code { code, .. } => code,
            _ => unreachable!(),
        }
    }

    /// Whether any event so far matches `pred`.
    pub fn saw(&self, pred: impl Fn(&AgentEvent) -> bool) -> bool {
        self.seen.lock().expect("log").iter().any(pred)
    }
}

/// Starts an agent whose user grants `grant`, and opens a console session asking for `ask`.
pub async fn paired(
    relay: &TestRelay,
    grant: ScopeSet,
    ask: ScopeSet,
) -> (TestAgent, tether_console::Session) {
    let mut agent = TestAgent::spawn(relay, grant);
    let code = agent.code().await;
    let session = tether_console::open_session(&relay.console(), code, ask)
        .await
        .expect("session opens");
    (agent, session)
}

/// A console session with an agent whose user grants `grant` to every prompt and reads every event,
/// as the terminal front end does ([`TestAgent`] keeps a bounded backlog, too small for the hundreds
/// of requests a bench makes). Returns the agent's share task, which ends after the session.
pub async fn unbounded_session(
    relay: &TestRelay,
    grant: ScopeSet,
) -> (
    JoinHandle<Result<EndReason, ShareError>>,
    tether_console::Session,
) {
    let (link, mut handle) = ui::channels();
    let agent = tokio::spawn(tether_agent::share(ShareConfig::new(relay.target()), link));
    let (code_tx, code_rx) = tokio::sync::oneshot::channel();
    // The user ends with the share, when its event channel closes.
    tokio::spawn(async move {
        let mut code_tx = Some(code_tx);
        while let Some(ev) = handle.events.recv().await {
            match ev {
                AgentEvent::Code { code, .. } => {
                    if let Some(tx) = code_tx.take() {
                        let _ = tx.send(code);
                    }
                }
                AgentEvent::ConsentRequested { .. } => {
                    let _ = handle.commands.send(UserCommand::Consent(grant)).await;
                }
                _ => {}
            }
        }
    });
    let code = code_rx.await.expect("the agent shows a code");
    let session = tether_console::open_session(&relay.console(), code, grant)
        .await
        .expect("session opens");
    (agent, session)
}

/// A console built from the protocol pieces, for tests that must misbehave (or pose as another source)
/// where the real console library would not.
#[derive(Debug)]
pub struct RawConsole {
    /// The relay connection.
    pub relay: tether_net::client::RelayConnection,
    /// Stream 0, send half (plain until pairing).
    pub send: quinn::SendStream,
    /// Stream 0, receive half.
    pub recv: quinn::RecvStream,
    /// The console's end of the session's packet forwarding.
    pub route: tether_proto::forward::RouteToken,
    /// The session's end-to-end connection, once [`RawConsole::end_to_end`] made it.
    pub e2e: Option<Box<tether_net::e2e::E2eLink>>,
}

/// An agent's relay connection that opened a slot through the relay protocol itself (`Hello`,
/// `OpenSlot`), and does nothing more unless the test makes it.
#[derive(Debug)]
pub struct RawSlot {
    /// The relay connection.
    pub relay: tether_net::client::RelayConnection,
    /// The control stream, send half.
    pub send: quinn::SendStream,
    /// The control stream, receive half.
    pub recv: quinn::RecvStream,
    /// The slot the relay opened.
    pub slot: tether_proto::Slot,
}

impl RawSlot {
    /// Connects to `relay` as an agent and opens a slot.
    pub async fn open(relay: &TestRelay) -> Self {
        use tether_net::{client, framed};
        use tether_proto::msg::{AgentToRelay, RelayToAgent, Role};
        let conn = client::connect(&relay.target())
            .await
            .expect("relay reachable");
        let (mut send, mut recv) = client::open_control(&conn.conn, Role::Agent)
            .await
            .expect("control stream");
        framed::write_msg(&mut send, &AgentToRelay::OpenSlot { reason: None })
            .await
            .expect("slot request sent");
        let answer = framed::read_msg(&mut recv)
            .await
            .expect("the relay answers");
        let RelayToAgent::SlotOpened { slot, .. } = answer else {
            panic!("no slot: {answer:?}")
        };
        RawSlot {
            relay: conn,
            send,
            recv,
            slot,
        }
    }
}

/// How a raw claim ended.
#[derive(Debug)]
pub enum RawClaim {
    /// Claimed: stream 0 is now spliced to the agent.
    Claimed(RawConsole),
    /// The relay refused, with this error.
    Refused(tether_proto::msg::RelayError),
    /// The connection failed.
    Failed(String),
}

impl RawConsole {
    /// Connects from `bind` (if given) and claims `slot` with `token`, announcing `scopes`.
    pub async fn claim(
        target: &RelayTarget,
        bind: Option<std::net::SocketAddr>,
        slot: tether_proto::Slot,
        token: &str,
        scopes: ScopeSet,
    ) -> RawClaim {
        use tether_net::{client, framed};
        use tether_proto::msg::{ConsoleToRelay, RelayToConsole, Role};
        let relay = match client::connect_from(target, bind).await {
            Ok(r) => r,
            Err(e) => return RawClaim::Failed(e.to_string()),
        };
        let (mut send, mut recv) = match client::open_control(&relay.conn, Role::Console).await {
            Ok(s) => s,
            Err(e) => return RawClaim::Failed(e.to_string()),
        };
        let claim = ConsoleToRelay::Claim {
            slot,
            token: token.into(),
            scopes,
        };
        if let Err(e) = framed::write_msg(&mut send, &claim).await {
            return RawClaim::Failed(e.to_string());
        }
        let answer = framed::read_msg::<RelayToConsole>(&mut recv).await;
        match answer {
            Ok(RelayToConsole::Claimed { route, .. }) => RawClaim::Claimed(RawConsole {
                relay,
                send,
                recv,
                route,
                e2e: None,
            }),
            Ok(RelayToConsole::Error(e)) => {
                relay.close(0, "done").await;
                RawClaim::Refused(e)
            }
            Ok(other) => RawClaim::Failed(format!("unexpected answer {other:?}")),
            Err(e) => RawClaim::Failed(e.to_string()),
        }
    }

    /// Runs the console side of pairing with `code`'s secret.
    pub async fn pair(
        &mut self,
        code: &SessionCode,
    ) -> Result<tether_proto::seal::SessionKeys, String> {
        use tether_net::framed;
        use tether_proto::pairing::{Pairing, PairingMsg, Side};
        let mut p = Pairing::new(Side::Console, code.slot, &code.secret);
        loop {
            while let Some(m) = p.poll_transmit() {
                framed::write_msg(&mut self.send, &m)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if p.outcome().is_some() {
                return p.into_keys().map_err(|e| e.to_string());
            }
            let m = framed::read_msg::<PairingMsg>(&mut self.recv)
                .await
                .map_err(|e| e.to_string())?;
            let _ = p.handle(m);
        }
    }
}

impl RawConsole {
    /// After [`RawConsole::pair`]: the session's end-to-end connection, as the real console makes
    /// it ([`tether_net::e2e::offer`]); request streams go on its `conn`.
    pub async fn end_to_end(&mut self, keys: &tether_proto::seal::SessionKeys) {
        let link = tether_net::e2e::offer(&self.relay.conn, keys, self.route, Default::default())
            .await
            .expect("the end-to-end connection");
        self.e2e = Some(Box::new(link));
    }

    /// The end-to-end connection's QUIC connection ([`RawConsole::end_to_end`] first).
    pub fn conn(&self) -> &quinn::Connection {
        &self
            .e2e
            .as_ref()
            .expect("RawConsole::end_to_end first")
            .conn
    }

    /// After [`RawConsole::pair`]: asks for `scopes` on stream 0, sealed with `keys`, and returns the
    /// agent's sealed answer with the opener for the rest of stream 0 towards the console.
    pub async fn ask_consent(
        &mut self,
        keys: &tether_proto::seal::SessionKeys,
        scopes: ScopeSet,
    ) -> (
        tether_proto::msg::AgentToConsole,
        tether_proto::seal::Opener,
    ) {
        use tether_net::framed;
        use tether_proto::msg::ConsoleToAgent;
        use tether_proto::seal::Direction;
        let consent = keys
            .sealer(0, Direction::ConsoleToAgent)
            .seal_msg(&ConsoleToAgent::ConsentRequest { scopes })
            .expect("sealing a consent request");
        framed::write_frame(&mut self.send, &consent)
            .await
            .expect("stream 0 writable");
        let mut opener = keys.opener(0, Direction::AgentToConsole);
        let answer = opener
            .open_msg(framed::read_frame(&mut self.recv).await.expect("an answer"))
            .expect("the answer opens");
        (answer, opener)
    }
}

/// A private X server (Xvfb, 1920x1080x24, `-noreset`) on display `:n`, with helper programs run against
/// it. Everything it started is killed on drop.
#[derive(Debug)]
pub struct Xvfb {
    /// The display name, e.g. `":141"`.
    pub display: String,
    server: std::process::Child,
    clients: Vec<std::process::Child>,
}

impl Xvfb {
    /// Starts `Xvfb :n` and waits until it accepts clients.
    pub fn start(n: u32) -> Self {
        let display = format!(":{n}");
        let server = std::process::Command::new("Xvfb")
            .args([
                &display,
                "-screen",
                "0",
                "1920x1080x24",
                "-nolisten",
                "tcp",
                "-noreset",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("Xvfb is installed");
        let x = Xvfb {
            display,
            server,
            clients: Vec::new(),
        };
        for _ in 0..100 {
            if x.cmd("xdpyinfo", &[]).status.success() {
                return x;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("Xvfb {} did not start", x.display);
    }

    /// Starts a 1920x1080 Xvfb on a display number it picks itself, so it never collides with
    /// another X server on this machine.
    pub fn start_free() -> Self {
        Self::start_free_sized(1920, 1080)
    }

    /// As [`Xvfb::start_free`], `width`x`height` (RandR is on, as in every Xvfb: `xrandr
    /// --setmonitor` splits it into monitors).
    pub fn start_free_sized(width: u32, height: u32) -> Self {
        let (server, display) = spawn_xvfb_displayfd(width, height);
        let x = Xvfb {
            display,
            server,
            clients: Vec::new(),
        };
        assert!(
            x.cmd("xdpyinfo", &[]).status.success(),
            "Xvfb did not start"
        );
        x
    }

    /// Runs a program against this display and returns its output.
    pub fn cmd(&self, program: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new(program)
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"))
    }

    /// Starts a long-running client (a window) that is killed on drop.
    pub fn spawn(&mut self, program: &str, args: &[&str]) {
        let child = std::process::Command::new(program)
            .args(args)
            .env("DISPLAY", &self.display)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        self.clients.push(child);
    }

    /// An independent screenshot of the whole screen (ImageMagick `import`), as (width, height, RGB).
    pub fn screenshot(&self) -> (u32, u32, Vec<u8>) {
        let out = self.cmd("import", &["-window", "root", "-depth", "8", "png24:-"]);
        assert!(out.status.success(), "import failed");
        let mut decoder = png::Decoder::new(std::io::Cursor::new(out.stdout));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("png frame");
        buf.truncate(info.buffer_size());
        let rgb = match info.color_type {
            png::ColorType::Rgb => buf,
            png::ColorType::Rgba => buf
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]])
                .collect(),
            other => panic!("unexpected screenshot colour type {other:?}"),
        };
        (info.width, info.height, rgb)
    }

    /// Where the pointer is, from `xdotool getmouselocation`.
    pub fn pointer(&self) -> (i32, i32) {
        let out = self.cmd("xdotool", &["getmouselocation", "--shell"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {text:?}"))
        };
        (get("X="), get("Y="))
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        for c in &mut self.clients {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Starts an Xvfb of `width`x`height` with `-displayfd`, and returns it with the display name it
/// chose (it prints the number once it accepts clients).
pub fn spawn_xvfb_displayfd(width: u32, height: u32) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut server = std::process::Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0"])
        .arg(format!("{width}x{height}x24"))
        .args(["-nolisten", "tcp", "-noreset"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("Xvfb (install xvfb)");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("Xvfb prints its display number");
    let n: u32 = line
        .trim()
        .parse()
        .expect("Xvfb printed its display number");
    (server, format!(":{n}"))
}

/// The command line of the harness's own binaries (`tether-demo`, `screen-bench`), which take no
/// arguments: `--help` prints `help` and `--version` the version, each then exits 0; anything else is
/// a usage error (exit 2). Returns when there are no arguments.
pub fn no_args_but_help(name: &str, help: &str) {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("-h" | "--help") => {
            println!("{help}");
            std::process::exit(0)
        }
        Some("-V" | "--version") => {
            println!("{name} {}", env!("CARGO_PKG_VERSION"));
            std::process::exit(0)
        }
        Some(other) => {
            eprintln!("error: unexpected argument {other:?}\n\n{help}");
            std::process::exit(2)
        }
    }
}

/// Reads frames until the console's framebuffer equals `shot()`, an independent screenshot as
/// (width, height, RGB) taken afresh each round (at least every second: a still screen sends no
/// frames), or panics after [`WAIT`] saying how many pixels of `what` differ.
pub async fn until_frame_matches(
    view: &mut tether_console::screen::ViewStream,
    what: &str,
    mut shot: impl FnMut() -> (u32, u32, Vec<u8>),
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (w, h, want) = shot();
        assert_eq!((w, h), (view.framebuffer.width, view.framebuffer.height));
        let have = bgrx_to_rgb(&view.framebuffer.pixels);
        if have == want {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            let differ = have
                .chunks(3)
                .zip(want.chunks(3))
                .filter(|(a, b)| a != b)
                .count();
            panic!("the framebuffer never matched {what}: {differ} pixels differ");
        }
        if let Ok(r) =
            tokio::time::timeout(left.min(Duration::from_secs(1)), view.next_frame()).await
        {
            r.unwrap();
        }
    }
}

/// Converts a B G R X framebuffer to RGB, to compare with [`Xvfb::screenshot`].
pub fn bgrx_to_rgb(pixels: &[u8]) -> Vec<u8> {
    pixels
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect()
}
