//! Webhook signatures: `Plinth-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//! with `Plinth-Timestamp: <unix seconds>`. The timestamp is signed so a receiver
//! can refuse replays of old deliveries; see `docs/outbox.md`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header carrying the Unix time (seconds) the delivery was signed.
pub const TIMESTAMP_HEADER: &str = "plinth-timestamp";
/// Header carrying the signature(s).
pub const SIGNATURE_HEADER: &str = "plinth-signature";
/// Header carrying the outbox id of this delivery (the same on every retry).
pub const DELIVERY_HEADER: &str = "plinth-delivery";
/// Header carrying the notification type (`audit.alert`, or the event name).
pub const TYPE_HEADER: &str = "plinth-event";

/// The `Plinth-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check a `Plinth-Signature` header against `body` (what a receiver does; used in
/// tests). Any of several comma-separated `v1=` values may match; comparison is in
/// constant time.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    header
        .split(',')
        .filter_map(|part| part.trim().strip_prefix("v1="))
        .any(|hex_sig| {
            let Ok(expected) = hex::decode(hex_sig) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                return false;
            };
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.verify_slice(&expected).is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector_and_round_trip() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        let sig = sign(b"whsec_test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            sig,
            "v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert!(verify(b"whsec_test", 1_700_000_000, br#"{"a":1}"#, &sig));
        assert!(!verify(b"whsec_test", 1_700_000_001, br#"{"a":1}"#, &sig));
        assert!(!verify(b"whsec_other", 1_700_000_000, br#"{"a":1}"#, &sig));
        assert!(!verify(b"whsec_test", 1_700_000_000, br#"{"a":2}"#, &sig));
        assert!(verify(
            b"whsec_test",
            1_700_000_000,
            br#"{"a":1}"#,
            &format!("v1=00, {sig}")
        ));
    }
}
