//! The console window: the technician's home. Enter the code the user reads out, see the consent
//! state (asked, waiting, granted or denied, and the granted scopes all along), the live screen, and
//! side panels for inventory (searchable tables) and diagnostics (probes and verdicts).
//!
//! - [`model`]: the state — what is shown, what a click asks for — tested without a display.
//! - [`layout`]: fixed positions of everything clickable (the UI tests click there).
//! - `app`: the eframe rendering, thin on top of the model.
//!
//! eframe owns the main thread. Each session runs as one task ([`Backend::connect`]) on the
//! caller's tokio runtime: it opens the session with [`open_session`], starts the view and control
//! streams through [`crate::displays::ScreenStreams`] (which switches them to another remote display
//! on [`Job::Display`], the live screen's picker) and then serves the window's requests one at a
//! time, in order. The window sends them with `try_send` and drains [`Event`]s with
//! `try_recv` each frame, through bounded queues; nothing on the UI thread waits for the network.
//! The session pairs first ([`pair_session`]) so chat works before consent; with "chat first" the
//! technician asks for consent when ready ([`Job::AskConsent`]). The chat tab sends lines
//! ([`Job::Say`]) and invites a colleague ([`Job::Invite`]); the user's lines arrive as events.

mod app;
pub mod layout;
pub mod model;

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_proto::chat::ChatText;
use tether_proto::diag::{Probe, ProbeKind};
use tether_proto::msg::Invitee;
use tether_proto::screen::InputEvent;
use tether_proto::{Scope, ScopeSet};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::displays::ScreenStreams;
use crate::enrolled::{Reach, pair_reach};
use crate::error::ConsoleError;
use crate::files;
use crate::session::{AgentSaid, ConsoleConfig, MoreAnswer, Session};
use crate::viewer::{self, ViewerState};
use model::{Event, FilesEvent, Way};
use tether_proto::text::display_safe;

/// Depth of the request and event queues: the technician clicks slowly, and a full queue drops the
/// click (the button can be pressed again) rather than blocking the window.
pub const QUEUE: usize = 32;

/// Depth of the input queue to the remote screen (pointer motion is dropped when it is full).
pub const INPUT_QUEUE: usize = 64;

/// Called from the session task whenever it has told the window something, to ask for a repaint.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// What the window asks the session task to do.
#[derive(Debug, Clone)]
pub enum Job {
    /// Fetch the inventory.
    Inventory,
    /// Run one probe.
    Probe(Probe),
    /// Run the health check.
    HealthCheck,
    /// Ask the user for consent now (a "chat first" session).
    AskConsent,
    /// During the session, ask the user for more ("Ask for control"); the answer comes as
    /// [`Event::MoreAnswered`], after the streams it allows are started.
    AskMore(ScopeSet),
    /// Send a chat line to the user.
    Say(String),
    /// Invite a colleague; the answer is the colleague's code.
    Invite {
        /// Whom.
        invitee: Invitee,
        /// Leave once they are in.
        handover: bool,
    },
    /// Show another remote display (monitor), on the same session.
    Display(u32),
    /// List a folder on the user's machine (empty: the default folder).
    ListFiles(String),
    /// Fetch a file from the user's machine.
    PullFile(String),
    /// Send files (or folders) to the user's machine.
    PushFiles(Vec<std::path::PathBuf>),
    /// The window gained (`true`) or lost focus: the clipboard follows the technician in and out
    /// when `clipboard` is granted ([`crate::clipboard::FocusSync`]).
    Focus(bool),
    /// End the session.
    End,
}

struct Current {
    generation: u64,
    jobs: mpsc::Sender<Job>,
    events: mpsc::Receiver<Event>,
}

