//! A bidirectional quinn stream whose frames are sealed end to end with the session's keys.

use serde::{Serialize, de::DeserializeOwned};
use tether_proto::pairing::Side;
use tether_proto::seal::{Direction, Opener, SealError, Sealer, SessionKeys};

use crate::framed::{self, FrameError};

/// Errors on a sealed stream.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// Framing or the stream failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame failed to open: the session must end.
    #[error(transparent)]
    Seal(#[from] SealError),
}

impl SealedError {
    /// Whether the peer (or someone on the path) broke protocol: a frame that fails to open, does not
    /// decode, or is cut short. Such a failure on any session stream ends the session; a stream that
    /// was closed, reset or lost with its connection is not the peer's fault.
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            SealedError::Seal(_) | SealedError::Frame(FrameError::Codec(_) | FrameError::Truncated)
        )
    }
}

/// One session stream, sealed in both directions.
#[derive(Debug)]
pub struct SealedStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    sealer: Sealer,
    opener: Opener,
}

impl SealedStream {
    /// Wraps a spliced stream numbered `stream` for `side`.
    pub fn new(
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        keys: &SessionKeys,
        stream: u32,
        side: Side,
    ) -> Self {
        let (out_dir, in_dir) = match side {
            Side::Console => (Direction::ConsoleToAgent, Direction::AgentToConsole),
            Side::Agent => (Direction::AgentToConsole, Direction::ConsoleToAgent),
        };
        SealedStream {
            send,
            recv,
            sealer: keys.sealer(stream, out_dir),
            opener: keys.opener(stream, in_dir),
        }
    }

    /// Seals and sends one message.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), SealedError> {
        let body = self.sealer.seal_msg(msg)?;
        framed::write_frame_owned(&mut self.send, body).await?;
        Ok(())
    }

    /// Receives and opens one message.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, SealedError> {
        let body = framed::read_frame(&mut self.recv).await?;
        Ok(self.opener.open_msg(body)?)
    }

    /// Finishes the sending half (no more frames from this side).
    pub fn finish(&mut self) {
        // Finishing an already finished or reset stream is harmless here.
        let _ = self.send.finish();
    }

    /// Splits into halves that can be used from different tasks (a reader task keeps reads
    /// cancel-safe for `select!` loops).
    pub fn split(self) -> (SealedSend, SealedRecv) {
        (
            SealedSend {
                send: self.send,
                sealer: self.sealer,
            },
            SealedRecv {
                recv: self.recv,
                opener: self.opener,
            },
        )
    }
}

/// The sending half of a [`SealedStream`].
#[derive(Debug)]
pub struct SealedSend {
    send: quinn::SendStream,
    sealer: Sealer,
}

impl SealedSend {
    /// Seals and sends one message.
    pub async fn send<T: Serialize>(&mut self, msg: &T) -> Result<(), SealedError> {
        let body = self.sealer.seal_msg(msg)?;
        framed::write_frame_owned(&mut self.send, body).await?;
        Ok(())
    }

    /// Finishes the stream and waits (bounded) until the peer has received everything sent.
    pub async fn finish_and_flush(&mut self, limit: std::time::Duration) {
        if self.send.finish().is_ok() {
            let _ = tokio::time::timeout(limit, self.send.stopped()).await;
        }
    }
}

/// The receiving half of a [`SealedStream`].
#[derive(Debug)]
pub struct SealedRecv {
    recv: quinn::RecvStream,
    opener: Opener,
}

impl SealedRecv {
    /// Receives and opens one message. Not cancel-safe: use from one task.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<T, SealedError> {
        let body = framed::read_frame(&mut self.recv).await?;
        Ok(self.opener.open_msg(body)?)
    }
}
