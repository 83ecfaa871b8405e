"""The Sigstore TrustedRoot and SigningConfig that `tlog serve` writes beside the client
policy, and that the workers then serve (public data, mode 0644).

Written at each start, like the client policy: the URL may change, and the TSA's chain is
read (from `tsa_chain_file`, or from the TSA itself) once here rather than in every worker.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from cryptography import x509

from client import sigstore_trust
from client.errors import MalformedError
from client.files import write_atomically
from client.note import Ed25519Verifier, parse_vkey
from client.timestamp import load_chain
from tlog.config import ConfigError, ServeConfig

TRUSTED_ROOT_FILE = "sigstore-trusted-root.json"
SIGNING_CONFIG_FILE = "sigstore-signing-config.json"
TSA_FETCH_TIMEOUT = 5.0


def tsa_chain(config: ServeConfig) -> list[x509.Certificate]:
    """The TSA's chain, signing certificate first; none without a TSA."""
    if not config.tsa_url:
        return []
    try:
        if config.tsa_chain_file:
            pem = Path(config.tsa_chain_file).read_bytes()
        else:
            url = config.tsa_url.rstrip("/") + "/api/v1/timestamp/certchain"
            resp = httpx.get(url, timeout=TSA_FETCH_TIMEOUT)
            resp.raise_for_status()
            pem = resp.content
        return load_chain([pem])
    except (OSError, httpx.HTTPError, MalformedError, ValueError) as exc:
        raise ConfigError(f"cannot read the TSA's certificate chain: {exc}") from exc


def documents(config: ServeConfig, origin: str, vkeys: list[str], url: str,
              since: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """(TrustedRoot, SigningConfig) of this log: its Ed25519 checkpoint keys (each a tlog
    entry with its own log ID; during a rotation both) and its TSA."""
    public = config.public_url or url
    tlogs = [sigstore_trust.tlog_entry(v, origin, public, since)
             for v in map(parse_vkey, vkeys) if isinstance(v, Ed25519Verifier)]
    chain = tsa_chain(config)
    tsas = [sigstore_trust.tsa_entry(chain, config.tsa_url)] if chain else []
    return (sigstore_trust.trusted_root(tlogs, tsas),
            sigstore_trust.signing_config(public, config.tsa_url, origin, since))


def write_sigstore_files(data: Path, config: ServeConfig, origin: str, vkeys: list[str], *,
                         url: str, key_path: Path) -> tuple[Path, Path]:
    """Write both documents into the data dir; the log key's age dates the log's validity."""
    try:
        since = datetime.fromtimestamp(key_path.stat().st_mtime, UTC)
    except OSError:
        since = datetime.fromtimestamp(time.time(), UTC)
    root, signing = documents(config, origin, vkeys, url, since)
    paths = (data / TRUSTED_ROOT_FILE, data / SIGNING_CONFIG_FILE)
    for path, doc in zip(paths, (root, signing), strict=True):
        write_atomically(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n", mode=0o644)
    return paths
