//! What can be checked before connecting. Claiming a code asks the user and uses the code up, so
//! a mistake found afterwards costs them a new code.

use super::CliError;
use super::args::{ButtonArg, InputAction};
use crate::keys::{chord_events, parse_chord};
use tether_proto::screen::{Action, InputEvent, MouseButton};

/// The input events of `tether-console input`, built before connecting: a chord that does not
/// parse is a usage error.
pub fn input_events(a: &InputAction) -> Result<Vec<InputEvent>, CliError> {
    let chord = |c: &str| parse_chord(c).map_err(|e| CliError::Usage(e.to_string()));
    Ok(match a {
        InputAction::Click {
            x,
            y,
            button,
            double,
        } => {
            let button = match button {
                ButtonArg::Left => MouseButton::Left,
                ButtonArg::Middle => MouseButton::Middle,
                ButtonArg::Right => MouseButton::Right,
                ButtonArg::Back => MouseButton::Back,
                ButtonArg::Forward => MouseButton::Forward,
            };
            let click = InputEvent::Button {
                button,
                action: Action::Click,
            };
            let mut v = vec![InputEvent::MouseMove { x: *x, y: *y }, click.clone()];
            if *double {
                v.push(click);
            }
            v
        }
        InputAction::Move { x, y } => vec![InputEvent::MouseMove { x: *x, y: *y }],
        InputAction::Type { text } => vec![InputEvent::Text(text.clone())],
        InputAction::Key { chord: c } => chord_events(&chord(c)?, true, true),
        InputAction::Keydown { chord: c } => chord_events(&chord(c)?, true, false),
        InputAction::Keyup { chord: c } => chord_events(&chord(c)?, false, true),
        InputAction::Scroll { n, horizontal } => {
            let (dx, dy) = if *horizontal { (*n, 0) } else { (0, *n) };
            vec![InputEvent::Scroll { dx, dy }]
        }
    })
}

/// Whether a file can be written at `path` later: its directory exists and it is not a directory.
pub fn check_output_path(path: &std::path::Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "{} is a directory, not a file name",
            path.display()
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!(
            "cannot write {}: the directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    Ok(())
}
