//! The agent window: the end user's front end (code, consent dialog, session banner, local log).
//!
//! - [`model`]: the state machine — which screen, what a click sends — tested without a display.
//! - [`layout`]: fixed positions of everything clickable (the UI tests click there).
//! - `app`: the eframe rendering, thin on top of the model.
//! - `not_configured`: the window shown when the agent does not know its relay.
//!
//! eframe owns the main thread. The session logic ([`crate::share`]) runs on a tokio runtime owned by
//! [`Backend`]; the window drains its events with `try_recv` each frame and sends commands with
//! `try_send`, through the same channels the terminal front end uses.

mod app;
pub mod layout;
pub mod model;
mod not_configured;

pub use not_configured::run as run_not_configured;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tether_proto::msg::EndReason;
use tokio::task::JoinSet;

use crate::share::{ShareConfig, share};
use crate::ui::{self, AgentEvent, UiHandle, UserCommand};

/// Why the window could not run.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The tokio runtime for the session could not be built.
    #[error("could not start the session runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The window could not be opened (no display, no OpenGL, ...).
    #[error("could not open the window: {0}")]
    Window(String),
}

/// What [`Backend::poll`] found since the last frame.
#[derive(Debug, Default)]
pub struct Polled {
    /// Events from the current share, in order.
    pub events: Vec<AgentEvent>,
    /// The current share stopped: its result, as [`ShareError`] text on failure.
    pub stopped: Option<Result<EndReason, String>>,
}

struct Running {
    generation: u64,
    ui: UiHandle,
}

/// Called from the session runtime whenever there is something new to show (an event, or the share
/// stopped): the window asks egui for a repaint, so it needs no polling timer.
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Runs [`share`] on a background runtime, one at a time, for the window.
pub struct Backend {
    rt: tokio::runtime::Runtime,
    config: ShareConfig,
    wake: Waker,
    current: Option<Running>,
    generation: u64,
    tasks: JoinSet<(u64, Result<EndReason, String>)>,
    /// The per-user agent of an enrolled computer: the service's socket, answered instead of
    /// sharing with a code ([`crate::desktop`]).
    desktop: Option<PathBuf>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("config", &self.config)
            .field("current", &self.current)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// A backend that will share with `config` each time [`Backend::start`] is called, calling
    /// `wake` whenever [`Backend::poll`] has something new.
    pub fn new(config: ShareConfig, wake: Waker) -> Result<Self, WindowError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tether-session")
            .enable_all()
            .build()?;
        Ok(Backend {
            rt,
            config,
            wake,
            current: None,
            generation: 0,
            tasks: JoinSet::new(),
            desktop: None,
        })
    }

    /// Answers the enrolled service at `socket` (sessions without a code) instead of sharing.
    pub fn for_desktop(mut self, socket: PathBuf) -> Self {
        self.desktop = Some(socket);
        self
    }

    /// Whether this window is the per-user agent of an enrolled computer.
    pub fn is_desktop(&self) -> bool {
        self.desktop.is_some()
    }

    /// Where the local session log lives, if anywhere.
    pub fn state_dir(&self) -> Option<&PathBuf> {
        self.config.state_dir.as_ref()
    }

    /// Starts sharing; a share already running is ended first (this is "New code").
    pub fn start(&mut self) {
        self.stop_current();
        self.generation += 1;
        let (link, mut inner) = ui::channels();
        // Events pass through a forwarder that wakes the window after each one.
        let (to_window, events) = tokio::sync::mpsc::channel(ui::QUEUE);
        let generation = self.generation;
        let config = self.config.clone();
        let wake = self.wake.clone();
        let desktop = self.desktop.clone();
        self.tasks.spawn_on(
            async move {
                let forward = async {
                    while let Some(ev) = inner.events.recv().await {
                        if to_window.send(ev).await.is_err() {
                            break;
                        }
                        wake();
                    }
                };
                // `share` drops its event sender when it returns, which ends the forwarder.
                let run = async move {
                    match desktop {
                        None => share(config, link).await.map_err(|e| e.to_string()),
                        Some(socket) => {
                            let served = async {
                                let d = crate::desktop::connect(&socket).await?;
                                crate::desktop::serve(d, config, link).await
                            };
                            served
                                .await
                                .map(|()| EndReason::UserEnded)
                                .map_err(|e| e.to_string())
                        }
                    }
                };
                let (result, ()) = tokio::join!(run, forward);
                wake();
                (generation, result)
            },
            self.rt.handle(),
        );
        self.current = Some(Running {
            generation,
            ui: UiHandle {
                events,
                commands: inner.commands,
            },
        });
    }

    /// Sends a command to the current share. A full queue or a finished share drops it: the
    /// session side treats a missing answer as "no" and a vanished front end as "end".
    pub fn send(&self, command: UserCommand) {
        if let Some(r) = &self.current {
            let _ = r.ui.commands.try_send(command);
        }
    }

    /// Ends the current share without waiting; its events and result are ignored from now on.
    fn stop_current(&mut self) {
        if let Some(r) = self.current.take() {
            // Dropping the handle also ends it (the session sees its front end gone).
            let _ = r.ui.commands.try_send(UserCommand::EndSession);
        }
    }

    /// Collects what happened since the last call, without blocking.
    pub fn poll(&mut self) -> Polled {
        let mut out = Polled::default();
        if let Some(r) = &mut self.current {
            // Empty or disconnected: nothing more this frame.
            while let Ok(ev) = r.ui.events.try_recv() {
                out.events.push(ev);
            }
        }
        while let Some(done) = self.tasks.try_join_next() {
            let (generation, result) = match done {
                Ok(x) => x,
                Err(e) => (self.generation, Err(e.to_string())),
            };
            if self.current.as_ref().map(|r| r.generation) == Some(generation) {
                self.current = None;
                out.stopped = Some(result);
            }
        }
        out
    }

    /// Ends whatever runs and waits (bounded) for the session to say goodbye to the technician.
    pub fn shutdown(mut self) {
        self.stop_current();
        let mut tasks = std::mem::take(&mut self.tasks);
        let _ = self.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(3), async {
                while tasks.join_next().await.is_some() {}
            })
            .await
        });
        self.rt.shutdown_timeout(Duration::from_secs(1));
    }
}

