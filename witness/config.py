"""Witness configuration: one TOML file, checked strictly (unknown keys are errors).

::

    [witness]
    key_file = "witness.key"        # from `witness keygen`; its name is the witness's name
    data_dir = "./witness-data"     # LMDB state (latest cosigned checkpoint per log)
    listen = "127.0.0.1:7380"
    rate_per_log = 20.0             # add-checkpoint requests per second per log (429 above)
    burst = 40
    log_format = "text"             # or "json": one object per line, with the request id
    access_log = false              # one line per HTTP request
    header_timeout = 10.0           # seconds for a request's headers (idle, slowloris: closed)
    max_connections_per_client = 0  # open connections one address may hold (0: no cap)
    # optional: HTTPS (re-read on SIGHUP), and who may call add-checkpoint
    # tls_cert_file = "witness.crt"
    # tls_key_file = "witness.tls.key"
    # tls_client_ca_file = "logs-ca.crt"          # logs show a certificate from this CA, or
    # add_checkpoint_tokens_file = "logs.tokens"  # a token (`tlog token add`)

    [[log]]
    origin = "log.example.com/attest1"
    keys = ["log.example.com/attest1+4f2a01c3+AQ..."]
    # or keys_file = "log.vkey": one verifier key per line (origin: the keys' name)
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
from client.envconfig import env_settings
from client.errors import MalformedError
from client.keyfile import vkey_lines
from client.note import ALG_COSIGNATURE_V1, Verifier, parse_vkey
from client.tls import ServerTLS

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
    log_format: str = "text"
    access_log: bool = False
    logs: dict[str, LogEntry] = field(default_factory=dict)
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    add_checkpoint_tokens_file: str = ""
    header_timeout: float = 10.0
    max_connections_per_client: int = 0

    def server_tls(self) -> ServerTLS | None:
        """The files HTTPS is served from (None: plain HTTP)."""
        if not self.tls_cert_file:
            return None
        return ServerTLS(self.tls_cert_file, self.tls_key_file, self.tls_client_ca_file)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


_WITNESS_KEYS = {"key_file": str, "data_dir": str, "listen": str, "rate_per_log": (int, float),
                 "burst": int, "log_format": str, "access_log": bool, "tls_cert_file": str,
                 "tls_key_file": str, "tls_client_ca_file": str, "add_checkpoint_tokens_file": str,
                 "header_timeout": (int, float), "max_connections_per_client": int}
FILE_KEYS = ("tls_cert_file", "tls_key_file", "tls_client_ca_file", "add_checkpoint_tokens_file")
_LOG_KEYS = {"origin": str, "keys": list, "keys_file": str, "start_size": int, "start_root": str}


def read_keys_file(path: Path, where: str) -> list[str]:
    try:
        return vkey_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise WitnessConfigError(f"{where}: cannot read {path}: {exc}") from exc


def _typed(table: dict[str, Any], allowed: dict[str, Any], where: str) -> None:
    for key, value in table.items():
        want = allowed.get(key)
        if want is None:
            raise WitnessConfigError(f"{where}: unknown key {key!r}")
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise WitnessConfigError(f"{where}.{key}: wrong type {type(value).__name__}")


def parse_log(doc: dict[str, Any], where: str = "log", base: Path | None = None) -> LogEntry:
    _typed(doc, _LOG_KEYS, where)
    listed = list(doc.get("keys", []))
    if "keys_file" in doc:
        if listed:
            raise WitnessConfigError(f"{where}: keys and keys_file do not go together")
        listed = read_keys_file((base or Path.cwd()) / doc["keys_file"], f"{where}.keys_file")
        if not listed:
            raise WitnessConfigError(f"{where}.keys_file: holds no key")
    origin = doc.get("origin")
    if origin is None and "keys_file" in doc:
        try:
            origin = parse_vkey(listed[0]).name  # the log's keys are named after its origin
        except MalformedError as exc:
            raise WitnessConfigError(f"{where}.keys_file: {exc}") from exc
    if not origin or "\n" in origin:
        raise WitnessConfigError(f"{where}.origin: required, one line")
    keys: list[Verifier] = []
    for i, k in enumerate(listed):
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
    table.update(env_settings(os.environ if env is None else env, ENV_PREFIX, _WITNESS_KEYS,
                              WitnessConfigError))
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
    header_timeout = float(table.get("header_timeout", 10.0))
    per_client = table.get("max_connections_per_client", 0)
    if not 0 < header_timeout <= 3600:
        raise WitnessConfigError("witness.header_timeout: seconds, more than 0 and at most 3600")
    if not 0 <= per_client <= 1_000_000:
        raise WitnessConfigError("witness.max_connections_per_client: 0 (no cap) or a positive count")
    log_format = table.get("log_format", "text")
    if log_format not in ("text", "json"):
        raise WitnessConfigError(f"witness.log_format: expected text or json, got {log_format!r}")
    logs: dict[str, LogEntry] = {}
    entries = doc.get("log", [])
    if not isinstance(entries, list) or len(entries) > MAX_LOGS:
        raise WitnessConfigError("log: must be an array of tables ([[log]])")
    for i, entry in enumerate(entries):
        log = parse_log(entry, f"log[{i}]", base)
        if log.origin in logs:
            raise WitnessConfigError(f"log[{i}].origin: {log.origin!r} is listed twice")
        logs[log.origin] = log
    files = {k: str(base / table[k]) if table.get(k) else "" for k in FILE_KEYS}
    if bool(files["tls_cert_file"]) != bool(files["tls_key_file"]):
        raise WitnessConfigError("witness.tls_cert_file and tls_key_file go together")
    if files["tls_client_ca_file"] and not files["tls_cert_file"]:
        raise WitnessConfigError("witness.tls_client_ca_file: needs tls_cert_file and tls_key_file")
    return WitnessConfig(
        key_file=base / table.get("key_file", "witness.key"),
        data_dir=base / table.get("data_dir", "witness-data"),
        listen=listen, rate_per_log=rate, burst=burst, log_format=log_format,
        access_log=table.get("access_log", False), logs=logs, header_timeout=header_timeout,
        max_connections_per_client=per_client, **files)
