//! Serving one granted request on its own sealed stream. The scope check has already passed
//! (`session::RequestCtx`); each request kind is one arm here, and long-lived kinds (a screen stream)
//! own their stream until they finish.

use tether_net::sealed::{SealedError, SealedRecv, SealedSend};
use tether_proto::msg::{Request, Response};

use crate::session::RequestCtx;
use crate::ui::AgentEvent;
use crate::{diagnostics, inventory};

/// What a request hands over, in words for the user.
pub(crate) fn describe(req: &Request) -> String {
    match req {
        Request::Inventory => "the hardware and software inventory".into(),
        Request::Diagnostic { probe } => format!("the {probe} diagnostic"),
    }
}

/// Serves `req`, which the user has granted.
pub(crate) async fn serve(
    req: Request,
    tx: &mut SealedSend,
    _rx: &mut SealedRecv,
    ctx: &RequestCtx,
) -> Result<(), SealedError> {
    let what = describe(&req);
    // Collection reads the OS synchronously; keep it off the async workers so the session stays live.
    let work = tokio::task::spawn_blocking(move || match req {
        Request::Inventory => Response::Inventory(Box::new(inventory::collect())),
        Request::Diagnostic { probe } => Response::Diagnostic(diagnostics::run_probe(probe)),
    });
    let response = work.await.unwrap_or_else(|e| Response::Failed {
        message: format!("collection failed: {e}"),
    });
    tx.send(&response).await?;
    let _ = ctx.events.send(AgentEvent::Served { what }).await;
    Ok(())
}
