//! The display picker's geometry and words: where its buttons sit from an origin, each display's
//! label, and a display in one line. Pure, shared by the viewer and the console window.

use tether_proto::screen::{ALL_MONITORS, DisplayInfo};
use tether_proto::text::display_safe;

/// The "Fit" / "1:1" toggle, from the picker's origin (`[x, y, width, height]`, points).
pub fn fit_button((x, y): (f32, f32)) -> [f32; 4] {
    [x, y, 56.0, 26.0]
}

/// The `i`-th display's button, from the picker's origin.
pub fn display_button((x, y): (f32, f32), i: usize) -> [f32; 4] {
    [x + 62.0 + 118.0 * i as f32, y, 112.0, 26.0]
}

/// A display's button label: its number (from 1, as people count) and name.
pub fn label(d: &DisplayInfo) -> String {
    let name: String = display_safe(&d.name).chars().take(10).collect();
    if d.name == ALL_MONITORS {
        "All".to_string()
    } else if name.is_empty() {
        format!("{}", d.index + 1)
    } else {
        format!("{}: {name}", d.index + 1)
    }
}

/// Most characters of a display's name shown anywhere (the agent names them; RandR names are short).
pub const MAX_NAME_SHOWN: usize = 40;

/// A display in one line, for status lines and logs.
pub fn describe(d: &DisplayInfo) -> String {
    let name: String = display_safe(&d.name).chars().take(MAX_NAME_SHOWN).collect();
    format!(
        "display {} {} {}x{} at ({}, {})",
        d.index, name, d.width, d.height, d.x, d.y
    )
}
