//! Where everything clickable sits in the console window, in points from the window's top-left.
//!
//! The controls and the side panel keep these places whatever the window's size (the live screen takes
//! the rest), so the UI tests click there; only the chat's log and field follow the window's bottom
//! (the constants are their places at [`SIZE`]). Everything fits from [`MIN_SIZE`] up: the top bar ends
//! before x = 1024 and the panels before y = 700. Rectangles are `[x, y, width, height]`.

/// The window's title (tests find the window by it).
pub const TITLE: &str = "Tether console";

/// The window's size when it opens.
pub const SIZE: [f32; 2] = [1440.0, 900.0];

/// The smallest size the window can be made: End and the live screen are still there.
pub const MIN_SIZE: [f32; 2] = [1024.0, 700.0];

/// The session code field.
pub const CODE: [f32; 4] = [64.0, 10.0, 150.0, 34.0];
/// "Connect" (before a session).
pub const CONNECT: [f32; 4] = [726.0, 10.0, 130.0, 34.0];
/// "End session" (during one, where "Connect" was).
pub const END: [f32; 4] = CONNECT;
/// The consent strip (asked, waiting, granted or denied).
pub const CONSENT: [f32; 4] = [10.0, 52.0, 1420.0, 42.0];

/// The tick box of the `i`-th scope to ask for (in [`tether_proto::Scope::ALL`] order).
/// Each box is as wide as its name needs, so all six fit before "Connect".
pub fn scope_box(i: usize) -> [f32; 4] {
    const WIDTHS: [f32; tether_proto::Scope::ALL.len()] = [58.0, 76.0, 102.0, 92.0, 94.0, 56.0];
    let x = 222.0 + WIDTHS[..i].iter().map(|w| w + 4.0).sum::<f32>();
    [x, 10.0, WIDTHS[i], 34.0]
}

/// The side panel (inventory or diagnostics); the live screen is to its right.
pub const PANEL: [f32; 4] = [10.0, 104.0, 560.0, MIN_SIZE[1] - 114.0];
/// The "Inventory" tab.
pub const TAB_INVENTORY: [f32; 4] = [10.0, 104.0, 108.0, 30.0];
/// The "Diagnostics" tab.
pub const TAB_DIAGNOSTICS: [f32; 4] = [123.0, 104.0, 108.0, 30.0];
/// The "Chat" tab.
pub const TAB_CHAT: [f32; 4] = [236.0, 104.0, 108.0, 30.0];
/// The "Files" tab.
pub const TAB_FILES: [f32; 4] = [349.0, 104.0, 108.0, 30.0];
/// The "Devices" tab.
pub const TAB_DEVICES: [f32; 4] = [462.0, 104.0, 108.0, 30.0];

/// "Refresh" in the devices panel (the organisation's enrolled devices).
pub const DEVICES_REFRESH: [f32; 4] = [10.0, 144.0, 110.0, 30.0];
/// The "unattended" tick box in the devices panel.
pub const DEVICES_UNATTENDED: [f32; 4] = [128.0, 144.0, 442.0, 30.0];
/// The `i`-th device: its name and state.
pub fn device_row(i: usize) -> [f32; 4] {
    [10.0, 182.0 + 30.0 * i as f32, 440.0, 28.0]
}
/// "Connect" on the `i`-th device.
pub fn device_connect(i: usize) -> [f32; 4] {
    [458.0, 182.0 + 30.0 * i as f32, 112.0, 28.0]
}

/// The folder field in the files panel (empty: the user's default folder).
pub const FILES_DIR: [f32; 4] = [10.0, 144.0, 440.0, 30.0];
/// "List" the folder.
pub const FILES_LIST: [f32; 4] = [458.0, 144.0, 112.0, 30.0];
/// "Up" one folder.
pub const FILES_UP: [f32; 4] = [10.0, 182.0, 80.0, 28.0];
/// The listing: one row per entry, [`FILES_ROW`] points high; a click opens a folder or pulls a file.
pub const FILES_LISTING: [f32; 4] = [10.0, 218.0, 560.0, 392.0];
/// The height of one listing row.
pub const FILES_ROW: f32 = 22.0;
/// The `i`-th row of the listing (while it is scrolled to the top).
pub fn files_entry(i: usize) -> [f32; 4] {
    [
        FILES_LISTING[0],
        FILES_LISTING[1] + 20.0 + FILES_ROW * i as f32,
        FILES_LISTING[2],
        FILES_ROW,
    ]
}
/// The transfers, with their progress, under the listing.
pub const FILES_TRANSFERS: [f32; 4] = [10.0, 618.0, 560.0, 272.0];

