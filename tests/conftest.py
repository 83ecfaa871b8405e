from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from client.note import Ed25519Signer, sign_note
from tests.serverproc import ServerProc
from tlog.storage import LogStore

ORIGIN = "test.example/log"
# A fixed seed so failures reproduce; never a real key.
SEED = bytes(range(32))


@pytest.fixture
def signer() -> Ed25519Signer:
    return Ed25519Signer(ORIGIN, SEED)


@pytest.fixture
def store(tmp_path: Path, signer: Ed25519Signer) -> Iterator[LogStore]:
    s = LogStore(tmp_path / "db", create=True, map_size=1 << 30)
    s.initialize(ORIGIN, lambda t: sign_note(t, [signer]))
    yield s
    s.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    """A real `tlog serve --allow-raw` process on 127.0.0.1, port chosen by the OS."""
    srv = ServerProc(tmp_path / "data", args=["--allow-raw", "--origin", ORIGIN]).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One real PostgreSQL 15 cluster for the session (tests take a fresh database each)."""
    from tests.engines import Postgres

    pg = Postgres()
    yield pg
    pg.close()


@pytest.fixture(scope="session")
def ceph() -> Iterator[object]:
    """One real Ceph RADOS Gateway (S3) for the session (tests take a fresh bucket each)."""
    from tests.engines import Ceph

    c = Ceph()
    yield c
    c.close()


@pytest.fixture
def dist(tmp_path: Path, ceph: object, postgres: object) -> Iterator[object]:
    """A scaled-out log's place on the real engines: a fresh bucket and database (tests start
    its processes with `dist.start(name, role)`; tests/distlog.py)."""
    from tests.distlog import DistLog

    d = DistLog(tmp_path, ceph.endpoint, ceph.new_bucket(), postgres.new_database())  # type: ignore[attr-defined]
    yield d
    d.stop()
