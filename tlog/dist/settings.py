"""From `tlog serve`'s configuration to the scaled-out shape's parts, and the first start.

`prepare` runs in `tlog serve` before any process starts: the object store self-test (a
store that ignores conditional writes is refused before anything is written), the schema,
and on first start the log itself (origin, key, the signed empty tree in PostgreSQL and in
the bucket). A front end needs no key: it reads the origin and the verifier keys the
sequencers recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from client.checkpoint import Checkpoint
from client.merkle import EMPTY_ROOT
from client.note import sign_note
from tlog.config import ConfigError, ServeConfig
from tlog.dist.bucket import NO_CACHE, TEXT, ObjectStore, S3Settings, normalise_prefix
from tlog.dist.db import Db, Head
from tlog.dist.sequencer import LeaderConfig
from tlog.logkey import open_log_key
from tlog.witnessing import witness_access

KEY_FILE = "log.key"


def bucket_settings(config: ServeConfig) -> S3Settings:
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if config.s3_secret_access_key_file:
        try:
            secret = Path(config.s3_secret_access_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"s3_secret_access_key_file: {exc}") from exc
    return S3Settings(endpoint=config.s3_endpoint.rstrip("/"), bucket=config.s3_bucket,
                      region=config.s3_region, prefix=normalise_prefix(config.s3_prefix),
                      access_key_id=config.s3_access_key_id or os.environ.get("AWS_ACCESS_KEY_ID", ""),
                      secret_access_key=secret)


def leader_config(config: ServeConfig, origin: str, vkeys: list[str], listen: str) -> LeaderConfig:
    s3 = bucket_settings(config)
    return LeaderConfig(
        dsn=config.postgres_dsn, s3={k: getattr(s3, k) for k in S3Settings.__dataclass_fields__},
        key_file=str((Path(config.data_dir) / KEY_FILE).resolve()), origin=origin,
        rotation_key_file=str(Path(config.rotation_key_file).resolve()) if config.rotation_key_file else "",
        max_batch=config.max_batch, lease_seconds=config.lease_seconds, listen=listen,
        allow_raw=config.allow_raw, witnesses=config.witnesses, witness_quorum=config.quorum,
        witness_timeout=config.witness_timeout, witness_interval=config.witness_interval,
        witness_access=witness_access(config),
        log_format=config.log_format, vkeys=tuple(vkeys), tpm=config.tpm, tpm_timeout=config.tpm_timeout,
        data_dir=str(Path(config.data_dir).resolve()))


def prepare(config: ServeConfig) -> tuple[str, str, bool]:
    """(origin, verifier key, whether a key was created), the log set up if it is new."""
    return asyncio.run(_prepare(config))


async def _prepare(config: ServeConfig) -> tuple[str, str, bool]:
    bucket = ObjectStore(bucket_settings(config))
    await bucket.self_test()
    db = await Db.open(config.postgres_dsn)
    try:
        await db.create_schema()
        if await db.meta_text("migrating") is not None:
            raise ConfigError("a `tlog migrate` into this database is not finished: run it again to "
                              "complete it before serving the log (docs/scale-out.md)")
        stored = await db.origin()
        if config.role == "frontend":
            if stored is None:
                raise ConfigError("the database holds no log yet: start a sequencer (role = \"sequencer\" "
                                  "or \"all\") first")
            if config.origin and config.origin != stored:
                raise ConfigError(f"the database holds log {stored!r}, not {config.origin!r}")
            vkey = await db.meta_text("vkey")
            if vkey is None:
                raise ConfigError("the database holds no verifier key yet: start a sequencer first")
            return stored, vkey, False
        data = Path(config.data_dir)
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = data / KEY_FILE
        signer, created = open_log_key(key_path, config.origin, stored, "the database")
        origin = signer.name
        vkey = signer.verifier().vkey()
        if stored is None:
            if not await bucket.is_empty():
                raise ConfigError(f"the bucket already holds objects under {bucket.settings.prefix!r} but "
                                  "the database holds no log: refusing to mix two logs")
            note = sign_note(Checkpoint(origin, 0, EMPTY_ROOT).text(), [signer])
            await db.initialize(origin, Head(0, EMPTY_ROOT, note, time.time(), (), 0))
            await bucket.create("checkpoint", note, cache=NO_CACHE, ctype=TEXT)
        recorded = await db.meta_text("vkey")
        if recorded is not None and recorded != vkey:
            raise ConfigError(f"{key_path} is not the key this log was created with ({recorded})")
        await db.set_meta("vkey", vkey)
        if config.frozen:
            await db.freeze()
        return origin, vkey, created
    finally:
        await db.close()


def recorded_keys(config: ServeConfig, vkey: str) -> list[str]:
    """The verifier keys a sequencer recorded (`vkey` alone if none did yet)."""
    async def read() -> list[str]:
        db = await Db.open(config.postgres_dsn)
        try:
            text = await db.meta_text("vkeys")
        finally:
            await db.close()
        keys = json.loads(text) if text else []
        return keys if keys and keys[0] == vkey else [vkey]
    return asyncio.run(read())
