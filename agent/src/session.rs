//! One paired session on the agent: consent, then serving requests within the grant.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_net::client::RelayConnection;
use tether_net::framed;
use tether_net::sealed::{SealedError, SealedRecv, SealedSend, SealedStream};
use tether_proto::chat::ChatText;
use tether_proto::msg::{
    AgentToConsole, AgentToRelay, ConsoleToAgent, EndReason, RelayToAgent, Request, Response,
    SessionReport, StreamOpen, TechnicianIdentity,
};
use tether_proto::pairing::Side;
use tether_proto::seal::SealError;
use tether_proto::seal::SessionKeys;
use tether_proto::{Scope, ScopeSet};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::policy::KnownOrgs;
use crate::requests;
use crate::screen::{InputProvider, ScreenProvider};
use crate::share::{Control, STEP_TIMEOUT, ShareConfig, ShareError};
use crate::ui::{AgentEvent, UiLink, UserCommand};

/// How long a chatting pair may go quiet before the technician asks for consent.
const CHAT_IDLE: Duration = Duration::from_secs(300);

/// How long the last frames of a session may take to be acknowledged before the connection closes.
const FLUSH: Duration = Duration::from_secs(1);

pub(crate) struct Session<'a> {
    pub relay: &'a RelayConnection,
    pub ctl_send: &'a mut quinn::SendStream,
    pub ctl: &'a mut Control,
    pub ui: &'a mut UiLink,
    pub keys: SessionKeys,
}

