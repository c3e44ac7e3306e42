//! Length-prefixed frames on quinn streams. The length is checked before the body is allocated.

use serde::{Serialize, de::DeserializeOwned};
use tether_proto::codec::{self, CodecError, HEADER_LEN};

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The frame was malformed or too large.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The stream ended in the middle of a frame.
    #[error("stream ended mid-frame")]
    Truncated,
    /// The stream ended where a frame was expected.
    #[error("stream closed by peer")]
    Closed,
    /// The stream was reset or the connection lost.
    #[error("stream error: {0}")]
    Read(#[from] quinn::ReadError),
    /// Writing failed.
    #[error("stream error: {0}")]
    Write(#[from] quinn::WriteError),
    /// The connection was closed.
    #[error("connection error: {0}")]
    Connection(#[from] quinn::ConnectionError),
}

/// Reads one frame body. A clean end of stream before any header byte is [`FrameError::Closed`].
pub async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    read_exact(recv, &mut header, true).await?;
    let len = codec::body_len(header)?;
    let mut body = vec![0u8; len];
    read_exact(recv, &mut body, false).await?;
    Ok(body)
}

async fn read_exact(
    recv: &mut quinn::RecvStream,
    buf: &mut [u8],
    at_boundary: bool,
) -> Result<(), FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match recv.read(&mut buf[filled..]).await? {
            Some(n) => filled += n,
            None if filled == 0 && at_boundary => return Err(FrameError::Closed),
            None => return Err(FrameError::Truncated),
        }
    }
    Ok(())
}

/// Reads and decodes one plain message.
pub async fn read_msg<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<T, FrameError> {
    Ok(codec::from_body(&read_frame(recv).await?)?)
}

/// Writes one frame with `body`.
pub async fn write_frame(send: &mut quinn::SendStream, body: &[u8]) -> Result<(), FrameError> {
    send.write_all(&codec::frame(body)?).await?;
    Ok(())
}

/// Writes one frame whose body is handed over: quinn keeps the body's buffer as it is instead of
/// copying it (a file chunk is sealed in place and sent without another copy).
pub async fn write_frame_owned(
    send: &mut quinn::SendStream,
    body: Vec<u8>,
) -> Result<(), FrameError> {
    send.write_all(&codec::header(body.len())?).await?;
    send.write_chunk(bytes::Bytes::from(body)).await?;
    Ok(())
}

/// Encodes and writes one plain message.
pub async fn write_msg<T: Serialize>(
    send: &mut quinn::SendStream,
    msg: &T,
) -> Result<(), FrameError> {
    send.write_all(&codec::encode(msg)?).await?;
    Ok(())
}
