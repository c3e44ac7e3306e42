//! A technician's session with one agent.
//!
//! # Flow
//! claim the slot (token; a relay cluster's node may send the console once to the node that holds
//! the code) → SPAKE2 pairing with the secret on stream 0 → (chat both ways from here
//! on) → sealed `ConsentRequest` → `ConsentDecision` → one new stream per request (`StreamOpen{n}`,
//! then sealed `Request` → `Response`; any time after the decision, sealed `AskMore` →
//! `MoreDecision` asks the user for more) → sealed `End`. A task reads stream 0 for the whole session
//! and sorts what arrives: decisions, chat lines, and the agent's `Ended`. An answer that fails to
//! open ends the session: the console sends `ProtocolError` on stream 0 instead of `End`.

use std::time::Duration;
use tracing::Instrument;

use tether_net::Trust;
use tether_net::client::{self, RelayConnection, RelayTarget};
use tether_net::e2e::{self, E2eLink};
use tether_net::framed::{self, FrameError};
use tether_net::path::Direct;
use tether_net::sealed::{SealedError, SealedRecv, SealedSend, SealedStream};
use tether_proto::chat::ChatText;
use tether_proto::diag::{DiagReport, Probe};
use tether_proto::forward::RouteToken;
use tether_proto::inventory::Inventory;
use tether_proto::msg::{
    AgentToConsole, ConsoleToAgent, ConsoleToRelay, EndReason, Invitee, MoreOutcome, NodeAddress,
    OpenInvitation, RelayToConsole, Request, Response, Role, StreamOpen, TechnicianIdentity, close,
};
use tether_proto::pairing::{Pairing, PairingMsg, Side};
use tether_proto::records::{MAX_REASON_CHARS, truncate_text};
use tether_proto::seal::{SealError, SessionKeys};
use tether_proto::text::display_safe;
use tether_proto::{ScopeSet, SessionCode};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::error::ConsoleError;

/// How long one step (pairing message, request) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for the user's consent: the agent's own timeout plus a margin.
pub const CONSENT_WAIT: Duration = Duration::from_secs(75);

/// What the console needs to reach agents.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// The relay.
    pub relay: RelayTarget,
    /// The technician token.
    pub token: String,
}

/// The span of one relay connection: everything logged while it is open carries the relay's
/// address and what the connection is for.
pub(crate) fn connection_span(config: &ConsoleConfig, purpose: &'static str) -> tracing::Span {
    tracing::info_span!("connection", relay = %config.relay.addr, purpose)
}

/// A paired session; requests work once the user has granted their scope.
#[derive(Debug)]
pub struct Session {
    relay: RelayConnection,
    /// The session's end-to-end connection to the agent: every request stream runs on it.
    e2e: E2eLink,
    /// The session's span (inside its connection's): `session` is the relay's record id, once the
    /// claim is accepted. Stream 0's reader and every request log inside it.
    span: tracing::Span,
    keys: SessionKeys,
    tx0: SealedSend,
    /// Stream 0's reader, which sorts the agent's messages into the channels below.
    reader: JoinSet<()>,
    decisions: mpsc::Receiver<ScopeSet>,
    /// Answers to [`Session::ask_more`] (one at a time).
    more: mpsc::Receiver<MoreAnswer>,
    chat: mpsc::Receiver<ChatText>,
    invites: mpsc::Receiver<Result<String, String>>,
    ended: watch::Receiver<Option<EndReason>>,
    /// What the user grants right now: the decision, then any change the user made (Stop control,
    /// or allowing more when asked).
    grant: watch::Receiver<ScopeSet>,
    /// Set when a frame from the agent failed to open on a request stream: the session is over.
    broken: Option<EndReason>,
    next_stream: u32,
    /// The scopes claimed, and asked for by [`Session::ask_consent`].
    pub asked: ScopeSet,
    /// Who the relay says we are (what the user was shown).
    pub technician: TechnicianIdentity,
    /// What the user granted (empty until [`Session::ask_consent`]); grows with an allowed
    /// [`Session::ask_more`]. [`Session::grant`] also follows Stop control.
    pub granted: ScopeSet,
    /// The verification string the user's screen shows too.
    pub verification: String,
    /// Why the user asked for help (`tether-agent share --reason`), cleaned; `None` if they gave none.
    pub reason: Option<String>,
    /// This session's record on the relay (`tether-console sessions show ID`).
    pub record: Option<u64>,
    /// For posting to the record over a connection of its own.
    pub(crate) config: ConsoleConfig,
}

/// How many chat lines from the user wait unread before newer ones are dropped.
const CHAT_QUEUE: usize = 64;

/// Answers to asks for more kept unread: one is pending at a time, and a second ask is answered
/// at once ([`MoreOutcome::Busy`]), so two can be in flight.
const MORE_QUEUE: usize = 2;

/// The agent's answer to [`Session::ask_more`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoreAnswer {
    /// The whole grant from now on (unchanged unless the user allowed something).
    pub granted: ScopeSet,
    /// How the ask ended.
    pub outcome: MoreOutcome,
}