/// Runs sessions for the window, one at a time, on a tokio runtime.
pub struct Backend {
    rt: tokio::runtime::Handle,
    config: ConsoleConfig,
    /// Where pulled files are saved.
    downloads: PathBuf,
    wake: Waker,
    generation: u64,
    current: Option<Current>,
    tasks: JoinSet<()>,
    /// The current session's screen (frames, rates, why it stopped).
    pub screen: viewer::Shared,
    /// Input to the current session's remote screen (refused by the agent unless `control` is granted).
    pub input: mpsc::Sender<InputEvent>,
    /// Device lists, which come outside any session.
    fleet: (mpsc::Sender<Event>, mpsc::Receiver<Event>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The session task's way to tell the window something and wake it.
#[derive(Clone)]
struct Tell {
    tx: mpsc::Sender<Event>,
    wake: Waker,
}

impl Tell {
    async fn send(&self, ev: Event) {
        // The window gone means nobody is listening; the task ends on its own when its jobs close.
        let _ = self.tx.send(ev).await;
        (self.wake)();
    }
}

impl Backend {
    /// A backend that runs sessions with `config` on `rt`, saving pulled files in `downloads`,
    /// calling `wake` when there is news.
    pub fn new(
        rt: tokio::runtime::Handle,
        config: ConsoleConfig,
        downloads: PathBuf,
        wake: Waker,
    ) -> Self {
        let (input, _) = mpsc::channel(1);
        Backend {
            rt,
            config,
            downloads,
            wake,
            generation: 0,
            current: None,
            tasks: JoinSet::new(),
            screen: Arc::new(Mutex::new(ViewerState::default())),
            input,
            fleet: mpsc::channel(2),
        }
    }

    /// Lists the organisation's enrolled devices ([`Event::Devices`] follows).
    pub fn list_devices(&mut self) {
        let tell = Tell {
            tx: self.fleet.0.clone(),
            wake: self.wake.clone(),
        };
        let config = self.config.clone();
        self.tasks.spawn_on(
            async move {
                let list =
                    crate::fleet::query(&config, tether_proto::fleet::FleetQuery::ListDevices)
                        .await
                        .and_then(|r| match r.into_iter().next() {
                            Some(tether_proto::fleet::FleetReply::Devices(d)) => Ok(d),
                            _ => Err(ConsoleError::Protocol(
                                "the relay answered a device list with something else".into(),
                            )),
                        });
                tell.send(Event::Devices(list.map_err(|e| e.to_string())))
                    .await;
            },
            &self.rt,
        );
    }

    /// Claims the code (or wakes the device) and pairs; asks for `scopes` at once when `ask_now`,
    /// else on [`Job::AskConsent`]. A session already running is ended first.
    pub fn connect(&mut self, reach: Reach, scopes: ScopeSet, ask_now: bool) {
        self.stop_current();
        self.generation += 1;
        let (jobs_tx, jobs) = mpsc::channel(QUEUE);
        let (tx, events) = mpsc::channel(QUEUE);
        let (input, input_rx) = mpsc::channel(INPUT_QUEUE);
        self.screen = Arc::new(Mutex::new(ViewerState::default()));
        self.input = input;
        let tell = Tell {
            tx,
            wake: self.wake.clone(),
        };
        let task = run_session(
            self.config.clone(),
            self.downloads.clone(),
            reach,
            scopes,
            ask_now,
            jobs,
            tell,
            self.screen.clone(),
            input_rx,
        );
        self.tasks.spawn_on(task, &self.rt);
        self.current = Some(Current {
            generation: self.generation,
            jobs: jobs_tx,
            events,
        });
    }

    /// Asks the current session to do `job`. A full queue or no session drops it.
    pub fn send(&self, job: Job) {
        if let Some(c) = &self.current {
            let _ = c.jobs.try_send(job);
        }
    }

    /// Which session is current (a new one per [`Backend::connect`]).
    pub fn generation(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.generation)
    }

    fn stop_current(&mut self) {
        if let Some(c) = self.current.take() {
            // Dropping the queue ends it too; `End` says goodbye to the agent first.
            let _ = c.jobs.try_send(Job::End);
        }
    }

    /// What the current session said since the last call, without blocking.
    pub fn poll(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(ev) = self.fleet.1.try_recv() {
            out.push(ev);
        }
        if let Some(c) = &mut self.current {
            while let Ok(ev) = c.events.try_recv() {
                out.push(ev);
            }
        }
        // Reap finished sessions (their results went out as events).
        while self.tasks.try_join_next().is_some() {}
        out
    }

    /// Ends whatever runs and waits (bounded) for it to say goodbye to the agent.
    pub fn shutdown(mut self) {
        self.stop_current();
        let mut tasks = std::mem::take(&mut self.tasks);
        let rt = self.rt.clone();
        let wait = async move {
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
        };
        // The window runs inside `block_in_place` (see `main`), where blocking on the runtime is allowed.
        rt.block_on(wait);
    }
}

/// Waits until the window asks to end (or goes away), ignoring anything else: used while
/// nothing but ending makes sense (the user has not answered yet).
async fn until_end(jobs: &mut mpsc::Receiver<Job>) {
    while let Some(job) = jobs.recv().await {
        if matches!(job, Job::End) {
            return;
        }
    }
}

/// Tells the window about a chat line from the user, or that the session is over (`None`).
async fn chat_in(text: Option<ChatText>, tell: &Tell) -> bool {
    match text {
        Some(t) => {
            tell.send(Event::Chat {
                from_user: true,
                text: t.as_str().to_string(),
            })
            .await;
            true
        }
        None => false,
    }
}

/// One session from claim to end, telling the window at each step.
#[allow(clippy::too_many_arguments)]
async fn run_session(
    config: ConsoleConfig,
    downloads: PathBuf,
    reach: Reach,
    scopes: ScopeSet,
    ask_now: bool,
    mut jobs: mpsc::Receiver<Job>,
    tell: Tell,
    screen: viewer::Shared,
    input: mpsc::Receiver<InputEvent>,
) {
    let paired = tokio::select! {
        r = pair_reach(&config, &reach, scopes) => r,
        () = until_end(&mut jobs) => {
            tell.send(Event::Failed { reason: "you cancelled".into(), denied: false }).await;
            return;
        }
    };
    let mut session = match paired {
        Ok(s) => s,
        Err(e) => {
            tell.send(Event::Failed {
                reason: e.to_string(),
                denied: false,
            })
            .await;
            return;
        }
    };
    tell.send(Event::Paired {
        technician: session.technician.clone(),
        verification: session.verification.clone(),
        reason: session.reason.clone(),
    })
    .await;
    // Chat first: talk until the technician asks for access.
    if !ask_now {
        loop {
            tokio::select! {
                j = jobs.recv() => match j {
                    Some(Job::AskConsent) => break,
                    Some(Job::Say(line)) => {
                        let _ = serve(&mut session, Job::Say(line), &tell, &downloads).await;
                    }
                    Some(Job::End) | None => {
                        session.end().await;
                        tell.send(Event::Failed { reason: "you ended the session".into(), denied: false }).await;
                        return;
                    }
                    // Nothing else works before consent; the buttons say so.
                    Some(_) => {}
                },
                t = session.next_chat() => if !chat_in(t, &tell).await {
                    let reason = session.ended().await.to_string();
                    tell.send(Event::Failed { reason, denied: false }).await;
                    return;
                },
            }
        }
    }
    // Ask, and keep chatting both ways while the user decides; other jobs wait for the answer.
    let mut queue = VecDeque::new();
    if let Err(e) = session.request_consent().await {
        tell.send(Event::Failed {
            reason: e.to_string(),
            denied: false,
        })
        .await;
        return;
    }
    let give_up = tokio::time::sleep(crate::session::CONSENT_WAIT);
    tokio::pin!(give_up);
    let answer = loop {
        tokio::select! {
            said = session.next_said() => match said {
                AgentSaid::Decision(granted) => break Some(session.decided(granted)),
                AgentSaid::Chat(t) => {
                    chat_in(Some(t), &tell).await;
                }
                AgentSaid::Ended(reason) => break Some(Err(Session::ended_before_decision(reason))),
                // Nothing was asked for more yet.
                AgentSaid::More(_) => {}
            },
            j = jobs.recv() => match j {
                Some(Job::End) | None => break None,
                Some(Job::Say(line)) => {
                    let _ = serve(&mut session, Job::Say(line), &tell, &downloads).await;
                }
                // Nothing to sync before a grant; a later focus change syncs what is current.
                Some(Job::Focus(_)) => {}
                Some(j) => queue.push_back(j),
            },
            () = &mut give_up => break Some(Err(ConsoleError::ConsentTimeout)),
        }
    };
    match answer {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            let denied = matches!(
                e,
                ConsoleError::ConsentDenied | ConsoleError::ConsentTimeout
            );
            tell.send(Event::Failed {
                reason: e.to_string(),
                denied,
            })
            .await;
            return;
        }
        None => {
            session.end().await;
            tell.send(Event::Failed {
                reason: "you cancelled".into(),
                denied: false,
            })
            .await;
            return;
        }
    }
    tell.send(Event::Granted {
        technician: session.technician.clone(),
        granted: session.granted,
        verification: session.verification.clone(),
    })
    .await;
    let mut streams = ScreenStreams::new(screen.clone(), Some(input));
    let mut viewing = start_screen(&mut session, &mut streams, &screen).await;
    let mut watchers = JoinSet::new();
    watchers.spawn(follow_grant(
        session.grant(),
        tell.clone(),
        screen.clone(),
        streams.input_gate(),
    ));
    if session.granted.contains(Scope::Inventory) {
        queue.push_front(Job::Inventory);
    }
    // What was last asked for more, to say what the answer means.
    let mut more_asked = (ScopeSet::EMPTY, ScopeSet::EMPTY);
    let (mut clip_rule, mut local_clip) = (
        crate::clipboard::FocusSync::default(),
        crate::clipboard::X11LocalClipboard::new(),
    );
    let reason = loop {
        let job = match queue.pop_front() {
            Some(j) => j,
            None => tokio::select! {
                j = jobs.recv() => match j {
                    Some(Job::End) | None => break "you ended the session".to_string(),
                    Some(j) => j,
                },
                // The user's lines, answers to an ask for more, and the end (after every line).
                said = session.next_said() => match said {
                    AgentSaid::Chat(t) => {
                        chat_in(Some(t), &tell).await;
                        continue;
                    }
                    AgentSaid::More(answer) => {
                        // Start what the user allowed before saying so: input works once the
                        // technician sees the answer.
                        if !viewing {
                            viewing = start_screen(&mut session, &mut streams, &screen).await;
                        } else {
                            streams.start_control(&mut session).await;
                        }
                        let (before, asked) = more_asked;
                        tell.send(more_answered(asked, before, answer)).await;
                        continue;
                    }
                    AgentSaid::Decision(_) => continue,
                    AgentSaid::Ended(reason) => break reason.to_string(),
                },
            },
        };
        if let Job::AskMore(scopes) = job {
            more_asked = (session.granted, scopes);
            if let Err(e) = session.request_more(scopes).await {
                let words = format!("not asked: {e}");
                tell.send(Event::MoreAnswered {
                    asked: scopes,
                    granted: session.granted,
                    words,
                })
                .await;
                if matches!(e, ConsoleError::Ended(_) | ConsoleError::RelayClosed(_)) {
                    break e.to_string();
                }
            }
            continue;
        }
        if matches!(job, Job::End) {
            break "you ended the session".to_string();
        }
        if let Job::Focus(focused) = job {
            let synced = crate::clipboard::sync_focus(
                &mut session,
                &mut clip_rule,
                &mut local_clip,
                focused,
            )
            .await;
            // Shown where the live screen shows its notes.
            if let Some(n) = synced
                && let Ok(mut s) = screen.lock()
            {
                s.note = Some(n);
                s.repaint();
            }
            continue;
        }
        if let Job::Display(d) = job {
            // A failure shows in the screen's status; the session goes on.
            if session.granted.contains(Scope::View) {
                let _ = streams.open(&mut session, d).await;
            }
            continue;
        }
        // Serve the job; meanwhile keep taking requests, so "End session" is never stuck behind a
        // slow probe (the user's lines wait until it is done).
        let over = {
            let work = serve(&mut session, job, &tell, &downloads);
            tokio::pin!(work);
            loop {
                tokio::select! {
                    over = &mut work => break over,
                    j = jobs.recv() => match j {
                        Some(Job::End) | None => break Some("you ended the session".to_string()),
                        Some(j) => queue.push_back(j),
                    },
                }
            }
        };
        if let Some(reason) = over {
            break reason;
        }
    };
    watchers.abort_all();
    streams.shutdown().await;
    session.end().await;
    tell.send(Event::Ended(reason)).await;
}