impl Session<'_> {
    async fn report(&mut self, r: SessionReport) {
        // If the relay is gone the session is ending anyway; the local log (events) still has it.
        let _ = framed::write_msg(self.ctl_send, &AgentToRelay::Report(r)).await;
    }

    async fn emit(&self, e: AgentEvent) {
        let _ = self.ui.events.send(e).await;
    }

    pub async fn run(
        mut self,
        config: &ShareConfig,
        technician: TechnicianIdentity,
        stream0: (quinn::SendStream, quinn::RecvStream),
    ) -> Result<EndReason, ShareError> {
        let (mut tx0, rx0) =
            SealedStream::new(stream0.0, stream0.1, &self.keys, 0, Side::Agent).split();
        // Stream 0 is read in its own task so every select below stays cancel-safe.
        let mut reader = JoinSet::new();
        let (s0_tx, mut s0) = mpsc::channel(4);
        reader.spawn(read_stream0(rx0, s0_tx));
        let who = technician_name(&technician);
        let granted = match self.until_consent_request(&mut s0, &mut tx0, &who).await {
            Ok(requested) => {
                self.consent(config, &technician, requested, &mut s0, &mut tx0)
                    .await
            }
            Err(reason) => Err(reason),
        };
        let reason = match granted {
            Ok(granted) => self.serve(granted, &mut s0, &mut tx0, config, who).await,
            Err(reason) => reason,
        };
        reader.abort_all();
        // A denial was already sent as the (empty) decision.
        let tell_console = !matches!(
            reason,
            EndReason::TechnicianEnded | EndReason::ConnectionLost | EndReason::ConsentDenied
        );
        Ok(self.finish(&mut tx0, reason, tell_console).await)
    }

    /// After pairing: chat both ways until the technician asks for scopes. A console that says
    /// nothing for [`STEP_TIMEOUT`] is broken; once the two sides chat, the wait is [`CHAT_IDLE`].
    async fn until_consent_request(
        &mut self,
        s0: &mut Stream0,
        tx0: &mut SealedSend,
        who: &str,
    ) -> Result<ScopeSet, EndReason> {
        let mut idle = STEP_TIMEOUT;
        loop {
            let deadline = tokio::time::sleep(idle);
            tokio::select! {
                m = s0.recv() => match m {
                    Some(Ok(ConsoleToAgent::ConsentRequest { scopes })) => return Ok(scopes),
                    Some(Ok(ConsoleToAgent::End)) => return Err(EndReason::TechnicianEnded),
                    Some(Ok(ConsoleToAgent::Chat { text })) => {
                        self.chat_in(who, &text).await;
                        idle = CHAT_IDLE;
                    }
                    Some(Err(e)) => return Err(lost_or_broken(&e)),
                    None => return Err(EndReason::ConnectionLost),
                },
                c = self.ui.commands.recv() => match c {
                    Some(UserCommand::EndSession) | None => return Err(EndReason::UserEnded),
                    Some(UserCommand::Chat(text)) => {
                        self.chat_out(tx0, text).await?;
                        idle = CHAT_IDLE;
                    }
                    // Nothing asked, nothing granted yet.
                    Some(UserCommand::Consent(_) | UserCommand::RevokeControl) => {}
                },
                m = self.ctl.recv() => if peer_gone(m) {
                    return Err(EndReason::ConnectionLost);
                },
                () = deadline => {
                    return Err(EndReason::ProtocolError("no consent request".into()));
                }
            }
        }
    }

    /// Asks the user; returns the non-empty grant, or why the session ends.
    async fn consent(
        &mut self,
        config: &ShareConfig,
        technician: &TechnicianIdentity,
        requested: ScopeSet,
        s0: &mut Stream0,
        tx0: &mut SealedSend,
    ) -> Result<ScopeSet, EndReason> {
        // The relay checked the role already; the agent never relies on that.
        if requested.intersection(technician.role.allowed_scopes()) != requested {
            warn!(role = %technician.role, %requested, "refusing scopes beyond the technician's role");
            return Err(EndReason::Forbidden);
        }
        let known = KnownOrgs::new(config.state_dir.as_deref());
        let org = technician.org.clone();
        self.emit(AgentEvent::ConsentRequested {
            technician: technician.clone(),
            scopes: requested,
            timeout_secs: config.consent_timeout.as_secs(),
            first_contact: !known.is_known(&org),
            relay: config.relay_identity(),
        })
        .await;
        let who = technician_name(technician);
        let timeout = tokio::time::sleep(config.consent_timeout);
        tokio::pin!(timeout);
        let answer = loop {
            tokio::select! {
                c = self.ui.commands.recv() => match c {
                    Some(UserCommand::Consent(s)) => break s.intersection(requested),
                    Some(UserCommand::EndSession) => return Err(EndReason::UserEnded),
                    Some(UserCommand::Chat(text)) => self.chat_out(tx0, text).await?,
                    // Nothing granted yet, so nothing to take back.
                    Some(UserCommand::RevokeControl) => {}
                    // The front end is gone: nobody can say yes.
                    None => break ScopeSet::EMPTY,
                },
                // The technician may keep explaining while the user decides.
                m = s0.recv() => match m {
                    Some(Ok(ConsoleToAgent::Chat { text })) => self.chat_in(&who, &text).await,
                    Some(Ok(ConsoleToAgent::End)) => return Err(EndReason::TechnicianEnded),
                    Some(Ok(ConsoleToAgent::ConsentRequest { .. })) => {
                        return Err(EndReason::ProtocolError("consent requested twice".into()));
                    }
                    Some(Err(e)) => return Err(lost_or_broken(&e)),
                    None => return Err(EndReason::ConnectionLost),
                },
                () = &mut timeout => break ScopeSet::EMPTY,
            }
        };
        let granted = answer;
        if tx0
            .send(&AgentToConsole::ConsentDecision { granted })
            .await
            .is_err()
        {
            return Err(EndReason::ConnectionLost);
        }
        self.report(SessionReport::Consent { requested, granted })
            .await;
        self.emit(AgentEvent::ConsentDecided { granted }).await;
        if granted.is_empty() {
            return Err(EndReason::ConsentDenied);
        }
        known.remember(&org);
        info!(%granted, "consent given");
        Ok(granted)
    }

    /// Shows the technician's chat line, checked again here; a bad one is dropped and the session
    /// goes on.
    async fn chat_in(&self, who: &str, text: &str) {
        match ChatText::new(text) {
            Ok(text) => {
                self.emit(AgentEvent::Chat {
                    from: Some(who.to_string()),
                    text,
                })
                .await
            }
            Err(e) => warn!(error = %e, "dropped a chat line from the technician"),
        }
    }

    /// Sends the user's chat line to the technician.
    async fn chat_out(&mut self, tx0: &mut SealedSend, text: ChatText) -> Result<(), EndReason> {
        tx0.send(&AgentToConsole::Chat {
            text: text.as_str().to_string(),
        })
        .await
        .map_err(|e| lost_or_broken(&e))?;
        self.emit(AgentEvent::Chat { from: None, text }).await;
        Ok(())
    }

    /// Serves requests until the session ends; returns why it ended.
    async fn serve(
        &mut self,
        granted: ScopeSet,
        s0: &mut Stream0,
        tx0: &mut SealedSend,
        config: &ShareConfig,
        technician: String,
    ) -> EndReason {
        let (grant_tx, grant) = watch::channel(granted);
        let (report_tx, mut reports) = mpsc::channel::<SessionReport>(16);
        let mut tasks = JoinSet::new();
        let used = Arc::new(Mutex::new(HashSet::new()));
        let reason = loop {
            tokio::select! {
                s = self.relay.conn.accept_bi() => match s {
                    Ok((send, recv)) => {
                        let ctx = RequestCtx {
                            keys: self.keys.clone(),
                            grant: grant.clone(),
                            used: used.clone(),
                            events: self.ui.events.clone(),
                            reports: report_tx.clone(),
                            screen: config.screen.clone(),
                            input: config.input.clone(),
                            technician: technician.clone(),
                        };
                        tasks.spawn(ctx.serve(send, recv));
                    }
                    Err(_) => break EndReason::ConnectionLost,
                },
                m = s0.recv() => match m {
                    Some(Ok(ConsoleToAgent::End)) => break EndReason::TechnicianEnded,
                    Some(Ok(ConsoleToAgent::Chat { text })) => self.chat_in(&technician, &text).await,
                    Some(Ok(ConsoleToAgent::ConsentRequest { .. })) => {
                        break EndReason::ProtocolError("consent requested twice".into())
                    }
                    Some(Err(e)) => break lost_or_broken(&e),
                    None => break EndReason::ConnectionLost,
                },
                c = self.ui.commands.recv() => match c {
                    Some(UserCommand::EndSession) | None => break EndReason::UserEnded,
                    Some(UserCommand::Consent(_)) => {}
                    Some(UserCommand::Chat(text)) => {
                        if let Err(reason) = self.chat_out(tx0, text).await {
                            break reason;
                        }
                    }
                    Some(UserCommand::RevokeControl) => {
                        if grant.borrow().contains(Scope::Control) {
                            grant_tx.send_modify(|g| g.remove(Scope::Control));
                            info!("the user revoked control");
                            self.emit(AgentEvent::Revoked { scope: Scope::Control }).await;
                        }
                    }
                },
                m = self.ctl.recv() => if peer_gone(m) {
                    break EndReason::ConnectionLost;
                },
                Some(r) = reports.recv() => self.report(r).await,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        };
        tasks.abort_all();
        reason
    }

    /// Ends the session: tells the console (when it can still hear), the relay and the user.
    async fn finish(
        &mut self,
        tx0: &mut SealedSend,
        reason: EndReason,
        tell_console: bool,
    ) -> EndReason {
        if tell_console {
            let _ = tx0
                .send(&AgentToConsole::Ended {
                    reason: reason.clone(),
                })
                .await;
        }
        tx0.finish_and_flush(FLUSH).await;
        self.report(SessionReport::Ended {
            reason: reason.clone(),
        })
        .await;
        if reason == EndReason::ConnectionLost
            && let Some(closed) = tether_net::closed::reason(&self.relay.conn)
        {
            self.emit(AgentEvent::RelayLost {
                reason: closed.reason,
                retry_in: None,
            })
            .await;
        }
        self.emit(AgentEvent::Ended {
            reason: reason.clone(),
        })
        .await;
        reason
    }
}

