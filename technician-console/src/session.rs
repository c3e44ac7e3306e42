//! A technician's session with one agent.
//!
//! # Flow
//! claim the slot (token) → SPAKE2 pairing with the secret on stream 0 → sealed `ConsentRequest` →
//! `ConsentDecision` → one new stream per request (`StreamOpen{n}`, then sealed `Request` → `Response`)
//! → sealed `End`.

use std::time::Duration;

use tether_net::client::{self, RelayConnection, RelayTarget};
use tether_net::framed::{self, FrameError};
use tether_net::sealed::{SealedError, SealedRecv, SealedSend, SealedStream};
use tether_proto::diag::{DiagReport, Probe};
use tether_proto::inventory::Inventory;
use tether_proto::msg::{
    AgentToConsole, ConsoleToAgent, ConsoleToRelay, EndReason, RelayToConsole, Request, Response,
    Role, StreamOpen, TechnicianIdentity, close,
};
use tether_proto::pairing::{Pairing, PairingMsg, Side};
use tether_proto::records::{MAX_REASON_CHARS, truncate_text};
use tether_proto::seal::{SealError, SessionKeys};
use tether_proto::{ScopeSet, SessionCode};
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

/// A live, consented session.
#[derive(Debug)]
pub struct Session {
    relay: RelayConnection,
    keys: SessionKeys,
    tx0: SealedSend,
    rx0: SealedRecv,
    next_stream: u32,
    /// Who the relay says we are (what the user was shown).
    pub technician: TechnicianIdentity,
    /// What the user granted.
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

/// Connection statistics for a session, usable from other tasks.
#[derive(Debug, Clone)]
pub struct Link(quinn::Connection);

impl Link {
    /// Bytes received on the QUIC connection so far (everything, on the wire).
    pub fn bytes_received(&self) -> u64 {
        self.0.stats().udp_rx.bytes
    }

    /// The current round-trip time to the relay.
    pub fn rtt(&self) -> Duration {
        self.0.rtt()
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
            SealedError::Seal(SealError::Tampered) => ConsoleError::Protocol(
                "a session frame failed authentication; the session is closed".into(),
            ),
            SealedError::Seal(e) => ConsoleError::Protocol(e.to_string()),
            SealedError::Frame(f) => f.into(),
        }
    }
}

async fn step<T>(
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
    let relay = client::connect(&config.relay).await?;
    match claim_and_pair(&relay, config, code, scopes, on_claimed).await {
        Ok(p) => Ok(Session {
            relay,
            keys: p.keys,
            tx0: p.tx0,
            rx0: p.rx0,
            next_stream: 1,
            technician: p.technician,
            granted: p.granted,
            verification: p.verification,
            reason: p.reason,
            record: p.record,
            config: config.clone(),
        }),
        Err(e) => {
            relay.close(close::NORMAL, "console giving up").await;
            Err(e)
        }
    }
}

/// The outcome of claiming, pairing and consent.
struct Paired {
    keys: SessionKeys,
    tx0: SealedSend,
    rx0: SealedRecv,
    technician: TechnicianIdentity,
    granted: ScopeSet,
    verification: String,
    reason: Option<String>,
    record: Option<u64>,
}

/// Everything after connecting; on error the caller closes the connection.
async fn claim_and_pair(
    relay: &RelayConnection,
    config: &ConsoleConfig,
    code: SessionCode,
    scopes: ScopeSet,
    on_claimed: impl FnOnce(&ClaimInfo) + Send,
) -> Result<Paired, ConsoleError> {
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
    let (technician, reason, record) =
        match step(async { Ok(framed::read_msg::<RelayToConsole>(&mut recv).await?) }).await? {
            RelayToConsole::Claimed {
                technician,
                reason,
                record,
            } => (technician, reason, record),
            RelayToConsole::Error(e) => return Err(e.into()),
        };
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
    let (mut tx0, mut rx0) = SealedStream::new(send, recv, &keys, 0, Side::Console).split();
    tx0.send(&ConsoleToAgent::ConsentRequest { scopes }).await?;
    let decision = tokio::time::timeout(CONSENT_WAIT, rx0.recv::<AgentToConsole>())
        .await
        .map_err(|_| ConsoleError::ConsentDenied)??;
    let granted = match decision {
        AgentToConsole::ConsentDecision { granted } if granted.is_empty() => {
            return Err(ConsoleError::ConsentDenied);
        }
        AgentToConsole::ConsentDecision { granted } => granted,
        AgentToConsole::Ended {
            reason: EndReason::ConsentDenied,
        } => return Err(ConsoleError::ConsentDenied),
        AgentToConsole::Ended { reason } => return Err(ConsoleError::Ended(reason)),
    };
    let verification = keys.verification_code();
    Ok(Paired {
        keys,
        tx0,
        rx0,
        technician,
        granted,
        verification,
        reason,
        record,
    })
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
            let secs = probe
                .kind()
                .effective_timeout_secs(*timeout_secs)
                .unwrap_or(0);
            STEP_TIMEOUT.max(Duration::from_secs(u64::from(secs)) + Duration::from_secs(10))
        }
        _ => STEP_TIMEOUT,
    }
}

impl Session {
    /// Sends one request on a new stream and returns the agent's answer.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ConsoleError> {
        let id = self.next_stream;
        self.next_stream += 1;
        let wait = answer_wait(request);
        let result = exchange(
            self.relay.conn.clone(),
            self.keys.clone(),
            id,
            request,
            wait,
        )
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
            Err(e) => Err(e),
        }
    }

    /// Opens a new stream for a long-lived `request` and returns it with the agent's first answer
    /// (refusals and failures already turned into errors).
    pub async fn open_stream(
        &mut self,
        request: &Request,
    ) -> Result<(SealedSend, SealedRecv, Response), ConsoleError> {
        let id = self.next_stream;
        self.next_stream += 1;
        let result = step(async {
            let (mut send, recv) = self.relay.conn.open_bi().await.map_err(FrameError::from)?;
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
            Err(e) => Err(e),
        }
    }

    /// A handle for connection statistics that other tasks can hold.
    pub fn link(&self) -> Link {
        Link(self.relay.conn.clone())
    }

    async fn why_ended(&mut self) -> ConsoleError {
        match tokio::time::timeout(
            Duration::from_millis(500),
            self.rx0.recv::<AgentToConsole>(),
        )
        .await
        {
            Ok(Ok(AgentToConsole::Ended { reason })) => ConsoleError::Ended(reason),
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
        let mut running = JoinSet::new();
        for (order, probe) in Probe::health_check().into_iter().enumerate() {
            let id = self.next_stream;
            self.next_stream += 1;
            let (conn, keys) = (self.relay.conn.clone(), self.keys.clone());
            let request = Request::Diagnostic {
                probe,
                timeout_secs,
            };
            let wait = answer_wait(&request);
            running.spawn(async move { (order, exchange(conn, keys, id, &request, wait).await) });
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
        if self.tx0.send(&ConsoleToAgent::End).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.rx0.recv::<AgentToConsole>())
                .await;
        }
        self.relay
            .close(close::NORMAL, "technician ended the session")
            .await;
    }
}
