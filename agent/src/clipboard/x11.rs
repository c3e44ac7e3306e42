//! The X11 clipboard: the selections of the X display the agent shares, through
//! `tether-x11-selection` (x11rb). A read converts the selection to `UTF8_STRING` (then `STRING`,
//! then `TEXT`, reading `INCR` transfers); a set owns the selection with a window of its own and a
//! thread serves the text to every program that pastes, until the user copies something else
//! (`SelectionClear`) or the agent exits.

use tether_proto::clipboard::{MAX_CLIPBOARD_BYTES, Selection};
use tether_x11_selection::{SelectionError, X11Selections};

use super::{ClipboardError, ClipboardProvider};

/// The clipboard of the X server `display` (`None`: `$DISPLAY`).
#[derive(Debug, Default)]
pub struct X11Clipboard {
    selections: X11Selections,
}

impl X11Clipboard {
    /// The selections of the X display `display`, or `$DISPLAY` when `None`.
    pub fn new(display: Option<String>) -> Self {
        X11Clipboard {
            selections: X11Selections::new(display),
        }
    }
}

fn backend_err(e: SelectionError) -> ClipboardError {
    match e {
        SelectionError::TooLarge { .. } => ClipboardError::TooLarge,
        other => ClipboardError::Backend(other.to_string()),
    }
}

impl ClipboardProvider for X11Clipboard {
    fn get(&self, selection: Selection) -> Result<String, ClipboardError> {
        self.selections
            .get(selection, MAX_CLIPBOARD_BYTES)
            .map_err(backend_err)
    }

    fn set(&self, selection: Selection, text: String) -> Result<(), ClipboardError> {
        self.selections.set(selection, text).map_err(backend_err)
    }
}
