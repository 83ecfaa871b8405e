"""Gauges read from the data dir at scrape time: the tree, its checkpoints, LMDB, fsck.

Read from LMDB (and `fsck.json`) rather than kept in memory, so every worker reports the
same figures and they survive restarts; alert rules use `max by (instance)` over workers.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import orjson

from client.errors import MalformedError
from client.metrics import Gauge, Labels, Registry
from client.note import parse_note, parse_vkey
from tlog.config import ServeConfig
from tlog.storage import LogStore

FSCK_STATUS = "fsck.json"


def cosigned_age(store: LogStore, witness_ids: set[tuple[str, int]], quorum: int,
                 now: float | None = None) -> float:
    """Seconds since the k-th newest configured witness cosigned the published checkpoint:
    what a client's `max_age_seconds` compares (NaN before any cosigned checkpoint)."""
    cosigned = store.cosigned()
    if cosigned is None or quorum <= 0:
        return math.nan
    try:
        sigs = parse_note(cosigned[1]).signatures
    except MalformedError:
        return math.nan
    stamps = sorted((int.from_bytes(s.sig[:8], "big") for s in sigs
                     if (s.name, s.key_id) in witness_ids and len(s.sig) == 72), reverse=True)
    if len(stamps) < quorum:
        return math.nan
    return (time.time() if now is None else now) - stamps[quorum - 1]


def free_bytes(path: Path) -> float:
    try:
        st = os.statvfs(path)
    except OSError:
        return math.nan
    return float(st.f_bavail * st.f_frsize)


def read_fsck_status(data_dir: Path) -> dict[str, float]:
    """The last `tlog fsck` run on this data dir: {"ok", "time", "size"}, or {} if none."""
    try:
        doc = orjson.loads((data_dir / FSCK_STATUS).read_bytes())
        return {"ok": float(bool(doc["ok"])), "time": float(doc["time"]), "size": float(doc["size"])}
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return {}


def add_store_gauges(registry: Registry, store: LogStore, config: ServeConfig) -> None:
    data = Path(config.data_dir)

    def checkpoint_age() -> float:
        signed = store.checkpoint_time()
        return time.time() - signed if signed is not None else math.nan

    def fsck(field: str) -> dict[Labels, float]:
        status = read_fsck_status(data)
        return {(): status[field]} if status else {}

    def cosigned_size() -> float:
        cosigned = store.cosigned()
        return float(cosigned[0]) if cosigned else 0.0

    add = registry.add
    add(Gauge("tlog_tree_size", "Entries in the log (tree size)", lambda: store.head().size))
    add(Gauge("tlog_checkpoint_age_seconds",
              "Seconds since the log signed its current checkpoint (grows while the log is idle)",
              checkpoint_age))
    add(Gauge("tlog_lmdb_used_bytes", "LMDB pages in use, in bytes", lambda: store.stat()["used"]))
    add(Gauge("tlog_lmdb_map_bytes", "LMDB map size (the most the database can grow to), in bytes",
              lambda: store.stat()["map_size"]))
    add(Gauge("tlog_data_dir_free_bytes", "Free bytes on the data dir's filesystem (for this user)",
              lambda: free_bytes(data)))
    add(Gauge("tlog_fsck_ok", "1 if the last tlog fsck passed, 0 if it failed", lambda: fsck("ok")))
    add(Gauge("tlog_fsck_last_run_timestamp_seconds", "Unix time of the last tlog fsck",
              lambda: fsck("time")))
    add(Gauge("tlog_fsck_tree_size", "Tree size the last tlog fsck checked", lambda: fsck("size")))
    if config.witnesses:
        ids = {(v.name, v.key_id) for v in (parse_vkey(k) for _, k in config.witnesses)}
        add(Gauge("tlog_cosigned_tree_size", "Tree size of the newest checkpoint published with "
                  "its witness quorum", cosigned_size))
        add(Gauge("tlog_cosigned_checkpoint_age_seconds",
                  "Seconds since the k-th newest witness cosignature on the published checkpoint "
                  "(refreshed every minute while witnesses answer)",
                  lambda: cosigned_age(store, ids, config.quorum)))
