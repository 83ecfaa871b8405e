"""The sequencer process: the log's single writer and its one checkpoint publisher.

HTTP workers parse and check submissions, then send entries here over a Unix socket. This
one process, with one thread, takes everything that has arrived, integrates it in one LMDB
write transaction that fsyncs and signs one checkpoint, and only then answers the workers,
who answer their submitters. While a batch commits, the next one queues up in the sockets,
so commits group naturally under load; `max_delay` adds a short wait only when idle.

Why a process of its own: py-lmdb releases the GIL around every get and put, so a writer
thread inside a busy HTTP worker loses the GIL on each call and spends most of its time
waiting to get it back; and several workers each writing would take turns on LMDB's write
lock, each re-reading the tree edge the other just moved. One writer avoids both, and it is
the log's one publisher: the only place that signs checkpoints (however many workers
accept entries). A lock file makes sure a data directory never has two.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import selectors
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lmdb
import orjson

from client.keyfile import read_key
from client.logs import setup_logging
from client.metrics import Counter, Gauge, Histogram, Registry
from client.note import parse_note, sign_note
from tlog.index import SearchIndex
from tlog.indexer import IndexerChild
from tlog.storage import LogFrozenError, LogStore
from tlog.wire import FrameError, FrameReader, encode
from tlog.witnessing import WitnessAccess, WitnessCollector

log = logging.getLogger("tlog.sequencer")


@dataclass(frozen=True)
class SequencerConfig:
    data_dir: str
    socket_path: str
    max_batch: int = 1024
    max_delay: float = 0.0
    map_size: int = 64 << 30
    witnesses: tuple[tuple[str, str], ...] = ()
    witness_quorum: int = 0
    witness_timeout: float = 5.0
    witness_interval: float = 1.0
    witness_access: dict[str, Any] = field(default_factory=dict)  # WitnessAccess, as JSON
    tpm: str = ""
    tpm_timeout: float = 10.0
    log_format: str = "text"
    rotation_key_file: str = ""


@dataclass
class _Conn:
    sock: socket.socket
    reader: FrameReader = field(default_factory=FrameReader)
    out: bytearray = field(default_factory=bytearray)


class SequencerProcess:
    def __init__(self, config: SequencerConfig) -> None:
        self.config = config
        data = Path(config.data_dir)
        self._lock = open(data / "sequencer.lock", "a+")  # noqa: SIM115 - held for the process life
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"tlog: another sequencer already runs on {data}") from None
        self.store = LogStore(data, map_size=config.map_size)
        if self.store.legacy_search_keys():
            index = SearchIndex(data, map_size=config.map_size)
            try:
                moved = index.adopt_legacy(self.store)
            finally:
                index.close()
            self.store.drop_legacy_search()
            log.info("moved %d search keys from inside the log (older versions) to %s",
                     moved, data / "index")
        self.indexer = IndexerChild(str(data), config.map_size, config.log_format)
        signer = read_key(data / "log.key")
        signers: list[Any] = [signer]
        if config.rotation_key_file:  # checked by `tlog serve`: same origin, another key
            signers.append(read_key(Path(config.rotation_key_file)))
        self.tpm_signer: Any = None
        if config.tpm:  # checked by `tlog serve` before we start: the recorded key, reachable
            from client.note import parse_vkey
            from tlog.tpm import open_signer

            record = orjson.loads((data / "tpm.json").read_bytes())
            self.tpm_signer = open_signer(signer.name, config.tpm, handle=int(record["handle"]),
                                          expected_spki=parse_vkey(record["vkey"]).spki_der,
                                          timeout=config.tpm_timeout)
            signers.append(self.tpm_signer)
        self.sign = lambda text: sign_note(text, signers)
        self._resign_if_keys_changed(signers)
        # Why appends cannot be taken, while they cannot, by kind: "signer" (the TPM does not
        # sign) and "disk_full" (the data dir's filesystem is full). Workers are told at once
        # ("h" frames) and answer /healthz from it; a probe clears each when it is over.
        self.problems: dict[str, str] = {}
        self._last_probe = 0.0
        self._probing = False  # a signer probe thread is running
        self._probe_result: str | None = None  # set by the probe thread, read by this loop
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}
        self.pending: list[tuple[_Conn, int, bytes, bytes | None]] = []
        self.first_at = 0.0
        self.running = True
        reg = self.registry = Registry()
        self.m_entries = reg.add(Counter("tlog_entries_appended_total", "Entries appended"))
        self.m_dupes = reg.add(Counter("tlog_entries_duplicate_total",
                                       "Submissions that found their entry already in the log"))
        self.m_batch = reg.add(Histogram("tlog_batch_size", "Entries per integrated batch",
                                         (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)))
        self.m_integrate = reg.add(Histogram(
            "tlog_integrate_seconds", "Time to append, fsync and sign one batch",
            (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)))
        self.m_fsync = reg.add(Histogram(
            "tlog_fsync_seconds", "LMDB commit of one batch: page writes and both fsyncs",
            (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)))
        self.m_failures = reg.add(Counter("tlog_integrate_failures_total",
                                          "Batches that failed to commit (nothing written)"))
        reg.add(Gauge("tlog_signer_up", "1 if every checkpoint key can sign (0: TPM unreachable)",
                      lambda: 0.0 if "signer" in self.problems else 1.0))
        reg.add(Gauge("tlog_storage_writable", "1 if the data dir takes writes (0: its disk is full)",
                      lambda: 0.0 if "disk_full" in self.problems else 1.0))
        # Witnessing: a thread pushes checkpoints to the witnesses; when a quorum cosigned one,
        # it wakes this loop through a socket pair and the loop tells every worker.
        self.collector: WitnessCollector | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._cosigned: tuple[int, bytes] | None = None
        self._cosigned_lock = threading.Lock()
        if config.witnesses:
            self.collector = WitnessCollector(
                self.store, [tuple(w) for w in config.witnesses],  # type: ignore[misc]
                config.witness_quorum or len(config.witnesses), timeout=config.witness_timeout,
                interval=config.witness_interval, registry=reg, on_publish=self._published,
                access=WitnessAccess.of(config.witness_access))

    def _resign_if_keys_changed(self, signers: list[Any]) -> None:
        """A key added (rotation, TPM) or retired since the current checkpoint was signed: sign
        the same tree head with today's keys, so an idle or frozen log serves (and witnesses
        refresh) a checkpoint its clients' new keys verify."""
        have = {(s.name, s.key_id) for s in parse_note(self.store.checkpoint()).signatures}
        if have == {(s.name, s.key_id) for s in signers}:
            return
        try:
            self.store.resign(self.sign)
            log.info("checkpoint keys changed: re-signed the current checkpoint")
        except Exception as exc:  # e.g. the TPM is down: the next batch signs with every key
            log.error("could not re-sign the current checkpoint: %s", exc)

    def _published(self, size: int, note: bytes) -> None:
        """Called from the collector thread: hand the cosigned checkpoint to the loop."""
        with self._cosigned_lock:
            self._cosigned = (size, note)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"w")

    def _broadcast_cosigned(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_r.recv(4096)
        with self._cosigned_lock:
            probed, self._probe_result = self._probe_result, None
        if probed is not None:
            self._set_problem("signer", probed)
        with self._cosigned_lock:
            cosigned, self._cosigned = self._cosigned, None
        if cosigned is not None:
            frame = encode(["w", cosigned[0], cosigned[1]])
            for conn in list(self.conns.values()):
                self._send(conn, frame)

    def serve(self) -> None:
        path = self.config.socket_path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # stale from a crashed run; the lock file proves no one else is here
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)
        try:
            listener.bind(path)
        finally:
            os.umask(old_umask)
        listener.listen(64)
        listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, None)
        # Lifeline: stdin is a pipe whose write end only `tlog serve` holds. The sequencer
        # ignores SIGTERM/SIGINT/SIGHUP sent to the whole process group, so it keeps
        # committing for the workers while they drain in-flight requests (or, for SIGHUP,
        # while `tlog serve` reloads), and stops when the pipe closes: when `tlog serve`
        # stops it, or dies in any way (even SIGKILL), so it is never orphaned holding the
        # data dir's lock.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        self.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "lifeline")
        self.sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        if self.collector is not None:
            self.collector.start()
            head, note = self.store.head_and_checkpoint()
            self.collector.offer(head.size, note)
        self.indexer.start()
        print("tlog-sequencer: ready", flush=True)
        try:
            while self.running or self.pending:
                timeout = 0.5
                if self.pending:
                    timeout = max(0.0, self.first_at + self.config.max_delay - time.monotonic())
                for key, mask in self.sel.select(timeout):
                    if key.data == "wake":
                        self._broadcast_cosigned()
                    elif key.data == "lifeline":
                        if not os.read(sys.stdin.fileno(), 4096):
                            self._stop()
                            self.sel.unregister(sys.stdin.fileno())
                    elif key.data is None:
                        self._accept(listener)
                    else:
                        conn: _Conn = key.data
                        if mask & selectors.EVENT_READ:
                            self._read(conn)
                        if mask & selectors.EVENT_WRITE and conn.sock.fileno() in self.conns:
                            self._flush(conn)
                self._probe()
                if self.indexer.check():  # a killed reader leaves its LMDB slot behind
                    self.store.env.reader_check()
                if self.pending and (len(self.pending) >= self.config.max_batch
                                     or time.monotonic() >= self.first_at + self.config.max_delay
                                     or not self.running):
                    self._commit()
        finally:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            if self.collector is not None:
                self.collector.stop()
            self.indexer.stop()
            self.store.close()

    def _stop(self, *_: Any) -> None:
        self.running = False

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        conn = _Conn(sock)
        self.conns[sock.fileno()] = conn
        self.sel.register(sock, selectors.EVENT_READ, conn)
        if self.problems:
            self._send(conn, encode(["h", self.problems]))

    def _drop(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd in self.conns:
            del self.conns[fd]
            self.sel.unregister(conn.sock)
        conn.sock.close()
        self.pending = [p for p in self.pending if p[0] is not conn]

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        try:
            messages = conn.reader.feed(data)
        except FrameError as exc:
            log.error("dropping a worker connection: %s", exc)
            self._drop(conn)
            return
        for msg in messages:
            kind = msg[0]
            if kind == "a" and len(msg) == 4 and isinstance(msg[2], bytes) \
                    and (msg[3] is None or isinstance(msg[3], bytes)):
                if not self.pending:
                    self.first_at = time.monotonic()
                self.pending.append((conn, msg[1], msg[2], msg[3]))
            elif kind == "s" and len(msg) == 2:
                self._send(conn, encode(["s", msg[1], self.registry.render().decode()]))
            else:
                log.error("dropping a worker connection: unknown message %r", kind)
                self._drop(conn)
                return

    def _commit(self) -> None:
        batch = self.pending[: self.config.max_batch]
        del self.pending[: len(batch)]
        refused = self._refusal()
        if refused is not None:  # fail fast: a probe says when appends can be taken again
            for conn, req_id, _, _ in batch:
                self._send(conn, encode(["e", req_id, *refused]))
            return
        # Entries that arrived while this batch committed are answered by the next commit
        # without waiting out max_delay: they already waited.
        self.first_at = time.monotonic() - self.config.max_delay
        t0 = time.perf_counter()
        try:
            result = self.store.append([p[2] for p in batch], self.sign,
                                       blobs=[p[3] for p in batch])
        except LogFrozenError as exc:  # a retired shard: the workers refuse these already
            for conn, req_id, _, _ in batch:
                self._send(conn, encode(["e", req_id, "log_frozen", str(exc)]))
            return
        except Exception as exc:  # nothing was written: LMDB aborted the transaction
            self.m_failures.inc()
            code, message = self._failed(exc, batch)
            for conn, req_id, _, _ in batch:
                self._send(conn, encode(["e", req_id, code, message]))
            return
        self.m_integrate.observe(time.perf_counter() - t0)
        if result.commit_seconds:
            self.m_fsync.observe(result.commit_seconds)
        self.m_batch.observe(len(batch))
        created = sum(result.created)
        self.m_entries.inc(created)
        self.m_dupes.inc(len(batch) - created)
        per_conn: dict[int, tuple[_Conn, list[list[Any]]]] = {}
        for (conn, req_id, _, _), index, new in zip(batch, result.indexes, result.created,
                                                     strict=True):
            per_conn.setdefault(id(conn), (conn, []))[1].append([req_id, index, new])
        for conn, answers in per_conn.values():
            self._send(conn, encode(["b", result.head.size, result.checkpoint, answers]))
        if created:
            self.indexer.notify()
        if self.collector is not None and created:
            self.collector.offer(result.head.size, result.checkpoint)

    def _failed(self, exc: Exception, batch: list[tuple[_Conn, int, bytes, bytes | None]]
                ) -> tuple[str, str]:
        """(code, message) for a batch that did not commit; a TPM that cannot sign or a full
        disk also becomes a problem, so later batches fail fast until a probe clears it."""
        if _is_tpm_error(exc):
            self._set_problem("signer", str(exc))
            log.error("batch of %d entries not committed: %s", len(batch), exc)
            return "signer_unavailable", f"checkpoints cannot be signed: {exc}"
        if isinstance(exc, lmdb.MapFullError):
            log.error("batch of %d entries not committed: %s", len(batch), exc)
            return "log_full", f"the log could not commit: {exc}"
        if isinstance(exc, lmdb.Error) and disk_is_full(self.store.path, _batch_bytes(batch)):
            self._set_problem("disk_full", f"the data dir's filesystem is full ({exc})")
            log.error("batch of %d entries not committed: the disk is full (%s)", len(batch), exc)
            refused = self._refusal()
            assert refused is not None
            return refused
        log.exception("batch of %d entries failed to commit", len(batch))
        return "storage_error", f"the log could not commit: {exc}"

    def _refusal(self) -> tuple[str, str] | None:
        """(code, message) for a batch that cannot be taken now, or None."""
        if "disk_full" in self.problems:
            return "disk_full", f"the log takes no entries until space is freed: {self.problems['disk_full']}"
        if "signer" in self.problems:
            return "signer_unavailable", f"checkpoints cannot be signed: {self.problems['signer']}"
        return None

    def _set_problem(self, kind: str, problem: str) -> None:
        """Record (or, with "", clear) why appends cannot be taken, and tell every worker
        (their /healthz says so)."""
        if problem == self.problems.get(kind, ""):
            return
        if problem:
            self.problems[kind] = problem
        else:
            del self.problems[kind]
            log.info("%s", {"signer": "the TPM signs again",
                            "disk_full": "the data dir takes writes again"}.get(kind, kind))
        for conn in list(self.conns.values()):
            self._send(conn, encode(["h", self.problems]))

    def _probe(self) -> None:
        """While appends are refused, about once a second, check whether each reason is over
        (each probe clears its own problem); batches meanwhile fail fast (`_refusal`)."""
        if not self.problems or time.monotonic() - self._last_probe < PROBE_INTERVAL:
            return
        self._last_probe = time.monotonic()
        if "signer" in self.problems:
            self._probe_signer()
        if "disk_full" in self.problems:
            self._probe_storage()

    def _probe_storage(self) -> None:
        """Free space above the margin and a tiny real write transaction that commits mean
        appends can resume. Inline: on a local disk both take milliseconds, and this loop
        takes no appends meanwhile anyway."""
        if disk_is_full(self.store.path, 0):
            return
        try:
            self.store.probe_write()
        except lmdb.Error as exc:
            log.warning("the data dir still takes no writes: %s", exc)
            return
        self._set_problem("disk_full", "")

    def _probe_signer(self) -> None:
        """A background thread tries the TPM (a signature checked against the log's key);
        this loop never waits on a hung TPM for it."""
        if self._probing:
            return
        self._probing = True

        def probe() -> None:
            try:
                self.tpm_signer.probe()
                result = ""
            except Exception as exc:
                result = str(exc)
            with self._cosigned_lock:
                self._probe_result, self._probing = result, False
            with contextlib.suppress(OSError):
                self._wake_w.send(b"p")

        threading.Thread(target=probe, name="tpm-probe", daemon=True).start()

    def _send(self, conn: _Conn, frame: bytes) -> None:
        if conn.sock.fileno() not in self.conns:
            return
        conn.out += frame
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            n = conn.sock.send(conn.out)
        except BlockingIOError:
            n = 0
        except OSError:
            self._drop(conn)
            return
        del conn.out[:n]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        self.sel.modify(conn.sock, events, conn)


PROBE_INTERVAL = 1.0
"""Seconds between probes while appends are refused: appends resume about this soon after
the cause is over, and a probe costs little (one statvfs and one tiny commit, or one TPM
signature)."""

DISK_MARGIN = 4 << 20
"""Free bytes (statvfs f_bavail: what an unprivileged process may still use; the root
reserve does not count) below which a failed commit counts as a full disk. LMDB gives no
errno (a full disk reads `mdb_txn_commit: Input/output error`), so the filesystem is asked.
A commit writes every B-tree page it dirties to a fresh page: a few MiB at most for a full
batch of small entries. A commit that failed with less than that free (or than twice the
batch's bytes, for large envelopes) failed for want of space; with more free it is another
I/O error, reported as storage_error. 4 MiB is nothing on a real volume, so a probe that
needs this much free before appends resume never holds a log back for long."""


def disk_is_full(path: Path, batch_bytes: int) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < max(DISK_MARGIN, 2 * batch_bytes)


def _batch_bytes(batch: list[tuple[Any, int, bytes, bytes | None]]) -> int:
    return sum(len(p[2]) + len(p[3] or b"") for p in batch)


def _is_tpm_error(exc: BaseException) -> bool:
    return type(exc).__name__ == "TpmError" and type(exc).__module__ == "tlog.tpm"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tlog-sequencer")
    p.add_argument("--config-json", required=True)
    args = p.parse_args(argv)
    config = SequencerConfig(**orjson.loads(args.config_json))
    setup_logging(config.log_format, "tlog-sequencer")
    SequencerProcess(config).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
