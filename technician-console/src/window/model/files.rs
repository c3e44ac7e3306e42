//! The Files panel: a folder on the user's machine listed, files pulled from it, files pushed by
//! dropping them onto the live screen, and every transfer with its progress.

use std::path::PathBuf;

use tether_proto::Scope;
use tether_proto::text::display_safe;

use super::{Action, Model, not_asked};
use crate::units;

/// Most transfers the panel keeps on show (the oldest finished ones go first).
pub const MAX_SHOWN_TRANSFERS: usize = 50;

/// One entry of a listed folder, as the panel shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name inside the folder (made harmless for showing).
    pub name: String,
    /// A folder (opened on click) rather than a file (pulled on click).
    pub is_dir: bool,
    /// Size in bytes (files only).
    pub size: u64,
}

/// A listed folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The folder's path on the user's machine, as the agent names it.
    pub dir: String,
    /// Its entries, folders first, then by name.
    pub entries: Vec<Entry>,
}

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// To the user's machine.
    Push,
    /// From the user's machine.
    Pull,
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    /// Bytes are moving.
    Running,
    /// Verified end to end; where it landed.
    Done {
        /// The path it has now (on the user's machine for a push, here for a pull).
        landed: String,
    },
    /// It stopped, and why (a full disk, the user stopped it, the scope was taken back...).
    Failed(String),
}

/// One transfer on show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The window's own number for it.
    pub id: u64,
    /// Push or pull.
    pub way: Way,
    /// The file's name (made harmless for showing).
    pub name: String,
    /// Bytes moved (including what an earlier, resumed transfer had moved).
    pub done: u64,
    /// Bytes in all.
    pub total: u64,
    /// Where it stands.
    pub state: TransferState,
}

impl Transfer {
    /// How far along it is, 0.0 to 1.0 (an empty file is complete).
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            return 1.0;
        }
        (self.done.min(self.total) as f64 / self.total as f64) as f32
    }

    /// One line for the panel: "push report.pdf: 3.0 MiB of 12.0 MiB".
    pub fn line(&self) -> String {
        let way = match self.way {
            Way::Push => "push",
            Way::Pull => "pull",
        };
        let state = match &self.state {
            TransferState::Running => format!(
                "{} of {}",
                units::bytes(self.done),
                units::bytes(self.total)
            ),
            TransferState::Done { landed } => {
                format!("done, {} at {landed}", units::bytes(self.total))
            }
            TransferState::Failed(why) => format!("failed: {why}"),
        };
        format!("{way} {}: {state}", self.name)
    }
}

/// What the session tells the panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesEvent {
    /// A folder's listing, or why it could not be listed.
    Listed(Result<Listing, String>),
    /// A transfer started (its name and size known).
    Started {
        /// The window's number for it.
        id: u64,
        /// Push or pull.
        way: Way,
        /// The file's name.
        name: String,
        /// Its size.
        total: u64,
    },
    /// Bytes moved.
    Progress {
        /// Which transfer.
        id: u64,
        /// Bytes moved so far.
        done: u64,
    },
    /// It finished, verified; where it landed.
    Done {
        /// Which transfer.
        id: u64,
        /// Its path now.
        landed: String,
    },
    /// It failed, and why.
    Failed {
        /// Which transfer (none: the request failed before any file started).
        id: Option<u64>,
        /// Why.
        reason: String,
    },
}

/// The Files side panel.
#[derive(Debug, Clone, Default)]
pub struct FilesPanel {
    /// The folder field: what "List" lists (empty: the user's default folder).
    pub dir: String,
    /// The last listing.
    pub listing: Option<Listing>,
    /// A listing is under way.
    pub listing_pending: bool,
    /// Why the last request failed (e.g. `files` not granted).
    pub error: Option<String>,
    /// Transfers, oldest first.
    pub transfers: Vec<Transfer>,
}

impl FilesPanel {
    /// Transfers still moving.
    pub fn running(&self) -> usize {
        self.transfers
            .iter()
            .filter(|t| t.state == TransferState::Running)
            .count()
    }

    fn find(&mut self, id: u64) -> Option<&mut Transfer> {
        self.transfers.iter_mut().find(|t| t.id == id)
    }

