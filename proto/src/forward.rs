//! The relay's packet forwarding for a session's end-to-end connection.
//!
//! After pairing, the agent and the console run one QUIC connection of their own, end to end, whose
//! certificates each pinned through the sealed stream 0 (`msg::E2eOffer`). The relay carries its
//! packets without decrypting them: each end binds a UDP socket of its own to the relay's port with
//! the [`RouteToken`] the relay gave it at the claim, and from then on every datagram from that
//! address goes, unchanged, to the other end's bound address. The relay keeps no per-stream state
//! and holds no key for these packets.
//!
//! The bind packets share the relay's UDP port with QUIC. They start with a zero byte, which no
//! QUIC version 1 packet does (its second bit, the "fixed bit", is always set; every Tether
//! endpoint turns off greasing it, RFC 9287), so the relay tells them apart by the first byte, as
//! STUN and DTLS share a port (RFC 7983).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

/// The first bytes of every bind packet: a zero byte (never a QUIC packet), `TF`, the format
/// version.
pub const MAGIC: [u8; 4] = [0x00, b'T', b'F', 1];

/// Length of a [`RouteToken`].
pub const TOKEN_LEN: usize = 16;

/// The relay's word for one end of one session's forwarding: random, single-session, sent to that
/// end only (over its own TLS connection to the relay). Whoever binds with it is that end.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct RouteToken(pub [u8; TOKEN_LEN]);

impl std::fmt::Debug for RouteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A token is a capability: logs show only its first bytes.
        write!(f, "RouteToken({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// A bind packet, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindPacket {
    /// End → relay: "this address is my end of the route".
    Bind(RouteToken),
    /// Relay → end: the bind took; `observed` is the address the relay saw it from (what a NAT
    /// made of the end's address).
    Bound {
        /// The token that was bound.
        token: RouteToken,
        /// The end's address as the relay sees it.
        observed: SocketAddr,
    },
    /// Relay → end: no route has this token (unknown, or its session already ended).
    Unknown(RouteToken),
}

const KIND_BIND: u8 = 1;
const KIND_BOUND: u8 = 2;
const KIND_UNKNOWN: u8 = 3;

/// Whether `datagram` is a bind packet rather than a QUIC packet.
pub fn is_bind_packet(datagram: &[u8]) -> bool {
    datagram.starts_with(&MAGIC)
}

/// Why a bind packet did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// It does not start with [`MAGIC`].
    #[error("not a bind packet")]
    NotBind,
    /// It is shorter or longer than its kind says, or names an unknown kind or address family.
    #[error("malformed bind packet")]
    Malformed,
}

impl BindPacket {
    /// The datagram for this packet.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        match self {
            BindPacket::Bind(t) => {
                out.push(KIND_BIND);
                out.extend_from_slice(&t.0);
            }
            BindPacket::Unknown(t) => {
                out.push(KIND_UNKNOWN);
                out.extend_from_slice(&t.0);
            }
            BindPacket::Bound { token, observed } => {
                out.push(KIND_BOUND);
                out.extend_from_slice(&token.0);
                match observed.ip() {
                    IpAddr::V4(ip) => {
                        out.push(4);
                        out.extend_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        out.push(6);
                        out.extend_from_slice(&ip.octets());
                    }
                }
                out.extend_from_slice(&observed.port().to_be_bytes());
            }
        }
        out
    }

    /// Reads a datagram; anything but an exact bind packet is an error.
    pub fn decode(datagram: &[u8]) -> Result<BindPacket, BindError> {
        let rest = datagram.strip_prefix(&MAGIC).ok_or(BindError::NotBind)?;
        let (&kind, rest) = rest.split_first().ok_or(BindError::Malformed)?;
        let (token, rest) = rest
            .split_first_chunk::<TOKEN_LEN>()
            .ok_or(BindError::Malformed)?;
        let token = RouteToken(*token);
        match kind {
            KIND_BIND if rest.is_empty() => Ok(BindPacket::Bind(token)),
            KIND_UNKNOWN if rest.is_empty() => Ok(BindPacket::Unknown(token)),
            KIND_BOUND => {
                let (&family, rest) = rest.split_first().ok_or(BindError::Malformed)?;
                let (ip, rest) = match family {
                    4 => {
                        let (ip, rest) =
                            rest.split_first_chunk::<4>().ok_or(BindError::Malformed)?;
                        (IpAddr::V4(Ipv4Addr::from(*ip)), rest)
                    }
                    6 => {
                        let (ip, rest) =
                            rest.split_first_chunk::<16>().ok_or(BindError::Malformed)?;
                        (IpAddr::V6(Ipv6Addr::from(*ip)), rest)
                    }
                    _ => return Err(BindError::Malformed),
                };
                let port: [u8; 2] = rest.try_into().map_err(|_| BindError::Malformed)?;
                Ok(BindPacket::Bound {
                    token,
                    observed: SocketAddr::new(ip, u16::from_be_bytes(port)),
                })
            }
            _ => Err(BindError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_kind_round_trips() {
        let token = RouteToken([7; TOKEN_LEN]);
        for p in [
            BindPacket::Bind(token),
            BindPacket::Unknown(token),
            BindPacket::Bound {
                token,
                observed: "192.0.2.7:40000".parse().unwrap(),
            },
            BindPacket::Bound {
                token,
                observed: "[2001:db8::1]:9".parse().unwrap(),
            },
        ] {
            let bytes = p.encode();
            assert!(is_bind_packet(&bytes));
            assert_eq!(BindPacket::decode(&bytes), Ok(p));
        }
    }

    #[test]
    fn no_quic_v1_packet_looks_like_a_bind_packet() {
        // Long header 0b11xx_xxxx and short header 0b01xx_xxxx: the fixed bit 0x40 is set.
        for first in 0x40u8..=0xff {
            if first & 0x40 != 0 {
                assert!(!is_bind_packet(&[first, b'T', b'F', 1, 1]));
            }
        }
    }

    #[test]
    fn truncated_padded_or_unknown_packets_are_refused() {
        let bind = BindPacket::Bind(RouteToken([1; TOKEN_LEN])).encode();
        assert_eq!(
            BindPacket::decode(&bind[..bind.len() - 1]),
            Err(BindError::Malformed)
        );
        let mut padded = bind.clone();
        padded.push(0);
        assert_eq!(BindPacket::decode(&padded), Err(BindError::Malformed));
        let mut kind = bind.clone();
        kind[4] = 9;
        assert_eq!(BindPacket::decode(&kind), Err(BindError::Malformed));
        assert_eq!(BindPacket::decode(&[0xc0, 0, 0]), Err(BindError::NotBind));
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = BindPacket::decode(&bytes);
        }
    }
}
