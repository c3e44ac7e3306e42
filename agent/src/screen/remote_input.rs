//! Input through a desktop's remote-desktop API (Mutter's own, or the RemoteDesktop portal): the
//! events both speak, with one mapping from [`InputEvent`] to them.
//!
//! Keys go by evdev code (the user's layout makes the character); text goes key by key as keysyms
//! (input-method text is lost right after a focus change). Smooth scrolling is added up into whole
//! notches, as on X11.

use tether_proto::screen::{Action, InputEvent};

use super::{InputError, InputSink, evdev_button, whole_notches};

/// The calls a remote-desktop session takes. Coordinates are in the stream's (display's) pixels.
pub(crate) trait RemoteDesktop {
    /// Moves the pointer.
    fn motion(&mut self, x: f64, y: f64) -> Result<(), String>;
    /// A button by evdev code.
    fn button(&mut self, code: i32, down: bool) -> Result<(), String>;
    /// Whole notches on `axis` (0 vertical, 1 horizontal).
    fn axis(&mut self, axis: u32, steps: i32) -> Result<(), String>;
    /// A key by evdev code.
    fn keycode(&mut self, code: u32, down: bool) -> Result<(), String>;
    /// A key by keysym.
    fn keysym(&mut self, sym: u32, down: bool) -> Result<(), String>;
}

/// evdev's Left Shift.
pub(crate) const SHIFT_KEYSYM: u32 = 0xffe1;

/// An [`InputSink`] over a remote-desktop session.
pub(crate) struct RemoteInput<D> {
    pub desktop: D,
    fine: (i32, i32),
}

impl<D: RemoteDesktop> RemoteInput<D> {
    /// Wraps `desktop`, tapping Shift first: a fresh virtual keyboard loses its first key.
    pub fn new(mut desktop: D) -> Result<Self, InputError> {
        desktop
            .keysym(SHIFT_KEYSYM, true)
            .map_err(InputError::Connect)?;
        desktop
            .keysym(SHIFT_KEYSYM, false)
            .map_err(InputError::Connect)?;
        std::thread::sleep(super::FIRST_KEY_SETTLE);
        Ok(RemoteInput {
            desktop,
            fine: (0, 0),
        })
    }
}

fn phases(action: Action) -> impl Iterator<Item = bool> {
    [
        matches!(action, Action::Press | Action::Click).then_some(true),
        matches!(action, Action::Release | Action::Click).then_some(false),
    ]
    .into_iter()
    .flatten()
}

impl<D: RemoteDesktop> RemoteInput<D> {
    fn notches(&mut self, dx: i32, dy: i32) -> Result<(), String> {
        if dy != 0 {
            self.desktop.axis(0, dy)?;
        }
        if dx != 0 {
            self.desktop.axis(1, dx)?;
        }
        Ok(())
    }

    fn apply(&mut self, event: &InputEvent) -> Result<(), String> {
        match event {
            InputEvent::MouseMove { x, y } => self.desktop.motion(f64::from(*x), f64::from(*y)),
            InputEvent::Button { button, action } => phases(*action)
                .try_for_each(|down| self.desktop.button(i32::from(evdev_button(*button)), down)),
            InputEvent::Scroll { dx, dy } => self.notches(*dx, *dy),
            InputEvent::ScrollFine { dx, dy } => {
                let (nx, ny) = whole_notches(&mut self.fine, *dx, *dy);
                self.notches(nx, ny)
            }
            InputEvent::Key { key, action } => {
                let code = key
                    .code()
                    .ok_or_else(|| format!("{key} is not a key this agent knows"))?;
                phases(*action)
                    .try_for_each(|down| self.desktop.keycode(u32::from(code.evdev()), down))
            }
            InputEvent::Text(t) => t.chars().try_for_each(|c| {
                let sym = xkbcommon::xkb::utf32_to_keysym(c as u32).raw();
                self.desktop.keysym(sym, true)?;
                self.desktop.keysym(sym, false)
            }),
            InputEvent::ReleaseAll => Ok(()),
        }
    }
}

impl<D: RemoteDesktop> InputSink for RemoteInput<D> {
    /// `origin` is not needed: remote-desktop coordinates are relative to the stream's display.
    fn inject(&mut self, event: &InputEvent, _origin: (i32, i32)) -> Result<(), InputError> {
        self.apply(event).map_err(InputError::Inject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_proto::keys::Code;
    use tether_proto::screen::{KeyId, MouseButton};

    #[derive(Default)]
    struct Log(Vec<String>);

    impl RemoteDesktop for Log {
        fn motion(&mut self, x: f64, y: f64) -> Result<(), String> {
            self.0.push(format!("motion {x} {y}"));
            Ok(())
        }
        fn button(&mut self, code: i32, down: bool) -> Result<(), String> {
            self.0.push(format!("button {code:#x} {down}"));
            Ok(())
        }
        fn axis(&mut self, axis: u32, steps: i32) -> Result<(), String> {
            self.0.push(format!("axis {axis} {steps}"));
            Ok(())
        }
        fn keycode(&mut self, code: u32, down: bool) -> Result<(), String> {
            self.0.push(format!("key {code} {down}"));
            Ok(())
        }
        fn keysym(&mut self, sym: u32, down: bool) -> Result<(), String> {
            self.0.push(format!("sym {sym:#x} {down}"));
            Ok(())
        }
    }

    #[test]
    fn events_map_to_remote_desktop_calls() {
        let mut input = RemoteInput {
            desktop: Log::default(),
            fine: (0, 0),
        };
        let events = [
            InputEvent::MouseMove { x: 10, y: 20 },
            InputEvent::Button {
                button: MouseButton::Right,
                action: Action::Click,
            },
            InputEvent::Key {
                key: KeyId::from(Code::KeyA),
                action: Action::Press,
            },
            InputEvent::ScrollFine { dx: 0, dy: 60 },
            InputEvent::ScrollFine { dx: 0, dy: 60 },
            InputEvent::Text("A".into()),
        ];
        for e in &events {
            input.inject(e, (100, 100)).unwrap();
        }
        assert_eq!(
            input.desktop.0,
            [
                "motion 10 20",
                "button 0x111 true",
                "button 0x111 false",
                "key 30 true",
                "axis 0 1",
                "sym 0x41 true",
                "sym 0x41 false",
            ]
        );
        let unknown = InputEvent::Key {
            key: KeyId(0xfff0),
            action: Action::Press,
        };
        assert!(input.inject(&unknown, (0, 0)).is_err());
    }
}
