//! What each command does, once [`super::parse`] has read the line.

use super::args::{
    Cli, ClipboardAction, Command, DevicesCommand, FilesCommand, Format, InventoryCommand,
    KeyCommand, SessionsCommand, Sheet,
};
use super::checks::{check_output_path, input_events};
use super::output;
use super::{CliError, usage};
use crate::{ConsoleConfig, ConsoleError, Session, pair_session_with, render};
use tether_proto::diag::Probe;
use tether_proto::fleet::{FleetQuery, FleetReply};
use tether_proto::screen::InputEvent;
use tether_proto::{Scope, ScopeSet, SessionCode};

/// Runs one command line: checks what can be checked before connecting, then runs the command.
pub async fn run(mut cli: Cli) -> Result<(), CliError> {
    let has_desktop =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let cmd = match cli.command.take() {
        Some(c) => c,
        None if has_desktop => Command::Window { downloads: None },
        None => return usage("no command, and no desktop to open the window on; see --help"),
    };
    let json = cli.json;
    if let Command::Key { dir, command } = &cmd {
        return key(dir.clone(), command, json);
    }
    // Validate diagnostics parameters before anything connects: a bad one never leaves this machine.
    let mut probe = None;
    if let Command::Diag {
        list,
        timeout,
        probe: kind,
        args,
        ..
    } = &cmd
    {
        if *list {
            if json {
                tether_net::outln!("{}", output::json_or_error(&crate::diag::catalog()));
            } else {
                tether_net::out!("{}", render::catalog());
            }
            return Ok(());
        }
        if let Some(k) = kind {
            match crate::diag::parse_probe(*k, args) {
                Ok(p) => probe = Some(p),
                Err(e) => return usage(e.to_string()),
            }
        }
        if let Err(e) = crate::diag::check_timeout(*timeout) {
            return usage(format!("--timeout: {e}"));
        }
    }
    // The same for everything else that can be checked here: claiming a code asks the user and
    // uses the code up, so a mistake found afterwards costs them a new code.
    let input = match &cmd {
        Command::Input { action, .. } => input_events(action)?,
        _ => Vec::new(),
    };
    if let Command::Connect {
        snapshot: Some(path),
        ..
    } = &cmd
        && let Err(e) = check_output_path(path)
    {
        return usage(e);
    }
    if let Command::Inventory {
        ticket: Some(t), ..
    }
    | Command::Diag {
        ticket: Some(t), ..
    } = &cmd
        && let Err(e) = crate::records::check_ticket(t)
    {
        return usage(e.to_string());
    }
    if let Command::Files {
        command: FilesCommand::Push { paths, .. },
    } = &cmd
    {
        for p in paths {
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    return usage(format!(
                        "{}: a symbolic link; links are not sent",
                        p.display()
                    ));
                }
                Ok(_) => {}
                Err(e) => return usage(format!("{}: {e}", p.display())),
            }
        }
    }
    let clip = match &cmd {
        Command::Clipboard {
            action: ClipboardAction::Set { text, .. },
        } => Some(clipboard_text(text.clone())?),
        _ => None,
    };
    let config = match (cli.relay.target(), cli.token.clone()) {
        (Ok(relay), Some(token)) => ConsoleConfig { relay, token },
        (Err(e), _) => return usage(e.to_string()),
        (_, None) => return usage("no technician token: pass --token or set TETHER_TOKEN"),
    };
    if let Command::Window { downloads } = &cmd {
        let downloads = downloads
            .clone()
            .unwrap_or_else(crate::window::default_downloads);
        // winit wants the main thread, which is the one running this future under #[tokio::main];
        // sessions run on this runtime's workers.
        let rt = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| crate::window::run(rt, config, downloads))?;
        return Ok(());
    }
    run_command(&cmd, json, config, probe, input, clip).await
}

