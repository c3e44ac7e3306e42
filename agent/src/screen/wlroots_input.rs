//! The wlroots input backend: `zwlr_virtual_pointer_v1` for the pointer and `zwp_virtual_keyboard_v1`
//! for keys, on their own Wayland connection.
//!
//! Keys go by evdev code, so the keymap decides the character as it does for the user's own
//! keyboard. The virtual keyboard needs a keymap of its own: the system's default (xkbcommon's
//! RMLVO defaults, `XKB_DEFAULT_LAYOUT` and friends), and the modifier state is kept with xkbcommon
//! and sent after every key. Text goes key by key through that keymap (input-method text is lost
//! right after a focus change); a character the keymap has no key for is refused with its name.
//!
//! A fresh virtual keyboard loses its first key on some compositors and clients: opening taps
//! Shift and waits [`FIRST_KEY_SETTLE`] before the first real event.

use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use tether_proto::screen::{Action, InputEvent, KeyId};
use wayland_client::globals::GlobalListContents;
use wayland_client::protocol::{wl_output, wl_pointer, wl_registry, wl_seat};
use wayland_client::{Connection, Dispatch, EventQueue, QueueHandle};
use wayland_protocols_misc::zwp_virtual_keyboard_v1::client::{
    zwp_virtual_keyboard_manager_v1::ZwpVirtualKeyboardManagerV1,
    zwp_virtual_keyboard_v1::ZwpVirtualKeyboardV1,
};
use wayland_protocols_wlr::virtual_pointer::v1::client::{
    zwlr_virtual_pointer_manager_v1::ZwlrVirtualPointerManagerV1,
    zwlr_virtual_pointer_v1::ZwlrVirtualPointerV1,
};
use xkbcommon::xkb;

use super::wlroots::{OutputInfo, bind_outputs, connect, memfd, output_event, socket_path};
use super::{InputError, InputProvider, InputSink, evdev_button, whole_notches};

/// How long a new virtual keyboard is given after its first (harmless) key.
pub const FIRST_KEY_SETTLE: Duration = Duration::from_millis(200);

/// Scroll distance of one wheel notch, in the units wlroots uses for a wheel.
const NOTCH: f64 = 15.0;

/// evdev's Left Shift.
const SHIFT: u32 = 42;

/// Injects input into a wlroots compositor.
#[derive(Debug, Clone, Default)]
pub struct WlrootsInput {
    socket: Option<String>,
}

impl WlrootsInput {
    /// The compositor at the Wayland socket `socket` (a `WAYLAND_DISPLAY` value), or the
    /// environment's.
    pub fn new(socket: Option<String>) -> Self {
        WlrootsInput { socket }
    }
}

fn connect_err(e: impl std::fmt::Display) -> InputError {
    InputError::Connect(e.to_string())
}

fn inject_err(e: impl std::fmt::Display) -> InputError {
    InputError::Inject(format!("the Wayland compositor: {e}"))
}

#[derive(Debug, Default)]
struct Events {
    outputs: Vec<OutputInfo>,
}

