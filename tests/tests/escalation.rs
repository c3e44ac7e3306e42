//! Tiers and escalation, end to end on a real relay: a technician invites a colleague (by name or
//! tier) into the session, or hands it over. The user is asked about the invitation and again
//! about the colleague's scopes; the colleague never inherits the first technician's grant. Every
//! invitation and join is in the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tether_agent::ShareConfig;
use tether_agent::screen::{CaptureError, ScrapScreen, ScreenProvider, ScreenSource, X11Input};
use tether_agent::ui::{AgentEvent, UserCommand};
use tether_console::{ConsoleConfig, ConsoleError, Session, open_session};
use tether_proto::msg::{EndReason, Invitee, TechnicianRole, Tier};
use tether_proto::screen::DisplayInfo;
use tether_proto::{Scope, ScopeSet, SessionCode};
use tether_relay::technicians::Technicians;
use tether_tests::{TestAgent, TestRelay, WAIT, Xvfb};

/// Counts how often the real capture backend opens a display.
#[derive(Debug)]
struct CountingOpens {
    inner: ScrapScreen,
    opens: std::sync::atomic::AtomicUsize,
}

impl ScreenProvider for CountingOpens {
    fn displays(&self) -> Result<Vec<DisplayInfo>, CaptureError> {
        self.inner.displays()
    }
    fn open(&self, index: u32) -> Result<Box<dyn ScreenSource>, CaptureError> {
        self.opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.open(index)
    }
}

fn scopes(s: &str) -> ScopeSet {
    s.parse().unwrap()
}

/// Registers a colleague in Ada's organisation and returns their console config.
fn colleague(relay: &TestRelay, name: &str, role: TechnicianRole, tier: Tier) -> ConsoleConfig {
    let token = Technicians::new(relay.dir.path())
        .add_full(name, "Acme IT", role, tier, None)
        .unwrap();
    ConsoleConfig {
        relay: relay.target(),
        token,
    }
}

/// The user answers the next consent prompt with `grant`; returns who asked and for what.
async fn user_consents(agent: &mut TestAgent, grant: ScopeSet) -> (String, ScopeSet) {
    let asked = agent
        .expect("a consent prompt", |e| {
            matches!(e, AgentEvent::ConsentRequested { .. })
        })
        .await;
    agent
        .commands
        .send(UserCommand::Consent(grant))
        .await
        .unwrap();
    match asked {
        AgentEvent::ConsentRequested {
            technician, scopes, ..
        } => (technician.name, scopes),
        _ => unreachable!(),
    }
}

/// The user answers the next invitation prompt; returns what it said about the invitee.
async fn user_answers_invite(agent: &mut TestAgent, yes: bool) -> (String, bool) {
    let asked = agent
        .expect("an invitation prompt", |e| {
            matches!(e, AgentEvent::InviteRequested { .. })
        })
        .await;
    agent
        .commands
        .send(UserCommand::AnswerInvite(yes))
        .await
        .unwrap();
    match asked {
        AgentEvent::InviteRequested {
            invitee, handover, ..
        } => (invitee, handover),
        _ => unreachable!(),
    }
}

/// Ada's session with an agent whose user answers by hand, granting her `grant`.
async fn first_session(
    relay: &TestRelay,
    config: ShareConfig,
    grant: ScopeSet,
) -> (TestAgent, Session) {
    let mut agent = TestAgent::spawn_with(config, None);
    let code = agent.code().await;
    let console = relay.console();
    let (session, _) = tokio::join!(
        open_session(&console, code, grant),
        user_consents(&mut agent, grant)
    );
    (agent, session.unwrap())
}

async fn invite(
    agent: &mut TestAgent,
    session: &mut Session,
    invitee: Invitee,
    handover: bool,
    yes: bool,
) -> (Result<SessionCode, ConsoleError>, String) {
    let (code, (shown, _)) = tokio::join!(
        session.invite(invitee, handover),
        user_answers_invite(agent, yes)
    );
    (code, shown)
}

