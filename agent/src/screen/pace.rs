//! When the view loop captures (pure, time passed in).
//!
//! The loop asks [`Pacer::due`] when the next capture may start, tells it [`Pacer::asked`] when it
//! starts one, [`Pacer::captured`] what came back, and [`Pacer::input`] when a control stream of the
//! same session injected an event. The rule:
//! - while the screen changes (or the pointer moves), capture every [`FRAME_INTERVAL`];
//! - after [`IDLE_AFTER`] captures' worth of time without a change, only every [`IDLE_EVERY`]th
//!   interval (5 a second), which is what a static screen costs;
//! - an injected key, button, scroll or text ([`Injected::Press`]) ends the idle pace at once: the
//!   next capture starts now, and, while the program on the remote side has not drawn its answer
//!   yet, again every [`WAKE_INTERVAL`] for [`WAKE_FOR`]; then the active pace. So the first key
//!   after a quiet spell shows within a few milliseconds of its drawing instead of waiting for the
//!   next idle tick (up to 200 ms).
//! - an injected pointer move ([`Injected::Motion`]) only restarts the active pace (capturing at
//!   once when idle): a technician moving the mouse must not cost a capture every few milliseconds.
//!
//! The loop also keeps its own limits (one capture at a time, at most `InFlight`'s window of frames
//! unacknowledged); the pacer only says when a capture would be useful.

use std::time::{Duration, Instant};

/// Time between captures: 30 frames per second at most.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(33);
/// After this many intervals in a row without a change, the screen counts as idle...
pub const IDLE_AFTER: u32 = 30;
/// ...and only every `IDLE_EVERY`th interval captures (5 per second), until something changes.
pub const IDLE_EVERY: u32 = 6;
/// After an injected event, captures are this close together until the picture changes...
pub const WAKE_INTERVAL: Duration = Duration::from_millis(8);
/// ...for at most this long (a program answers a key within a few milliseconds; one that takes
/// longer is caught by the active pace, which the event also restarted). Bounds the cost of a key
/// that changes nothing to about six extra captures.
pub const WAKE_FOR: Duration = Duration::from_millis(48);

/// What a control stream injected, as far as the pace is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// A pointer move.
    Motion,
    /// A key, button, scroll or text: something a program answers by drawing.
    Press,
}

/// The capture schedule of one view stream.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// When the last capture started (`None`: none yet, so one is due at once).
    last_ask: Option<Instant>,
    /// The last change seen, or the last injected event (both keep the active pace).
    last_activity: Instant,
    /// Until when injected input keeps the fast pace, unless a change came first.
    wake_until: Option<Instant>,
    /// An injected event has not been followed by a capture yet.
    woken: bool,
}

impl Pacer {
    /// A pacer for a view that starts at `now` (active: the first frame is due at once).
    pub fn new(now: Instant) -> Self {
        Pacer {
            last_ask: None,
            last_activity: now,
            wake_until: None,
            woken: false,
        }
    }

    /// The time between captures at `now`.
    fn interval(&self, now: Instant) -> Duration {
        if self.wake_until.is_some_and(|t| now < t) {
            return WAKE_INTERVAL;
        }
        if now.saturating_duration_since(self.last_activity) >= FRAME_INTERVAL * IDLE_AFTER {
            FRAME_INTERVAL * IDLE_EVERY
        } else {
            FRAME_INTERVAL
        }
    }

    /// When the next capture should start (in the past or `now`: at once).
    pub fn due(&self, now: Instant) -> Instant {
        match self.last_ask {
            None => now,
            Some(_) if self.woken => now,
            Some(at) => at + self.interval(now),
        }
    }

    /// A capture started at `now`.
    pub fn asked(&mut self, now: Instant) {
        self.last_ask = Some(now);
        self.woken = false;
    }

    /// A capture came back at `now`; `changed`: its pixels differed or the pointer moved.
    pub fn captured(&mut self, changed: bool, now: Instant) {
        if changed {
            self.last_activity = now;
            // The answer to the input is on its way: back to the active pace.
            self.wake_until = None;
        }
    }

    /// A control stream of this session injected an event at `now`.
    pub fn input(&mut self, what: Injected, now: Instant) {
        let was_idle = self.idle(now);
        self.last_activity = now;
        match what {
            Injected::Press => {
                self.wake_until = Some(now + WAKE_FOR);
                self.woken = true;
            }
            Injected::Motion => self.woken |= was_idle,
        }
    }

