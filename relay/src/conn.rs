//! Ending a connection: a protocol violation closes with the reason, a refusal is sent and then the
//! peer is given a moment to read it. Every connection handler uses these, so they sit in a leaf
//! module of their own (not in `server`, which the handlers must not import back).

use std::time::Duration;

use tether_net::framed;
use tether_proto::msg::close;
use tracing::debug;

/// How long a refused peer gets to read the refusal and hang up.
pub const REFUSAL_GRACE: Duration = Duration::from_secs(5);

/// Closes `conn` for a protocol violation, with the reason in the close frame.
pub fn close_protocol(conn: &quinn::Connection, err: &dyn std::fmt::Display) {
    debug!(error = %err, "closing for protocol error");
    conn.close(
        close::PROTOCOL_ERROR.into(),
        format!("protocol error: {err}").as_bytes(),
    );
}

/// Sends a final refusal on `send`, then waits (bounded) for the peer to read it and hang up.
pub async fn refuse<T: serde::Serialize>(
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    msg: &T,
) {
    let _ = framed::write_msg(&mut send, msg).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(REFUSAL_GRACE, conn.closed()).await;
    conn.close(close::NORMAL.into(), b"refused");
}

/// Finishes `send` after a last answer and waits (bounded) for the peer to hang up.
pub async fn finish(conn: &quinn::Connection, mut send: quinn::SendStream) {
    let _ = send.finish();
    let _ = tokio::time::timeout(REFUSAL_GRACE, conn.closed()).await;
}
