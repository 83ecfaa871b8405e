"""`tlog-client monitor`: follow logs, report watched entries once, gossip tree heads.

Per log, a follower polls the latest checkpoint (verified under its trust policy and proven
consistent with the last one it saw), replays the new entries with the full-audit machinery
(every bundle checked against the tiles, the root against the checkpoint) and reports the
entries its watch rules match: one JSON line each, with the entry, its index and an
inclusion proof, written and fsynced before the cursor moves. A reported-through watermark
(and, for a file output, the file itself) makes reports exactly-once across restarts; the
optional webhook gets them at least once (with retries), keyed by origin and index.

Gossip: the monitor serves the newest checkpoint it verified per log, and its evidence, at
`GET /gossip/checkpoints` and `GET /gossip/evidence`; it polls peers' endpoints and
witnesses' `/<sha256(origin)>/checkpoint`. A checkpoint from elsewhere that its own view
cannot be consistent with becomes a split-view evidence file (client.evidence), an alert
line and a webhook call. Evidence a peer found is checked offline and alerted on too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import ssl
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

from client import merkle
from client.attest import parse_leaf, search_keys
from client.audit import full_audit, load_tree, save_tree
from client.checkpoint import Checkpoint
from client.envconfig import env_settings
from client.errors import ConsistencyError, MalformedError, NetworkError, ProofError, TlogError
from client.evidence import key_policy, split_view, to_document, verify_evidence
from client.files import write_atomically
from client.http import read_bounded, redact_url
from client.logclient import LogClient
from client.logs import announcer
from client.metrics import CONTENT_TYPE, LATENCY_BUCKETS, Counter, Gauge, Histogram, Registry
from client.policy import TrustPolicy, load_policy
from client.state import TrustState
from client.tiletree import TileTree
from client.tls import ReloadingContext, ServerTLS, reload_on_sighup
from client.verify import Receipt, VerifiedCheckpoint, verify_checkpoint

log = logging.getLogger("tlog.monitor")
MAX_GOSSIP_BYTES = 4 << 20
MAX_NOTES_PER_SOURCE = 64
GOSSIP_DEADLINE = 30.0  # seconds for one gossip answer
HTTP_TIMEOUT = 30.0  # seconds a gossip client may be silent before its connection is closed
CHUNK = 16384  # entries replayed (and their reports written) before the cursor is saved
MAX_UNPROVEN_KEPT = 10_000  # distinct unproven inconsistencies alerted and remembered
MAX_NOTE_CHARS = 16_384  # of each checkpoint quoted in an alert line


class MonitorConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Watch:
    signers: frozenset[str] = frozenset()
    subjects: frozenset[str] = frozenset()
    predicate_types: frozenset[str] = frozenset()

    def matches(self, leaf: bytes, envelope: bytes | None = None) -> list[str]:
        """The rules (as `field=term`) an entry matches, from its leaf (and, for a Rekor v2
        leaf, the envelope it logs, whose Statement its bytes do not hold)."""
        wanted = {"signer": self.signers, "subject": self.subjects,
                  "predicate_type": self.predicate_types}
        return [f"{f}={t}" for f, t in search_keys(leaf, envelope) if t in wanted[f]]

    def needs_envelope(self, leaf: bytes) -> bool:
        """Whether matching this leaf needs its envelope: a Rekor v2 leaf, watched for
        subjects or predicate types."""
        return leaf[:1] == b"{" and bool(self.subjects or self.predicate_types)


@dataclass(frozen=True)
class LogWatch:
    policy: TrustPolicy
    watch: Watch


@dataclass(frozen=True)
class MonitorConfig:
    state_dir: Path
    logs: tuple[LogWatch, ...]
    listen: str = "127.0.0.1:0"
    poll_interval: float = 1.0
    gossip_interval: float = 2.0
    output: str = "-"
    webhook: str = ""
    peers: tuple[str, ...] = ()
    witnesses: tuple[str, ...] = ()
    peers_file: str = ""  # one peer URL per line, re-read every gossip round
    chunk: int = CHUNK  # entries replayed (and their reports written) per cursor save
    log_format: str = "text"
    tls_cert_file: str = ""  # serve gossip over HTTPS (re-read on SIGHUP)
    tls_key_file: str = ""

    def all_peers(self) -> list[str]:
        peers = list(self.peers)
        if self.peers_file:
            with contextlib.suppress(OSError):
                for line in Path(self.peers_file).read_text().splitlines():
                    url = line.strip()
                    if url.startswith(("http://", "https://")):
                        peers.append(url.rstrip("/"))
        return peers


_MONITOR_KEYS = {"state_dir": str, "listen": str, "poll_interval": (int, float),
                 "gossip_interval": (int, float), "output": str, "webhook": str, "peers": list,
                 "witnesses": list, "peers_file": str, "chunk": int, "log_format": str,
                 "tls_cert_file": str, "tls_key_file": str}
_LOG_KEYS = {"policy": str, "signers": list, "subjects": list, "predicate_types": list}
ENV_PREFIX = "MONITOR_"


def load_monitor_config(path: str | Path, env: dict[str, str] | None = None) -> MonitorConfig:
    """The monitor's TOML file (docs/monitoring.md), then `MONITOR_<KEY>` environment
    variables; relative paths are relative to the file."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise MonitorConfigError(f"cannot read {p}: {exc}") from exc
    base = p.resolve().parent
    for key in set(doc) - {"monitor", "log"}:
        raise MonitorConfigError(f"unknown table {key!r}")
    environ = os.environ if env is None else env
    table = {**doc.get("monitor", {}),
             **env_settings(environ, ENV_PREFIX, _MONITOR_KEYS, MonitorConfigError)}
    for key, value in table.items():
        want = _MONITOR_KEYS.get(key)
        if want is None or not isinstance(value, want) or isinstance(value, bool):
            raise MonitorConfigError(f"monitor.{key}: unknown key or wrong type")
    logs = []
    for i, entry in enumerate(doc.get("log", [])):
        for key, value in entry.items():
            if key not in _LOG_KEYS or not isinstance(value, _LOG_KEYS[key]):
                raise MonitorConfigError(f"log[{i}].{key}: unknown key or wrong type")
        if "policy" not in entry:
            raise MonitorConfigError(f"log[{i}].policy: required (a trust policy file)")
        try:
            policy = load_policy(base / entry["policy"])
        except MalformedError as exc:
            raise MonitorConfigError(f"log[{i}]: {exc}") from exc
        if not policy.url:
            raise MonitorConfigError(f"log[{i}]: the policy needs the log's url")
        lists = {k: entry.get(k, []) for k in ("signers", "subjects", "predicate_types")}
        if not all(isinstance(t, str) for v in lists.values() for t in v):
            raise MonitorConfigError(f"log[{i}]: watch rules are lists of strings")
        logs.append(LogWatch(policy, Watch(*(frozenset(v) for v in lists.values()))))
    if not logs:
        raise MonitorConfigError("at least one [[log]] is needed")
    origins = [lw.policy.origin for lw in logs]
    if len(set(origins)) != len(origins):
        raise MonitorConfigError("a log is listed twice")
    for key, low, high in (("poll_interval", 0.05, 86400), ("gossip_interval", 0.05, 86400),
                           ("chunk", 1, 1_000_000)):
        value = table.get(key)
        if value is not None and not low <= value <= high:  # NaN fails both comparisons
            raise MonitorConfigError(f"monitor.{key}: {value!r} is out of range ({low}..{high})")
    output = table.get("output", "-")
    if table.get("log_format", "text") not in ("text", "json"):
        raise MonitorConfigError("monitor.log_format: expected text or json")
    urls = [*table.get("peers", []), *table.get("witnesses", [])]
    if table.get("webhook"):
        urls.append(table["webhook"])
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise MonitorConfigError(f"{url!r}: peers, witnesses and webhook are http(s) URLs")
    tls = {k: str(base / table[k]) if table.get(k) else "" for k in ("tls_cert_file", "tls_key_file")}
    if bool(tls["tls_cert_file"]) != bool(tls["tls_key_file"]):
        raise MonitorConfigError("monitor.tls_cert_file and tls_key_file go together")
    return MonitorConfig(
        state_dir=base / table.get("state_dir", "monitor-state"), logs=tuple(logs),
        listen=table.get("listen", "127.0.0.1:0"),
        poll_interval=float(table.get("poll_interval", 1.0)),
        gossip_interval=float(table.get("gossip_interval", 2.0)),
        output=output if output == "-" else str(base / output), webhook=table.get("webhook", ""),
        peers=tuple(u.rstrip("/") for u in table.get("peers", [])),
        witnesses=tuple(u.rstrip("/") for u in table.get("witnesses", [])),
        peers_file=str(base / table["peers_file"]) if table.get("peers_file") else "",
        chunk=table.get("chunk", CHUNK), log_format=table.get("log_format", "text"), **tls)


