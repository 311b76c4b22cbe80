//! Signing keys: [`KeyId`], [`PublicKey`] (with its `ed25519:` text form) and
//! [`SecretKey`]. The secret key's file format lives in `key_file.rs`.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::PackageError;

/// The prefix of a public key's text form.
const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// Length of a key id's text form: 8 bytes as lowercase hex.
pub(super) const KEY_ID_LEN: usize = 16;

/// A short name for a public key: the first 8 bytes of SHA-256 of the raw 32-byte
/// public key, as 16 lowercase hex characters.
///
/// It is recorded in every package so a verifier can tell "signed by another key"
/// ([`PackageError::KeyMismatch`]) apart from "altered" ([`PackageError::BadSignature`]).
/// It is a label, not a security boundary: the signature check is what counts.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct KeyId(String);

impl KeyId {
    /// The 16-character text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Computes the key id of a raw 32-byte Ed25519 public key.
    fn of(public: &VerifyingKey) -> Self {
        let hash = Sha256::digest(public.as_bytes());
        Self(hex::encode(&hash[..KEY_ID_LEN / 2]))
    }

    /// Parses a key id read from a package, quoting invalid bytes escaped.
    pub(super) fn from_bytes(bytes: &[u8]) -> Result<Self, PackageError> {
        if Self::is_valid(bytes) {
            // Valid means ASCII, so the lossy conversion is exact.
            Ok(Self(String::from_utf8_lossy(bytes).into_owned()))
        } else {
            Err(PackageError::BadKeyId(format!(
                "\"{}\" is not 16 lowercase hex characters",
                bytes.escape_ascii()
            )))
        }
    }

    /// Whether `bytes` is a valid key id: exactly 16 lowercase hex ASCII characters.
    fn is_valid(bytes: &[u8]) -> bool {
        bytes.len() == KEY_ID_LEN && bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

impl FromStr for KeyId {
    type Err = PackageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s.as_bytes()) {
            Ok(Self(s.to_owned()))
        } else {
            // Cap the echoed text: it may be arbitrarily long user input.
            let shown: String = s.chars().take(40).collect();
            Err(PackageError::BadKeyId(format!(
                "{shown:?} is not 16 lowercase hex characters"
            )))
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = PackageError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// An Ed25519 public key that packages are verified against.
///
/// Its text form is `ed25519:` followed by the standard base64 (with padding) of
/// the 32 raw key bytes, e.g. `ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=`.
/// That is what `Display` prints, what `FromStr` parses and how it serializes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The key id of this key (see [`KeyId`]).
    pub fn key_id(&self) -> KeyId {
        KeyId::of(&self.0)
    }

    /// The text form `ed25519:<base64>`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }

    /// The 32 raw key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The underlying key, for the signature check.
    pub(super) fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl FromStr for PublicKey {
    type Err = PackageError;

    /// Parses `ed25519:<base64 of 32 bytes>`; surrounding whitespace (such as the
    /// newline at the end of a `.pub` file) is ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let Some(b64) = s.strip_prefix(PUBLIC_KEY_PREFIX) else {
            return Err(PackageError::Key(
                "a public key must look like \"ed25519:<base64 of 32 bytes>\"; this one does not start with \"ed25519:\"".to_owned(),
            ));
        };
        let raw = STANDARD.decode(b64).map_err(|e| {
            PackageError::Key(format!(
                "the public key after \"ed25519:\" is not valid standard base64 with padding: {e}"
            ))
        })?;
        let raw: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
            PackageError::Key(format!(
                "the public key is {} bytes long; an Ed25519 public key is 32 bytes",
                raw.len()
            ))
        })?;
        let key = VerifyingKey::from_bytes(&raw)
            .map_err(|_| PackageError::Key("the public key is not a valid Ed25519 curve point".to_owned()))?;
        // A small-order key would make verify_strict refuse every signature; say so
        // up front instead of reporting a confusing BadSignature later.
        if key.is_weak() {
            return Err(PackageError::Key(
                "the public key is a weak (small-order) Ed25519 key and cannot be used".to_owned(),
            ));
        }
        Ok(Self(key))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_text())
    }
}

impl From<PublicKey> for String {
    fn from(k: PublicKey) -> Self {
        k.to_text()
    }
}

