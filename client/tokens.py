"""Submitter tokens for private logs: who may append.

A tokens file holds one line per submitter, `<name> sha256:<hex of SHA-256(token)>`, so the
file (and a backup of it) never holds a usable token. The name lands in metrics, in the
access log and in rate limits. Each worker checks the file's identity (inode, size, mtime)
at most once a second and re-reads it when it changed: adding or revoking a token takes
effect within a second, without a restart. A file that is missing or does not parse lets
no one submit (fail closed), and the error is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import time
from pathlib import Path

from client.errors import MalformedError
from client.files import write_atomically

TOKEN_PREFIX = "tlog_"  # noqa: S105 - a prefix that marks tokens, not a token
MAX_TOKENS_FILE = 1 << 20
MAX_TOKEN = 256
RECHECK_SECONDS = 1.0
HEADER = "# tlog submitter tokens: <name> sha256:<SHA-256 of the token> (tlog token add)\n"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
_LINE = re.compile(r"([A-Za-z0-9._-]{1,64}) sha256:([0-9a-f]{64})\Z")
log = logging.getLogger("tlog.tokens")


def new_token() -> str:
    """A fresh bearer token: 256 random bits, URL-safe, recognisable by its prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_tokens(text: str) -> dict[str, str]:
    """{SHA-256 hex: name} from a tokens file (strict: a line that is not a comment, blank or
    `name sha256:<hex>` is an error, as are repeated names or hashes)."""
    out: dict[str, str] = {}
    names: set[str] = set()
    for n, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            raise MalformedError(f"tokens file line {n}: expected `<name> sha256:<64 hex>`")
        name, digest = m.groups()
        if name in names or digest in out:
            raise MalformedError(f"tokens file line {n}: {name!r} or its hash is listed twice")
        names.add(name)
        out[digest] = name
    return out


def check_token(token: str) -> str:
    """A bearer token as one sends it: one line of at most MAX_TOKEN printable characters."""
    if not token or len(token) > MAX_TOKEN or any(c.isspace() or not c.isprintable() for c in token):
        raise MalformedError(f"a token is one line of 1 to {MAX_TOKEN} printable characters")
    return token


def read_token(path: Path) -> str:
    """The token held in a file (what `tlog token add` printed, saved by its holder), for a
    client or a log calling a witness; surrounding whitespace is ignored."""
    try:
        with path.open("rb") as f:
            raw = f.read(4 * MAX_TOKEN)
        return check_token(raw.decode("utf-8").strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise MalformedError(f"cannot read the token file {path}: {exc}") from exc
    except MalformedError as exc:
        raise MalformedError(f"token file {path}: {exc}") from exc


def read_tokens(path: Path) -> dict[str, str]:
    with path.open("rb") as f:
        raw = f.read(MAX_TOKENS_FILE + 1)
    if len(raw) > MAX_TOKENS_FILE:
        raise MalformedError("tokens file is too large")
    try:
        return parse_tokens(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise MalformedError("tokens file is not UTF-8") from exc


class TokenFile:
    """The tokens file as one worker sees it, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tokens: dict[str, str] = {}
        self._identity: tuple[int, int, int] | None = None
        self._checked = -RECHECK_SECONDS
        self._refresh(time.monotonic())

    def _refresh(self, now: float) -> None:
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if self._identity != (0, 0, 0):
                log.error("tokens file %s cannot be read (%s): no one may submit", self.path, exc.strerror)
            self._tokens, self._identity = {}, (0, 0, 0)
            return
        identity = (st.st_ino, st.st_size, st.st_mtime_ns)
        if identity == self._identity:
            return
        self._identity = identity
        try:
            self._tokens = read_tokens(self.path)
        except (OSError, MalformedError) as exc:
            log.error("tokens file %s: %s: no one may submit until it is mended", self.path, exc)
            self._tokens = {}

    def submitter(self, authorization: str | None, now: float | None = None) -> str | None:
        """The name of the submitter an `Authorization: Bearer <token>` header proves, or None."""
        now = time.monotonic() if now is None else now
        if now - self._checked >= RECHECK_SECONDS:
            self._refresh(now)
        if not authorization or len(authorization) > MAX_TOKEN + 7:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self._tokens.get(token_hash(token.strip()))


def add_token(path: Path, name: str) -> str:
    """Add submitter `name` to the tokens file (created 0600) and return its new token, which
    is shown once and stored only as its hash."""
    if not _NAME.match(name):
        raise MalformedError("a token name is 1-64 of A-Z a-z 0-9 . _ -")
    tokens = read_tokens(path) if path.exists() else {}
    if name in tokens.values():
        raise MalformedError(f"{name!r} already has a token: revoke it first")
    token = new_token()
    text = path.read_text() if path.exists() else HEADER
    write_atomically(path, (text if text.endswith("\n") else text + "\n").encode()
                     + f"{name} sha256:{token_hash(token)}\n".encode(), mode=0o600)
    return token


def revoke_token(path: Path, name: str) -> None:
    """Remove submitter `name`'s line; the workers stop accepting its token within a second."""
    tokens = read_tokens(path)
    if name not in tokens.values():
        raise MalformedError(f"{name!r} has no token in {path}")
    keep = [line for line in path.read_text().split("\n") if not line.startswith(f"{name} ")]
    write_atomically(path, "\n".join(keep).encode(), mode=0o600)
