//! The peers Tether is measured against, each started on the workload's display and measured the same
//! way: bytes it sends per second and its CPU (utime + stime from `/proc`, % of one core).
//! - `x11vnc`, read by a minimal RFB 3.8 client ([`rfb_bytes`]) that asks for CopyRect + Tight with no
//!   JPEG quality level (so Tight stays lossless), requests an incremental update after each one, and
//!   parses just enough of each rectangle to know its length;
//! - `ffmpeg -f x11grab` at 30 fps into VP8 and x264, counting the bytes of its raw stream on stdout
//!   (IVF / Annex B: one write per frame, so the count is current when read).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one peer measured, or why it was not.
pub enum Measured {
    /// kbit/s on the wire and % of one core.
    Ran { kbps: f64, cpu: f64 },
    /// The tool is missing (`which` found nothing).
    NotInstalled(&'static str),
    /// It started but failed.
    Failed(String),
}

/// Whether `program` is on the PATH.
pub fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// CPU seconds (user + system, all threads) of a live process.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after its ")" start at field 3.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Counts `bytes` and `cpu` of `pid` over `secs`, after `settle`.
fn measure(
    pid: u32,
    bytes: &AtomicU64,
    settle: Duration,
    secs: u64,
    alive: impl Fn() -> bool,
) -> Measured {
    std::thread::sleep(settle);
    let (b0, c0, t0) = (bytes.load(Ordering::Relaxed), cpu_secs(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (b1, c1, dt) = (
        bytes.load(Ordering::Relaxed),
        cpu_secs(pid),
        t0.elapsed().as_secs_f64(),
    );
    if !alive() {
        return Measured::Failed("it stopped while being measured".into());
    }
    Measured::Ran {
        kbps: (b1 - b0) as f64 * 8.0 / 1000.0 / dt,
        cpu: (c1 - c0) / dt * 100.0,
    }
}

/// x11vnc on `display`, read by the counting RFB client.
pub fn x11vnc(display: &str, port: u16, settle: Duration, secs: u64) -> Measured {
    if !installed("x11vnc") {
        return Measured::NotInstalled("x11vnc");
    }
    let child = Command::new("x11vnc")
        .args([
            "-display",
            display,
            "-shared",
            "-forever",
            "-nopw",
            "-localhost",
            "-quiet",
            "-rfbport",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(child) = child else {
        return Measured::Failed("x11vnc did not start".into());
    };
    let child = KillOnDrop(child);
    let mut sock = None;
    for _ in 0..100 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            sock = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Some(sock) = sock else {
        return Measured::Failed("x11vnc never listened".into());
    };
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicBool::new(true));
    let reader = {
        let (bytes, stop, ok) = (bytes.clone(), stop.clone(), ok.clone());
        std::thread::spawn(move || {
            if let Err(e) = rfb_bytes(sock, &bytes, &stop)
                && !stop.load(Ordering::Relaxed)
            {
                eprintln!("rfb client: {e}");
                ok.store(false, Ordering::Relaxed);
            }
        })
    };
    let r = measure(child.0.id(), &bytes, settle, secs, || {
        ok.load(Ordering::Relaxed)
    });
    stop.store(true, Ordering::Relaxed);
    drop(child);
    let _ = reader.join();
    r
}

/// The RFB encodings asked for: CopyRect, then Tight (no quality pseudo-encoding: no JPEG).
const ENC_COPYRECT: i32 = 1;
const ENC_TIGHT: i32 = 7;
const ENC_RAW: i32 = 0;

/// Counting reader: every byte read off the socket is added to `bytes`.
struct Counting<'a> {
    s: TcpStream,
    bytes: &'a AtomicU64,
}

impl Counting<'_> {
    fn buf(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut b = vec![0; n];
        self.s.read_exact(&mut b)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(b)
    }
    fn u8(&mut self) -> std::io::Result<u8> {
        Ok(self.buf(1)?[0])
    }
    fn u16(&mut self) -> std::io::Result<u16> {
        let b = self.buf(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> std::io::Result<u32> {
        let b = self.buf(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Tight's compact length: 1–3 bytes, 7 bits each.
    fn compact(&mut self) -> std::io::Result<usize> {
        let mut n = 0usize;
        for i in 0..3 {
            let b = self.u8()?;
            let bits = if i == 2 {
                b as usize
            } else {
                (b & 0x7f) as usize
            };
            n |= bits << (7 * i);
            if b & 0x80 == 0 || i == 2 {
                break;
            }
        }
        Ok(n)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Runs an RFB 3.8 session until `stop`, adding the bytes received to `bytes`.
pub fn rfb_bytes(s: TcpStream, bytes: &AtomicU64, stop: &AtomicBool) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut w = s.try_clone()?;
    let mut c = Counting { s, bytes };
    let version = c.buf(12)?;
    if !version.starts_with(b"RFB ") {
        return Err(bad("not an RFB server"));
    }
    w.write_all(b"RFB 003.008\n")?;
    let n = c.u8()?;
    let types = c.buf(n as usize)?;
    if !types.contains(&1) {
        return Err(bad("the server wants a password"));
    }
    w.write_all(&[1])?;
    if c.u32()? != 0 {
        return Err(bad("security handshake failed"));
    }
    w.write_all(&[1])?; // shared
    let (width, height) = (c.u16()?, c.u16()?);
    c.buf(16)?;
    let name = c.u32()?;
    c.buf(name as usize)?;
    // 32 bpp, depth 24, little endian, true colour, 8 bits each at 16/8/0.
    let mut pf = vec![0u8, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0];
    pf.extend_from_slice(&[0, 0, 0]);
    w.write_all(&pf)?;
    let encs = [ENC_COPYRECT, ENC_TIGHT, ENC_RAW];
    let mut m = vec![2u8, 0];
    m.extend_from_slice(&(encs.len() as u16).to_be_bytes());
    for e in encs {
        m.extend_from_slice(&e.to_be_bytes());
    }
    w.write_all(&m)?;
    let request = |w: &mut TcpStream, incremental: u8| {
        let mut r = vec![3u8, incremental, 0, 0, 0, 0];
        r.extend_from_slice(&width.to_be_bytes());
        r.extend_from_slice(&height.to_be_bytes());
        w.write_all(&r)
    };
    request(&mut w, 0)?;
    while !stop.load(Ordering::Relaxed) {
        let t = match c.u8() {
            Ok(t) => t,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        // Once a message has started, wait for the rest of it.
        c.s.set_read_timeout(None)?;
        match t {
            0 => {
                c.u8()?;
                let rects = c.u16()?;
                for _ in 0..rects {
                    let (_x, _y, rw, rh) = (c.u16()?, c.u16()?, c.u16()?, c.u16()?);
                    let enc = c.u32()? as i32;
                    rect(&mut c, enc, rw as usize, rh as usize)?;
                }
                request(&mut w, 1)?;
            }
            1 => {
                c.buf(3)?;
                let n = c.u16()?;
                c.buf(n as usize * 6)?;
            }
            2 => {}
            3 => {
                c.buf(3)?;
                let n = c.u32()?;
                c.buf(n as usize)?;
            }
            other => return Err(bad(&format!("unknown server message {other}"))),
        }
        c.s.set_read_timeout(Some(Duration::from_millis(500)))?;
    }
    Ok(())
}

/// Skips one rectangle's payload.
fn rect(c: &mut Counting, enc: i32, w: usize, h: usize) -> std::io::Result<()> {
    const TPIXEL: usize = 3;
    match enc {
        ENC_RAW => {
            c.buf(w * h * 4)?;
        }
        ENC_COPYRECT => {
            c.buf(4)?;
        }
        ENC_TIGHT => {
            let ctl = c.u8()?;
            match ctl >> 4 {
                0x08 => {
                    c.buf(TPIXEL)?;
                }
                0x09 => {
                    let n = c.compact()?;
                    c.buf(n)?;
                }
                kind if kind <= 0x07 => {
                    let mut size = w * h * TPIXEL;
                    if kind & 0x04 != 0 {
                        match c.u8()? {
                            0 => {}
                            1 => {
                                let colours = c.u8()? as usize + 1;
                                c.buf(colours * TPIXEL)?;
                                size = if colours == 2 {
                                    w.div_ceil(8) * h
                                } else {
                                    w * h
                                };
                            }
                            2 => {}
                            f => return Err(bad(&format!("unknown tight filter {f}"))),
                        }
                    }
                    if size < 12 {
                        c.buf(size)?;
                    } else {
                        let n = c.compact()?;
                        c.buf(n)?;
                    }
                }
                _ => return Err(bad("bad tight control byte")),
            }
        }
        other => return Err(bad(&format!("unasked encoding {other}"))),
    }
    Ok(())
}

/// A video codec ffmpeg encodes the screen with.
#[derive(Clone, Copy)]
pub enum Codec {
    /// libvpx VP8, realtime, 1 Mbit/s (RustDesk's and Chrome Remote Desktop's family).
    Vp8,
    /// x264 ultrafast, zerolatency, crf 23.
    X264,
}

/// ffmpeg grabbing `display` at 30 fps into `codec`.
pub fn ffmpeg(display: &str, codec: Codec, settle: Duration, secs: u64) -> Measured {
    if !installed("ffmpeg") {
        return Measured::NotInstalled("ffmpeg");
    }
    let mut args: Vec<&str> = vec![
        "-nostdin",
        "-loglevel",
        "error",
        "-f",
        "x11grab",
        "-draw_mouse",
        "0",
        "-framerate",
        "30",
        "-video_size",
        "1920x1080",
        "-i",
        display,
        "-pix_fmt",
        "yuv420p",
    ];
    match codec {
        Codec::Vp8 => args.extend([
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "1M",
            "-f",
            "ivf",
        ]),
        Codec::X264 => args.extend([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-crf",
            "23",
            "-f",
            "h264",
        ]),
    }
    args.extend(["-flush_packets", "1", "-"]);
    let child = Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Measured::Failed("ffmpeg did not start".into());
    };
    let mut out = child.stdout.take().expect("piped");
    let child = KillOnDrop(child);
    let bytes = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (bytes, done) = (bytes.clone(), done.clone());
        std::thread::spawn(move || {
            let mut b = vec![0u8; 1 << 16];
            while let Ok(n) = out.read(&mut b) {
                if n == 0 {
                    break;
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    let r = measure(child.0.id(), &bytes, settle, secs, || {
        !done.load(Ordering::Relaxed)
    });
    drop(child);
    let _ = reader.join();
    r
}
