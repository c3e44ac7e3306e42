//! The command line: every command, option and its help text (clap derive), and [`parse`], which
//! lets a console option stand among `diag`'s probe parameters.

use clap::{CommandFactory, Parser, Subcommand};
use tether_net::cli::RelayArgs;
use tether_proto::diag::ProbeKind;
use tether_proto::{ScopeSet, SessionCode};

#[derive(Debug, Parser)]
#[command(name = "tether-console", version, about = "Tether technician console")]
pub struct Cli {
    #[command(flatten)]
    pub relay: RelayArgs,
    /// Your technician token, from `tether-relay technician add`.
    #[arg(long, env = "TETHER_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Without a command on a desktop: the console window.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// An enrolled device instead of a code: the device's user (or IT's policy) decides as with a code.
#[derive(Debug, Clone, clap::Args)]
pub struct DeviceArgs {
    /// An enrolled device of your organisation (host name or id, see `devices list`), instead of
    /// a code. Needs your technician key and IT's certificate for it (`tether-console key`); the
    /// person logged in there is asked as with a code.
    #[arg(long, conflicts_with = "code")]
    pub device: Option<String>,
    /// With --device: nobody is asked, and only what IT's signed policy on that device allows
    /// unattended is served (the logged-in user, if any, is told and can end it).
    #[arg(long, requires = "device")]
    pub unattended: bool,
    /// With --device: where your technician key and certificate are (default: as `key`).
    #[arg(long, requires = "device")]
    pub key_dir: Option<std::path::PathBuf>,
}

impl DeviceArgs {
    /// The device to reach, when one was named.
    pub fn target(&self) -> Option<crate::enrolled::DeviceTarget> {
        Some(crate::enrolled::DeviceTarget {
            device: self.device.clone()?,
            unattended: self.unattended,
            key_dir: self
                .key_dir
                .clone()
                .unwrap_or_else(crate::technician_key::default_dir),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the console window (the default on a desktop): enter the code, see consent, the live
    /// screen, inventory, diagnostics, chat and files.
    Window {
        /// Where files fetched from the user's computer are saved (made if missing; default
        /// ~/Downloads).
        #[arg(long)]
        downloads: Option<std::path::PathBuf>,
    },
    /// With --code: fetch a machine's full inventory in a live session (asks the user for
    /// `inventory`). With a subcommand: query enrolled devices.
    #[command(args_conflicts_with_subcommands = true)]
    Inventory {
        /// The code the user reads to you, e.g. "417 302 958".
        #[arg(long)]
        code: Option<SessionCode>,
        #[command(flatten)]
        device: DeviceArgs,
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
        /// The code the user reads to you (not needed for --list or --device).
        #[arg(long, required_unless_present_any = ["list", "device"])]
        code: Option<SessionCode>,
        #[command(flatten)]
        device: DeviceArgs,
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
        /// The code the user reads to you (or --device).
        #[arg(long, required_unless_present = "device")]
        code: Option<SessionCode>,
        #[command(flatten)]
        device: DeviceArgs,
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
        /// Also ask for `clipboard`: entering the viewer puts your clipboard's text on the user's,
        /// leaving it brings the user's clipboard back to yours.
        #[arg(long, conflicts_with = "headless")]
        clipboard: bool,
    },
    /// Read or set the text on the user's clipboard (asks the user for `clipboard`, which
    /// `control` does not include; the user is told each time). At most 1 MiB of text, kept
    /// exactly as it is.
    Clipboard {
        #[command(subcommand)]
        action: ClipboardAction,
    },
    /// Chat with the user: each line you type is sent, and the user's lines are printed as they
    /// arrive (`--json`: one object per line). Nothing is asked until you type /ask (with --ask);
    /// then /invite NAME|L2 or /handover NAME|L2 brings in a colleague. End of input ends the session.
    Chat {
        /// The code the user reads to you (or --device).
        #[arg(long, required_unless_present = "device")]
        code: Option<SessionCode>,
        #[command(flatten)]
        device: DeviceArgs,
        /// Scopes that /ask will ask the user for, e.g. "inventory,view".
        #[arg(long)]
        ask: Option<ScopeSet>,
    },
    /// The invitations waiting for you: by name, or for your tier. Ask the inviting technician for
    /// the code (the relay never has it), then connect with it as usual.
    Invitations,
    /// Send files to the user's computer, fetch a file from it, or list a folder there (asks the
    /// user for `files`).
    ///
    /// Files you send land in the user's download folder for Tether (~/Downloads/Tether unless
    /// they chose another); nothing there is ever overwritten (a name that exists gets a number).
    /// You can fetch and list only inside the folders the user shares (their home unless they
    /// chose others); symbolic links are never followed. A transfer cut by a broken connection
    /// continues where it stopped when you run the same command again in a new session.
    Files {
        #[command(subcommand)]
        command: FilesCommand,
    },
    /// Your technician key, for sessions on your organisation's enrolled devices without a code:
    /// make it here (it never leaves this machine), have IT sign its public half
    /// (`tether-relay org-key certify`), then install the certificate they send you.
    Key {
        /// Where the key and certificate are kept [default: ~/.config/tether].
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
        #[command(subcommand)]
        command: KeyCommand,
    },
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

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make your technician key (once; an existing key is never replaced) and print its public
    /// half for IT to certify.
    Create,
    /// Print your public key and the certificate installed for it.
    Show,
    /// Install the certificate IT signed for your key.
    Install {
        /// The certificate file from `tether-relay org-key certify`.
        #[arg(long, value_name = "FILE")]
        cert: std::path::PathBuf,
        /// The organisation's public key (64 hex digits, from IT): the certificate must verify
        /// under it.
        #[arg(long, value_name = "HEX")]
        org_key: Option<tether_proto::org::PublicKey>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClipboardAction {
    /// Print the text on the user's clipboard. Written to a file or a pipe it is exact; on a
    /// terminal, control characters are shown as symbols (␛ for escape) so they cannot drive it.
    /// With --json: {"selection": ..., "text": ...}.
    Get {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
        /// The user's highlighted text (X11's primary selection) instead of the clipboard.
        #[arg(long)]
        primary: bool,
    },
    /// Put TEXT on the user's clipboard, or what standard input holds when TEXT is left out
    /// (e.g. `tether-console clipboard set --code C < notes.txt`). Text over 1 MiB is refused
    /// before the code is used, so the user keeps it.
    Set {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
        /// Set the user's primary selection (what the middle button pastes) instead.
        #[arg(long)]
        primary: bool,
        /// The text; standard input when left out.
        text: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
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

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// List the enrolled devices.
    List,
    /// One device and its current inventory.
    Show {
        /// Device id or host name.
        device: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum FilesCommand {
    /// Send files or folders (every file inside, symbolic links skipped) to the user's computer.
    Push {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
        /// A folder inside the user's Tether download folder to put them in, e.g. "logs".
        #[arg(long)]
        to: Option<String>,
        /// The files and folders to send.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
    },
    /// Fetch one file from the user's computer (an absolute path, e.g. /home/sam/report.pdf).
    Pull {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
        /// Save it in this folder (made if missing).
        #[arg(long, default_value = ".")]
        out: std::path::PathBuf,
        /// The file on the user's computer.
        remote_path: String,
    },
    /// List a folder on the user's computer; without one, the folders they share.
    Ls {
        /// The code the user reads to you.
        #[arg(long)]
        code: SessionCode,
        /// The folder (an absolute path inside a shared folder).
        #[arg(default_value = "")]
        dir: String,
    },
}

impl FilesCommand {
    /// The session code it claims.
    pub fn code(&self) -> SessionCode {
        match self {
            FilesCommand::Push { code, .. }
            | FilesCommand::Pull { code, .. }
            | FilesCommand::Ls { code, .. } => *code,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
}

/// Which spreadsheet a CSV export writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Sheet {
    /// One row per device: host, OS, CPU, RAM and disk in GiB, IPs, users, last seen.
    Devices,
    /// One row per installed package: host, name, version, source.
    Software,
}

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
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

#[derive(Debug, Subcommand, Clone)]
pub enum InputAction {
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

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ButtonArg {
    Left,
    Middle,
    Right,
    Back,
    Forward,
}

/// Parses the command line. `diag`'s probe parameters take every word after the probe name, so a
/// console option written there (`diag --code C tcp-connect host=h port=1 --timeout 3 --json`) is
/// moved before the probe and the line parsed again: options work in any place.
pub fn parse(argv: impl IntoIterator<Item = String>) -> Cli {
    let argv: Vec<String> = argv.into_iter().collect();
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
        if kind.param_names().contains(&name) {
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
