//! [`Package`] and its byte framing: strict decoding and encoding of `.plpkg` files.
//!
//! Layout (big-endian; see `docs/package-format.md`):
//! `magic(8) version(1) M(4) manifest(M) C(4) component(C) K(1)=16 key_id(16) signature(64)`.

use std::fmt;

use super::error::PackageError;
use super::keys::{KEY_ID_LEN, KeyId};
use super::{FORMAT_VERSION, MAGIC, MAX_COMPONENT_BYTES, MAX_MANIFEST_BYTES};

/// The first bytes of every WebAssembly module or component.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Length of an Ed25519 signature.
const SIGNATURE_LEN: usize = 64;

/// Bytes of a package that are not manifest or component: magic, version, the two
/// lengths, the key id length byte, the key id and the signature.
const OVERHEAD: usize = MAGIC.len() + 1 + 4 + 4 + 1 + KEY_ID_LEN + SIGNATURE_LEN;

/// A plugin package: a manifest and a component, signed by one key.
///
/// Get one from [`Package::sign`] or [`Package::decode`]; both guarantee the
/// format's rules. The fields are public for reading; a hand-modified package is
/// caught by [`Package::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct Package {
    /// The `plugin.toml` bytes, UTF-8 (not parsed here).
    pub manifest: Vec<u8>,
    /// The WebAssembly component bytes (only the `\0asm` prefix is checked here).
    pub component: Vec<u8>,
    /// Which key signed the package.
    pub key_id: KeyId,
    /// Ed25519 signature over [`Package::signed_payload`].
    pub signature: [u8; 64],
}

impl fmt::Debug for Package {
    /// A summary: the contents may be megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Package")
            .field("manifest_bytes", &self.manifest.len())
            .field("component_bytes", &self.component.len())
            .field("key_id", &self.key_id)
            .field("digest", &self.digest())
            .finish()
    }
}

/// The rules on manifest and component shared by signing, decoding and verifying.
pub(super) fn check_contents(manifest: &[u8], component: &[u8]) -> Result<(), PackageError> {
    if manifest.len() > MAX_MANIFEST_BYTES {
        return Err(PackageError::TooLarge {
            field: "manifest",
            size: manifest.len(),
            max: MAX_MANIFEST_BYTES,
        });
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(PackageError::TooLarge {
            field: "component",
            size: component.len(),
            max: MAX_COMPONENT_BYTES,
        });
    }
    if std::str::from_utf8(manifest).is_err() {
        return Err(PackageError::ManifestNotUtf8);
    }
    // Also rejects an empty component (C = 0).
    if !component.starts_with(WASM_MAGIC) {
        return Err(PackageError::NotAComponent);
    }
    Ok(())
}

