"""Typed errors raised by the protocol core and the verifying library.

Verification code raises; it never returns a bool. The hierarchy::

    TlogError
    ├── MalformedError            input does not parse (strict, canonical formats)
    ├── VerificationError         well-formed input that does not verify
    │   ├── UnknownKeyError       no trusted key matches (name, key ID)
    │   ├── SignatureError        a trusted key's signature is invalid
    │   ├── ProofError            an inclusion or consistency proof does not verify
    │   │   └── TileError         a tile the log served does not hash to the signed tree
    │   ├── LeafMismatchError     the leaf does not say what the envelope/artifact says
    │   └── PolicyError           valid, but the trust policy is not met (origin, k of n, ...)
    │       └── StaleCheckpointError  the newest trusted cosignature is older than allowed
    ├── ConsistencyError          two signed views that cannot both be true (carries evidence)
    └── NetworkError              the log could not be reached or answered with a server error
        └── LogAPIError           the log answered with an error (status and stable code)

Callers act differently on each: malformed input is the sender's fault, an unknown key is a
configuration question, a bad signature or proof means the data cannot be trusted, a
`ConsistencyError` is evidence of log misbehaviour worth keeping, and a `NetworkError` is worth
a retry later. `tlog-client` maps them to exit codes: malformed 2, verification and
consistency 1, network 3.
"""

from __future__ import annotations

import base64


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


class TileError(ProofError):
    """A tile the log (or a cache in front of it) served does not hash to the signed tree it
    was read for: refused, and never cached. Carries the tile's path."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


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

    def evidence(self) -> dict[str, object]:
        """The evidence as a JSON-ready document: both signed notes verbatim, proof in base64."""
        return {
            "reason": str(self),
            "old_checkpoint": self.old_checkpoint.decode("utf-8", "replace"),
            "new_checkpoint": self.new_checkpoint.decode("utf-8", "replace"),
            "consistency_proof": [base64.b64encode(h).decode() for h in self.proof],
        }



class LeafMismatchError(VerificationError):
    """The logged leaf is not the one the given envelope or artifact produces."""


class PolicyError(VerificationError):
    """Everything verified, but not what the trust policy requires (origin, signatures, k of n)."""


class StaleCheckpointError(PolicyError):
    """The checkpoint's newest trusted cosignature is older than the policy's maximum age."""


class NetworkError(TlogError):
    """The log could not be reached, timed out, or kept answering with server errors."""


class LogAPIError(NetworkError):
    """The log answered a request with an error: HTTP status plus its stable error code."""

    def __init__(self, message: str, *, status: int, code: str = "", method: str = "GET") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.method = method
