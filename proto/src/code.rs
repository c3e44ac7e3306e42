//! The one-time session code the user reads out to the technician.
//!
//! A code is a relay **slot** followed by a 6-digit **secret**, printed in groups of three digits:
//! slot `417` + secret `302958` is `417 302 958`. Only the slot ever reaches the relay; the secret is the
//! SPAKE2 password between agent and console (see [`crate::pairing`]). Slots have 3 digits while the
//! relay has few open codes and 6 when busy, so a code is always a whole number of groups. Parsing
//! ignores spaces and dashes.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Digits in the secret part of a code.
pub const SECRET_DIGITS: usize = 6;
const SECRET_MODULUS: u32 = 1_000_000;

/// A relay slot: the public half of a session code. Never has a leading zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Slot(pub u32);

impl Slot {
    /// Draws a random slot with `digits` digits (3 or 6 in practice).
    pub fn random(rng: &mut impl Rng, digits: u32) -> Self {
        let low = 10u32.pow(digits.saturating_sub(1));
        Slot(rng.gen_range(low..low * 10))
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The secret half of a code. Its `Debug` never shows the digits, so it cannot leak into logs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret(u32);

impl Secret {
    /// Draws a uniformly random 6-digit secret.
    pub fn random(rng: &mut impl Rng) -> Self {
        Secret(rng.gen_range(0..SECRET_MODULUS))
    }

    /// The SPAKE2 password bytes: the zero-padded digits.
    pub fn password(&self) -> Vec<u8> {
        format!("{:06}", self.0).into_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(******)")
    }
}

/// A one-time session code: slot + secret.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionCode {
    /// The relay slot, sent to the relay by the console.
    pub slot: Slot,
    /// The secret, never sent anywhere.
    pub secret: Secret,
}

impl SessionCode {
    /// Builds a code from a relay-assigned slot and a freshly drawn secret.
    pub fn new(slot: Slot, rng: &mut impl Rng) -> Self {
        SessionCode {
            slot,
            secret: Secret::random(rng),
        }
    }

    /// The code with its secret masked, for logs: `417 *** ***`.
    pub fn redacted(&self) -> String {
        format!("{} *** ***", group(&self.slot.to_string()))
    }
}

impl fmt::Debug for SessionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionCode({})", self.redacted())
    }
}

fn group(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && i % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for SessionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&group(&format!("{}{:06}", self.slot.0, self.secret.0)))
    }
}

/// Why a typed-in code was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeParseError {
    /// Nothing but separators was given.
    #[error("the code is empty")]
    Empty,
    /// A character other than a digit, space or dash.
    #[error("unexpected character {0:?} in code (only digits, spaces and dashes)")]
    InvalidCharacter(char),
    /// Fewer digits than a slot plus a secret.
    #[error("the code has {0} digits; it needs at least 9")]
    TooShort(usize),
    /// More digits than any code the relay hands out.
    #[error("the code has {0} digits; it has at most 15")]
    TooLong(usize),
    /// Slots never start with 0, so this was mistyped.
    #[error("the code cannot start with 0")]
    LeadingZero,
}

impl FromStr for SessionCode {
    type Err = CodeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut digits = String::with_capacity(s.len());
        for c in s.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '\t' => {}
                other => return Err(CodeParseError::InvalidCharacter(other)),
            }
        }
        match digits.len() {
            0 => return Err(CodeParseError::Empty),
            n if n < SECRET_DIGITS + 3 => return Err(CodeParseError::TooShort(n)),
            n if n > SECRET_DIGITS + 9 => return Err(CodeParseError::TooLong(n)),
            _ => {}
        }
        if digits.starts_with('0') {
            return Err(CodeParseError::LeadingZero);
        }
        let (slot, secret) = digits.split_at(digits.len() - SECRET_DIGITS);
        // Both halves are at most 9 ASCII digits, so they fit in u32 and parse cannot fail.
        let slot = slot
            .parse()
            .map_err(|_| CodeParseError::TooLong(digits.len()))?;
        let secret = secret
            .parse()
            .map_err(|_| CodeParseError::TooLong(digits.len()))?;
        Ok(SessionCode {
            slot: Slot(slot),
            secret: Secret(secret),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prints_in_groups_of_three() {
        let code = SessionCode {
            slot: Slot(417),
            secret: Secret(302_958),
        };
        assert_eq!(code.to_string(), "417 302 958");
        let code = SessionCode {
            slot: Slot(417),
            secret: Secret(58),
        };
        assert_eq!(code.to_string(), "417 000 058");
        let code = SessionCode {
            slot: Slot(123_456),
            secret: Secret(1),
        };
        assert_eq!(code.to_string(), "123 456 000 001");
        assert_eq!(code.redacted(), "123 456 *** ***");
        assert!(!format!("{code:?}").contains("001"));
    }

    #[test]
    fn parsing_ignores_separators_and_reports_typed_errors() {
        let want = SessionCode {
            slot: Slot(417),
            secret: Secret(302_958),
        };
        for s in ["417 302 958", "417-302-958", "417302958", " 41 7-30 2958 "] {
            assert_eq!(s.parse::<SessionCode>(), Ok(want), "{s}");
        }
        assert_eq!("".parse::<SessionCode>(), Err(CodeParseError::Empty));
        assert_eq!(" - ".parse::<SessionCode>(), Err(CodeParseError::Empty));
        assert_eq!(
            "417 302 95x".parse::<SessionCode>(),
            Err(CodeParseError::InvalidCharacter('x'))
        );
        assert_eq!(
            "417 302 95".parse::<SessionCode>(),
            Err(CodeParseError::TooShort(8))
        );
        assert_eq!(
            "1234567890123456".parse::<SessionCode>(),
            Err(CodeParseError::TooLong(16))
        );
        assert_eq!(
            "017 302 958".parse::<SessionCode>(),
            Err(CodeParseError::LeadingZero)
        );
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(digits in prop::sample::select(vec![3u32, 6, 9]), seed: u64) {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let code = SessionCode::new(Slot::random(&mut rng, digits), &mut rng);
            prop_assert_eq!(code.to_string().parse::<SessionCode>(), Ok(code));
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = s.parse::<SessionCode>();
        }
    }
}
