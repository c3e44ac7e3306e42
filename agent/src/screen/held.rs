//! What a control stream holds down, and how fast it may press keys. Pure: time is passed in.
//!
//! The input thread asks [`Held::check`] before every event and tells [`Held::done`] after a
//! successful injection, so the set is exactly what the agent pressed on the user's machine. When
//! the stream ends, `control` is revoked, or the console sends `ReleaseAll`, [`Held::release_all`]
//! gives the releases to inject: no key or button stays down after a technician goes.

use std::time::{Duration, Instant};

use tether_proto::screen::{Action, Code, InputEvent, MouseButton};

/// Most keys held at once. Real chords have up to five keys (Ctrl+Alt+Shift+Super+T); a press
/// beyond this is refused, so a hostile console cannot hold the whole keyboard.
pub const MAX_HELD_KEYS: usize = 10;
/// Sustained key presses per second. A fast typist makes about 15, key repeat about 30; a
/// console sending far more is refused (releases are never refused, so nothing sticks).
pub const KEY_PRESSES_PER_SECOND: u32 = 100;
/// Key presses allowed in one burst above the sustained rate.
pub const KEY_BURST: u32 = 200;
/// Most notches in one scroll event, each way.
pub const MAX_SCROLL_NOTCHES: i32 = 100;

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Inject it.
    Inject,
    /// Harmless and not injected (a release of something not held); the reason for the console.
    Ignore(String),
    /// Not injected: over a limit, or unknown. The session goes on.
    Refuse(String),
}

/// A token bucket of key presses.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = self
            .at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.at = Some(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * f64::from(KEY_PRESSES_PER_SECOND))
            .min(f64::from(KEY_BURST));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The keys and buttons one control stream holds down.
#[derive(Debug, Clone)]
pub struct Held {
    keys: Vec<Code>,
    buttons: Vec<MouseButton>,
    bucket: Bucket,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            keys: Vec::new(),
            buttons: Vec::new(),
            bucket: Bucket {
                tokens: f64::from(KEY_BURST),
                at: None,
            },
        }
    }
}

impl Held {
    /// Whether `event` may be injected now.
    pub fn check(&mut self, event: &InputEvent, now: Instant) -> Verdict {
        match event {
            InputEvent::Key { key, action } => {
                let Some(code) = key.code() else {
                    return Verdict::Refuse(format!("{key} is not a key this agent knows"));
                };
                let held = self.keys.contains(&code);
                match action {
                    Action::Release if !held => {
                        Verdict::Ignore(format!("{code} was not pressed; release ignored"))
                    }
                    Action::Release => Verdict::Inject,
                    Action::Press | Action::Click => {
                        if *action == Action::Press && !held && self.keys.len() >= MAX_HELD_KEYS {
                            Verdict::Refuse(format!(
                                "{code} refused: at most {MAX_HELD_KEYS} keys can be held at once"
                            ))
                        } else if !self.bucket.take(now) {
                            Verdict::Refuse(format!(
                                "{code} refused: more than {KEY_PRESSES_PER_SECOND} key presses a \
                                 second"
                            ))
                        } else {
                            Verdict::Inject
                        }
                    }
                }
            }
            InputEvent::Button {
                button,
                action: Action::Release,
            } if !self.buttons.contains(button) => Verdict::Ignore(format!(
                "{button:?} button was not pressed; release ignored"
            )),
            InputEvent::Scroll { dx, dy } | InputEvent::ScrollFine { dx, dy }
                if dx.unsigned_abs() > notches_limit(event)
                    || dy.unsigned_abs() > notches_limit(event) =>
            {
                Verdict::Refuse(format!(
                    "scroll refused: at most {MAX_SCROLL_NOTCHES} notches at once"
                ))
            }
            _ => Verdict::Inject,
        }
    }

    /// Records a successful injection.
    pub fn done(&mut self, event: &InputEvent) {
        match event {
            InputEvent::Key {
                key,
                action: Action::Press,
            } => {
                if let Some(c) = key.code()
                    && !self.keys.contains(&c)
                {
                    self.keys.push(c);
                }
            }
            InputEvent::Key {
                key,
                action: Action::Release,
            } => self.keys.retain(|k| Some(*k) != key.code()),
            InputEvent::Button {
                button,
                action: Action::Press,
            } if !self.buttons.contains(button) => self.buttons.push(*button),
            InputEvent::Button {
                button,
                action: Action::Release,
            } => self.buttons.retain(|b| b != button),
            _ => {}
        }
    }

    /// The releases for everything held, last pressed first; the set is empty afterwards.
    pub fn release_all(&mut self) -> Vec<InputEvent> {
        let keys = self.keys.drain(..).rev().map(|c| InputEvent::Key {
            key: c.into(),
            action: Action::Release,
        });
        let buttons = self
            .buttons
            .drain(..)
            .rev()
            .map(|button| InputEvent::Button {
                button,
                action: Action::Release,
            });
        keys.chain(buttons).collect()
    }

    /// How many keys are held.
    #[cfg(test)]
    pub fn keys_held(&self) -> usize {
        self.keys.len()
    }
}

