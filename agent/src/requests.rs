//! Serving one granted request on its own sealed stream. The scope check has already passed
//! (`session::RequestCtx`); each request kind is one arm here, and long-lived kinds (a screen stream)
//! own their stream until they finish.

use tether_net::sealed::{SealedError, SealedRecv, SealedSend};
use tether_proto::msg::{Request, Response};

use crate::session::RequestCtx;
use crate::ui::AgentEvent;
use crate::{diagnostics, inventory, screen};

/// What a request hands over, in words for the user.
pub(crate) fn describe(req: &Request) -> String {
    match req {
        Request::Inventory => "the hardware and software inventory".into(),
        Request::Diagnostic { probe, .. } => format!("the diagnostic \"{probe}\""),
        Request::Displays => "the list of your displays".into(),
        Request::View { display } => format!("a live view of display {display}"),
        Request::Control { .. } => "your mouse and keyboard".into(),
    }
}

/// Serves `req`, which the user has granted.
pub(crate) async fn serve(
    req: Request,
    tx: &mut SealedSend,
    rx: &mut SealedRecv,
    ctx: &RequestCtx,
) -> Result<(), SealedError> {
    let what = describe(&req);
    if let Request::Diagnostic {
        probe,
        timeout_secs,
    } = req
    {
        return serve_diagnostic(probe, timeout_secs, what, tx, ctx).await;
    }
    // Long-lived screen streams own the stream until they end.
    match req {
        Request::View { display } => return screen::serve_view(display, tx, rx, ctx).await,
        Request::Control { display } => return screen::serve_control(display, tx, rx, ctx).await,
        _ => {}
    }
    let screen = ctx.screen.clone();
    // Collection reads the OS synchronously; keep it off the async workers so the session stays live.
    let work = tokio::task::spawn_blocking(move || match req {
        Request::Inventory => Response::Inventory(Box::new(inventory::collect())),
        Request::Displays => match screen.displays() {
            Ok(d) => Response::Displays(d),
            Err(e) => Response::Failed {
                message: e.to_string(),
            },
        },
        Request::Diagnostic { .. } | Request::View { .. } | Request::Control { .. } => {
            Response::Failed {
                message: "unreachable: served above".into(),
            }
        }
    });
    let response = work.await.unwrap_or_else(|e| Response::Failed {
        message: format!("collection failed: {e}"),
    });
    tx.send(&response).await?;
    let _ = ctx.events.send(AgentEvent::Served { what }).await;
    Ok(())
}

/// Re-validates the probe (the console's checks are not trusted), shows the user it runs, runs it
/// within its timeout and answers. Invalid parameters are refused before anything runs.
async fn serve_diagnostic(
    probe: tether_proto::diag::Probe,
    timeout_secs: Option<u16>,
    what: String,
    tx: &mut SealedSend,
    ctx: &RequestCtx,
) -> Result<(), SealedError> {
    let timeout = probe
        .validate()
        .and_then(|()| diagnostics::timeout_for(&probe, timeout_secs));
    let timeout = match timeout {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "refusing a diagnostic with invalid parameters");
            return tx
                .send(&Response::Failed {
                    message: format!("invalid parameter: {e}"),
                })
                .await;
        }
    };
    let _ = ctx
        .events
        .send(AgentEvent::Running { what: what.clone() })
        .await;
    let report = diagnostics::run_probe(probe, timeout).await;
    tx.send(&Response::Diagnostic(Box::new(report))).await?;
    let _ = ctx.events.send(AgentEvent::Served { what }).await;
    Ok(())
}
