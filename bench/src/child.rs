//! The real `tether-relay` binary as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tether_net::{RelayTarget, Trust};

/// A relay process in a temporary data directory with one technician. Killed on drop.
#[derive(Debug)]
pub struct ChildRelay {
    child: Child,
    /// Its address.
    pub addr: SocketAddr,
    /// Its certificate fingerprint.
    pub fingerprint: String,
    /// A technician token.
    pub token: String,
    /// Its data directory.
    pub dir: tempfile::TempDir,
}

/// The `tether-relay` binary next to this one (`cargo build --release -p tether-relay`), or `$TETHER_RELAY_BIN`.
pub fn relay_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("TETHER_RELAY_BIN") {
        return Ok(p.into());
    }
    let mut p = std::env::current_exe()?;
    p.pop();
    p.push("tether-relay");
    if !p.exists() {
        bail!(
            "{} not found: build it first with `cargo build --release -p tether-relay`",
            p.display()
        );
    }
    Ok(p)
}

impl ChildRelay {
    /// Starts `tether-relay serve` on 127.0.0.1:0 with `extra` flags.
    pub fn start(extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_on(None, None, extra)
    }

    /// Starts a node of a cluster on `database` (`serve --database`); its technician is `token`
    /// when the database has one already, else one is added.
    pub fn start_on(
        database: Option<&str>,
        token: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let bin = relay_bin()?;
        let dir = tempfile::tempdir()?;
        let db: Vec<&str> = database.map(|u| vec!["--database", u]).unwrap_or_default();
        let token = match token {
            Some(t) => t.to_string(),
            None => add_technician(&bin, dir.path(), &db)?,
        };
        let mut child = Command::new(&bin)
            .args(&db)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let out = child.stdout.take().context("relay stdout")?;
        let mut lines = BufReader::new(out).lines();
        let (mut addr, mut fingerprint) = (None, None);
        while addr.is_none() || fingerprint.is_none() {
            let line = lines.next().context("relay exited early")??;
            if let Some(rest) = line.strip_prefix("tether-relay listening on ") {
                addr = rest.split_whitespace().next().map(str::parse).transpose()?;
            } else if let Some(rest) = line.strip_prefix("certificate SHA-256: ") {
                fingerprint = Some(rest.trim().to_string());
            }
        }
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ChildRelay {
            child,
            addr: addr.context("address")?,
            fingerprint: fingerprint.context("fingerprint")?,
            token,
            dir,
        })
    }

    /// The relay's pid, for `/proc`.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// A pinned target.
    pub fn target(&self) -> RelayTarget {
        RelayTarget {
            addr: self.addr.to_string(),
            trust: Trust::Fingerprint(self.fingerprint.clone()),
            connect_timeout: Duration::from_secs(10),
            // The benches measure the relay: their sessions stay on it (on loopback they would
            // otherwise go direct).
            direct: tether_net::path::Direct::Forbidden,
        }
    }

    /// Resident memory in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        crate::proc::rss(&self.pid())
    }

    /// CPU time used so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        crate::proc::cpu_time(&self.pid())
    }
}

impl Drop for ChildRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn add_technician(bin: &Path, dir: &Path, db: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(db)
        .arg("--data-dir")
        .arg(dir)
        .args(["technician", "add", "Bench", "--org", "Bench"])
        .output()?;
    if !out.status.success() {
        bail!(
            "technician add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout)?
        .lines()
        .last()
        .map(|l| l.trim().to_string())
        .context("no token printed")
}
