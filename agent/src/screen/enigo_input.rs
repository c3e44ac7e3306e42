//! Input injection with enigo (XTEST through x11rb on X11). libei is deliberately not enabled:
//! `Enigo::new` panics there without a session D-Bus.

use enigo::{Axis, Button, Coordinate, Direction, Enigo, Keyboard, Mouse, Settings};
use tether_proto::screen::{Action, InputEvent, Key, MouseButton};

use super::{InputError, InputProvider, InputSink};

/// enigo on the X server named `display`; `None` uses `$DISPLAY`.
#[derive(Debug, Clone, Default)]
pub struct EnigoInput {
    display: Option<String>,
}

impl EnigoInput {
    /// Injects into the X server `display`, or `$DISPLAY` when `None`.
    pub fn new(display: Option<String>) -> Self {
        EnigoInput { display }
    }
}

impl InputProvider for EnigoInput {
    fn open(&self) -> Result<Box<dyn InputSink>, InputError> {
        let settings = Settings {
            x11_display: self.display.clone(),
            linux_delay: 0,
            ..Settings::default()
        };
        let enigo = Enigo::new(&settings).map_err(|e| InputError::Connect(e.to_string()))?;
        Ok(Box::new(EnigoSink { enigo }))
    }
}

struct EnigoSink {
    enigo: Enigo,
}

fn direction(a: Action) -> Direction {
    match a {
        Action::Press => Direction::Press,
        Action::Release => Direction::Release,
        Action::Click => Direction::Click,
    }
}

fn key(k: Key) -> enigo::Key {
    match k {
        Key::Char(c) => enigo::Key::Unicode(c),
        Key::Enter => enigo::Key::Return,
        Key::Tab => enigo::Key::Tab,
        Key::Escape => enigo::Key::Escape,
        Key::Backspace => enigo::Key::Backspace,
        Key::Delete => enigo::Key::Delete,
        Key::Left => enigo::Key::LeftArrow,
        Key::Right => enigo::Key::RightArrow,
        Key::Up => enigo::Key::UpArrow,
        Key::Down => enigo::Key::DownArrow,
        Key::Control => enigo::Key::Control,
        Key::Shift => enigo::Key::Shift,
        Key::Alt => enigo::Key::Alt,
        Key::Meta => enigo::Key::Meta,
        // Only reached for Raw through `raw`; kept total for the compiler.
        Key::Raw(_) => enigo::Key::Other(0),
    }
}

impl InputSink for EnigoSink {
    fn inject(&mut self, event: &InputEvent, origin: (i32, i32)) -> Result<(), InputError> {
        let e = &mut self.enigo;
        let r = match event {
            InputEvent::MouseMove { x, y } => {
                e.move_mouse(origin.0 + x, origin.1 + y, Coordinate::Abs)
            }
            InputEvent::Button { button, action } => {
                let b = match button {
                    MouseButton::Left => Button::Left,
                    MouseButton::Middle => Button::Middle,
                    MouseButton::Right => Button::Right,
                };
                e.button(b, direction(*action))
            }
            InputEvent::Scroll { dx, dy } => {
                let h = if *dx != 0 {
                    e.scroll(*dx, Axis::Horizontal)
                } else {
                    Ok(())
                };
                h.and_then(|()| {
                    if *dy != 0 {
                        e.scroll(*dy, Axis::Vertical)
                    } else {
                        Ok(())
                    }
                })
            }
            InputEvent::Key {
                key: Key::Raw(code),
                action,
            } => e.raw(*code, direction(*action)),
            InputEvent::Key { key: k, action } => e.key(key(*k), direction(*action)),
            InputEvent::Text(t) => e.text(t),
        };
        r.map_err(|e| InputError::Inject(e.to_string()))
    }
}