/// The answer to an ask for more, for the window.
fn more_answered(asked: ScopeSet, before: ScopeSet, answer: MoreAnswer) -> Event {
    Event::MoreAnswered {
        asked,
        granted: answer.granted,
        words: answer.words(before, asked),
    }
}

/// Tells the window whenever the user changes the grant (Stop control, or allowing more), at
/// once: the grant line changes, and taking back `control` closes the input gate and says so on the
/// screen.
async fn follow_grant(
    mut grant: tokio::sync::watch::Receiver<ScopeSet>,
    tell: Tell,
    screen: viewer::Shared,
    input: crate::displays::InputGate,
) {
    while grant.changed().await.is_ok() {
        let granted = *grant.borrow_and_update();
        input.follow(granted, &screen);
        tell.send(Event::GrantChanged { granted }).await;
    }
}

/// Starts viewing display 0 when `view` is granted, and control when `control` is too; returns
/// whether the view runs. A failure shows in the screen's status rather than ending the session.
async fn start_screen(
    session: &mut Session,
    streams: &mut ScreenStreams,
    screen: &viewer::Shared,
) -> bool {
    let note = |text: String| {
        if let Ok(mut s) = screen.lock() {
            s.stopped = Some(text);
            s.repaint();
        }
    };
    if !session.granted.contains(Scope::View) {
        // Only a refusal of what was asked for is news; a scope never asked for is not mentioned.
        if session.asked.contains(Scope::View) {
            note("the user did not allow viewing the screen".into());
        }
        return false;
    }
    // Failures are in the screen's status already.
    streams.open(session, 0).await.is_ok()
}

