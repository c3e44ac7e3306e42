//! The relay's identifiers as types of their own, so an agent id is never passed where a session id
//! is expected. All are relay-local numbers; they serialise as the bare number (audit lines and
//! stored rows are unchanged).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The number.
            pub fn get(self) -> u64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id!(
    /// One agent connection (the rendezvous table's `rendezvous::AgentId` is its number).
    AgentId
);
id!(
    /// One claimed session (one technician's; an invited colleague's session has its own).
    SessionId
);
id!(
    /// One session record (`tether-console sessions show ID`).
    RecordId
);
id!(
    /// One invitation ticket, traded once for an invitation slot.
    TicketId
);

/// Hands out agent and session ids from one counter, so no two are ever equal in a relay's life.
#[derive(Debug)]
pub struct IdSource {
    next: AtomicU64,
}

impl Default for IdSource {
    fn default() -> Self {
        IdSource {
            next: AtomicU64::new(1),
        }
    }
}

impl IdSource {
    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// A new agent connection's id.
    pub fn agent(&self) -> AgentId {
        AgentId(self.next())
    }

    /// A new session's id.
    pub fn session(&self) -> SessionId {
        SessionId(self.next())
    }
}