impl InputProvider for WlrootsInput {
    fn open(&self) -> Result<Box<dyn InputSink>, InputError> {
        let path = socket_path(self.socket.as_deref()).map_err(InputError::Connect)?;
        let (conn, globals, mut queue) = connect::<Events>(&path).map_err(InputError::Connect)?;
        let qh = queue.handle();
        let missing = |what: &str| connect_err(format!("this Wayland compositor has no {what}"));
        let pointers: ZwlrVirtualPointerManagerV1 = globals
            .bind(&qh, 1..=2, ())
            .map_err(|_| missing("virtual pointer (zwlr_virtual_pointer_manager_v1)"))?;
        let keyboards: ZwpVirtualKeyboardManagerV1 = globals
            .bind(&qh, 1..=1, ())
            .map_err(|_| missing("virtual keyboard (zwp_virtual_keyboard_manager_v1)"))?;
        let seat: wl_seat::WlSeat = globals.bind(&qh, 1..=1, ()).map_err(|_| missing("seat"))?;
        let _outputs = bind_outputs(&globals, &qh);
        let mut events = Events::default();
        queue.roundtrip(&mut events).map_err(connect_err)?;
        let pointer = pointers.create_virtual_pointer(Some(&seat), &qh, ());
        let keyboard = keyboards.create_virtual_keyboard(&seat, &qh, ());

        let context = xkb::Context::new(xkb::CONTEXT_NO_FLAGS);
        let keymap = xkb::Keymap::new_from_names(
            &context,
            "",
            "",
            "",
            "",
            None,
            xkb::KEYMAP_COMPILE_NO_FLAGS,
        )
        .ok_or_else(|| connect_err("cannot compile the default keyboard layout (xkbcommon)"))?;
        let mut text = keymap
            .get_as_string(xkb::KEYMAP_FORMAT_TEXT_V1)
            .into_bytes();
        text.push(0);
        let fd = memfd("tether-keymap", text.len()).map_err(InputError::Connect)?;
        let file = std::fs::File::from(fd);
        file.write_all_at(&text, 0).map_err(connect_err)?;
        keyboard.keymap(xkb::KEYMAP_FORMAT_TEXT_V1, file.as_fd(), text.len() as u32);
        let state = xkb::State::new(&keymap);
        let mut sink = WlrootsSink {
            conn,
            queue,
            events,
            pointer,
            keyboard,
            keymap,
            state,
            start: Instant::now(),
            fine: (0, 0),
        };
        sink.roundtrip()?;
        // The first key of a new virtual keyboard may be lost: make it a Shift tap.
        sink.key(SHIFT, true)?;
        sink.key(SHIFT, false)?;
        sink.roundtrip()?;
        std::thread::sleep(FIRST_KEY_SETTLE);
        Ok(Box::new(sink))
    }
}

struct WlrootsSink {
    conn: Connection,
    queue: EventQueue<Events>,
    events: Events,
    pointer: ZwlrVirtualPointerV1,
    keyboard: ZwpVirtualKeyboardV1,
    keymap: xkb::Keymap,
    state: xkb::State,
    start: Instant,
    fine: (i32, i32),
}

impl WlrootsSink {
    fn now(&self) -> u32 {
        self.start.elapsed().as_millis() as u32
    }

    fn roundtrip(&mut self) -> Result<(), InputError> {
        self.queue
            .roundtrip(&mut self.events)
            .map(|_| ())
            .map_err(inject_err)
    }

    fn flush(&self) -> Result<(), InputError> {
        self.conn.flush().map_err(inject_err)
    }

    /// The layout's bounding box: absolute motion is relative to it.
    fn layout(&self) -> (i32, i32, u32, u32) {
        let outs = self.events.outputs.iter().filter(|o| o.width > 0);
        let x0 = outs.clone().map(|o| o.x).min().unwrap_or(0);
        let y0 = outs.clone().map(|o| o.y).min().unwrap_or(0);
        let x1 = outs.clone().map(|o| o.x + o.width).max().unwrap_or(1);
        let y1 = outs.map(|o| o.y + o.height).max().unwrap_or(1);
        (x0, y0, (x1 - x0).max(1) as u32, (y1 - y0).max(1) as u32)
    }

    fn key(&mut self, evdev: u32, down: bool) -> Result<(), InputError> {
        let time = self.now();
        self.keyboard.key(time, evdev, u32::from(down));
        let direction = if down {
            xkb::KeyDirection::Down
        } else {
            xkb::KeyDirection::Up
        };
        self.state
            .update_key(xkb::Keycode::new(evdev + 8), direction);
        self.send_modifiers();
        self.flush()
    }

    fn send_modifiers(&self) {
        self.keyboard.modifiers(
            self.state.serialize_mods(xkb::STATE_MODS_DEPRESSED),
            self.state.serialize_mods(xkb::STATE_MODS_LATCHED),
            self.state.serialize_mods(xkb::STATE_MODS_LOCKED),
            self.state.serialize_layout(xkb::STATE_LAYOUT_EFFECTIVE),
        );
    }

    fn press_release(&mut self, evdev: u32, action: Action) -> Result<(), InputError> {
        if matches!(action, Action::Press | Action::Click) {
            self.key(evdev, true)?;
        }
        if matches!(action, Action::Release | Action::Click) {
            self.key(evdev, false)?;
        }
        Ok(())
    }

    fn button(&mut self, code: u32, action: Action) -> Result<(), InputError> {
        for (down, when) in [(true, Action::Press), (false, Action::Release)] {
            if action == when || action == Action::Click {
                let state = if down {
                    wl_pointer::ButtonState::Pressed
                } else {
                    wl_pointer::ButtonState::Released
                };
                self.pointer.button(self.now(), code, state);
                self.pointer.frame();
            }
        }
        self.flush()
    }

