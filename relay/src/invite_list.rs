//! Answers [`ConsoleToRelay::Invitations`]: the open invitation slots whose invitee the token's
//! technician is (by name, or by tier within the organisation), without any code.
//!
//! [`ConsoleToRelay::Invitations`]: tether_proto::msg::ConsoleToRelay::Invitations

use std::sync::Arc;
use std::time::Instant;

use tether_net::framed;
use tether_proto::msg::{OpenInvitation, RelayError, RelayErrorKind, RelayToConsole};

use crate::conn::{finish, refuse};
use crate::directory::Directory;
use crate::slots::SlotTable;

/// What listing invitations needs.
#[derive(Debug, Clone)]
pub struct ListCtx {
    /// Who holds the token.
    pub directory: Arc<dyn Directory>,
    /// The open slots (invitation slots among them).
    pub slots: Arc<SlotTable>,
}

pub(crate) async fn serve(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    token: String,
    ctx: &ListCtx,
) {
    let who = match ctx.directory.verify(&token) {
        Ok(Ok(t)) => t,
        Err(_) => {
            let reply = RelayToConsole::Error(RelayError::new(
                RelayErrorKind::Busy,
                crate::claim::DIRECTORY_DOWN,
            ));
            return refuse(&conn, send, &reply).await;
        }
        Ok(Err(_)) => {
            let reply = RelayToConsole::Error(RelayError::new(
                RelayErrorKind::BadToken,
                crate::claim::message(RelayErrorKind::BadToken),
            ));
            return refuse(&conn, send, &reply).await;
        }
    };
    let open = ctx.slots.with(|t| t.open_links(Instant::now()));
    let list = open
        .into_iter()
        .filter_map(|(link, left)| {
            let inv = link.invite.as_ref()?;
            inv.invitee.admits(&inv.org, &who).then(|| OpenInvitation {
                by: inv.by.clone(),
                invitee: inv.invitee.clone(),
                handover: inv.handover,
                // At most a code's lifetime (minutes).
                expires_in_secs: u32::try_from(left.as_secs()).unwrap_or(u32::MAX),
            })
        })
        .collect();
    if framed::write_msg(&mut send, &RelayToConsole::Invitations(list))
        .await
        .is_ok()
    {
        finish(&conn, send).await;
    }
}