fn notches_limit(event: &InputEvent) -> u32 {
    let per = match event {
        InputEvent::ScrollFine { .. } => tether_proto::screen::SCROLL_UNITS_PER_NOTCH,
        _ => 1,
    };
    (MAX_SCROLL_NOTCHES * per).unsigned_abs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::screen::KeyId;

    fn key(c: Code, action: Action) -> InputEvent {
        InputEvent::Key {
            key: c.into(),
            action,
        }
    }

    fn run(h: &mut Held, e: InputEvent, now: Instant) -> Verdict {
        let v = h.check(&e, now);
        if v == Verdict::Inject {
            h.done(&e);
        }
        v
    }

    #[test]
    fn a_chord_is_released_in_reverse_order() {
        let (mut h, now) = (Held::default(), Instant::now());
        for c in [Code::ControlLeft, Code::ShiftLeft, Code::KeyT] {
            assert_eq!(run(&mut h, key(c, Action::Press), now), Verdict::Inject);
        }
        assert_eq!(
            run(&mut h, key(Code::KeyT, Action::Release), now),
            Verdict::Inject
        );
        assert_eq!(
            run(
                &mut h,
                InputEvent::Button {
                    button: MouseButton::Left,
                    action: Action::Press
                },
                now
            ),
            Verdict::Inject
        );
        assert_eq!(
            h.release_all(),
            vec![
                key(Code::ShiftLeft, Action::Release),
                key(Code::ControlLeft, Action::Release),
                InputEvent::Button {
                    button: MouseButton::Left,
                    action: Action::Release
                },
            ]
        );
        assert!(h.release_all().is_empty());
    }

    #[test]
    fn a_release_without_a_press_is_ignored_with_a_reason() {
        let mut h = Held::default();
        let v = h.check(&key(Code::AltLeft, Action::Release), Instant::now());
        assert_eq!(
            v,
            Verdict::Ignore("AltLeft was not pressed; release ignored".into())
        );
        let v = h.check(
            &InputEvent::Button {
                button: MouseButton::Back,
                action: Action::Release,
            },
            Instant::now(),
        );
        assert!(matches!(v, Verdict::Ignore(_)), "{v:?}");
    }

    #[test]
    fn a_chord_of_50_keys_stops_at_the_limit() {
        let (mut h, now) = (Held::default(), Instant::now());
        let verdicts: Vec<_> = Code::ALL
            .iter()
            .take(50)
            .map(|c| run(&mut h, key(*c, Action::Press), now))
            .collect();
        assert!(
            verdicts[..MAX_HELD_KEYS]
                .iter()
                .all(|v| *v == Verdict::Inject)
        );
        assert!(
            matches!(&verdicts[MAX_HELD_KEYS], Verdict::Refuse(m) if m.contains("at most 10 keys")),
            "{:?}",
            verdicts[MAX_HELD_KEYS]
        );
        assert_eq!(h.keys_held(), MAX_HELD_KEYS);
        // A held key repeats (key repeat), and releases still work.
        assert_eq!(
            run(&mut h, key(Code::KeyA, Action::Press), now),
            Verdict::Inject
        );
        assert_eq!(h.release_all().len(), MAX_HELD_KEYS);
    }

    #[test]
    fn ten_thousand_presses_a_second_are_bounded_and_releases_never_are() {
        let (mut h, t0) = (Held::default(), Instant::now());
        let mut injected = 0;
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_micros(100 * u64::from(i));
            if run(&mut h, key(Code::KeyA, Action::Click), now) == Verdict::Inject {
                injected += 1;
            }
        }
        // One second: the burst plus the sustained rate, no more.
        assert!(
            injected <= KEY_BURST + KEY_PRESSES_PER_SECOND + 1,
            "{injected}"
        );
        assert!(injected >= KEY_BURST, "{injected}");
        let later = t0 + Duration::from_secs(1);
        assert!(matches!(
            run(&mut h, key(Code::KeyB, Action::Press), later),
            Verdict::Inject | Verdict::Refuse(_)
        ));
        h.done(&key(Code::KeyB, Action::Press));
        assert_eq!(
            run(&mut h, key(Code::KeyB, Action::Release), later),
            Verdict::Inject
        );
        // After a quiet second, typing works again.
        let quiet = later + Duration::from_secs(1);
        assert_eq!(
            run(&mut h, key(Code::KeyC, Action::Click), quiet),
            Verdict::Inject
        );
    }

    #[test]
    fn unknown_keys_and_huge_scrolls_are_refused() {
        let mut h = Held::default();
        let v = h.check(
            &InputEvent::Key {
                key: KeyId(0x01),
                action: Action::Press,
            },
            Instant::now(),
        );
        assert_eq!(
            v,
            Verdict::Refuse("unknown key 0x01 is not a key this agent knows".into())
        );
        let v = h.check(&InputEvent::Scroll { dx: 0, dy: 101 }, Instant::now());
        assert!(matches!(v, Verdict::Refuse(_)), "{v:?}");
        let v = h.check(&InputEvent::ScrollFine { dx: 0, dy: 360 }, Instant::now());
        assert_eq!(v, Verdict::Inject);
    }
}