impl MoreAnswer {
    /// What it says about `asked`, in words for the technician: what was allowed, or why not.
    pub fn words(&self, before: ScopeSet, asked: ScopeSet) -> String {
        let added = self.granted.difference(before).intersection(asked);
        match self.outcome {
            MoreOutcome::Answered if !added.is_empty() => {
                format!("the user allowed {added}; now allowed: {}", self.granted)
            }
            MoreOutcome::Answered => {
                format!(
                    "the user said no to {asked}; still allowed: {}",
                    self.granted
                )
            }
            other => format!("not asked ({other}); still allowed: {}", self.granted),
        }
    }
}

/// Where stream 0's reader sorts the agent's messages: decisions, chat lines, invitation answers,
/// and the agent's last word.
struct Stream0Out {
    decisions: mpsc::Sender<ScopeSet>,
    more: mpsc::Sender<MoreAnswer>,
    chat: mpsc::Sender<ChatText>,
    invites: mpsc::Sender<Result<String, String>>,
    ended: watch::Sender<Option<EndReason>>,
    grant: watch::Sender<ScopeSet>,
}

async fn read_stream0(mut rx0: SealedRecv, out: Stream0Out) {
    let Stream0Out {
        decisions,
        more,
        chat,
        invites,
        ended,
        grant,
    } = out;
    let reason = loop {
        match rx0.recv::<AgentToConsole>().await {
            Ok(AgentToConsole::ConsentDecision { granted }) => {
                grant.send_replace(granted);
                let _ = decisions.try_send(granted);
            }
            // Never more than was granted: the agent enforces it anyway, the console just shows it.
            Ok(AgentToConsole::GrantChanged { granted }) => {
                grant.send_modify(|g| *g = g.intersection(granted));
            }
            // Only an answer to our ask grows the grant (the agent enforces it either way).
            Ok(AgentToConsole::MoreDecision { granted, outcome }) => {
                grant.send_replace(granted);
                let _ = more.try_send(MoreAnswer { granted, outcome });
            }
            // Checked again here: a bad line is dropped and the session goes on.
            Ok(AgentToConsole::Chat { text }) => match ChatText::new(&text) {
                Ok(text) => {
                    if chat.try_send(text).is_err() {
                        tracing::warn!("chat line dropped: {CHAT_QUEUE} lines are waiting unread");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "dropped a chat line from the user"),
            },
            Ok(AgentToConsole::InviteCode { code }) => {
                let _ = invites.try_send(Ok(code));
            }
            Ok(AgentToConsole::InviteFailed { reason }) => {
                let _ = invites.try_send(Err(reason));
            }
            Ok(AgentToConsole::Ended { reason }) => break reason,
            Err(SealedError::Seal(_) | SealedError::Frame(FrameError::Codec(_))) => {
                break EndReason::ProtocolError("a session frame failed authentication".into());
            }
            Err(_) => break EndReason::ConnectionLost,
        }
    };
    let _ = ended.send(Some(reason));
}

/// Connection statistics for a session's end-to-end connection, usable from other tasks.
#[derive(Debug, Clone)]
pub struct Link(quinn::Connection, watch::Receiver<tether_proto::path::Path>);

impl Link {
    /// UDP bytes sent on the QUIC connection so far (everything, on the wire).
    pub fn bytes_sent(&self) -> u64 {
        self.0.stats().udp_tx.bytes
    }

    /// Bytes received on the QUIC connection so far (everything, on the wire).
    pub fn bytes_received(&self) -> u64 {
        self.0.stats().udp_rx.bytes
    }

    /// UDP datagrams received on the QUIC connection so far.
    pub fn datagrams_received(&self) -> u64 {
        self.0.stats().udp_rx.datagrams
    }

    /// The current round-trip time to the agent (the end-to-end connection, relayed or direct).
    pub fn rtt(&self) -> Duration {
        self.0.rtt()
    }

    /// The path the end-to-end packets take now.
    pub fn path(&self) -> tether_proto::path::Path {
        *self.1.borrow()
    }
}

impl From<FrameError> for ConsoleError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Codec(c) => ConsoleError::Protocol(c.to_string()),
            _ => ConsoleError::Ended(EndReason::ConnectionLost),
        }
    }
}

impl From<SealedError> for ConsoleError {
    fn from(e: SealedError) -> Self {
        match e {
            SealedError::Seal(SealError::Tampered) => {
                ConsoleError::Broken("a session frame failed authentication".into())
            }
            SealedError::Seal(e) => ConsoleError::Broken(e.to_string()),
            SealedError::Frame(FrameError::Codec(c)) => ConsoleError::Broken(c.to_string()),
            SealedError::Frame(FrameError::Truncated) => {
                ConsoleError::Broken("a session stream ended mid-frame".into())
            }
            SealedError::Frame(f) => f.into(),
        }
    }
}

