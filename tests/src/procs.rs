//! Running the real binaries from tests: find (and build once) a workspace binary, read a child's
//! output line by line with a timeout, and kill children when a test ends however it ends.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Once, mpsc};
use std::time::Duration;

/// How long [`wait_for`] waits for any one line.
pub const LINE_WAIT: Duration = Duration::from_secs(30);

/// Path of a workspace binary (`tether-relay`, `tether-agent`, `tether-console`), built once per test
/// process with the same profile as the running test.
pub fn bin(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut args = vec![
            "build",
            "--quiet",
            "-p",
            "tether-relay",
            "-p",
            "tether-agent",
            "-p",
            "tether-console",
        ];
        if std::env::current_exe()
            .expect("test exe")
            .components()
            .any(|c| c.as_os_str() == "release")
        {
            args.push("--release");
        }
        assert!(
            Command::new(cargo)
                .args(args)
                .status()
                .expect("cargo runs")
                .success(),
            "building the binaries failed"
        );
    });
    let mut p = std::env::current_exe().expect("test exe");
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join(name)
}

/// Reads lines from a child's stdout on a thread, so waits can time out.
pub fn lines(out: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for the next line containing `pat`, skipping others; panics after [`LINE_WAIT`] of silence.
pub fn wait_for(rx: &mpsc::Receiver<String>, pat: &str) -> String {
    loop {
        let line = rx
            .recv_timeout(LINE_WAIT)
            .unwrap_or_else(|_| panic!("no line with {pat:?}"));
        if line.contains(pat) {
            return line;
        }
    }
}

/// The code on a `session code: 123 456 789` line, as the user reads it out.
pub fn code_in(line: &str) -> String {
    let (_, code) = line
        .split_once("code:")
        .unwrap_or_else(|| panic!("no code on {line:?}"));
    code.trim().to_string()
}

/// Waits for the agent's `session code:` line and returns the code.
pub fn wait_for_code(rx: &mpsc::Receiver<String>) -> String {
    code_in(&wait_for(rx, "session code:"))
}

/// A child process killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Registers a technician with the real `tether-relay technician add` and returns the printed token.
pub fn add_technician(data_dir: &str, name: &str, org: &str) -> String {
    let add = Command::new(bin("tether-relay"))
        .args([
            "--data-dir",
            data_dir,
            "technician",
            "add",
            name,
            "--org",
            org,
        ])
        .output()
        .expect("tether-relay runs");
    assert!(
        add.status.success(),
        "technician add failed: {}",
        String::from_utf8_lossy(&add.stderr)
    );
    let out = String::from_utf8(add.stdout).expect("utf-8 output");
    out.lines()
        .last()
        .expect("the token line")
        .trim()
        .to_string()
}
