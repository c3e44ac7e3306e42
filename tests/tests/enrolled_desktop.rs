//! Attended sessions without a code on an enrolled computer (issue 22): the real service
//! (`tether-agent run`) and the real per-user agent (`tether-agent desktop`) as two processes
//! joined by the service's local socket, the per-user agent on a private Xvfb, a real relay on
//! loopback, and the console reaching the device with `--device`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use tether_agent::enroll::{DataDir, EnrollConfig, enroll};
use tether_agent::local_log::LocalLog;
use tether_console::enrolled::{DeviceTarget, pair_device};
use tether_proto::msg::EndReason;
use tether_proto::org::OrgSecret;
use tether_proto::{Scope, ScopeSet};
use tether_tests::enrolled::{ORG, certified, set_policy, token};
use tether_tests::procs::{Kill, bin, lines, wait_for};
use tether_tests::{TestRelay, Xvfb};

/// The uid of this test process (the service admits exactly it).
fn my_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid()
}

/// A relay, an org key with IT's signed policy (inventory unattended), a device enrolled with it,
/// and the real service running with its desktop socket for this test's uid.
struct Enrolled {
    relay: TestRelay,
    org: OrgSecret,
    id: tether_agent::enroll::Identity,
    socket: std::path::PathBuf,
    _service: Kill,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn enrolled() -> Enrolled {
    let relay = TestRelay::start().await;
    let org = OrgSecret::generate(&mut rand::thread_rng());
    set_policy(&relay, &org, 1, &[Scope::Inventory], Vec::new());
    let device_dir = tempfile::tempdir().unwrap();
    let id = enroll(&EnrollConfig {
        relay: relay.target(),
        token: token(&relay, &org),
        data_dir: DataDir::new(device_dir.path()),
        hostname: "pc-9".into(),
    })
    .await
    .unwrap();
    // The socket's folder is open to every user, as /run/tether-agent is.
    let run_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(run_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = run_dir.path().join("desktop.sock");
    let uid = my_uid().to_string();
    let mut service = Kill(
        Command::new(bin("tether-agent"))
            .args([
                "--data-dir",
                &device_dir.path().display().to_string(),
                "run",
            ])
            .args(["--desktop-socket", &socket.display().to_string()])
            .args(["--desktop-user", &uid])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let service_out = lines(service.0.stdout.take().unwrap());
    let attended = wait_for(&service_out, "attended sessions without a code");
    assert!(attended.contains(&format!("uid {uid} only")), "{attended}");
    wait_for(&service_out, "connected; relay has reports");
    wait_for(&service_out, "IT's policy 1 now holds");
    Enrolled {
        relay,
        org,
        id,
        socket,
        _service: service,
        _dirs: (device_dir, run_dir),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logged_in_users_agent_asks_them_and_serves_what_they_allow() {
    let Enrolled {
        relay,
        org,
        id,
        socket,
        _service,
        _dirs,
    } = enrolled().await;

    // The user's own agent, in their desktop session (a private X server).
    let x = Xvfb::start_free_sized(800, 600);
    let user_dir = tempfile::tempdir().unwrap();
    let mut desktop = Kill(
        Command::new(bin("tether-agent"))
            .args([
                "desktop",
                "--terminal",
                "--socket",
                &socket.display().to_string(),
            ])
            .env("DISPLAY", &x.display)
            .env("TETHER_BACKEND", "x11")
            .env("TETHER_AGENT_DATA", user_dir.path())
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let user_out = lines(desktop.0.stdout.take().unwrap());
    let mut user_in = desktop.0.stdin.take().unwrap();
    let hello = wait_for(&user_out, "This computer is enrolled by");
    assert!(hello.contains(ORG), "{hello}");
    assert!(
        hello.contains("IT's policy lets its technicians, without asking you: read"),
        "the user sees the policy: {hello}"
    );

    // The technician connects with --device; the user is asked, and says yes.
    let keys = tempfile::tempdir().unwrap();
    certified(keys.path(), &org, ORG, "Ada Lovelace");
    let target = DeviceTarget {
        device: id.device_id.clone(),
        unattended: false,
        key_dir: keys.path().to_path_buf(),
    };
    let config = relay.console();
    let asked: ScopeSet = [Scope::Inventory, Scope::View].into_iter().collect();
    let console = tokio::spawn(async move {
        let mut session = pair_device(&config, &target, asked).await?;
        let granted = session.ask_consent().await?;
        let inv = session.inventory().await?;
        let mut view = session.view(0).await?;
        view.next_frame().await?;
        let size = (view.framebuffer.width, view.framebuffer.height);
        view.close().await;
        session.end().await;
        Ok::<_, tether_console::error::ConsoleError>((granted, inv, size))
    });
    let question = wait_for(&user_out, "asks to:");
    assert!(question.contains("Ada Lovelace of Acme IT"), "{question}");
    let enrolled = wait_for(&user_out, "enrolled this computer");
    assert!(enrolled.contains("no code was read out"), "{enrolled}");
    wait_for(&user_out, "Allow?");
    writeln!(user_in, "y").unwrap();
    let (granted, inv, size) = console.await.unwrap().expect("the session works");
    assert_eq!(granted, asked);
    let here = tether_agent::inventory::Collector::default().hardware();
    assert_eq!(inv.hardware.system.hostname, here.system.hostname);
    assert_eq!(size, (800, 600), "a frame of the user's own screen");

    // An unattended session IT's policy allows: nobody is asked, the user is told and ends it.
    let unattended = DeviceTarget {
        device: id.device_id.clone(),
        unattended: true,
        key_dir: keys.path().to_path_buf(),
    };
    let config = relay.console();
    let (served_tx, served) = tokio::sync::oneshot::channel();
    let console = tokio::spawn(async move {
        let mut session = pair_device(
            &config,
            &unattended,
            [Scope::Inventory].into_iter().collect(),
        )
        .await?;
        session.ask_consent().await?;
        session.inventory().await?;
        let _ = served_tx.send(());
        Ok::<_, tether_console::error::ConsoleError>(session.ended().await)
    });
    let told = wait_for(&user_out, "started an unattended session");
    assert!(told.contains("Ada Lovelace of Acme IT"), "{told}");
    served.await.expect("the inventory arrived unattended");
    writeln!(user_in, "q").unwrap();
    let ended = console.await.unwrap().expect("the unattended session ran");
    assert_eq!(ended, EndReason::UserEnded, "the user ended it");

    // The user's log has both, in their own data folder.
    let log = LocalLog::new(user_dir.path()).read().unwrap().join("\n");
    assert!(log.contains("Ada Lovelace of Acme IT asked to"), "{log}");
    assert!(log.contains("You allowed them"), "{log}");
    assert!(log.contains("started an unattended session"), "{log}");

    // Another user's process is turned away by the service, whatever the file permissions.
    let intruder = Command::new(bin("tether-agent"))
        .args(["desktop", "--socket", &socket.display().to_string()])
        .env("TETHER_AGENT_DATA", "/nonexistent")
        .uid(65534)
        .gid(65534)
        .output();
    match intruder {
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(
                err.contains("refused") && err.contains("you are uid 65534"),
                "{err}"
            );
        }
        // Only root can start a process as another user; the check is then reported, not faked.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            eprintln!("SKIPPED: another user's process (needs root to start one): {e}")
        }
        Err(e) => panic!("{e}"),
    }
    // The user's own agent is still connected: a second one of theirs is refused too.
    let second = Command::new(bin("tether-agent"))
        .args(["desktop", "--socket", &socket.display().to_string()])
        .env("TETHER_AGENT_DATA", user_dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already connected"), "{err}");
}

/// The same attended session with the per-user agent's window, as it starts at login: the consent
/// dialog says IT enrolled this computer, and the user's ticks and Allow decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_user_agents_window_asks_and_the_users_ticks_decide() {
    use tether_agent::window::layout as agent;
    let e = enrolled().await;
    let mut cmd = Command::new(bin("tether-agent"));
    cmd.args(["desktop", "--socket", &e.socket.display().to_string()])
        .env("TETHER_BACKEND", "x11");
    let window = tether_tests::gui::Gui::start(cmd, (1280, 800), agent::TITLE);
    window.expect("This computer is enrolled by Acme IT");
    let keys = tempfile::tempdir().unwrap();
    certified(keys.path(), &e.org, ORG, "Ada Lovelace");
    let target = DeviceTarget {
        device: e.id.device_id.clone(),
        unattended: false,
        key_dir: keys.path().to_path_buf(),
    };
    let config = e.relay.console();
    let asked: ScopeSet = [Scope::Inventory, Scope::Diagnostics].into_iter().collect();
    let console = tokio::spawn(async move {
        let mut session = pair_device(&config, &target, asked).await?;
        let granted = session.ask_consent().await?;
        session.end().await;
        Ok::<_, tether_console::error::ConsoleError>(granted)
    });
    window.expect("asks to:");
    std::thread::sleep(std::time::Duration::from_secs(1));
    window.screenshot("agent-enrolled-consent", agent::SIZE, (5, 5));
    // The user allows only the first row (diagnostics comes first in the dialog's order).
    window.click(agent::scope_box(0));
    window.click(agent::centre(agent::ALLOW));
    let granted = console.await.unwrap().expect("the user answered");
    assert_eq!(
        granted.iter().count(),
        1,
        "only what the user ticked: {granted}"
    );
    assert_eq!(granted.intersection(asked), granted);
}
