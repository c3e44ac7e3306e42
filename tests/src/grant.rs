//! "Nothing before the grant", for any capture and input backend: a wrapper that counts every use
//! of the backends, and the check that the agent touches neither before (or without) the user's
//! grant, and both once granted (so the count does count); and the same for the clipboard
//! ([`clipboard_nothing_before_the_grant`]), before consent and after the user takes it back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tether_agent::ShareConfig;
use tether_agent::clipboard::{ClipboardError, ClipboardProvider};
use tether_agent::screen::{
    CaptureError, InputError, InputProvider, InputSink, ScreenProvider, ScreenSource,
};
use tether_console::{ConsoleError, open_session};
use tether_proto::clipboard::Selection;
use tether_proto::screen::{DisplayInfo, InputEvent};
use tether_proto::{Scope, ScopeSet};

use crate::{TestAgent, TestRelay, WAIT};

/// Counts every use of a screen and an input backend.
#[derive(Debug)]
pub struct Counting {
    screen: Arc<dyn ScreenProvider>,
    input: Arc<dyn InputProvider>,
    screen_uses: Arc<AtomicUsize>,
    input_uses: Arc<AtomicUsize>,
}

impl ScreenProvider for Counting {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        self.screen_uses.fetch_add(1, Ordering::SeqCst);
        self.screen.displays()
    }

    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        self.screen_uses.fetch_add(1, Ordering::SeqCst);
        self.screen.open(index)
    }
}

impl InputProvider for Counting {
    fn open(&self) -> Result<Box<dyn InputSink>, InputError> {
        self.input_uses.fetch_add(1, Ordering::SeqCst);
        self.input.open()
    }
}

fn scopes(s: &str) -> ScopeSet {
    s.parse().expect("scopes")
}

/// The user grants inventory only while the technician asks for the screen and control: the
/// view, the display list and control are refused and neither backend is touched, before consent
/// or after. Then a user who grants view and control: both backends are used.
pub async fn nothing_before_the_grant(
    screen: Arc<dyn ScreenProvider>,
    input: Arc<dyn InputProvider>,
) {
    let relay = TestRelay::start().await;
    let (screen_uses, input_uses) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let uses = || {
        (
            screen_uses.load(Ordering::SeqCst),
            input_uses.load(Ordering::SeqCst),
        )
    };
    let spawn = |answer: &str| {
        let backend = Arc::new(Counting {
            screen: screen.clone(),
            input: input.clone(),
            screen_uses: screen_uses.clone(),
            input_uses: input_uses.clone(),
        });
        let mut config = ShareConfig::new(relay.target());
        config.screen = backend.clone();
        config.input = backend;
        TestAgent::spawn_with(config, Some(scopes(answer)))
    };

    let mut agent = spawn("inventory");
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("inventory,view,control"))
        .await
        .expect("the session opens");
    assert_eq!(uses(), (0, 0), "nothing before consent");
    let err = session.view(0).await.expect_err("view is not granted");
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::View)),
        "{err:?}"
    );
    let err = session.displays().await.expect_err("view is not granted");
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::View)),
        "{err:?}"
    );
    let err = session
        .control(0)
        .await
        .expect_err("control is not granted");
    assert!(
        matches!(err, ConsoleError::ScopeDenied(Scope::Control)),
        "{err:?}"
    );
    session.inventory().await.expect("inventory is granted");
    assert_eq!(uses(), (0, 0), "refused requests never touch the backends");
    session.end().await;
    let _ = tokio::time::timeout(WAIT, agent.task).await;

    // The same backends are used as soon as the grant says so (so the counters do count).
    let mut agent = spawn("view,control");
    let code = agent.code().await;
    let mut session = open_session(&relay.console(), code, scopes("view,control"))
        .await
        .expect("the session opens");
    let mut view = session.view(0).await.expect("view is granted");
    view.next_frame().await.expect("a frame");
    let mut control = session.control(0).await.expect("control is granted");
    control
        .send(&InputEvent::MouseMove { x: 10, y: 10 })
        .await
        .expect("the move is injected");
    let (s, i) = uses();
    assert!(
        s >= 1 && i >= 1,
        "the backends were used once granted: {s} screen, {i} input"
    );
    session.end().await;
    let _ = tokio::time::timeout(WAIT, agent.task).await;
}

