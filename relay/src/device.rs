//! An enrolled (or enrolling) device's control stream: `Enroll`, or `Auth` then `Report`s.
//! See `tether_proto::fleet` for the message flow.

use std::sync::Arc;

use tether_net::framed::{self, FrameError};
use tether_proto::fleet::{DeviceToRelay, FleetError, FleetErrorKind, RelayToDevice};
use tracing::{Instrument, debug, info, info_span, warn};

use tokio_util::sync::CancellationToken;

use crate::audit::AuditEvent;
use crate::audit_writer::AuditWriter;
use crate::blocking::blocking;
use crate::config::HELLO_TIMEOUT;
use crate::conn::{close_protocol, finish, refuse};
use crate::end::fleet_error_name;
use crate::store::{Ingested, Store};

/// What a device's control stream needs.
#[derive(Debug, Clone)]
pub struct DeviceCtx {
    /// The fleet store.
    pub store: Arc<dyn Store>,
    /// A connected device can be woken for a session without a code.
    pub wakes: Arc<crate::wake::Wakes>,
    /// Enrollments are audited (and refused while the log cannot be written).
    pub audit: AuditWriter,
    /// The relay is stopping.
    pub shutdown: CancellationToken,
}

pub(crate) async fn serve(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: &DeviceCtx,
) {
    let peer = conn.remote_address().to_string();
    let first = tokio::select! {
        _ = ctx.shutdown.cancelled() => return,
        r = tokio::time::timeout(HELLO_TIMEOUT, framed::read_msg::<DeviceToRelay>(&mut recv)) => r,
    };
    let first = match first {
        Err(_) => {
            return conn.close(
                tether_proto::msg::close::PROTOCOL_ERROR.into(),
                b"no request in time",
            );
        }
        Ok(Err(e)) => return close_protocol(&conn, &e),
        Ok(Ok(m)) => m,
    };
    let device_id = match first {
        DeviceToRelay::Enroll {
            token,
            secret_sha256,
            hostname,
            device_key,
        } => {
            if let Err(text) = ctx.audit.gate() {
                let e = FleetError::new(FleetErrorKind::AuditUnavailable, text);
                return refuse(&conn, send, &RelayToDevice::Error(e)).await;
            }
            let host = hostname.clone();
            let now = crate::clock::now_unix();
            let result = blocking(&ctx.store, move |s| {
                s.enroll(&token, &secret_sha256, &hostname, &device_key, now)
            })
            .await;
            match result {
                Ok((device_id, org)) => {
                    info!(%device_id, %org, "device enrolled");
                    ctx.audit.record(AuditEvent::DeviceEnrolled {
                        device_id: device_id.clone(),
                        org: org.clone(),
                        hostname: host,
                        peer,
                    });
                    let _ =
                        framed::write_msg(&mut send, &RelayToDevice::Enrolled { device_id, org })
                            .await;
                    finish(&conn, send).await;
                }
                Err(e) => {
                    ctx.audit.record(AuditEvent::EnrollRefused {
                        reason: fleet_error_name(e.kind).to_string(),
                        peer,
                    });
                    refuse(&conn, send, &RelayToDevice::Error(e)).await;
                }
            }
            return;
        }
        DeviceToRelay::Auth { device_id, secret } => {
            let id = device_id.clone();
            let auth = blocking(&ctx.store, move |s| {
                let last_seq = s.authenticate(&id, &secret)?;
                Ok::<_, FleetError>((last_seq, s.device_policy(&id)?))
            });
            match auth.await {
                Ok((last_seq, policy)) => {
                    let answer = RelayToDevice::Authenticated { last_seq, policy };
                    if framed::write_msg(&mut send, &answer).await.is_err() {
                        return;
                    }
                    device_id
                }
                Err(e) => {
                    warn!(kind = ?e.kind, "device authentication refused");
                    return refuse(&conn, send, &RelayToDevice::Error(e)).await;
                }
            }
        }
        DeviceToRelay::Report(_) => {
            let e = FleetError::new(
                FleetErrorKind::UnexpectedMessage,
                "a report before authentication; send Auth first",
            );
            return refuse(&conn, send, &RelayToDevice::Error(e)).await;
        }
    };
    let span = info_span!("device", device = %device_id);
    reports(conn, send, recv, ctx, device_id)
        .instrument(span)
        .await
}

/// An authenticated device's reports, each answered in turn.
async fn reports(
    conn: quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ctx: &DeviceCtx,
    device_id: String,
) {
    info!(%device_id, "device connected");
    let mut wakes = ctx.wakes.register(&device_id);
    let mut delivering = tokio::task::JoinSet::new();
    loop {
        let msg = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            m = framed::read_msg::<DeviceToRelay>(&mut recv) => m,
            Some(call) = wakes.calls.recv() => {
                let conn = conn.clone();
                delivering.spawn(async move { crate::wake::deliver(&conn, call).await });
                continue;
            }
            Some(_) = delivering.join_next(), if !delivering.is_empty() => continue,
        };
        let report = match msg {
            Ok(DeviceToRelay::Report(r)) => r,
            Ok(_) => {
                let e = FleetError::new(
                    FleetErrorKind::UnexpectedMessage,
                    "only reports may follow Auth",
                );
                return refuse(&conn, send, &RelayToDevice::Error(e)).await;
            }
            Err(FrameError::Closed) | Err(FrameError::Connection(_)) | Err(FrameError::Read(_)) => {
                break;
            }
            Err(e) => {
                // A truncated or malformed report: nothing was stored; say why and close.
                warn!(%device_id, error = %e, "malformed report");
                return close_protocol(&conn, &e);
            }
        };
        let seq = report.seq;
        let id = device_id.clone();
        let now = crate::clock::now_unix();
        let reply = match blocking(&ctx.store, move |s| s.ingest(&id, &report, now)).await {
            Ok(Ingested::Stored) => RelayToDevice::Ack {
                seq,
                duplicate: false,
            },
            Ok(Ingested::Duplicate) => RelayToDevice::Ack {
                seq,
                duplicate: true,
            },
            Ok(Ingested::Resync { expected, error }) => {
                warn!(%device_id, seq, expected, kind = ?error.kind, "report out of sequence; device told to resync");
                RelayToDevice::Resync {
                    seq,
                    expected,
                    error,
                }
            }
            Err(error) => {
                warn!(%device_id, seq, kind = ?error.kind, "report rejected");
                RelayToDevice::Rejected { seq, error }
            }
        };
        debug!(%device_id, seq, ?reply, "report handled");
        if framed::write_msg(&mut send, &reply).await.is_err() {
            break;
        }
    }
}