pub(crate) async fn step<T>(
    f: impl std::future::Future<Output = Result<T, ConsoleError>>,
) -> Result<T, ConsoleError> {
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .map_err(|_| ConsoleError::Protocol("the agent did not answer in time".into()))?
}

/// Claims `code`, pairs with the agent, and asks the user for `scopes`.
pub async fn open_session(
    config: &ConsoleConfig,
    code: SessionCode,
    scopes: ScopeSet,
) -> Result<Session, ConsoleError> {
    open_session_with(config, code, scopes, |_| {}).await
}

/// What the relay says when a claim is accepted, before pairing and consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimInfo {
    /// Why the user asked for help (cleaned), if they said.
    pub reason: Option<String>,
    /// The session's record on the relay.
    pub record: Option<u64>,
}

/// [`open_session`], calling `on_claimed` as soon as the relay accepts the claim, so a front end can
/// show the user's reason while the user decides on consent.
pub async fn open_session_with(
    config: &ConsoleConfig,
    code: SessionCode,
    scopes: ScopeSet,
    on_claimed: impl FnOnce(&ClaimInfo) + Send,
) -> Result<Session, ConsoleError> {
    let mut session = pair_session_with(config, code, scopes, on_claimed).await?;
    session.ask_consent().await?;
    Ok(session)
}

/// Claims `code` (for `scopes`, which the relay checks against the role) and pairs with the agent,
/// without asking for consent yet: chat works from here on. [`Session::ask_consent`] asks.
pub async fn pair_session(
    config: &ConsoleConfig,
    code: SessionCode,
    scopes: ScopeSet,
) -> Result<Session, ConsoleError> {
    pair_session_with(config, code, scopes, |_| {}).await
}

/// [`pair_session`], calling `on_claimed` as soon as the relay accepts the claim.
pub async fn pair_session_with(
    config: &ConsoleConfig,
    code: SessionCode,
    scopes: ScopeSet,
    on_claimed: impl FnOnce(&ClaimInfo) + Send,
) -> Result<Session, ConsoleError> {
    let connection = connection_span(config, "session");
    // Only the slot, never the secret: the relay sees the slot anyway.
    let span = tracing::info_span!(
        parent: &connection,
        "session",
        slot = %code.slot,
        session = tracing::field::Empty
    );
    let (relay, accepted) = claim_following_one_redirect(config, code, scopes, &connection)
        .instrument(span.clone())
        .await?;
    let started = async {
        let mut p = pair(accepted, code, on_claimed).await?;
        let e2e = p.end_to_end(&relay, config.relay.direct).await?;
        Ok::<_, ConsoleError>((p, e2e))
    };
    match started.instrument(span.clone()).await {
        Ok((p, e2e)) => Ok(Session::paired(relay, span, p, e2e, scopes, config)),
        Err(e) => {
            relay.close(close::NORMAL, "console giving up").await;
            Err(e)
        }
    }
}

impl Paired {
    /// Stream 0 sealed with `keys` (from pairing or the enrolled-device handshake).
    pub(crate) fn sealed(
        keys: SessionKeys,
        (send, recv): (quinn::SendStream, quinn::RecvStream),
        technician: TechnicianIdentity,
        reason: Option<String>,
        record: Option<u64>,
        route: RouteToken,
    ) -> Self {
        let (tx0, rx0) = SealedStream::new(send, recv, &keys, 0, Side::Console).split();
        let verification = keys.verification_code();
        Paired {
            keys,
            tx0,
            rx0,
            technician,
            verification,
            reason,
            record,
            route,
        }
    }

    /// Makes the session's end-to-end connection through `relay`'s forwarder ([`e2e`]): the
    /// offers on the sealed transport stream, then the connection, pinned both ways. Nothing falls
    /// back: a failure ends the session (the agent is told why).
    pub(crate) async fn end_to_end(
        &mut self,
        relay: &RelayConnection,
        direct: Direct,
    ) -> Result<E2eLink, ConsoleError> {
        let made = e2e::offer(&relay.conn, &self.keys, self.route, direct).await;
        if let Err(e) = &made {
            let _ = self
                .tx0
                .send(&ConsoleToAgent::ProtocolError {
                    reason: e.to_string(),
                })
                .await;
        }
        Ok(made?)
    }
}

