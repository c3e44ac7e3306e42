//! The enrolled service's end of the local socket to the per-user agent
//! ([`tether_proto::desktop`]): who may connect, and the device's side of the handshake it runs for
//! an attended session.
//!
//! # Who may connect
//! Only a process of the user of the active graphical session, as logind names it (or the one uid
//! IT configured, `tether-agent run --desktop-user UID`, where there is no logind). The kernel
//! tells who is at the other end (`SO_PEERCRED`); the socket file is open to everyone, since the
//! check is this, not its permissions. Anyone else is told why and the connection closes.
//!
//! # One attended session
//! The service hands a wake to the connected per-user agent ([`Desktops::take`]), which connects to
//! the relay and forwards the console's handshake messages. The service runs
//! [`tether_proto::handshake`] with the device key, checks that the technician asked for an
//! attended session, and only then gives the keys. The device key never leaves the service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tether_proto::codec;
use tether_proto::desktop::{DesktopToService, ServiceToDesktop};
use tether_proto::fleet::Wake;
use tether_proto::handshake::{DeviceTrust, Handshake};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::STEP_TIMEOUT;
use crate::enroll::{DataDir, Identity};

/// Where the service listens by default (and the per-user agent connects).
pub const DEFAULT_SOCKET: &str = "/run/tether-agent/desktop.sock";

/// Who may connect to the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesktopUser {
    /// The user of the active graphical session, from logind.
    Logind,
    /// This uid (IT's choice where there is no logind).
    Uid(u32),
}

impl std::str::FromStr for DesktopUser {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "logind" {
            return Ok(DesktopUser::Logind);
        }
        s.parse()
            .map(DesktopUser::Uid)
            .map_err(|_| format!("{s:?} is neither \"logind\" nor a numeric uid"))
    }
}

/// The socket the service offers the per-user agent.
#[derive(Debug, Clone)]
pub struct DesktopConfig {
    /// Its path.
    pub socket: PathBuf,
    /// Who may connect.
    pub user: DesktopUser,
}

/// A wake for the per-user agent, with what the service needs to answer its handshake.
#[derive(Debug)]
pub(crate) struct DesktopWake {
    pub wake: Wake,
    pub trust: DeviceTrust,
}

/// What the service tells the per-user agent outside a handshake.
type Notices = mpsc::Sender<ServiceToDesktop>;

/// The per-user agent connected now (its wakes and notices), if any, and the unattended sessions
/// running (each one's stop), which the user may end.
#[derive(Debug, Default)]
pub(crate) struct Desktops {
    current: Mutex<Option<mpsc::Sender<DesktopWake>>>,
    notices: Mutex<Option<Notices>>,
    unattended: Mutex<Vec<CancellationToken>>,
}

impl Desktops {
    /// Whether a per-user agent is connected.
    pub fn present(&self) -> bool {
        self.lock().as_ref().is_some_and(|t| !t.is_closed())
    }

    /// Hands `wake` to the connected per-user agent; `Err` says why it cannot take it.
    pub fn take(&self, wake: DesktopWake) -> Result<(), String> {
        let current = self.lock().clone();
        match current {
            None => Err("nobody is logged in to answer".into()),
            Some(tx) => tx.try_send(wake).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    "the logged-in user is already answering another session".to_string()
                }
                mpsc::error::TrySendError::Closed(_) => "nobody is logged in to answer".to_string(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<DesktopWake>>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the logged-in user's agent, if one is connected (best effort: a full queue drops it).
    pub fn tell(&self, notice: ServiceToDesktop) {
        let notices = self.notices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = notices.as_ref() {
            let _ = tx.try_send(notice);
        }
    }

    /// An unattended session runs until `stop`; the user may end it.
    pub fn running(&self, stop: CancellationToken) {
        let mut all = self.unattended.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|t| !t.is_cancelled());
        all.push(stop);
    }

    /// The user ends every unattended session running now.
    fn end_unattended(&self) {
        let all = std::mem::take(&mut *self.unattended.lock().unwrap_or_else(|p| p.into_inner()));
        info!(
            sessions = all.len(),
            "the user ends the unattended sessions"
        );
        all.iter().for_each(CancellationToken::cancel);
    }
}

/// One frame (as on the network: [`codec::encode`]) on the local socket.
pub(crate) async fn write_local<T: serde::Serialize>(
    w: &mut (impl AsyncWrite + Unpin),
    msg: &T,
) -> std::io::Result<()> {
    let frame = codec::encode(msg).map_err(std::io::Error::other)?;
    w.write_all(&frame).await?;
    w.flush().await
}

/// Reads one frame from the local socket; `Ok(None)` when the peer closed it between frames.
pub(crate) async fn read_local<T: serde::de::DeserializeOwned>(
    r: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<T>> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header).await {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        r => r?,
    };
    let len = codec::body_len(header).map_err(std::io::Error::other)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    codec::from_body(&body)
        .map(Some)
        .map_err(std::io::Error::other)
}

