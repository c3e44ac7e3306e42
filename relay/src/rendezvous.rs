//! Open slots and claim accounting. No I/O: time is passed in, so expiry and rate limits are tested
//! without sleeping.
//!
//! A slot is single use: a claim removes it whether pairing later succeeds or not, so a failed pairing
//! burns the code. Expired slots are remembered for one more lifetime so a late claim hears "expired"
//! rather than "unknown", and so the number is not handed out again while someone may still type it.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use tether_proto::Slot;
use tether_proto::msg::RelayErrorKind;

/// Below this many open slots, slots have 3 digits (9-digit codes); above it, 6.
pub const SHORT_SLOT_MAX_OPEN: usize = 300;

/// Identifies one agent connection.
pub type AgentId = u64;

#[derive(Debug)]
struct Entry<L> {
    agent: AgentId,
    link: L,
    expires_at: Instant,
    expired: bool,
}

/// Counters for operators and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Slots currently claimable.
    pub open: usize,
    /// Claims for slots that never existed or were already used.
    pub unknown_claims: u64,
    /// Claims refused by the rate limit.
    pub rate_limited: u64,
}

/// The rendezvous table, generic over what links a slot to its agent.
#[derive(Debug)]
pub struct Rendezvous<L> {
    slots: HashMap<Slot, Entry<L>>,
    claims: HashMap<String, VecDeque<Instant>>,
    sources: HashMap<IpAddr, VecDeque<Instant>>,
    ttl: Duration,
    max_per_agent: usize,
    claims_per_minute: usize,
    claims_per_source_per_minute: usize,
    stats: Stats,
}

const MINUTE: Duration = Duration::from_secs(60);

/// How many digits a new slot has while `open` slots are held (this node's, or a whole cluster's):
/// 3 below [`SHORT_SLOT_MAX_OPEN`], else 6.
pub fn digits_for(open: usize) -> u32 {
    if open < SHORT_SLOT_MAX_OPEN { 3 } else { 6 }
}

/// Records an attempt in a one-minute sliding window; `false` if the window is already full.
fn admit_window(window: &mut VecDeque<Instant>, limit: usize, now: Instant) -> bool {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= MINUTE)
    {
        window.pop_front();
    }
    if window.len() >= limit {
        return false;
    }
    window.push_back(now);
    true
}

impl<L: Clone> Rendezvous<L> {
    /// An empty table.
    pub fn new(
        ttl: Duration,
        max_per_agent: usize,
        claims_per_minute: usize,
        claims_per_source_per_minute: usize,
    ) -> Self {
        Rendezvous {
            slots: HashMap::new(),
            claims: HashMap::new(),
            sources: HashMap::new(),
            ttl,
            max_per_agent,
            claims_per_minute,
            claims_per_source_per_minute,
            stats: Stats::default(),
        }
    }

    /// Counts a claim attempt from `source`, before its token is even looked at.
    pub fn admit_source(&mut self, source: IpAddr, now: Instant) -> Result<(), RelayErrorKind> {
        let window = self.sources.entry(source).or_default();
        if admit_window(window, self.claims_per_source_per_minute, now) {
            Ok(())
        } else {
            self.stats.rate_limited += 1;
            Err(RelayErrorKind::RateLimited)
        }
    }

