"""Trust policy: what a verifier requires of a log before it trusts anything from it.

A policy is a frozen value, loaded from a small TOML or JSON file and checked strictly (an
unknown or mistyped key is an error naming the key, never ignored)::

    origin = "log.example.com/attest1"
    url = "https://log.example.com"          # optional: where online commands fetch from
    log_keys = ["log.example.com/attest1+4f2a01c3+AQ..."]
    log_signatures = "all"                   # "all" listed log keys must sign, or "any" one
    witnesses = ["witness.example/w1+1234abcd+BA...", "..."]   # cosignature/v1 (0x04) keys
    witness_quorum = 2                       # k of the n witnesses above must cosign
    max_age_seconds = 86400                  # newest trusted cosignature at most this old
    allow_raw_log = false                    # accept logs that take unverified raw entries

Freshness comes only from witness cosignatures (checkpoints carry no time), so a maximum age
without witnesses is refused when the policy is loaded, not discovered at verification time.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.errors import MalformedError
from client.note import ALG_COSIGNATURE_V1, CosignatureV1Verifier, Verifier, parse_vkey

MAX_POLICY_FILE = 1 << 20
MAX_KEYS = 64
LOG_SIGNATURE_MODES = ("all", "any")


@dataclass(frozen=True)
class TrustPolicy:
    origin: str
    log_keys: tuple[Verifier, ...]
    log_signatures: str = "all"
    witnesses: tuple[CosignatureV1Verifier, ...] = ()
    witness_quorum: int = 0
    max_age_seconds: int | None = None
    url: str | None = None
    allow_raw_log: bool = False
    tpm_aks: tuple[str, ...] = ()  # trusted TPM attestation keys (names, hex): require anchoring
    tpm_ak_cas: tuple[str, ...] = ()  # or trusted AK CA certificates (PEM), after enrollment

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedError("policy: origin must be one non-empty line")
        if not self.log_keys:
            raise MalformedError("policy: log_keys must list at least one verifier key")
        for v in self.log_keys:
            if v.name != self.origin:
                raise MalformedError(f"policy: log key {v.name!r} is not named after the origin")
            if v.alg == ALG_COSIGNATURE_V1:
                raise MalformedError("policy: a cosignature/v1 key cannot be a log key")
        if self.log_signatures not in LOG_SIGNATURE_MODES:
            raise MalformedError('policy: log_signatures must be "all" or "any"')
        names = [w.name for w in self.witnesses]
        if len(set(names)) != len(names):
            raise MalformedError("policy: two witnesses share a name")
        # One key listed twice would count twice toward k: cosignatures do not sign the name.
        publics = [_public(v) for v in (*self.log_keys, *self.witnesses)]
        if len(set(publics)) != len(publics):
            raise MalformedError("policy: the same public key is listed twice")
        ids = [(v.name, v.key_id) for v in (*self.log_keys, *self.witnesses)]
        if len(set(ids)) != len(ids):
            raise MalformedError("policy: two keys share a name and key ID")
        if not 0 <= self.witness_quorum <= len(self.witnesses):
            raise MalformedError(
                f"policy: witness_quorum {self.witness_quorum} is not within 0..{len(self.witnesses)}")
        if self.witnesses and self.witness_quorum == 0:
            raise MalformedError("policy: witnesses are listed but witness_quorum is 0")
        if self.tpm_aks or self.tpm_ak_cas:
            if not any(v.alg == 0x02 for v in self.log_keys) or self.log_signatures != "all":
                raise MalformedError("policy: tpm_aks needs the log's ECDSA (TPM) key in log_keys "
                                     'and log_signatures = "all"')
            for name in self.tpm_aks:
                if not isinstance(name, str) or len(name) != 68 or not name.startswith("000b") or \
                        any(c not in "0123456789abcdef" for c in name):
                    raise MalformedError(f"policy: tpm_aks entry {name!r} is not a SHA-256 TPM name in hex")
            if not all(isinstance(pem, str) for pem in self.tpm_ak_cas):
                raise MalformedError("policy: tpm_ak_cas entries must be PEM certificate strings")
        if self.max_age_seconds is not None:
            if self.max_age_seconds <= 0:
                raise MalformedError("policy: max_age_seconds must be positive")
            if self.witness_quorum == 0:
                raise MalformedError(
                    "policy: max_age_seconds needs witnesses (checkpoints carry no time; "
                    "only cosignatures do)")

    @property
    def requires_tpm(self) -> bool:
        return bool(self.tpm_aks or self.tpm_ak_cas)

    def verifiers(self) -> tuple[Verifier, ...]:
        """Every key whose signature lines on a checkpoint are checked."""
        return (*self.log_keys, *self.witnesses)

    def to_dict(self) -> dict[str, Any]:
        """The file form (JSON/TOML keys), so a policy round-trips."""
        out: dict[str, Any] = {"origin": self.origin,
                               "log_keys": [v.vkey() for v in self.log_keys],
                               "log_signatures": self.log_signatures,
                               "allow_raw_log": self.allow_raw_log}
        if self.url:
            out["url"] = self.url
        if self.witnesses:
            out["witnesses"] = [w.vkey() for w in self.witnesses]
            out["witness_quorum"] = self.witness_quorum
        if self.max_age_seconds is not None:
            out["max_age_seconds"] = self.max_age_seconds
        if self.tpm_aks:
            out["tpm_aks"] = list(self.tpm_aks)
        if self.tpm_ak_cas:
            out["tpm_ak_cas"] = list(self.tpm_ak_cas)
        return out


def policy_toml(policy: TrustPolicy, comment: str = "") -> str:
    """The policy as a TOML file (JSON string escapes are valid TOML basic strings)."""
    lines = [f"# {c}" for c in comment.splitlines()]
    for key, value in policy.to_dict().items():
        if isinstance(value, list):
            items = "".join(f"\n  {_toml(v)}," for v in value)
            lines.append(f"{key} = [{items}\n]")
        else:
            lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML value: JSON's, except two string escapes TOML does differently. It has no
    surrogate pairs (a character beyond U+FFFF, an emoji in a key name, is \\UXXXXXXXX) and
    wants DEL escaped, which JSON leaves as it is."""
    if not isinstance(value, str) or (value.isascii() and "\x7f" not in value):
        return json.dumps(value)
    return '"' + "".join(f"\\U{ord(c):08x}" if ord(c) > 0xFFFF else "\\u007f" if c == "\x7f"
                         else json.dumps(c)[1:-1] for c in value) + '"'


