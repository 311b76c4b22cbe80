//! Whole-module tests: round trips, tamper detection at every byte, truncation,
//! key mismatch and forgery, digest independence, and the documented example.

use super::*;

/// RFC 8032 section 7.1 TEST 1 seed: a fixed key makes signatures (and so the
/// outcome of every bit flip) deterministic, and lets the docs show real bytes.
const RFC_SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5,
    0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];

/// The tiny manifest of the fixture and of the worked example in the docs.
const MANIFEST: &[u8] = b"name = \"hi\"\n";
/// Wasm magic + component-model version/layer: the smallest plausible component header.
const COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

fn fixed_key() -> SecretKey {
    SecretKey::from_seed(&RFC_SEED)
}

fn fixture() -> (SecretKey, Package) {
    let key = fixed_key();
    let pkg = Package::sign(MANIFEST.to_vec(), COMPONENT.to_vec(), &key).unwrap();
    (key, pkg)
}

/// Decodes then verifies: the full check a consumer performs.
fn open(bytes: &[u8], key: &PublicKey) -> Result<Package, PackageError> {
    let pkg = Package::decode(bytes)?;
    pkg.verify(key)?;
    Ok(pkg)
}

#[test]
fn round_trip_sign_encode_decode_verify() {
    let key = SecretKey::generate();
    let pkg = Package::sign(MANIFEST.to_vec(), COMPONENT.to_vec(), &key).unwrap();
    let bytes = pkg.encode();
    assert_eq!(bytes.len(), pkg.size());
    assert_eq!(bytes.len(), 98 + MANIFEST.len() + COMPONENT.len());
    let back = open(&bytes, &key.public_key()).unwrap();
    assert_eq!(back, pkg);
    assert_eq!(back.key_id, key.key_id());
    assert_eq!(back.digest(), pkg.digest());
    assert_eq!(back.encode(), bytes);
}

#[test]
fn round_trip_with_empty_manifest_and_larger_component() {
    let key = fixed_key();
    let mut component = b"\0asm".to_vec();
    component.extend((0..100_000u32).map(|i| (i % 251) as u8));
    let pkg = Package::sign(Vec::new(), component, &key).unwrap();
    assert_eq!(open(&pkg.encode(), &key.public_key()).unwrap(), pkg);
}

#[test]
fn payload_and_digest_are_as_specified() {
    use sha2::{Digest as _, Sha256};
    let (_, pkg) = fixture();
    let payload = pkg.signed_payload();
    assert_eq!(payload.len(), 18 + 32 + 32);
    assert_eq!(&payload[..18], b"plinth-package-v1\n");
    assert_eq!(&payload[18..50], Sha256::digest(MANIFEST).as_slice());
    assert_eq!(&payload[50..], Sha256::digest(COMPONENT).as_slice());
    assert_eq!(payload, signed_payload(MANIFEST, COMPONENT));
    assert_eq!(pkg.digest().as_bytes(), Sha256::digest(&payload).as_slice());
}

#[test]
fn digest_is_independent_of_the_signer() {
    let a = Package::sign(MANIFEST.to_vec(), COMPONENT.to_vec(), &SecretKey::generate()).unwrap();
    let b = Package::sign(MANIFEST.to_vec(), COMPONENT.to_vec(), &SecretKey::generate()).unwrap();
    assert_ne!(a.key_id, b.key_id);
    assert_ne!(a.signature, b.signature);
    assert_eq!(a.digest(), b.digest());
    // ...but not of the contents.
    let c = Package::sign(b"name = \"ho\"\n".to_vec(), COMPONENT.to_vec(), &fixed_key()).unwrap();
    assert_ne!(a.digest(), c.digest());
}

#[test]
fn moving_a_byte_between_manifest_and_component_changes_the_digest() {
    let key = fixed_key();
    let a = Package::sign(b"ab".to_vec(), b"\0asmc".to_vec(), &key).unwrap();
    let b = Package::sign(b"a".to_vec(), b"\0asmbc".to_vec(), &key).unwrap();
    assert_ne!(a.digest(), b.digest());
}

