//! The claim check, pure: given what the token verified as, the scopes asked for and the rate
//! limits' verdict, is a console's claim admitted, and if not, with which refusal?
//!
//! # Order of checks
//! 1. [`admit`]: the audit gate (no unaudited sessions), then the source address's window of failed
//!    claims, which only counts tokens that are not a valid technician's (so failures from a shared
//!    address never lock out real technicians there).
//! 2. [`check`]: the token (unknown, revoked, expired, directory unreadable), then the role against
//!    the scopes announced in the claim.
//! 3. The slot (`Rendezvous::claim`, which limits claims per technician), then [`check_invite`]:
//!    an invitation slot only admits its invitee.
//!
//! The caller does the I/O (the directory lookup, the table) and hands the results in, so every
//! outcome is unit-tested here without a relay.

use tether_proto::ScopeSet;
use tether_proto::msg::{RelayErrorKind, TechnicianIdentity};

use crate::invite::Invitation;
use crate::technicians::TokenProblem;

/// What the directory said about a claim's token.
#[derive(Debug, Clone)]
pub enum TokenVerdict {
    /// A technician in good standing.
    Valid(TechnicianIdentity),
    /// Not a good token.
    Problem(TokenProblem),
    /// The directory could not be read.
    Unreadable,
}

impl TokenVerdict {
    /// Whether the token is not known to be bad: a directory that cannot be read is the relay's
    /// trouble, not a failed claim of the caller's.
    fn not_refuted(&self) -> bool {
        matches!(self, TokenVerdict::Valid(_) | TokenVerdict::Unreadable)
    }
}

/// Why a claim is refused while the technician directory cannot be read (its database is down):
/// never "the token is not valid", which would send a technician to ask for a new one.
pub const DIRECTORY_DOWN: &str = "the relay cannot check technician tokens right now (its \
     technician directory or database is unavailable); nothing was started, try again shortly";

/// Why a claim is refused: the kind the console hears, the words, and (for the audit log) the
/// technician when the token was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The error kind sent to the console and counted.
    pub kind: RelayErrorKind,
    /// What the console shows.
    pub text: String,
    /// The technician, when the token was theirs.
    pub technician: Option<String>,
}

impl Refusal {
    fn new(kind: RelayErrorKind, text: impl Into<String>, technician: Option<&str>) -> Self {
        Refusal {
            kind,
            text: text.into(),
            technician: technician.map(str::to_string),
        }
    }

    /// A refusal with the standard words for `kind`.
    pub fn plain(kind: RelayErrorKind, technician: Option<&str>) -> Self {
        Refusal::new(kind, message(kind), technician)
    }
}

/// The standard words for a claim refused with `kind`.
pub fn message(kind: RelayErrorKind) -> &'static str {
    match kind {
        RelayErrorKind::UnknownSlot => {
            "no open session code matches; it may be mistyped, already used, or burned"
        }
        RelayErrorKind::ExpiredSlot => "this session code has expired; ask the user for a new one",
        RelayErrorKind::BadToken => "the technician token is not valid on this relay",
        RelayErrorKind::RateLimited => "too many claims in the last minute; wait and try again",
        RelayErrorKind::Busy => "this agent is already in a session",
        _ => "claim refused",
    }
}

/// Step 1: the audit gate's verdict (`Err` with its words when the log cannot be written), then,
/// for a token that is not a valid technician's only, the source address's limit (`source` is
/// called at most once, and only then, since it counts the attempt).
pub fn admit(
    audit: Result<(), &str>,
    token: &TokenVerdict,
    source: impl FnOnce() -> Result<(), RelayErrorKind>,
) -> Result<(), Refusal> {
    audit.map_err(|text| Refusal::new(RelayErrorKind::Busy, text, None))?;
    if token.not_refuted() {
        return Ok(());
    }
    source().map_err(|kind| {
        Refusal::new(
            kind,
            "too many failed claims from your address in the last minute; wait and try again",
            None,
        )
    })
}

/// Step 2: the token, then the role against the scopes asked for. Admitted: the technician.
pub fn check(token: TokenVerdict, scopes: ScopeSet) -> Result<TechnicianIdentity, Refusal> {
    let technician = match token {
        TokenVerdict::Valid(t) => t,
        TokenVerdict::Problem(problem) => {
            let kind = RelayErrorKind::BadToken;
            let text = match problem {
                TokenProblem::Unknown => message(kind),
                TokenProblem::Revoked => "this technician token has been revoked",
                TokenProblem::Expired => "this technician token has expired",
            };
            return Err(Refusal::new(kind, text, None));
        }
        TokenVerdict::Unreadable => {
            return Err(Refusal::new(RelayErrorKind::Busy, DIRECTORY_DOWN, None));
        }
    };
    let allowed = technician.role.allowed_scopes();
    if scopes.intersection(allowed) != scopes {
        let text = format!(
            "your role ({}) may only ask for {allowed}, not {scopes}",
            technician.role
        );
        return Err(Refusal::new(
            RelayErrorKind::Forbidden,
            text,
            Some(&technician.name),
        ));
    }
    Ok(technician)
}

