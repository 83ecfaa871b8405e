"""Fault campaign against real processes: hostile clients, a full disk, a crashing witness.

- Thousands of hostile TCP connections (idle, headers trickled a byte a second, bodies
  trickled) leave a normal client served with bounded latency; slow bodies get 408.
- Idle connections are closed `header_timeout` after they connect, so they cannot hold
  `max_connections` for long; `max_connections_per_client` caps one address's share at
  once; the server lifts a low soft RLIMIT_NOFILE, so clients are not cut off past it.
- The disk fills under concurrent submitters: every answer is a receipt or a JSON 507/503
  with a stable code, reads keep working, appends resume when space returns, and every
  acknowledged entry is intact (also after a restart and `tlog fsck`).
- A witness killed with SIGKILL and restarted mid-traffic never loses what it cosigned, every
  cosignature the log serves verifies, and the log is cosigned again once it is back.

`check_acknowledged` is shared with tests/test_crash_loop.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import random
import resource
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from client import merkle
from client.checkpoint import Checkpoint, parse_checkpoint_text
from client.encoding import b64decode_std
from client.keyfile import write_key
from client.note import CosignatureV1Verifier, Ed25519Signer, parse_note, parse_vkey, verify_note
from client.tiles import TILE_WIDTH, entries_path, parse_bundle, tile_path
from client.verify import verify_receipt_doc
from tests import test_disk_full
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc, WitnessProc
from tests.test_durability import _fsck
from tests.test_witness import write_config
from tests.test_witnessing import LOG, NAMES, SEEDS, init_log, start_log, witness_vkey

ARGS = ["--allow-raw", "--origin", ORIGIN]
Acked = list[tuple[bytes, dict[str, Any]]]

small_disk = test_disk_full.small_disk  # the 24 MiB tmpfs data dir fixture


# --- shared checks ------------------------------------------------------------------------


def _cp(note: bytes | str) -> Checkpoint:
    raw = note.encode() if isinstance(note, str) else note
    return parse_checkpoint_text(parse_note(raw).text)


def check_acknowledged(url: str, acked: Acked, sample: int = 200) -> Checkpoint:
    """Against the log at `url`: every receipt verifies offline with the log's key, each
    acknowledged entry is byte for byte at its index (entry bundles for all, the JSON API
    for a sample), one root per acknowledged size, and every acknowledged checkpoint is a
    verified consistent prefix of today's tree. Returns today's checkpoint."""
    with httpx.Client(base_url=url, timeout=30) as http:
        vkeys = http.get("/v1/log").json()["verifier_keys"]
        final = parse_checkpoint_text(
            verify_note(http.get("/checkpoint").content, [parse_vkey(v) for v in vkeys]).text)
        at: dict[int, bytes] = {}
        roots: dict[int, bytes] = {}
        for data, receipt in acked:
            index, size = verify_receipt_doc(receipt, vkeys, data)
            assert at.setdefault(index, data) == data, f"two entries acknowledged at {index}"
            assert size <= final.size, (size, final.size)
            cp = _cp(receipt["checkpoint"])
            assert roots.setdefault(cp.size, cp.root) == cp.root, f"two roots for size {cp.size}"
        for bundle in sorted({i // TILE_WIDTH for i in at}):
            width = min(TILE_WIDTH, final.size - bundle * TILE_WIDTH)
            r = http.get("/" + entries_path(bundle, width))
            assert r.status_code == 200, r.text
            entries = parse_bundle(r.content)
            assert len(entries) == width, (bundle, len(entries), width)
            for i in range(bundle * TILE_WIDTH, bundle * TILE_WIDTH + width):
                if i in at:
                    assert entries[i - bundle * TILE_WIDTH] == at[i], f"entry {i} differs"
        for i in random.Random(len(at)).sample(sorted(at), min(sample, len(at))):
            assert http.get(f"/v1/entries/{i}").content == at[i], f"entry {i} differs"
        for size, root in sorted(roots.items()):
            proof = http.get("/v1/proof/consistency", params={"old": size, "new": final.size})
            assert proof.status_code == 200, proof.text
            merkle.verify_consistency(size, final.size, root, final.root,
                                      [b64decode_std(h) for h in proof.json()["hashes"]])
    return final


@contextlib.contextmanager
def _nofile(at_least: int) -> Iterator[None]:
    """RLIMIT_NOFILE raised for this process and the servers it starts (they inherit it;
    `tlog serve` does not raise its own)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < at_least:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (at_least, max(hard, at_least)))
        except (ValueError, OSError) as exc:
            pytest.skip(f"cannot raise RLIMIT_NOFILE to {at_least} (hard {hard}): {exc}")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _raw(data: bytes) -> dict[str, str]:
    return {"raw": base64.b64encode(data).decode()}