impl Session {
    /// The session once stream 0 is sealed: its reader runs from here.
    pub(crate) fn paired(
        relay: RelayConnection,
        span: tracing::Span,
        p: Paired,
        e2e: E2eLink,
        scopes: ScopeSet,
        config: &ConsoleConfig,
    ) -> Session {
        let (decision_tx, decisions) = mpsc::channel(1);
        let (more_tx, more) = mpsc::channel(MORE_QUEUE);
        let (chat_tx, chat) = mpsc::channel(CHAT_QUEUE);
        let (ended_tx, ended) = watch::channel(None);
        let (invite_tx, invites) = mpsc::channel(2);
        let (grant_tx, grant) = watch::channel(ScopeSet::EMPTY);
        let mut reader = JoinSet::new();
        let out = Stream0Out {
            decisions: decision_tx,
            more: more_tx,
            chat: chat_tx,
            invites: invite_tx,
            ended: ended_tx,
            grant: grant_tx,
        };
        reader.spawn(read_stream0(p.rx0, out).instrument(span.clone()));
        Session {
            relay,
            e2e,
            span,
            keys: p.keys,
            tx0: p.tx0,
            reader,
            decisions,
            more,
            chat,
            invites,
            ended,
            grant,
            broken: None,
            next_stream: 1,
            asked: scopes,
            technician: p.technician,
            granted: ScopeSet::EMPTY,
            verification: p.verification,
            reason: p.reason,
            record: p.record,
            config: config.clone(),
        }
    }
}

/// The outcome of claiming and pairing (or of the handshake with an enrolled device).
pub(crate) struct Paired {
    pub(crate) keys: SessionKeys,
    pub(crate) tx0: SealedSend,
    pub(crate) rx0: SealedRecv,
    pub(crate) technician: TechnicianIdentity,
    pub(crate) verification: String,
    pub(crate) reason: Option<String>,
    pub(crate) record: Option<u64>,
    /// The console's end of the session's packet forwarding.
    pub(crate) route: RouteToken,
}

/// A claim the relay accepted: stream 0, now spliced to the agent, and what the relay said.
struct Accepted {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    technician: TechnicianIdentity,
    reason: Option<String>,
    record: Option<u64>,
    route: RouteToken,
}

/// The relay's answer to a claim.
enum Claim {
    Accepted(Accepted),
    /// Another node of the relay's cluster holds the code.
    Redirect(NodeAddress),
}

/// Connects and claims; a relay of a cluster may send the console to the node that holds the code,
/// once. That node is reached under its name and trusted only through the cluster CA
/// ([`Trust::CaFile`]): a console pinning one relay's fingerprint cannot follow, and says so.
async fn claim_following_one_redirect(
    config: &ConsoleConfig,
    code: SessionCode,
    scopes: ScopeSet,
    connection: &tracing::Span,
) -> Result<(RelayConnection, Accepted), ConsoleError> {
    let relay = client::connect(&config.relay)
        .instrument(connection.clone())
        .await?;
    let node = match claim(&relay, config, code, scopes).await {
        Ok(Claim::Accepted(a)) => return Ok((relay, a)),
        Ok(Claim::Redirect(node)) => node,
        Err(e) => {
            relay.close(close::NORMAL, "console giving up").await;
            return Err(e);
        }
    };
    relay.close(close::NORMAL, "redirected").await;
    let redirected = |reason: String| ConsoleError::Redirect {
        node: display_safe(&node.node).into_owned(),
        addr: display_safe(&node.addr).into_owned(),
        reason,
    };
    if !matches!(config.relay.trust, Trust::CaFile(_)) {
        return Err(redirected(
            "this console pins one relay's certificate fingerprint, so it cannot check another \
             node: trust the cluster CA instead (--ca-file / TETHER_RELAY_CA_FILE with \
             cluster-ca.pem)"
                .into(),
        ));
    }
    let target = RelayTarget {
        addr: node.addr.clone(),
        ..config.relay.clone()
    };
    tracing::info!(node = %display_safe(&node.node), "the code is held by another node; claiming there");
    let relay = client::connect_named(&target, &node.node)
        .instrument(connection.clone())
        .await
        .map_err(|e| redirected(e.to_string()))?;
    match claim(&relay, config, code, scopes).await {
        Ok(Claim::Accepted(a)) => Ok((relay, a)),
        Ok(Claim::Redirect(again)) => {
            relay.close(close::NORMAL, "redirected twice").await;
            Err(redirected(format!(
                "that node sent it on again, to {} at {}; a code is held by one node, so the \
                 cluster's nodes disagree (is a node's database or clock wrong?)",
                display_safe(&again.node),
                display_safe(&again.addr)
            )))
        }
        Err(e) => {
            relay.close(close::NORMAL, "console giving up").await;
            Err(e)
        }
    }
}

/// Sends the claim on a new control stream and reads the answer.
async fn claim(
    relay: &RelayConnection,
    config: &ConsoleConfig,
    code: SessionCode,
    scopes: ScopeSet,
) -> Result<Claim, ConsoleError> {
    let (mut send, mut recv) = client::open_control(&relay.conn, Role::Console).await?;
    framed::write_msg(
        &mut send,
        &ConsoleToRelay::Claim {
            slot: code.slot,
            token: config.token.clone(),
            scopes,
        },
    )
    .await?;
    match step(async { Ok(framed::read_msg::<RelayToConsole>(&mut recv).await?) }).await? {
        RelayToConsole::Claimed {
            technician,
            reason,
            record,
            route,
        } => Ok(Claim::Accepted(Accepted {
            send,
            recv,
            technician,
            reason,
            record,
            route,
        })),
        RelayToConsole::Redirect(node) => Ok(Claim::Redirect(node)),
        RelayToConsole::Error(e) => Err(e.into()),
        RelayToConsole::Invitations(_) => Err(ConsoleError::Protocol(
            "the relay answered a claim with a list".into(),
        )),
    }
}