impl TryFrom<String> for PublicKey {
    type Error = PackageError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// An Ed25519 signing key (the 32-byte seed).
///
/// Deliberately has no `Display`, no `Serialize` and no `Clone`, and its `Debug`
/// shows only the key id, so the secret cannot end up in logs by accident. It
/// leaves the process only through [`SecretKey::write_new`] /
/// [`SecretKey::to_file_text`].
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut OsRng))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The key id of the matching public key.
    pub fn key_id(&self) -> KeyId {
        KeyId::of(&self.0.verifying_key())
    }

    /// Rebuilds a key from its 32-byte seed (used by the key file parser).
    pub(super) fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed (used by the key file writer).
    pub(super) fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The underlying key, for signing.
    pub(super) fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey").field("key_id", &self.key_id()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StrDeserializer};

    /// RFC 8032 section 7.1, TEST 1.
    const RFC_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn rfc_key() -> SecretKey {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(RFC_SEED, &mut seed).unwrap();
        SecretKey::from_seed(&seed)
    }

    #[test]
    fn key_id_is_first_8_bytes_of_sha256_of_public_key() {
        let key = rfc_key();
        assert_eq!(hex::encode(key.public_key().to_bytes()), RFC_PUBLIC);
        let raw = hex::decode(RFC_PUBLIC).unwrap();
        let expected = hex::encode(&Sha256::digest(&raw)[..8]);
        assert_eq!(key.key_id().as_str(), expected);
        assert_eq!(key.public_key().key_id(), key.key_id());
        assert_eq!(key.key_id().as_str().len(), 16);
    }

    #[test]
    fn public_key_text_round_trip() {
        let key = rfc_key().public_key();
        let text = key.to_text();
        assert_eq!(text, "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
        assert_eq!(text, key.to_string());
        assert_eq!(text.parse::<PublicKey>().unwrap(), key);
        assert_eq!(format!("{text}\n").parse::<PublicKey>().unwrap(), key);
        assert_eq!(format!("{key:?}"), format!("PublicKey({text})"));
    }

    #[test]
    fn public_key_parse_errors_are_specific() {
        let err = |s: &str| s.parse::<PublicKey>().unwrap_err().to_string();
        assert!(err("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=").contains("does not start with"));
        assert!(err("ed25519:not base64!").contains("not valid standard base64"));
        assert!(err("ed25519:AAAA").contains("is 3 bytes long"));
        // About half of all y coordinates have no point on the curve: find one.
        let not_a_point = (2u8..=255)
            .map(|y| {
                let mut raw = [0u8; 32];
                raw[0] = y;
                raw
            })
            .find(|raw| VerifyingKey::from_bytes(raw).is_err())
            .unwrap();
        let text = format!("ed25519:{}", STANDARD.encode(not_a_point));
        assert!(err(&text).contains("not a valid Ed25519 curve point"));
        // ...and the identity point is a valid but small-order (weak) key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let text = format!("ed25519:{}", STANDARD.encode(identity));
        assert!(err(&text).contains("weak"));
    }

    #[test]
    fn key_id_parsing() {
        assert!("0123456789abcdef".parse::<KeyId>().is_ok());
        for bad in [
            "",
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdeg",
        ] {
            let e = bad.parse::<KeyId>().unwrap_err();
            assert!(matches!(e, PackageError::BadKeyId(_)), "{bad}: {e}");
        }
        let de: StrDeserializer<'_, DeError> = "0123456789abcdef".into_deserializer();
        assert_eq!(KeyId::deserialize(de).unwrap().as_str(), "0123456789abcdef");
        let de: StrDeserializer<'_, DeError> = "XYZ".into_deserializer();
        assert!(KeyId::deserialize(de).is_err());
    }

    #[test]
    fn public_key_deserializes_from_text() {
        let text = rfc_key().public_key().to_text();
        let de: StrDeserializer<'_, DeError> = text.as_str().into_deserializer();
        assert_eq!(PublicKey::deserialize(de).unwrap(), rfc_key().public_key());
    }

    #[test]
    fn secret_key_debug_shows_only_key_id() {
        let key = SecretKey::generate();
        let dbg = format!("{key:?}");
        assert_eq!(dbg, format!("SecretKey {{ key_id: KeyId({}) }}", key.key_id()));
        assert!(!dbg.contains(&STANDARD.encode(key.seed())));
        assert!(!dbg.contains(&hex::encode(key.seed())));
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(SecretKey::generate().key_id(), SecretKey::generate().key_id());
    }
}