def monitor_config_toml(config: MonitorConfig) -> str:
    """The effective `[monitor]` settings as TOML (the `[[log]]` tables are listed by origin)."""
    values = {"state_dir": str(config.state_dir), "listen": config.listen,
              "poll_interval": config.poll_interval, "gossip_interval": config.gossip_interval,
              "output": config.output, "webhook": "<redacted>" if config.webhook else "",
              "peers": [redact_url(u) for u in config.peers],
              "witnesses": [redact_url(u) for u in config.witnesses], "peers_file": config.peers_file,
              "chunk": config.chunk, "log_format": config.log_format,
              "tls_cert_file": config.tls_cert_file, "tls_key_file": config.tls_key_file}
    lines = ["[monitor]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    lines += [f"# [[log]] {lw.policy.origin} at {redact_url(lw.policy.url or '')}" for lw in config.logs]
    return "\n".join(lines) + "\n"


# --- reports --------------------------------------------------------------------------------


class Reporter:
    """Writes reports and alerts as JSON lines (fsynced), and queues them for the webhook."""

    def __init__(self, output: str, webhook: str, state_dir: Path) -> None:
        self.output, self.webhook = output, webhook
        self._lock = threading.Lock()
        self._outbox = state_dir / "webhook-outbox.jsonl"
        self._sent = state_dir / "webhook-sent"
        self._wake = threading.Event()
        for path in ([] if output == "-" else [Path(output)]) + [self._outbox]:
            _end_torn_line(path)

    def reported_in_output(self) -> dict[str, int]:
        """Highest index reported per origin in the output file (exactly-once after a crash
        between writing a report and recording the watermark)."""
        out: dict[str, int] = {}
        if self.output == "-":
            return out
        with contextlib.suppress(FileNotFoundError), open(self.output, "rb") as f:
            for line in f:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # a torn last line from a crash
                if isinstance(doc, dict) and type(doc.get("index")) is int \
                        and isinstance(doc.get("origin"), str):
                    out[doc["origin"]] = max(out.get(doc["origin"], -1), doc["index"])
        return out

    def emit(self, docs: list[dict[str, Any]]) -> None:
        if not docs:
            return
        data = b"".join(orjson.dumps(d) + b"\n" for d in docs)
        with self._lock:
            if self.output == "-":
                _write_all(1, data)
            else:
                _append_durably(Path(self.output), data)
            if self.webhook:
                _append_durably(self._outbox, data)
                self._wake.set()

    def deliver_forever(self, stop: threading.Event) -> None:
        """POST outbox lines to the webhook in order, retrying with backoff (at least once).

        The sent position is a byte offset into the outbox, saved after each success."""
        delay = 0.5
        with httpx.Client(timeout=10) as http:
            while not stop.is_set():
                offset = int(self._sent.read_text()) if self._sent.exists() else 0
                line = b""
                with contextlib.suppress(FileNotFoundError), open(self._outbox, "rb") as f:
                    f.seek(offset)
                    line = f.readline()
                if not line.endswith(b"\n"):  # nothing (complete) to send yet
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                try:
                    r = http.post(self.webhook, content=line.rstrip(b"\n"),
                                  headers={"Content-Type": "application/json"})
                    ok = 200 <= r.status_code < 300
                    if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                        log.error("webhook refused a report (HTTP %d); skipping it", r.status_code)
                        ok = True  # a dead letter: retrying cannot help, and would block the rest
                except httpx.HTTPError:
                    ok = False
                if ok:
                    try:
                        write_atomically(self._sent, str(offset + len(line)).encode())
                    except OSError:
                        log.exception("cannot record webhook progress")
                        stop.wait(5.0)
                    delay = 0.5
                else:
                    stop.wait(delay)
                    delay = min(delay * 2, 30.0)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _append_durably(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _end_torn_line(path: Path) -> None:
    """After a crash mid-write the file may end inside a line: end it, so that the fragment
    stays one unreadable line instead of corrupting the next report appended to it."""
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
            _append_durably(path, b"\n")


def _tree_id(note: bytes) -> bytes:
    """What a checkpoint says (its signed text: origin, size, root), without the signatures,
    so fresher cosignatures on the same tree do not make a new alert."""
    return note.split(b"\n\n", 1)[0]


def _get_limited(http: httpx.Client, url: str, limit: int) -> tuple[int, bytes]:
    with http.stream("GET", url) as resp:
        return resp.status_code, read_bounded(resp, limit, GOSSIP_DEADLINE, url)


# --- following one log ------------------------------------------------------------------------


@dataclass
class Follower:
    watch: LogWatch
    state_dir: Path
    reporter: Reporter
    alert: Any  # callable(evidence document) -> None
    alert_unproven: Any = None  # callable(origin, reason, notes) -> None: no evidence
    chunk: int = 16384
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        policy = self.watch.policy
        self.origin = policy.origin
        self.client = LogClient(policy.url or "", policy)
        self.gossip_client = LogClient(policy.url or "", policy)  # gossip never waits on a replay
        self.kind_checked = False
        self.checked: set[tuple[int, bytes]] = set()  # foreign (size, root) already found consistent
        self.trust = TrustState(self.state_dir / "trust")
        h = hashlib.sha256(self.origin.encode()).hexdigest()
        self.cursor_path = self.state_dir / f"{h}.cursor"
        self.watermark_path = self.state_dir / f"{h}.reported"
        if self.alert_unproven is None:
            self.alert_unproven = lambda origin, reason, _notes: log.error("%s: %s", origin, reason)
        self.lock = threading.Lock()
        self.mark: int | None = None  # next index to report (loaded on the first poll)
        self.stats.update(entries=0, matches=0, size=0, processed=0, errors=0, last_ok=0.0)

    def close(self) -> None:
        self.client.close()
        self.gossip_client.close()

    def view(self) -> VerifiedCheckpoint | None:
        return self.trust.trusted(self.watch.policy)

    def _watermark(self) -> int:
        """Next index to report: the recorded watermark, raised past anything already in the
        output file (a crash between writing reports and recording the watermark)."""
        mark = int(self.watermark_path.read_text()) if self.watermark_path.exists() else 0
        return max(mark, self.reporter.reported_in_output().get(self.origin, -1) + 1)

    def poll(self, stop: threading.Event | None = None) -> None:
        """One step: verify the latest checkpoint, replay the new entries in chunks, report
        matches. Each chunk's reports are written before its cursor is saved."""
        if not self.kind_checked:  # raw entries could imitate a watched signer's leaf
            self.client.check_log_kind()
            self.kind_checked = True
        with self.lock:
            prev = self.view()
            vc = self.client.checkpoint()
            try:
                self.trust.update(self.watch.policy, vc, self.client.consistency_proof)
            except ConsistencyError as exc:  # the log itself showed us two views
                self._evidence_from_log(exc)
                raise
            self.stats["size"] = vc.size
            tree = load_tree(self.cursor_path, self.origin)
            if self.mark is None:
                self.mark = self._watermark()
        proofs = merkle.RangeHashCache(self.client.node_reader(vc))
        while tree.size < vc.size and not (stop and stop.is_set()):
            end = min(vc.size, tree.size + self.chunk)
            with self.lock:  # per chunk: gossip checks get the lock in between
                tree = self._chunk(tree, vc if end == vc.size else self._prefix(vc, end), vc, prev, proofs)
        self.stats.update(processed=tree.size, last_ok=time.time())

    def _prefix(self, vc: VerifiedCheckpoint, size: int) -> VerifiedCheckpoint:
        """The tree of `size` leaves inside `vc`, its root from tiles verified against vc's
        root: a chunk's replay is checked against a root the log signed into vc."""
        root = self.client.prefix_root(size, vc)
        return VerifiedCheckpoint(Checkpoint(self.origin, size, root), vc.note, vc.log_signers,
                                  vc.witnesses, vc.cosigned_at)

    def _chunk(self, tree: TileTree, target: VerifiedCheckpoint, vc: VerifiedCheckpoint,
               prev: VerifiedCheckpoint | None, proofs: merkle.RangeHashCache) -> TileTree:
        matches: list[tuple[int, bytes, list[str]]] = []

        def on_entry(index: int, entry: bytes) -> None:
            watch = self.watch.watch
            envelope = self.client.entry_envelope(index) if watch.needs_envelope(entry) else None
            rules = watch.matches(entry, envelope)
            if rules:
                matches.append((index, entry, rules))

        report = full_audit(self.client, target, trusted=prev, tree=tree, on_entry=on_entry)
        assert report.tree is not None and self.mark is not None
        docs = [self._report(i, e, rules, vc, proofs) for i, e, rules in matches if i >= self.mark]
        self.reporter.emit(docs)  # durable before the watermark and the cursor move
        if docs:
            self.mark = docs[-1]["index"] + 1
            write_atomically(self.watermark_path, str(self.mark).encode())
        save_tree(self.cursor_path, self.origin, report.tree)
        self.stats["entries"] += report.replayed
        self.stats["matches"] += len(docs)
        self.stats["processed"] = report.tree.size
        return report.tree

    def _report(self, index: int, entry: bytes, rules: list[str], vc: VerifiedCheckpoint,
                proofs: merkle.RangeHashCache) -> dict[str, Any]:
        """A report: the entry (already checked against the tiles), its record and a receipt
        whose inclusion proof (from the tiles, neighbours sharing work) is verified against vc."""
        lh = merkle.leaf_hash(entry)
        proof = proofs.inclusion_proof(index, vc.size)
        merkle.verify_inclusion(index, vc.size, lh, proof, vc.root)
        receipt = Receipt(self.origin, index, entry, lh, vc.size, tuple(proof), vc.note)
        info = parse_leaf(entry)
        return {"origin": self.origin, "index": index, "matched": rules,
                "record": info.record if info else None, "receipt": receipt.to_dict()}

    def _evidence_from_log(self, exc: ConsistencyError) -> None:
        """The log's new checkpoint is not consistent with the one we trusted: the tiles of
        the larger tree give self-contained evidence, when we can get them verified against its
        root. The new tree's are what the log serves now; the trusted tree's may still be in
        the client's cache of verified tiles even after the log stopped serving them."""
        policy = key_policy(self.watch.policy)
        notes = (exc.old_checkpoint, exc.new_checkpoint)
        try:
            old = verify_checkpoint(exc.old_checkpoint, policy)
            new = verify_checkpoint(exc.new_checkpoint, policy)
            sv = split_view(old, new, self._tiles_prover())
        except (TlogError, LookupError) as err:
            self.alert_unproven(self.origin, f"{exc} (no self-contained evidence: {err})", notes)
            return
        if sv is not None:
            self.alert(to_document(sv, str(exc), "log"))
        else:
            self.alert_unproven(self.origin, str(exc), notes)

    def _tiles_prover(self, client: LogClient | None = None) -> Any:
        """(root at m, proof m -> n) from the tiles of the larger tree, for `split_view`."""
        c = client or self.client

        def prove(m: int, larger: VerifiedCheckpoint) -> tuple[bytes, list[bytes]]:
            return c.prefix_root(m, larger), c.consistency_proof(m, larger.size, larger)
        return prove

    def check_foreign(self, note: bytes, source: str) -> dict[str, Any] | None:
        """A checkpoint learned from a peer or witness, against our view: evidence or None."""
        policy = key_policy(self.watch.policy)
        theirs = verify_checkpoint(note, policy)  # raises if not signed by the log
        if (theirs.size, theirs.root) in self.checked:
            return None
        with self.lock:
            ours = self.view()
        if ours is None or theirs.size > ours.size:
            return None  # undecided until our log grows past it (or a peer proves it)
        ours = verify_checkpoint(ours.note, policy)
        try:
            sv = split_view(theirs, ours, self._tiles_prover(self.gossip_client))
        except (ProofError, MalformedError, NetworkError) as exc:
            log.warning("%s: cannot check %s's checkpoint yet: %s", self.origin, source, exc)
            return None
        if sv is None:
            if len(self.checked) > 100_000:
                self.checked.clear()
            self.checked.add((theirs.size, theirs.root))
            return None
        return to_document(sv, f"checkpoint from {source} is not consistent with our view", source)


# --- the monitor process ----------------------------------------------------------------------


def _server_class(tls: ssl.SSLContext | None) -> type[ThreadingHTTPServer]:
    """The gossip server: plain, or HTTPS whose handshakes run in each connection's own
    thread (under the handler's timeout), so a client that stalls in its handshake holds
    only its own thread, not the accept loop."""
    if tls is None:
        return ThreadingHTTPServer

    class TLSServer(ThreadingHTTPServer):
        def get_request(self) -> tuple[Any, Any]:
            sock, addr = self.socket.accept()
            return tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    return TLSServer


class Monitor:
    def __init__(self, config: MonitorConfig) -> None:
        self.config = config
        # HTTPS for gossip; a bad certificate fails here, before anything runs.
        self.tls = ReloadingContext(ServerTLS(config.tls_cert_file, config.tls_key_file)) \
            if config.tls_cert_file else None
        config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.evidence_dir = config.state_dir / "evidence"
        self.evidence_dir.mkdir(exist_ok=True, mode=0o700)
        self.reporter = Reporter(config.output, config.webhook, config.state_dir)
        self.stop = threading.Event()
        self.followers = {lw.policy.origin: Follower(lw, config.state_dir, self.reporter, self.alert,
                                                     self.alert_unproven, config.chunk)
                          for lw in config.logs}
        self.gossip_errors = 0
        self.inconsistency_repeats = 0
        # Unproven inconsistencies already alerted, by pair of trees: kept across restarts,
        # so one that lasts (a rolled-back log) is one alert, not one per poll.
        self._unproven_path = config.state_dir / "inconsistencies.json"
        self._unproven: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(self._unproven_path.read_text())
            if isinstance(doc, dict):
                self._unproven = {str(k): str(v) for k, v in doc.items()}
        # Evidence found before a restart still counts: the log is still known to be forked.
        self._seen_evidence: set[str] = {p.stem for p in self.evidence_dir.glob("*.json")}
        self._forked: set[str] = {d.get("origin", "") for d in self.evidence()}
        self.split_views = len(self._seen_evidence)
        self._lock = threading.Lock()
        self._metrics = self._registry()

    def alert(self, doc: dict[str, Any]) -> bool:
        """Keep evidence (once per pair of trees), and say so loudly. The document is checked
        and rebuilt from what verified, so a peer's extra fields or lines change nothing."""
        f = self.followers.get(doc.get("origin", ""))
        if f is None:
            return False
        try:
            sv = verify_evidence(doc, f.watch.policy.log_keys)
        except TlogError as exc:
            log.warning("not evidence of a split view: %s", exc)
            return False
        pair = sorted([(sv.smaller.size, sv.smaller.root), (sv.larger.size, sv.larger.root)])
        key = hashlib.sha256(sv.origin.encode() + repr(pair).encode()).hexdigest()[:32]
        with self._lock:
            if key in self._seen_evidence or sv.origin in self._forked:
                return True  # one evidence file per forked log: as both views grow, every new
                # pair of checkpoints would prove the same split again
            self._seen_evidence.add(key)
            self._forked.add(sv.origin)
            self.split_views += 1
        clean = to_document(sv, str(doc.get("reason", ""))[:500], str(doc.get("detected_by", ""))[:300])
        path = self.evidence_dir / f"{key}.json"
        write_atomically(path, json.dumps(clean, indent=2).encode())
        log.error("SPLIT VIEW of %s detected by %s: evidence in %s", sv.origin, clean["detected_by"], path)
        self.reporter.emit([{"alert": "split-view", "origin": sv.origin, "evidence": str(path),
                             "reason": clean["reason"]}])
        return True

    def alert_unproven(self, origin: str, reason: str, notes: tuple[bytes, bytes]) -> None:
        """The log is inconsistent with what we trusted, but without self-contained evidence
        (say it was rolled back and cannot prove the tree it signed): still an alert, once per
        pair of trees (as split views are); repeats are only counted."""
        pair = b"\n".join([origin.encode(), *(_tree_id(n) for n in notes)])
        key = hashlib.sha256(pair).hexdigest()[:32]
        with self._lock:
            if key in self._unproven or len(self._unproven) >= MAX_UNPROVEN_KEPT:
                self.inconsistency_repeats += 1  # past the cap, the operator knows already
                return
            self._unproven[key] = origin
            try:
                write_atomically(self._unproven_path, json.dumps(self._unproven).encode())
            except OSError:
                log.exception("cannot record an inconsistency alert")
        log.error("INCONSISTENT LOG %s: %s", origin, reason)
        self.reporter.emit([{"alert": "inconsistent", "origin": origin, "reason": reason[:1000],
                             "checkpoints": [n.decode("utf-8", "replace")[:MAX_NOTE_CHARS] for n in notes]}])

    def evidence(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted(self.evidence_dir.glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                out.append(json.loads(p.read_text()))
        return out

    def checkpoints(self) -> list[str]:
        out = []
        for f in self.followers.values():
            vc = f.view()
            if vc is not None:
                out.append(vc.note.decode())
        return out

    # --- loops ---

    def follow_loop(self, f: Follower) -> None:
        while not self.stop.is_set():
            try:
                f.poll(self.stop)
            except ConsistencyError as exc:
                f.stats["errors"] += 1
                log.error("%s: %s", f.origin, exc)
            except (TlogError, OSError) as exc:
                f.stats["errors"] += 1
                log.warning("%s: poll failed: %s", f.origin, exc)
            except Exception:  # a bug must not stop following for good
                f.stats["errors"] += 1
                log.exception("%s: poll failed", f.origin)
            self.stop.wait(self.config.poll_interval)

    def gossip_once(self, http: httpx.Client) -> None:
        sources: list[tuple[str, str]] = []
        for peer in self.config.all_peers():
            sources.append((f"peer {peer}", peer + "/gossip/checkpoints"))
            sources.append((f"peer {peer}", peer + "/gossip/evidence"))
        for w in self.config.witnesses:
            for origin in self.followers:
                digest = hashlib.sha256(origin.encode()).hexdigest()
                sources.append((f"witness {w}", f"{w}/{digest}/checkpoint"))
        for source, url in sources:
            try:
                status, body = _get_limited(http, url, MAX_GOSSIP_BYTES)
                if status == 404:
                    continue
                if status != 200:
                    raise MalformedError(f"HTTP {status}")
                if url.endswith("/gossip/evidence"):
                    self._peer_evidence(orjson.loads(body), source)
                    continue
                notes = orjson.loads(body)["checkpoints"] if url.endswith("/gossip/checkpoints") \
                    else [body.decode("utf-8")]
                if not isinstance(notes, list):
                    raise MalformedError("checkpoints is not a list")
                if not all(isinstance(n, str) for n in notes):
                    raise MalformedError("checkpoints must be signed notes (strings)")
                for note in notes[:MAX_NOTES_PER_SOURCE]:
                    self._foreign(note.encode(), source)
            except (httpx.HTTPError, ValueError, KeyError, TypeError, TlogError) as exc:
                self.gossip_errors += 1
                log.warning("gossip with %s: %s", source, exc)

    def _foreign(self, note: bytes, source: str) -> None:
        origin = note.split(b"\n", 1)[0].decode("utf-8", "replace")
        f = self.followers.get(origin)
        if f is None:
            return
        doc = f.check_foreign(note, source)
        if doc is not None:
            self.alert(doc)

    def _peer_evidence(self, docs: Any, source: str) -> None:
        if not isinstance(docs, list):
            raise MalformedError("evidence must be a list")
        for doc in docs[:MAX_NOTES_PER_SOURCE]:
            if not (isinstance(doc, dict) and isinstance(doc.get("origin"), str)
                    and self.alert(dict(doc, detected_by=f"{doc.get('detected_by')} (via {source})"))):
                self.gossip_errors += 1
                log.warning("%s sent something that is not evidence of a split view", source)

    def gossip_loop(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.wait(self.config.gossip_interval):
                try:
                    self.gossip_once(http)
                except Exception:  # a bug must not stop split-view detection for good
                    self.gossip_errors += 1
                    log.exception("gossip round failed")

    def _registry(self) -> Registry:
        reg = Registry(worker_label=False)
        self.m_http = reg.add(Counter("tlog_monitor_http_responses_total",
                                      "HTTP responses by route and status", ("route", "code")))
        self.m_http_latency = reg.add(Histogram("tlog_monitor_http_request_seconds",
                                                "HTTP request latency by route", LATENCY_BUCKETS,
                                                ("route",)))

        def per_log(key: str) -> Callable[[], dict[tuple[str, ...], float]]:
            return lambda: {(o,): float(f.stats[key]) for o, f in self.followers.items()}

        for name, help_text, key, kind in [
                ("tlog_monitor_tree_size", "Latest verified tree size", "size", "gauge"),
                ("tlog_monitor_processed_entries", "Entries replayed and checked", "processed", "gauge"),
                ("tlog_monitor_entries_total", "Entries replayed since start", "entries", "counter"),
                ("tlog_monitor_matches_total", "Watched entries reported", "matches", "counter"),
                ("tlog_monitor_poll_errors_total", "Failed polls", "errors", "counter"),
                ("tlog_monitor_last_ok_seconds", "Unix time of the last good poll", "last_ok", "gauge")]:
            reg.add(Gauge(name, help_text, per_log(key), ("origin",), kind))
        reg.add(Gauge("tlog_monitor_lag_entries", "Entries in the log not yet checked",
                      lambda: {(o,): float(f.stats["size"] - f.stats["processed"])
                               for o, f in self.followers.items()}, ("origin",)))
        reg.add(Gauge("tlog_monitor_split_views_total", "Split views proven (evidence stored)",
                      lambda: float(self.split_views), kind="counter"))
        reg.add(Gauge("tlog_monitor_inconsistencies_total",
                      "Unproven inconsistencies alerted (distinct pairs of checkpoints)",
                      lambda: float(len(self._unproven)), kind="counter"))
        reg.add(Gauge("tlog_monitor_inconsistency_repeats_total",
                      "Unproven inconsistencies seen again after their alert (not alerted again)",
                      lambda: float(self.inconsistency_repeats), kind="counter"))
        reg.add(Gauge("tlog_monitor_gossip_errors_total", "Failed gossip rounds or peers",
                      lambda: float(self.gossip_errors), kind="counter"))
        return reg

    def metrics(self) -> str:
        return self._metrics.render().decode()

    def health(self) -> tuple[int, dict[str, Any]]:
        now = time.time()
        logs = {o: {"size": f.stats["size"], "processed": f.stats["processed"],
                    "seconds_since_ok": round(now - f.stats["last_ok"], 1) if f.stats["last_ok"] else None}
                for o, f in self.followers.items()}
        limit = 10 * self.config.poll_interval + 30
        stale = any(v["seconds_since_ok"] is None or v["seconds_since_ok"] > limit for v in logs.values())
        status = ("split-view" if self.split_views else "inconsistent" if self._unproven
                  else "degraded" if stale else "ok")
        doc = {"status": status, "logs": logs, "split_views": self.split_views}
        return (200 if status == "ok" else 503), doc

    def serve(self) -> ThreadingHTTPServer:
        monitor = self

        routes = ("/gossip/checkpoints", "/gossip/evidence", "/healthz", "/metrics")

        class Handler(BaseHTTPRequestHandler):
            timeout = HTTP_TIMEOUT  # a client that sends nothing (or trickles) loses its thread

            def do_GET(self) -> None:
                t0 = time.perf_counter()
                self._route()
                route = self.path if self.path in routes else "other"
                monitor.m_http.inc(1, route, str(self._status))
                monitor.m_http_latency.observe(time.perf_counter() - t0, route)

            def _route(self) -> None:
                if self.path == "/gossip/checkpoints":
                    self._send(200, {"checkpoints": monitor.checkpoints()})
                elif self.path == "/gossip/evidence":
                    self._send(200, monitor.evidence())
                elif self.path == "/healthz":
                    self._send(*monitor.health())
                elif self.path == "/metrics":
                    self._send(200, monitor.metrics().encode(), CONTENT_TYPE)
                else:
                    self._send(404, {"error": "not found"})

            def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else orjson.dumps(body)
                self._status = status
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        host, _, port = self.config.listen.rpartition(":")
        server = _server_class(self.tls)((host.strip("[]"), int(port)), Handler)
        server.daemon_threads = True
        return server

    def run(self) -> None:
        server = self.serve()
        host, port = server.server_address[:2]
        say = announcer(self.config.log_format, log.name)
        reload_on_sighup(self.tls)
        scheme = "https" if self.tls is not None else "http"
        say(f"tlog-client monitor: listening on {scheme}://{host}:{port}")
        sys.stdout.flush()
        threads = [threading.Thread(target=server.serve_forever, daemon=True)]
        threads += [threading.Thread(target=self.follow_loop, args=(f,), daemon=True)
                    for f in self.followers.values()]
        threads.append(threading.Thread(target=self.gossip_loop, daemon=True))
        if self.config.webhook:
            threads.append(threading.Thread(target=self.reporter.deliver_forever, args=(self.stop,),
                                            daemon=True))
        for t in threads:
            t.start()
        try:
            # Wake up now and then: a signal may be delivered to another thread, and only the
            # main thread, between bytecodes, runs Python's signal handlers.
            while not self.stop.wait(0.5):
                pass
        finally:
            server.shutdown()
            for f in self.followers.values():
                with f.lock:  # let a poll in progress finish writing its reports
                    f.close()
