//! Private headless Wayland desktops for the tests, each as an unprivileged user when the tests run
//! as root (sway refuses root; the portal refuses other users), with its own `XDG_RUNTIME_DIR`:
//! - [`Desktop::sway`]: sway (wlroots), no GPU (`WLR_RENDERER=pixman`), no input devices, one
//!   1920x1080 output.
//! - [`Desktop::mutter`]: its own session bus (which admits root, so the test process may call
//!   Mutter's D-Bus APIs), PipeWire and WirePlumber, and `mutter --headless` with one 1920x1080
//!   virtual monitor.
//!
//! Killed when dropped; every wait is bounded. The agent under test runs in the test process.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The unprivileged user a desktop runs as when the tests run as root.
pub const SWAY_USER: &str = "tetherwl";

/// How long a desktop, a window or a file may take to appear.
pub const SWAY_WAIT: Duration = Duration::from_secs(20);

/// A running headless desktop.
#[derive(Debug)]
pub struct Desktop {
    /// Its private runtime directory (the sockets are in it); also where test files go.
    pub dir: PathBuf,
    /// The Wayland socket's absolute path (a valid `WAYLAND_DISPLAY`).
    pub socket: PathBuf,
    /// The session bus's address, for desktops that have one.
    pub bus: Option<String>,
    user: Option<(u32, u32)>,
    /// The compositor and the services, started in this order (stopped in reverse).
    servers: Vec<Child>,
    clients: Vec<Child>,
    desktop_name: &'static str,
}

/// Keeps the original name for the sway tests.
pub type Sway = Desktop;

/// `id ARGS` as a number.
fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The unprivileged session user's (uid, gid), created if it is missing (once per test process:
/// tests run in parallel).
fn session_user() -> (u32, u32) {
    static CREATE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = CREATE.lock().unwrap_or_else(|e| e.into_inner());
    if id(&["-u", SWAY_USER]).is_none() {
        let made = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", SWAY_USER])
            .status()
            .expect("useradd runs");
        assert!(made.success(), "useradd {SWAY_USER} failed");
    }
    (
        id(&["-u", SWAY_USER]).expect("uid"),
        id(&["-g", SWAY_USER]).expect("gid"),
    )
}

