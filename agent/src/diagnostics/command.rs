//! Running a diagnostic tool: a fixed program from a fixed directory, a fixed argv, no shell, a deadline.
//!
//! The program is looked up only in [`TOOL_DIRS`] (never `$PATH`, which the user's environment could point
//! anywhere). Output is captured up to [`MAX_OUTPUT`] per stream. When the deadline passes the child is
//! killed and reaped, and the caller gets [`CommandError::TimedOut`].

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where tools are looked for, in order.
pub const TOOL_DIRS: [&str; 4] = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// Most bytes kept from each of stdout and stderr.
pub const MAX_OUTPUT: usize = 1024 * 1024;

/// How often a running child is checked.
const POLL: Duration = Duration::from_millis(5);

/// A finished command.
#[derive(Debug)]
pub struct Output {
    /// Exit status code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

/// Why a command produced no output.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The tool is not installed in any of [`TOOL_DIRS`].
    #[error("{0} is not installed")]
    NotFound(&'static str),
    /// The deadline passed; the child (this pid) was killed and reaped.
    #[error("{program} did not finish in time and was stopped")]
    TimedOut {
        /// The tool.
        program: &'static str,
        /// Its process id, now gone.
        pid: u32,
    },
    /// It could not be started or waited for.
    #[error("cannot run {program}: {error}")]
    Io {
        /// The tool.
        program: &'static str,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// The full path of `program` in [`TOOL_DIRS`], if installed.
pub fn find(program: &'static str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.is_file())
}

/// Runs `program` with `args` (each one argv entry, never parsed by a shell), `LC_ALL=C`, stdin closed.
pub fn run(
    program: &'static str,
    args: &[&str],
    deadline: Instant,
) -> Result<Output, CommandError> {
    let path = find(program).ok_or(CommandError::NotFound(program))?;
    let io = |error| CommandError::Io { program, error };
    let mut child = Command::new(path)
        .args(args)
        .env("LC_ALL", "C")
        .env("SYSTEMD_PAGER", "")
        .env("PAGER", "cat")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io)?;
    let pid = child.id();
    // Read both pipes on their own threads so a chatty child never blocks on a full pipe.
    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let _ = out_tx.send(read_capped(out));
        });
    }
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = err_tx.send(read_capped(err));
        });
    }
    let status = loop {
        match child.try_wait().map_err(io)? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TimedOut { program, pid });
            }
            None => std::thread::sleep(POLL),
        }
    };
    // A grandchild could hold the pipes open; do not wait for it past a short grace.
    let grace = Duration::from_millis(200);
    Ok(Output {
        code: status.code(),
        stdout: out_rx.recv_timeout(grace).unwrap_or_default(),
        stderr: err_rx.recv_timeout(grace).unwrap_or_default(),
    })
}

fn read_capped(r: impl Read) -> String {
    let mut buf = Vec::new();
    let mut limited = r.take(MAX_OUTPUT as u64);
    let _ = limited.read_to_end(&mut buf);
    // Drain the rest so the child is not stuck writing.
    let _ = std::io::copy(&mut limited.into_inner(), &mut std::io::sink());
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn captures_output_and_status() {
        let out = run("echo", &["a;b", "$(id)"], soon(5000)).unwrap();
        // No shell: the metacharacters arrive verbatim as arguments.
        assert_eq!(out.stdout, "a;b $(id)\n");
        assert_eq!(out.code, Some(0));
        let out = run("ls", &["/definitely/not/here"], soon(5000)).unwrap();
        assert_ne!(out.code, Some(0));
        assert!(out.stderr.contains("No such file"), "{}", out.stderr);
    }

    #[test]
    fn a_missing_tool_is_named() {
        let e = run("tether-no-such-tool", &[], soon(1000)).unwrap_err();
        assert!(matches!(e, CommandError::NotFound("tether-no-such-tool")));
        assert_eq!(e.to_string(), "tether-no-such-tool is not installed");
    }

    #[test]
    fn an_overrunning_child_is_killed() {
        let e = run("sleep", &["30"], soon(200)).unwrap_err();
        let CommandError::TimedOut { pid, .. } = e else {
            panic!("expected a timeout, got {e}");
        };
        // Killed and reaped: the pid no longer exists.
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
}