/// Which region of the fixture's file an offset falls in, and the errors a flipped
/// bit there may legitimately produce.
fn expected_for(offset: usize, flipped: u8) -> (&'static str, &'static [&'static str]) {
    let m = MANIFEST.len();
    let c = COMPONENT.len();
    let manifest = 13..13 + m;
    let component = 17 + m..17 + m + c;
    let key_id = 18 + m + c..34 + m + c;
    match offset {
        0..8 => ("magic", &["NotAPackage"]),
        8 => ("version", &["UnsupportedVersion"]),
        9..13 => (
            "manifest length",
            &["Truncated", "TooLarge", "TrailingBytes", "NotAComponent"],
        ),
        o if manifest.contains(&o) && flipped >= 0x80 => ("manifest", &["ManifestNotUtf8"]),
        o if manifest.contains(&o) => ("manifest", &["BadSignature"]),
        o if (13 + m..17 + m).contains(&o) => (
            "component length",
            &["Truncated", "TooLarge", "TrailingBytes", "NotAComponent"],
        ),
        o if component.contains(&o) && o - component.start < 4 => ("component", &["NotAComponent"]),
        o if component.contains(&o) => ("component", &["BadSignature"]),
        o if o == 17 + m + c => ("key id length", &["BadKeyId"]),
        o if key_id.contains(&o) => ("key id", &["BadKeyId", "KeyMismatch"]),
        _ => ("signature", &["BadSignature"]),
    }
}

fn class(e: &PackageError) -> &'static str {
    match e {
        PackageError::Empty => "Empty",
        PackageError::NotAPackage => "NotAPackage",
        PackageError::UnsupportedVersion(_) => "UnsupportedVersion",
        PackageError::Truncated { .. } => "Truncated",
        PackageError::TooLarge { .. } => "TooLarge",
        PackageError::TrailingBytes { .. } => "TrailingBytes",
        PackageError::BadKeyId(_) => "BadKeyId",
        PackageError::NotAComponent => "NotAComponent",
        PackageError::ManifestNotUtf8 => "ManifestNotUtf8",
        PackageError::KeyMismatch { .. } => "KeyMismatch",
        PackageError::BadSignature => "BadSignature",
        PackageError::Key(_) => "Key",
        PackageError::Io(_) => "Io",
    }
}