/// Serves one job and tells the window the outcome. Returns why the session is over, if it is.
async fn serve(session: &mut Session, job: Job, tell: &Tell, downloads: &Path) -> Option<String> {
    let (event, err) = match job {
        Job::End => return Some("you ended the session".into()),
        // Only meaningful before consent; the session already asked.
        Job::AskConsent => return None,
        // Served by the session loop, which owns the screen streams (and the clipboard sync).
        Job::Display(_) | Job::Focus(_) => return None,
        // Sent by the session loop itself, which waits for the answer with the user's lines.
        Job::AskMore(_) => return None,
        Job::ListFiles(dir) => match files::list(session, &dir).await {
            Ok(l) => (Event::Files(FilesEvent::Listed(Ok(listing(l)))), None),
            Err(e) => {
                let reason = e.to_string();
                (
                    Event::Files(FilesEvent::Listed(Err(reason))),
                    session_error(e),
                )
            }
        },
        Job::PullFile(path) => {
            let mut shown = Shown::new(tell, Way::Pull);
            let result = files::pull(session, &path, downloads, &mut |p| shown.on(p)).await;
            shown.flush().await;
            match result {
                Ok(pulled) => (shown.done(&[pulled.saved_as.display().to_string()]), None),
                Err(e) => (shown.failed(&e), session_error(e)),
            }
        }
        Job::PushFiles(paths) => {
            let mut shown = Shown::new(tell, Way::Push);
            let result = files::push(session, &paths, None, &mut |p| shown.on(p)).await;
            shown.flush().await;
            match result {
                Ok(moved) => {
                    let landed: Vec<String> = moved.into_iter().map(|m| m.path).collect();
                    (shown.done(&landed), None)
                }
                Err(e) => (shown.failed(&e), session_error(e)),
            }
        }
        Job::Say(line) => match session.say(&line).await {
            Ok(()) => (
                Event::Chat {
                    from_user: false,
                    text: ChatText::new(&line)
                        .map(|t| t.as_str().to_string())
                        .unwrap_or(line),
                },
                None,
            ),
            Err(e) => (Event::ChatRefused(e.to_string()), Some(e)),
        },
        Job::Invite { invitee, handover } => match session.invite(invitee, handover).await {
            Ok(code) => (Event::Invite(Ok(code)), None),
            Err(e) => (Event::Invite(Err(e.to_string())), Some(e)),
        },
        Job::Inventory => match session.inventory().await {
            Ok(i) => (Event::Inventory(Ok(Box::new(i))), None),
            Err(e) => (Event::Inventory(Err(e.to_string())), Some(e)),
        },
        Job::Probe(p) => {
            let kind: ProbeKind = p.kind();
            match session.diagnostic(p).await {
                Ok(r) => (
                    Event::Probe {
                        kind,
                        result: Ok(Box::new(r)),
                    },
                    None,
                ),
                Err(e) => (
                    Event::Probe {
                        kind,
                        result: Err(e.to_string()),
                    },
                    Some(e),
                ),
            }
        }
        Job::HealthCheck => match session.health_check(None).await {
            Ok(r) => (Event::HealthCheck(Ok(r)), None),
            Err(e) => (Event::HealthCheck(Err(e.to_string())), Some(e)),
        },
    };
    tell.send(event).await;
    match err {
        Some(e @ (ConsoleError::Ended(_) | ConsoleError::RelayClosed(_))) => Some(e.to_string()),
        _ => None,
    }
}

