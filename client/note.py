"""C2SP signed notes (golang.org/x/mod/sumdb/note), verifier keys and signers. Pure, no I/O.

Wire format::

    <text lines, each ending in \\n>
    \\n
    — <key name> <base64(key ID[4] || signature)>\\n     (one or more)

The signed message is the text including its final newline. The split is at the *last*
blank line. Supported signature types: 0x01 Ed25519, 0x02 ECDSA (key ID = SHA-256 of the DER
SubjectPublicKeyInfo, truncated; signature is DER over SHA-256 of the text) and 0x04
`cosignature/v1` (timestamped Ed25519 witness cosignature, C2SP tlog-cosignature).

Example (from the C2SP spec, verifiable with the key below)::

    >>> v = parse_vkey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    >>> note = (b"This is an example message.\\n\\n\\xe2\\x80\\x94 example.com/foo "
    ...         b"Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZX"
    ...         b"sYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\\n")
    >>> verify_note(note, [v]).text
    'This is an example message.\\n'
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from client.encoding import b64decode_std, b64encode
from client.errors import MalformedError, SignatureError, UnknownKeyError

ALG_ED25519 = 0x01
ALG_ECDSA = 0x02
ALG_COSIGNATURE_V1 = 0x04

EM_DASH_PREFIX = "\u2014 "
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # C0 controls except the newline
MAX_NOTE_SIZE = 1 << 20
MAX_SIGNATURES = 100
MAX_NAME_SIZE = 255


# --- key names and IDs ----------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def check_key_name(name: str) -> None:
    """Key names are non-empty UTF-8 with no whitespace, no control characters and no '+'.

    Memoised (failures raise and are not cached): every signature line names a key."""
    if not name or "+" in name or any(c.isspace() or not c.isprintable() for c in name):
        raise MalformedError("invalid key name")
    if len(name.encode("utf-8")) > MAX_NAME_SIZE:
        raise MalformedError("key name is too long")


def key_id(name: str, alg: int, public: bytes) -> int:
    """Standard signed-note key ID: SHA-256(name || \\n || type || public key)[:4]."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public).digest()
    return int.from_bytes(digest[:4], "big")


def ecdsa_key_id(spki_der: bytes) -> int:
    """ECDSA (0x02) key ID quirk: SHA-256(DER SPKI)[:4], no name and no type byte."""
    return int.from_bytes(hashlib.sha256(spki_der).digest()[:4], "big")


# --- verifiers ------------------------------------------------------------------------------


class Verifier(Protocol):
    """Checks signature lines of one key. `verify` returns False on a bad signature."""

    name: str
    key_id: int
    alg: int

    def verify(self, msg: bytes, sig: bytes) -> bool: ...

    def vkey(self) -> str: ...


@dataclass(frozen=True)
class Ed25519Verifier:
    """Type 0x01: Ed25519 over the note text."""

    name: str
    public: bytes
    alg = ALG_ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if len(self.public) != 32:
            raise MalformedError("Ed25519 public key must be 32 bytes")
        # libsodium (PyNaCl) verifies about twice as fast as OpenSSL here, and is strict:
        # it rejects non-canonical signatures and small-order keys.
        object.__setattr__(self, "_nacl", nacl.signing.VerifyKey(self.public))
        object.__setattr__(self, "_kid", key_id(self.name, self.alg, self.public))

    @property
    def key_id(self) -> int:
        return self._kid  # type: ignore[attr-defined,no-any-return]

    def _ed25519_ok(self, sig: bytes, msg: bytes) -> bool:
        if len(sig) != 64:
            return False
        try:
            self._nacl.verify(msg, sig)  # type: ignore[attr-defined]
        except (nacl.exceptions.BadSignatureError, ValueError):
            return False
        return True

    def verify(self, msg: bytes, sig: bytes) -> bool:
        return self._ed25519_ok(sig, msg)

    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, bytes([self.alg]) + self.public)


@dataclass(frozen=True)
class ECDSAVerifier:
    """Type 0x02: ECDSA (P-256 recommended) DER signature over SHA-256 of the note text."""

    name: str
    spki_der: bytes
    alg = ALG_ECDSA

    def __post_init__(self) -> None:
        check_key_name(self.name)
        try:
            key = serialization.load_der_public_key(self.spki_der)
        except (ValueError, UnsupportedAlgorithm) as exc:  # e.g. a curve OpenSSL does not know
            raise MalformedError("ECDSA key is not a DER SubjectPublicKeyInfo") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise MalformedError("type 0x02 key is not an EC key")
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise MalformedError("ECDSA key must be on P-256, P-384 or P-521")
        object.__setattr__(self, "_key", key)

    @property
    def key_id(self) -> int:
        return ecdsa_key_id(self.spki_der)  # cheap next to an ECDSA verification

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self._key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        except (InvalidSignature, ValueError):
            return False
        return True

    def vkey(self) -> str:
        return format_vkey(self.name, self.key_id, bytes([ALG_ECDSA]) + self.spki_der)