/// `key create | show | install`: local files only, no relay.
fn key(dir: Option<std::path::PathBuf>, command: &KeyCommand, json: bool) -> Result<(), CliError> {
    use crate::technician_key as tk;
    let dir = dir.unwrap_or_else(tk::default_dir);
    let cert_line = |c: &tether_proto::org::SignedTechnician| {
        format!(
            "certificate: {:?} of {:?}, valid until {} UTC",
            c.cert.name,
            c.cert.org,
            crate::units::utc(c.cert.not_after_unix)
        )
    };
    match command {
        KeyCommand::Create => {
            let public = tk::create(&dir)?;
            if json {
                tether_net::outln!(
                    "{}",
                    serde_json::json!({"public_key": public.to_string(), "fingerprint": public.fingerprint()})
                );
                return Ok(());
            }
            tether_net::outln!(
                "technician key written to {} (readable only by you).",
                dir.join(tk::KEY_FILE).display()
            );
            tether_net::outln!("public key: {public}");
            tether_net::outln!("fingerprint: {}", public.fingerprint());
            tether_net::outln!(
                "Send the public key to IT; they sign it with `tether-relay org-key certify --technician-key {public} ...`, \
                 then install what they send with `tether-console key install --cert FILE`."
            );
        }
        KeyCommand::Show => {
            let public = tk::load(&dir)?.public();
            let cert = tk::installed_cert(&dir)?;
            if json {
                tether_net::outln!(
                    "{}",
                    serde_json::json!({
                        "public_key": public.to_string(),
                        "fingerprint": public.fingerprint(),
                        "certificate": cert.as_ref().map(|c| &c.cert),
                    })
                );
                return Ok(());
            }
            tether_net::outln!("public key: {public}");
            tether_net::outln!("fingerprint: {}", public.fingerprint());
            match &cert {
                Some(c) => tether_net::outln!("{}", cert_line(c)),
                None => tether_net::outln!(
                    "certificate: none installed (ask IT to certify the public key above)"
                ),
            }
        }
        KeyCommand::Install { cert, org_key } => {
            let now = tether_net::clock::now_unix();
            let c = tk::install(&dir, cert, org_key.as_ref(), now)?;
            tether_net::outln!("installed {}", cert_line(&c));
            if org_key.is_none() {
                tether_net::outln!(
                    "(not checked against the organisation key: pass --org-key to check it; devices check it in any case)"
                );
            }
        }
    }
    Ok(())
}

/// The text of `clipboard set`: the argument, or all of standard input; over the limit (or not
/// UTF-8) is a usage error, found before the code is used.
fn clipboard_text(arg: Option<String>) -> Result<String, CliError> {
    let text = match arg {
        Some(t) => t,
        None => {
            use std::io::Read;
            let mut buf = Vec::new();
            // One byte more than the limit is enough to know it is over.
            let limit = tether_proto::clipboard::MAX_CLIPBOARD_BYTES as u64 + 1;
            std::io::stdin()
                .take(limit)
                .read_to_end(&mut buf)
                .map_err(|e| CliError::Usage(format!("cannot read standard input: {e}")))?;
            if buf.len() as u64 >= limit {
                return usage(
                    tether_proto::clipboard::ClipboardError::TooLarge(buf.len()).to_string()
                        + " (standard input is longer still)",
                );
            }
            String::from_utf8(buf)
                .map_err(|_| CliError::Usage("standard input is not UTF-8 text".into()))?
        }
    };
    if let Err(e) = tether_proto::clipboard::check_text(&text) {
        return usage(e.to_string());
    }
    Ok(text)
}

fn selection(primary: bool) -> tether_proto::clipboard::Selection {
    if primary {
        tether_proto::clipboard::Selection::Primary
    } else {
        tether_proto::clipboard::Selection::Clipboard
    }
}

