//! The one place the screen and input backends are chosen: from the desktop session the agent runs
//! in ([`SessionEnv`], read once), or as the user (or IT) says with `--backend`.
//!
//! | session | backend |
//! |---|---|
//! | X11 (`XDG_SESSION_TYPE=x11`, or only `DISPLAY`) | `x11`: scrap capture, XTEST input |
//! | Wayland on sway, Hyprland, river, Wayfire, labwc (wlroots) | `wlroots`: screencopy, virtual pointer and keyboard (no dialog) |
//! | Wayland on GNOME, KDE or anything else | `portal`: the desktop's ScreenCast and RemoteDesktop portal (its own dialog) |
//! | GNOME's Mutter APIs, only when asked (`--backend mutter`) | `mutter`: `org.gnome.Mutter.ScreenCast`/`RemoteDesktop` (no dialog) |
//!
//! A Wayland session with `DISPLAY` set too (Xwayland) is still Wayland: X11 capture there sees
//! only the X clients.

use std::path::Path;
use std::sync::Arc;

use super::{
    InputProvider, MutterDesktop, PortalDesktop, ScrapScreen, ScreenProvider, WlrootsInput,
    WlrootsScreen, X11Input,
};

/// Where the portal's restore token is kept, in the agent's data directory.
pub const PORTAL_TOKEN_FILE: &str = "portal-restore-token";

/// A capture and input backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// X11: scrap and XTEST.
    X11,
    /// The desktop portal (GNOME, KDE, others).
    Portal,
    /// wlroots compositors' own protocols.
    Wlroots,
    /// GNOME's Mutter D-Bus APIs.
    Mutter,
}

impl Backend {
    /// Every backend, as named on the command line.
    pub const ALL: [Backend; 4] = [
        Backend::X11,
        Backend::Portal,
        Backend::Wlroots,
        Backend::Mutter,
    ];

    /// Its name on the command line and in `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::X11 => "x11",
            Backend::Portal => "portal",
            Backend::Wlroots => "wlroots",
            Backend::Mutter => "mutter",
        }
    }

    /// What it is, in words for the user.
    pub fn describe(self) -> &'static str {
        match self {
            Backend::X11 => "the X11 display server",
            Backend::Portal => "your desktop's screen-sharing portal, which asks you too",
            Backend::Wlroots => "your compositor's screen-copy and virtual-input protocols",
            Backend::Mutter => "GNOME's screen-cast and remote-desktop service",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown backend {s:?}: use x11, portal, wlroots or mutter"))
    }
}

/// What the environment says about the desktop session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionEnv {
    /// `XDG_SESSION_TYPE`.
    pub session_type: Option<String>,
    /// `WAYLAND_DISPLAY`.
    pub wayland_display: Option<String>,
    /// `DISPLAY`.
    pub display: Option<String>,
    /// `XDG_CURRENT_DESKTOP` (a colon-separated list).
    pub current_desktop: Option<String>,
}

impl SessionEnv {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        SessionEnv {
            session_type: var("XDG_SESSION_TYPE"),
            wayland_display: var("WAYLAND_DISPLAY"),
            display: var("DISPLAY"),
            current_desktop: var("XDG_CURRENT_DESKTOP"),
        }
    }

    fn wayland(&self) -> bool {
        match self.session_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("wayland") => true,
            Some(t) if t.eq_ignore_ascii_case("x11") => false,
            _ => self.wayland_display.is_some(),
        }
    }

    fn desktop_is(&self, names: &[&str]) -> bool {
        self.current_desktop
            .as_deref()
            .unwrap_or("")
            .split(':')
            .any(|d| names.iter().any(|n| d.eq_ignore_ascii_case(n)))
    }
}

/// The backend for a session.
pub fn choose(env: &SessionEnv) -> Backend {
    if !env.wayland() {
        return Backend::X11;
    }
    if env.desktop_is(&["sway", "Hyprland", "river", "Wayfire", "labwc", "wlroots"]) {
        Backend::Wlroots
    } else {
        Backend::Portal
    }
}

/// The capture and input backends of `backend`, on the session's own display; the portal keeps its
/// restore token in `data_dir`.
pub fn providers(
    backend: Backend,
    data_dir: Option<&Path>,
) -> (Arc<dyn ScreenProvider>, Arc<dyn InputProvider>) {
    match backend {
        Backend::X11 => (
            Arc::new(ScrapScreen::new(None)),
            Arc::new(X11Input::new(None)),
        ),
        Backend::Wlroots => (
            Arc::new(WlrootsScreen::new(None)),
            Arc::new(WlrootsInput::new(None)),
        ),
        Backend::Mutter => {
            let m = Arc::new(MutterDesktop::new(None, None));
            (m.clone(), m)
        }
        Backend::Portal => {
            let p = Arc::new(PortalDesktop::new(
                data_dir.map(|d| d.join(PORTAL_TOKEN_FILE)),
            ));
            (p.clone(), p)
        }
    }
}

/// This session's capture and input backends, chosen from the environment.
pub fn default_providers() -> (Arc<dyn ScreenProvider>, Arc<dyn InputProvider>) {
    providers(choose(&SessionEnv::from_env()), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(
        session_type: Option<&str>,
        wayland: bool,
        display: bool,
        desktop: Option<&str>,
    ) -> SessionEnv {
        SessionEnv {
            session_type: session_type.map(str::to_string),
            wayland_display: wayland.then(|| "wayland-0".to_string()),
            display: display.then(|| ":0".to_string()),
            current_desktop: desktop.map(str::to_string),
        }
    }

    #[test]
    fn the_session_picks_the_backend() {
        assert_eq!(
            choose(&env(Some("x11"), false, true, Some("GNOME"))),
            Backend::X11
        );
        assert_eq!(choose(&env(None, false, true, None)), Backend::X11);
        assert_eq!(choose(&env(None, false, false, None)), Backend::X11);
        assert_eq!(
            choose(&env(Some("wayland"), true, true, Some("ubuntu:GNOME"))),
            Backend::Portal
        );
        assert_eq!(
            choose(&env(Some("wayland"), true, false, Some("KDE"))),
            Backend::Portal
        );
        assert_eq!(
            choose(&env(Some("wayland"), true, false, Some("sway"))),
            Backend::Wlroots
        );
        assert_eq!(
            choose(&env(None, true, false, Some("Hyprland"))),
            Backend::Wlroots
        );
        assert_eq!(
            choose(&env(Some("wayland"), true, false, None)),
            Backend::Portal
        );
        // An X11 session type wins over a stray WAYLAND_DISPLAY.
        assert_eq!(
            choose(&env(Some("x11"), true, true, Some("sway"))),
            Backend::X11
        );
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for b in Backend::ALL {
            assert_eq!(b.as_str().parse::<Backend>(), Ok(b));
        }
        assert_eq!("Portal".parse::<Backend>(), Ok(Backend::Portal));
        assert!(
            "vnc"
                .parse::<Backend>()
                .unwrap_err()
                .contains("x11, portal, wlroots or mutter")
        );
    }
}