    fn notches(&mut self, dx: i32, dy: i32) -> Result<(), InputError> {
        for (n, axis) in [
            (dy, wl_pointer::Axis::VerticalScroll),
            (dx, wl_pointer::Axis::HorizontalScroll),
        ] {
            if n != 0 {
                let time = self.now();
                self.pointer.axis_source(wl_pointer::AxisSource::Wheel);
                self.pointer
                    .axis_discrete(time, axis, NOTCH * f64::from(n), n);
                self.pointer.frame();
            }
        }
        self.flush()
    }

    /// The key (evdev code) and modifiers that type `c` in the current layout.
    fn key_for(&self, c: char) -> Option<(u32, xkb::ModMask)> {
        let sym = xkb::utf32_to_keysym(c as u32);
        let layout = self.state.serialize_layout(xkb::STATE_LAYOUT_EFFECTIVE);
        let (min, max) = (
            self.keymap.min_keycode().raw(),
            self.keymap.max_keycode().raw(),
        );
        for code in min.max(8)..=max {
            let kc = xkb::Keycode::new(code);
            for level in 0..self.keymap.num_levels_for_key(kc, layout) {
                if self
                    .keymap
                    .key_get_syms_by_level(kc, layout, level)
                    .contains(&sym)
                {
                    let mut masks = [0; 4];
                    let n = self
                        .keymap
                        .key_get_mods_for_level(kc, layout, level, &mut masks);
                    return Some((code - 8, if n > 0 { masks[0] } else { 0 }));
                }
            }
        }
        None
    }

    fn type_char(&mut self, c: char) -> Result<(), InputError> {
        let (evdev, mods) = self.key_for(c).ok_or_else(|| {
            InputError::Inject(format!("no key types {c:?} on this keyboard layout"))
        })?;
        let time = self.now();
        self.keyboard.modifiers(
            mods,
            0,
            0,
            self.state.serialize_layout(xkb::STATE_LAYOUT_EFFECTIVE),
        );
        self.keyboard.key(time, evdev, 1);
        self.keyboard.key(time, evdev, 0);
        self.send_modifiers();
        self.flush()
    }
}

impl InputSink for WlrootsSink {
    fn inject(&mut self, event: &InputEvent, origin: (i32, i32)) -> Result<(), InputError> {
        match event {
            InputEvent::MouseMove { x, y } => {
                let (x0, y0, w, h) = self.layout();
                let x = (origin.0.saturating_add(*x) - x0).clamp(0, w as i32 - 1) as u32;
                let y = (origin.1.saturating_add(*y) - y0).clamp(0, h as i32 - 1) as u32;
                self.pointer.motion_absolute(self.now(), x, y, w, h);
                self.pointer.frame();
                self.flush()
            }
            InputEvent::Button { button, action } => {
                self.button(u32::from(evdev_button(*button)), *action)
            }
            InputEvent::Scroll { dx, dy } => self.notches(*dx, *dy),
            InputEvent::ScrollFine { dx, dy } => {
                let (nx, ny) = whole_notches(&mut self.fine, *dx, *dy);
                self.notches(nx, ny)
            }
            InputEvent::Key { key, action } => {
                let evdev = evdev(*key)?;
                self.press_release(evdev, *action)
            }
            InputEvent::Text(t) => t.chars().try_for_each(|c| self.type_char(c)),
            InputEvent::ReleaseAll => Ok(()),
        }
    }
}

fn evdev(key: KeyId) -> Result<u32, InputError> {
    key.code()
        .map(|c| u32::from(c.evdev()))
        .ok_or_else(|| InputError::Inject(format!("{key} is not a key this agent knows")))
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for Events {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<wl_output::WlOutput, usize> for Events {
    fn event(
        state: &mut Self,
        _: &wl_output::WlOutput,
        event: wl_output::Event,
        i: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        output_event(&mut state.outputs, *i, event);
    }
}

wayland_client::delegate_noop!(Events: ignore wl_seat::WlSeat);
wayland_client::delegate_noop!(Events: ignore ZwlrVirtualPointerManagerV1);
wayland_client::delegate_noop!(Events: ignore ZwlrVirtualPointerV1);
wayland_client::delegate_noop!(Events: ignore ZwpVirtualKeyboardManagerV1);
wayland_client::delegate_noop!(Events: ignore ZwpVirtualKeyboardV1);
