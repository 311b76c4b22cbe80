#!/usr/bin/env python3
"""Independent verifier for Plinth .plpkg packages, written from docs/package-format.md.
Usage: python3 docs/verify_package.py FILE ed25519:BASE64   (needs: pip install pynacl)
Prints "OK <digest> key <keyid>" and exits 0, or prints the reason to stderr and exits 1."""
import base64, binascii, hashlib, re, struct, sys
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

def check(data, pub_text):
    """Returns (digest, key_id) of a valid package, or raises ValueError(reason)."""
    if not pub_text.startswith("ed25519:"): raise ValueError('the public key must look like "ed25519:<base64>"')
    try: pub = base64.b64decode(pub_text[8:], validate=True)
    except binascii.Error: raise ValueError("the public key is not valid base64") from None
    if len(pub) != 32: raise ValueError(f"the public key is {len(pub)} bytes; Ed25519 public keys are 32")
    if not data: raise ValueError("the file is empty")
    if data[:8] != b"PLINTHPK": raise ValueError("not a Plinth package (bad magic, or shorter than 8 bytes)")
    if len(data) < 13: raise ValueError("truncated before the manifest length")
    if data[8] != 1: raise ValueError(f"unsupported package format version {data[8]}")
    (m,) = struct.unpack_from(">I", data, 9)
    if m > 256 * 1024: raise ValueError(f"the manifest is {m} bytes, over the 256 KiB limit")
    if len(data) < 17 + m: raise ValueError("truncated in the manifest or the component length")
    (c,) = struct.unpack_from(">I", data, 13 + m)
    if c > 64 * 1024 * 1024: raise ValueError(f"the component is {c} bytes, over the 64 MiB limit")
    if len(data) != 17 + m + c + 81: raise ValueError(f"the file is {len(data)} bytes but its lengths say {17 + m + c + 81} (truncated or trailing bytes)")
    manifest, component, rest = data[13:13 + m], data[17 + m:17 + m + c], data[17 + m + c:]
    if rest[0] != 16: raise ValueError(f"the key id length is {rest[0]}, not 16")
    if not re.fullmatch(rb"[0-9a-f]{16}", rest[1:17]): raise ValueError("the key id is not 16 lowercase hex characters")
    try: manifest.decode("utf-8")
    except UnicodeDecodeError: raise ValueError("the manifest is not valid UTF-8") from None
    if not component.startswith(b"\0asm"): raise ValueError("the component does not start with \\0asm")
    found, expected = rest[1:17].decode(), hashlib.sha256(pub).hexdigest()[:16]
    if found != expected: raise ValueError(f"signed by key {found} but the expected key is {expected}")
    payload = b"plinth-package-v1\n" + hashlib.sha256(manifest).digest() + hashlib.sha256(component).digest()
    try: VerifyKey(pub).verify(payload, rest[17:])
    except CryptoError: raise ValueError("the signature does not verify: altered after signing, or signed with a different key") from None
    return hashlib.sha256(payload).hexdigest(), expected

if __name__ == "__main__":
    if len(sys.argv) != 3: sys.exit("usage: python3 verify_package.py FILE ed25519:BASE64")
    try:
        with open(sys.argv[1], "rb") as f: digest, key_id = check(f.read(), sys.argv[2].strip())
    except (OSError, ValueError) as e: sys.exit(f"{sys.argv[1]}: {e}")
    print(f"OK {digest} key {key_id}")