def _public(v: Verifier) -> bytes:
    return getattr(v, "public", None) or getattr(v, "spki_der", b"")


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "origin": str, "url": str, "log_keys": list, "log_signatures": str, "witnesses": list,
    "witness_quorum": int, "max_age_seconds": int, "allow_raw_log": bool, "tpm_aks": list,
    "tpm_ak_cas": list,
}


def _unicode(text: str) -> bool:
    """Whether `text` is valid Unicode (no lone surrogate): what a file can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _vkeys(doc: dict[str, Any], field: str) -> list[Verifier]:
    raw = doc.get(field, [])
    if len(raw) > MAX_KEYS:
        raise MalformedError(f"policy: {field} lists more than {MAX_KEYS} keys")
    out: list[Verifier] = []
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise MalformedError(f"policy: {field}[{i}] must be a verifier key string")
        try:
            out.append(parse_vkey(item))
        except MalformedError as exc:
            raise MalformedError(f"policy: {field}[{i}]: {exc}") from exc
    return out


def _quorum(doc: dict[str, Any], witnesses: int) -> int:
    """How many witnesses must cosign: stated outright when witnesses are listed, since any
    default (one of them, or all) is a security decision the policy's author must make."""
    if "witness_quorum" not in doc:
        if witnesses:
            raise MalformedError("policy: witnesses are listed: say how many must cosign (witness_quorum)")
        return 0
    return doc["witness_quorum"]  # type: ignore[no-any-return]


def policy_from_dict(doc: Any) -> TrustPolicy:
    """Build a policy from its file form; every key is checked, unknown keys are errors."""
    if not isinstance(doc, dict):
        raise MalformedError("policy: must be a table/object")
    for key, value in doc.items():
        want = _FIELDS.get(key)
        if want is None:
            raise MalformedError(f"policy: unknown key {key!r}")
        # bool is an int in Python: a quorum of `true` must not pass as 1.
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise MalformedError(f"policy: {key} must be of type {want.__name__}")  # type: ignore[union-attr]
        # JSON's \ud800 escapes decode to lone surrogates: text no file or TOML can hold.
        items = value if isinstance(value, list) else [value]
        if any(isinstance(x, str) and not _unicode(x) for x in items):
            raise MalformedError(f"policy: {key} is not valid Unicode (a lone surrogate)")
    if "origin" not in doc or "log_keys" not in doc:
        raise MalformedError("policy: origin and log_keys are required")
    witnesses = _vkeys(doc, "witnesses")
    for i, w in enumerate(witnesses):
        if not isinstance(w, CosignatureV1Verifier):
            raise MalformedError(f"policy: witnesses[{i}] is not a cosignature/v1 (type 0x04) key")
    url = doc.get("url")
    # Checked as it is kept (without trailing slashes): "https://" alone would be kept as
    # "https:", which its own policy file could not load again.
    if url is not None and not url.rstrip("/").startswith(("http://", "https://")):
        raise MalformedError("policy: url must start with http:// or https://")
    return TrustPolicy(
        origin=doc["origin"],
        log_keys=tuple(_vkeys(doc, "log_keys")),
        log_signatures=doc.get("log_signatures", "all"),
        witnesses=tuple(witnesses),  # type: ignore[arg-type]
        witness_quorum=_quorum(doc, len(witnesses)),
        max_age_seconds=doc.get("max_age_seconds"),
        url=url.rstrip("/") if url else None,
        allow_raw_log=doc.get("allow_raw_log", False),
        tpm_aks=tuple(doc.get("tpm_aks", [])),
        tpm_ak_cas=tuple(doc.get("tpm_ak_cas", [])),
    )


def load_policy(path: str | Path) -> TrustPolicy:
    """Read a policy file: `.json` is JSON, anything else TOML."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_POLICY_FILE + 1)
    except OSError as exc:
        raise MalformedError(f"policy: cannot read {p}: {exc.strerror}") from exc
    if len(raw) > MAX_POLICY_FILE:
        raise MalformedError("policy: file is too large")
    try:
        doc = json.loads(raw) if p.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # deep nesting: RecursionError
        raise MalformedError(f"policy: {p} does not parse: {exc}") from exc
    return policy_from_dict(doc)
