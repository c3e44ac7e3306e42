//! Where everything clickable sits in the agent window, in points from the window's top-left.
//!
//! The window has a fixed size and every button is placed at one of these rectangles, so the UI tests
//! (and anyone writing a guide with screenshots) can rely on them. Rectangles are `[x, y, width, height]`.

/// The window's title (tests find the window by it).
pub const TITLE: &str = "Tether - get help";

/// The window's fixed inner size: the main column (560 wide) and the chat column to its right.
pub const SIZE: [f32; 2] = [900.0, 600.0];

/// "Get help" on the start screen (also "Start again" after a session).
pub const GET_HELP: [f32; 4] = [160.0, 300.0, 240.0, 60.0];
/// "New code" while a code is shown.
pub const NEW_CODE: [f32; 4] = [70.0, 420.0, 200.0, 48.0];
/// "Stop" while a code is shown or a technician is connecting.
pub const STOP: [f32; 4] = [290.0, 420.0, 200.0, 48.0];
/// "Allow" in the consent dialog.
pub const ALLOW: [f32; 4] = [70.0, 530.0, 200.0, 50.0];
/// "Deny" in the consent dialog.
pub const DENY: [f32; 4] = [290.0, 530.0, 200.0, 50.0];
/// "End session" on the session banner.
pub const END_SESSION: [f32; 4] = [290.0, 500.0, 230.0, 56.0];
/// "Stop control" on the session banner (shown only while `control` is granted).
pub const STOP_CONTROL: [f32; 4] = [40.0, 500.0, 230.0, 56.0];
/// Files arriving and leaving (the newest first, at most [`FILE_ROWS`]), each with its progress and a
/// Stop button, in the lower part of the session banner. While any is listed, the banner says what
/// was allowed on one wrapped line, so the two never overlap.
pub const FILES: [f32; 4] = [32.0, 372.0, 496.0, 100.0];
/// Rows in [`FILES`].
pub const FILE_ROWS: usize = 3;
/// Height of one row in [`FILES`].
pub const FILE_ROW: f32 = 30.0;

/// The Stop button of row `i` of [`FILES`] (0: the newest), shown while that file moves.
pub const fn file_stop(i: usize) -> [f32; 4] {
    [
        FILES[0] + 6.0,
        FILES[1] + 6.0 + FILE_ROW * i as f32,
        56.0,
        24.0,
    ]
}
/// "Stop clipboard sharing" under the session banner (shown only while `clipboard` is granted).
pub const STOP_CLIPBOARD: [f32; 4] = [40.0, 562.0, 230.0, 32.0];
/// "Show my session log" after a session.
pub const SHOW_LOG: [f32; 4] = [40.0, 150.0, 230.0, 44.0];
/// "Start again" after a session.
pub const START_AGAIN: [f32; 4] = [290.0, 150.0, 230.0, 44.0];

/// The chat column (conversation, then the text field and "Send").
pub const CHAT: [f32; 4] = [572.0, 14.0, 316.0, 572.0];
/// The conversation.
pub const CHAT_LOG: [f32; 4] = [572.0, 48.0, 316.0, 426.0];
/// The chat text field (Enter sends).
pub const CHAT_INPUT: [f32; 4] = [572.0, 482.0, 226.0, 40.0];
/// "Send".
pub const CHAT_SEND: [f32; 4] = [804.0, 482.0, 84.0, 40.0];
/// Why a line was not sent.
pub const CHAT_NOTE: [f32; 4] = [572.0, 528.0, 316.0, 58.0];

/// The invitation prompt (over the session banner).
pub const INVITE: [f32; 4] = [20.0, 60.0, 520.0, 420.0];
/// "Allow" in the invitation prompt.
pub const INVITE_ALLOW: [f32; 4] = [50.0, 400.0, 220.0, 56.0];
/// "Deny" in the invitation prompt.
pub const INVITE_DENY: [f32; 4] = [290.0, 400.0, 220.0, 56.0];

/// The row of the `i`-th requested scope's checkbox in the consent dialog.
pub fn scope_row(i: usize) -> [f32; 4] {
    [40.0, 258.0 + 40.0 * i as f32, 480.0, 38.0]
}

/// The point to click inside a rectangle (its centre), in whole pixels.
pub fn centre(r: [f32; 4]) -> (i32, i32) {
    ((r[0] + r[2] / 2.0) as i32, (r[1] + r[3] / 2.0) as i32)
}

/// The point to click on the `i`-th scope's tick box.
pub fn scope_box(i: usize) -> (i32, i32) {
    let r = scope_row(i);
    ((r[0] + 10.0) as i32, centre(r).1)
}
