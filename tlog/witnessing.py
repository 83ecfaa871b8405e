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
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import TimeoutError as FuturesTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from client.encoding import b64encode, parse_decimal
from client.errors import MalformedError, SignatureError, UnknownKeyError
from client.http import read_bounded
from client.metrics import Counter, Gauge, Histogram, Registry
from client.note import (
    CosignatureV1Verifier,
    Note,
    NoteSignature,
    parse_note,
    parse_vkey,
    verify_note,
)

log = logging.getLogger("tlog.witnessing")

REFRESH_SECONDS = 60.0  # re-send an unchanged checkpoint this often, for fresh cosignatures
MAX_ANSWER = 64 * 1024
CLOCK_SKEW = 300


@dataclass(frozen=True)
class WitnessAccess:
    """How the log proves itself to witnesses that take add-checkpoint only from known logs:
    a bearer token per witness (files, as the witness's operator issued them) and, for https
    witnesses, the CAs to trust and a client certificate for mutual TLS."""

    tokens: tuple[tuple[str, str], ...] = ()
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def of(cls, doc: dict[str, Any] | None) -> WitnessAccess:
        """From its JSON form (it travels to the sequencer process as JSON)."""
        doc = dict(doc or {})
        doc["tokens"] = tuple(tuple(t) for t in doc.get("tokens", ()))
        return cls(**doc)

    def headers(self) -> WitnessTokens:
        """The Authorization header to send each witness, from its token file (read now, so
        that a missing or bad file fails the start, and again whenever it changes)."""
        return WitnessTokens(self.tokens)

    def verify(self) -> Any:
        """httpx's `verify`: True (system CAs) or a context with our CAs and client cert."""
        if not (self.ca_file or self.cert_file):
            return True
        from client.tls import client_context

        return client_context(self.ca_file, self.cert_file, self.key_file)


class WitnessTokens:
    """{witness URL: its Authorization header}, each token file re-read when it changes, so a
    witness operator's new token takes effect without restarting the log. A file that stops
    reading (half-written, removed) keeps the last good token and logs why."""

    def __init__(self, tokens: tuple[tuple[str, str], ...]) -> None:
        self._files = {url: Path(path) for url, path in tokens}
        self._held: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}
        self._broken: dict[str, tuple[int, int, int]] = {}  # the file's version that failed
        for url in self._files:
            self._load(url, strict=True)

    def _load(self, url: str, *, strict: bool = False) -> None:
        from client.tokens import read_token

        path = self._files[url]
        identity = (0, 0, 0)
        try:
            st = path.stat()
            identity = (st.st_ino, st.st_size, st.st_mtime_ns)
            if url in self._held and identity in (self._held[url][0], self._broken.get(url)):
                return
            header = {"Authorization": f"Bearer {read_token(path)}"}
        except (OSError, MalformedError) as exc:
            if strict:
                raise MalformedError(f"cannot read the token file {path}: {exc}") from None
            if self._broken.get(url) != identity:  # once per bad version, not once per push
                log.error("witness token file %s: %s; still sending the token read before", path, exc)
            self._broken[url] = identity
            return
        self._broken.pop(url, None)
        if url in self._held:
            log.warning("witness token file %s changed: sending the new token to %s", path, url)
        self._held[url] = (identity, header)

    def get(self, url: str) -> dict[str, str] | None:
        if url not in self._files:
            return None
        self._load(url)
        return self._held[url][1]


def witness_access(config: Any) -> dict[str, Any]:
    """The WitnessAccess a ServeConfig sets, as JSON for the sequencer process."""
    return {"tokens": [list(t) for t in config.witness_tokens], "ca_file": config.witness_ca_file,
            "cert_file": config.witness_client_cert_file, "key_file": config.witness_client_key_file}


@dataclass
class WitnessState:
    url: str
    verifier: CosignatureV1Verifier
    known_size: int | None = None  # the size it last cosigned for us, if we know it
    up: bool = False  # its last add-checkpoint gave a valid cosignature


class CosignStore(Protocol):
    """What the collector needs of the log's storage (LMDB's `LogStore`, or the scaled-out
    shape's tree head in PostgreSQL with tiles in the bucket)."""

    def cosigned(self) -> tuple[int, bytes] | None: ...

    def publish_cosigned(self, size: int, note: bytes) -> bool: ...

    def consistency_proof(self, old: int, new: int) -> list[bytes]: ...