/// A logind session, as far as choosing the desktop user goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSession {
    /// Its user.
    pub uid: u32,
    /// Whether it is the one in front (the active session of its seat).
    pub active: bool,
    /// `x11`, `wayland`, `tty`, ...
    pub kind: String,
    /// `user`, `greeter`, `lock-screen`, ...
    pub class: String,
}

/// The user of the active graphical session: an active `x11` or `wayland` session of class `user`
/// (a login screen's greeter is nobody). Several such users (two seats) → the first.
pub fn desktop_uid(sessions: &[LoginSession]) -> Option<u32> {
    sessions
        .iter()
        .find(|s| s.active && s.class == "user" && matches!(s.kind.as_str(), "x11" | "wayland"))
        .map(|s| s.uid)
}

/// The sessions logind knows (system D-Bus, `org.freedesktop.login1`).
fn logind_sessions() -> Result<Vec<LoginSession>, String> {
    use zbus::blocking::{Connection, Proxy};
    let bus = Connection::system().map_err(|e| format!("no system bus for logind: {e}"))?;
    let manager = Proxy::new(
        &bus,
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
    )
    .map_err(|e| e.to_string())?;
    type Listed = (String, u32, String, String, zbus::zvariant::OwnedObjectPath);
    let listed: Vec<Listed> = manager
        .call("ListSessions", &())
        .map_err(|e| format!("logind: {e}"))?;
    let mut out = Vec::new();
    for (_, uid, _, _, path) in listed {
        let session = Proxy::new(
            &bus,
            "org.freedesktop.login1",
            path,
            "org.freedesktop.login1.Session",
        )
        .map_err(|e| e.to_string())?;
        out.push(LoginSession {
            uid,
            active: session.get_property("Active").unwrap_or(false),
            kind: session.get_property("Type").unwrap_or_default(),
            class: session.get_property("Class").unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Whether `uid` may use the socket now; `Err` is what that process is told.
fn allowed(user: DesktopUser, uid: u32) -> Result<(), String> {
    let desktop = match user {
        DesktopUser::Uid(u) => Some(u),
        DesktopUser::Logind => desktop_uid(&logind_sessions()?),
    };
    match desktop {
        Some(d) if d == uid => Ok(()),
        Some(d) => Err(format!(
            "this computer's Tether service talks only to the logged-in desktop user (uid {d}); \
             you are uid {uid}"
        )),
        None => Err("nobody is logged in to a desktop session on this computer".into()),
    }
}

/// Listens on `config.socket` until `shutdown`, one per-user agent at a time.
pub(crate) async fn listen(
    config: DesktopConfig,
    id: Identity,
    dir: DataDir,
    desktops: Arc<Desktops>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = bind(&config.socket)?;
    info!(socket = %config.socket.display(), "waiting for the desktop user's agent");
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a?,
        };
        let peer = stream.peer_cred().map(|c| c.uid());
        let (id, dir, desktops, user) = (id.clone(), dir.clone(), desktops.clone(), config.user);
        tokio::spawn(async move {
            let verdict = match peer {
                Ok(uid) => tokio::task::spawn_blocking(move || allowed(user, uid))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string())),
                Err(e) => Err(format!("who is connecting could not be told: {e}")),
            };
            serve(stream, verdict, id, dir, &desktops).await
        });
    }
    let _ = std::fs::remove_file(&config.socket);
    Ok(())
}

fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    // A socket left by a service that did not stop cleanly.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    // Anyone may connect; who is let in is decided by the peer's credentials.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// One per-user agent's connection.
async fn serve(
    mut stream: UnixStream,
    verdict: Result<(), String>,
    id: Identity,
    dir: DataDir,
    desktops: &Desktops,
) {
    if let Err(reason) = verdict {
        warn!(%reason, "refused a process on the desktop socket");
        let _ = write_local(&mut stream, &ServiceToDesktop::Refused { reason }).await;
        return;
    }
    let (tx, mut wakes) = mpsc::channel(1);
    let taken = {
        let mut current = desktops.lock();
        let taken = current.as_ref().is_some_and(|t| !t.is_closed());
        if !taken {
            *current = Some(tx);
        }
        taken
    };
    if taken {
        let reason = "another Tether agent of this user is already connected".to_string();
        let _ = write_local(&mut stream, &ServiceToDesktop::Refused { reason }).await;
        return;
    }
    let (notices_tx, mut notices) = mpsc::channel(16);
    *desktops.notices.lock().unwrap_or_else(|p| p.into_inner()) = Some(notices_tx);
    let unattended = dir.unattended_scopes(&id);
    let welcome = ServiceToDesktop::Welcome {
        unattended,
        org: id.org.clone(),
        device_id: id.device_id.clone(),
        relay: id.relay.clone(),
        relay_cert_sha256: id.relay_cert_sha256.clone(),
        relay_ca_file: id.relay_ca_file.as_ref().map(|p| p.display().to_string()),
    };
    if write_local(&mut stream, &welcome).await.is_err() {
        return;
    }
    info!("the desktop user's agent is connected");
    let (mut rx, mut txs) = stream.into_split();
    loop {
        tokio::select! {
            w = wakes.recv() => match w {
                Some(w) => {
                    if let Err(e) = attended(&mut rx, &mut txs, w, desktops).await {
                        warn!(error = %e, "the desktop user's agent went away during a handshake");
                        break;
                    }
                }
                None => break,
            },
            Some(n) = notices.recv() => {
                if write_local(&mut txs, &n).await.is_err() {
                    break;
                }
            }
            // Between sessions the agent sends only the user's end of unattended sessions; a
            // close (or anything else) ends the connection.
            m = read_local::<DesktopToService>(&mut rx) => match m {
                Ok(Some(DesktopToService::EndUnattended)) => desktops.end_unattended(),
                Ok(Some(DesktopToService::Abandoned { .. })) => {}
                _ => break,
            }
        }
    }
    *desktops.notices.lock().unwrap_or_else(|p| p.into_inner()) = None;
    info!("the desktop user's agent left");
}