/// "Ask for access" in the top bar, once paired in a "chat first" session.
pub const ASK: [f32; 4] = [862.0, 10.0, 152.0, 34.0];
/// A notice from the window (e.g. a code that does not parse), where "Ask for access" would be.
pub const NOTICE: [f32; 2] = [862.0, 10.0];
/// "Ask for control", where "Ask for access" was before consent, while a session runs without it
/// (inside the 1024-wide minimum window).
pub const ASK_MORE: [f32; 4] = ASK;

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
/// The conversation, in a window `height` points high.
pub const fn chat_log(height: f32) -> [f32; 4] {
    [10.0, 290.0, 560.0, height - 350.0]
}
/// The chat text field (Enter sends), in a window `height` points high.
pub const fn chat_input(height: f32) -> [f32; 4] {
    [10.0, height - 52.0, 440.0, 32.0]
}
/// "Send", in a window `height` points high.
pub const fn chat_send(height: f32) -> [f32; 4] {
    [458.0, height - 52.0, 112.0, 32.0]
}
/// The conversation at [`SIZE`].
pub const CHAT_LOG: [f32; 4] = chat_log(SIZE[1]);
/// The chat text field at [`SIZE`].
pub const CHAT_INPUT: [f32; 4] = chat_input(SIZE[1]);
/// "Send" at [`SIZE`].
pub const CHAT_SEND: [f32; 4] = chat_send(SIZE[1]);

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

/// Where the live screen's picker starts ("Fit"/"1:1", then one button per remote display).
pub const SCREEN_BAR: (f32, f32) = (SCREEN_X, 104.0);
/// The live screen (status, picture) below its picker.
pub const SCREEN_TOP: f32 = 138.0;

/// The "Fit" / "1:1" toggle over the live screen.
pub fn screen_fit() -> [f32; 4] {
    crate::displays::fit_button(SCREEN_BAR)
}

/// The `i`-th remote display's button over the live screen (shown when there are several).
pub fn screen_display(i: usize) -> [f32; 4] {
    crate::displays::display_button(SCREEN_BAR, i)
}

/// The point to click inside a rectangle (its centre), in whole pixels.
pub fn centre(r: [f32; 4]) -> (i32, i32) {
    ((r[0] + r[2] / 2.0) as i32, (r[1] + r[3] / 2.0) as i32)
}

/// The point to click on a tick box's box.
pub fn tick(r: [f32; 4]) -> (i32, i32) {
    ((r[0] + 10.0) as i32, centre(r).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn right(r: [f32; 4]) -> f32 {
        r[0] + r[2]
    }

    #[test]
    fn everything_fits_the_smallest_window() {
        let [w, h] = MIN_SIZE;
        let bar = (0..tether_proto::Scope::ALL.len())
            .map(scope_box)
            .chain([CODE, CONNECT, END, ASK, TAB_FILES]);
        for r in bar {
            assert!(right(r) <= w - 8.0, "{r:?} past {w}");
        }
        // The scope boxes end before "Connect" starts.
        let last = scope_box(tether_proto::Scope::ALL.len() - 1);
        assert!(right(last) <= CONNECT[0], "{last:?}");
        for r in [
            PANEL,
            chat_input(h),
            chat_send(h),
            chat_log(h),
            FILES_LISTING,
        ] {
            assert!(r[1] + r[3] <= h - 8.0, "{r:?} past {h}");
        }
        // The picker's buttons for two monitors and "all" fit beside the side panel.
        assert!(right(screen_display(2)) <= w - 8.0);
        assert!(screen_fit()[0] >= SCREEN_X && SCREEN_TOP > screen_fit()[1] + screen_fit()[3]);
        // At the opening size the chat keeps the places the UI tests click.
        assert_eq!(CHAT_INPUT, [10.0, 848.0, 440.0, 32.0]);
    }
}
