//! Who may read or change a session record, as one pure function of the facts the store looked
//! up. The store (`Records`) only ever finds records of the asker's own
//! organisation, so "another org's record" reaches this as "no record".
//!
//! # Rules
//! - Any role reads (the knowledge base is for everyone who helps).
//! - Writing (notes, close, facts) is for the technician and admin roles: the viewer role only
//!   watches screens.
//! - Only an open record changes; a closed one is final.
//! - What ran in a session (probes, inventories) is posted only by a technician who was in it.

use tether_proto::msg::TechnicianRole;
use tether_proto::records::{RecordError, RecordErrorKind, RecordQuery, RecordState};

/// What a query does to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List, show or search.
    Read,
    /// Add notes (ticket, device, problem, cause, fix).
    Note,
    /// Close with a resolution.
    Close,
    /// Post probe results or an inventory reference.
    PostFacts,
}

impl Action {
    /// What `query` does.
    pub fn of(query: &RecordQuery) -> Action {
        match query {
            RecordQuery::List { .. } | RecordQuery::Show { .. } | RecordQuery::Search { .. } => {
                Action::Read
            }
            RecordQuery::Note { .. } => Action::Note,
            RecordQuery::Close { .. } => Action::Close,
            RecordQuery::Facts { .. } => Action::PostFacts,
        }
    }

    /// Whether it changes the record.
    pub fn writes(self) -> bool {
        self != Action::Read
    }
}

/// The record as the store found it in the asker's organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The id asked for.
    pub id: u64,
    /// Its state; `None` when there is no such record in the asker's organisation.
    pub state: Option<RecordState>,
    /// Whether the asker was one of its technicians.
    pub involved: bool,
}

/// The error for a record that does not exist in the asker's organisation.
pub fn unknown(id: u64) -> RecordError {
    RecordError::new(
        RecordErrorKind::UnknownRecord,
        format!("no session record {id} in your organisation"),
    )
}

/// Whether a technician of `role` may do `action` at all (before any record is looked up).
pub fn may(role: TechnicianRole, action: Action) -> Result<(), RecordError> {
    if action.writes() && role == TechnicianRole::Viewer {
        return Err(RecordError::new(
            RecordErrorKind::Forbidden,
            "the viewer role may read session records but not change them",
        ));
    }
    Ok(())
}

/// Whether `action` (a write) may change `target`.
pub fn may_change(action: Action, target: Target) -> Result<(), RecordError> {
    let id = target.id;
    match target.state {
        None => return Err(unknown(id)),
        Some(RecordState::Closed) => {
            return Err(RecordError::new(
                RecordErrorKind::Closed,
                format!("session record {id} is closed; it can no longer change"),
            ));
        }
        Some(RecordState::Open) => {}
    }
    if action == Action::PostFacts && !target.involved {
        return Err(RecordError::new(
            RecordErrorKind::Forbidden,
            format!("you were not in session {id}; only its technicians post what ran in it"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITES: [Action; 3] = [Action::Note, Action::Close, Action::PostFacts];

    fn target(state: Option<RecordState>, involved: bool) -> Target {
        Target {
            id: 7,
            state,
            involved,
        }
    }

    #[test]
    fn every_role_reads_and_viewers_never_write() {
        for role in [
            TechnicianRole::Viewer,
            TechnicianRole::Technician,
            TechnicianRole::Admin,
        ] {
            assert!(may(role, Action::Read).is_ok());
            for a in WRITES {
                let r = may(role, a);
                assert_eq!(r.is_err(), role == TechnicianRole::Viewer, "{role:?} {a:?}");
            }
        }
        let e = may(TechnicianRole::Viewer, Action::Close).unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::Forbidden);
    }

    #[test]
    fn only_open_records_change_and_only_their_technicians_post_facts() {
        let open = Some(RecordState::Open);
        for a in WRITES {
            assert_eq!(
                may_change(a, target(None, true)).unwrap_err().kind,
                RecordErrorKind::UnknownRecord
            );
            let closed = may_change(a, target(Some(RecordState::Closed), true)).unwrap_err();
            assert_eq!(closed.kind, RecordErrorKind::Closed);
            assert!(may_change(a, target(open, true)).is_ok());
        }
        assert!(may_change(Action::Note, target(open, false)).is_ok());
        assert!(may_change(Action::Close, target(open, false)).is_ok());
        let e = may_change(Action::PostFacts, target(open, false)).unwrap_err();
        assert_eq!(e.kind, RecordErrorKind::Forbidden);
        assert!(e.to_string().contains("not in session 7"), "{e}");
    }

    #[test]
    fn queries_map_to_actions() {
        use tether_proto::records::RecordNote;
        assert_eq!(Action::of(&RecordQuery::List { limit: 1 }), Action::Read);
        assert_eq!(Action::of(&RecordQuery::Show { id: 1 }), Action::Read);
        let note = RecordQuery::Note {
            id: 1,
            note: RecordNote::default(),
        };
        assert_eq!(Action::of(&note), Action::Note);
        assert_eq!(Action::of(&note).writes(), note.writes());
        let close = RecordQuery::Close {
            id: 1,
            resolution: "x".into(),
        };
        assert_eq!(Action::of(&close).writes(), close.writes());
    }
}