/// Pairs on an accepted claim's stream 0; on error the caller closes the connection.
async fn pair(
    accepted: Accepted,
    code: SessionCode,
    on_claimed: impl FnOnce(&ClaimInfo) + Send,
) -> Result<Paired, ConsoleError> {
    let Accepted {
        mut send,
        mut recv,
        technician,
        reason,
        record,
        route,
    } = accepted;
    if let Some(id) = record {
        tracing::Span::current().record("session", id);
    }
    tracing::debug!("claim accepted; pairing");
    // The relay cleaned it already; a console trusts no peer with its terminal.
    let reason = reason.map(|r| truncate_text(&r, MAX_REASON_CHARS, false));
    on_claimed(&ClaimInfo {
        reason: reason.clone(),
        record,
    });

    let mut pairing = Pairing::new(Side::Console, code.slot, &code.secret);
    loop {
        while let Some(m) = pairing.poll_transmit() {
            framed::write_msg(&mut send, &m).await?;
        }
        if pairing.outcome().is_some() {
            break;
        }
        let m = step(async {
            framed::read_msg::<PairingMsg>(&mut recv)
                .await
                .map_err(|e| match e {
                    // The agent hangs up right after a failed confirmation; that is the wrong code.
                    FrameError::Closed | FrameError::Read(_) | FrameError::Connection(_) => {
                        ConsoleError::WrongCode
                    }
                    other => other.into(),
                })
        })
        .await?;
        let _ = pairing.handle(m);
    }
    let keys = pairing.into_keys().map_err(|_| ConsoleError::WrongCode)?;
    Ok(Paired::sealed(
        keys,
        (send, recv),
        technician,
        reason,
        record,
        route,
    ))
}

/// The invitations waiting for you (by name, or for your tier). Each one's code comes from the
/// technician who invited you: the relay never has it.
pub async fn invitations(config: &ConsoleConfig) -> Result<Vec<OpenInvitation>, ConsoleError> {
    let relay = client::connect(&config.relay)
        .instrument(connection_span(config, "invitations"))
        .await?;
    let ask = ConsoleToRelay::Invitations {
        token: config.token.clone(),
    };
    let result = match ask_relay::<RelayToConsole>(&relay, &ask).await {
        Ok(RelayToConsole::Invitations(list)) => Ok(list),
        Ok(RelayToConsole::Error(e)) => Err(e.into()),
        Ok(RelayToConsole::Claimed { .. } | RelayToConsole::Redirect(_)) => Err(
            ConsoleError::Protocol("the relay answered a list with a claim".into()),
        ),
        Err(e) => Err(e),
    };
    relay.close(close::NORMAL, "done").await;
    result
}

/// Opens a control stream on `relay`, sends `question`, and reads the one answer.
pub(crate) async fn ask_relay<R: serde::de::DeserializeOwned>(
    relay: &RelayConnection,
    question: &ConsoleToRelay,
) -> Result<R, ConsoleError> {
    let (mut send, mut recv) = client::open_control(&relay.conn, Role::Console).await?;
    framed::write_msg(&mut send, question).await?;
    tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<R>(&mut recv))
        .await
        .map_err(|_| ConsoleError::Protocol("the relay did not answer in time".into()))?
        .map_err(ConsoleError::from)
}

/// One request on a new stream `id`: `StreamOpen`, then the sealed request, then the sealed answer.
/// Gives up after `wait`.
async fn exchange(
    conn: quinn::Connection,
    keys: SessionKeys,
    id: u32,
    request: &Request,
    wait: Duration,
) -> Result<Response, ConsoleError> {
    let work = async {
        let (mut send, recv) = conn.open_bi().await.map_err(FrameError::from)?;
        framed::write_msg(&mut send, &StreamOpen { stream_id: id }).await?;
        let (mut tx, mut rx) = SealedStream::new(send, recv, &keys, id, Side::Console).split();
        tx.send(request).await?;
        Ok(rx.recv::<Response>().await?)
    };
    tokio::time::timeout(wait, work)
        .await
        .map_err(|_| ConsoleError::Protocol("the agent did not answer in time".into()))?
}

/// How long to wait for the answer to `request`: a step, or a probe's timeout plus a margin.
fn answer_wait(request: &Request) -> Duration {
    match request {
        Request::Diagnostic {
            probe,
            timeout_secs,
        } => {
            let secs = crate::diag::agent_timeout_secs(probe.kind(), *timeout_secs);
            STEP_TIMEOUT.max(Duration::from_secs(u64::from(secs)) + Duration::from_secs(10))
        }
        _ => STEP_TIMEOUT,
    }
}