/// Hands one wake to the per-user agent and runs the device's side of its handshake.
async fn attended(
    rx: &mut (impl AsyncRead + Unpin),
    tx: &mut (impl AsyncWrite + Unpin),
    w: DesktopWake,
    desktops: &Desktops,
) -> std::io::Result<()> {
    let DesktopWake { wake, trust } = w;
    let ask = ServiceToDesktop::Wake {
        ticket: wake.ticket,
        technician: wake.technician,
    };
    write_local(tx, &ask).await?;
    let mut hs = Handshake::device(trust, &mut rand::rngs::OsRng);
    loop {
        // The user's agent connects to the relay first; the console's messages follow.
        let next = tokio::time::timeout(2 * STEP_TIMEOUT, read_local::<DesktopToService>(rx))
            .await
            .map_err(|_| std::io::Error::other("no handshake message in time"))??;
        let msg = match next {
            Some(DesktopToService::Handshake(m)) => m,
            Some(DesktopToService::Abandoned { reason }) => {
                info!(%reason, "the attended session did not happen");
                return Ok(());
            }
            Some(DesktopToService::EndUnattended) => {
                desktops.end_unattended();
                continue;
            }
            None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
        };
        // The user's agent answers attended sessions only.
        if let Err(e) = crate::wake_link::device_step(&mut hs, msg, false) {
            let reason = e.to_string();
            warn!(%reason, "refused a session without a code");
            return write_local(tx, &ServiceToDesktop::Refused { reason }).await;
        }
        while let Some(m) = hs.poll_transmit() {
            write_local(tx, &ServiceToDesktop::Handshake(m)).await?;
        }
        if let Some(Ok(keys)) = hs.outcome() {
            let master = keys.handover();
            let Some(technician) = hs.technician().cloned() else {
                let reason = "the handshake finished without a technician".to_string();
                return write_local(tx, &ServiceToDesktop::Refused { reason }).await;
            };
            return write_local(tx, &ServiceToDesktop::Keys { master, technician }).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(uid: u32, active: bool, kind: &str, class: &str) -> LoginSession {
        LoginSession {
            uid,
            active,
            kind: kind.into(),
            class: class.into(),
        }
    }

    #[test]
    fn the_desktop_user_is_the_active_graphical_sessions() {
        assert_eq!(desktop_uid(&[]), None);
        // A text console, a greeter and an inactive desktop are nobody to ask.
        let nobody = [
            s(1000, true, "tty", "user"),
            s(120, true, "wayland", "greeter"),
            s(1001, false, "x11", "user"),
        ];
        assert_eq!(desktop_uid(&nobody), None);
        let mut with = nobody.to_vec();
        with.push(s(1002, true, "wayland", "user"));
        assert_eq!(desktop_uid(&with), Some(1002));
    }

    #[test]
    fn a_configured_uid_admits_only_itself() {
        assert!(allowed(DesktopUser::Uid(1000), 1000).is_ok());
        let e = allowed(DesktopUser::Uid(1000), 1001).unwrap_err();
        assert!(
            e.contains("uid 1000") && e.contains("you are uid 1001"),
            "{e}"
        );
        assert_eq!("logind".parse(), Ok(DesktopUser::Logind));
        assert_eq!("42".parse(), Ok(DesktopUser::Uid(42)));
        assert!("bob".parse::<DesktopUser>().is_err());
    }

    #[tokio::test]
    async fn frames_on_the_local_socket_round_trip_and_a_close_is_none() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let m = DesktopToService::Abandoned {
            reason: "relay".into(),
        };
        write_local(&mut a, &m).await.unwrap();
        drop(a);
        assert_eq!(
            read_local::<DesktopToService>(&mut b).await.unwrap(),
            Some(m)
        );
        assert_eq!(read_local::<DesktopToService>(&mut b).await.unwrap(), None);
    }
}
