//! [`Digest`]: the content address of a package.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// SHA-256 of a package's signed payload (see [`signed_payload`](super::signed_payload)).
///
/// It identifies the manifest and component, not the signer: the same plugin signed
/// by two keys has one digest. Its text form is 64 lowercase hex characters, and that
/// is also how it serializes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Digest([u8; 32]);

impl Digest {
    /// Wraps 32 raw SHA-256 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64-character lowercase hex form (same as `Display`).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// A string that is not a digest's text form (64 lowercase hex characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad package digest {0:?}: a digest is 64 lowercase hex characters")]
pub struct ParseDigestError(String);

impl FromStr for Digest {
    type Err = ParseDigestError;

    /// Parses exactly 64 lowercase hex characters. Uppercase is refused so every
    /// digest has one spelling, which matters when it is used as a storage key.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower_hex = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut bytes = [0u8; 32];
        if !lower_hex || hex::decode_to_slice(s, &mut bytes).is_err() {
            // Cap the echoed text: it may be arbitrarily long user input.
            return Err(ParseDigestError(s.chars().take(80).collect()));
        }
        Ok(Self(bytes))
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.to_hex()
    }
}

impl TryFrom<String> for Digest {
    type Error = ParseDigestError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StrDeserializer};

    #[test]
    fn text_round_trip_and_strictness() {
        let d = Digest::from_bytes([0xab; 32]);
        let s = d.to_string();
        assert_eq!(s, "ab".repeat(32));
        assert_eq!(s, d.to_hex());
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        assert_eq!(format!("{d:?}"), format!("Digest({s})"));
        assert!(s.to_uppercase().parse::<Digest>().is_err());
        assert!(s[..62].parse::<Digest>().is_err());
        assert!(format!("{s}00").parse::<Digest>().is_err());
        assert!("zz".repeat(32).parse::<Digest>().is_err());
        assert!("".parse::<Digest>().is_err());
    }

    #[test]
    fn deserializes_from_hex_string() {
        let s = "01".repeat(32);
        let de: StrDeserializer<'_, DeError> = s.as_str().into_deserializer();
        assert_eq!(Digest::deserialize(de).unwrap(), Digest::from_bytes([1; 32]));
        let de: StrDeserializer<'_, DeError> = "nope".into_deserializer();
        assert!(Digest::deserialize(de).is_err());
    }
}
