"""Witness configuration: one TOML file, checked strictly (unknown keys are errors).

::

    [witness]
    key_file = "witness.key"        # from `witness keygen`; its name is the witness's name
    data_dir = "./witness-data"     # LMDB state (latest cosigned checkpoint per log)
    listen = "127.0.0.1:7380"
    rate_per_log = 20.0             # add-checkpoint requests per second per log (429 above)
    burst = 40

    [[log]]
    origin = "log.example.com/attest1"
    keys = ["log.example.com/attest1+4f2a01c3+AQ..."]
    # optional: cosign nothing that is not an extension of this checkpoint
    # start_size = 1234
    # start_root = "<base64>"

Relative paths are relative to the config file's directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.encoding import b64decode_hash
from client.errors import MalformedError
from client.note import ALG_COSIGNATURE_V1, Verifier, parse_vkey

MAX_LOGS = 100_000


class WitnessConfigError(ValueError):
    """The configuration names a bad key or value; the message says which."""


@dataclass(frozen=True)
class LogEntry:
    origin: str
    keys: tuple[Verifier, ...]
    start: tuple[int, bytes] | None = None


@dataclass(frozen=True)
class WitnessConfig:
    key_file: Path
    data_dir: Path
    listen: str = "127.0.0.1:7380"
    rate_per_log: float = 20.0
    burst: int = 40
    logs: dict[str, LogEntry] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


_WITNESS_KEYS = {"key_file": str, "data_dir": str, "listen": str, "rate_per_log": (int, float),
                 "burst": int}
_LOG_KEYS = {"origin": str, "keys": list, "start_size": int, "start_root": str}


def _typed(table: dict[str, Any], allowed: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        want = allowed.get(key)
        if want is None:
            raise WitnessConfigError(f"{where}: unknown key {key!r}")
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise WitnessConfigError(f"{where}.{key}: wrong type {type(value).__name__}")


def parse_log(doc: dict[str, Any], where: str = "log") -> LogEntry:
    _typed(doc, _LOG_KEYS, where)
    origin = doc.get("origin")
    if not origin or "\n" in origin:
        raise WitnessConfigError(f"{where}.origin: required, one line")
    keys: list[Verifier] = []
    for i, k in enumerate(doc.get("keys", [])):
        try:
            v = parse_vkey(k) if isinstance(k, str) else None
        except MalformedError as exc:
            raise WitnessConfigError(f"{where}.keys[{i}]: {exc}") from exc
        if v is None or v.alg == ALG_COSIGNATURE_V1 or v.name != origin:
            raise WitnessConfigError(f"{where}.keys[{i}]: must be a log key named {origin!r}")
        keys.append(v)
    if not keys:
        raise WitnessConfigError(f"{where}.keys: at least one verifier key is required")
    start = None
    if ("start_size" in doc) != ("start_root" in doc):
        raise WitnessConfigError(f"{where}: start_size and start_root go together")
    if "start_size" in doc:
        try:
            start = (doc["start_size"], b64decode_hash(doc["start_root"], what="start_root"))
        except MalformedError as exc:
            raise WitnessConfigError(f"{where}.start_root: {exc}") from exc
        if start[0] < 0:
            raise WitnessConfigError(f"{where}.start_size: must not be negative")
    return LogEntry(origin, tuple(keys), start)


ENV_PREFIX = "WITNESS_"


def _env_values(env: dict[str, str]) -> dict[str, Any]:
    """`WITNESS_<KEY>` variables for the `[witness]` settings, typed like the file's."""
    out: dict[str, Any] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX):].lower()
        want = _WITNESS_KEYS.get(key)
        if want is None:
            raise WitnessConfigError(f"{name}: no such setting (see docs/configuration.md)")
        try:
            out[key] = int(raw) if want is int else float(raw) if want == (int, float) else raw
        except ValueError:
            raise WitnessConfigError(f"{name}: expected a number, got {raw!r}") from None
    return out


def load_config(path: str | Path, overrides: dict[str, Any] | None = None,
                env: dict[str, str] | None = None) -> WitnessConfig:
    """The file's `[witness]` table, then `WITNESS_<KEY>` environment variables, then flags."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WitnessConfigError(f"cannot read {p}: {exc}") from exc
    unknown = set(doc) - {"witness", "log"}
    if unknown:
        raise WitnessConfigError(f"unknown table(s) {sorted(unknown)}")
    table = dict(doc.get("witness", {}))
    table.update(_env_values(dict(os.environ) if env is None else env))
    table.update({k: v for k, v in (overrides or {}).items() if v is not None})
    _typed(table, _WITNESS_KEYS, "witness")
    base = p.resolve().parent
    listen = table.get("listen", "127.0.0.1:7380")
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise WitnessConfigError(f"witness.listen: expected HOST:PORT, got {listen!r}")
    rate, burst = float(table.get("rate_per_log", 20.0)), table.get("burst", 40)
    if not 0 < rate <= 1e6 or not 1 <= burst <= 1_000_000:
        raise WitnessConfigError("witness.rate_per_log and burst must be positive")
    logs: dict[str, LogEntry] = {}
    entries = doc.get("log", [])
    if not isinstance(entries, list) or len(entries) > MAX_LOGS:
        raise WitnessConfigError("log: must be an array of tables ([[log]])")
    for i, entry in enumerate(entries):
        log = parse_log(entry, f"log[{i}]")
        if log.origin in logs:
            raise WitnessConfigError(f"log[{i}].origin: {log.origin!r} is listed twice")
        logs[log.origin] = log
    return WitnessConfig(
        key_file=base / table.get("key_file", "witness.key"),
        data_dir=base / table.get("data_dir", "witness-data"),
        listen=listen, rate_per_log=rate, burst=burst, logs=logs)
