//! A private headless sway (wlroots) for the Wayland tests: no GPU (`WLR_RENDERER=pixman`), no input
//! devices, one 1920x1080 output, as an unprivileged user when the tests run as root (sway refuses
//! root), with its own `XDG_RUNTIME_DIR`. Killed when dropped; every wait is bounded.
//!
//! The agent under test runs in the test process: root may use the compositor's socket, and a test
//! run by a normal user starts sway as that same user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The unprivileged user sway runs as when the tests run as root.
pub const SWAY_USER: &str = "tetherwl";

/// How long sway, a window or a file may take to appear.
pub const SWAY_WAIT: Duration = Duration::from_secs(20);

/// A running headless sway.
#[derive(Debug)]
pub struct Sway {
    /// Its private runtime directory (the socket is in it); also where test files go.
    pub dir: PathBuf,
    /// The Wayland socket's absolute path (a valid `WAYLAND_DISPLAY`).
    pub socket: PathBuf,
    user: Option<(u32, u32)>,
    server: Option<Child>,
    clients: Vec<Child>,
}

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

impl Sway {
    /// Starts sway with `extra` lines added to its config, and waits until it serves clients.
    pub fn start(extra: &str) -> Self {
        let user = (id(&["-u"]) == Some(0)).then(session_user);
        let dir = std::env::temp_dir().join(format!(
            "tether-sway-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
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
        if let Some((uid, gid)) = user {
            for p in [&dir, &config] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
            }
        }
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let mut sway = Sway {
            socket: PathBuf::new(),
            dir,
            user,
            server: None,
            clients: Vec::new(),
        };
        let mut cmd = sway.command("sway");
        cmd.arg("-c")
            .arg(&config)
            .env("WLR_BACKENDS", "headless")
            .env("WLR_RENDERER", "pixman")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(sway.dir.join("sway.log")).unwrap());
        sway.server = Some(
            cmd.spawn()
                .expect("sway is installed (packaging/system-packages)"),
        );
        let start = Instant::now();
        loop {
            if let Some(socket) = sway.find_socket()
                && sway.msg(&["-t", "get_outputs"]).status.success()
            {
                sway.socket = socket;
                return sway;
            }
            if let Some(status) = sway
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                panic!("sway exited ({status}): {}", sway.log());
            }
            assert!(
                start.elapsed() < SWAY_WAIT,
                "sway did not start: {}",
                sway.log()
            );
            std::thread::sleep(Duration::from_millis(50));
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

    /// The compositor's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sway.log")).unwrap_or_default()
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
            .env("XDG_CURRENT_DESKTOP", "sway")
            .env_remove("DISPLAY");
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

    /// Kills the compositor (its clients lose it too).
    pub fn kill(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    /// A file in the session's directory that the session user may write.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
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

impl Drop for Sway {
    fn drop(&mut self) {
        for c in &mut self.clients {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
