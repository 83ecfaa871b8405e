"""Backups that cannot fork the log.

`backup` copies the LMDB environment in one read transaction (a consistent snapshot, taken
while the log serves and appends) plus the key and TPM records, into a new 0700 directory,
and writes last a manifest (`tlog-backup.json`: the origin, the tree head, each file's
SHA-256). `restore` checks the manifest before it writes anything: a directory that is not a
whole backup (a live data dir, an interrupted or damaged backup) is refused up front, and the
copy is made beside the target and renamed into place, so a failed restore leaves no target.

A restored copy is older than the log was: serving it and appending would sign a second,
different tree for sizes the world has already seen — a fork. So before a data dir is
served (`tlog serve`) or restored (`tlog restore`), the witnesses are asked for the newest
checkpoint they co-signed for this origin (their read endpoint); a copy smaller than that,
or with another root at the same size, is refused with a clear message. (The witnesses keep
that checkpoint even when the log's state is lost: they are what makes this check possible.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from client import merkle
from client.checkpoint import parse_checkpoint_text
from client.errors import TlogError
from client.files import fsync_dir, write_atomically
from client.http import read_bounded
from client.note import parse_vkey, verify_note
from tlog.storage import LogStore

COPIED_FILES = ("log.key", "tpm.json", "tpm-attestation.json")
DATA_FILE = "data.mdb"
MANIFEST = "tlog-backup.json"
MANIFEST_FORMAT = 1
MAX_MANIFEST = 64 * 1024
_HASH_CHUNK = 1 << 20


class StaleCopyError(Exception):
    """The data dir is older than a checkpoint the witnesses co-signed: serving it would fork."""


class NotABackupError(Exception):
    """The directory is not a whole backup made by `tlog backup`: nothing was written."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def backup(data_dir: Path, out: Path) -> int:
    """Snapshot `data_dir` into `out` (which must not exist); returns the tree size copied."""
    out.mkdir(mode=0o700, parents=False)
    store = LogStore(data_dir, readonly=True)
    try:
        origin = store.origin()
        store.env.copy(str(out), compact=True)  # one read transaction: consistent
    finally:
        store.close()
    copied = LogStore(out, readonly=True)  # the copy's own head: appends may have come meanwhile
    try:
        head = copied.head()
    finally:
        copied.close()
    (out / "lock.mdb").unlink(missing_ok=True)  # opening the copy made one; a backup has none
    files = [DATA_FILE]
    for name in COPIED_FILES:
        src = data_dir / name
        if src.exists():
            shutil.copy2(src, out / name)
            os.chmod(out / name, 0o600)
            files.append(name)
    manifest = {"format": MANIFEST_FORMAT, "origin": origin, "size": head.size,
                "root": head.root.hex(), "files": {n: _sha256_file(out / n) for n in files}}
    # Last, so an interrupted backup has no manifest and restore refuses it.
    write_atomically(out / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n", mode=0o600)
    return head.size


def check_backup(source: Path, *, contents: bool = False) -> dict[str, Any]:
    """The manifest of a whole backup in `source`: every file it lists present and nothing
    else beside them (with `contents`, each file's SHA-256 checked too). Raises
    NotABackupError otherwise; reads only."""
    if not source.is_dir():
        raise NotABackupError(f"{source} is not a directory")
    names = {p.name for p in source.iterdir()}
    if MANIFEST not in names:
        live = sorted(names & {"lock.mdb", "index", "tlog.toml"})
        why = (f"it looks like a live data dir (it has {', '.join(live)}); take a backup of it with "
               f"`tlog backup --data-dir {source} --out DIR` and restore that") if live else \
            "an interrupted backup, or one made by a tlog without manifests; take a new backup"
        raise NotABackupError(f"{source} is not a backup made by `tlog backup` (no {MANIFEST}): {why}")
    try:
        with (source / MANIFEST).open("rb") as f:
            raw = f.read(MAX_MANIFEST + 1)
        doc = json.loads(raw) if len(raw) <= MAX_MANIFEST else None
    except (OSError, ValueError) as exc:
        raise NotABackupError(f"{source / MANIFEST} cannot be read: {exc}") from exc
    files = doc.get("files") if isinstance(doc, dict) else None
    if not (isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT and isinstance(files, dict)
            and DATA_FILE in files and set(files) <= {DATA_FILE, *COPIED_FILES}
            and all(isinstance(v, str) and len(v) == 64 for v in files.values())
            and isinstance(doc.get("origin"), str) and isinstance(doc.get("size"), int)):
        raise NotABackupError(f"{source / MANIFEST} is not a tlog backup manifest (format {MANIFEST_FORMAT})")
    extra = sorted(names - set(files) - {MANIFEST})
    if extra:
        raise NotABackupError(f"{source} holds files no backup has ({', '.join(extra)}): not a backup "
                              "made by `tlog backup`, or one changed since")
    for name, digest in files.items():
        path = source / name
        if not path.is_file() or path.is_symlink():
            raise NotABackupError(f"{path} is missing: the backup is incomplete")
        if contents and _sha256_file(path) != digest:
            raise _damaged(path)
    return doc


def _damaged(path: Path) -> NotABackupError:
    return NotABackupError(f"{path} differs from the backup's manifest: the backup is damaged")


def _copy_hashed(src: Path, dst: Path) -> str:
    """Copy a file (created 0600) and return the SHA-256 of what was copied: the source is
    read once, for both."""
    h = hashlib.sha256()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with src.open("rb") as f, os.fdopen(fd, "wb") as out:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return h.hexdigest()


def restore(source: Path, target: Path, check: Callable[[Path], None],
            manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Copy the backup in `source` to `target` (which must not exist): its manifest checked
    first, its files copied into a directory beside the target and checked against the
    manifest as they are copied, the copy checked (`check`: the witnesses), then renamed into
    place. On any failure no target exists. Returns the manifest (`manifest`: the one
    `check_backup` already gave for `source`)."""
    if target.exists():
        raise NotABackupError(f"{target} exists; restore into a new directory")
    doc = manifest if manifest is not None else check_backup(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
    try:
        for name, digest in doc["files"].items():
            if _copy_hashed(source / name, staging / name) != digest:
                raise _damaged(source / name)
        check(staging)
        (staging / "lock.mdb").unlink(missing_ok=True)  # made by opening the copy
        os.rename(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return doc


@dataclass
class WitnessView:
    """What the witnesses say of a log: the largest checkpoint any co-signed (size, root,
    witness URL), those that have co-signed nothing for it, and those that could not say."""

    best: tuple[int, bytes, str] | None = None
    empty: list[str] = field(default_factory=list)  # URLs that answered 404
    unanswered: list[tuple[str, str]] = field(default_factory=list)  # (URL, why)


def witnessed_size(witnesses: tuple[tuple[str, str], ...], origin: str, log_vkeys: list[str],
                   timeout: float = 5.0, verify: Any = True) -> WitnessView:
    """Ask each witness for its latest checkpoint of `origin`, verified with the log's keys.
    `verify` is httpx's (the log's `witness_ca_file` and client certificate), so that a
    witness on a private CA is asked, not silently skipped."""
    verifiers = [parse_vkey(v) for v in log_vkeys]
    view = WitnessView()
    digest = hashlib.sha256(origin.encode()).hexdigest()
    with httpx.Client(timeout=timeout, verify=verify) as http:
        for url, _vkey in witnesses:
            try:
                status, body = _get_capped(http, f"{url}/{digest}/checkpoint", timeout)
                if status == 404:
                    view.empty.append(url)
                    continue
                if status != 200:
                    view.unanswered.append((url, f"HTTP {status}"))
                    continue
                cp = parse_checkpoint_text(verify_note(body, verifiers).text)  # type: ignore[arg-type]
            except (httpx.HTTPError, TlogError) as exc:
                view.unanswered.append((url, str(exc) or type(exc).__name__))
                continue
            if cp.origin != origin:
                view.unanswered.append((url, f"its checkpoint is for {cp.origin!r}"))
            elif view.best is None or cp.size > view.best[0]:
                view.best = (cp.size, cp.root, url)
    return view


def _get_capped(http: httpx.Client, url: str, deadline: float, limit: int = 64 * 1024) -> tuple[int, bytes]:
    """GET with a total deadline and a size cap: a slow or hostile witness must not hold up
    the log's start."""
    with http.stream("GET", url) as resp:
        return resp.status_code, read_bounded(resp, limit, deadline, f"witness {url}")


def check_not_stale(data_dir: Path, witnesses: tuple[tuple[str, str], ...], log_vkeys: list[str],
                    verify: Any = True, *, need_answer: bool = False) -> list[tuple[str, str]]:
    """Raise StaleCopyError if a witness co-signed a checkpoint this data dir cannot extend,
    or, with `need_answer` (a restore), if no witness gave a checkpoint and some could not
    be asked. Returns the witnesses that could not be asked, and why."""
    if not witnesses:
        return []
    store = LogStore(data_dir, readonly=True)
    try:
        origin, head = store.origin(), store.head()
        view = witnessed_size(witnesses, origin, log_vkeys, verify=verify)
        if view.best is None:
            if need_answer and view.unanswered:
                raise StaleCopyError(
                    "no witness gave a checkpoint to check this copy against ("
                    + "; ".join(f"{url}: {why}" for url, why in view.unanswered)
                    + "); restoring it unchecked could fork the log. Make the witnesses reachable, "
                    "or pass --unchecked if you know this is the newest copy")
            return view.unanswered
        size, root, url = view.best
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
        return view.unanswered
    finally:
        store.close()
