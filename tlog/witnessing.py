"""Log side of C2SP tlog-witness: push checkpoints to witnesses, publish once k of n cosign.

Runs as a thread in the sequencer process (the one publisher). Sequencing never waits for
it: the sequencer `offer`s each new checkpoint and goes on; rounds run at most once per
`interval`, each sending the newest checkpoint to every witness concurrently. For each
witness we remember the size it last cosigned, to send the right consistency proof; a 409
with `text/x.tlog.size` tells us its size and we retry once from there. A 422, or a 409
without a size, means the witness holds a checkpoint our log is not consistent with: that
is logged as an alarm, never worked around. Cosignature lines are verified with the
witness's key before they count. Once k verify, the checkpoint with every verified
cosignature is stored (`LogStore.publish_cosigned`) and `on_publish` is called.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from client import merkle
from client.checkpoint import parse_checkpoint_text
from client.encoding import b64encode, parse_decimal
from client.errors import MalformedError, SignatureError, UnknownKeyError
from client.note import CosignatureV1Verifier, NoteSignature, parse_note, parse_vkey, verify_note
from tlog.metrics import Counter, Histogram, Registry
from tlog.storage import LogStore

log = logging.getLogger("tlog.witnessing")

REFRESH_SECONDS = 60.0  # re-send an unchanged checkpoint this often, for fresh cosignatures
MAX_ANSWER = 64 * 1024


@dataclass
class WitnessState:
    url: str
    verifier: CosignatureV1Verifier
    known_size: int | None = None  # the size it last cosigned for us, if we know it
    alarm: str = ""  # set when it reported an inconsistency


class WitnessCollector:
    def __init__(self, store: LogStore, witnesses: list[tuple[str, str]], quorum: int, *,
                 timeout: float, interval: float, registry: Registry,
                 on_publish: Callable[[int, bytes], None]) -> None:
        self.store, self.quorum, self.timeout, self.interval = store, quorum, timeout, interval
        self.witnesses = [WitnessState(url, parse_vkey(vkey)) for url, vkey in witnesses]  # type: ignore[arg-type]
        self.on_publish = on_publish
        self._latest: tuple[int, bytes] | None = None
        self._cond = threading.Condition()
        self._running = True
        self._http = httpx.Client(timeout=timeout, headers={"Content-Type": "text/plain"})
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.witnesses)),
                                        thread_name_prefix="witness-push")
        self._thread = threading.Thread(target=self._run, name="witness-collector", daemon=True)
        published = store.cosigned()
        self._published_size, self._published_at = (published[0], 0.0) if published else (-1, 0.0)
        self.m_requests = registry.add(Counter(
            "tlog_witness_requests_total", "add-checkpoint requests by witness and outcome",
            ("witness", "outcome")))
        self.m_latency = registry.add(Histogram(
            "tlog_witness_cosign_seconds", "add-checkpoint latency (all witnesses)",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)))
        self.m_published = registry.add(Counter(
            "tlog_checkpoints_cosigned_total", "Checkpoints published with a witness quorum"))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()
        self._thread.join(timeout=self.timeout * 2 + 1)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def offer(self, size: int, note: bytes) -> None:
        """A new checkpoint was committed (called by the sequencer; never blocks on witnesses)."""
        with self._cond:
            self._latest = (size, note)
            self._cond.notify()

    # --- the loop -------------------------------------------------------------------------

    def _run(self) -> None:
        last_round = 0.0
        while True:
            with self._cond:
                while self._running and not self._due():
                    self._cond.wait(timeout=max(1.0, self.interval))
                if not self._running:
                    return
                size, note = self._latest  # type: ignore[misc]
            wait = last_round + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)  # rate limit per witness; sequencing goes on meanwhile
                with self._cond:
                    size, note = self._latest  # type: ignore[misc]
            last_round = time.monotonic()
            try:
                self._round(size, note)
            except Exception:  # a bug must not stop witnessing for good
                log.exception("witness round for size %d failed", size)

    def _due(self) -> bool:
        if self._latest is None:
            return False
        size = self._latest[0]
        return size > self._published_size or (
            time.monotonic() - self._published_at > REFRESH_SECONDS)

    def _round(self, size: int, note: bytes) -> None:
        lines = list(self._pool.map(lambda w: self._push(w, size, note), self.witnesses))
        got = [ln for ln in lines if ln is not None]
        if len(got) < self.quorum:
            log.warning("checkpoint %d: %d of %d witness cosignatures, %d needed; not published",
                        size, len(got), len(self.witnesses), self.quorum)
            self._published_at = time.monotonic()  # retry on growth or after the refresh time
            return
        parsed = parse_note(note)
        cosigned = parsed.to_bytes() if not got else _append(parsed, got)
        if self.store.publish_cosigned(size, cosigned):
            self._published_size, self._published_at = size, time.monotonic()
            self.m_published.inc()
            self.on_publish(size, cosigned)

    def _push(self, w: WitnessState, size: int, note: bytes) -> NoteSignature | None:
        """One witness: add-checkpoint (and one retry after a 409 with its size)."""
        old = w.known_size if w.known_size is not None and w.known_size <= size else 0
        for _attempt in range(2):
            t0 = time.perf_counter()
            try:
                proof = self._proof(old, size)
                resp = self._http.post(w.url + "/add-checkpoint", content=_body(old, proof, note))
            except (httpx.HTTPError, OSError) as exc:
                self.m_requests.inc(1, w.verifier.name, "unreachable")
                log.warning("witness %s: %s", w.verifier.name, exc)
                return None
            self.m_latency.observe(time.perf_counter() - t0)
            if resp.status_code == 200:
                sig = self._check(w, note, resp.content)
                if sig is not None:
                    w.known_size, w.alarm = size, ""
                return sig
            sized = resp.headers.get("content-type", "") == "text/x.tlog.size"
            if resp.status_code == 409 and sized:
                try:
                    known = parse_decimal(resp.content.decode("ascii").rstrip("\n"), what="size")
                except (MalformedError, UnicodeDecodeError):
                    known = -1
                if 0 <= known <= size and known != old:
                    w.known_size, old = known, known
                    self.m_requests.inc(1, w.verifier.name, "retry_409")
                    continue
                self._alarm(w, f"says it cosigned size {known}; ours is {size}")
                return None
            if resp.status_code in (422,) or resp.status_code == 409:
                self._alarm(w, f"HTTP {resp.status_code}: {resp.text[:200]!r}")
                return None
            self.m_requests.inc(1, w.verifier.name, f"http_{resp.status_code}")
            log.warning("witness %s: HTTP %d %s", w.verifier.name, resp.status_code, resp.text[:200])
            return None
        return None

    def _alarm(self, w: WitnessState, what: str) -> None:
        w.alarm = what
        self.m_requests.inc(1, w.verifier.name, "inconsistent")
        log.error("ALARM: witness %s reports our log inconsistent with what it cosigned: %s",
                  w.verifier.name, what)

    def _proof(self, old: int, size: int) -> list[bytes]:
        if old in (0, size):
            return []
        with self.store.read_txn() as txn:
            return merkle.consistency_proof(old, size, self.store.node_reader(txn))

    def _check(self, w: WitnessState, note: bytes, answer: bytes) -> NoteSignature | None:
        """The witness's cosignature line, verified on our checkpoint, or None."""
        if len(answer) > MAX_ANSWER:
            return None
        try:
            parsed = parse_note(note)
            candidate = parsed.to_bytes() + answer
            opened = verify_note(candidate, [w.verifier])
            parse_checkpoint_text(opened.text)
        except (MalformedError, UnknownKeyError, SignatureError) as exc:
            self.m_requests.inc(1, w.verifier.name, "bad_cosignature")
            log.warning("witness %s answered without a valid cosignature: %s", w.verifier.name, exc)
            return None
        self.m_requests.inc(1, w.verifier.name, "cosigned")
        return opened.verified[0]


def _body(old: int, proof: list[bytes], note: bytes) -> bytes:
    return (f"old {old}\n" + "".join(b64encode(h) + "\n" for h in proof) + "\n").encode() + note


def _append(parsed: object, sigs: list[NoteSignature]) -> bytes:
    from client.note import Note

    assert isinstance(parsed, Note)
    return Note(parsed.text, (*parsed.signatures, *sigs)).to_bytes()