#[test]
fn flipping_any_bit_of_any_byte_is_detected_for_the_right_reason() {
    let (key, pkg) = fixture();
    let public = key.public_key();
    let good = pkg.encode();
    assert_eq!(good.len(), 118);
    open(&good, &public).unwrap();
    let mut checked = 0;
    for offset in 0..good.len() {
        for bit in 0..8 {
            let mut bad = good.clone();
            bad[offset] ^= 1 << bit;
            let err = match open(&bad, &public) {
                Ok(_) => panic!("flipping bit {bit} at offset {offset} still verifies"),
                Err(e) => e,
            };
            let (region, allowed) = expected_for(offset, bad[offset]);
            assert!(
                allowed.contains(&class(&err)),
                "bit {bit} at offset {offset} ({region}): got {} ({err}), expected one of {allowed:?}",
                class(&err)
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 118 * 8);
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    let (_, pkg) = fixture();
    let good = pkg.encode();
    assert!(matches!(Package::decode(&[]), Err(PackageError::Empty)));
    for len in 1..good.len() {
        match Package::decode(&good[..len]) {
            Err(PackageError::Truncated {
                offset,
                needed,
                available,
                ..
            }) => {
                assert!(available < needed, "len {len}");
                assert_eq!(offset + available, len, "len {len}");
            }
            other => panic!("truncated to {len} bytes: expected Truncated, got {other:?}"),
        }
    }
    // And a truncated component is named as such.
    let err = Package::decode(&good[..30]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the package is truncated: the component needs 8 bytes at offset 29 but only 1 remains"
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let (_, pkg) = fixture();
    let mut bytes = pkg.encode();
    bytes.push(0);
    assert!(matches!(
        Package::decode(&bytes),
        Err(PackageError::TrailingBytes { count: 1 })
    ));
    bytes.extend_from_slice(&[0; 9]);
    assert!(matches!(
        Package::decode(&bytes),
        Err(PackageError::TrailingBytes { count: 10 })
    ));
}

#[test]
fn not_a_package_and_version() {
    assert!(matches!(Package::decode(b"PK\x03\x04"), Err(PackageError::NotAPackage)));
    assert!(matches!(Package::decode(b"\0asm"), Err(PackageError::NotAPackage)));
    assert!(matches!(
        Package::decode(b"PLINTH"),
        Err(PackageError::Truncated { field: "magic", .. })
    ));
    let (_, pkg) = fixture();
    let mut bytes = pkg.encode();
    bytes[8] = 2;
    let err = Package::decode(&bytes).unwrap_err();
    assert!(matches!(err, PackageError::UnsupportedVersion(2)));
    assert_eq!(
        err.to_string(),
        "unsupported package format version 2: this build of Plinth reads version 1 only"
    );
}

#[test]
fn another_key_is_a_key_mismatch() {
    let (key, pkg) = fixture();
    let other = SecretKey::generate();
    let err = pkg.verify(&other.public_key()).unwrap_err();
    match &err {
        PackageError::KeyMismatch { expected, found } => {
            assert_eq!(expected, &other.key_id());
            assert_eq!(found, &key.key_id());
        }
        e => panic!("expected KeyMismatch, got {e:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "signed by key {} but the expected key is {}",
            key.key_id(),
            other.key_id()
        )
    );
}

#[test]
fn same_key_id_with_a_forged_signature_is_a_bad_signature() {
    let (key, pkg) = fixture();
    // An attacker signs with their own key and claims the victim's key id.
    let attacker = SecretKey::generate();
    let mut forged = Package::sign(MANIFEST.to_vec(), COMPONENT.to_vec(), &attacker).unwrap();
    forged.key_id = key.key_id();
    let bytes = forged.encode();
    let err = open(&bytes, &key.public_key()).unwrap_err();
    assert!(matches!(err, PackageError::BadSignature), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the signature does not verify: the package was altered after signing, or signed with a different key"
    );
    // A signature lifted from another package of the same signer does not transfer.
    let other = Package::sign(b"name = \"x\"\n".to_vec(), COMPONENT.to_vec(), &key).unwrap();
    let mut swapped = pkg.clone();
    swapped.signature = other.signature;
    assert!(matches!(
        swapped.verify(&key.public_key()),
        Err(PackageError::BadSignature)
    ));
    // All-zero and all-ones signatures.
    for fill in [0u8, 0xff] {
        let mut p = pkg.clone();
        p.signature = [fill; 64];
        assert!(matches!(p.verify(&key.public_key()), Err(PackageError::BadSignature)));
    }
}

#[test]
fn sign_enforces_the_content_rules() {
    let key = fixed_key();
    let sign = |m: Vec<u8>, c: Vec<u8>| Package::sign(m, c, &key).map(|_| ()).unwrap_err();
    assert!(matches!(
        sign(MANIFEST.to_vec(), Vec::new()),
        PackageError::NotAComponent
    ));
    assert!(matches!(
        sign(MANIFEST.to_vec(), b"\0as".to_vec()),
        PackageError::NotAComponent
    ));
    assert!(matches!(
        sign(MANIFEST.to_vec(), b"PK\x03\x04".to_vec()),
        PackageError::NotAComponent
    ));
    assert!(matches!(
        sign(vec![0xff, 0xfe], COMPONENT.to_vec()),
        PackageError::ManifestNotUtf8
    ));
    let err = sign(vec![b'#'; MAX_MANIFEST_BYTES + 1], COMPONENT.to_vec());
    assert!(matches!(err, PackageError::TooLarge { field: "manifest", .. }));
    assert_eq!(
        err.to_string(),
        "the manifest is 262145 bytes, more than the limit of 262144 bytes"
    );
    let mut big = vec![0u8; MAX_COMPONENT_BYTES + 1];
    big[..4].copy_from_slice(b"\0asm");
    assert!(matches!(
        sign(MANIFEST.to_vec(), big),
        PackageError::TooLarge { field: "component", .. }
    ));
    // Exactly at the manifest limit is fine, and survives a round trip.
    let pkg = Package::sign(vec![b'#'; MAX_MANIFEST_BYTES], COMPONENT.to_vec(), &key).unwrap();
    assert_eq!(open(&pkg.encode(), &key.public_key()).unwrap(), pkg);
}

#[test]
fn verify_rejects_a_hand_built_package_that_breaks_the_rules() {
    let (key, mut pkg) = fixture();
    pkg.component = b"not wasm".to_vec();
    assert!(matches!(
        pkg.verify(&key.public_key()),
        Err(PackageError::NotAComponent)
    ));
}

#[test]
fn key_id_field_errors() {
    let (_, pkg) = fixture();
    let good = pkg.encode();
    let k = 17 + MANIFEST.len() + COMPONENT.len();
    let mut bad = good.clone();
    bad[k + 1] = b'A';
    let err = Package::decode(&bad).unwrap_err();
    assert!(matches!(err, PackageError::BadKeyId(_)));
    assert!(err.to_string().contains("is not 16 lowercase hex characters"), "{err}");
    let mut bad = good.clone();
    bad[k] = 15;
    let err = Package::decode(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("bad key id: the key id length byte at offset {k} is 15; version 1 key ids are exactly 16 bytes")
    );
}

#[test]
fn package_debug_is_a_summary() {
    let (key, pkg) = fixture();
    let dbg = format!("{pkg:?}");
    assert!(dbg.contains("manifest_bytes: 12"), "{dbg}");
    assert!(dbg.contains(key.key_id().as_str()), "{dbg}");
    assert!(dbg.contains(&pkg.digest().to_hex()), "{dbg}");
}

/// The worked example in docs/package-format.md: if this changes, update the doc.
#[test]
fn documented_example_bytes() {
    let (key, pkg) = fixture();
    assert_eq!(
        key.public_key().to_text(),
        "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    );
    assert_eq!(key.key_id().as_str(), EXAMPLE_KEY_ID);
    assert_eq!(pkg.digest().to_hex(), EXAMPLE_DIGEST);
    assert_eq!(hex::encode(pkg.encode()), EXAMPLE_HEX);
}

const EXAMPLE_KEY_ID: &str = "21fe31dfa154a261";
const EXAMPLE_DIGEST: &str = "4375e6ba5a8c8581f320e6e94affe6d681830a7463984364f54547d768a24e59";
/// One field per line: magic, version, M, manifest, C, component, K, key id,
/// signature (two lines).
const EXAMPLE_HEX: &str = "\
504c494e5448504b\
01\
0000000c\
6e616d65203d20226869220a\
00000008\
0061736d0d000100\
10\
32316665333164666131353461323631\
73750e962a4c05c4b0af6a44b4e3fd68fdde5eb580e82cfac3016ad93445addf\
26a6d67f7bcc02a54b23637257c489d89448a16008b4bf78aebb84b49f0cf600";
