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

/// The "Chat" tab.
pub const TAB_CHAT: [f32; 4] = [302.0, 104.0, 140.0, 30.0];

/// "Ask for access" in the top bar, once paired in a "chat first" session.
pub const ASK: [f32; 4] = [1090.0, 10.0, 180.0, 34.0];
/// "Ask for control" at the right end of the consent strip, while a session runs without it.
pub const ASK_MORE: [f32; 4] = [
    CONSENT[0] + CONSENT[2] - 180.0,
    CONSENT[1] + 4.0,
    176.0,
    34.0,
];

/// The "Chat first" tick box in the chat panel (connect without asking for consent yet).
pub const CHAT_FIRST: [f32; 4] = [10.0, 144.0, 560.0, 28.0];
/// The colleague to invite (a name, or a tier: L2, L3).
pub const INVITEE: [f32; 4] = [10.0, 180.0, 250.0, 30.0];
/// The "hand over" tick box.
pub const HANDOVER: [f32; 4] = [268.0, 180.0, 130.0, 30.0];
/// "Invite".
pub const INVITE: [f32; 4] = [406.0, 180.0, 164.0, 30.0];
/// The invitation's outcome: the colleague's code, large, or why there is none.
pub const INVITE_RESULT: [f32; 4] = [10.0, 218.0, 560.0, 64.0];
/// The conversation.
pub const CHAT_LOG: [f32; 4] = [10.0, 290.0, 560.0, 550.0];
/// The chat text field (Enter sends).
pub const CHAT_INPUT: [f32; 4] = [10.0, 848.0, 440.0, 32.0];
/// "Send".
pub const CHAT_SEND: [f32; 4] = [458.0, 848.0, 112.0, 32.0];

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