/// A cursor over untrusted input. Every read checks the remaining length first,
/// so nothing is indexed, or allocated, past what is actually there.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn truncated(&self, field: &'static str, needed: usize) -> PackageError {
        PackageError::Truncated {
            field,
            offset: self.pos,
            needed,
            available: self.remaining(),
        }
    }

    /// Takes the next `n` bytes of `field`, or reports it truncated.
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], PackageError> {
        let end = self.pos.checked_add(n);
        let Some(slice) = end.and_then(|end| self.bytes.get(self.pos..end)) else {
            return Err(self.truncated(field, n));
        };
        self.pos += n;
        Ok(slice)
    }

    /// Takes the next `N` bytes of `field` as an array, or reports it truncated.
    fn take_array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], PackageError> {
        let chunk = self.bytes.get(self.pos..).and_then(<[u8]>::first_chunk::<N>);
        let Some(&chunk) = chunk else {
            return Err(self.truncated(field, N));
        };
        self.pos += N;
        Ok(chunk)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, PackageError> {
        let [b] = self.take_array::<1>(field)?;
        Ok(b)
    }

    fn u32_be(&mut self, field: &'static str) -> Result<usize, PackageError> {
        let n = u32::from_be_bytes(self.take_array(field)?);
        // u32 always fits in usize on the 32/64-bit targets Plinth runs on; saturate
        // anyway so a hypothetical 16-bit target cannot wrap.
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Checks that the input is exactly long enough for `fields` (name, size) from
    /// here on: names the first field that is cut short, or counts trailing bytes.
    fn expect_exactly(&self, fields: &[(&'static str, usize)]) -> Result<(), PackageError> {
        let mut offset = self.pos;
        for &(field, needed) in fields {
            let available = self.bytes.len().saturating_sub(offset);
            if needed > available {
                return Err(PackageError::Truncated {
                    field,
                    offset,
                    needed,
                    available,
                });
            }
            offset += needed;
        }
        match self.bytes.len() - offset {
            0 => Ok(()),
            count => Err(PackageError::TrailingBytes { count }),
        }
    }
}

impl Package {
    /// Parses a package file, strictly.
    ///
    /// The order of checks (and so which error wins) is the one documented in
    /// `docs/package-format.md`: framing first (magic, version, lengths against
    /// limits and against the actual input, no trailing bytes), then contents
    /// (key id, manifest UTF-8, wasm magic). It does **not** check the signature:
    /// call [`Package::verify`] with a trusted key for that.
    pub fn decode(bytes: &[u8]) -> Result<Package, PackageError> {
        if bytes.is_empty() {
            return Err(PackageError::Empty);
        }
        // A short file that is a prefix of the magic is a truncated package; one that
        // differs anywhere in the first 8 bytes is something else entirely.
        let prefix = &bytes[..bytes.len().min(MAGIC.len())];
        if prefix != &MAGIC[..prefix.len()] {
            return Err(PackageError::NotAPackage);
        }
        let mut r = Reader { bytes, pos: 0 };
        r.take("magic", MAGIC.len())?;

        let version = r.u8("format version")?;
        if version != FORMAT_VERSION {
            return Err(PackageError::UnsupportedVersion(version));
        }

        let manifest_len = r.u32_be("manifest length")?;
        if manifest_len > MAX_MANIFEST_BYTES {
            return Err(PackageError::TooLarge {
                field: "manifest",
                size: manifest_len,
                max: MAX_MANIFEST_BYTES,
            });
        }
        let manifest = r.take("manifest", manifest_len)?;

        let component_len = r.u32_be("component length")?;
        if component_len > MAX_COMPONENT_BYTES {
            return Err(PackageError::TooLarge {
                field: "component",
                size: component_len,
                max: MAX_COMPONENT_BYTES,
            });
        }
        // The key id length is fixed in version 1, so M and C determine the whole
        // layout: check the total length now, before reading anything at an offset
        // that a corrupted length may have shifted.
        r.expect_exactly(&[
            ("component", component_len),
            ("key id length", 1),
            ("key id", KEY_ID_LEN),
            ("signature", SIGNATURE_LEN),
        ])?;
        let component = r.take("component", component_len)?;
        let key_id_len_offset = r.pos;
        let key_id_len = usize::from(r.u8("key id length")?);
        let key_id = r.take("key id", KEY_ID_LEN)?;
        let signature = r.take_array::<SIGNATURE_LEN>("signature")?;

        if key_id_len != KEY_ID_LEN {
            return Err(PackageError::BadKeyId(format!(
                "the key id length byte at offset {key_id_len_offset} is {key_id_len}; version 1 key ids are exactly {KEY_ID_LEN} bytes"
            )));
        }
        let key_id = KeyId::from_bytes(key_id)?;
        check_contents(manifest, component)?;

        Ok(Package {
            manifest: manifest.to_vec(),
            component: component.to_vec(),
            key_id,
            signature,
        })
    }

    /// The file bytes of this package.
    ///
    /// For a package from [`Package::sign`] or [`Package::decode`] the result always
    /// decodes back to an equal package. (A hand-built package over the size limits
    /// encodes to bytes that [`Package::decode`] rejects.)
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&len_u32(self.manifest.len()).to_be_bytes());
        out.extend_from_slice(&self.manifest);
        out.extend_from_slice(&len_u32(self.component.len()).to_be_bytes());
        out.extend_from_slice(&self.component);
        let key_id = self.key_id.as_str().as_bytes();
        // KeyId guarantees 16 bytes, which fits the one-byte length.
        out.push(u8::try_from(key_id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(key_id);
        out.extend_from_slice(&self.signature);
        out
    }

    /// The length in bytes of [`Package::encode`]'s output.
    pub fn size(&self) -> usize {
        OVERHEAD + self.manifest.len() + self.component.len()
    }
}

/// A length as the u32 the format stores. Lengths within the limits always fit;
/// saturating keeps an oversized hand-built package from wrapping into a
/// plausible-looking small length.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overhead_is_98_bytes() {
        assert_eq!(OVERHEAD, 98);
    }

    #[test]
    fn reader_never_reads_past_the_end() {
        let mut r = Reader {
            bytes: &[1, 2, 3],
            pos: 0,
        };
        assert!(r.take("x", 4).is_err());
        assert_eq!(r.take("x", 2).unwrap(), &[1, 2]);
        assert!(matches!(
            r.u32_be("len"),
            Err(PackageError::Truncated {
                field: "len",
                offset: 2,
                needed: 4,
                available: 1
            })
        ));
        assert_eq!(r.u8("b").unwrap(), 3);
        assert!(r.u8("b").is_err());
    }

    #[test]
    fn huge_declared_lengths_fail_without_allocating() {
        // A 17-byte file that claims a 4 GiB manifest must fail on the limit check.
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&[0; 4]);
        assert!(matches!(
            Package::decode(&bytes),
            Err(PackageError::TooLarge {
                field: "manifest",
                size: 4_294_967_295,
                max: MAX_MANIFEST_BYTES
            })
        ));
        // Within the limit but beyond the input: truncated, with the numbers.
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&1000u32.to_be_bytes());
        bytes.extend_from_slice(b"abc");
        assert!(matches!(
            Package::decode(&bytes),
            Err(PackageError::Truncated {
                field: "manifest",
                offset: 13,
                needed: 1000,
                available: 3
            })
        ));
        // A component over 64 MiB.
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&(64 * 1024 * 1024 + 1u32).to_be_bytes());
        assert!(matches!(
            Package::decode(&bytes),
            Err(PackageError::TooLarge { field: "component", .. })
        ));
    }
}
