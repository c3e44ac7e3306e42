//! The one place the platform's screen and input backends are chosen. X11 (`scrap_x11`,
//! `x11_input`) is the only backend today; another platform's (Wayland) is one file beside them and
//! one line here, and this is where its `#[cfg]` or run-time check goes.

use std::sync::Arc;

use super::{InputProvider, ScrapScreen, ScreenProvider, X11Input};

/// This platform's capture and input backends on the session's own display (`DISPLAY`).
pub fn default_providers() -> (Arc<dyn ScreenProvider>, Arc<dyn InputProvider>) {
    (
        Arc::new(ScrapScreen::new(None)),
        Arc::new(X11Input::new(None)),
    )
}