@dataclass(frozen=True)
class CosignatureV1Verifier(Ed25519Verifier):
    """Type 0x04: a witness's timestamped Ed25519 cosignature on a checkpoint.

    The signature bytes are u64be(timestamp) || Ed25519 signature over
    ``cosignature/v1\\ntime <timestamp>\\n<checkpoint text>``. The key ID uses type 0x04, so
    the same Ed25519 key has different IDs as a log key and as a cosigner.
    """

    alg = ALG_COSIGNATURE_V1

    def verify(self, msg: bytes, sig: bytes) -> bool:
        if len(sig) != 72:
            return False
        timestamp = int.from_bytes(sig[:8], "big")
        if timestamp >= 1 << 63:
            return False
        return self._ed25519_ok(sig[8:], cosignature_message(msg, timestamp))


def cosignature_message(text: bytes, timestamp: int) -> bytes:
    """The exact bytes a `cosignature/v1` signs."""
    return b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text


def format_vkey(name: str, kid: int, typed_key: bytes) -> str:
    return f"{name}+{kid:08x}+{b64encode(typed_key)}"


def parse_vkey(vkey: str) -> Ed25519Verifier | ECDSAVerifier | CosignatureV1Verifier:
    """Parse `name+hexid+base64(type || key)`; the hex ID must match the recomputed one."""
    if len(vkey) > 4096:
        raise MalformedError("verifier key is too long")
    parts = vkey.split("+", 2)  # base64 may contain '+': never split it
    if len(parts) != 3:
        raise MalformedError("verifier key must be name+id+key")
    name, hex_id, b64 = parts
    check_key_name(name)
    if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
        raise MalformedError("verifier key ID must be 8 lowercase hex digits")
    raw = b64decode_std(b64, what="verifier key")
    if not raw:
        raise MalformedError("verifier key is empty")
    alg, public = raw[0], raw[1:]
    verifier: Ed25519Verifier | ECDSAVerifier | CosignatureV1Verifier
    if alg == ALG_ED25519:
        verifier = Ed25519Verifier(name, public)
    elif alg == ALG_ECDSA:
        verifier = ECDSAVerifier(name, public)
    elif alg == ALG_COSIGNATURE_V1:
        verifier = CosignatureV1Verifier(name, public)
    else:
        raise MalformedError(f"unknown verifier key type 0x{alg:02x}")
    if verifier.key_id != int(hex_id, 16):
        raise MalformedError("verifier key ID does not match the key")
    return verifier


# --- signers --------------------------------------------------------------------------------


class Signer(Protocol):
    """Produces one signature line's bytes for a note text."""

    name: str
    key_id: int

    def sign(self, msg: bytes) -> bytes: ...


class Ed25519Signer:
    """Type 0x01 signer holding an Ed25519 private key in memory. Never log it."""

    __slots__ = ("_key", "key_id", "name", "public")

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != 32:
            raise MalformedError("Ed25519 seed must be 32 bytes")
        self.name = name
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._key.public_key().public_bytes_raw()
        self.key_id = key_id(name, ALG_ED25519, self.public)

    def __repr__(self) -> str:
        return f"Ed25519Signer(name={self.name!r}, key_id={self.key_id:08x})"

    def sign(self, msg: bytes) -> bytes:
        return self._key.sign(msg)

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self.public)

    def skey(self) -> str:
        """`PRIVATE+KEY+name+id+base64(0x01 || seed)`, the Go note signer-key format."""
        seed = self._key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(bytes([ALG_ED25519]) + seed)}"


class ECDSASigner:
    """Type 0x02 signer with a software ECDSA key (the TPM signer has the same interface).

    Signs SHA-256 of the note text and returns the DER signature, as the spec asks.
    """

    __slots__ = ("_key", "key_id", "name", "spki_der")

    def __init__(self, name: str, key: ec.EllipticCurvePrivateKey) -> None:
        check_key_name(name)
        self.name = name
        self._key = key
        self.spki_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.key_id = ecdsa_key_id(self.spki_der)

    def __repr__(self) -> str:
        return f"ECDSASigner(name={self.name!r}, key_id={self.key_id:08x})"

    def sign(self, msg: bytes) -> bytes:
        return self._key.sign(msg, ec.ECDSA(hashes.SHA256()))

    def verifier(self) -> ECDSAVerifier:
        return ECDSAVerifier(self.name, self.spki_der)


