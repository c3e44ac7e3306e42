//! Sessions with an enrolled device of your organisation, without a code
//! (`tether-console connect|inventory|diag --device HOST`, and the window's Devices tab).
//!
//! # Flow
//! the device key from the fleet record (learned at enrollment) → the technician key and IT's
//! certificate (`tether-console key`) → `ConnectDevice` (the relay wakes the device and splices)
//! → the console's side of [`tether_proto::handshake`] on stream 0 → the same [`Session`] a code
//! gives. The device checks the certificate under the org key it pinned; the console checks the
//! device's signature under the fleet record's key; the relay is trusted by neither.

use tracing::Instrument;

use tether_net::client;
use tether_net::framed::{self, FrameError};
use tether_proto::msg::{ConsoleToRelay, RelayToConsole, Role, close};
use tether_proto::records::{MAX_REASON_CHARS, truncate_text};
use tether_proto::text::display_safe;
use tether_proto::{ScopeSet, SessionCode};

use crate::error::ConsoleError;
use crate::session::{
    ConsoleConfig, Paired, STEP_TIMEOUT, Session, connection_span, pair_session, step,
};

/// Where a session goes: a code the user reads out, or an enrolled device of your organisation.
#[derive(Debug, Clone)]
pub enum Reach {
    /// The user's one-time code.
    Code(SessionCode),
    /// An enrolled device, no code.
    Device(DeviceTarget),
}

/// [`pair_session`] or [`pair_device`], as `reach` says.
pub async fn pair_reach(
    config: &ConsoleConfig,
    reach: &Reach,
    scopes: ScopeSet,
) -> Result<Session, ConsoleError> {
    match reach {
        Reach::Code(code) => pair_session(config, *code, scopes).await,
        Reach::Device(target) => pair_device(config, target, scopes).await,
    }
}

/// An enrolled device of your organisation, reached without a code
/// (`tether-console connect --device HOST`).
#[derive(Debug, Clone)]
pub struct DeviceTarget {
    /// Its host name or id, as `devices list` shows it.
    pub device: String,
    /// Ask for a session nobody answers: only what IT's signed policy on the device names.
    pub unattended: bool,
    /// Where your technician key and its certificate are (`tether-console key`).
    pub key_dir: std::path::PathBuf,
}

/// Connects to an enrolled device without a code, for `scopes`, without asking for consent yet
/// ([`Session::ask_consent`] asks, or IT's policy answers for an unattended session).
///
/// The device is checked against the key its fleet record holds (learned at enrollment), and it
/// checks this technician's certificate under the organisation key it pinned: the relay only wakes
/// it and carries the bytes ([`tether_proto::handshake`]).
pub async fn pair_device(
    config: &ConsoleConfig,
    target: &DeviceTarget,
    scopes: ScopeSet,
) -> Result<Session, ConsoleError> {
    use crate::technician_key;
    use tether_proto::fleet::{FleetQuery, FleetReply};
    use tether_proto::handshake::{Handshake, TechnicianTrust};
    let local = |e: technician_key::KeyError| ConsoleError::Device(e.to_string());
    let key = technician_key::load(&target.key_dir).map_err(local)?;
    let cert = technician_key::installed_cert(&target.key_dir)
        .map_err(local)?
        .ok_or_else(|| {
            ConsoleError::Device(format!(
                "no certificate is installed in {}: ask your IT admin to certify your key \
                 (`tether-relay org-key certify`), then `tether-console key install --cert FILE`",
                target.key_dir.display()
            ))
        })?;
    let show = FleetQuery::ShowDevice {
        device: target.device.clone(),
    };
    let record = match crate::fleet::query(config, show).await?.into_iter().next() {
        Some(FleetReply::Device(d)) => d,
        _ => {
            return Err(ConsoleError::Protocol(
                "the relay answered a device query with something else".into(),
            ));
        }
    };
    let host = display_safe(&record.summary.hostname).into_owned();
    let device_key = record.summary.device_key.ok_or_else(|| {
        ConsoleError::Device(format!(
            "the fleet record of {host} holds no device key (it enrolled before device keys), so \
             the console cannot check that it is that device: enroll it again"
        ))
    })?;
    let connection = connection_span(config, "device session");
    let span = tracing::info_span!(parent: &connection, "session", device = %host, session = tracing::field::Empty);
    let relay = client::connect(&config.relay)
        .instrument(connection.clone())
        .await?;
    let trust = TechnicianTrust {
        key,
        cert,
        device: device_key,
        unattended: target.unattended,
    };
    let woken = async {
        let (mut send, mut recv) = client::open_control(&relay.conn, Role::Console).await?;
        let ask = ConsoleToRelay::ConnectDevice {
            token: config.token.clone(),
            device: record.summary.device_id.clone(),
            scopes,
            unattended: target.unattended,
        };
        framed::write_msg(&mut send, &ask).await?;
        // The relay waits for the device to come (at most its wake time) before it answers.
        let answer =
            tokio::time::timeout(STEP_TIMEOUT, framed::read_msg::<RelayToConsole>(&mut recv))
                .await
                .map_err(|_| ConsoleError::Protocol("the relay did not answer in time".into()))??;
        let (technician, reason, record, route) = match answer {
            RelayToConsole::Claimed {
                technician,
                reason,
                record,
                route,
            } => (technician, reason, record, route),
            RelayToConsole::Error(e) => return Err(e.into()),
            other => {
                return Err(ConsoleError::Protocol(format!(
                    "unexpected answer to a device connection: {other:?}"
                )));
            }
        };
        if let Some(id) = record {
            tracing::Span::current().record("session", id);
        }
        let mut hs = Handshake::console(trust, &mut rand::rngs::OsRng);
        while hs.outcome().is_none() {
            while let Some(m) = hs.poll_transmit() {
                framed::write_msg(&mut send, &m).await?;
            }
            let m = step(async {
                framed::read_msg::<tether_proto::handshake::HandshakeMsg>(&mut recv)
                    .await
                    .map_err(|e| match e {
                        FrameError::Closed | FrameError::Read(_) | FrameError::Connection(_) => {
                            ConsoleError::Device(format!(
                                "{host} ended the session before the handshake finished"
                            ))
                        }
                        other => other.into(),
                    })
            })
            .await?;
            hs.handle(m, tether_net::clock::now_unix())
                .map_err(|e| ConsoleError::Device(format!("{host}: {e}")))?;
        }
        // The console's last message (its signature) goes out; the device checks it.
        while let Some(m) = hs.poll_transmit() {
            framed::write_msg(&mut send, &m).await?;
        }
        let keys = hs
            .into_keys()
            .map_err(|e| ConsoleError::Device(format!("{host}: {e}")))?;
        let reason = reason.map(|r| truncate_text(&r, MAX_REASON_CHARS, false));
        let mut p = Paired::sealed(keys, (send, recv), technician, reason, record, route);
        let e2e = p.end_to_end(&relay, config.relay.direct).await?;
        Ok((p, e2e))
    }
    .instrument(span.clone())
    .await;
    match woken {
        Ok((p, e2e)) => Ok(Session::paired(relay, span, p, e2e, scopes, config)),
        Err(e) => {
            relay.close(close::NORMAL, "console giving up").await;
            Err(e)
        }
    }
}
