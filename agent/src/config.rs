//! Share mode's settings: the relay, IT's policy, the backends, and the step and consent limits.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tether_net::Trust;
use tether_net::client::RelayTarget;
use tether_proto::records::{MAX_REASON_CHARS, check_text};

use crate::clipboard::ClipboardProvider;
use crate::policy::Policy;
use crate::screen::{InputProvider, ScreenProvider};

/// How long the user has to answer the consent prompt before it counts as "no".
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long each pairing or request step may take before the peer is considered broken.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for [`share`].
#[derive(Debug, Clone)]
pub struct ShareConfig {
    /// The relay.
    pub relay: RelayTarget,
    /// See [`CONSENT_TIMEOUT`].
    pub consent_timeout: Duration,
    /// IT's rules (allowed organisations).
    pub policy: Policy,
    /// Where the local session log and known organisations live; `None` keeps nothing.
    pub state_dir: Option<PathBuf>,
    /// Screen capture backend (opened only after `view` is granted).
    pub screen: Arc<dyn ScreenProvider>,
    /// Input backend (opened only after `control` is granted).
    pub input: Arc<dyn InputProvider>,
    /// Clipboard backend (used only for a granted `clipboard` request), on the same display.
    pub clipboard: Arc<dyn ClipboardProvider>,
    /// Which backend `screen` and `input` are, when the command line chose them (the window says
    /// so, and that the portal's desktop dialog asks again after Tether's consent).
    pub backend: Option<crate::screen::backend::Backend>,
    /// Whether a region that plays video may go through the video codec (`--lossless` turns it
    /// off: every pixel exact, at many times the bytes).
    pub video: bool,
    /// Why the user asks for help, sent with every slot request so the technician sees it on
    /// claiming; check it with [`check_reason`] first.
    pub reason: Option<String>,
    /// After a session ends (other than by the user), show a new code and wait again, as
    /// `tether-agent share` does without `--once`. `false` (the default, and the window) returns
    /// after one session.
    pub again: bool,
    /// Where pushed files land and which folders may be listed and pulled.
    pub files: FilesConfig,
    /// Other nodes of the relay's cluster (`host:port`, trusted as `relay` is: a cluster CA): when
    /// the connection is lost while waiting, each reconnection tries the next node, and the user
    /// gets a new code from whichever answers. Empty (the default): the one relay. With any, the
    /// agent watches its node more closely ([`tether_net::transport::Liveness::WATCHFUL`]), so a
    /// node that dies is left within seconds.
    pub other_relays: Vec<String>,
}

/// File transfer's folders (`tether-agent share --files-dir`, `--files-root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// Where every pushed file lands (made when the first file arrives); by default
    /// `~/Downloads/Tether` of the user running the agent.
    pub landing: PathBuf,
    /// The folders the technician may list and pull from (by default the user's home); anything
    /// outside, or reached through a symbolic link, is refused.
    pub roots: Vec<PathBuf>,
}

impl FilesConfig {
    /// The defaults for the user running the agent (`$HOME`; `/nonexistent` without one, so
    /// nothing is shared by accident).
    pub fn for_user() -> Self {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map_or_else(|| PathBuf::from("/nonexistent"), PathBuf::from);
        FilesConfig {
            landing: home.join("Downloads").join("Tether"),
            roots: vec![home],
        }
    }
}

impl ShareConfig {
    /// Defaults for `relay`: no policy, no state kept.
    pub fn new(relay: RelayTarget) -> Self {
        let backend =
            crate::screen::backend::choose(&crate::screen::backend::SessionEnv::from_env());
        let (screen, input) = crate::screen::backend::providers(backend, None);
        ShareConfig {
            relay,
            consent_timeout: CONSENT_TIMEOUT,
            screen,
            input,
            clipboard: crate::clipboard::provider(backend),
            backend: None,
            video: true,
            policy: Policy::default(),
            state_dir: None,
            reason: None,
            again: false,
            files: FilesConfig::for_user(),
            other_relays: Vec::new(),
        }
    }

    /// The relay's identity as shown to the user.
    pub fn relay_identity(&self) -> String {
        match &self.relay.trust {
            Trust::Fingerprint(fp) => format!(
                "{} (certificate {}…)",
                self.relay.addr,
                &fp[..fp.len().min(16)]
            ),
            Trust::CaFile(path) => format!(
                "{} (verified by CA file {})",
                self.relay.addr,
                path.display()
            ),
        }
    }
}

/// Checks and cleans the reason a user gives with `share --reason`: at most
/// [`MAX_REASON_CHARS`] characters, control characters made harmless; `None` if nothing is left.
pub fn check_reason(reason: &str) -> Result<Option<String>, String> {
    let r = check_text("--reason", reason, MAX_REASON_CHARS, false).map_err(|e| e.to_string())?;
    Ok((!r.is_empty()).then_some(r))
}
