//! What a user can grant: each scope separately, none implied by another.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One permission a technician asks for and a user grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Scope {
    /// See the screen.
    View,
    /// Drive the mouse and keyboard.
    Control,
    /// Run diagnostic probes.
    Diagnostics,
    /// Read hardware and software inventory.
    Inventory,
    /// Copy and paste text between the two machines.
    Clipboard,
    /// Send files to the user's machine and fetch files the user allows.
    Files,
}

impl Scope {
    /// Every scope, in display order.
    pub const ALL: [Scope; 6] = [
        Scope::View,
        Scope::Control,
        Scope::Diagnostics,
        Scope::Inventory,
        Scope::Clipboard,
        Scope::Files,
    ];

    /// The lowercase name used on the command line and in prompts.
    pub fn name(self) -> &'static str {
        match self {
            Scope::View => "view",
            Scope::Control => "control",
            Scope::Diagnostics => "diagnostics",
            Scope::Inventory => "inventory",
            Scope::Clipboard => "clipboard",
            Scope::Files => "files",
        }
    }

    /// What granting this scope lets the technician do, in words for the user.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::View => "see your screen",
            Scope::Control => "move your mouse and type on your keyboard",
            Scope::Diagnostics => "run troubleshooting checks on this computer",
            Scope::Inventory => "read this computer's hardware and software list",
            Scope::Clipboard => "copy and paste between your computer and the technician's",
            Scope::Files => "send files to and receive files from this computer",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scope name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?} (expected view, control, diagnostics, inventory, clipboard or files)")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Scope::ALL
            .into_iter()
            .find(|sc| sc.name() == t)
            .ok_or_else(|| UnknownScope(s.trim().to_string()))
    }
}

/// A set of scopes. On the wire it is a bitmask, so unknown bits are rejected on decode.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// The empty set: nothing granted.
    pub const EMPTY: ScopeSet = ScopeSet(0);

    /// All scopes.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Adds `scope`.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    /// Removes `scope`.
    pub fn remove(&mut self, scope: Scope) {
        self.0 &= !scope.bit();
    }

    /// Whether nothing is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes in both sets: what a grant can be, at most.
    pub fn intersection(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & other.0)
    }

    /// The scopes in either set: a grant after the user allowed more.
    pub fn union(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | other.0)
    }

    /// The scopes in `self` but not in `other`: what is asked for and not granted yet.
    pub fn difference(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & !other.0)
    }

    /// The scopes, in display order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        let names: Vec<_> = self.iter().map(Scope::name).collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScopeSet({self})")
    }
}

/// Parses a comma list such as `view,inventory`. An empty list is an empty set.
impl FromStr for ScopeSet {
    type Err = UnknownScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(str::parse)
            .collect()
    }
}

/// On the wire (bincode) a set is one byte of bits; in formats people read (JSON) it is the list
/// of scope names, e.g. `["view", "inventory"]`, so `--json` output never shows a bitmask.
impl Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_seq(self.iter().map(Scope::name))
        } else {
            s.serialize_u8(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let names = Vec::<String>::deserialize(d)?;
            return names
                .iter()
                .map(|n| n.parse::<Scope>().map_err(serde::de::Error::custom))
                .collect();
        }
        let bits = u8::deserialize(d)?;
        if bits & !ScopeSet::all().0 != 0 {
            return Err(serde::de::Error::custom(format!(
                "unknown scope bits {bits:#04x}"
            )));
        }
        Ok(ScopeSet(bits))
    }
}

#[cfg(test)]
impl proptest::arbitrary::Arbitrary for ScopeSet {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::strategy::Strategy;
        (0u8..64).prop_map(ScopeSet).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_lists_parse() {
        for s in Scope::ALL {
            assert_eq!(s.name().parse::<Scope>(), Ok(s));
        }
        let set: ScopeSet = "inventory, View".parse().unwrap();
        assert!(set.contains(Scope::View) && set.contains(Scope::Inventory));
        assert!(!set.contains(Scope::Control));
        assert_eq!(set.to_string(), "view,inventory");
        assert_eq!("".parse::<ScopeSet>(), Ok(ScopeSet::EMPTY));
        assert_eq!(
            "view,shell".parse::<ScopeSet>(),
            Err(UnknownScope("shell".into()))
        );
    }

    #[test]
    fn unknown_bits_are_rejected_on_decode() {
        let body = crate::codec::to_body(&0x80u8).unwrap();
        assert!(crate::codec::from_body::<ScopeSet>(&body).is_err());
        let body = crate::codec::to_body(&ScopeSet::all()).unwrap();
        assert_eq!(
            crate::codec::from_body::<ScopeSet>(&body).unwrap(),
            ScopeSet::all()
        );
    }
}