/// Step 3: a slot opened for an invitation admits only its invitee.
pub fn check_invite(
    invite: Option<&Invitation>,
    technician: &TechnicianIdentity,
) -> Result<(), Refusal> {
    match invite {
        Some(inv) if !inv.invitee.admits(&inv.org, technician) => {
            let text = format!(
                "this code is for an invited technician ({} of {}), not for you; the code is now used",
                inv.invitee, inv.org
            );
            Err(Refusal::new(
                RelayErrorKind::Forbidden,
                text,
                Some(&technician.name),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SessionId;
    use tether_proto::Scope;
    use tether_proto::msg::{Invitee, TechnicianRole, Tier};

    fn tech(name: &str, role: TechnicianRole, tier: Tier) -> TechnicianIdentity {
        TechnicianIdentity {
            name: name.into(),
            org: "Acme".into(),
            role,
            tier,
        }
    }

    fn ada() -> TechnicianIdentity {
        tech("Ada", TechnicianRole::Technician, Tier::L1)
    }

    #[test]
    fn the_audit_gate_comes_first_and_valid_tokens_skip_the_source_limit() {
        let valid = TokenVerdict::Valid(ada());
        let bad = TokenVerdict::Problem(TokenProblem::Unknown);
        let r = admit(Err("audit down"), &valid, || Ok(())).unwrap_err();
        assert_eq!(
            (r.kind, r.text.as_str()),
            (RelayErrorKind::Busy, "audit down")
        );
        let mut asked = false;
        admit(Ok(()), &valid, || {
            asked = true;
            Err(RelayErrorKind::RateLimited)
        })
        .unwrap();
        assert!(!asked, "a valid token is never counted against its address");
        let r = admit(Ok(()), &bad, || Err(RelayErrorKind::RateLimited)).unwrap_err();
        assert_eq!(r.kind, RelayErrorKind::RateLimited);
        assert!(r.text.contains("from your address"), "{}", r.text);
        assert!(admit(Ok(()), &bad, || Ok(())).is_ok());
    }

    #[test]
    fn tokens_and_roles_decide() {
        let view: ScopeSet = [Scope::View].into_iter().collect();
        assert_eq!(
            check(TokenVerdict::Valid(ada()), ScopeSet::all()).unwrap(),
            ada()
        );
        for (problem, words) in [
            (TokenProblem::Unknown, "not valid"),
            (TokenProblem::Revoked, "revoked"),
            (TokenProblem::Expired, "expired"),
        ] {
            let r = check(TokenVerdict::Problem(problem), view).unwrap_err();
            assert_eq!(r.kind, RelayErrorKind::BadToken);
            assert!(r.text.contains(words), "{}", r.text);
            assert_eq!(r.technician, None);
        }
        let r = check(TokenVerdict::Unreadable, view).unwrap_err();
        assert_eq!(r, Refusal::new(RelayErrorKind::Busy, DIRECTORY_DOWN, None));

        let viewer = tech("Vic", TechnicianRole::Viewer, Tier::L1);
        assert!(check(TokenVerdict::Valid(viewer.clone()), view).is_ok());
        let r = check(TokenVerdict::Valid(viewer), ScopeSet::all()).unwrap_err();
        assert_eq!(r.kind, RelayErrorKind::Forbidden);
        assert_eq!(r.technician.as_deref(), Some("Vic"));
        assert!(
            r.text.starts_with("your role (viewer) may only ask for"),
            "{}",
            r.text
        );
    }

    #[test]
    fn an_invitation_slot_admits_only_its_invitee() {
        let inv = |invitee| Invitation {
            parent: SessionId(1),
            by: "Ada".into(),
            org: "Acme".into(),
            invitee,
            handover: false,
        };
        let grace = tech("Grace", TechnicianRole::Technician, Tier::L2);
        assert!(check_invite(None, &grace).is_ok());
        assert!(check_invite(Some(&inv(Invitee::Technician("Grace".into()))), &grace).is_ok());
        assert!(check_invite(Some(&inv(Invitee::Tier(Tier::L2))), &grace).is_ok());
        let r = check_invite(Some(&inv(Invitee::Tier(Tier::L3))), &grace).unwrap_err();
        assert_eq!(r.kind, RelayErrorKind::Forbidden);
        assert!(r.text.contains("the code is now used"), "{}", r.text);
        let r = check_invite(Some(&inv(Invitee::Technician("Bob".into()))), &grace).unwrap_err();
        assert_eq!(r.technician.as_deref(), Some("Grace"));
    }
}