/// What the agent said on stream 0, for a front end that waits on several things at once (chat
/// goes on while the user decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSaid {
    /// The user answered the consent request; give it to [`Session::decided`].
    Decision(ScopeSet),
    /// A chat line from the user.
    Chat(ChatText),
    /// The answer to [`Session::request_more`] ([`Session::granted`] holds it already).
    More(MoreAnswer),
    /// The session is over (every line the user sent before was delivered first).
    Ended(EndReason),
}

impl Session {
    /// Sends the consent request for [`Session::asked`] without waiting: the answer comes as
    /// [`AgentSaid::Decision`] from [`Session::next_said`] (or the end, if the user did not answer).
    pub async fn request_consent(&mut self) -> Result<(), ConsoleError> {
        self.tx0
            .send(&ConsoleToAgent::ConsentRequest { scopes: self.asked })
            .await?;
        Ok(())
    }

    /// The next thing the agent said: a decision, a chat line, or the end.
    pub async fn next_said(&mut self) -> AgentSaid {
        // The reader hands over decisions and lines before it marks the end: look at them first.
        tokio::select! {
            biased;
            Some(d) = self.decisions.recv() => AgentSaid::Decision(d),
            Some(m) = self.more.recv() => {
                self.granted = m.granted;
                AgentSaid::More(m)
            }
            Some(t) = self.chat.recv() => AgentSaid::Chat(t),
            r = self.ended.wait_for(Option::is_some) => AgentSaid::Ended(match r {
                Ok(r) => r.clone().unwrap_or(EndReason::ConnectionLost),
                Err(_) => EndReason::ConnectionLost,
            }),
        }
    }

    /// Takes the user's decision: the (non-empty) grant, or [`ConsoleError::ConsentDenied`].
    pub fn decided(&mut self, granted: ScopeSet) -> Result<ScopeSet, ConsoleError> {
        if granted.is_empty() {
            return Err(ConsoleError::ConsentDenied);
        }
        self.granted = granted;
        Ok(granted)
    }

    /// The consent was never answered because the session ended: the error to show.
    pub fn ended_before_decision(reason: EndReason) -> ConsoleError {
        match reason {
            EndReason::ConsentDenied => ConsoleError::ConsentDenied,
            EndReason::ConsentTimeout => ConsoleError::ConsentTimeout,
            reason => ConsoleError::Ended(reason),
        }
    }

    /// What the user grants right now, changing when they take something back (Stop control).
    pub fn grant(&self) -> watch::Receiver<ScopeSet> {
        self.grant.clone()
    }

    /// Asks the user for [`Session::asked`] and waits for the answer; returns the (non-empty) grant.
    pub async fn ask_consent(&mut self) -> Result<ScopeSet, ConsoleError> {
        self.tx0
            .send(&ConsoleToAgent::ConsentRequest { scopes: self.asked })
            .await?;
        let decision = tokio::time::timeout(CONSENT_WAIT, async {
            // The reader hands over a decision before it marks the end: look at decisions first.
            tokio::select! {
                biased;
                d = self.decisions.recv() => d,
                _ = self.ended.wait_for(Option::is_some) => None,
            }
        })
        .await
        .map_err(|_| ConsoleError::ConsentTimeout)?;
        match decision {
            Some(granted) => self.decided(granted),
            None => {
                let reason = self.ended.borrow().clone();
                Err(Self::ended_before_decision(
                    reason.unwrap_or(EndReason::ConnectionLost),
                ))
            }
        }
    }

    /// Asks the user, during the session, for `scopes` on top of what they allowed (e.g. `control`
    /// after a `view` session, or after they pressed Stop control), without waiting: the answer
    /// comes as [`AgentSaid::More`] from [`Session::next_said`]. The agent asks only for what is not
    /// granted yet, and refuses (the session goes on) beyond the role or while another ask waits.
    pub async fn request_more(&mut self, scopes: ScopeSet) -> Result<(), ConsoleError> {
        self.not_broken()?;
        self.asked = self.asked.union(scopes);
        self.tx0.send(&ConsoleToAgent::AskMore { scopes }).await?;
        Ok(())
    }

    /// [`Session::request_more`], waiting (up to [`CONSENT_WAIT`]) for the answer. A chat line
    /// from the user while they decide stays queued for [`Session::next_chat`].
    pub async fn ask_more(&mut self, scopes: ScopeSet) -> Result<MoreAnswer, ConsoleError> {
        self.request_more(scopes).await?;
        let answer = tokio::time::timeout(CONSENT_WAIT, async {
            tokio::select! {
                biased;
                m = self.more.recv() => m,
                _ = self.ended.wait_for(Option::is_some) => None,
            }
        })
        .await
        .map_err(|_| ConsoleError::Protocol("the agent did not answer the ask in time".into()))?;
        match answer {
            Some(m) => {
                self.granted = m.granted;
                Ok(m)
            }
            None => Err(ConsoleError::Ended(self.ended().await)),
        }
    }

