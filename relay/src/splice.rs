//! Blind copying between a console stream and an agent stream. The relay never parses these bytes:
//! after pairing they are ciphertext it has no key for.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tether_proto::msg::close;
use tokio_util::sync::CancellationToken;

use crate::config::SpliceTap;
use crate::metrics::Metrics;

/// Chunks moved per read: quinn hands over its received buffers (about one packet each) without
/// copying, and taking a batch locks each connection once per batch instead of once per packet.
const BATCH: usize = 32;

/// Bytes copied in each direction of a session.
#[derive(Debug, Default)]
pub struct Counters {
    /// Console → agent.
    pub to_agent: AtomicU64,
    /// Agent → console.
    pub to_console: AtomicU64,
    /// The relay-wide totals, updated alongside.
    pub global: Option<Arc<Metrics>>,
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
        pipe(
            console_recv,
            agent_send,
            [
                Some(&counters.to_agent),
                counters.global.as_ref().map(|g| &g.bytes_to_agent)
            ],
            tap,
            end
        ),
        pipe(
            agent_recv,
            console_send,
            [
                Some(&counters.to_console),
                counters.global.as_ref().map(|g| &g.bytes_to_console)
            ],
            tap,
            end
        ),
    );
}

async fn pipe(
    mut from: quinn::RecvStream,
    mut to: quinn::SendStream,
    count: [Option<&AtomicU64>; 2],
    tap: Option<&SpliceTap>,
    end: &CancellationToken,
) {
    let mut bufs: [bytes::Bytes; BATCH] = Default::default();
    loop {
        tokio::select! {
            _ = end.cancelled() => {
                // Reset rather than finish: the receiver must not mistake a cut for a clean end.
                let _ = to.reset(close::SESSION_ENDED.into());
                let _ = from.stop(close::SESSION_ENDED.into());
                return;
            }
            got = from.read_chunks(&mut bufs) => match got {
                Ok(Some(n)) => {
                    let batch = &mut bufs[..n];
                    let mut len = 0;
                    for b in batch.iter() {
                        if let Some(tap) = tap {
                            tap(b);
                        }
                        len += b.len() as u64;
                    }
                    for c in count.into_iter().flatten() {
                        c.fetch_add(len, Ordering::Relaxed);
                    }
                    let mut done = 0;
                    while done < n {
                        match to.write_chunks(&mut batch[done..]).await {
                            // A partly written chunk was advanced in place and is retried.
                            Ok(w) => done += w.chunks,
                            Err(_) => {
                                let _ = from.stop(close::PEER_GONE.into());
                                return;
                            }
                        }
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