/// The session error inside a failed transfer, if the session itself failed.
fn session_error(e: files::FilesError) -> Option<ConsoleError> {
    match e {
        files::FilesError::Session(e) => Some(e),
        _ => None,
    }
}

/// A listing as the files panel shows it: folders first, then files, by name; names made harmless.
fn listing(l: files::Listing) -> model::Listing {
    let mut entries: Vec<model::Entry> = l
        .entries
        .into_iter()
        .map(|e| model::Entry {
            name: display_safe(&e.name).into_owned(),
            is_dir: e.kind == "dir",
            size: e.size,
        })
        .collect();
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    model::Listing {
        dir: l.dir,
        entries,
    }
}

/// The window's numbers for transfers, unique for the process.
static TRANSFER_IDS: AtomicU64 = AtomicU64::new(1);

/// Least time between two progress events of one transfer (the bar moves smoothly at 10 a second).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Turns a transfer's progress calls into the files panel's events: a `Started` per file (never
/// dropped: one the full queue refused is sent with the next call, or by [`Shown::flush`]), and
/// `Progress` at most every [`PROGRESS_EVERY`] (those may be dropped: the next one says more).
struct Shown<'a> {
    tell: &'a Tell,
    way: Way,
    /// The files started so far: window id and name, in order.
    started: Vec<(u64, String)>,
    /// Events the queue had no room for yet.
    pending: VecDeque<Event>,
    last: Option<std::time::Instant>,
}

