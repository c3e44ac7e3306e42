//! Consent, the most security-critical part of a session, with time passed in: how long a paired
//! session waits for the consent request, the user's prompt (silence means no, an answer never
//! grants more than was asked), and what an ask for more puts to the user.
//!
//! # Flow
//! 1. After pairing, [`ConsentRequestWait`]: a console that says nothing for [`STEP_TIMEOUT`] is
//!    broken; once either side chats, the pair may go quiet for [`CHAT_IDLE`].
//! 2. The consent request: the role is checked first, then the user sees a [`Prompt`].
//! 3. Mid-session, an ask for more ([`more_to_ask`]) asks only for what is not granted yet, after
//!    the role check, one question at a time.

use std::time::{Duration, Instant};

use tether_proto::ScopeSet;
use tether_proto::msg::{EndReason, MoreOutcome};

use crate::config::STEP_TIMEOUT;

/// How long a chatting pair may go quiet before the technician asks for consent.
pub(crate) const CHAT_IDLE: Duration = Duration::from_secs(300);

/// How long a paired session waits for the consent request, with time passed in so it is tested
/// without sleeping. Right after pairing, a console that says nothing for [`STEP_TIMEOUT`] is
/// broken; once either side has chatted, the pair may go quiet for [`CHAT_IDLE`]. Every event
/// starts the wait again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConsentRequestWait {
    limit: Duration,
    until: Instant,
}

impl ConsentRequestWait {
    pub(crate) fn new(paired: Instant) -> Self {
        ConsentRequestWait {
            limit: STEP_TIMEOUT,
            until: paired + STEP_TIMEOUT,
        }
    }

    /// Something happened at `now`; `chat` if it was a chat line, either way.
    pub(crate) fn event(&mut self, now: Instant, chat: bool) {
        if chat {
            self.limit = CHAT_IDLE;
        }
        self.until = now + self.limit;
    }

    /// When the wait ends with no consent request.
    pub(crate) fn until(&self) -> Instant {
        self.until
    }

    /// Why the session ends when the wait runs out: no request within the current limit.
    pub(crate) fn expired(&self) -> EndReason {
        EndReason::NoRequest {
            secs: u32::try_from(self.limit.as_secs()).unwrap_or(u32::MAX),
        }
    }
}

/// The user's consent prompt, with time passed in: silence until the deadline means no, and an
/// answer never grants more than was asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prompt {
    pub(crate) requested: ScopeSet,
    until: Instant,
}

impl Prompt {
    pub(crate) fn new(requested: ScopeSet, shown: Instant, timeout: Duration) -> Self {
        Prompt {
            requested,
            until: shown + timeout,
        }
    }

    /// The grant for the user's answer `given`.
    pub(crate) fn answer(&self, given: ScopeSet) -> ScopeSet {
        given.intersection(self.requested)
    }

    /// When silence becomes "no".
    pub(crate) fn until(&self) -> Instant {
        self.until
    }
}

/// What an ask for `asked` puts to the user, given the role's `allowed` scopes and what is
/// `granted` now: only the scopes not granted yet, or why the user is not asked at all.
pub(crate) fn more_to_ask(
    allowed: ScopeSet,
    granted: ScopeSet,
    asked: ScopeSet,
    busy: bool,
) -> Result<ScopeSet, MoreOutcome> {
    // The role first: a viewer asking for control hears so even while another ask waits.
    if !asked.difference(allowed).is_empty() {
        return Err(MoreOutcome::Forbidden);
    }
    if busy {
        return Err(MoreOutcome::Busy);
    }
    let new = asked.difference(granted);
    if new.is_empty() {
        return Err(MoreOutcome::NothingNew);
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CONSENT_TIMEOUT, ShareConfig};

    #[test]
    fn a_silent_console_is_given_up_on_one_step_after_pairing() {
        let t0 = Instant::now();
        let wait = ConsentRequestWait::new(t0);
        assert_eq!(STEP_TIMEOUT, Duration::from_secs(30));
        assert_eq!(wait.until(), t0 + Duration::from_secs(30));
    }

    #[test]
    fn a_chatting_pair_may_go_quiet_for_five_minutes_before_consent() {
        let t0 = Instant::now();
        let mut wait = ConsentRequestWait::new(t0);
        let chat = t0 + Duration::from_secs(20);
        wait.event(chat, true);
        assert_eq!(wait.until(), chat + Duration::from_secs(300));
        // A later event that is not chat keeps the chat limit, counted from that event.
        let other = chat + Duration::from_secs(200);
        wait.event(other, false);
        assert_eq!(wait.until(), other + Duration::from_secs(300));
    }

    #[test]
    fn events_other_than_chat_keep_the_short_wait() {
        let t0 = Instant::now();
        let mut wait = ConsentRequestWait::new(t0);
        let at = t0 + Duration::from_secs(10);
        wait.event(at, false);
        assert_eq!(wait.until(), at + STEP_TIMEOUT);
    }

    #[test]
    fn silence_at_the_consent_prompt_is_no_after_sixty_seconds() {
        let config = ShareConfig::new(tether_net::RelayTarget {
            addr: "127.0.0.1:1".into(),
            trust: tether_net::Trust::Fingerprint("00".into()),
            connect_timeout: Duration::from_secs(1),
            direct: Default::default(),
        });
        assert_eq!(config.consent_timeout, CONSENT_TIMEOUT);
        let shown = Instant::now();
        let asked: ScopeSet = "inventory,view".parse().unwrap_or(ScopeSet::EMPTY);
        let prompt = Prompt::new(asked, shown, config.consent_timeout);
        assert_eq!(prompt.until(), shown + Duration::from_secs(60));
        // An answer is capped at what was asked.
        assert_eq!(prompt.answer(ScopeSet::all()), asked);
    }

    /// Issue 16 item 6: an ask for more puts only what is not granted yet to the user, checks the
    /// role first, and waits its turn.
    #[test]
    fn an_ask_for_more_asks_only_for_what_is_new() {
        let s = |t: &str| t.parse::<ScopeSet>().unwrap_or(ScopeSet::EMPTY);
        let tech = ScopeSet::all();
        let viewer = s("view");
        assert_eq!(
            more_to_ask(tech, s("view"), s("view,control"), false),
            Ok(s("control"))
        );
        assert_eq!(
            more_to_ask(tech, s("view,control"), s("control"), false),
            Err(MoreOutcome::NothingNew)
        );
        assert_eq!(
            more_to_ask(viewer, s("view"), s("control"), false),
            Err(MoreOutcome::Forbidden)
        );
        assert_eq!(
            more_to_ask(viewer, s("view"), s("control"), true),
            Err(MoreOutcome::Forbidden)
        );
        assert_eq!(
            more_to_ask(tech, s("view"), s("control"), true),
            Err(MoreOutcome::Busy)
        );
        // The answer never grants more than the new scopes.
        let prompt = Prompt::new(s("control"), Instant::now(), CONSENT_TIMEOUT);
        assert_eq!(prompt.answer(ScopeSet::all()), s("control"));
        assert_eq!(prompt.answer(s("inventory")), ScopeSet::EMPTY);
    }
}
