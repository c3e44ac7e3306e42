//! Writes seed inputs for `screen_msgs`, `fleet_msgs`, `frame_apply` and `inventory_apply` into
//! `corpus/<target>/seed-*`, made with the product's own encoders. Run from `fuzz/`:
//! `cargo run --manifest-path seeds/Cargo.toml`.

use std::fs;
use std::path::Path;

use tether_proto::codec::encode;
use tether_proto::cursor::CursorShape;
use tether_proto::fleet::{
    DeviceToRelay, FleetError, FleetErrorKind, FleetQuery, FleetReply, RelayToDevice, Report,
    ReportBody,
};
use tether_proto::inventory::{Inventory, Package, PackageSource};
use tether_proto::screen::{
    Action, BPP, FrameEncoder, InputEvent, InputReply, KeyId, MouseButton, ScreenMsg, ViewerMsg,
    dirty_rects,
};

#[path = "../fuzz_targets/common/base.rs"]
mod base;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn frames(w: u32, h: u32) -> Vec<ScreenMsg> {
    let pic = |seed: u8| -> Vec<u8> {
        (0..w as usize * h as usize * BPP)
            .map(|i| ((i / 7) as u8).wrapping_mul(seed) ^ (i / 301) as u8)
            .collect()
    };
    let mut enc = FrameEncoder::new().expect("encoder");
    let a = pic(3);
    let b = {
        let mut b = a.clone();
        b[100..400].fill(0xee);
        b
    };
    let mut out = Vec::new();
    let all = dirty_rects(None, &a, w, h).expect("rects");
    out.extend(
        enc.encode_standalone(1, &a, w, h, &all)
            .expect("standalone")
            .into_iter()
            .map(ScreenMsg::Frame),
    );
    let d = dirty_rects(Some(&a), &b, w, h).expect("rects");
    out.extend(
        enc.encode(2, &b, w, h, &d)
            .expect("encode")
            .into_iter()
            .map(ScreenMsg::Frame),
    );
    let d = dirty_rects(Some(&b), &a, w, h).expect("rects");
    out.extend(
        enc.encode(3, &a, w, h, &d)
            .expect("encode")
            .into_iter()
            .map(ScreenMsg::Frame),
    );
    out
}

