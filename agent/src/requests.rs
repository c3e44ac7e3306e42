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
        Request::Inventory => "the inventory summary".into(),
        Request::Diagnostic { probe } => format!("the {probe} diagnostic"),
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
    // Long-lived screen streams own the stream until they end.
    match req {
        Request::View { display } => return screen::serve_view(display, tx, rx, ctx).await,
        Request::Control { display } => return screen::serve_control(display, tx, rx, ctx).await,
        _ => {}
    }
    let screen = ctx.screen.clone();
    // Collection reads the OS synchronously; keep it off the async workers so the session stays live.
    let work = tokio::task::spawn_blocking(move || match req {
        Request::Inventory => Response::Inventory(inventory::collect_summary()),
        Request::Diagnostic { probe } => Response::Diagnostic(diagnostics::run_probe(probe)),
        Request::Displays => match screen.displays() {
            Ok(d) => Response::Displays(d),
            Err(e) => Response::Failed {
                message: e.to_string(),
            },
        },
        Request::View { .. } | Request::Control { .. } => Response::Failed {
            message: "served above".into(),
        },
    });
    let response = work.await.unwrap_or_else(|e| Response::Failed {
        message: format!("collection failed: {e}"),
    });
    tx.send(&response).await?;
    let _ = ctx.events.send(AgentEvent::Served { what }).await;
    Ok(())
}
