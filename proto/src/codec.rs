//! Framing: the only place that touches bincode.
//!
//! A frame on a stream is a 4-byte big-endian length followed by that many bytes of body. Plain messages
//! are bincode 2 (serde) bodies; sealed session frames are ciphertext bodies (see [`crate::seal`]).
//! The length is checked against [`MAX_FRAME_LEN`] as soon as the 4-byte header is read, so a peer
//! cannot make us allocate more than that.

use serde::{Serialize, de::DeserializeOwned};

/// Length of the frame header.
pub const HEADER_LEN: usize = 4;

/// Largest frame body accepted or produced (4 MiB). Large enough for a compressed full screen frame
/// and a full software inventory; anything larger is a protocol violation.
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// Errors from framing and (de)serialising.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The header announced a body larger than [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the maximum of {MAX_FRAME_LEN}")]
    TooLarge(usize),
    /// The header announced an empty body; no message encodes to zero bytes.
    #[error("empty frame")]
    Empty,
    /// The body is not a valid encoding of the expected message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The body decoded but left bytes unread.
    #[error("malformed message: {0} trailing bytes")]
    TrailingBytes(usize),
    /// The message could not be encoded (a bug, or a value too large to frame).
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// Most memory one body may claim while it is decoded (64 MiB). bincode counts collections at their
/// in-memory size, which can be several times their compact encoding (a package list of 4 MiB on the
/// wire is larger as `Vec<Package>`), so this is a multiple of [`MAX_FRAME_LEN`]: still a hard bound
/// on what a hostile length field inside a body can make us allocate.
pub const MAX_DECODED_LEN: usize = 16 * MAX_FRAME_LEN;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODED_LEN>()
}

/// Reads a frame header and returns the body length, rejecting oversized and empty frames.
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, CodecError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_LEN {
        return Err(CodecError::TooLarge(len));
    }
    if len == 0 {
        return Err(CodecError::Empty);
    }
    Ok(len)
}

/// Prefixes `body` with its length, producing one frame.
pub fn frame(body: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&header(body.len())?);
    out.extend_from_slice(body);
    Ok(out)
}

/// The header of a frame whose body is `len` bytes, for a writer that sends the body on its own
/// (without copying it behind the header); checked as [`frame`] checks it.
pub fn header(len: usize) -> Result<[u8; HEADER_LEN], CodecError> {
    if len > MAX_FRAME_LEN {
        return Err(CodecError::TooLarge(len));
    }
    if len == 0 {
        return Err(CodecError::Empty);
    }
    // Fits: checked against MAX_FRAME_LEN, which is far below u32::MAX.
    Ok((len as u32).to_be_bytes())
}

/// Serialises a message into a frame body.
pub fn to_body<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    let body = bincode::serde::encode_to_vec(msg, config())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    if body.len() > MAX_FRAME_LEN {
        return Err(CodecError::TooLarge(body.len()));
    }
    Ok(body)
}

/// Deserialises a frame body, rejecting trailing bytes.
pub fn from_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (msg, read) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if read != body.len() {
        return Err(CodecError::TrailingBytes(body.len() - read));
    }
    Ok(msg)
}

/// Serialises a message into a complete frame (header + body).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CodecError> {
    frame(&to_body(msg)?)
}

/// Decodes one complete frame from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, otherwise the message and how many bytes it used.
/// Used by the in-memory harnesses and fuzz targets; stream readers use [`body_len`] + [`from_body`].
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, CodecError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(header);
    let len = body_len(h)?;
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    Ok(Some((from_body(body)?, HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_header_is_rejected_before_reading_the_body() {
        let header = ((MAX_FRAME_LEN + 1) as u32).to_be_bytes();
        assert!(matches!(body_len(header), Err(CodecError::TooLarge(n)) if n == MAX_FRAME_LEN + 1));
        // Even with only the header present, decode refuses instead of waiting for 4 GiB.
        assert!(matches!(
            decode::<u32>(&u32::MAX.to_be_bytes()),
            Err(CodecError::TooLarge(_))
        ));
    }

    #[test]
    fn partial_frames_ask_for_more() {
        let f = encode(&"hello".to_string()).unwrap();
        for cut in 0..f.len() {
            assert!(
                decode::<String>(&f[..cut]).unwrap().is_none(),
                "cut at {cut}"
            );
        }
        let (s, used) = decode::<String>(&f).unwrap().unwrap();
        assert_eq!((s.as_str(), used), ("hello", f.len()));
    }

    #[test]
    fn trailing_bytes_and_garbage_are_errors() {
        let mut body = to_body(&7u8).unwrap();
        body.push(0);
        assert!(matches!(
            from_body::<u8>(&body),
            Err(CodecError::TrailingBytes(1))
        ));
        assert!(matches!(
            from_body::<String>(&[0xff, 0xff, 0xff]),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(body_len([0; 4]), Err(CodecError::Empty)));
    }
}
