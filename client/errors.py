"""Typed errors raised by the protocol core and the verifying library.

Verification code raises; it never returns a bool. The hierarchy::

    TlogError
    ├── MalformedError            input does not parse (strict, canonical formats)
    ├── VerificationError         well-formed input that does not verify
    │   ├── UnknownKeyError       no trusted key matches (name, key ID)
    │   ├── SignatureError        a trusted key's signature is invalid
    │   └── ProofError            an inclusion or consistency proof does not verify
    └── ConsistencyError          two signed views that cannot both be true (carries evidence)

Callers act differently on each: malformed input is the sender's fault, an unknown key is a
configuration question, a bad signature or proof means the data cannot be trusted, and a
`ConsistencyError` is evidence of log misbehaviour worth keeping.
"""

from __future__ import annotations


class TlogError(Exception):
    """Base of every error raised by the tlog protocol core."""


class MalformedError(TlogError, ValueError):
    """Input is not in the strict, canonical form its format requires."""


class VerificationError(TlogError):
    """Well-formed input failed verification."""


class UnknownKeyError(VerificationError):
    """No trusted verifier key matches the signature(s) present."""


class SignatureError(VerificationError):
    """A signature by a trusted key does not verify."""


class ProofError(VerificationError):
    """A Merkle inclusion or consistency proof does not verify."""


class ConsistencyError(TlogError):
    """Two views of a log that cannot both be true.

    Carries the evidence so it can be reported without asking the log again: both signed
    checkpoints (note bytes) and the consistency proof that failed (or was refused).
    """

    def __init__(
        self,
        message: str,
        *,
        old_checkpoint: bytes,
        new_checkpoint: bytes,
        proof: tuple[bytes, ...] = (),
    ) -> None:
        super().__init__(message)
        self.old_checkpoint = old_checkpoint
        self.new_checkpoint = new_checkpoint
        self.proof = proof
