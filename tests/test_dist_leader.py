"""The scaled-out sequencer's leader loop against faults, on a real PostgreSQL: a connection
that cannot be opened at takeover, the notification connection dropped, and a publish whose
commit went through but whose answer was lost. The bucket is an in-memory stand-in here
(fault injection around the leader alone; tests/test_dist*.py run the real Ceph)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from client.checkpoint import Checkpoint
from client.keyfile import load_or_create
from client.merkle import EMPTY_ROOT
from client.note import sign_note
from tests.engines import Postgres
from tlog.dist import sequencer as seq
from tlog.dist.db import Db, DbError, Head

ORIGIN = "example.com/leader-test"


class MemoryBucket:
    """Objects in a dict, with the conditional writes a real store enforces."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.n = 0

    def _tag(self, path: str) -> str:
        self.n += 1
        self.etags[path] = f"e{self.n}"
        return self.etags[path]

    async def put(self, path: str, data: bytes, **_: Any) -> str:
        self.objects[path] = data
        return self._tag(path)

    async def put_many(self, objects: list[tuple[str, bytes, str, str]]) -> None:
        for path, data, _, _ in objects:
            await self.put(path, data)

    async def get(self, path: str) -> bytes | None:
        return self.objects.get(path)

    async def get_with_etag(self, path: str) -> tuple[bytes, str] | None:
        return (self.objects[path], self.etags[path]) if path in self.objects else None

    async def create(self, path: str, data: bytes, **_: Any) -> str | None:
        return None if path in self.objects else await self.put(path, data)

    async def replace(self, path: str, data: bytes, etag: str, **_: Any) -> str | None:
        return await self.put(path, data) if self.etags.get(path) == etag else None


async def new_log(dsn: str, tmp: Path) -> tuple[Db, seq.LeaderConfig]:
    signer, _ = load_or_create(tmp / "log.key", ORIGIN)
    db = await Db.open(dsn)
    await db.create_schema()
    note = sign_note(Checkpoint(ORIGIN, 0, EMPTY_ROOT).text(), [signer])
    await db.initialize(ORIGIN, Head(0, EMPTY_ROOT, note, time.time(), (), 0))
    config = seq.LeaderConfig(
        dsn=dsn, s3={"endpoint": "http://127.0.0.1:9", "bucket": "unused", "access_key_id": "k",
            "secret_access_key": "s"}, key_file=str(tmp / "log.key"),
        origin=ORIGIN, vkeys=(signer.verifier().vkey(),), lease_seconds=1.0)
    return db, config


def leader(config: seq.LeaderConfig, bucket: MemoryBucket) -> seq.Leader:
    ld = seq.Leader(config)
    ld.bucket = ld.tiles.bucket = bucket  # type: ignore[assignment]
    return ld


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def stop(*leaders: seq.Leader, tasks: list[asyncio.Task[None]]) -> None:
    for ld in leaders:
        ld.stopping.set()
    for t in tasks:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(t, 10)


def test_a_failed_connection_at_takeover_gives_the_lease_up(postgres: Postgres, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Without this, the renewer kept the lease alive for a leader that was not leading."""
    async def go() -> None:
        db, config = await new_log(postgres.new_database(), tmp_path)
        real_open = Db.open.__func__  # type: ignore[attr-defined]
        calls = {"n": 0}

        async def flaky_open(cls: type[Db], *args: Any, **kw: Any) -> Db:
            calls["n"] += 1
            if calls["n"] == 2:  # the first leadership's notification connection
                raise DbError("cannot connect to PostgreSQL: too many clients already (injected)")
            return await real_open(cls, *args, **kw)

        monkeypatch.setattr(Db, "open", classmethod(flaky_open))
        ld = leader(config, MemoryBucket())
        task = asyncio.create_task(ld.run())
        await db.add_pending([b"after a failed takeover"])

        async def published() -> bool:
            head = await db.head()
            return head is not None and head.size == 1
        await until(published)
        assert calls["n"] > 3  # it led again, with new connections
        await stop(ld, tasks=[task])
        await db.close()

    asyncio.run(go())


def test_a_dropped_notification_connection_does_not_end_the_sequencer(postgres: Postgres,
                                                                      tmp_path: Path) -> None:
    async def go() -> None:
        db, config = await new_log(postgres.new_database(), tmp_path)
        ld = leader(config, MemoryBucket())
        task = asyncio.create_task(ld.run())
        await until(lambda: _true(ld.epoch is not None))
        await asyncio.sleep(0.3)
        cur = await db.conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                    "WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()")
        assert (await cur.fetchone())[0] >= 1
        await asyncio.sleep(0.5)
        assert not task.done(), task.exception() if task.done() else None
        await db.add_pending([b"after the drop"])

        async def published() -> bool:
            head = await db.head()
            return head is not None and head.size == 1
        await until(published)
        await stop(ld, tasks=[task])
        await db.close()

    asyncio.run(go())


def test_a_publish_whose_answer_was_lost_is_followed(postgres: Postgres, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The head moved although the leader saw an error: it must follow the head, not refuse
    every later batch while it keeps its lease."""
    async def go() -> None:
        db, config = await new_log(postgres.new_database(), tmp_path)
        real_publish = Db.publish
        calls = {"n": 0}

        async def lossy_publish(self: Db, *args: Any, **kw: Any) -> None:
            calls["n"] += 1
            await real_publish(self, *args, **kw)
            if calls["n"] == 2:
                raise DbError("publishing the tree head: connection lost after the commit (injected)")

        monkeypatch.setattr(Db, "publish", lossy_publish)
        bucket = MemoryBucket()
        ld = leader(config, bucket)
        task = asyncio.create_task(ld.run())
        for i in range(5):
            await db.add_pending([f"entry {i}".encode()])
            await asyncio.sleep(0.3)

        async def all_published() -> bool:
            head = await db.head()
            return head is not None and head.size == 5
        await until(all_published)
        assert calls["n"] >= 3
        assert bucket.objects["tile/entries/000.p/5"].count(b"entry ") == 5
        await stop(ld, tasks=[task])
        await db.close()

    asyncio.run(go())


async def _true(value: bool) -> bool:
    return value