impl<'a> Shown<'a> {
    fn new(tell: &'a Tell, way: Way) -> Self {
        Shown {
            tell,
            way,
            started: Vec::new(),
            pending: VecDeque::new(),
            last: None,
        }
    }

    fn on(&mut self, p: &files::Progress) -> ControlFlow<()> {
        if self.started.last().is_none_or(|(_, name)| *name != p.name) {
            let id = TRANSFER_IDS.fetch_add(1, Ordering::Relaxed);
            self.started.push((id, p.name.clone()));
            self.pending.push_back(Event::Files(FilesEvent::Started {
                id,
                way: self.way,
                name: p.name.clone(),
                total: p.total_bytes,
            }));
        }
        while let Some(ev) = self.pending.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(ev)) = self.tell.tx.try_send(ev) {
                self.pending.push_front(ev);
                break;
            }
        }
        let now = std::time::Instant::now();
        if self.pending.is_empty()
            && self
                .last
                .is_none_or(|t| now.duration_since(t) >= PROGRESS_EVERY)
            && let Some((id, _)) = self.started.last()
        {
            self.last = Some(now);
            let _ = self.tell.tx.try_send(Event::Files(FilesEvent::Progress {
                id: *id,
                done: p.done_bytes,
            }));
            (self.tell.wake)();
        }
        ControlFlow::Continue(())
    }

    /// Sends what the queue had no room for.
    async fn flush(&mut self) {
        while let Some(ev) = self.pending.pop_front() {
            self.tell.send(ev).await;
        }
    }

    /// Every file done, each where it landed; the last event is returned for the caller to send.
    fn done(&self, landed: &[String]) -> Event {
        let mut events: Vec<Event> = self
            .started
            .iter()
            .zip(landed)
            .map(|((id, _), landed)| {
                Event::Files(FilesEvent::Done {
                    id: *id,
                    landed: landed.clone(),
                })
            })
            .collect();
        let last = events.pop().unwrap_or(Event::Files(FilesEvent::Failed {
            id: None,
            reason: "nothing to send: the folders hold no files".into(),
        }));
        for ev in events {
            let _ = self.tell.tx.try_send(ev);
        }
        last
    }

    /// The files before the last one are done; the last one failed with `e`.
    fn failed(&self, e: &files::FilesError) -> Event {
        let reason = e.to_string();
        Event::Files(FilesEvent::Failed {
            id: self.started.last().map(|(id, _)| *id),
            reason,
        })
    }
}