/// Opens the window and runs until the user closes it. Each event is also printed to standard output
/// as the terminal front end words it (the code included: it is the user's own screen), which is
/// what scripts and the UI tests read.
pub fn run(config: ShareConfig) -> Result<(), WindowError> {
    run_with(config, None)
}

/// The window as the per-user agent of an enrolled computer: it answers the service at `socket`
/// from the start (the consent question, the banner, unattended notices) instead of sharing with a
/// code.
pub fn run_desktop(config: ShareConfig, socket: PathBuf) -> Result<(), WindowError> {
    run_with(config, Some(socket))
}

fn run_with(config: ShareConfig, desktop: Option<PathBuf>) -> Result<(), WindowError> {
    // The egui context exists only once the window does; events before that need no repaint.
    let ctx = Arc::new(std::sync::OnceLock::<eframe::egui::Context>::new());
    let wake_ctx = ctx.clone();
    let screen_backend = config.backend;
    let mut backend = Backend::new(
        config,
        Arc::new(move || {
            if let Some(c) = wake_ctx.get() {
                c.request_repaint();
            }
        }),
    )?;
    if let Some(socket) = desktop {
        backend = backend.for_desktop(socket);
    }
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title(layout::TITLE)
            .with_inner_size(layout::SIZE)
            .with_min_inner_size(layout::SIZE)
            .with_position([0.0, 0.0])
            .with_resizable(false),
        ..Default::default()
    };
    let mut holder = Some(backend);
    let result = eframe::run_native(
        layout::TITLE,
        options,
        Box::new(move |cc| {
            let backend = holder.take().ok_or("the window was created twice")?;
            let _ = ctx.set(cc.egui_ctx.clone());
            let mut app = app::AgentApp::new(&cc.egui_ctx, backend);
            app.model.desktop_asks =
                screen_backend == Some(crate::screen::backend::Backend::Portal);
            app.model.backend = screen_backend.map(|b| b.describe().to_string());
            Ok(Box::new(app))
        }),
    );
    result.map_err(|e| WindowError::Window(e.to_string()))
}