def _p99(samples: list[float]) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


# --- 1. hostile connections ---------------------------------------------------------------

IDLE, TRICKLE, SLOW_BODY = 1000, 700, 300
BODY_TIMEOUT = 2.0
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _connect(host: str, port: int, n: int, source: str | None = None) -> list[Conn]:
    out: list[Conn] = []
    local = (source, 0) if source else None
    while len(out) < n:
        out += await asyncio.gather(*[asyncio.wait_for(
            asyncio.open_connection(host, port, local_addr=local), 10)
            for _ in range(min(100, n - len(out)))])
    return out


async def _eof(reader: asyncio.StreamReader) -> None:
    """Until the server closes this connection (whatever it sends first)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


async def _status_line(reader: asyncio.StreamReader, t0: float) -> tuple[float, bytes]:
    """Seconds until the server's answer, and its head."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except (asyncio.IncompleteReadError, ConnectionError, TimeoutError) as exc:
        head = repr(exc).encode()
    return time.monotonic() - t0, head


async def _legit(url: str, seconds: float, tag: str) -> tuple[dict[str, list[float]], Acked, list[str]]:
    """A normal client: submit, read the checkpoint, prove inclusion and consistency, for
    `seconds`; latencies per operation, acknowledged entries, and anything that failed."""
    lat: dict[str, list[float]] = {"submit": [], "checkpoint": [], "inclusion": [], "consistency": []}
    acked: Acked = []
    failed: list[str] = []
    deadline = time.monotonic() + seconds

    async def timed(op: str, coro: Awaitable[httpx.Response]) -> httpx.Response | None:
        t0 = time.monotonic()
        try:
            r = await coro
        except httpx.HTTPError as exc:
            failed.append(f"{op}: {exc!r}")
            return None
        lat[op].append(time.monotonic() - t0)
        if r.status_code not in (200, 201):
            failed.append(f"{op}: {r.status_code} {r.text[:200]}")
            return None
        return r

    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        i = 0
        while time.monotonic() < deadline:
            data = f"{tag}-{i}".encode()
            i += 1
            r = await timed("submit", c.post("/v1/entries", json=_raw(data)))
            if r is not None:
                acked.append((data, r.json()))
            r = await timed("checkpoint", c.get("/checkpoint"))
            if r is None or not acked:
                continue
            cp = _cp(r.content)
            index, old = acked[-1][1]["index"], acked[0][1]["inclusion_proof"]["tree_size"]
            r = await timed("inclusion", c.get("/v1/proof/inclusion",
                                               params={"index": index, "size": cp.size}))
            if r is not None:
                merkle.verify_inclusion(index, cp.size, merkle.leaf_hash(acked[-1][0]),
                                        [b64decode_std(h) for h in r.json()["hashes"]], cp.root)
            await timed("consistency", c.get("/v1/proof/consistency",
                                             params={"old": old, "new": cp.size}))
    return lat, acked, failed


def test_thousands_of_hostile_connections_leave_clients_served(tmp_path: Path) -> None:
    """2000 connections (1000 idle, 700 trickling request headers a byte a second, 300
    trickling a POST body) against 2 workers: two normal clients keep getting receipts,
    checkpoints and proofs, all of them, p99 under 2 s; slow bodies get 408 at body_timeout.
    Idle and header-trickling connections are never dropped (printed, not asserted)."""
    total = IDLE + TRICKLE + SLOW_BODY
    cfg = tmp_path / "log.toml"
    cfg.write_text(f"[log]\nbody_timeout = {BODY_TIMEOUT}\n")
    with _nofile(total + 1024):
        srv = ServerProc(tmp_path / "data", args=[*ARGS, "--config", str(cfg)], workers=2).start()
        try:
            asyncio.run(_hostile_scenario(srv.url))
        except BaseException:
            assert srv.log_path is not None
            print(srv.log_path.read_text()[-4000:])
            raise
        finally:
            srv.stop()


