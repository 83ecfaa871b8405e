"""Backups that cannot fork the log.

`backup` copies the LMDB environment in one read transaction (a consistent snapshot, taken
while the log serves and appends) plus the key and TPM records, into a new 0700 directory.

A restored copy is older than the log was: serving it and appending would sign a second,
different tree for sizes the world has already seen — a fork. So before a data dir is
served (`tlog serve`) or restored (`tlog restore`), the witnesses are asked for the newest
checkpoint they co-signed for this origin (their read endpoint); a copy smaller than that,
or with another root at the same size, is refused with a clear message. (The witnesses keep
that checkpoint even when the log's state is lost: they are what makes this check possible.)
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import httpx

from client import merkle
from client.checkpoint import parse_checkpoint_text
from client.errors import TlogError
from client.http import read_bounded
from client.note import parse_vkey, verify_note
from tlog.storage import LogStore

COPIED_FILES = ("log.key", "tpm.json", "tpm-attestation.json")


class StaleCopyError(Exception):
    """The data dir is older than a checkpoint the witnesses co-signed: serving it would fork."""


def backup(data_dir: Path, out: Path) -> int:
    """Snapshot `data_dir` into `out` (which must not exist); returns the tree size copied."""
    out.mkdir(mode=0o700, parents=False)
    store = LogStore(data_dir, readonly=True)
    try:
        size = store.head().size
        store.env.copy(str(out), compact=True)  # one read transaction: consistent
    finally:
        store.close()
    for name in COPIED_FILES:
        src = data_dir / name
        if src.exists():
            shutil.copy2(src, out / name)
            os.chmod(out / name, 0o600)
    return size


def witnessed_size(witnesses: tuple[tuple[str, str], ...], origin: str, log_vkeys: list[str],
                   timeout: float = 5.0) -> tuple[int, bytes, str] | None:
    """The largest checkpoint any witness co-signed for `origin` (size, root, witness URL),
    verified with the log's keys; None if no witness answers with one."""
    verifiers = [parse_vkey(v) for v in log_vkeys]
    best: tuple[int, bytes, str] | None = None
    digest = hashlib.sha256(origin.encode()).hexdigest()
    with httpx.Client(timeout=timeout) as http:
        for url, _vkey in witnesses:
            try:
                status, body = _get_capped(http, f"{url}/{digest}/checkpoint", timeout)
                if status != 200:
                    continue
                cp = parse_checkpoint_text(verify_note(body, verifiers).text)  # type: ignore[arg-type]
            except (httpx.HTTPError, TlogError):
                continue
            if cp.origin == origin and (best is None or cp.size > best[0]):
                best = (cp.size, cp.root, url)
    return best


def _get_capped(http: httpx.Client, url: str, deadline: float, limit: int = 64 * 1024) -> tuple[int, bytes]:
    """GET with a total deadline and a size cap: a slow or hostile witness must not hold up
    the log's start."""
    with http.stream("GET", url) as resp:
        return resp.status_code, read_bounded(resp, limit, deadline, f"witness {url}")


def check_not_stale(data_dir: Path, witnesses: tuple[tuple[str, str], ...], log_vkeys: list[str]) -> None:
    """Raise StaleCopyError if a witness co-signed a checkpoint this data dir cannot extend."""
    if not witnesses:
        return
    store = LogStore(data_dir, readonly=True)
    try:
        origin, head = store.origin(), store.head()
        seen = witnessed_size(witnesses, origin, log_vkeys)
        if seen is None:
            return
        size, root, url = seen
        if size > head.size:
            raise StaleCopyError(
                f"{data_dir} holds {head.size} entries, but witness {url} co-signed size {size}: this is "
                "an old copy (a restored backup?); serving it would fork the log. Restore a newer copy, "
                "or freeze this log and start a new one")
        with store.read_txn() as txn:
            ours = merkle.tree_root(size, store.node_reader(txn))
        if ours != root:
            raise StaleCopyError(f"{data_dir} has another tree at size {size} than witness {url} "
                                 "co-signed: it is not this log's history")
    finally:
        store.close()
