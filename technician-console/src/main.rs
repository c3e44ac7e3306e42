//! `tether-console`: parse the command line, run one session, print, exit with a meaningful code.

use clap::{CommandFactory, Parser, Subcommand};
use tether_console::keys::{chord_events, parse_chord};
use tether_console::{
    ConsoleConfig, ConsoleError, Session, pair_session, pair_session_with, render,
};
use tether_net::cli::RelayArgs;
use tether_proto::diag::{Probe, ProbeKind};
use tether_proto::fleet::{FleetQuery, FleetReply};
use tether_proto::screen::{Action, InputEvent, MouseButton};
use tether_proto::{Scope, ScopeSet, SessionCode};

#[derive(Parser)]
#[command(name = "tether-console", version, about = "Tether technician console")]
struct Cli {
    #[command(flatten)]
    relay: RelayArgs,
    /// Your technician token, from `tether-relay technician add`.
    #[arg(long, env = "TETHER_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Without a command on a desktop: the console window.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the console window (the default on a desktop): enter the code, see consent, the live
    /// screen, inventory and diagnostics.
    Window,
    /// With --code: fetch a machine's full inventory in a live session (asks the user for
    /// `inventory`). With a subcommand: query enrolled devices.
    #[command(args_conflicts_with_subcommands = true)]
    Inventory {
        /// The code the user reads to you, e.g. "417 302 958".
        #[arg(long)]
        code: Option<SessionCode>,
        /// Ticket reference to store in the session's record.
        #[arg(long)]
        ticket: Option<String>,
        #[command(subcommand)]
        fleet: Option<InventoryCommand>,
    },
    /// Session records: notes, resolutions and a searchable history of past sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Enrolled devices of your organisation.
    Devices {
        #[command(subcommand)]
        command: DevicesCommand,
    },
    /// Run diagnostic probes (asks the user for `diagnostics`).
    ///
    /// Parameters follow the probe name as key=value or --key value, e.g.
    /// `diag --code C tcp-connect host=example.com port=443` or `... tcp-connect --host example.com --port 443`.
    Diag {
        /// The code the user reads to you (not needed for --list).
        #[arg(long, required_unless_present = "list")]
        code: Option<SessionCode>,
        /// Show the probe catalog with each probe's parameters.
        #[arg(long, conflicts_with_all = ["all", "probe"])]
        list: bool,
        /// Run the standard health check (every probe needing no parameters); problems first.
        #[arg(long, conflicts_with = "probe")]
        all: bool,
        /// Override each probe's timeout, in seconds (1-120).
        #[arg(long)]
        timeout: Option<u16>,
        /// Ticket reference to store in the session's record.
        #[arg(long)]
        ticket: Option<String>,
        /// The probe to run (see --list).
        #[arg(required_unless_present_any = ["list", "all"])]
        probe: Option<ProbeKind>,
        /// The probe's parameters: key=value or --key value.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// List the remote displays with size and position (asks for `view`).
    Displays {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
    },
    /// View the remote screen in a window (asks for `view` and `control`).
    Connect {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
        /// Which remote display to show (see the agent's list; 0 is the first).
        #[arg(long, default_value_t = 0)]
        display: u32,
        /// Ask for `view` only: no mouse or keyboard.
        #[arg(long)]
        view_only: bool,
        /// No window: write the remote screen to --snapshot and exit.
        #[arg(long, requires = "snapshot")]
        headless: bool,
        /// PNG file for --headless.
        #[arg(long)]
        snapshot: Option<std::path::PathBuf>,
        /// With --snapshot: draw the user's cursor into the picture, where their pointer is.
        #[arg(long, requires = "snapshot")]
        cursor: bool,
    },
    /// Chat with the user: each line you type is sent, and the user's lines are printed as they
    /// arrive (`--json`: one object per line). Nothing is asked until you type /ask (with --ask);
    /// then /invite NAME|L2 or /handover NAME|L2 brings in a colleague. End of input ends the session.
    Chat {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
        /// Scopes that /ask will ask the user for, e.g. "inventory,view".
        #[arg(long)]
        ask: Option<ScopeSet>,
    },
    /// The invitations waiting for you: by name, or for your tier. Ask the inviting technician for
    /// the code (the relay never has it), then connect with it as usual.
    Invitations,
    /// Send one input action to the remote screen (asks for `control`).
    Input {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
        /// Which remote display the coordinates are on.
        #[arg(long, default_value_t = 0)]
        display: u32,
        #[command(subcommand)]
        action: InputAction,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// The newest session records of your organisation.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One session record in full.
    Show {
        /// Record id (printed when the session starts, and by `sessions list`).
        id: u64,
    },
    /// Write notes on an open record (technician or admin role). Each option replaces its field;
    /// an empty value clears it.
    Note {
        /// Record id.
        id: u64,
        /// What the user saw.
        #[arg(long)]
        problem: Option<String>,
        /// Why it happened.
        #[arg(long)]
        cause: Option<String>,
        /// What fixed it.
        #[arg(long)]
        fix: Option<String>,
        /// Ticket reference.
        #[arg(long)]
        ticket: Option<String>,
        /// The device (host name), if the record has none or the wrong one.
        #[arg(long)]
        device: Option<String>,
    },
    /// Close a record with its resolution (technician or admin role); it can no longer change.
    Close {
        /// Record id.
        id: u64,
        /// What resolved it.
        #[arg(long)]
        resolution: String,
    },
    /// Past sessions whose reason, ticket, notes or resolution contain all these words; newest first.
    Search {
        /// Words to look for (may be empty with --device or --technician).
        #[arg(default_value = "")]
        text: String,
        /// Only this device (host name, case-insensitive).
        #[arg(long)]
        device: Option<String>,
        /// Only sessions this technician was in (case-insensitive).
        #[arg(long)]
        technician: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// List the enrolled devices.
    List,
    /// One device and its current inventory.
    Show {
        /// Device id or host name.
        device: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Json,
}

/// Which spreadsheet a CSV export writes.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Sheet {
    /// One row per device: host, OS, CPU, RAM and disk in GiB, IPs, users, last seen.
    Devices,
    /// One row per installed package: host, name, version, source.
    Software,
}

#[derive(Subcommand)]
enum InventoryCommand {
    /// Export every device's current inventory: as CSV, the devices sheet or (--sheet software) the
    /// software sheet; as JSON, everything.
    Export {
        /// Output format.
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// Which CSV sheet.
        #[arg(long, value_enum, default_value = "devices")]
        sheet: Sheet,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// What changed on a device, and when.
    History {
        /// Device id or host name.
        device: String,
    },
    /// Which devices have a package: NAME or NAME=VERSION.
    Search {
        /// NAME or NAME=VERSION.
        #[arg(long)]
        software: String,
    },
}

#[derive(Subcommand, Clone)]
enum InputAction {
    /// Move the pointer to X Y and click a button (left unless --button).
    Click {
        x: i32,
        y: i32,
        /// left, middle, right, back or forward.
        #[arg(long, value_enum, default_value_t = ButtonArg::Left)]
        button: ButtonArg,
        /// Click twice (a double-click).
        #[arg(long)]
        double: bool,
    },
    /// Move the pointer to X Y.
    Move { x: i32, y: i32 },
    /// Type TEXT (characters, through the remote's keyboard map; for keys use `key`).
    Type { text: String },
    /// Press and release a key or a chord, xdotool style: `f5`, `ctrl+alt+t`, `ctrl+shift+Tab`,
    /// `super`, `Return`, or W3C code names such as `KeyA`, `ControlRight`, `NumpadEnter`.
    Key { chord: String },
    /// Press keys and keep them down until this command's stream ends (the agent then releases
    /// every key it pressed: nothing stays down after a command).
    Keydown { chord: String },
    /// Release keys (a key this stream did not press is ignored, and said so).
    Keyup { chord: String },
    /// Scroll by N notches (positive: down, or right with --horizontal).
    Scroll {
        #[arg(allow_hyphen_values = true)]
        n: i32,
        /// Scroll sideways.
        #[arg(long)]
        horizontal: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ButtonArg {
    Left,
    Middle,
    Right,
    Back,
    Forward,
}

fn input_events(a: &InputAction) -> Vec<InputEvent> {
    let chord = |c: &str| parse_chord(c).unwrap_or_else(|e| usage(&e.to_string()));
    match a {
        InputAction::Click {
            x,
            y,
            button,
            double,
        } => {
            let button = match button {
                ButtonArg::Left => MouseButton::Left,
                ButtonArg::Middle => MouseButton::Middle,
                ButtonArg::Right => MouseButton::Right,
                ButtonArg::Back => MouseButton::Back,
                ButtonArg::Forward => MouseButton::Forward,
            };
            let click = InputEvent::Button {
                button,
                action: Action::Click,
            };
            let mut v = vec![InputEvent::MouseMove { x: *x, y: *y }, click.clone()];
            if *double {
                v.push(click);
            }
            v
        }
        InputAction::Move { x, y } => vec![InputEvent::MouseMove { x: *x, y: *y }],
        InputAction::Type { text } => vec![InputEvent::Text(text.clone())],
        InputAction::Key { chord: c } => chord_events(&chord(c), true, true),
        InputAction::Keydown { chord: c } => chord_events(&chord(c), true, false),
        InputAction::Keyup { chord: c } => chord_events(&chord(c), false, true),
        InputAction::Scroll { n, horizontal } => {
            let (dx, dy) = if *horizontal { (*n, 0) } else { (0, *n) };
            vec![InputEvent::Scroll { dx, dy }]
        }
    }
}

#[tokio::main]
async fn main() {
    tether_net::cli::init_logging();
    let mut cli = parse_cli();
    if cli.command.is_none() {
        if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
            usage("no command, and no desktop to open the window on; see --help")
        }
        cli.command = Some(Command::Window);
    }
    // Validate diagnostics parameters before anything connects: a bad one never leaves this machine.
    let mut probe = None;
    if let Some(Command::Diag {
        list,
        timeout,
        probe: kind,
        args,
        ..
    }) = &mut cli.command
    {
        if *list {
            if cli.json {
                let text = serde_json::to_string_pretty(&tether_proto::diag::catalog());
                tether_net::outln!(
                    "{}",
                    text.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
                );
            } else {
                tether_net::out!("{}", render::catalog());
            }
            return;
        }
        if let Some(k) = kind {
            match Probe::parse(*k, args) {
                Ok(p) => probe = Some(p),
                Err(e) => usage(&e.to_string()),
            }
        }
        if let Err(e) = ProbeKind::Uptime.effective_timeout_secs(*timeout) {
            usage(&format!("--timeout: {e}"));
        }
    }
    // The same for everything else that can be checked here: claiming a code asks the user and
    // uses the code up, so a mistake found afterwards costs them a new code.
    let input = match &cli.command {
        Some(Command::Input { action, .. }) => input_events(action),
        _ => Vec::new(),
    };
    if let Some(Command::Connect {
        snapshot: Some(path),
        ..
    }) = &cli.command
        && let Err(e) = check_output_path(path)
    {
        usage(&e);
    }
    if let Some(
        Command::Inventory {
            ticket: Some(t), ..
        }
        | Command::Diag {
            ticket: Some(t), ..
        },
    ) = &cli.command
        && let Err(e) = tether_console::records::check_ticket(t)
    {
        usage(&e.to_string());
    }
    let config = match (cli.relay.target(), cli.token.clone()) {
        (Ok(relay), Some(token)) => ConsoleConfig { relay, token },
        (Err(e), _) => usage(&e.to_string()),
        (_, None) => usage("no technician token: pass --token or set TETHER_TOKEN"),
    };
    if matches!(cli.command, Some(Command::Window)) {
        // winit wants the main thread, which is the one running this future under #[tokio::main];
        // sessions run on this runtime's workers.
        let rt = tokio::runtime::Handle::current();
        if let Err(e) = tokio::task::block_in_place(|| tether_console::window::run(rt, config)) {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code());
        }
        return;
    }
    if let Err(e) = run(cli, config, probe, input).await {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

/// Parses the command line. `diag`'s probe parameters take every word after the probe name, so a
/// console option written there (`diag --code C tcp-connect host=h port=1 --timeout 3 --json`) is
/// moved before the probe and the line parsed again: options work in any place.
fn parse_cli() -> Cli {
    let argv: Vec<String> = std::env::args().collect();
    let cli = Cli::parse_from(&argv);
    let Some(Command::Diag {
        probe: Some(kind),
        args,
        ..
    }) = &cli.command
    else {
        return cli;
    };
    match hoist_options(&argv, *kind, args) {
        Some(again) => Cli::parse_from(again),
        None => cli,
    }
}

/// `argv` with the console options found among `diag`'s trailing probe parameters `args` moved
/// before the probe name; `None` when there are none.
fn hoist_options(argv: &[String], kind: ProbeKind, args: &[String]) -> Option<Vec<String>> {
    let mut cmd = Cli::command();
    cmd.build();
    let diag = cmd.find_subcommand("diag")?;
    // The option's long name, and whether a value follows it as the next word.
    let option = |word: &str| -> Option<bool> {
        let name = word.strip_prefix("--")?;
        let (name, inline) = match name.split_once('=') {
            Some((n, _)) => (n, true),
            None => (name, false),
        };
        if kind.params().iter().any(|p| p.name == name) {
            return None;
        }
        let arg = diag.get_arguments().find(|a| a.get_long() == Some(name))?;
        Some(!inline && arg.get_action().takes_values())
    };
    let (mut hoisted, mut params) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(word) = it.next() {
        match option(word) {
            Some(takes_value) => {
                hoisted.push(word.clone());
                if takes_value && let Some(v) = it.next() {
                    hoisted.push(v.clone());
                }
            }
            None => params.push(word.clone()),
        }
    }
    if hoisted.is_empty() {
        return None;
    }
    // The trailing parameters are the last words of the line, right after the probe name.
    let probe_at = argv.len().checked_sub(args.len() + 1)?;
    let mut again = argv[..probe_at].to_vec();
    again.extend(hoisted);
    again.push(argv[probe_at].clone());
    again.extend(params);
    Some(again)
}

/// The command (`main` has filled in the default).
fn command(cli: &Cli) -> &Command {
    match &cli.command {
        Some(c) => c,
        None => usage("no command; see --help"),
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(2)
}

/// Whether a file can be written at `path` later: its directory exists and it is not a directory.
fn check_output_path(path: &std::path::Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "{} is a directory, not a file name",
            path.display()
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "cannot write {}: the directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    Ok(())
}

async fn run(
    cli: Cli,
    config: ConsoleConfig,
    probe: Option<Probe>,
    input: Vec<InputEvent>,
) -> Result<(), ConsoleError> {
    if let Some(q) = fleet_query(command(&cli)) {
        return fleet(&cli, &config, q).await;
    }
    if let Command::Invitations = command(&cli) {
        let list = tether_console::session::invitations(&config).await?;
        if cli.json {
            let text = serde_json::to_string_pretty(&list)
                .map_err(|e| ConsoleError::Output(e.to_string()))?;
            tether_net::outln!("{text}");
        } else if list.is_empty() {
            tether_net::outln!("No invitations are waiting for you.");
        } else {
            for i in list {
                tether_net::outln!(
                    "{} invites {}{}; the code expires in {} min. Ask {} for it.",
                    i.by,
                    match &i.invitee {
                        tether_proto::msg::Invitee::Technician(_) => "you".to_string(),
                        tether_proto::msg::Invitee::Tier(t) => format!("the {t} queue"),
                    },
                    if i.handover {
                        " to take over"
                    } else {
                        " to join"
                    },
                    i.expires_in_secs.div_ceil(60),
                    i.by
                );
            }
        }
        return Ok(());
    }
    if let Command::Sessions { command } = command(&cli) {
        return sessions(command, cli.json, &config).await;
    }
    let (code, scopes): (SessionCode, ScopeSet) = match command(&cli) {
        Command::Inventory { code, .. } => (
            code.unwrap_or_else(|| usage("--code, or a subcommand (export, history, search)")),
            [Scope::Inventory].into_iter().collect(),
        ),
        Command::Devices { .. } => usage("devices needs a subcommand"),
        Command::Window => usage("the window runs on its own"),
        Command::Sessions { .. } => usage("sessions needs a subcommand"),
        Command::Invitations => usage("invitations runs on its own"),
        Command::Diag { code, .. } => (
            code.unwrap_or_else(|| usage("--code is required")),
            [Scope::Diagnostics].into_iter().collect(),
        ),
        Command::Connect {
            code,
            view_only: true,
            ..
        } => (*code, [Scope::View].into_iter().collect()),
        Command::Connect { code, headless, .. } if *headless => {
            (*code, [Scope::View].into_iter().collect())
        }
        Command::Connect { code, .. } => {
            (*code, [Scope::View, Scope::Control].into_iter().collect())
        }
        Command::Input { code, .. } => (*code, [Scope::Control].into_iter().collect()),
        Command::Displays { code } => (*code, [Scope::View].into_iter().collect()),
        Command::Chat { code, ask } => {
            return chat(&cli, &config, *code, ask.unwrap_or(ScopeSet::EMPTY)).await;
        }
    };
    eprintln!(
        "claiming {} and waiting for the user's consent...",
        code.redacted()
    );
    let mut session = pair_session_with(&config, code, scopes, |claimed| {
        if let Some(reason) = &claimed.reason {
            eprintln!("the user asks for help with: {reason}");
        }
        if let Some(id) = claimed.record {
            eprintln!("session record {id} (`tether-console sessions show {id}`)");
        }
    })
    .await?;
    // Before the user decides: they compare this code with their screen while they listen.
    eprintln!(
        "paired as {} of {}; verification code {}: read it out to the user (their screen shows \
         the same) while they decide",
        session.technician.name, session.technician.org, session.verification
    );
    session.ask_consent().await?;
    eprintln!("connected; granted: {}", session.granted);
    // The user may take something back (Stop control) at any moment: say so at once.
    let mut grant = session.grant();
    grant.borrow_and_update();
    tokio::spawn(async move {
        while grant.changed().await.is_ok() {
            let now = *grant.borrow_and_update();
            eprintln!("the user changed what you may do; granted now: {now}");
        }
    });
    let ticket = match command(&cli) {
        Command::Inventory { ticket, .. } | Command::Diag { ticket, .. } => ticket.as_deref(),
        _ => None,
    };
    if let Some(t) = ticket
        && let Err(e) = session.set_ticket(t).await
    {
        eprintln!("warning: the ticket was not stored: {e}");
    }
    let result = serve(&cli, &mut session, probe, input).await;
    session.end().await;
    result
}

fn fleet_query(c: &Command) -> Option<FleetQuery> {
    Some(match c {
        Command::Devices {
            command: DevicesCommand::List,
        } => FleetQuery::ListDevices,
        Command::Devices {
            command: DevicesCommand::Show { device },
        } => FleetQuery::ShowDevice {
            device: device.clone(),
        },
        Command::Inventory {
            fleet: Some(InventoryCommand::Export { .. }),
            ..
        } => FleetQuery::Export,
        Command::Inventory {
            fleet: Some(InventoryCommand::History { device }),
            ..
        } => FleetQuery::History {
            device: device.clone(),
        },
        Command::Inventory {
            fleet: Some(InventoryCommand::Search { software }),
            ..
        } => {
            let (name, version) = match software.split_once('=') {
                Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
                None => (software.trim().to_string(), None),
            };
            FleetQuery::Search { name, version }
        }
        _ => return None,
    })
}

async fn fleet(cli: &Cli, config: &ConsoleConfig, q: FleetQuery) -> Result<(), ConsoleError> {
    let replies = tether_console::fleet::query(config, q).await?;
    let json = |v: serde_json::Result<String>| v.map_err(|e| ConsoleError::Output(e.to_string()));
    let out = match (command(cli), replies.as_slice()) {
        (
            Command::Inventory {
                fleet: Some(InventoryCommand::Export { format, sheet, .. }),
                ..
            },
            r,
        ) => {
            let devices: Vec<_> = r
                .iter()
                .filter_map(|r| match r {
                    FleetReply::Device(d) => Some((**d).clone()),
                    _ => None,
                })
                .collect();
            match (format, sheet) {
                (Format::Csv, Sheet::Devices) => tether_console::fleet::devices_csv(&devices),
                (Format::Csv, Sheet::Software) => tether_console::fleet::software_csv(&devices),
                (Format::Json, _) => json(serde_json::to_string_pretty(&devices))? + "\n",
            }
        }
        (_, [FleetReply::Devices(d)]) if cli.json => json(serde_json::to_string_pretty(d))? + "\n",
        (_, [FleetReply::Devices(d)]) => tether_console::fleet::devices_table(d),
        (_, [FleetReply::Device(d)]) if cli.json => json(serde_json::to_string_pretty(d))? + "\n",
        (_, [FleetReply::Device(d)]) => tether_console::fleet::device_text(d),
        (_, [FleetReply::History(h)]) if cli.json => json(serde_json::to_string_pretty(h))? + "\n",
        (_, [FleetReply::History(h)]) => tether_console::fleet::history_table(h),
        (_, [FleetReply::Hits(h)]) if cli.json => json(serde_json::to_string_pretty(h))? + "\n",
        (_, [FleetReply::Hits(h)]) => tether_console::fleet::hits_table(h),
        (_, other) => {
            return Err(ConsoleError::Protocol(format!(
                "unexpected answer from the relay: {other:?}"
            )));
        }
    };
    match command(cli) {
        Command::Inventory {
            fleet:
                Some(InventoryCommand::Export {
                    out: Some(path), ..
                }),
            ..
        } => std::fs::write(path, out)
            .map_err(|e| ConsoleError::Output(format!("{}: {e}", path.display())))?,
        _ => tether_net::out!("{out}"),
    }
    Ok(())
}

async fn serve(
    cli: &Cli,
    session: &mut Session,
    probe: Option<Probe>,
    input: Vec<InputEvent>,
) -> Result<(), ConsoleError> {
    let json =
        |v: serde_json::Result<String>| v.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    match command(cli) {
        Command::Inventory { .. } => {
            let inv = session.inventory().await?;
            if cli.json {
                tether_net::outln!("{}", json(serde_json::to_string_pretty(&inv)))
            } else {
                tether_net::out!("{}", render::inventory(&inv))
            }
        }
        Command::Devices { .. }
        | Command::Window
        | Command::Sessions { .. }
        | Command::Invitations => {}
        Command::Diag {
            all: true, timeout, ..
        } => {
            let reports = session.health_check(*timeout).await?;
            if cli.json {
                tether_net::outln!("{}", json(serde_json::to_string_pretty(&reports)))
            } else {
                tether_net::out!("{}", render::diag_summary(&reports))
            }
        }
        Command::Diag { timeout, .. } => {
            let probe = probe.unwrap_or_else(|| usage("which probe? see --list"));
            let report = session.diagnostic_with(probe, *timeout).await?;
            if cli.json {
                tether_net::outln!("{}", json(serde_json::to_string_pretty(&report)))
            } else {
                tether_net::out!("{}", render::diag(&report))
            }
        }
        Command::Connect {
            display,
            headless: true,
            snapshot: Some(path),
            cursor,
            ..
        } => {
            let mut view = session.view(*display).await?;
            view.next_frame().await?;
            // The agent sends the cursor before the frame it goes with, so it is known by now.
            let picture = if *cursor {
                if view.cursor_shape.is_none() || view.cursor.is_none() {
                    eprintln!("the user's cursor is not known (their system does not share it)");
                }
                view.with_cursor()
            } else {
                view.framebuffer.clone()
            };
            tether_console::screen::write_png(&picture, path)?;
            eprintln!(
                "wrote {}x{} remote screen to {}",
                view.framebuffer.width,
                view.framebuffer.height,
                path.display()
            );
            view.close().await;
        }
        Command::Connect { display, .. } => connect(session, *display).await?,
        Command::Displays { .. } => {
            let displays = session.displays().await?;
            if cli.json {
                tether_net::outln!("{}", json(serde_json::to_string_pretty(&displays)));
            } else {
                for d in displays {
                    tether_net::outln!(
                        "display {}: {} {}x{} at ({}, {}){}",
                        d.index,
                        tether_proto::text::display_safe(&d.name),
                        d.width,
                        d.height,
                        d.x,
                        d.y,
                        if d.primary { ", primary" } else { "" }
                    );
                }
            }
        }
        Command::Chat { .. } => {}
        Command::Input { display, .. } => {
            let mut control = session.control(*display).await?;
            for e in input {
                if let Some(reason) = control.send(&e).await? {
                    eprintln!("note: {reason}");
                }
            }
            control.close().await;
        }
    }
    Ok(())
}

/// Pairs without asking for scopes and chats over standard input and output.
async fn chat(
    cli: &Cli,
    config: &ConsoleConfig,
    code: SessionCode,
    ask: ScopeSet,
) -> Result<(), ConsoleError> {
    eprintln!("claiming {} and pairing...", code.redacted());
    let mut session = pair_session(config, code, ask).await?;
    eprintln!(
        "connected as {} of {}; verification code {}: read it out to the user (their screen shows \
         the same). Type a line and Enter to send; Ctrl-D ends.",
        session.technician.name, session.technician.org, session.verification
    );
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    match tether_console::chat::run(&mut session, input, std::io::stdout(), cli.json).await {
        tether_console::chat::ChatEnd::InputClosed => {
            session.end().await;
            Ok(())
        }
        tether_console::chat::ChatEnd::Ended(reason) => Err(ConsoleError::Ended(reason)),
    }
}

/// Runs the viewer window until the technician closes it or the session ends. A display picked in
/// the window replaces the shown one on the same session.
async fn connect(session: &mut Session, display: u32) -> Result<(), ConsoleError> {
    use tether_console::displays::ScreenStreams;
    use tether_console::viewer::{self, ViewerState};
    let state = std::sync::Arc::new(std::sync::Mutex::new(ViewerState::default()));
    let (input, input_rx) = if session.granted.contains(Scope::Control) {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let mut streams = ScreenStreams::new(state.clone(), input_rx);
    streams.open(session, display).await?;
    if session.granted.contains(Scope::Control) && state.lock().is_ok_and(|s| s.note.is_some()) {
        // Control was granted but its stream did not open: say why, as before the picker existed.
        let note = state
            .lock()
            .ok()
            .and_then(|s| s.note.clone())
            .unwrap_or_default();
        return Err(ConsoleError::Failed(note));
    }
    let who = format!("{} of {}", session.technician.name, session.technician.org);
    // Stop control shows at once: the input gate closes and the status bar says why.
    let granted = session.grant();
    let (mut grant, gate, noted) = (session.grant(), streams.input_gate(), state.clone());
    grant.borrow_and_update();
    let watcher = tokio::spawn(async move {
        while grant.changed().await.is_ok() {
            let granted = *grant.borrow_and_update();
            gate.follow(granted, &noted);
        }
    });
    let (switch, mut switches) = tokio::sync::mpsc::channel::<u32>(4);
    let (closed, mut window_closed) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Handle::current();
    // winit wants the main thread, which is the one running this future under #[tokio::main]; the
    // session meanwhile serves display switches on a scoped thread, which may borrow it.
    let result = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            scope.spawn(|| {
                rt.block_on(async {
                    loop {
                        tokio::select! {
                            d = switches.recv() => match d {
                                // A failure shows in the window's status line; the session goes on.
                                // Closing the window does not wait for a switch under way.
                                Some(d) => tokio::select! {
                                    _ = streams.open(session, d) => {}
                                    _ = &mut window_closed => break,
                                },
                                None => break,
                            },
                            _ = &mut window_closed => break,
                        }
                    }
                    streams.shutdown().await;
                })
            });
            let result = viewer::run_window(state, granted, who, input, Some(switch));
            let _ = closed.send(());
            result
        })
    });
    watcher.abort();
    result
}

async fn sessions(
    command: &SessionsCommand,
    json: bool,
    config: &ConsoleConfig,
) -> Result<(), ConsoleError> {
    use tether_console::records;
    use tether_proto::records::{RecordNote, RecordQuery};
    let q = match command {
        SessionsCommand::List { limit } => RecordQuery::List { limit: *limit },
        SessionsCommand::Show { id } => RecordQuery::Show { id: *id },
        SessionsCommand::Search {
            text,
            device: None,
            technician: None,
            ..
        } if text.trim().is_empty() => usage(
            "search for what? give words to look for, or --device or --technician \
                 (`sessions list` shows the newest records)",
        ),
        SessionsCommand::Search {
            text,
            device,
            technician,
            limit,
        } => RecordQuery::Search {
            text: text.clone(),
            device: device.clone(),
            technician: technician.clone(),
            limit: *limit,
        },
        SessionsCommand::Note {
            id,
            problem,
            cause,
            fix,
            ticket,
            device,
        } => {
            let note = RecordNote {
                ticket: ticket.clone(),
                device: device.clone(),
                problem: problem.clone(),
                cause: cause.clone(),
                fix: fix.clone(),
            };
            if note.is_empty() {
                usage("nothing to note: give --problem, --cause, --fix, --ticket or --device");
            }
            RecordQuery::Note { id: *id, note }
        }
        SessionsCommand::Close { id, resolution } => RecordQuery::Close {
            id: *id,
            resolution: resolution.clone(),
        },
    };
    let to_json = |v: serde_json::Result<String>| {
        v.map(|s| s + "\n")
            .map_err(|e| ConsoleError::Output(e.to_string()))
    };
    let out = match records::query(config, q).await? {
        tether_proto::records::RecordReply::List(l) if json => {
            to_json(serde_json::to_string_pretty(&l))?
        }
        tether_proto::records::RecordReply::List(l) => records::list_table(&l),
        tether_proto::records::RecordReply::Record(r) if json => {
            to_json(serde_json::to_string_pretty(&r))?
        }
        tether_proto::records::RecordReply::Record(r) => records::record_text(&r),
        tether_proto::records::RecordReply::Error(e) => return Err(ConsoleError::Record(e)),
    };
    tether_net::out!("{out}");
    Ok(())
}