async def _hostile_scenario(url: str) -> None:
    split = urlsplit(url)
    host, port = split.hostname or "", split.port or 0
    t0 = time.monotonic()
    idle = await _connect(host, port, IDLE)
    trickle = await _connect(host, port, TRICKLE)
    slow = await _connect(host, port, SLOW_BODY)
    print(f"opened {IDLE + TRICKLE + SLOW_BODY} hostile connections in {time.monotonic() - t0:.2f} s")
    t0 = time.monotonic()
    watch = [asyncio.create_task(_eof(r)) for r, _ in idle + trickle]
    head = b"GET /checkpoint HTTP/1.1\r\nHost: x\r\nX-Slow: "  # and then "a" forever
    body_head = (b"POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{")
    for _, w in slow:
        w.write(body_head)
    answers = [asyncio.create_task(_status_line(r, t0)) for r, _ in slow]
    stop = asyncio.Event()

    async def ticker() -> None:
        """One byte a second on every trickling connection (headers that never end, and
        the body, which goes on after the 408: nothing closes those either)."""
        tick = 0
        while not stop.is_set():
            for _, w in trickle:
                if not w.is_closing():
                    w.write(head[tick:tick + 1] if tick < len(head) else b"a")
            for _, w in slow:
                if not w.is_closing():
                    w.write(b" ")
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    ticking = asyncio.create_task(ticker())
    try:
        results = await asyncio.gather(*[_legit(url, 6.0, f"legit{k}") for k in range(2)])
        for lat, acked, failed in results:
            assert not failed, failed[:10]
            assert len(acked) >= 10, len(acked)
            for op, samples in lat.items():
                print(f"{op}: n={len(samples)} p99={_p99(samples) * 1000:.0f} ms "
                      f"max={max(samples) * 1000:.0f} ms")
                assert _p99(samples) < 2.0 and max(samples) < 5.0, (op, sorted(samples)[-5:])
        slow_answers = await asyncio.wait_for(asyncio.gather(*answers), 30)
        codes = {a[1].split(b"\r\n", 1)[0] for a in slow_answers}
        assert codes == {b"HTTP/1.1 408 Request Timeout"}, codes
        late = max(a[0] for a in slow_answers)
        print(f"slow bodies: {len(slow_answers)} x 408 within {late:.1f} s (body_timeout {BODY_TIMEOUT} s)")
        assert late < BODY_TIMEOUT + 5
        drained = [asyncio.create_task(_eof(r)) for r, _ in slow]
        await asyncio.wait(drained, timeout=1.0)
        print(f"{sum(t.done() for t in drained)} of {SLOW_BODY} slow-body connections closed "
              f"after their 408 (FINDING: kept open while the client trickles)")
        for t in drained:
            t.cancel()
        elapsed = time.monotonic() - t0
        dropped = sum(t.done() for t in watch)
        print(f"after {elapsed:.1f} s: {dropped} of {IDLE} idle + {TRICKLE} header-trickling "
              f"connections dropped by the server (FINDING: no timeout before a first request)")
        # Every legit entry is there for good.
        check_acknowledged(url, [a for _, acked, _ in results for a in acked])
    finally:
        stop.set()
        await ticking
        for t in watch:
            t.cancel()
        for _, w in idle + trickle + slow:
            w.close()
        await asyncio.gather(*watch, return_exceptions=True)


def test_idle_connections_are_closed_and_capped_per_client(tmp_path: Path) -> None:
    """40 idle sockets against `max_connections = 32`: the server answers 503 while they are
    held, closes them `header_timeout` after they connected, and serves clients again. With
    `max_connections_per_client = 8`, idle sockets from one address (127.0.0.2) never take
    more than 8 places, so a client at another address (127.0.0.1) is served at once."""
    cfg = tmp_path / "log.toml"
    cfg.write_text("[log]\nmax_connections = 32\nheader_timeout = 1.0\n")
    srv = ServerProc(tmp_path / "data", args=[*ARGS, "--config", str(cfg)]).start()

    async def closed_after_timeout() -> None:
        split = urlsplit(srv.url)
        conns = await _connect(split.hostname or "", split.port or 0, 40)
        try:
            t0 = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*(_eof(r) for r, _ in conns)), 10)
            assert time.monotonic() - t0 < 5
            async with httpx.AsyncClient(base_url=srv.url, timeout=5) as c:
                r = await c.get("/checkpoint")
            assert r.status_code == 200, (r.status_code, r.text[:80])
        finally:
            for _, w in conns:
                w.close()

    try:
        asyncio.run(closed_after_timeout())
    finally:
        srv.stop()

    cfg.write_text("[log]\nmax_connections = 32\nheader_timeout = 30.0\nmax_connections_per_client = 8\n")
    srv = ServerProc(tmp_path / "data", args=[*ARGS, "--config", str(cfg)]).start()

    async def capped() -> None:
        split = urlsplit(srv.url)
        conns = await _connect(split.hostname or "", split.port or 0, 40, source="127.0.0.2")
        try:
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient(base_url=srv.url, timeout=5) as c:
                r = await c.get("/checkpoint")
            assert r.status_code == 200, (r.status_code, r.text[:80])
            await asyncio.sleep(0.2)
            held = sum(not r.at_eof() for r, _ in conns)
            assert held <= 8, held
        finally:
            for _, w in conns:
                w.close()

    try:
        asyncio.run(capped())
    finally:
        srv.stop()


