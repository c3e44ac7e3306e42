//! File transfers in the window: one running notice per file (name, progress, a Stop button), and
//! the last outcome of each until the user closes it or the session ends.

use tether_proto::records::FileDirection;

use super::Action;
use crate::ui::{Transfer, TransferState, UserCommand, size_words};

/// How many finished transfers stay listed (the oldest goes first).
pub const KEPT_FINISHED: usize = 5;

/// One file, as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNotice {
    /// The transfer's id (what Stop sends).
    pub id: u64,
    /// Arriving or leaving.
    pub direction: FileDirection,
    /// The path on this computer.
    pub path: String,
    /// Bytes done so far.
    pub done: u64,
    /// Its size.
    pub total: u64,
    /// `None` while it runs; then how it ended, in words.
    pub outcome: Option<String>,
}

impl FileNotice {
    /// Whether it still runs (and Stop applies).
    pub fn running(&self) -> bool {
        self.outcome.is_none()
    }

    /// Progress from 0 to 1 (a file of no bytes is done at once).
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            return 1.0;
        }
        (self.done as f64 / self.total as f64).clamp(0.0, 1.0) as f32
    }

    /// The notice in words, e.g. "Arriving: /home/u/Downloads/Tether/report.txt, 3.1 MB of 10.0 MB".
    pub fn words(&self) -> String {
        self.words_about(&self.path)
    }

    /// The same with only the file's name (a row of the window; the full path shows on hover).
    pub fn row_words(&self) -> String {
        let name = self.path.rsplit('/').next().unwrap_or(&self.path);
        self.words_about(name)
    }

    fn words_about(&self, path: &str) -> String {
        let path = tether_proto::text::display_safe(path);
        let complete = self
            .outcome
            .as_deref()
            .is_some_and(|o| o.starts_with("complete"));
        let verb = match (self.direction, &self.outcome, complete) {
            (FileDirection::Push, None, _) => "Arriving",
            (FileDirection::Pull, None, _) => "Leaving",
            (FileDirection::Push, Some(_), true) => "Received",
            (FileDirection::Pull, Some(_), true) => "Sent",
            (FileDirection::Push, Some(_), false) => "Not received",
            (FileDirection::Pull, Some(_), false) => "Not sent",
        };
        match &self.outcome {
            None => format!(
                "{verb}: {path}, {} of {}",
                size_words(self.done),
                size_words(self.total)
            ),
            Some(o) => format!("{verb}: {path}: {o}"),
        }
    }
}

/// Every file of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Running first, then finished, oldest first within each.
    pub files: Vec<FileNotice>,
}

impl Transfers {
    /// Applies a transfer event.
    pub fn on_transfer(&mut self, t: &Transfer) {
        let at = self.files.iter().position(|f| f.id == t.id);
        match (&t.state, at) {
            (TransferState::Started { offset }, _) => {
                self.files.retain(|f| f.id != t.id);
                self.files.push(FileNotice {
                    id: t.id,
                    direction: t.direction,
                    path: t.path.clone(),
                    done: *offset,
                    total: t.total,
                    outcome: None,
                });
            }
            (TransferState::Progress { done }, Some(i)) => self.files[i].done = *done,
            (TransferState::Done { .. }, Some(i)) => {
                let f = &mut self.files[i];
                f.done = f.total;
                f.path = t.path.clone();
                f.outcome = Some(format!("complete ({})", size_words(f.total)));
            }
            (TransferState::Failed { reason }, Some(i)) => {
                self.files[i].outcome = Some(format!("failed: {reason}"));
            }
            // News of a transfer the window never saw start: nothing to update.
            (_, None) => {}
        }
        let finished = self.files.iter().filter(|f| !f.running()).count();
        if finished > KEPT_FINISHED {
            let mut drop = finished - KEPT_FINISHED;
            self.files.retain(|f| {
                if drop > 0 && !f.running() {
                    drop -= 1;
                    return false;
                }
                true
            });
        }
    }

    /// The user pressed Stop on transfer `id`: only a running one can be stopped.
    pub fn stop(&self, id: u64) -> Option<Action> {
        self.files
            .iter()
            .any(|f| f.id == id && f.running())
            .then_some(Action::Send(UserCommand::StopTransfer(id)))
    }

    /// The session ended: running transfers ended with it.
    pub fn session_ended(&mut self) {
        for f in self.files.iter_mut().filter(|f| f.running()) {
            f.outcome = Some("stopped: the session ended".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: u64, state: TransferState) -> Transfer {
        Transfer {
            id,
            direction: FileDirection::Push,
            technician: "Ada of Acme".into(),
            path: "/home/u/Downloads/Tether/report.txt".into(),
            total: 2_000_000,
            state,
        }
    }

    #[test]
    fn a_file_runs_with_progress_and_a_stop_button_then_ends() {
        let mut t = Transfers::default();
        t.on_transfer(&ev(7, TransferState::Started { offset: 0 }));
        assert!(t.files[0].running());
        assert_eq!(t.stop(7), Some(Action::Send(UserCommand::StopTransfer(7))));
        t.on_transfer(&ev(7, TransferState::Progress { done: 500_000 }));
        assert_eq!(t.files[0].fraction(), 0.25);
        assert_eq!(
            t.files[0].words(),
            "Arriving: /home/u/Downloads/Tether/report.txt, 500.0 kB of 2.0 MB"
        );
        t.on_transfer(&ev(
            7,
            TransferState::Done {
                sha256: "ab".into(),
            },
        ));
        assert!(!t.files[0].running());
        assert_eq!(t.stop(7), None, "a finished file has no Stop");
        assert!(t.files[0].words().contains("complete"));
    }

    #[test]
    fn a_failure_is_shown_with_its_reason_and_unknown_ids_are_ignored() {
        let mut t = Transfers::default();
        t.on_transfer(&ev(1, TransferState::Progress { done: 5 }));
        assert!(t.files.is_empty());
        assert_eq!(t.stop(1), None);
        t.on_transfer(&ev(1, TransferState::Started { offset: 1_000_000 }));
        assert_eq!(
            t.files[0].fraction(),
            0.5,
            "a resumed file starts where it was"
        );
        t.on_transfer(&ev(
            1,
            TransferState::Failed {
                reason: "the disk is full on the receiving side".into(),
            },
        ));
        assert_eq!(
            t.files[0].row_words(),
            "Not received: report.txt: failed: the disk is full on the receiving side"
        );
    }

    #[test]
    fn finished_files_are_capped_and_the_end_stops_the_rest() {
        let mut t = Transfers::default();
        for id in 0..10 {
            t.on_transfer(&ev(id, TransferState::Started { offset: 0 }));
        }
        t.on_transfer(&ev(9, TransferState::Started { offset: 0 }));
        for id in 0..8 {
            t.on_transfer(&ev(id, TransferState::Failed { reason: "x".into() }));
        }
        assert_eq!(
            t.files.iter().filter(|f| !f.running()).count(),
            KEPT_FINISHED
        );
        assert_eq!(t.files.iter().filter(|f| f.running()).count(), 2);
        t.session_ended();
        assert!(t.files.iter().all(|f| !f.running()));
    }
}