    /// Reserves a fresh slot for `agent`.
    pub fn open(
        &mut self,
        agent: AgentId,
        link: L,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Result<Slot, RelayErrorKind> {
        self.check_room(agent)?;
        let digits = digits_for(self.slots.len());
        // With the table well below capacity, a free slot is found in a few draws.
        for _ in 0..64 {
            let slot = Slot::random(rng, digits);
            if self.insert(slot, agent, link.clone(), now) {
                return Ok(slot);
            }
        }
        Err(RelayErrorKind::Busy)
    }

    /// Whether `agent` may hold one more open slot.
    pub fn check_room(&self, agent: AgentId) -> Result<(), RelayErrorKind> {
        let held = self
            .slots
            .values()
            .filter(|e| e.agent == agent && !e.expired)
            .count();
        if held >= self.max_per_agent {
            return Err(RelayErrorKind::TooManySlots);
        }
        Ok(())
    }

    /// Puts `slot` in the table for `agent` (a slot chosen elsewhere: in a cluster, the database
    /// reserved it first); `false` if this table knows it already, open or expired.
    pub fn insert(&mut self, slot: Slot, agent: AgentId, link: L, now: Instant) -> bool {
        if self.slots.contains_key(&slot) {
            return false;
        }
        self.slots.insert(
            slot,
            Entry {
                agent,
                link,
                expires_at: now + self.ttl,
                expired: false,
            },
        );
        true
    }

    /// Whether this table knows `slot` (open, or expired and still remembered): if it does, a
    /// claim of it is decided here.
    pub fn knows(&self, slot: Slot) -> bool {
        self.slots.contains_key(&slot)
    }

    /// Counts a claim by `who` in its one-minute window; `RateLimited` if the window is full. A
    /// claim sent to another node of a cluster counts here too, so redirects cannot be used to
    /// probe for open slots faster than claims.
    pub fn count_claim(&mut self, who: &str, now: Instant) -> Result<(), RelayErrorKind> {
        let window = self.claims.entry(who.to_string()).or_default();
        if admit_window(window, self.claims_per_minute, now) {
            Ok(())
        } else {
            self.stats.rate_limited += 1;
            Err(RelayErrorKind::RateLimited)
        }
    }

    /// Claims `slot` for the technician identified by `who`. On success the slot is gone for good.
    pub fn claim(
        &mut self,
        slot: Slot,
        who: &str,
        now: Instant,
    ) -> Result<(AgentId, L), RelayErrorKind> {
        self.count_claim(who, now)?;
        match self.slots.get(&slot) {
            None => {
                self.stats.unknown_claims += 1;
                Err(RelayErrorKind::UnknownSlot)
            }
            Some(e) if e.expired || now >= e.expires_at => Err(RelayErrorKind::ExpiredSlot),
            Some(_) => {
                let e = self
                    .slots
                    .remove(&slot)
                    .ok_or(RelayErrorKind::UnknownSlot)?;
                Ok((e.agent, e.link))
            }
        }
    }

    /// Marks slots past their lifetime as expired and forgets those expired for a whole lifetime.
    /// Returns the newly expired ones so their agents can be told.
    pub fn expire(&mut self, now: Instant) -> Vec<(Slot, L)> {
        let ttl = self.ttl;
        self.slots.retain(|_, e| now < e.expires_at + ttl);
        self.claims.retain(|_, w| {
            w.back()
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
        });
        let mut newly = Vec::new();
        for (slot, e) in self.slots.iter_mut() {
            if !e.expired && now >= e.expires_at {
                e.expired = true;
                newly.push((*slot, e.link.clone()));
            }
        }
        newly
    }

    /// Every claimable slot's link, with the time it has left.
    pub fn open_links(&self, now: Instant) -> Vec<(L, Duration)> {
        self.slots
            .values()
            .filter(|e| !e.expired && now < e.expires_at)
            .map(|e| (e.link.clone(), e.expires_at - now))
            .collect()
    }

    /// Drops every slot of a departed agent; returns them (a cluster releases them in the
    /// database).
    pub fn remove_agent(&mut self, agent: AgentId) -> Vec<Slot> {
        let mut gone = Vec::new();
        self.slots.retain(|slot, e| {
            let keep = e.agent != agent;
            if !keep {
                gone.push(*slot);
            }
            keep
        });
        gone
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        Stats {
            open: self.slots.values().filter(|e| !e.expired).count(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn table() -> (Rendezvous<&'static str>, rand::rngs::StdRng, Instant) {
        (
            Rendezvous::new(Duration::from_secs(600), 2, 5, 8),
            rand::rngs::StdRng::seed_from_u64(9),
            Instant::now(),
        )
    }

    #[test]
    fn a_slot_is_claimed_once() {
        let (mut t, mut rng, now) = table();
        let slot = t.open(1, "agent-1", now, &mut rng).unwrap();
        assert!((100..1000).contains(&slot.0));
        assert_eq!(t.claim(slot, "ada", now), Ok((1, "agent-1")));
        assert_eq!(t.claim(slot, "ada", now), Err(RelayErrorKind::UnknownSlot));
        assert_eq!(t.stats().unknown_claims, 1);
    }

    #[test]
    fn slots_expire_and_say_so() {
        let (mut t, mut rng, now) = table();
        let slot = t.open(1, "a", now, &mut rng).unwrap();
        let later = now + Duration::from_secs(601);
        assert_eq!(t.expire(later), vec![(slot, "a")]);
        assert!(t.expire(later).is_empty(), "reported twice");
        assert_eq!(
            t.claim(slot, "ada", later),
            Err(RelayErrorKind::ExpiredSlot)
        );
        // After another lifetime it is forgotten entirely.
        t.expire(later + Duration::from_secs(600));
        assert_eq!(
            t.claim(slot, "bob", later + Duration::from_secs(600)),
            Err(RelayErrorKind::UnknownSlot)
        );
    }

    #[test]
    fn per_agent_limit_and_departure() {
        let (mut t, mut rng, now) = table();
        t.open(1, "a", now, &mut rng).unwrap();
        let s2 = t.open(1, "a", now, &mut rng).unwrap();
        assert_eq!(
            t.open(1, "a", now, &mut rng),
            Err(RelayErrorKind::TooManySlots)
        );
        assert!(t.open(2, "b", now, &mut rng).is_ok());
        let gone = t.remove_agent(1);
        assert_eq!(
            gone.len(),
            2,
            "both of agent 1's slots are returned: {gone:?}"
        );
        assert!(gone.contains(&s2));
        assert_eq!(t.stats().open, 1);
        assert_eq!(t.claim(s2, "ada", now), Err(RelayErrorKind::UnknownSlot));
    }

    #[test]
    fn claims_are_rate_limited_per_technician_per_minute() {
        let (mut t, _, now) = table();
        for _ in 0..5 {
            assert_eq!(
                t.claim(Slot(999), "ada", now),
                Err(RelayErrorKind::UnknownSlot)
            );
        }
        assert_eq!(
            t.claim(Slot(999), "ada", now),
            Err(RelayErrorKind::RateLimited)
        );
        // Another technician is unaffected; a minute later Ada may try again.
        assert_eq!(
            t.claim(Slot(999), "bob", now),
            Err(RelayErrorKind::UnknownSlot)
        );
        assert_eq!(
            t.claim(Slot(999), "ada", now + Duration::from_secs(60)),
            Err(RelayErrorKind::UnknownSlot)
        );
        assert_eq!(t.stats().rate_limited, 1);
    }

    #[test]
    fn a_slot_chosen_elsewhere_is_inserted_once_and_redirects_count_as_claims() {
        let (mut t, _, now) = table();
        assert!(!t.knows(Slot(417)));
        assert!(t.insert(Slot(417), 1, "a", now));
        assert!(
            !t.insert(Slot(417), 2, "b", now),
            "a known slot is not replaced"
        );
        assert!(t.knows(Slot(417)));
        assert!(t.insert(Slot(418), 1, "a", now));
        assert_eq!(t.check_room(1), Err(RelayErrorKind::TooManySlots));
        assert_eq!(t.check_room(2), Ok(()));
        for _ in 0..5 {
            assert_eq!(t.count_claim("ada", now), Ok(()));
        }
        assert_eq!(
            t.claim(Slot(417), "ada", now),
            Err(RelayErrorKind::RateLimited)
        );
        assert_eq!(t.claim(Slot(417), "bob", now), Ok((1, "a")));
        assert_eq!(digits_for(0), 3);
        assert_eq!(digits_for(SHORT_SLOT_MAX_OPEN - 1), 3);
        assert_eq!(digits_for(SHORT_SLOT_MAX_OPEN), 6);
    }

    #[test]
    fn claims_are_rate_limited_per_source_address() {
        let (mut t, _, now) = table();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..8 {
            assert_eq!(t.admit_source(a, now), Ok(()));
        }
        assert_eq!(t.admit_source(a, now), Err(RelayErrorKind::RateLimited));
        assert_eq!(t.admit_source(b, now), Ok(()));
        assert_eq!(t.admit_source(a, now + MINUTE), Ok(()));
    }
}