/// Stream 0's messages, as its reader task hands them over.
type Stream0 = mpsc::Receiver<Result<ConsoleToAgent, SealedError>>;

async fn read_stream0(mut rx0: SealedRecv, to: mpsc::Sender<Result<ConsoleToAgent, SealedError>>) {
    loop {
        let m = rx0.recv::<ConsoleToAgent>().await;
        let stop = m.is_err();
        if to.send(m).await.is_err() || stop {
            return;
        }
    }
}

/// Whether a control-stream message means the console side is gone (or the relay link broke).
fn peer_gone(m: Option<Result<RelayToAgent, tether_net::FrameError>>) -> bool {
    matches!(m, Some(Ok(RelayToAgent::PeerGone)) | Some(Err(_)) | None)
}

fn technician_name(t: &TechnicianIdentity) -> String {
    format!("{} of {}", t.name, t.org)
}

fn lost_or_broken(e: &SealedError) -> EndReason {
    match e {
        SealedError::Seal(SealError::Tampered) => {
            warn!("a session frame failed authentication; ending the session");
            EndReason::ProtocolError("a session frame failed authentication".into())
        }
        SealedError::Seal(e) => EndReason::ProtocolError(e.to_string()),
        SealedError::Frame(tether_net::FrameError::Codec(e)) => {
            EndReason::ProtocolError(e.to_string())
        }
        SealedError::Frame(_) => EndReason::ConnectionLost,
    }
}

