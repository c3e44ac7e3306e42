//! Blind copying between a console stream and an agent stream. The relay never parses these bytes:
//! after pairing they are ciphertext it has no key for.

use std::sync::atomic::{AtomicU64, Ordering};

use tether_proto::msg::close;
use tokio_util::sync::CancellationToken;

use crate::config::SpliceTap;

/// Largest chunk moved at once; quinn hands over its buffers without copying.
const CHUNK: usize = 64 * 1024;

/// Bytes copied in each direction of a session.
#[derive(Debug, Default)]
pub struct Counters {
    /// Console → agent.
    pub to_agent: AtomicU64,
    /// Agent → console.
    pub to_console: AtomicU64,
}

/// Splices two bidirectional streams until both directions end or `end` fires.
pub async fn splice(
    console: (quinn::SendStream, quinn::RecvStream),
    agent: (quinn::SendStream, quinn::RecvStream),
    counters: &Counters,
    tap: Option<&SpliceTap>,
    end: &CancellationToken,
) {
    let (console_send, console_recv) = console;
    let (agent_send, agent_recv) = agent;
    tokio::join!(
        pipe(console_recv, agent_send, &counters.to_agent, tap, end),
        pipe(agent_recv, console_send, &counters.to_console, tap, end),
    );
}

async fn pipe(
    mut from: quinn::RecvStream,
    mut to: quinn::SendStream,
    count: &AtomicU64,
    tap: Option<&SpliceTap>,
    end: &CancellationToken,
) {
    loop {
        tokio::select! {
            _ = end.cancelled() => {
                // Reset rather than finish: the receiver must not mistake a cut for a clean end.
                let _ = to.reset(close::SESSION_ENDED.into());
                let _ = from.stop(close::SESSION_ENDED.into());
                return;
            }
            chunk = from.read_chunk(CHUNK, true) => match chunk {
                Ok(Some(chunk)) => {
                    if let Some(tap) = tap {
                        tap(&chunk.bytes);
                    }
                    count.fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
                    if to.write_chunk(chunk.bytes).await.is_err() {
                        let _ = from.stop(close::PEER_GONE.into());
                        return;
                    }
                }
                Ok(None) => {
                    let _ = to.finish();
                    return;
                }
                Err(_) => {
                    let _ = to.reset(close::PEER_GONE.into());
                    return;
                }
            }
        }
    }
}