async fn run_command(
    cmd: &Command,
    json: bool,
    config: ConsoleConfig,
    probe: Option<Probe>,
    input: Vec<InputEvent>,
    clip: Option<String>,
) -> Result<(), CliError> {
    if let Some(q) = fleet_query(cmd) {
        return Ok(fleet(cmd, json, &config, q).await?);
    }
    if let Command::Invitations = cmd {
        let list = crate::session::invitations(&config).await?;
        if json {
            tether_net::outln!("{}", output::to_json(&list)?);
        } else if list.is_empty() {
            tether_net::outln!("No invitations are waiting for you.");
        } else {
            for i in list {
                tether_net::outln!("{}", output::invitation_line(&i));
            }
        }
        return Ok(());
    }
    if let Command::Sessions { command } = cmd {
        return sessions(command, json, &config).await;
    }
    let (code, scopes): (Option<SessionCode>, ScopeSet) = match cmd {
        Command::Inventory { code, .. } => (*code, [Scope::Inventory].into_iter().collect()),
        Command::Devices { .. } => return usage("devices needs a subcommand"),
        Command::Window { .. } => return usage("the window runs on its own"),
        Command::Sessions { .. } => return usage("sessions needs a subcommand"),
        Command::Invitations => return usage("invitations runs on its own"),
        Command::Key { .. } => return usage("key runs on its own"),
        Command::Diag { code, .. } => (*code, [Scope::Diagnostics].into_iter().collect()),
        Command::Connect {
            code,
            view_only: true,
            ..
        } => (*code, [Scope::View].into_iter().collect()),
        Command::Connect { code, headless, .. } if *headless => {
            (*code, [Scope::View].into_iter().collect())
        }
        Command::Connect {
            code,
            clipboard: true,
            ..
        } => (
            *code,
            [Scope::View, Scope::Control, Scope::Clipboard]
                .into_iter()
                .collect(),
        ),
        Command::Connect { code, .. } => {
            (*code, [Scope::View, Scope::Control].into_iter().collect())
        }
        Command::Clipboard {
            action: ClipboardAction::Get { code, .. } | ClipboardAction::Set { code, .. },
        } => (Some(*code), [Scope::Clipboard].into_iter().collect()),
        Command::Input { code, .. } => (Some(*code), [Scope::Control].into_iter().collect()),
        Command::Files { command } => (Some(command.code()), [Scope::Files].into_iter().collect()),
        Command::Displays { code } => (Some(*code), [Scope::View].into_iter().collect()),
        Command::Chat { code, ask, device } => {
            let reach = match (device.target(), code) {
                (Some(target), _) => crate::enrolled::Reach::Device(target),
                (None, Some(code)) => crate::enrolled::Reach::Code(*code),
                (None, None) => return usage("--code or --device"),
            };
            return Ok(chat(json, &config, reach, ask.unwrap_or(ScopeSet::EMPTY)).await?);
        }
    };
    let device = match cmd {
        Command::Inventory { device, .. }
        | Command::Diag { device, .. }
        | Command::Connect { device, .. } => device.target(),
        _ => None,
    };
    let mut session = match (device, code) {
        (Some(target), _) => {
            let how = if target.unattended {
                "unattended: IT's policy on the device answers"
            } else {
                "the person logged in there is asked"
            };
            eprintln!("waking {} ({how})...", target.device);
            crate::enrolled::pair_device(&config, &target, scopes).await?
        }
        (None, Some(code)) => {
            eprintln!(
                "claiming {} and waiting for the user's consent...",
                code.redacted()
            );
            pair_session_with(&config, code, scopes, |claimed| {
                if let Some(reason) = &claimed.reason {
                    eprintln!("the user asks for help with: {reason}");
                }
                if let Some(id) = claimed.record {
                    eprintln!("session record {id} (`tether-console sessions show {id}`)");
                }
            })
            .await?
        }
        (None, None) => {
            return usage("--code or --device, or a subcommand (export, history, search)");
        }
    };
    // Before the user decides: they compare this code with their screen while they listen.
    eprintln!(
        "paired as {} of {}; verification code {}: read it out to the user (their screen shows \
         the same) while they decide",
        session.technician.name, session.technician.org, session.verification
    );
    session.ask_consent().await?;
    eprintln!("connected; granted: {}", session.granted);
    // The user may take something back (Stop control) at any moment: say so at once. The task
    // ends with the session (its grant sender goes), or at the latest when this command returns.
    let mut grant = session.grant();
    grant.borrow_and_update();
    let mut watcher = tokio::task::JoinSet::new();
    watcher.spawn(async move {
        while grant.changed().await.is_ok() {
            let now = *grant.borrow_and_update();
            eprintln!("the user changed what you may do; granted now: {now}");
        }
    });
    let ticket = match cmd {
        Command::Inventory { ticket, .. } | Command::Diag { ticket, .. } => ticket.as_deref(),
        _ => None,
    };
    if let Some(t) = ticket
        && let Err(e) = session.set_ticket(t).await
    {
        eprintln!("warning: the ticket was not stored: {e}");
    }
    let result = serve(cmd, json, &mut session, probe, input, clip).await;
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

async fn fleet(
    cmd: &Command,
    json: bool,
    config: &ConsoleConfig,
    q: FleetQuery,
) -> Result<(), ConsoleError> {
    let replies = crate::fleet::query(config, q).await?;
    let out = match (cmd, replies.as_slice()) {
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
                (Format::Csv, Sheet::Devices) => crate::fleet::devices_csv(&devices),
                (Format::Csv, Sheet::Software) => crate::fleet::software_csv(&devices),
                (Format::Json, _) => output::to_json(&devices)? + "\n",
            }
        }
        (_, [FleetReply::Devices(d)]) if json => output::to_json(d)? + "\n",
        (_, [FleetReply::Devices(d)]) => crate::fleet::devices_table(d),
        (_, [FleetReply::Device(d)]) if json => output::to_json(d)? + "\n",
        (_, [FleetReply::Device(d)]) => crate::fleet::device_text(d),
        (_, [FleetReply::History(h)]) if json => output::to_json(h)? + "\n",
        (_, [FleetReply::History(h)]) => crate::fleet::history_table(h),
        (_, [FleetReply::Hits(h)]) if json => output::to_json(h)? + "\n",
        (_, [FleetReply::Hits(h)]) => crate::fleet::hits_table(h),
        (_, other) => {
            return Err(ConsoleError::Protocol(format!(
                "unexpected answer from the relay: {other:?}"
            )));
        }
    };
    match cmd {
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
    cmd: &Command,
    json: bool,
    session: &mut Session,
    probe: Option<Probe>,
    input: Vec<InputEvent>,
    clip: Option<String>,
) -> Result<(), CliError> {
    match cmd {
        Command::Clipboard {
            action: ClipboardAction::Get { primary, .. },
        } => {
            let selection = selection(*primary);
            let text = crate::clipboard::get(session, selection).await?;
            if json {
                tether_net::outln!("{}", output::clipboard_json(selection, &text));
            } else {
                use std::io::IsTerminal;
                if std::io::stdout().is_terminal() {
                    let shown = tether_proto::text::display_safe_multiline(&text);
                    tether_net::out!("{shown}");
                    if !text.ends_with('\n') {
                        tether_net::outln!();
                    }
                } else {
                    tether_net::out!("{text}");
                }
            }
        }
        Command::Clipboard {
            action: ClipboardAction::Set { primary, .. },
        } => {
            let selection = selection(*primary);
            let text = clip.unwrap_or_default();
            let bytes = crate::clipboard::set(session, selection, &text).await?;
            if json {
                tether_net::outln!("{}", output::clipboard_set_json(selection, &text, bytes));
            } else {
                eprintln!(
                    "put {} characters on the user's {selection}",
                    text.chars().count()
                );
            }
        }
        Command::Inventory { .. } => {
            let inv = session.inventory().await?;
            if json {
                tether_net::outln!("{}", output::json_or_error(&inv))
            } else {
                tether_net::out!("{}", render::inventory(&inv))
            }
        }
        Command::Devices { .. }
        | Command::Window { .. }
        | Command::Sessions { .. }
        | Command::Invitations
        | Command::Key { .. } => {}
        Command::Diag {
            all: true, timeout, ..
        } => {
            let reports = session.health_check(*timeout).await?;
            if json {
                tether_net::outln!("{}", output::json_or_error(&reports))
            } else {
                tether_net::out!("{}", render::diag_summary(&reports))
            }
        }
        Command::Diag { timeout, .. } => {
            let Some(probe) = probe else {
                return usage("which probe? see --list");
            };
            let report = session.diagnostic_with(probe, *timeout).await?;
            if json {
                tether_net::outln!("{}", output::json_or_error(&report))
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
            crate::screen::write_png(&picture, path)?;
            eprintln!(
                "wrote {}x{} remote screen to {}",
                view.framebuffer.width,
                view.framebuffer.height,
                path.display()
            );
            view.close().await;
        }
        Command::Connect { display, .. } => connect(session, *display).await?,
        Command::Files { command } => super::files::run(command, json, session).await?,
        Command::Displays { .. } => {
            let displays = session.displays().await?;
            if json {
                tether_net::outln!("{}", output::json_or_error(&displays));
            } else {
                for d in displays {
                    tether_net::outln!("{}", output::display_line(&d));
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
    json: bool,
    config: &ConsoleConfig,
    reach: crate::enrolled::Reach,
    ask: ScopeSet,
) -> Result<(), ConsoleError> {
    match &reach {
        crate::enrolled::Reach::Code(code) => {
            eprintln!("claiming {} and pairing...", code.redacted())
        }
        crate::enrolled::Reach::Device(t) => eprintln!("waking {}...", t.device),
    }
    let mut session = crate::enrolled::pair_reach(config, &reach, ask).await?;
    eprintln!(
        "connected as {} of {}; verification code {}: read it out to the user (their screen shows \
         the same). Type a line and Enter to send; Ctrl-D ends.",
        session.technician.name, session.technician.org, session.verification
    );
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    match crate::chat::run(&mut session, input, std::io::stdout(), json).await {
        crate::chat::ChatEnd::InputClosed => {
            session.end().await;
            Ok(())
        }
        crate::chat::ChatEnd::Ended(reason) => Err(ConsoleError::Ended(reason)),
    }
}

/// Runs the viewer window until the technician closes it or the session ends. A display picked in
/// the window replaces the shown one on the same session.
async fn connect(session: &mut Session, display: u32) -> Result<(), ConsoleError> {
    use crate::displays::ScreenStreams;
    use crate::viewer::{self, ViewerState};
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
    let streams_state = state.clone();
    grant.borrow_and_update();
    let watcher = tokio::spawn(async move {
        while grant.changed().await.is_ok() {
            let granted = *grant.borrow_and_update();
            gate.follow(granted, &noted);
        }
    });
    let (switch, mut switches) = tokio::sync::mpsc::channel::<u32>(4);
    let (focus, mut focus_changes) = tokio::sync::mpsc::channel::<bool>(8);
    let (mut rule, mut local) = (
        crate::clipboard::FocusSync::default(),
        crate::clipboard::X11LocalClipboard::new(),
    );
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
                            // The clipboard follows the technician in and out of the viewer
                            // (when granted): see `crate::clipboard`.
                            Some(f) = focus_changes.recv() => {
                                let synced = tokio::select! {
                                    n = crate::clipboard::sync_focus(session, &mut rule, &mut local, f) => n,
                                    _ = &mut window_closed => break,
                                };
                                if let Some(n) = synced
                                    && let Ok(mut s) = streams_state.lock()
                                {
                                    s.note = Some(n);
                                    s.repaint();
                                }
                            }
                            _ = &mut window_closed => break,
                        }
                    }
                    streams.shutdown().await;
                })
            });
            let result = viewer::run_window(state, granted, who, input, Some(switch), Some(focus));
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
) -> Result<(), CliError> {
    use crate::records;
    use tether_proto::records::{RecordNote, RecordQuery};
    let q = match command {
        SessionsCommand::List { limit } => RecordQuery::List { limit: *limit },
        SessionsCommand::Show { id } => RecordQuery::Show { id: *id },
        SessionsCommand::Search {
            text,
            device: None,
            technician: None,
            ..
        } if text.trim().is_empty() => {
            return usage(
                "search for what? give words to look for, or --device or --technician \
                 (`sessions list` shows the newest records)",
            );
        }
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
                return usage(
                    "nothing to note: give --problem, --cause, --fix, --ticket or --device",
                );
            }
            RecordQuery::Note { id: *id, note }
        }
        SessionsCommand::Close { id, resolution } => RecordQuery::Close {
            id: *id,
            resolution: resolution.clone(),
        },
    };
    let out = match records::query(config, q).await? {
        tether_proto::records::RecordReply::List(l) if json => output::to_json(&l)? + "\n",
        tether_proto::records::RecordReply::List(l) => records::list_table(&l),
        tether_proto::records::RecordReply::Record(r) if json => output::to_json(&r)? + "\n",
        tether_proto::records::RecordReply::Record(r) => records::record_text(&r),
        tether_proto::records::RecordReply::Error(e) => return Err(ConsoleError::Record(e).into()),
    };
    tether_net::out!("{out}");
    Ok(())
}