/// What one request task needs.
pub(crate) struct RequestCtx {
    pub keys: SessionKeys,
    /// The current grant; a long-lived request (a screen stream) watches it for revocation.
    pub grant: watch::Receiver<ScopeSet>,
    pub used: Arc<Mutex<HashSet<u32>>>,
    pub events: mpsc::Sender<AgentEvent>,
    pub reports: mpsc::Sender<SessionReport>,
    /// Capture backend; opened only by a granted view stream.
    pub screen: Arc<dyn ScreenProvider>,
    /// Input backend; opened only by a granted control stream.
    pub input: Arc<dyn InputProvider>,
    /// Who is on the other side, for "viewed by" messages.
    pub technician: String,
}

impl RequestCtx {
    async fn serve(self, send: quinn::SendStream, mut recv: quinn::RecvStream) {
        let Ok(Ok(StreamOpen { stream_id })) =
            tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<StreamOpen>(&mut recv)).await
        else {
            return;
        };
        // Stream 0 is the control stream; a repeated number would reuse keys (and nonces). Refuse both.
        let fresh = stream_id != 0
            && self
                .used
                .lock()
                .map(|mut u| u.insert(stream_id))
                .unwrap_or(false);
        if !fresh {
            warn!(stream_id, "refusing a reused stream number");
            return;
        }
        let (mut tx, mut rx) =
            SealedStream::new(send, recv, &self.keys, stream_id, Side::Agent).split();
        let Ok(Ok(req)) = tokio::time::timeout(STEP_TIMEOUT, rx.recv::<Request>()).await else {
            return;
        };
        let scope = req.scope();
        if !self.grant.borrow().contains(scope) {
            warn!(%scope, "refused: scope not granted");
            let what = requests::describe(&req);
            let _ = self.events.send(AgentEvent::Refused { what, scope }).await;
            let _ = self
                .reports
                .send(SessionReport::ScopeRefused { scope })
                .await;
            if tx.send(&Response::Refused { scope }).await.is_ok() {
                tx.finish_and_flush(STEP_TIMEOUT).await;
            }
            return;
        }
        if let Err(e) = requests::serve(req, &mut tx, &mut rx, &self).await {
            warn!(error = %e, "request stream failed");
            return;
        }
        tx.finish_and_flush(STEP_TIMEOUT).await;
    }
}