    /// Sends a chat line to the user (checked against [`tether_proto::chat::MAX_CHAT_CHARS`]).
    pub async fn say(&mut self, text: &str) -> Result<(), ConsoleError> {
        let text = ChatText::new(text)?;
        self.tx0
            .send(&ConsoleToAgent::Chat { text: text.into() })
            .await?;
        Ok(())
    }

    /// Invites a colleague into this session (`handover`: and leave once they are in). The user is
    /// asked first; on yes, returns the one-time code to give the colleague, who claims it like any
    /// code and is asked for consent again. The code came sealed: the relay never saw it.
    pub async fn invite(
        &mut self,
        invitee: Invitee,
        handover: bool,
    ) -> Result<SessionCode, ConsoleError> {
        self.tx0
            .send(&ConsoleToAgent::Invite { invitee, handover })
            .await?;
        let answer = tokio::time::timeout(CONSENT_WAIT, async {
            tokio::select! {
                biased;
                a = self.invites.recv() => a,
                _ = self.ended.wait_for(Option::is_some) => None,
            }
        })
        .await
        .map_err(|_| ConsoleError::Invite("the agent did not answer in time".into()))?;
        match answer {
            Some(Ok(code)) => code.parse().map_err(|e| {
                ConsoleError::Protocol(format!("the agent sent an unreadable code: {e}"))
            }),
            Some(Err(reason)) => Err(ConsoleError::Invite(reason)),
            None => Err(ConsoleError::Ended(self.ended().await)),
        }
    }

    /// The user's next chat line; `None` once the session has ended and every line was read.
    pub async fn next_chat(&mut self) -> Option<ChatText> {
        self.chat.recv().await
    }

    /// Resolves with why the session ended, once the agent said so or stream 0 broke.
    pub async fn ended(&mut self) -> EndReason {
        match self.ended.wait_for(Option::is_some).await {
            Ok(r) => r.clone().unwrap_or(EndReason::ConnectionLost),
            Err(_) => EndReason::ConnectionLost,
        }
    }