def test_the_witness_closes_idle_connections_and_caps_each_client(tmp_path: Path) -> None:
    """The witness's own `header_timeout` and `max_connections_per_client`: 20 idle sockets
    from 127.0.0.2 hold at most 4 places and are closed a second after they connected, while
    127.0.0.1 is served throughout."""
    cfg = write_config(tmp_path, [(ORIGIN, LOG.verifier().vkey())], header_timeout=1.0,
                       max_connections_per_client=4)
    w = WitnessProc(tmp_path / "wstate", args=["--config", str(cfg)]).start()

    async def run() -> None:
        split = urlsplit(w.url)
        conns = await _connect(split.hostname or "", split.port or 0, 20, source="127.0.0.2")
        try:
            t0 = time.monotonic()
            await asyncio.sleep(0.3)
            assert sum(not r.at_eof() for r, _ in conns) <= 4
            async with httpx.AsyncClient(base_url=w.url, timeout=5) as c:
                assert (await c.get("/healthz")).status_code == 200
            await asyncio.wait_for(asyncio.gather(*(_eof(r) for r, _ in conns)), 10)
            assert time.monotonic() - t0 < 5
        finally:
            for _, wr in conns:
                wr.close()

    try:
        asyncio.run(run())
    finally:
        w.stop()


@dataclass
class _LimitedServer(ServerProc):
    """`tlog serve` started with a soft RLIMIT_NOFILE of `nofile` (the hard one unchanged),
    as under systemd's default of 1024 without LimitNOFILE."""

    nofile: int = 256

    def command(self) -> list[str]:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        return ["prlimit", f"--nofile={self.nofile}:{hard}", *super().command()]


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
async def _exchange(host: str, port: int, data: bytes, source: str = "127.0.0.1") -> tuple[bytes, float]:
    """Send `data` on a fresh connection; (everything the server sent until it closed or 5 s
    of silence, seconds until then)."""
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    writer.write(data)
    got = b""
    with contextlib.suppress(ConnectionError, TimeoutError):
        while chunk := await asyncio.wait_for(reader.read(65536), 5):
            got += chunk
    writer.close()
    return got, time.monotonic() - t0


