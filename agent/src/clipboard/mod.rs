//! The user's clipboard behind a trait, and the two clipboard requests that use it.
//!
//! # Layout
//! - [`ClipboardProvider`]: read or set a selection's text. Shared by every session, so
//!   `Send + Sync`; nothing calls it before the user grants `clipboard`, and the grant is checked
//!   on every request (`requests.rs`), so a scope taken back stops the next one at once.
//! - [`provider`]: the one place the backend is chosen, following the session's display backend
//!   (`screen::backend`): X11 reads and owns the X display's selections (`x11.rs`); wlroots
//!   compositors (sway, Hyprland, river, …) through `zwlr_data_control_manager_v1` (`wlroots.rs`);
//!   GNOME, KDE and other Wayland desktops (the portal and Mutter backends) answer every request
//!   with [`ClipboardError::Unsupported`], as they offer no clipboard to a program without a window.
//! - [`serve`]: one request: the text checked against the limit (again: the console's word is
//!   never trusted), the backend called off the async workers, the user told what was read or put
//!   ([`AgentEvent::Clipboard`]), the answer sent.

mod wlroots;
mod x11;

use std::fmt::Debug;
use std::sync::Arc;

use tether_net::sealed::{SealedError, SealedSend};
use tether_proto::clipboard::{self, MAX_CLIPBOARD_BYTES, Selection};
use tether_proto::msg::Response;
use tokio::sync::mpsc;

use crate::screen::backend::Backend;
use crate::ui::{AgentEvent, ClipboardUse};

pub use wlroots::WlrootsClipboard;
pub use x11::X11Clipboard;

/// Why the clipboard could not be read or set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipboardError {
    /// This desktop has no clipboard backend yet.
    #[error("clipboard is not supported on this desktop yet ({0})")]
    Unsupported(&'static str),
    /// The display server could not be reached, or refused.
    #[error("{0}")]
    Backend(String),
    /// The clipboard holds more text than one transfer carries.
    #[error(
        "the clipboard holds more than {MAX_CLIPBOARD_BYTES} bytes (1 MiB) of text, more than \
         Tether sends at once"
    )]
    TooLarge,
    /// What the technician sent is over the limit (checked again here).
    #[error(transparent)]
    Refused(#[from] clipboard::ClipboardError),
}

/// Reads and sets the user's clipboard.
pub trait ClipboardProvider: Send + Sync + Debug {
    /// The text on `selection`, at most [`MAX_CLIPBOARD_BYTES`]; empty when nothing is on it.
    fn get(&self, selection: Selection) -> Result<String, ClipboardError>;
    /// Puts `text` on `selection`; it stays there after the session, until the user copies
    /// something else.
    fn set(&self, selection: Selection, text: String) -> Result<(), ClipboardError>;
}

/// A desktop without a clipboard backend: every request fails, saying so.
#[derive(Debug, Clone, Copy)]
pub struct Unsupported(pub &'static str);

impl ClipboardProvider for Unsupported {
    fn get(&self, _: Selection) -> Result<String, ClipboardError> {
        Err(ClipboardError::Unsupported(self.0))
    }

    fn set(&self, _: Selection, _: String) -> Result<(), ClipboardError> {
        Err(ClipboardError::Unsupported(self.0))
    }
}

/// The clipboard backend for a session whose screen goes through `backend`, on the session's own
/// display.
pub fn provider(backend: Backend) -> Arc<dyn ClipboardProvider> {
    match backend {
        Backend::X11 => Arc::new(X11Clipboard::new(None)),
        Backend::Wlroots => Arc::new(WlrootsClipboard::new(None)),
        Backend::Portal => Arc::new(Unsupported("Wayland through the desktop portal")),
        Backend::Mutter => Arc::new(Unsupported("Wayland on GNOME")),
    }
}

/// What [`serve`] needs from the session.
pub(crate) struct ClipboardCtx<'a> {
    pub clipboard: &'a Arc<dyn ClipboardProvider>,
    pub events: &'a mpsc::Sender<AgentEvent>,
    /// Who asked ("name of org").
    pub technician: &'a str,
}

/// Serves a granted `ClipboardGet` (`text: None`) or `ClipboardSet` (`Some`).
pub(crate) async fn serve(
    selection: Selection,
    text: Option<String>,
    tx: &mut SealedSend,
    ctx: ClipboardCtx<'_>,
) -> Result<(), SealedError> {
    let backend = ctx.clipboard.clone();
    let response = match text {
        Some(text) => {
            if let Err(e) = clipboard::check_text(&text) {
                tracing::warn!(bytes = text.len(), "refusing clipboard text over the limit");
                return tx
                    .send(&Response::Failed {
                        message: e.to_string(),
                    })
                    .await;
            }
            let shown = clipboard::preview(&text);
            let (chars, bytes) = (text.chars().count(), text.len());
            let work = tokio::task::spawn_blocking(move || backend.set(selection, text)).await;
            match flatten(work) {
                Ok(()) => {
                    tell(&ctx, ClipboardUse::Put, selection, chars, shown).await;
                    Response::ClipboardStored {
                        selection,
                        bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
                    }
                }
                Err(e) => failed(e),
            }
        }
        None => {
            let work = tokio::task::spawn_blocking(move || backend.get(selection)).await;
            match flatten(work) {
                // The backend keeps to the limit; checked here too, since a backend is code too.
                Ok(text) if clipboard::check_text(&text).is_err() => {
                    failed(ClipboardError::TooLarge)
                }
                Ok(text) => {
                    let shown = clipboard::preview(&text);
                    tell(
                        &ctx,
                        ClipboardUse::Read,
                        selection,
                        text.chars().count(),
                        shown,
                    )
                    .await;
                    Response::ClipboardText { selection, text }
                }
                Err(e) => failed(e),
            }
        }
    };
    tx.send(&response).await
}

fn flatten<T>(
    joined: Result<Result<T, ClipboardError>, tokio::task::JoinError>,
) -> Result<T, ClipboardError> {
    joined.unwrap_or_else(|e| {
        Err(ClipboardError::Backend(format!(
            "the clipboard task failed: {e}"
        )))
    })
}

fn failed(e: ClipboardError) -> Response {
    tracing::warn!(error = %e, "clipboard request failed");
    Response::Failed {
        message: e.to_string(),
    }
}

async fn tell(
    ctx: &ClipboardCtx<'_>,
    used: ClipboardUse,
    selection: Selection,
    chars: usize,
    preview: String,
) {
    let _ = ctx
        .events
        .send(AgentEvent::Clipboard {
            technician: ctx.technician.to_string(),
            used,
            selection,
            chars,
            preview,
        })
        .await;
}
