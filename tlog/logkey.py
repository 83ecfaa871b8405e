"""The log's signing key at start-up, for either storage: which origin a log is served as, and
never a new key for a log that already exists."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from client.keyfile import KeyFileError, load_or_create, read_key
from tlog.config import ConfigError


def open_log_key(key_path: Path, wanted: str, stored: str | None, where: str) -> tuple[Any, bool]:
    """(signer, whether the key was created). The origin is the configured one, else the
    stored log's, else the key's, else a new random one; `where` names the storage holding
    `stored` in messages."""
    existing = read_key(key_path) if key_path.exists() else None
    origin = (wanted or stored or (existing.name if existing else "")
              or f"localhost/tlog-{secrets.token_hex(4)}")
    if stored is not None and stored != origin:
        raise ConfigError(f"{where} holds log {stored!r}; refusing to serve it as {origin!r}")
    if stored is not None and existing is None:
        # A new key would sign checkpoints nobody trusts: never make one for an old log.
        raise KeyFileError(f"{key_path} is missing but {where} already holds log {stored!r}; "
                           "restore the log's key file")
    signer, created = load_or_create(key_path, origin)
    if signer.name != origin:
        raise ConfigError(f"{key_path} is a key for {signer.name!r}, not {origin!r}")
    return signer, created
