//! Invitations: a technician in a session brings in a colleague, by name or by tier.
//!
//! The user agrees on the agent first; the agent then asks the relay ([`AgentToRelay::Invite`]),
//! which checks the invitee exists in the inviter's organisation and hands back a single-use
//! ticket. The agent opens a guest connection and trades the ticket for a slot that only the
//! invitee can claim ([`AgentToRelay::OpenInviteSlot`]); the code's secret goes to the inviting
//! technician sealed, so the relay never sees it. The invitee pairs and is asked for consent like
//! anyone else: nothing granted to the inviter passes to them.
//!
//! [`AgentToRelay::Invite`]: tether_proto::msg::AgentToRelay::Invite
//! [`AgentToRelay::OpenInviteSlot`]: tether_proto::msg::AgentToRelay::OpenInviteSlot

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use tether_proto::msg::{Invitee, RelayError, RelayErrorKind, TechnicianIdentity};

use crate::directory::Directory;
use crate::ids::{SessionId, TicketId};

/// One invitation, from the ticket to the invitee's claim.
#[derive(Debug, Clone)]
pub struct Invitation {
    /// The session the invitee joins (for the audit log).
    pub parent: SessionId,
    /// Who invited.
    pub by: String,
    /// The inviter's organisation; the invitee must belong to it.
    pub org: String,
    /// Whom.
    pub invitee: Invitee,
    /// The inviter leaves once the invitee is in.
    pub handover: bool,
}

/// Tickets not yet traded for a slot.
#[derive(Debug)]
pub struct Invites {
    tickets: Mutex<HashMap<TicketId, (Invitation, Instant)>>,
    ttl: Duration,
}

impl Invites {
    /// An empty table whose tickets live `ttl` (a code's lifetime).
    pub fn new(ttl: Duration) -> Self {
        Invites {
            tickets: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// Checks that `invitation.invitee` exists and is active in the inviter's organisation, then
    /// issues a ticket. Returns the named invitee's identity too, for the user to see.
    pub fn issue(
        &self,
        technicians: &dyn Directory,
        invitation: Invitation,
        now: Instant,
    ) -> Result<(TicketId, Option<TechnicianIdentity>), RelayError> {
        let unknown = |text: String| RelayError::new(RelayErrorKind::UnknownTechnician, text);
        let active = technicians
            .active()
            .map_err(|e| unknown(format!("the technician list is unreadable: {e}")))?;
        let mut matching = active
            .into_iter()
            .filter(|t| invitation.invitee.admits(&invitation.org, t));
        let named = match &invitation.invitee {
            Invitee::Technician(name) => Some(matching.next().ok_or_else(|| {
                unknown(format!(
                    "no active technician named {name:?} in {}",
                    invitation.org
                ))
            })?),
            Invitee::Tier(t) => {
                matching.next().ok_or_else(|| {
                    unknown(format!(
                        "nobody at {t} or above in {} to take the session",
                        invitation.org
                    ))
                })?;
                None
            }
        };
        let ticket = TicketId(rand::thread_rng().r#gen::<u64>());
        let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        tickets.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
        tickets.insert(ticket, (invitation, now));
        Ok((ticket, named))
    }

    /// Trades a ticket (once) for its invitation, if it has not expired.
    pub fn take(&self, ticket: TicketId, now: Instant) -> Option<Invitation> {
        let mut tickets = self.tickets.lock().unwrap_or_else(|p| p.into_inner());
        let (inv, at) = tickets.remove(&ticket)?;
        (now.duration_since(at) < self.ttl).then_some(inv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::technicians::Technicians;
    use tether_proto::msg::{TechnicianRole, Tier};

    fn invitation(invitee: Invitee) -> Invitation {
        Invitation {
            parent: SessionId(7),
            by: "Ada".into(),
            org: "Acme".into(),
            invitee,
            handover: false,
        }
    }

    #[test]
    fn tickets_need_a_real_invitee_and_work_once() {
        let dir = tempfile::tempdir().unwrap();
        let techs = Technicians::new(dir.path());
        techs.add("Ada", "Acme").unwrap();
        techs
            .add_full("Grace", "Acme", TechnicianRole::Technician, Tier::L2, None)
            .unwrap();
        techs
            .add_full("Linus", "Other", TechnicianRole::Technician, Tier::L3, None)
            .unwrap();
        let invites = Invites::new(Duration::from_secs(60));
        let now = Instant::now();

        let (ticket, who) = invites
            .issue(&techs, invitation(Invitee::Technician("Grace".into())), now)
            .unwrap();
        assert_eq!(who.unwrap().tier, Tier::L2);
        assert!(invites.take(ticket, now).is_some());
        assert!(invites.take(ticket, now).is_none(), "single use");

        let e = invites
            .issue(&techs, invitation(Invitee::Technician("Bob".into())), now)
            .unwrap_err();
        assert_eq!(e.kind, RelayErrorKind::UnknownTechnician);
        // Linus is L3, but of another organisation.
        let e = invites
            .issue(&techs, invitation(Invitee::Tier(Tier::L3)), now)
            .unwrap_err();
        assert_eq!(e.kind, RelayErrorKind::UnknownTechnician, "{e}");
        let (ticket, who) = invites
            .issue(&techs, invitation(Invitee::Tier(Tier::L2)), now)
            .unwrap();
        assert!(who.is_none());
        assert!(
            invites
                .take(ticket, now + Duration::from_secs(61))
                .is_none(),
            "expired"
        );
    }
}