    /// Whether the screen counts as idle at `now` (the slow pace).
    pub fn idle(&self, now: Instant) -> bool {
        self.interval(now) > FRAME_INTERVAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a pacer on simulated time: each capture takes `cost`, and `changes(t)` says whether the
    /// capture started at `t` (ms from the start) sees a change. Inputs arrive at the given ms.
    /// Returns the start times (ms) of the captures in `[0, until)`.
    fn run(until: u64, inputs: &[u64], cost: u64, changes: impl Fn(u64) -> bool) -> Vec<u64> {
        run_with(until, inputs, Injected::Press, cost, changes)
    }

    fn run_with(
        until: u64,
        inputs: &[u64],
        what: Injected,
        cost: u64,
        changes: impl Fn(u64) -> bool,
    ) -> Vec<u64> {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut p = Pacer::new(t0);
        let mut starts = Vec::new();
        let mut busy_until: Option<(u64, bool)> = None;
        for now in 0..until {
            if inputs.contains(&now) {
                p.input(what, ms(now));
            }
            if let Some((done, changed)) = busy_until
                && done <= now
            {
                p.captured(changed, ms(now));
                busy_until = None;
            }
            if busy_until.is_none() && p.due(ms(now)) <= ms(now) {
                p.asked(ms(now));
                starts.push(now);
                busy_until = Some((now + cost, changes(now)));
            }
        }
        starts
    }

    #[test]
    fn a_still_screen_drops_to_the_idle_pace_after_about_a_second() {
        let t0 = Instant::now();
        let starts = run(3000, &[], 1, |t| t == 0);
        // Active pace first (every 33 ms), then every 198 ms.
        assert_eq!(&starts[..3], &[0, 33, 66]);
        let late: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).skip(40).collect();
        assert!(late.iter().all(|&d| d == 198), "{late:?}");
        let mut p = Pacer::new(t0);
        p.asked(t0);
        assert!(!p.idle(t0 + Duration::from_millis(900)));
        assert!(p.idle(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn input_after_idle_captures_at_once_not_at_the_next_idle_tick() {
        // Quiet for 2 s, a key at 2000 ms; the program draws its answer 4 ms later.
        let key = 2000;
        let drawn = key + 4;
        let starts = run(2400, &[key], 1, |t| t >= drawn && t < drawn + 40);
        let after: Vec<u64> = starts.iter().copied().filter(|&t| t >= key).collect();
        assert_eq!(after[0], key, "the event starts a capture at once");
        // The capture that sees the drawing starts within one wake interval of it...
        let seen = after.iter().copied().find(|&t| t >= drawn).unwrap();
        assert!(
            seen - drawn <= WAKE_INTERVAL.as_millis() as u64,
            "{after:?}"
        );
        // ...where the idle pace alone would have waited for the next 198 ms tick.
        let idle_only = run(2400, &[], 1, |_| false);
        let next_idle = idle_only.iter().copied().find(|&t| t >= drawn).unwrap();
        assert!(next_idle - drawn > 50, "{idle_only:?}");
        // Once the change is seen, the active pace (33 ms) goes on: no 6 ms capture storm.
        let later: Vec<u64> = after.iter().copied().filter(|&t| t > seen).collect();
        assert_eq!(later[0] - seen, 33, "{after:?}");
    }

    #[test]
    fn a_key_that_changes_nothing_costs_a_bounded_burst_then_the_idle_pace_returns() {
        let key = 2000;
        let starts = run(5000, &[key], 1, |_| false);
        let burst = starts
            .iter()
            .filter(|&&t| t >= key && t < key + WAKE_FOR.as_millis() as u64)
            .count();
        assert!(burst <= 7, "{burst} captures in the wake burst");
        // A second later the pace is idle again.
        let tail: Vec<u64> = starts.iter().copied().filter(|&t| t > key + 1500).collect();
        assert!(tail.windows(2).all(|w| w[1] - w[0] == 198), "{tail:?}");
    }

    #[test]
    fn typing_keeps_the_active_pace_and_a_slow_capture_is_not_overlapped() {
        // Keys every 100 ms keep the screen active, whatever the pixels say.
        let keys: Vec<u64> = (1..30).map(|i| i * 100).collect();
        let starts = run(3000, &keys, 1, |_| false);
        let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g <= 33), "{gaps:?}");
        // Pointer moves every 5 ms keep the active pace but never go faster than it.
        let moves: Vec<u64> = (400..1400).step_by(5).collect();
        let starts = run_with(3000, &moves, Injected::Motion, 1, |_| false);
        let during: Vec<u64> = starts
            .iter()
            .copied()
            .filter(|&t| (400..1400).contains(&t))
            .collect();
        assert!(during.windows(2).all(|w| w[1] - w[0] == 33), "{during:?}");
        // After a quiet spell, the first move captures at once.
        let first = run_with(3000, &[2500], Injected::Motion, 1, |_| false);
        assert!(first.contains(&2500), "{first:?}");
        // A capture slower than the wake interval: the next starts when it is done, never two.
        let slow = run(2200, &[2000], 20, |_| false);
        let after: Vec<u64> = slow.into_iter().filter(|&t| t >= 2000).collect();
        assert!(after.windows(2).all(|w| w[1] - w[0] >= 20), "{after:?}");
    }
}
