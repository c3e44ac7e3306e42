//! `tether-console files push | pull | ls`: the library's transfers with a progress line on
//! standard error (rewritten in place, with rate and time left, when it is a terminal; a plain line
//! every few seconds otherwise) and the result on standard output (`--json`: serde's).

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::CliError;
use super::args::FilesCommand;
use super::output;
use crate::Session;
use crate::files::{self, Progress};

/// How often the progress line is redrawn on a terminal, and written otherwise.
const REDRAW: Duration = Duration::from_millis(200);
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Runs one `files` command in a granted session.
pub async fn run(cmd: &FilesCommand, json: bool, session: &mut Session) -> Result<(), CliError> {
    let mut line = ProgressLine::new(std::io::stderr().is_terminal());
    let mut progress = |p: &Progress| {
        line.show(p, Instant::now());
        ControlFlow::Continue(())
    };
    match cmd {
        FilesCommand::Push { paths, to, .. } => {
            let moved = files::push(session, paths, to.as_deref(), &mut progress).await;
            line.finish();
            let moved = moved?;
            if json {
                tether_net::outln!("{}", output::to_json(&moved)?);
            } else {
                for m in &moved {
                    tether_net::outln!(
                        "sent {} ({} bytes, SHA-256 {})",
                        tether_proto::text::display_safe(&m.path),
                        m.size,
                        m.sha256
                    );
                }
            }
        }
        FilesCommand::Pull {
            remote_path, out, ..
        } => {
            let pulled = files::pull(session, remote_path, out, &mut progress).await;
            line.finish();
            let pulled = pulled?;
            if json {
                tether_net::outln!("{}", output::to_json(&pulled)?);
            } else {
                tether_net::outln!(
                    "saved {} as {} ({} bytes, SHA-256 {})",
                    tether_proto::text::display_safe(&pulled.record.path),
                    pulled.saved_as.display(),
                    pulled.record.size,
                    pulled.record.sha256
                );
            }
        }
        FilesCommand::Ls { dir, .. } => {
            let listing = files::list(session, dir).await?;
            if json {
                tether_net::outln!("{}", output::to_json(&listing)?);
            } else {
                tether_net::out!("{}", listing_text(&listing));
            }
        }
    }
    Ok(())
}

/// A listing as lines: kind, size, name.
pub fn listing_text(l: &files::Listing) -> String {
    let mut s = String::new();
    for e in &l.entries {
        let size = if e.kind == "file" {
            e.size.to_string()
        } else {
            "-".into()
        };
        let mark = match e.kind {
            "dir" => "/",
            "symlink" => "@",
            _ => "",
        };
        s.push_str(&format!(
            "{:<8} {:>14}  {}{mark}\n",
            e.kind,
            size,
            tether_proto::text::display_safe(&e.name)
        ));
    }
    if l.entries.is_empty() {
        s.push_str("(empty)\n");
    }
    if l.left_out > 0 {
        s.push_str(&format!("({} more not listed)\n", l.left_out));
    }
    s
}

/// The progress line's state.
struct ProgressLine {
    terminal: bool,
    file: Option<(String, Instant, u64)>,
    shown: Option<Instant>,
    drawn: bool,
}

impl ProgressLine {
    fn new(terminal: bool) -> Self {
        ProgressLine {
            terminal,
            file: None,
            shown: None,
            drawn: false,
        }
    }

    fn show(&mut self, p: &Progress, now: Instant) {
        let new_file = self.file.as_ref().is_none_or(|(n, _, _)| *n != p.name);
        if new_file {
            self.finish();
            self.file = Some((p.name.clone(), now, p.done_bytes));
            self.shown = None;
        }
        let done = p.done_bytes >= p.total_bytes;
        let every = if self.terminal { REDRAW } else { PLAIN_EVERY };
        if !new_file && !done && self.shown.is_some_and(|s| now.duration_since(s) < every) {
            return;
        }
        self.shown = Some(now);
        let Some((_, started, from)) = &self.file else {
            return;
        };
        let text = progress_text(p, now.duration_since(*started), *from);
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{text}");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    /// Ends the line on a terminal.
    fn finish(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// `report.pdf  45% 120.0 MB of 266.7 MB  85.2 MB/s  0:02 left`.
pub fn progress_text(p: &Progress, elapsed: Duration, resumed_from: u64) -> String {
    let pct = p
        .done_bytes
        .saturating_mul(100)
        .checked_div(p.total_bytes)
        .unwrap_or(100);
    let moved = p.done_bytes.saturating_sub(resumed_from);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { moved as f64 / secs } else { 0.0 };
    let left = p.total_bytes.saturating_sub(p.done_bytes);
    let eta = if rate > 0.0 {
        let s = (left as f64 / rate).round() as u64;
        format!("{}:{:02} left", s / 60, s % 60)
    } else {
        "-:-- left".into()
    };
    format!(
        "{}  {pct:>3}% {} of {}  {}/s  {eta}",
        tether_proto::text::display_safe(&p.name),
        crate::units::bytes(p.done_bytes),
        crate::units::bytes(p.total_bytes),
        crate::units::bytes(rate as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_has_rate_and_time_left() {
        let p = Progress {
            name: "a.bin".into(),
            done_bytes: 50_000_000,
            total_bytes: 100_000_000,
        };
        let t = progress_text(&p, Duration::from_secs(5), 0);
        assert!(t.starts_with("a.bin   50%"), "{t}");
        assert!(t.ends_with("0:05 left"), "{t}");
        // Resumed: the rate counts only what moved in this session.
        let t = progress_text(&p, Duration::from_secs(5), 40_000_000);
        assert!(t.ends_with("0:25 left"), "{t}");
    }
}