def test_hostile_requests_get_bounded_answers(tmp_path: Path) -> None:
    """Requests made to hold or grow a worker: 70 KiB of headers get 431 and a close; a body
    trickled after a 401 is cut off at body_timeout (plus grace), not held for ever; WebSocket
    upgrades are not taken (none leaks a connection slot); X-Forwarded-For from a client does
    not buy a fresh rate-limit budget; and connections count per /24 where so configured."""
    from client.guarded_http import BODY_GRACE, MAX_HEADER_BYTES
    from client.tokens import add_token

    add_token(tmp_path / "submitters.tokens", "ci")
    cfg = tmp_path / "log.toml"
    cfg.write_text("[log]\nheader_timeout = 3.0\nbody_timeout = 1.0\nmax_connections_per_client = 3\n"
                   f'rate_ipv4_prefix = 24\nrate_tile = 0.001\nrate_tile_burst = 2\n'
                   f'submit_tokens_file = "{tmp_path / "submitters.tokens"}"\n')
    srv = ServerProc(tmp_path / "data", args=[*ARGS, "--config", str(cfg)]).start()
    split = urlsplit(srv.url)
    host, port = split.hostname or "", split.port or 0

    async def run() -> None:
        # Headers past the limit: 431, then the connection is closed.
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: %s\r\n" % (b"a" * 8000) * 10
        assert len(big) > MAX_HEADER_BYTES
        got, _ = await _exchange(host, port, big + b"\r\n")
        assert got.startswith(b"HTTP/1.1 431 ") and b'"headers_too_large"' in got, got[:200]
        assert b"HTTP/1.1 400" not in got
        # The same headers in small pieces, never ended: cut off once the pieces add up (the
        # 431 may be lost to the reset of a close with unread data, as with any server).
        reader, writer = await asyncio.open_connection(host, port)
        t0 = time.monotonic()
        with contextlib.suppress(ConnectionError):
            for _ in range(0, 4 * len(big), 4096):  # header lines that never end
                writer.write(big[:4096])
                await writer.drain()
                await asyncio.sleep(0.002)
        with contextlib.suppress(ConnectionError):  # but not TimeoutError: a held connection fails
            got = await asyncio.wait_for(reader.read(65536), 5)
            assert got == b"" or got.startswith(b"HTTP/1.1 431 "), got[:100]
        assert time.monotonic() - t0 < 2.5  # cut off by the count, before header_timeout
        writer.close()
        # One header line that never ends (httptools holds it until it does): cut off too.
        reader, writer = await asyncio.open_connection(host, port)
        t0 = time.monotonic()
        with contextlib.suppress(ConnectionError):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Endless: ")
            for _ in range(64):
                writer.write(b"a" * 4096)
                await writer.drain()
                await asyncio.sleep(0.002)
        with contextlib.suppress(ConnectionError):
            got = await asyncio.wait_for(reader.read(65536), 5)
            assert got == b"" or got.startswith(b"HTTP/1.1 431 "), got[:100]
        assert time.monotonic() - t0 < 2.5
        writer.close()
        # Trailers of a chunked body count against the same limit: the connection is closed.
        reader, writer = await asyncio.open_connection(host, port)
        t0 = time.monotonic()
        with contextlib.suppress(ConnectionError):
            writer.write(b"POST /v1/entries HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"1\r\n{\r\n0\r\n")
            for i in range(64):
                writer.write(b"X-T%d: %s\r\n" % (i, b"t" * 2000))
                await writer.drain()
                await asyncio.sleep(0.002)
        with contextlib.suppress(ConnectionError):
            while await asyncio.wait_for(reader.read(65536), 5):
                pass
        assert time.monotonic() - t0 < 2.5
        writer.close()
        # Many requests pipelined in one write are each answered, none taken for one
        # oversized request.
        got, _ = await _exchange(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
                                 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert got.count(b"HTTP/1.1 200 ") == 2001 and b" 431 " not in got, got.count(b"HTTP/1.1 200 ")
        # WebSocket upgrades, more of them than the per-client cap: each gets an HTTP answer
        # and frees its slot when it closes.
        upgrade = (b"GET /explorer/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        for i in range(5):
            reader, writer = await asyncio.open_connection(host, port, local_addr=(f"127.0.0.{2 + i}", 0))
            writer.write(upgrade)
            got = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert got.startswith(b"HTTP/1.1 ") and not got.startswith(b"HTTP/1.1 101"), got[:100]
            writer.close()
            await asyncio.sleep(0.05)
        # One /24 holds at most 3 connections: a fourth, from another address in it, is closed.
        held = [await asyncio.open_connection(host, port, local_addr=(f"127.0.0.{10 + i}", 0))
                for i in range(3)]
        await asyncio.sleep(0.2)
        got, took = await _exchange(host, port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "127.0.0.20")
        assert got == b"" and took < 2, (got[:80], took)
        for _, w in held:
            w.close()
        await asyncio.sleep(0.2)
        # A body trickled after the answer (401: no token) holds the connection no longer
        # than body_timeout plus the grace.
        reader, writer = await asyncio.open_connection(host, port)
        t0 = time.monotonic()
        writer.write(b"POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000\r\n\r\n{")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 401 "), head
        closed = None
        while time.monotonic() - t0 < 20 and closed is None:
            try:
                writer.write(b" ")
                await writer.drain()
                if await asyncio.wait_for(reader.read(65536), 0.3) == b"":
                    closed = time.monotonic() - t0
            except TimeoutError:
                pass
            except ConnectionError:
                closed = time.monotonic() - t0
        writer.close()
        assert closed is not None and closed < 1.0 + BODY_GRACE + 3, closed
        # X-Forwarded-For is not believed from a client: the tile budget (burst 2) runs out.
        async with httpx.AsyncClient(base_url=srv.url, timeout=5) as c:
            codes = [(await c.get("/checkpoint", headers={"X-Forwarded-For": f"203.0.{i}.7"})).status_code
                     for i in range(3)]
        assert codes == [200, 200, 429], codes

    try:
        asyncio.run(run())
    finally:
        srv.stop()


def test_a_low_soft_fd_limit_does_not_cut_clients_off(tmp_path: Path) -> None:
    """Started with a soft limit of 256 open files, the server lifts it to the hard limit, so
    400 held connections do not cut a client off."""
    srv = _LimitedServer(tmp_path / "data", args=ARGS).start()

    async def scenario() -> None:
        split = urlsplit(srv.url)
        conns = await _connect(split.hostname or "", split.port or 0, 400)
        try:
            await asyncio.sleep(0.5)
            async with httpx.AsyncClient(base_url=srv.url, timeout=5) as c:
                try:
                    status = (await c.get("/checkpoint")).status_code
                except httpx.HTTPError as exc:
                    status = repr(exc)
            assert status == 200, status
        finally:
            for _, w in conns:
                w.close()

    try:
        asyncio.run(scenario())
    finally:
        srv.stop()


# --- 2. disk full under load --------------------------------------------------------------

# What a submitter may be told besides a receipt, with its stable code.
REFUSALS = {(507, "disk_full"), (503, "overloaded"), (503, "unavailable")}


def test_disk_full_under_concurrent_load(small_disk: Path) -> None:
    """8 concurrent submitters against 2 workers while a filler file fills the data dir's
    tmpfs: every answer is a receipt or a JSON refusal in REFUSALS with Retry-After (no 500,
    no other code); once a 507 came back, nothing sent later is accepted until space
    returns; health, checkpoint, tiles, bundles and proofs keep working while full; appends
    resume once the filler is deleted; every acknowledged entry survives fsck and a restart."""
    srv = ServerProc(small_disk, args=ARGS, workers=2).start()
    try:
        acked = asyncio.run(_disk_full_scenario(srv.url, small_disk))
        check_acknowledged(srv.url, acked)
    except BaseException:
        assert srv.log_path is not None
        print(srv.log_path.read_text()[-4000:])
        raise
    finally:
        srv.stop()
    check = _fsck(small_disk)
    assert check.returncode == 0, check.stdout + check.stderr
    srv = ServerProc(small_disk, args=ARGS).start()
    try:
        check_acknowledged(srv.url, acked)  # durable, not just in memory
    finally:
        srv.stop()


async def _disk_full_scenario(url: str, data_dir: Path) -> Acked:
    acked: Acked = []
    # (sent at, answered at, phase when sent, status, error code or "")
    answers: list[tuple[float, float, str, int, str]] = []
    bad: list[str] = []
    phase = ["before"]
    stop = asyncio.Event()

    async def submitter(w: int, c: httpx.AsyncClient) -> None:
        i = 0
        while not stop.is_set():
            data = f"w{w}-{i}-".encode() + os.urandom(600)
            i += 1
            sent, when = time.monotonic(), phase[0]
            try:
                r = await c.post("/v1/entries", json=_raw(data))
            except httpx.HTTPError as exc:
                bad.append(f"{when}: {exc!r}")
                continue
            code = ""
            if r.status_code == 201:
                acked.append((data, r.json()))
            else:
                try:
                    code = r.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = "<not JSON>"
                if (r.status_code, code) not in REFUSALS or "retry-after" not in r.headers:
                    bad.append(f"{when}: {r.status_code} {r.headers} {r.text[:200]}")
            answers.append((sent, time.monotonic(), when, r.status_code, code))
            if r.status_code == 507:
                await asyncio.sleep(0.02)  # (a real client would wait Retry-After)

    async def until(what: str, ok: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ok():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            assert not bad, bad[:10]
            await asyncio.sleep(0.02)

    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
        tasks = [asyncio.create_task(submitter(w, c)) for w in range(8)]
        try:
            await until("100 receipts", lambda: len(acked) >= 100, 30)
            phase[0] = "filling"
            await asyncio.to_thread(test_disk_full._fill, data_dir / "filler")
            phase[0] = "full"
            await until("a 507", lambda: any(a[3] == 507 for a in answers), 30)
            first_507 = min(a[1] for a in answers if a[3] == 507)
            await asyncio.sleep(1.0)  # submitters keep hammering the full disk
            await _reads_while_full(c, acked)
            freed = time.monotonic()
            (data_dir / "filler").unlink()
            phase[0] = "freed"
            while (await c.get("/healthz")).status_code != 200:
                assert time.monotonic() - freed < 20, "appends did not resume"
                await asyncio.sleep(0.05)
            print(f"healthz ok {time.monotonic() - freed:.2f} s after the filler was deleted")
            await until("100 receipts after space returned",
                        lambda: sum(a[2] == "freed" and a[3] == 201 for a in answers) >= 100, 30)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    assert not bad, bad[:10]
    late = [a for a in answers if first_507 < a[0] < freed and a[3] == 201]
    assert not late, f"{len(late)} submissions sent after the first 507 were accepted while full"
    counts: dict[tuple[str, int, str], int] = {}
    for a in answers:
        counts[a[2], a[3], a[4]] = counts.get((a[2], a[3], a[4]), 0) + 1
    print("answers by phase, status, code:", dict(sorted(counts.items())))
    return acked


async def _reads_while_full(c: httpx.AsyncClient, acked: Acked) -> None:
    """Health says read_only / disk_full; checkpoint, tiles, bundles and proofs all serve."""
    health = await c.get("/healthz")
    assert health.status_code == 503, health.text
    doc = health.json()
    assert doc["status"] == "read_only" and doc["error"]["code"] == "disk_full", doc
    r = await c.get("/checkpoint")
    assert r.status_code == 200
    cp = _cp(r.content)
    assert cp.size == doc["tree_size"] >= len(acked)
    width = min(TILE_WIDTH, cp.size)
    tile = await c.get("/" + tile_path(0, 0, width))
    bundle = await c.get("/" + entries_path(0, width))
    assert tile.status_code == bundle.status_code == 200
    entries = parse_bundle(bundle.content)
    assert tile.content == b"".join(merkle.leaf_hash(e) for e in entries)
    for data, receipt in random.Random(1).sample(acked, 20):
        index = receipt["index"]
        r = await c.get("/v1/proof/inclusion", params={"index": index, "size": cp.size})
        assert r.status_code == 200, r.text
        merkle.verify_inclusion(index, cp.size, merkle.leaf_hash(data),
                                [b64decode_std(h) for h in r.json()["hashes"]], cp.root)
        old = _cp(receipt["checkpoint"])
        r = await c.get("/v1/proof/consistency", params={"old": old.size, "new": cp.size})
        assert r.status_code == 200, r.text
        merkle.verify_consistency(old.size, cp.size, old.root, cp.root,
                                  [b64decode_std(h) for h in r.json()["hashes"]])
        assert (await c.get(f"/v1/entries/{index}")).content == data


# --- 3. a witness killed and restarted ----------------------------------------------------

WITNESS_RESTARTS = 15
FAULT_SEED = int(os.environ.get("FAULT_SEED", "20260607"))


def test_a_witness_killed_and_restarted_loses_nothing_it_cosigned(tmp_path: Path) -> None:
    """A log (quorum 1, witness_wait_timeout 1 s) with one real witness, under 3 submitters;
    the witness is SIGKILLed and restarted (same port) WITNESS_RESTARTS times at random
    moments, down for 0.05-0.6 s, or 1.6 s (longer than the wait) every fifth time.
    Every submission gets a receipt (cosigned, or log-signed only when the witness stayed
    down too long); every cosignature the log serves, in receipts and on /checkpoint,
    verifies; the cosigned size on /checkpoint never goes backwards; after each restart the
    witness's stored checkpoint is at least every size the log had served cosigned before
    the kill (it fsyncs before it answers) and never smaller than before; the log gets
    cosigned up to its current size again after each restart."""
    print(f"FAULT_SEED={FAULT_SEED}")
    wdir = tmp_path / "w0"
    wdir.mkdir()
    write_key(wdir / "witness.key", Ed25519Signer(NAMES[0], SEEDS[0]))
    cfg = write_config(wdir, [(ORIGIN, LOG.verifier().vkey())], rate_per_log=1000.0, burst=1000)
    witness = WitnessProc(wdir / "state", args=["--config", str(cfg)]).start()
    witness.args += ["--listen", f"127.0.0.1:{urlsplit(witness.url).port}"]  # same URL each time
    try:
        init_log(tmp_path / "log")
        log = start_log(tmp_path, tmp_path / "log", [witness], quorum=1, wait_timeout=1.0)
        try:
            acked = asyncio.run(_witness_scenario(log.url, witness, random.Random(FAULT_SEED)))
            check_acknowledged(log.url, acked)
        except BaseException:
            for proc in (log, witness):
                assert proc.log_path is not None
                print(proc.log_path.read_text()[-3000:])
            raise
        finally:
            log.stop()
    finally:
        witness.stop()


async def _witness_scenario(url: str, witness: WitnessProc, rng: random.Random) -> Acked:
    log_v = LOG.verifier()
    wit_v = parse_vkey(witness_vkey(0))
    assert isinstance(wit_v, CosignatureV1Verifier)
    wkey = (wit_v.name, wit_v.key_id)
    state_url = f"{witness.url}/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint"
    acked: Acked = []
    bad: list[str] = []
    cosigned = [0]  # the largest size the log has served cosigned by the witness
    stop = asyncio.Event()

    def cosigned_size(note: bytes) -> int | None:
        """The size, if the note carries the witness's cosignature; every signature by the
        log or the witness must verify (verify_note raises otherwise)."""
        opened = verify_note(note, [log_v, wit_v])
        assert (log_v.name, log_v.key_id) in {(s.name, s.key_id) for s in opened.verified}
        size = parse_checkpoint_text(opened.text).size
        return size if wkey in {(s.name, s.key_id) for s in opened.verified} else None

    async def submitter(w: int, c: httpx.AsyncClient) -> None:
        i = 0
        while not stop.is_set():
            data = f"wit-{w}-{i}".encode()
            i += 1
            try:
                r = await c.post("/v1/entries", json=_raw(data))
            except httpx.HTTPError as exc:
                bad.append(f"submit: {exc!r}")
                continue
            if r.status_code != 201:
                bad.append(f"submit: {r.status_code} {r.text[:200]}")
                continue
            doc = r.json()
            if doc["witnessed"] and cosigned_size(doc["checkpoint"].encode()) is None:
                bad.append(f"receipt {doc['index']} says witnessed but carries no cosignature")
            acked.append((data, doc))

    async def sampler(c: httpx.AsyncClient) -> None:
        while not stop.is_set():
            size = cosigned_size((await c.get("/checkpoint")).content)
            if size is not None:
                if size < cosigned[0]:
                    bad.append(f"/checkpoint went back from cosigned size {cosigned[0]} to {size}")
                cosigned[0] = max(cosigned[0], size)
            await asyncio.sleep(0.03)

    async def witness_state(c: httpx.AsyncClient) -> int:
        r = await c.get(state_url)
        assert r.status_code == 200, r.text
        size = cosigned_size(r.content)
        assert size is not None, r.text
        return size

    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        tasks = [asyncio.create_task(submitter(w, c)) for w in range(3)]
        tasks.append(asyncio.create_task(sampler(c)))
        try:
            stored = await witness_state(c)
            for k in range(WITNESS_RESTARTS):
                await asyncio.sleep(rng.uniform(0.1, 0.6))  # up, cosigning
                witness.kill9()
                # Down; every fifth outage outlasts witness_wait_timeout: receipts then come
                # log-signed only.
                await asyncio.sleep(1.6 if k % 5 == 2 else rng.uniform(0.05, 0.6))
                served = cosigned[0]  # all the log got from the witness before the kill
                await asyncio.to_thread(witness.start)
                now = await witness_state(c)
                assert now >= stored and now >= served, (k, stored, served, now)
                stored = now
                target = (await c.get("/v1/log")).json()["tree_size"]
                deadline = time.monotonic() + 10
                while cosigned[0] < target:  # cosigned again, up to the size at its return
                    assert time.monotonic() < deadline, (k, cosigned[0], target)
                    assert not bad, bad[:10]
                    await asyncio.sleep(0.02)
                print(f"restart {k}: witness stored {now} (log had served {served} cosigned), "
                      f"cosigned again up to {cosigned[0]} >= {target}")
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        assert not bad, bad[:10]
        final = (await c.get("/v1/log")).json()["tree_size"]
        deadline = time.monotonic() + 10
        while (size := cosigned_size((await c.get("/checkpoint")).content)) != final:
            assert time.monotonic() < deadline, (size, final)
            await asyncio.sleep(0.05)
        assert await witness_state(c) == final
    witnessed = sum(bool(doc["witnessed"]) for _, doc in acked)
    print(f"{len(acked)} receipts, {witnessed} cosigned, {len(acked) - witnessed} log-signed only")
    assert witnessed and len(acked) - witnessed, "expected both cosigned and log-signed receipts"
    return acked