/// Where the window saves pulled files unless told otherwise: `~/Downloads`.
pub fn default_downloads() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join("Downloads"))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Opens the console window and blocks until the technician closes it. Sessions run on `rt`.
/// Every change the window shows is also printed to standard output as one line (see
/// [`model::Model::journal`]; never the code), which is what scripts and the UI tests read.
pub fn run(
    rt: tokio::runtime::Handle,
    config: ConsoleConfig,
    downloads: PathBuf,
) -> Result<(), ConsoleError> {
    let ctx = Arc::new(std::sync::OnceLock::<eframe::egui::Context>::new());
    let wake_ctx = ctx.clone();
    let backend = Backend::new(
        rt,
        config,
        downloads,
        Arc::new(move || {
            if let Some(c) = wake_ctx.get() {
                c.request_repaint();
            }
        }),
    );
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title(layout::TITLE)
            .with_inner_size(layout::SIZE)
            .with_min_inner_size(layout::MIN_SIZE)
            .with_position([0.0, 0.0]),
        ..Default::default()
    };
    let mut holder = Some(backend);
    eframe::run_native(
        layout::TITLE,
        options,
        Box::new(move |cc| {
            let backend = holder.take().ok_or("the window was created twice")?;
            let _ = ctx.set(cc.egui_ctx.clone());
            Ok(Box::new(app::ConsoleApp::new(&cc.egui_ctx, backend)))
        }),
    )
    .map_err(|e| ConsoleError::Failed(format!("cannot open the console window: {e}")))
}