/// Counts every use of a clipboard backend.
#[derive(Debug)]
pub struct CountingClipboard {
    inner: Arc<dyn ClipboardProvider>,
    uses: Arc<AtomicUsize>,
}

impl CountingClipboard {
    /// Counts the uses of `inner` in `uses`.
    pub fn new(inner: Arc<dyn ClipboardProvider>, uses: Arc<AtomicUsize>) -> Self {
        CountingClipboard { inner, uses }
    }
}

impl ClipboardProvider for CountingClipboard {
    fn get(&self, selection: Selection) -> Result<String, ClipboardError> {
        self.uses.fetch_add(1, Ordering::SeqCst);
        self.inner.get(selection)
    }

    fn set(&self, selection: Selection, text: String) -> Result<(), ClipboardError> {
        self.uses.fetch_add(1, Ordering::SeqCst);
        self.inner.set(selection, text)
    }
}

/// The clipboard before, after and without the grant, on any clipboard backend whose text
/// `read_back` reads independently: a request before consent is refused and the backend is
/// neither read nor written (`read_back` still gives `before`); once the user grants `clipboard`
/// both requests are served (so the count does count); after the user takes `clipboard` back, both
/// are refused at once and the backend is not touched again.
pub async fn clipboard_nothing_before_the_grant(
    clipboard: Arc<dyn ClipboardProvider>,
    before: &str,
    read_back: impl Fn() -> String,
) {
    use tether_agent::ui::{AgentEvent, UserCommand};
    use tether_proto::msg::Request;
    let relay = TestRelay::start().await;
    let uses = Arc::new(AtomicUsize::new(0));
    let mut config = ShareConfig::new(relay.target());
    config.clipboard = Arc::new(CountingClipboard::new(clipboard, uses.clone()));
    let mut agent = TestAgent::spawn_with(config, Some(scopes("clipboard")));
    let code = agent.code().await;
    let mut session = tether_console::pair_session(&relay.console(), code, scopes("clipboard"))
        .await
        .expect("paired");
    let get = Request::ClipboardGet {
        selection: Selection::Clipboard,
    };
    let set = Request::ClipboardSet {
        selection: Selection::Clipboard,
        text: "planted before consent".into(),
    };
    for req in [&get, &set] {
        let err = session
            .request(req)
            .await
            .expect_err("nothing before consent");
        assert!(
            matches!(err, ConsoleError::ScopeDenied(Scope::Clipboard)),
            "{err:?}"
        );
    }
    assert_eq!(uses.load(Ordering::SeqCst), 0, "refused before consent");
    assert_eq!(
        read_back(),
        before,
        "the clipboard is unchanged before consent"
    );

    session
        .ask_consent()
        .await
        .expect("the user allows clipboard");
    let text = tether_console::clipboard::get(&mut session, Selection::Clipboard)
        .await
        .expect("granted");
    assert_eq!(text, before);
    tether_console::clipboard::set(&mut session, Selection::Clipboard, "after consent")
        .await
        .expect("granted");
    assert_eq!(read_back(), "after consent");
    assert_eq!(
        uses.load(Ordering::SeqCst),
        2,
        "both requests used the backend"
    );

    agent
        .commands
        .send(UserCommand::Revoke(Scope::Clipboard))
        .await
        .expect("the session hears the user");
    agent
        .expect("clipboard taken back", |e| {
            matches!(
                e,
                AgentEvent::Revoked {
                    scope: Scope::Clipboard
                }
            )
        })
        .await;
    for req in [&get, &set] {
        let err = session.request(req).await.expect_err("taken back");
        assert!(
            matches!(err, ConsoleError::ScopeDenied(Scope::Clipboard)),
            "{err:?}"
        );
    }
    assert_eq!(uses.load(Ordering::SeqCst), 2, "not touched after revoking");
    assert_eq!(read_back(), "after consent", "unchanged after revoking");
    session.end().await;
    let _ = tokio::time::timeout(WAIT, agent.task).await;
}