    /// Sends one request on a new stream and returns the agent's answer.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ConsoleError> {
        self.not_broken()?;
        let id = self.next_stream;
        self.next_stream += 1;
        let wait = answer_wait(request);
        let result = exchange(self.e2e.conn.clone(), self.keys.clone(), id, request, wait)
            .instrument(tracing::debug_span!(parent: &self.span, "request", stream = id))
            .await;
        self.answer(result).await
    }

    /// Maps an exchange's outcome to the answer or the error the caller sees.
    async fn answer(
        &mut self,
        result: Result<Response, ConsoleError>,
    ) -> Result<Response, ConsoleError> {
        match result {
            Ok(Response::Refused { scope }) => Err(ConsoleError::ScopeDenied(scope)),
            Ok(Response::Failed { message }) => Err(ConsoleError::Failed(message)),
            Ok(r) => Ok(r),
            // If the stream broke because the session ended, say why.
            Err(ConsoleError::Ended(EndReason::ConnectionLost)) => Err(self.why_ended().await),
            Err(ConsoleError::Broken(reason)) => Err(self.abort(reason).await),
            Err(e) => Err(e),
        }
    }

    /// Fails once the session broke ([`Session::abort`]).
    fn not_broken(&self) -> Result<(), ConsoleError> {
        match &self.broken {
            Some(reason) => Err(ConsoleError::Ended(reason.clone())),
            None => Ok(()),
        }
    }

    /// A frame from the agent failed to open on a request stream: someone on the path tampered with
    /// the session, so it ends. The agent is told (it ends the session too, and the relay audits it);
    /// every later request fails at once.
    async fn abort(&mut self, reason: String) -> ConsoleError {
        if self.broken.is_none() {
            self.span.in_scope(|| {
                tracing::warn!(%reason, "a session frame from the agent failed; ending the session")
            });
            let tell = ConsoleToAgent::ProtocolError {
                reason: reason.clone(),
            };
            let _ = self.tx0.send(&tell).await;
            self.broken = Some(EndReason::ProtocolError(reason.clone()));
        }
        ConsoleError::Broken(reason)
    }

    /// Opens a new stream for a long-lived `request` and returns it with the agent's first answer
    /// (refusals and failures already turned into errors).
    pub async fn open_stream(
        &mut self,
        request: &Request,
    ) -> Result<(SealedSend, SealedRecv, Response), ConsoleError> {
        self.not_broken()?;
        let id = self.next_stream;
        self.next_stream += 1;
        let result = step(async {
            let (mut send, recv) = self.e2e.conn.open_bi().await.map_err(FrameError::from)?;
            framed::write_msg(&mut send, &StreamOpen { stream_id: id }).await?;
            let (mut tx, mut rx) =
                SealedStream::new(send, recv, &self.keys, id, Side::Console).split();
            tx.send(request).await?;
            let r = rx.recv::<Response>().await?;
            Ok((tx, rx, r))
        })
        .await;
        match result {
            Ok((_, _, Response::Refused { scope })) => Err(ConsoleError::ScopeDenied(scope)),
            Ok((_, _, Response::Failed { message })) => Err(ConsoleError::Failed(message)),
            Ok(r) => Ok(r),
            Err(ConsoleError::Ended(EndReason::ConnectionLost)) => Err(self.why_ended().await),
            Err(ConsoleError::Broken(reason)) => Err(self.abort(reason).await),
            Err(e) => Err(e),
        }
    }

    /// The path the session's end-to-end packets take (relayed, or direct to the agent), as it
    /// changes.
    pub fn path(&self) -> tokio::sync::watch::Receiver<tether_proto::path::Path> {
        self.e2e.path()
    }

    /// A handle for connection statistics that other tasks can hold.
    pub fn link(&self) -> Link {
        Link(self.e2e.conn.clone(), self.e2e.path())
    }

    async fn why_ended(&mut self) -> ConsoleError {
        match tokio::time::timeout(Duration::from_millis(500), self.ended()).await {
            Ok(reason) if reason != EndReason::ConnectionLost => ConsoleError::Ended(reason),
            _ => match tether_net::closed::reason(&self.relay.conn) {
                Some(c) => ConsoleError::RelayClosed(c.reason),
                None => ConsoleError::Ended(EndReason::ConnectionLost),
            },
        }
    }

    /// Resolves when the relay connection closes, with why: the relay shutting down, the agent
    /// gone (`session ended: agent left`), or the network lost (a timeout). For front ends that
    /// must tell the technician without waiting for their next request.
    pub async fn closed(&self) -> ConsoleError {
        let e = self.relay.conn.closed().await;
        ConsoleError::RelayClosed(tether_net::closed::describe(&e).reason)
    }

    /// The agent's full inventory (needs `inventory`).
    pub async fn inventory(&mut self) -> Result<Inventory, ConsoleError> {
        match self.request(&Request::Inventory).await? {
            Response::Inventory(i) => {
                self.post_inventory(&i).await;
                Ok(*i)
            }
            other => Err(ConsoleError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Runs one probe on the agent with its default timeout (needs `diagnostics`).
    pub async fn diagnostic(&mut self, probe: Probe) -> Result<DiagReport, ConsoleError> {
        self.diagnostic_with(probe, None).await
    }

    /// Runs the standard health check ([`Probe::health_check`]): every probe at once, each on its own
    /// stream, so the whole check takes about as long as its slowest probe. Returns the reports sorted
    /// problems first (then in catalog order).
    pub async fn health_check(
        &mut self,
        timeout_secs: Option<u16>,
    ) -> Result<Vec<DiagReport>, ConsoleError> {
        self.not_broken()?;
        let mut running = JoinSet::new();
        for (order, probe) in Probe::health_check().into_iter().enumerate() {
            let id = self.next_stream;
            self.next_stream += 1;
            let (conn, keys) = (self.e2e.conn.clone(), self.keys.clone());
            let request = Request::Diagnostic {
                probe,
                timeout_secs,
            };
            let wait = answer_wait(&request);
            let span = tracing::debug_span!(parent: &self.span, "request", stream = id);
            running.spawn(
                async move { (order, exchange(conn, keys, id, &request, wait).await) }
                    .instrument(span),
            );
        }
        let mut reports = Vec::new();
        while let Some(joined) = running.join_next().await {
            let (order, result) =
                joined.map_err(|e| ConsoleError::Protocol(format!("request task failed: {e}")))?;
            match self.answer(result).await? {
                Response::Diagnostic(d) => reports.push((order, *d)),
                other => {
                    return Err(ConsoleError::Protocol(format!(
                        "unexpected answer {other:?}"
                    )));
                }
            }
        }
        reports.sort_by_key(|(order, r)| (r.verdict.rank(), *order));
        let reports: Vec<DiagReport> = reports.into_iter().map(|(_, r)| r).collect();
        self.post_probes(&reports).await;
        Ok(reports)
    }

    /// Runs one probe on the agent, optionally with its own timeout in seconds (needs `diagnostics`).
    pub async fn diagnostic_with(
        &mut self,
        probe: Probe,
        timeout_secs: Option<u16>,
    ) -> Result<DiagReport, ConsoleError> {
        match self
            .request(&Request::Diagnostic {
                probe,
                timeout_secs,
            })
            .await?
        {
            Response::Diagnostic(d) => {
                self.post_probes(std::slice::from_ref(&d)).await;
                Ok(*d)
            }
            other => Err(ConsoleError::Protocol(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Ends the session: tells the agent, waits briefly for its goodbye, and closes.
    pub async fn end(mut self) {
        self.span.in_scope(|| tracing::debug!("ending the session"));
        if self.tx0.send(&ConsoleToAgent::End).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.ended()).await;
        }
        self.reader.abort_all();
        self.e2e
            .close(close::NORMAL, "technician ended the session");
        self.relay
            .close(close::NORMAL, "technician ended the session")
            .await;
    }
}
