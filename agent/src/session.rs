//! One paired session on the agent: consent, then serving requests within the grant.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_net::client::RelayConnection;
use tether_net::framed;
use tether_net::sealed::{SealedError, SealedRecv, SealedSend, SealedStream};
use tether_proto::msg::{
    AgentToConsole, AgentToRelay, ConsoleToAgent, EndReason, Request, Response, SessionReport,
    StreamOpen, TechnicianIdentity,
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
        let (mut tx0, mut rx0) =
            SealedStream::new(stream0.0, stream0.1, &self.keys, 0, Side::Agent).split();
        let requested = match tokio::time::timeout(STEP_TIMEOUT, rx0.recv::<ConsoleToAgent>()).await
        {
            Ok(Ok(ConsoleToAgent::ConsentRequest { scopes })) => scopes,
            Ok(Ok(ConsoleToAgent::End)) => {
                return Ok(self
                    .finish(&mut tx0, EndReason::TechnicianEnded, false)
                    .await);
            }
            Ok(Err(e)) => return Ok(self.finish(&mut tx0, lost_or_broken(&e), false).await),
            Err(_) => {
                return Ok(self
                    .finish(
                        &mut tx0,
                        EndReason::ProtocolError("no consent request".into()),
                        true,
                    )
                    .await);
            }
        };
        // The relay checked the role already; the agent never relies on that.
        if requested.intersection(technician.role.allowed_scopes()) != requested {
            warn!(role = %technician.role, %requested, "refusing scopes beyond the technician's role");
            return Ok(self.finish(&mut tx0, EndReason::Forbidden, true).await);
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
        let answer = tokio::time::timeout(config.consent_timeout, async {
            loop {
                match self.ui.commands.recv().await {
                    Some(UserCommand::Consent(s)) => return Some(s),
                    Some(UserCommand::EndSession) => return None,
                    // Nothing granted yet, so nothing to take back.
                    Some(UserCommand::RevokeControl) => {}
                    // The front end is gone: nobody can say yes.
                    None => return Some(ScopeSet::EMPTY),
                }
            }
        })
        .await;
        let granted = match answer {
            Ok(Some(s)) => s.intersection(requested),
            Ok(None) => return Ok(self.finish(&mut tx0, EndReason::UserEnded, true).await),
            Err(_) => ScopeSet::EMPTY,
        };
        if tx0
            .send(&AgentToConsole::ConsentDecision { granted })
            .await
            .is_err()
        {
            return Ok(self
                .finish(&mut tx0, EndReason::ConnectionLost, false)
                .await);
        }
        self.report(SessionReport::Consent { requested, granted })
            .await;
        self.emit(AgentEvent::ConsentDecided { granted }).await;
        if granted.is_empty() {
            return Ok(self.finish(&mut tx0, EndReason::ConsentDenied, false).await);
        }
        known.remember(&org);
        info!(%granted, "consent given");
        let who = technician_name(&technician);
        let reason = self.serve(granted, rx0, config, who).await;
        let tell_console = !matches!(
            reason,
            EndReason::TechnicianEnded | EndReason::ConnectionLost
        );
        Ok(self.finish(&mut tx0, reason, tell_console).await)
    }

    /// Serves requests until the session ends; returns why it ended.
    async fn serve(
        &mut self,
        granted: ScopeSet,
        mut rx0: SealedRecv,
        config: &ShareConfig,
        technician: String,
    ) -> EndReason {
        let (grant_tx, grant) = watch::channel(granted);
        let (report_tx, mut reports) = mpsc::channel::<SessionReport>(16);
        let (s0_tx, mut s0) = mpsc::channel(4);
        let mut tasks = JoinSet::new();
        // Stream 0 is read in its own task so the select below stays cancel-safe.
        tasks.spawn(async move {
            loop {
                let m = rx0.recv::<ConsoleToAgent>().await;
                let stop = m.is_err();
                if s0_tx.send(m).await.is_err() || stop {
                    return;
                }
            }
        });
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
                    Some(Ok(ConsoleToAgent::ConsentRequest { .. })) => {
                        break EndReason::ProtocolError("consent requested twice".into())
                    }
                    Some(Err(e)) => break lost_or_broken(&e),
                    None => break EndReason::ConnectionLost,
                },
                c = self.ui.commands.recv() => match c {
                    Some(UserCommand::EndSession) | None => break EndReason::UserEnded,
                    Some(UserCommand::Consent(_)) => {}
                    Some(UserCommand::RevokeControl) => {
                        if grant.borrow().contains(Scope::Control) {
                            grant_tx.send_modify(|g| g.remove(Scope::Control));
                            info!("the user revoked control");
                            self.emit(AgentEvent::Revoked { scope: Scope::Control }).await;
                        }
                    }
                },
                m = self.ctl.recv() => match m {
                    Some(Ok(tether_proto::msg::RelayToAgent::PeerGone)) | Some(Err(_)) | None => {
                        break EndReason::ConnectionLost
                    }
                    Some(Ok(_)) => {}
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