    /// Drops the oldest finished transfers beyond [`MAX_SHOWN_TRANSFERS`].
    fn trim(&mut self) {
        while self.transfers.len() > MAX_SHOWN_TRANSFERS {
            match self
                .transfers
                .iter()
                .position(|t| t.state != TransferState::Running)
            {
                Some(i) => {
                    self.transfers.remove(i);
                }
                None => break,
            }
        }
    }
}

/// `dir` joined with `name` the way the agent writes paths (`/`), for a click on an entry.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl Model {
    /// Whether files may be moved now: a session with `files` granted. Otherwise says why in the
    /// panel and returns `false`.
    fn files_allowed(&mut self) -> bool {
        let Some(granted) = self.granted() else {
            self.files.error = Some("Connect first.".into());
            return false;
        };
        if !self.asked().contains(Scope::Files) {
            self.files.error = Some(not_asked(Scope::Files));
            return false;
        }
        if !granted.contains(Scope::Files) {
            self.files.error = Some("The user did not allow file transfer.".into());
            return false;
        }
        self.files.error = None;
        true
    }

    /// "List": lists the folder in the field (the user's default folder when it is empty).
    pub fn list_files(&mut self) -> Option<Action> {
        if !self.files_allowed() {
            return None;
        }
        self.files.listing_pending = true;
        let dir = self.files.dir.trim().to_string();
        self.say(format!(
            "files: listing {}",
            if dir.is_empty() {
                "the default folder"
            } else {
                &dir
            }
        ));
        Some(Action::ListFiles(dir))
    }

    /// A click on an entry of the listing: a folder opens, a file is pulled.
    pub fn open_entry(&mut self, index: usize) -> Option<Action> {
        let listing = self.files.listing.as_ref()?;
        let entry = listing.entries.get(index)?;
        let path = join(&listing.dir, &entry.name);
        if entry.is_dir {
            self.files.dir = path;
            return self.list_files();
        }
        if !self.files_allowed() {
            return None;
        }
        self.say(format!("files: pulling {path}"));
        Some(Action::PullFile(path))
    }

    /// Files dropped onto the live screen: pushes them to the user's folder.
    pub fn drop_files(&mut self, paths: Vec<PathBuf>) -> Option<Action> {
        if paths.is_empty() {
            return None;
        }
        if !self.files_allowed() {
            let why = self.files.error.clone().unwrap_or_default();
            self.say(format!(
                "files: {} dropped item(s) not sent: {why}",
                paths.len()
            ));
            return None;
        }
        self.say(format!("files: pushing {} dropped item(s)", paths.len()));
        Some(Action::PushFiles(paths))
    }

    /// Applies news about listings and transfers.
    pub(super) fn files_event(&mut self, ev: FilesEvent) {
        match ev {
            FilesEvent::Listed(Ok(listing)) => {
                self.files.listing_pending = false;
                self.files.error = None;
                self.say(format!(
                    "files: listed {} ({} entries)",
                    display_safe(&listing.dir),
                    listing.entries.len()
                ));
                self.files.dir = listing.dir.clone();
                self.files.listing = Some(listing);
            }
            FilesEvent::Listed(Err(why)) => {
                self.files.listing_pending = false;
                self.say(format!("files: listing failed: {why}"));
                self.files.error = Some(why);
            }
            FilesEvent::Started {
                id,
                way,
                name,
                total,
            } => {
                let t = Transfer {
                    id,
                    way,
                    name: display_safe(&name).into_owned(),
                    done: 0,
                    total,
                    state: TransferState::Running,
                };
                self.say(format!("files: {} started", t.line()));
                self.files.transfers.push(t);
                self.files.trim();
            }
            FilesEvent::Progress { id, done } => {
                if let Some(t) = self.files.find(id) {
                    t.done = done;
                }
            }
            FilesEvent::Done { id, landed } => {
                let landed = display_safe(&landed).into_owned();
                if let Some(t) = self.files.find(id) {
                    t.done = t.total;
                    t.state = TransferState::Done { landed };
                    let line = t.line();
                    self.say(format!("files: {line}"));
                }
            }
            FilesEvent::Failed { id, reason } => {
                let line = match id.and_then(|id| self.files.find(id)) {
                    Some(t) => {
                        t.state = TransferState::Failed(reason.clone());
                        t.line()
                    }
                    None => format!("transfer failed: {reason}"),
                };
                self.say(format!("files: {line}"));
                self.files.error = Some(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Event;
    use super::super::tests::granted;
    use super::*;

    fn listing() -> Listing {
        Listing {
            dir: "/home/u".into(),
            entries: vec![
                Entry {
                    name: "logs".into(),
                    is_dir: true,
                    size: 0,
                },
                Entry {
                    name: "crash.txt".into(),
                    is_dir: false,
                    size: 2048,
                },
            ],
        }
    }

    #[test]
    fn nothing_moves_without_the_files_scope() {
        let mut m = Model::new();
        assert_eq!(m.list_files(), None, "no session");
        granted(&mut m, "view");
        assert_eq!(m.list_files(), None);
        assert_eq!(
            m.files.error.as_deref(),
            Some("The user did not allow file transfer.")
        );
        assert_eq!(m.drop_files(vec!["/tmp/a".into()]), None);
    }

    #[test]
    fn a_folder_opens_and_a_file_is_pulled() {
        let mut m = Model::new();
        granted(&mut m, "files");
        m.journal();
        assert_eq!(m.list_files(), Some(Action::ListFiles(String::new())));
        m.files_event(FilesEvent::Listed(Ok(listing())));
        assert_eq!(m.files.dir, "/home/u");
        assert_eq!(
            m.open_entry(0),
            Some(Action::ListFiles("/home/u/logs".into()))
        );
        m.files_event(FilesEvent::Listed(Ok(listing())));
        assert_eq!(
            m.open_entry(1),
            Some(Action::PullFile("/home/u/crash.txt".into()))
        );
        assert_eq!(m.open_entry(7), None, "no such entry");
        let lines = m.journal();
        assert!(
            lines.contains(&"files: listed /home/u (2 entries)".to_string()),
            "{lines:?}"
        );
    }

    #[test]
    fn transfers_show_progress_and_their_end() {
        let mut m = Model::new();
        granted(&mut m, "files");
        let push = m.drop_files(vec!["/tmp/fix.sh".into()]);
        assert_eq!(push, Some(Action::PushFiles(vec!["/tmp/fix.sh".into()])));
        m.on_event(Event::Files(FilesEvent::Started {
            id: 1,
            way: Way::Push,
            name: "fix\u{1b}[2J.sh".into(),
            total: 4 << 20,
        }));
        m.on_event(Event::Files(FilesEvent::Progress {
            id: 1,
            done: 1 << 20,
        }));
        assert_eq!(m.files.running(), 1);
        assert!((m.files.transfers[0].fraction() - 0.25).abs() < 1e-6);
        assert!(
            !m.files.transfers[0].name.contains('\u{1b}'),
            "names are made harmless"
        );
        m.on_event(Event::Files(FilesEvent::Done {
            id: 1,
            landed: "/home/u/Downloads/Tether/fix.sh".into(),
        }));
        assert_eq!(m.files.running(), 0);
        m.on_event(Event::Files(FilesEvent::Started {
            id: 2,
            way: Way::Pull,
            name: "big.iso".into(),
            total: 10,
        }));
        m.on_event(Event::Files(FilesEvent::Failed {
            id: Some(2),
            reason: "the user stopped the transfer".into(),
        }));
        assert_eq!(
            m.files.transfers[1].state,
            TransferState::Failed("the user stopped the transfer".into())
        );
        let lines = m.journal();
        assert!(
            lines.iter().any(|l| l.starts_with("files: push fix")
                && l.contains("done, 4.0 MiB at /home/u/Downloads/Tether/fix.sh")),
            "{lines:?}"
        );
        assert!(
            lines.contains(
                &"files: pull big.iso: failed: the user stopped the transfer".to_string()
            ),
            "{lines:?}"
        );
    }

    #[test]
    fn finished_transfers_make_room_but_running_ones_stay() {
        let mut m = Model::new();
        granted(&mut m, "files");
        for id in 0..(MAX_SHOWN_TRANSFERS as u64 + 5) {
            m.files_event(FilesEvent::Started {
                id,
                way: Way::Pull,
                name: format!("f{id}"),
                total: 1,
            });
            if id > 0 {
                m.files_event(FilesEvent::Done {
                    id,
                    landed: "x".into(),
                });
            }
        }
        assert_eq!(m.files.transfers.len(), MAX_SHOWN_TRANSFERS);
        assert_eq!(m.files.transfers[0].id, 0, "the running one stays");
        assert_eq!(m.files.transfers[1].id, 6, "the oldest finished went");
    }
}