class CosignatureV1Signer(Ed25519Signer):
    """Type 0x04 witness cosigner: u64be(timestamp) || Ed25519 over the cosignature message.

    The same Ed25519 key as a type 0x01 signer, with a type 0x04 key ID. `clock` gives the
    Unix time to stamp (injectable, so tests can make old cosignatures)."""

    __slots__ = ("clock",)

    def __init__(self, name: str, seed: bytes, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, seed)
        self.key_id = key_id(name, ALG_COSIGNATURE_V1, self.public)
        self.clock = clock

    @classmethod
    def from_signer(cls, signer: Ed25519Signer) -> CosignatureV1Signer:
        """The cosigner for a key file's Ed25519 key (`witness keygen` writes a 0x01 skey)."""
        return cls(signer.name, signer._key.private_bytes_raw())

    def __repr__(self) -> str:
        return f"CosignatureV1Signer(name={self.name!r}, key_id={self.key_id:08x})"

    def sign(self, msg: bytes) -> bytes:
        ts = int(self.clock())
        if not 0 <= ts < 1 << 63:  # the spec's MUST: every verifier would refuse it
            raise ValueError(f"the clock says {ts}: a cosignature timestamp must be in 0..2^63-1")
        return ts.to_bytes(8, "big") + self._key.sign(cosignature_message(msg, ts))

    def verifier(self) -> CosignatureV1Verifier:
        return CosignatureV1Verifier(self.name, self.public)

    def skey(self) -> str:
        return Ed25519Signer(self.name, self._key.private_bytes_raw()).skey()


def generate_ed25519(name: str) -> Ed25519Signer:
    return Ed25519Signer(name, os.urandom(32))


def parse_skey(skey: str) -> Ed25519Signer:
    """Parse a `PRIVATE+KEY+name+id+base64` Ed25519 signer key."""
    parts = skey.strip("\n").split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise MalformedError("signer key must be PRIVATE+KEY+name+id+key")
    _, _, name, hex_id, b64 = parts
    raw = b64decode_std(b64, what="signer key")
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise MalformedError("signer key is not an Ed25519 key")
    signer = Ed25519Signer(name, raw[1:])
    if len(hex_id) != 8 or f"{signer.key_id:08x}" != hex_id:
        raise MalformedError("signer key ID does not match the key")
    return signer


# --- notes ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: int
    sig: bytes

    def line(self) -> str:
        return f"{EM_DASH_PREFIX}{self.name} {b64encode(self.key_id.to_bytes(4, 'big') + self.sig)}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed signed note. `text` ends in a newline; signatures are not yet verified."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note with at least one signature verified by a trusted key."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def parse_note(msg: bytes, *, max_size: int = MAX_NOTE_SIZE) -> Note:
    """Split a signed note into text and signature lines, strictly."""
    if len(msg) > max_size:
        raise MalformedError("note is too large")
    try:
        s = msg.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedError("note is not valid UTF-8") from exc
    if _CONTROL.search(s):
        raise MalformedError("note contains control characters")
    split = s.rfind("\n\n")
    if split < 0:
        raise MalformedError("note has no signature block")
    text, sig_block = s[: split + 1], s[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise MalformedError("note signature block is empty or unterminated")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedError("note has too many signatures")
    sigs: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(EM_DASH_PREFIX):
            raise MalformedError("note signature line does not start with an em dash")
        name, sep, b64 = line[len(EM_DASH_PREFIX) :].partition(" ")
        if not sep:
            raise MalformedError("note signature line has no signature")
        check_key_name(name)
        raw = b64decode_std(b64, what="note signature")
        if len(raw) < 5:
            raise MalformedError("note signature is too short")
        sigs.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return Note(text, tuple(sigs))


def verify_note(msg: bytes | Note, verifiers: list[Verifier]) -> VerifiedNote:
    """Open a note: every signature by a known (name, key ID) must verify, and at least one must.

    Unknown signatures are kept as unverified (identical lines once). Raises
    `UnknownKeyError` when no known key signed and `SignatureError` when a known key's
    signature fails.
    """
    note = msg if isinstance(msg, Note) else parse_note(msg)
    text = note.text.encode("utf-8")
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen_keys: set[tuple[str, int]] = set()
    for sig in note.signatures:
        k = (sig.name, sig.key_id)
        v = known.get(k)
        if v is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if k in seen_keys:
            continue
        if not v.verify(text, sig.sig):
            raise SignatureError(f"invalid signature by {sig.name}+{sig.key_id:08x}")
        seen_keys.add(k)
        verified.append(sig)
    if not verified:
        raise UnknownKeyError("note has no signature by a trusted key")
    return VerifiedNote(note.text, tuple(verified), tuple(unverified))


def sign_note(text: str, signers: list[Signer], existing: tuple[NoteSignature, ...] = ()) -> bytes:
    """Sign `text` (which must end in a newline) and return the note bytes."""
    if not text.endswith("\n") or "\n\n" in text:
        raise ValueError("note text must end in one newline and have no blank lines")
    raw = text.encode("utf-8")
    sigs = list(existing)
    for s in signers:
        check_key_name(s.name)
        sigs.append(NoteSignature(s.name, s.key_id, s.sign(raw)))
    return Note(text, tuple(sigs)).to_bytes()