fn audit_events(relay: &TestRelay, event: &str) -> Vec<serde_json::Value> {
    relay
        .audit()
        .into_iter()
        .filter(|r| r["event"] == event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l1_invites_an_l2_who_gets_only_view_and_sees_frames_but_cannot_control() {
    let x = Xvfb::start(161);
    let relay = TestRelay::start().await;
    let grace = colleague(&relay, "Grace Hopper", TechnicianRole::Technician, Tier::L2);
    let mut config = ShareConfig::new(relay.target());
    let capture = Arc::new(CountingOpens {
        inner: ScrapScreen::new(Some(x.display.clone())),
        opens: Default::default(),
    });
    config.screen = capture.clone();
    config.input = Arc::new(X11Input::new(Some(x.display.clone())));
    let (mut agent, mut ada) =
        first_session(&relay, config, scopes("inventory,view,control")).await;

    let (code, shown) = invite(
        &mut agent,
        &mut ada,
        Invitee::Technician("Grace Hopper".into()),
        false,
        true,
    )
    .await;
    assert_eq!(
        shown, "Grace Hopper (L2) of Acme IT",
        "the user sees who joins"
    );
    let code = code.unwrap();

    // Grace asks for view and control; the user allows view only.
    let (grace_session, (who, asked)) = tokio::join!(
        open_session(&grace, code, scopes("view,control")),
        user_consents(&mut agent, scopes("view"))
    );
    let mut grace_session = grace_session.unwrap();
    assert_eq!(
        (who.as_str(), asked),
        ("Grace Hopper", scopes("view,control"))
    );
    assert_eq!(
        grace_session.granted,
        scopes("view"),
        "nothing of Ada's grant carried over"
    );
    let mut view = grace_session.view(0).await.unwrap();
    view.next_frame().await.unwrap();
    assert_eq!(
        (view.framebuffer.width, view.framebuffer.height),
        (1920, 1080)
    );
    let refused = grace_session.control(0).await.unwrap_err();
    assert!(
        matches!(refused, ConsoleError::ScopeDenied(Scope::Control)),
        "{refused}"
    );
    // Both consoles view at once, and Ada's session is unaffected.
    let mut ada_view = ada.view(0).await.unwrap();
    ada_view.next_frame().await.unwrap();
    assert_eq!(
        capture.opens.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "two viewers, one capture of the display"
    );
    ada.inventory().await.unwrap();

    let invited = audit_events(&relay, "invited");
    assert_eq!(invited.len(), 1, "{invited:?}");
    assert_eq!(invited[0]["invitee"], "Grace Hopper");
    let joined = audit_events(&relay, "joined");
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert_eq!(joined[0]["technician"], "Grace Hopper");
    assert_eq!(joined[0]["invited_by"], "Ada Lovelace");
    assert_eq!(joined[0]["parent"], invited[0]["session"]);
    view.close().await;
    ada_view.close().await;
    grace_session.end().await;
    ada.end().await;
    drop(x);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_to_a_tier_closes_the_first_technicians_session_and_the_second_continues() {
    let relay = TestRelay::start().await;
    let linus = colleague(&relay, "Linus", TechnicianRole::Technician, Tier::L3);
    let (mut agent, mut ada) = first_session(
        &relay,
        ShareConfig::new(relay.target()),
        scopes("inventory"),
    )
    .await;

    let (code, shown) = invite(&mut agent, &mut ada, Invitee::Tier(Tier::L2), true, true).await;
    assert_eq!(shown, "a colleague of the next tier");
    // Linus (L3) sees the L2 queue's invitation; Ada (L1) does not.
    let waiting = tether_console::session::invitations(&linus).await.unwrap();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(
        (
            waiting[0].by.as_str(),
            &waiting[0].invitee,
            waiting[0].handover
        ),
        ("Ada Lovelace", &Invitee::Tier(Tier::L2), true)
    );
    assert!(
        tether_console::session::invitations(&relay.console())
            .await
            .unwrap()
            .is_empty()
    );
    let (linus_session, _) = tokio::join!(
        open_session(&linus, code.unwrap(), scopes("inventory,diagnostics")),
        user_consents(&mut agent, scopes("inventory,diagnostics"))
    );
    let mut linus_session = linus_session.unwrap();

    // Ada's session ends as handed over; her streams are closed.
    let ended = tokio::time::timeout(WAIT, ada.ended()).await.unwrap();
    assert_eq!(ended, EndReason::HandedOver);
    assert!(ada.inventory().await.is_err(), "Ada's session is over");
    agent
        .expect("the first technician leaving", |e| {
            matches!(
                e,
                AgentEvent::TechnicianLeft {
                    reason: EndReason::HandedOver,
                    ..
                }
            )
        })
        .await;
    assert!(
        !agent.saw(|e| matches!(e, AgentEvent::Ended { .. })),
        "the session goes on for the user"
    );
    // Linus carries on, with what the user granted him.
    let inv = linus_session.inventory().await.unwrap();
    assert!(!inv.hardware.system.hostname.is_empty());
    let linus_record = linus_session.record;
    linus_session.end().await;
    let end = tokio::time::timeout(WAIT, &mut agent.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(end, EndReason::TechnicianEnded);
    let reports: Vec<_> = audit_events(&relay, "agent_report")
        .into_iter()
        .filter(|r| r["report"] == "handed_over")
        .collect();
    assert_eq!(reports.len(), 1);
    assert_eq!(audit_events(&relay, "joined")[0]["technician"], "Linus");
    // Ada's session record lists both technicians involved.
    let record = tether_console::records::record(
        &relay.console(),
        tether_proto::records::RecordQuery::Show {
            id: ada.record.expect("the session has a record"),
        },
    )
    .await
    .unwrap();
    assert_eq!(record.summary.technicians, ["Ada Lovelace", "Linus"]);
    // Issue 17 item 20: the colleague's session is part of that record, not one of its own: one
    // record, with what the user granted either of them, closed when the last one left; and the
    // audit's end of each session names the record.
    assert_eq!(linus_record, ada.record, "one record for the session");
    assert_eq!(
        record.scopes_granted,
        scopes("inventory,diagnostics"),
        "both grants"
    );
    // The relay closes the record a moment after the last session's end.
    let start = std::time::Instant::now();
    let closed = loop {
        let r = tether_console::records::record(
            &relay.console(),
            tether_proto::records::RecordQuery::Show {
                id: ada.record.unwrap(),
            },
        )
        .await
        .unwrap();
        if r.ended_unix.is_some() || start.elapsed() > WAIT {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(closed.ended_unix.is_some(), "closed when the last one left");
    let all = tether_console::records::list(
        &relay.console(),
        tether_proto::records::RecordQuery::List { limit: 50 },
    )
    .await
    .unwrap();
    assert_eq!(
        all.len(),
        1,
        "no separate record for the colleague: {all:?}"
    );
    let ends = audit_events(&relay, "session_ended");
    assert_eq!(ends.len(), 2, "{ends:?}");
    for e in &ends {
        assert_eq!(e["record"], serde_json::json!(ada.record), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_unknown_and_overreaching_invitations_get_clear_errors_and_the_session_goes_on() {
    let relay = TestRelay::start().await;
    let vic = colleague(&relay, "Vic", TechnicianRole::Viewer, Tier::L2);
    colleague(&relay, "Grace Hopper", TechnicianRole::Technician, Tier::L2);
    let (mut agent, mut ada) = first_session(
        &relay,
        ShareConfig::new(relay.target()),
        scopes("inventory"),
    )
    .await;

    // The user says no.
    let (refused, _) = invite(
        &mut agent,
        &mut ada,
        Invitee::Technician("Grace Hopper".into()),
        false,
        false,
    )
    .await;
    let e = refused.unwrap_err();
    assert!(
        matches!(&e, ConsoleError::Invite(r) if r.contains("said no")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 8);
    ada.inventory().await.unwrap();

    // Nobody of that name: the relay says so, and the user is never bothered.
    let unknown = ada
        .invite(Invitee::Technician("Mallory".into()), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown, ConsoleError::Invite(r) if r.contains("no active technician named \"Mallory\"")),
        "{unknown}"
    );
    // Nobody at L3 in Acme IT.
    let nobody = ada
        .invite(Invitee::Tier(Tier::L3), false)
        .await
        .unwrap_err();
    assert!(
        matches!(&nobody, ConsoleError::Invite(r) if r.contains("nobody at L3")),
        "{nobody}"
    );
    assert_eq!(
        agent
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, AgentEvent::InviteRequested { .. }))
            .count(),
        1
    );
    ada.inventory().await.unwrap();

    // A viewer invited by name tries to escalate into control: the relay refuses the claim.
    let (code, _) = invite(
        &mut agent,
        &mut ada,
        Invitee::Technician("Vic".into()),
        false,
        true,
    )
    .await;
    let err = open_session(&vic, code.unwrap(), scopes("view,control"))
        .await
        .unwrap_err();
    assert!(matches!(err, ConsoleError::Forbidden(_)), "{err}");
    assert_eq!(err.exit_code(), 5);

    // Someone else than the invitee cannot use an invitation's code.
    let (code, _) = invite(
        &mut agent,
        &mut ada,
        Invitee::Technician("Grace Hopper".into()),
        false,
        true,
    )
    .await;
    let err = open_session(&relay.console(), code.unwrap(), scopes("inventory"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConsoleError::Forbidden(m) if m.contains("invited technician")),
        "{err}"
    );
    // Ada's session went on through all of it.
    ada.inventory().await.unwrap();
    assert!(audit_events(&relay, "joined").is_empty());
    ada.end().await;
}