class WitnessCollector:
    def __init__(self, store: CosignStore, witnesses: list[tuple[str, str]], quorum: int, *,
                 timeout: float, interval: float, registry: Registry,
                 on_publish: Callable[[int, bytes], None], access: WitnessAccess | None = None) -> None:
        self.store, self.quorum, self.timeout, self.interval = store, quorum, timeout, interval
        self.witnesses = [WitnessState(url, parse_vkey(vkey)) for url, vkey in witnesses]  # type: ignore[arg-type]
        self.on_publish = on_publish
        self._witness_ids = {(w.verifier.name, w.verifier.key_id) for w in self.witnesses}
        self._latest: tuple[int, bytes] | None = None
        self._cond = threading.Condition()
        self._running = True
        access = access or WitnessAccess()
        self._auth = access.headers()  # fails at start-up on a missing or bad token file
        self._http = httpx.Client(timeout=timeout, headers={"Content-Type": "text/plain"},
                                  verify=access.verify())
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(self.witnesses)),
                                        thread_name_prefix="witness-push")
        self._thread = threading.Thread(target=self._run, name="witness-collector", daemon=True)
        published = store.cosigned()
        self._published_size, self._published_at = (published[0], 0.0) if published else (-1, 0.0)
        self.m_requests = registry.add(Counter(
            "tlog_witness_requests_total", "add-checkpoint requests by witness and outcome",
            ("witness", "outcome")))
        self.m_failures = registry.add(Counter(
            "tlog_witness_failures_total",
            "add-checkpoint requests that gave no valid cosignature, by witness", ("witness",)))
        self.m_latency = registry.add(Histogram(
            "tlog_witness_cosign_seconds", "add-checkpoint latency by witness",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), ("witness",)))
        for w in self.witnesses:  # series alerts watch exist from the start, at 0, so that
            self.m_failures.inc(0, w.verifier.name)  # increase() sees their first event
            self.m_requests.inc(0, w.verifier.name, "inconsistent")
        self.round_cosignatures = -1  # valid cosignatures in the last round (-1: none yet)
        registry.add(Gauge("tlog_witness_up", "1 if the witness's last answer was a valid cosignature",
                           lambda: {(w.verifier.name,): float(w.up) for w in self.witnesses},
                           ("witness",)))
        registry.add(Gauge("tlog_witness_quorum", "Cosignatures a checkpoint needs (k of n)",
                           lambda: float(self.quorum)))
        registry.add(Gauge("tlog_witness_round_cosignatures",
                           "Valid cosignatures in the last witness round (-1 before the first)",
                           lambda: float(self.round_cosignatures)))
        self.m_published = registry.add(Counter(
            "tlog_checkpoints_cosigned_total", "Checkpoints published with a witness quorum"))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop promptly: a round in flight is abandoned (nothing it could still publish is
        needed for durability; the next start re-sends the newest checkpoint)."""
        with self._cond:
            self._running = False
            self._cond.notify()
        self._thread.join(timeout=1.0)
        self._pool.shutdown(wait=False, cancel_futures=True)

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
                with self._cond:  # rate limit per witness; sequencing goes on meanwhile
                    self._cond.wait_for(lambda: not self._running, timeout=wait)
                    if not self._running:
                        return
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
        """Send `note` to every witness at once; publish as soon as k cosignatures verified
        (a slow witness must not hold the others up), and again if more arrive in time."""
        futures = [self._pool.submit(self._push, w, size, note) for w in self.witnesses]
        got: list[NoteSignature] = []
        published = 0
        try:
            for fut in as_completed(futures, timeout=self.timeout * 2 + 1):
                sig = fut.result()
                if sig is None:
                    continue
                got.append(sig)
                if len(got) >= self.quorum and len(got) > published and (
                        published == 0 or len(got) == len(self.witnesses)):
                    self._publish(size, note, got)
                    published = len(got)
        except FuturesTimeout:
            pass  # the slow ones count next round
        if published < len(got):
            self._publish(size, note, got)
        self.round_cosignatures = len(got)
        if not got or len(got) < self.quorum:
            log.warning("checkpoint %d: %d of %d witness cosignatures, %d needed; not published",
                        size, len(got), len(self.witnesses), self.quorum)
            self._published_at = time.monotonic()  # retry on growth or after the refresh time

    def _publish(self, size: int, note: bytes, got: list[NoteSignature]) -> None:
        if not self._running:
            return  # stopping: the store is about to close
        parsed = parse_note(note)
        sigs = {(s.name, s.key_id): s for s in got}
        current = self.store.cosigned()
        if current is not None and current[0] == size:
            # Same checkpoint again (a refresh): keep every witness's newest cosignature, so a
            # round where one witness is down never publishes fewer cosignatures than before.
            for old in parse_note(current[1]).signatures:
                k = (old.name, old.key_id)
                if k in self._witness_ids and (k not in sigs or _ts(sigs[k]) < _ts(old)):
                    sigs[k] = old
        if len(sigs) < self.quorum:
            return
        cosigned = Note(parsed.text, (*parsed.signatures, *sigs.values())).to_bytes()
        if self.store.publish_cosigned(size, cosigned):
            self._published_size, self._published_at = size, time.monotonic()
            self.m_published.inc()
            self.on_publish(size, cosigned)

    def _post(self, base: str, body: bytes) -> tuple[int, str, bytes]:
        """POST add-checkpoint with a total deadline and a cap on the answer (a witness that
        trickles bytes or sends a flood must not hold a round or the sequencer's memory)."""
        url = base + "/add-checkpoint"
        with self._http.stream("POST", url, content=body, headers=self._auth.get(base)) as resp:
            data = read_bounded(resp, MAX_ANSWER, self.timeout, f"witness {url}")
            return resp.status_code, resp.headers.get("content-type", ""), data

    def _push(self, w: WitnessState, size: int, note: bytes) -> NoteSignature | None:
        """One witness: add-checkpoint (and one retry after a 409 with its size)."""
        old = w.known_size if w.known_size is not None and w.known_size <= size else 0
        for _attempt in range(2):
            t0 = time.perf_counter()
            try:
                proof = self._proof(old, size)
                status, ctype, content = self._post(w.url, _body(old, proof, note))
            except (httpx.HTTPError, OSError, MalformedError) as exc:
                self._failed(w, "unreachable")
                log.warning("witness %s: %s", w.verifier.name, exc)
                return None
            self.m_latency.observe(time.perf_counter() - t0, w.verifier.name)
            if status == 200:
                sig = self._check(w, note, content)
                if sig is not None:  # a late answer for an older size must not move it back
                    w.known_size = max(size, w.known_size or 0)
                return sig
            sized = ctype.split(";", 1)[0].strip().lower() == "text/x.tlog.size"
            if status == 409 and sized:
                try:
                    known = parse_decimal(content.decode("ascii").rstrip("\n"), what="size")
                except (MalformedError, UnicodeDecodeError):
                    known = -1
                if 0 <= known <= size and known != old:
                    w.known_size, old = known, known
                    self.m_requests.inc(1, w.verifier.name, "retry_409")
                    continue
                self._alarm(w, f"says it cosigned size {known}; ours is {size}")
                return None
            text = content[:200].decode("utf-8", "replace")
            if status in (409, 422):
                self._alarm(w, f"HTTP {status}: {text!r}")
                return None
            self._failed(w, f"http_{status}")
            log.warning("witness %s: HTTP %d %s", w.verifier.name, status, text)
            return None
        return None

    def _failed(self, w: WitnessState, outcome: str) -> None:
        w.up = False
        self.m_requests.inc(1, w.verifier.name, outcome)
        self.m_failures.inc(1, w.verifier.name)

    def _alarm(self, w: WitnessState, what: str) -> None:
        self._failed(w, "inconsistent")
        log.error("ALARM: witness %s reports our log inconsistent with what it cosigned: %s",
                  w.verifier.name, what)

    def _proof(self, old: int, size: int) -> list[bytes]:
        if old in (0, size):
            return []
        return self.store.consistency_proof(old, size)

    def _check(self, w: WitnessState, note: bytes, answer: bytes) -> NoteSignature | None:
        """The witness's cosignature line, verified on our checkpoint, or None."""
        if len(answer) > MAX_ANSWER:
            return None
        try:
            parsed = parse_note(note)
            opened = verify_note(parsed.to_bytes() + answer, [w.verifier])
            if opened.text != parsed.text:
                raise MalformedError("the cosigned text is not our checkpoint")
            sig = opened.verified[0]
            if _ts(sig) > time.time() + CLOCK_SKEW:  # clients would not count it
                raise MalformedError(f"cosignature dated {_ts(sig) - int(time.time())} s in the future")
        except (MalformedError, UnknownKeyError, SignatureError) as exc:
            self._failed(w, "bad_cosignature")
            log.warning("witness %s answered without a valid cosignature: %s", w.verifier.name, exc)
            return None
        self.m_requests.inc(1, w.verifier.name, "cosigned")
        w.up = True
        return sig


def _body(old: int, proof: list[bytes], note: bytes) -> bytes:
    return (f"old {old}\n" + "".join(b64encode(h) + "\n" for h in proof) + "\n").encode() + note


def _ts(sig: NoteSignature) -> int:
    """A cosignature/v1 line's timestamp."""
    return int.from_bytes(sig.sig[:8], "big")
