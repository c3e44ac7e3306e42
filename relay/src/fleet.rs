//! IT's fleet queries from a console: the technician token decides the org, and every answer is
//! limited to that org's devices.

use std::sync::Arc;

use tether_net::framed;
use tether_proto::fleet::{FleetError, FleetErrorKind, FleetQuery, FleetReply};
use tether_proto::msg::TechnicianRole;
use tracing::warn;

use crate::blocking::blocking;
use crate::conn::finish;
use crate::directory::Directory;
use crate::store::Store;

/// What answering a fleet query needs.
#[derive(Debug, Clone)]
pub struct FleetCtx {
    /// Who holds the token (and so which org the answer is limited to).
    pub directory: Arc<dyn Directory>,
    /// The fleet store.
    pub store: Arc<dyn Store>,
}

pub(crate) async fn serve(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    token: String,
    query: FleetQuery,
    ctx: &FleetCtx,
) {
    let refuse = |kind, text: &str| FleetReply::Error(FleetError::new(kind, text));
    let org = match ctx.directory.verify(&token) {
        // Fleet inventory is for technicians and admins of the org; a viewer only watches screens.
        Ok(Ok(t)) if t.role == TechnicianRole::Viewer => {
            let reply = refuse(
                FleetErrorKind::Forbidden,
                "the viewer role may not read the fleet inventory",
            );
            return crate::conn::refuse(&conn, send, &reply).await;
        }
        Ok(Ok(t)) => t.org,
        Err(_) => {
            let reply = refuse(FleetErrorKind::StoreFailed, crate::claim::DIRECTORY_DOWN);
            return crate::conn::refuse(&conn, send, &reply).await;
        }
        Ok(Err(_)) => {
            let reply = refuse(
                FleetErrorKind::BadToken,
                "the technician token is not valid on this relay",
            );
            return crate::conn::refuse(&conn, send, &reply).await;
        }
    };
    let store = ctx.store.clone();
    let replies: Result<Vec<FleetReply>, FleetError> = match query {
        FleetQuery::ListDevices => blocking(&store, move |s| s.devices(&org))
            .await
            .map(|d| vec![FleetReply::Devices(d)]),
        FleetQuery::ShowDevice { device } => blocking(&store, move |s| s.device(&org, &device))
            .await
            .map(|d| vec![FleetReply::Device(Box::new(d))]),
        FleetQuery::History { device } => blocking(&store, move |s| s.history(&org, &device))
            .await
            .map(|h| vec![FleetReply::History(h)]),
        FleetQuery::Search { name, version } => {
            blocking(&store, move |s| s.search(&org, &name, version.as_deref()))
                .await
                .map(|h| vec![FleetReply::Hits(h)])
        }
        FleetQuery::Export => {
            blocking(&store, move |s| {
                let mut out = Vec::new();
                for d in s.devices(&org)? {
                    out.push(FleetReply::Device(Box::new(s.device(&org, &d.device_id)?)));
                }
                out.push(FleetReply::End);
                Ok(out)
            })
            .await
        }
    };
    let replies = replies.unwrap_or_else(|e| vec![FleetReply::Error(e)]);
    for r in &replies {
        if let Err(e) = framed::write_msg(&mut send, r).await {
            warn!(error = %e, "fleet answer not delivered");
            return;
        }
    }
    finish(&conn, send).await;
}