fn main() {
    // screen_msgs
    let mut screen: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, m) in frames(64, 48).iter().enumerate() {
        screen.push((format!("frame-{i}"), encode(m).expect("encode")));
    }
    screen.push((
        "cursor".into(),
        encode(&ScreenMsg::Cursor { x: -3, y: 70_000 }).expect("e"),
    ));
    let shape = CursorShape::from_argb(7, (3, 2), (1, 1), &[0xff00_ff00; 6]).expect("a shape");
    screen.push((
        "cursor-shape".into(),
        encode(&ScreenMsg::CursorShape(shape.clone())).expect("e"),
    ));
    screen.push((
        "stopped".into(),
        encode(&ScreenMsg::Stopped {
            reason: "view revoked".into(),
        })
        .expect("e"),
    ));
    screen.push(("ack".into(), encode(&ViewerMsg::Ack { seq: 7 }).expect("e")));
    let events = [
        InputEvent::MouseMove { x: 10, y: 20 },
        InputEvent::Button {
            button: MouseButton::Right,
            action: Action::Click,
        },
        InputEvent::Scroll { dx: 0, dy: -3 },
        InputEvent::Key {
            key: tether_proto::screen::Code::ControlLeft.into(),
            action: Action::Press,
        },
        InputEvent::Key {
            key: KeyId(0xffff),
            action: Action::Release,
        },
        InputEvent::Text("hello \u{202e}world".into()),
        InputEvent::ScrollFine { dx: -60, dy: 240 },
        InputEvent::Button {
            button: MouseButton::Forward,
            action: Action::Press,
        },
        InputEvent::ReleaseAll,
    ];
    for (i, e) in events.iter().enumerate() {
        screen.push((format!("input-{i}"), encode(e).expect("e")));
    }
    for (i, r) in [
        InputReply::Done,
        InputReply::Refused,
        InputReply::Ignored {
            reason: "AltLeft was not pressed; release ignored".into(),
        },
        InputReply::Failed {
            message: "no X".into(),
        },
    ]
    .iter()
    .enumerate()
    {
        screen.push((format!("reply-{i}"), encode(r).expect("e")));
    }
    for (name, bytes) in &screen {
        write("screen_msgs", name, bytes);
    }

    // fleet_msgs and inventory_apply
    let base = base::fixed_base();
    let mut next = base.clone();
    next.collected_unix = 2;
    next.status.uptime_secs = 200;
    next.software.packages.retain(|p| p.name != "package-03");
    next.software.packages.push(Package {
        source: PackageSource::Dpkg,
        name: "package-99".into(),
        arch: "amd64".into(),
        version: "2.0".into(),
    });
    next.software.packages[1].version = "9.9".into();
    tether_proto::inventory::normalise_packages(&mut next.software.packages);
    let delta = next.delta_from(&base);
    let report = |seq, body| {
        DeviceToRelay::Report(Report {
            device_id: "dev_0123456789abcdef".into(),
            seq,
            digest: if seq == 1 {
                base.digest()
            } else {
                next.digest()
            },
            body,
        })
    };
    let full = report(1, ReportBody::Full(Box::new(base.clone())));
    let delta_report = report(
        2,
        ReportBody::Delta {
            base_seq: 1,
            delta: Box::new(delta),
        },
    );
    let fleet: Vec<(&str, Vec<u8>)> = vec![
        (
            "enroll",
            encode(&DeviceToRelay::Enroll {
                token: "et_abc".into(),
                secret_sha256: "ab".repeat(32),
                hostname: "desk-17".into(),
                device_key: tether_proto::org::PublicKey([9; 32]),
            })
            .expect("e"),
        ),
        (
            "auth",
            encode(&DeviceToRelay::Auth {
                device_id: "dev_1".into(),
                secret: "cd".repeat(32),
            })
            .expect("e"),
        ),
        ("full", encode(&full).expect("e")),
        ("delta", encode(&delta_report).expect("e")),
        (
            "enrolled",
            encode(&RelayToDevice::Enrolled {
                device_id: "dev_1".into(),
                org: "acme".into(),
            })
            .expect("e"),
        ),
        (
            "authenticated",
            encode(&RelayToDevice::Authenticated {
                last_seq: Some(4),
                policy: None,
            }).expect("e"),
        ),
        (
            "ack",
            encode(&RelayToDevice::Ack {
                seq: 4,
                duplicate: false,
            })
            .expect("e"),
        ),
        (
            "rejected",
            encode(&RelayToDevice::Rejected {
                seq: 5,
                error: FleetError::new(FleetErrorKind::BaseMismatch, "send a full report"),
            })
            .expect("e"),
        ),
        ("list", encode(&FleetQuery::ListDevices).expect("e")),
        (
            "show",
            encode(&FleetQuery::ShowDevice {
                device: "desk-17".into(),
            })
            .expect("e"),
        ),
        (
            "search",
            encode(&FleetQuery::Search {
                name: "openssl".into(),
                version: Some("3.0".into()),
            })
            .expect("e"),
        ),
        (
            "history",
            encode(&FleetQuery::History {
                device: "dev_1".into(),
            })
            .expect("e"),
        ),
        ("end", encode(&FleetReply::End).expect("e")),
    ];
    for (name, bytes) in &fleet {
        write("fleet_msgs", name, bytes);
    }
    let mut a = vec![0u8];
    a.extend(encode(&delta_report).expect("e"));
    write("inventory_apply", "delta-on-fixed-base", &a);
    let mut b = vec![1u8];
    b.extend(encode(&base).expect("e"));
    b.extend(encode(&delta_report).expect("e"));
    write("inventory_apply", "base-then-delta", &b);
    let _: &Inventory = &next;

    // frame_apply: a stream of real frames (mode 0), and raw parts (mode 1).
    let mut stream = vec![0u8];
    for m in frames(64, 48) {
        stream.extend(encode(&m).expect("e"));
    }
    write("frame_apply", "stream-64x48", &stream);
    let mut with_cursor = encode(&ScreenMsg::CursorShape(shape)).expect("e");
    with_cursor.extend(&stream[1..]);
    with_cursor.insert(0, 0);
    write("frame_apply", "cursor-then-frames", &with_cursor);
    let mut stream = vec![0u8];
    for m in frames(200, 90) {
        stream.extend(encode(&m).expect("e"));
    }
    write("frame_apply", "stream-200x90", &stream);
    let (w, h) = (16u16, 8u16);
    let px: Vec<u8> = (0..usize::from(w) * usize::from(h) * BPP)
        .map(|i| i as u8)
        .collect();
    let mut raw = vec![1u8];
    for (standalone, data) in [
        (true, zstd_compress(&px)),
        (
            false,
            FrameEncoder::new()
                .expect("enc")
                .encode(
                    1,
                    &px,
                    u32::from(w),
                    u32::from(h),
                    &[tether_proto::screen::Rect {
                        x: 0,
                        y: 0,
                        w: u32::from(w),
                        h: u32::from(h),
                    }],
                )
                .expect("e")
                .remove(0)
                .data,
        ),
    ] {
        raw.extend(w.to_le_bytes());
        raw.extend(h.to_le_bytes());
        raw.extend([0, 0, w as u8, h as u8, u8::from(standalone) | 2]);
        raw.extend((data.len() as u16).to_le_bytes());
        raw.extend(&data);
    }
    write("frame_apply", "raw-parts", &raw);
}

fn zstd_compress(px: &[u8]) -> Vec<u8> {
    // The encoder's standalone path is the product's; use it for one full-frame rect.
    let w = 16;
    let h = (px.len() / BPP / w) as u32;
    FrameEncoder::new()
        .expect("enc")
        .encode_standalone(
            1,
            px,
            w as u32,
            h,
            &[tether_proto::screen::Rect {
                x: 0,
                y: 0,
                w: w as u32,
                h,
            }],
        )
        .expect("e")
        .remove(0)
        .data
}