impl Desktop {
    fn empty(kind: &'static str, desktop_name: &'static str) -> Self {
        let user = (id(&["-u"]) == Some(0)).then(session_user);
        let dir = std::env::temp_dir().join(format!(
            "tether-{kind}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        Desktop {
            socket: PathBuf::new(),
            dir,
            bus: None,
            user,
            servers: Vec::new(),
            clients: Vec::new(),
            desktop_name,
        }
    }

    /// Starts a service of the session, logging to `NAME.log` in its directory.
    fn serve(&mut self, name: &str, mut cmd: Command) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        cmd.stdout(Stdio::null()).stderr(log);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e} (packaging/system-packages)"));
        self.servers.push(child);
    }

    /// Waits until `ready` holds, failing with the logs if a service died or time ran out.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut(&Self) -> bool) {
        let start = Instant::now();
        loop {
            if ready(self) {
                return;
            }
            for s in &mut self.servers {
                if let Ok(Some(status)) = s.try_wait() {
                    panic!("a service exited ({status}) before {what}: {}", self.log());
                }
            }
            assert!(
                start.elapsed() < SWAY_WAIT,
                "{what} timed out: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts sway with `extra` lines added to its config, and waits until it serves clients.
    pub fn start(extra: &str) -> Self {
        Self::sway(extra)
    }

    /// Starts sway with `extra` lines added to its config, and waits until it serves clients.
    pub fn sway(extra: &str) -> Self {
        let mut sway = Self::empty("sway", "sway");
        let dir = sway.dir.clone();
        let config = dir.join("sway.conf");
        std::fs::write(
            &config,
            format!(
                "xwayland disable\n\
                 output HEADLESS-1 mode 1920x1080 position 0,0 bg #336699 solid_color\n\
                 default_border normal\n{extra}\n"
            ),
        )
        .unwrap();
        sway.chown(&config);
        let mut cmd = sway.command("sway");
        cmd.arg("-c")
            .arg(&config)
            .env("WLR_BACKENDS", "headless")
            .env("WLR_RENDERER", "pixman")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .env_remove("WAYLAND_DISPLAY");
        sway.serve("sway", cmd);
        sway.wait_until("sway serves clients", |s| {
            s.find_socket().is_some() && s.msg(&["-t", "get_outputs"]).status.success()
        });
        sway.socket = sway.find_socket().unwrap_or_default();
        sway
    }

    /// Starts a session bus (admitting root), PipeWire, WirePlumber and headless Mutter, and waits
    /// until Mutter's ScreenCast and RemoteDesktop APIs are on the bus.
    pub fn mutter() -> Self {
        let mut d = Self::empty("mutter", "GNOME");
        let conf = d.dir.join("session.conf");
        std::fs::write(
            &conf,
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
             \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n  \
             <include>/usr/share/dbus-1/session.conf</include>\n  \
             <policy context=\"default\"><allow user=\"root\"/></policy>\n</busconfig>\n",
        )
        .unwrap();
        d.chown(&conf);
        let socket = d.dir.join("bus");
        let address = format!("unix:path={}", socket.display());
        let mut bus = d.command("dbus-daemon");
        bus.arg(format!("--config-file={}", conf.display()))
            .arg(format!("--address={address}"))
            .arg("--nofork");
        d.serve("dbus", bus);
        d.wait_until("the session bus", |d| d.dir.join("bus").exists());
        d.bus = Some(address);
        d.serve("pipewire", d.command("pipewire"));
        d.wait_until("PipeWire", |d| d.dir.join("pipewire-0").exists());
        d.serve("wireplumber", d.command("wireplumber"));
        let mut mutter = d.command("mutter");
        mutter.args([
            "--headless",
            "--virtual-monitor",
            "1920x1080",
            "--wayland",
            "--no-x11",
            "--wayland-display=wayland-0",
        ]);
        d.serve("mutter", mutter);
        d.wait_until("Mutter on the bus", |d| {
            [
                "org.gnome.Mutter.ScreenCast",
                "org.gnome.Mutter.RemoteDesktop",
            ]
            .iter()
            .all(|name| d.has_name(name))
        });
        d.wait_until("WirePlumber", |d| {
            d.cmd("wpctl", &["status"]).status.success()
        });
        d.socket = d.dir.join("wayland-0");
        d
    }

    /// An independent frame of Mutter's primary monitor as (width, height, RGB): a screen cast of
    /// its own, grabbed by GStreamer's `pipewiresrc`.
    pub fn mutter_frame(&self) -> (u32, u32, Vec<u8>) {
        use std::collections::HashMap;
        use zbus::blocking::{Proxy, connection};
        use zbus::zvariant::{OwnedObjectPath, Value};
        const SC: &str = "org.gnome.Mutter.ScreenCast";
        let bus = self.bus.as_deref().expect("a Mutter desktop");
        let conn = connection::Builder::address(bus).unwrap().build().unwrap();
        let root = Proxy::new(&conn, SC, "/org/gnome/Mutter/ScreenCast", SC).unwrap();
        let session: OwnedObjectPath = root
            .call("CreateSession", &(HashMap::<&str, Value>::new(),))
            .unwrap();
        let session =
            Proxy::new(&conn, SC, session, "org.gnome.Mutter.ScreenCast.Session").unwrap();
        let options = HashMap::from([("cursor-mode", Value::U32(0))]);
        let stream: OwnedObjectPath = session.call("RecordMonitor", &("", options)).unwrap();
        let stream = Proxy::new(&conn, SC, stream, "org.gnome.Mutter.ScreenCast.Stream").unwrap();
        let mut added = stream.receive_signal("PipeWireStreamAdded").unwrap();
        session.call::<_, _, ()>("Start", &()).unwrap();
        let node: u32 = added
            .next()
            .expect("a stream node")
            .body()
            .deserialize()
            .unwrap();
        let file = self.dir.join(format!("frame-{node}.rgb"));
        let out = self.cmd(
            "timeout",
            &[
                "20",
                "gst-launch-1.0",
                "-q",
                "pipewiresrc",
                &format!("path={node}"),
                "num-buffers=1",
                "!",
                "videoconvert",
                "!",
                "video/x-raw,format=RGB",
                "!",
                "filesink",
                &format!("location={}", file.display()),
            ],
        );
        let _ = session.call::<_, _, ()>("Stop", &());
        assert!(
            out.status.success(),
            "gst-launch: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rgb = std::fs::read(&file).unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(rgb.len(), 1920 * 1080 * 3, "one 1920x1080 RGB frame");
        (1920, 1080, rgb)
    }

    /// [`Desktop::mutter`] with xdg-desktop-portal and its GNOME backend: the real portal path.
    pub fn gnome_portal() -> Self {
        let mut d = Self::mutter();
        let mut update = d.command("dbus-update-activation-environment");
        update.args([
            "WAYLAND_DISPLAY",
            "XDG_CURRENT_DESKTOP",
            "XDG_SESSION_TYPE",
            "GSETTINGS_BACKEND",
        ]);
        assert!(
            update.status().unwrap().success(),
            "dbus-update-activation-environment"
        );
        let mut gnome = d.command("/usr/libexec/xdg-desktop-portal-gnome");
        gnome.env("GDK_BACKEND", "wayland");
        d.serve("xdg-desktop-portal-gnome", gnome);
        d.wait_until("the GNOME portal backend", |d| {
            d.has_name("org.freedesktop.impl.portal.desktop.gnome")
        });
        d.serve(
            "xdg-desktop-portal",
            d.command("/usr/libexec/xdg-desktop-portal"),
        );
        d.wait_until("the portal", |d| {
            d.has_name("org.freedesktop.portal.Desktop")
        });
        d
    }

    /// How many portal sessions (screen casts, remote desktops) are open now.
    pub fn portal_sessions(&self) -> usize {
        /// The child node names of `path`, from its introspection XML.
        fn children(conn: &zbus::blocking::Connection, path: &str) -> Vec<String> {
            let xml: String = zbus::blocking::Proxy::new(
                conn,
                "org.freedesktop.portal.Desktop",
                path.to_string(),
                "org.freedesktop.DBus.Introspectable",
            )
            .and_then(|p| p.call("Introspect", &()))
            .unwrap_or_default();
            xml.split("<node name=\"")
                .skip(1)
                .filter_map(|r| r.split('"').next())
                .map(|n| format!("{}/{n}", path.trim_end_matches('/')))
                .collect()
        }
        let bus = self.bus.clone().expect("a desktop with a session bus");
        off_runtime(move || {
            let conn = bus_connection(&bus);
            // /org/freedesktop/portal/desktop/session/SENDER/TOKEN: one node per open session.
            children(&conn, "/org/freedesktop/portal/desktop/session")
                .iter()
                .map(|sender| children(&conn, sender).len())
                .sum()
        })
    }

    /// Whether `name` is owned on the session bus.
    pub fn has_name(&self, name: &str) -> bool {
        let Some(bus) = self.bus.clone() else {
            return false;
        };
        let name = name.to_string();
        off_runtime(move || {
            let conn = bus_connection(&bus);
            let owned = zbus::blocking::fdo::DBusProxy::new(&conn).and_then(|dbus| {
                let name = zbus::names::BusName::try_from(name.as_str())?;
                Ok(dbus.name_has_owner(name)?)
            });
            owned.unwrap_or(false)
        })
    }

    /// PipeWire's socket.
    pub fn pipewire(&self) -> String {
        self.dir.join("pipewire-0").display().to_string()
    }

    /// Hands `path` to the session user (a directory the agent under test writes).
    pub fn give(&self, path: &Path) {
        self.chown(path);
    }

    fn chown(&self, path: &Path) {
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }

    fn find_socket(&self) -> Option<PathBuf> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("wayland-") && !n.ends_with(".lock")
                })
            })
    }

    fn sway_socket(&self) -> Option<PathBuf> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("sway-ipc."))
            })
    }

    /// The services' logs so far.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out.push_str(&format!("\n--- {}:\n", p.display()));
                for l in tail.iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// A command run as the session user inside this session.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        // Run as the session user directly (no `runuser` in between, so killing the child kills it).
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            c.uid(uid).gid(gid);
        }
        c.env("XDG_RUNTIME_DIR", &self.dir)
            .env("HOME", &self.dir)
            .env("XDG_SESSION_TYPE", "wayland")
            .env("XDG_CURRENT_DESKTOP", self.desktop_name)
            .env("GSETTINGS_BACKEND", "memory")
            .env_remove("DISPLAY");
        if let Some(bus) = &self.bus {
            c.env("DBUS_SESSION_BUS_ADDRESS", bus);
        }
        if !self.socket.as_os_str().is_empty() {
            c.env("WAYLAND_DISPLAY", &self.socket);
        }
        if let Some(s) = self.sway_socket() {
            c.env("SWAYSOCK", s);
        }
        c
    }

    /// `swaymsg ARGS`.
    pub fn msg(&self, args: &[&str]) -> Output {
        self.command("swaymsg")
            .args(args)
            .output()
            .expect("swaymsg runs")
    }

    /// Runs a program in the session and returns its output.
    pub fn cmd(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {program}: {e}"))
    }

    /// Starts a long-running client (a window), killed on drop.
    pub fn spawn(&mut self, program: &str, args: &[&str]) {
        let child = self
            .command(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        self.clients.push(child);
    }

    /// The window tree (`swaymsg -t get_tree`) as JSON.
    pub fn tree(&self) -> serde_json::Value {
        serde_json::from_slice(&self.msg(&["-t", "get_tree"]).stdout).unwrap_or_default()
    }

    /// Windows by app id: (app id, focused, x, y, width, height), in tree order.
    pub fn windows(&self) -> Vec<(String, bool, i64, i64, i64, i64)> {
        fn walk(n: &serde_json::Value, out: &mut Vec<(String, bool, i64, i64, i64, i64)>) {
            if let Some(app) = n["app_id"].as_str() {
                let r = &n["rect"];
                out.push((
                    app.to_string(),
                    n["focused"].as_bool().unwrap_or(false),
                    r["x"].as_i64().unwrap_or(0),
                    r["y"].as_i64().unwrap_or(0),
                    r["width"].as_i64().unwrap_or(0),
                    r["height"].as_i64().unwrap_or(0),
                ));
            }
            for key in ["nodes", "floating_nodes"] {
                for c in n[key].as_array().into_iter().flatten() {
                    walk(c, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.tree(), &mut out);
        out
    }

    /// Waits until `n` windows are mapped.
    pub fn wait_windows(&self, n: usize) -> Vec<(String, bool, i64, i64, i64, i64)> {
        let start = Instant::now();
        loop {
            let w = self.windows();
            if w.len() >= n {
                return w;
            }
            assert!(
                start.elapsed() < SWAY_WAIT,
                "{n} windows never mapped: {w:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An independent screenshot (`grim`, PPM) as (width, height, RGB).
    pub fn screenshot(&self) -> (u32, u32, Vec<u8>) {
        let out = self.cmd("grim", &["-t", "ppm", "-"]);
        assert!(
            out.status.success(),
            "grim failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_ppm(&out.stdout)
    }

    /// Kills the compositor and the services (their clients lose them too).
    pub fn kill(&mut self) {
        while let Some(mut s) = self.servers.pop() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    /// A file in the session's directory that the session user may write.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A connection to the session bus at `bus`.
fn bus_connection(bus: &str) -> zbus::blocking::Connection {
    zbus::blocking::connection::Builder::address(bus)
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("the session bus at {bus}: {e}"))
}

/// Runs `f` on a thread of its own: zbus's blocking calls must not run on a tokio runtime's thread,
/// and the tests call the desktop from async code.
fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(f)
        .join()
        .expect("the D-Bus call panicked")
}

/// Waits until `path` holds a line, and returns the file's text.
pub fn wait_for_file(path: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Ok(t) = std::fs::read_to_string(path)
            && t.ends_with('\n')
        {
            return t;
        }
        assert!(
            start.elapsed() < SWAY_WAIT,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A binary PPM (P6, maxval 255) as (width, height, RGB).
pub fn parse_ppm(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes[i] == b'#' {
            while bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..i]).to_string());
    }
    assert_eq!(fields[0], "P6", "not a binary PPM");
    assert_eq!(fields[3], "255", "not 8 bits per channel");
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let data = bytes[i + 1..].to_vec();
    assert_eq!(data.len(), (w * h * 3) as usize, "PPM size");
    (w, h, data)
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for c in &mut self.clients {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kill();
        if std::env::var_os("TETHER_KEEP_DESKTOP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
