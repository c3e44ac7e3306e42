//! Where everything clickable sits in the console window, in points from the window's top-left.
//!
//! The controls and the side panel keep these places whatever the window's size (the live screen takes
//! the rest), so the UI tests click there. Rectangles are `[x, y, width, height]`.

/// The window's title (tests find the window by it).
pub const TITLE: &str = "Tether console";

/// The window's size when it opens.
pub const SIZE: [f32; 2] = [1440.0, 900.0];

/// The session code field.
pub const CODE: [f32; 4] = [64.0, 10.0, 190.0, 34.0];
/// "Connect".
pub const CONNECT: [f32; 4] = [810.0, 10.0, 120.0, 34.0];
/// "End session".
pub const END: [f32; 4] = [940.0, 10.0, 140.0, 34.0];
/// The consent strip (asked, waiting, granted or denied).
pub const CONSENT: [f32; 4] = [10.0, 52.0, 1420.0, 42.0];

/// The tick box of the `i`-th scope to ask for (in [`tether_proto::Scope::ALL`] order).
pub fn scope_box(i: usize) -> [f32; 4] {
    [270.0 + 132.0 * i as f32, 10.0, 128.0, 34.0]
}

/// The side panel (inventory or diagnostics); the live screen is to its right.
pub const PANEL: [f32; 4] = [10.0, 104.0, 560.0, 786.0];
/// The "Inventory" tab.
pub const TAB_INVENTORY: [f32; 4] = [10.0, 104.0, 140.0, 30.0];
/// The "Diagnostics" tab.
pub const TAB_DIAGNOSTICS: [f32; 4] = [156.0, 104.0, 140.0, 30.0];

/// "Refresh" in the inventory panel.
pub const REFRESH: [f32; 4] = [10.0, 144.0, 110.0, 30.0];
/// The inventory filter.
pub const FILTER: [f32; 4] = [128.0, 144.0, 442.0, 30.0];
/// The `i`-th table in the picker (in `Table::ALL` order).
pub fn table_tab(i: usize) -> [f32; 4] {
    [10.0 + 112.0 * i as f32, 182.0, 106.0, 28.0]
}
/// The inventory table.
pub const TABLE: [f32; 4] = [10.0, 218.0, 560.0, 672.0];

/// The `i`-th probe (in `ProbeKind::ALL` order) in the diagnostics panel.
pub fn probe(i: usize) -> [f32; 4] {
    let (col, row) = ((i % 2) as f32, (i / 2) as f32);
    [10.0 + 282.0 * col, 144.0 + 28.0 * row, 276.0, 26.0]
}
/// The selected probe's parameters.
pub const PARAMS: [f32; 4] = [10.0, 404.0, 440.0, 30.0];
/// "Run" the selected probe.
pub const RUN: [f32; 4] = [458.0, 404.0, 112.0, 30.0];
/// "Health check".
pub const HEALTH: [f32; 4] = [10.0, 442.0, 200.0, 30.0];
/// The verdicts.
pub const RESULTS: [f32; 4] = [10.0, 480.0, 560.0, 410.0];

/// Left edge of the live screen.
pub const SCREEN_X: f32 = 584.0;

/// The point to click inside a rectangle (its centre), in whole pixels.
pub fn centre(r: [f32; 4]) -> (i32, i32) {
    ((r[0] + r[2] / 2.0) as i32, (r[1] + r[3] / 2.0) as i32)
}

/// The point to click on a tick box's box.
pub fn tick(r: [f32; 4]) -> (i32, i32) {
    ((r[0] + 10.0) as i32, centre(r).1)
}
