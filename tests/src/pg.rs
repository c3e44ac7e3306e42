//! A private PostgreSQL server for a test: `initdb` into a temporary directory and `postgres` on a
//! free loopback port, as an unprivileged user (the `postgres` account when the tests run as root,
//! as CI does: PostgreSQL refuses to run as root), with password logins over TCP so a wrong
//! password really is refused. Each [`PgServer::database`] is a new, empty database. Dropping the
//! server stops it (SIGINT, PostgreSQL's fast shutdown) and removes its files.
//!
//! The server binaries come from `$TETHER_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`
//! (the Debian `postgresql` package, in `packaging/system-packages`). When they are missing the
//! test fails and says what to install: a storage test that silently passed without a database
//! would promise what nobody checked.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tether_relay::pg::offload;

/// The password of the harness's `tether` superuser.
pub const PASSWORD: &str = "tether-test-password";

/// How long the server may take to accept connections.
const START_WAIT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server, stopped on drop.
#[derive(Debug)]
pub struct PgServer {
    /// The server's port on 127.0.0.1.
    pub port: u16,
    child: Child,
    bin: PathBuf,
    // Last, so it is removed after the server stopped.
    dir: tempfile::TempDir,
}

/// Where the server binaries are; panics with what to install when they are missing.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TETHER_PG_BIN") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("postgres").exists() && dir.join("initdb").exists(),
            "TETHER_PG_BIN={} holds no PostgreSQL server binaries (postgres, initdb)",
            dir.display()
        );
        return dir;
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/postgres, and \
             TETHER_PG_BIN is not set): install the Debian package `postgresql` \
             (`./dev test` does, from packaging/system-packages)"
        ),
    }
}

fn is_root() -> bool {
    // /proc/self belongs to the process's effective user.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `program args…`, as the unprivileged `postgres` user when we are root (setpriv execs in place,
/// so the child's pid is the server's own).
fn command(bin: &Path, program: &str) -> Command {
    let exe = bin.join(program);
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ]);
        c.arg(exe);
        c
    } else {
        Command::new(exe)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl PgServer {
    /// Initialises and starts a server; waits until it accepts logins.
    pub fn start() -> PgServer {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("tether-pg-")
            .tempdir()
            .expect("temporary directory");
        if is_root() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("chown");
            assert!(out.status.success(), "chown: {out:?}");
        }
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("password file");
        if is_root() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pwfile)
                .status();
        }
        let out = command(&bin, "initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "tether",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = spawn(&bin, dir.path(), port);
        let mut server = PgServer {
            port,
            child,
            bin,
            dir,
        };
        server.wait_ready();
        server
    }

    /// Stops the server (a fast shutdown: its sessions end) and waits until it has exited; its
    /// data stays for [`PgServer::restart`].
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped server again on the same port and data; waits until it accepts logins.
    pub fn restart(&mut self) {
        self.child = spawn(&self.bin, self.dir.path(), self.port);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "postgres exited at start ({status}): {}",
                    self.log().unwrap_or_default()
                );
            }
            let url = self.url("postgres");
            if offload(|| {
                postgres::Client::connect(&url, postgres::NoTls)
                    .map(drop)
                    .is_ok()
            }) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept logins within {START_WAIT:?}: {}",
                self.log().unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> std::io::Result<String> {
        std::fs::read_to_string(self.dir.path().join("server.log"))
    }

    /// The connection string of database `db` with the right password.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://tether:{PASSWORD}@127.0.0.1:{}/{db}", self.port)
    }

    /// A connection to database `db` (to look at or tamper with what a test stored). Not for an
    /// async worker thread: the client drives a runtime of its own (see [`offload`]).
    pub fn client(&self, db: &str) -> postgres::Client {
        let url = self.url(db);
        offload(|| postgres::Client::connect(&url, postgres::NoTls)).expect("connect")
    }

    /// Creates a new, empty database and returns its name.
    pub fn database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let url = self.url("postgres");
        offload(|| {
            // Connected, used and dropped (a drop closes the connection) off any async worker.
            postgres::Client::connect(&url, postgres::NoTls)?
                .batch_execute(&format!("CREATE DATABASE {name}"))
        })
        .expect("create database");
        name
    }

    /// Where the server binaries are (for `psql` and friends).
    pub fn bin(&self) -> &Path {
        &self.bin
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: it ends the sessions and stops cleanly.
        self.stop();
    }
}

/// A relay node on the database at `url` (`serve --database`), data in `dir`, on a free port.
pub async fn node(url: &str, dir: &Path) -> tether_relay::RelayHandle {
    let mut config =
        tether_relay::RelayConfig::new("127.0.0.1:0".parse().expect("address"), dir.to_path_buf());
    config.database = Some(url.to_string());
    tether_relay::Relay::spawn(config)
        .await
        .expect("node starts")
}

/// Starts `postgres` on the data in `dir` (made by `initdb`), logging to `dir/server.log`.
fn spawn(bin: &Path, dir: &Path, port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("log file");
    command(bin, "postgres")
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-k")
        .arg(dir)
        .args(["-p", &port.to_string()])
        .args(["-c", "listen_addresses=127.0.0.1"])
        // A test database need not survive a power cut.
        .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start postgres")
}
