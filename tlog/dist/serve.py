"""`tlog serve` with `storage = "s3"`: a front end, a sequencer candidate, or both."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from client.errors import TlogError
from client.keyfile import KeyFileError
from tlog.cli import SequencerSupervisor
from tlog.config import ConfigError, ServeConfig
from tlog.dist.bucket import ObjectStoreError
from tlog.dist.db import DbError
from tlog.dist.sequencer import LEADER_CONFIG_ENV, LeaderConfig, config_json
from tlog.dist.settings import KEY_FILE, leader_config, prepare, recorded_keys


def serve_dist(config: ServeConfig) -> int:
    from client.logs import announcer, setup_logging
    from tlog.cli import (
        _fail,
        check_rotation_key,
        check_tpm,
        listen_for_workers,
        print_examples,
        run_workers,
        write_client_policy,
    )

    try:
        origin, vkey, created = prepare(config)
        if config.role == "frontend":
            vkeys = recorded_keys(config, vkey)
        else:
            extra = [check_rotation_key(config, origin, vkey), check_tpm(config, origin)]
            vkeys = [vkey, *(k for k in extra if k)]
    except (ConfigError, KeyFileError, DbError, ObjectStoreError, TlogError, OSError) as exc:
        return _fail(str(exc))
    setup_logging(config.log_format, "tlog")
    say = announcer(config.log_format, "tlog")
    data = Path(config.data_dir).resolve()
    if created:
        say(f"tlog: created a new Ed25519 log key at {data / KEY_FILE} (mode 0600)")
    where = f"bucket {config.s3_bucket}/{config.s3_prefix} at {config.s3_endpoint}, PostgreSQL"
    say(f"tlog: log {origin!r} in {where}; role {config.role}")
    say(f"tlog: verifier key {vkey}")
    if config.role == "sequencer":
        sys.stdout.flush()
        from tlog.dist.sequencer import serve

        try:
            asyncio.run(serve(leader_config(config, origin, vkeys, config.listen)))
        except ObjectStoreError as exc:
            return _fail(str(exc))
        return 0
    try:
        sock, url = listen_for_workers(config)
    except ConfigError as exc:
        return _fail(str(exc))
    sequencer = None
    if config.role == "all":
        sequencer = DistSequencerSupervisor(
            config, leader_config(config, origin, vkeys, config.sequencer_listen))
        try:
            sequencer.start()
        except RuntimeError as exc:
            return _fail(str(exc))
    say(f"tlog: listening on {url}")
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    policy = write_client_policy(data, origin, vkeys, url, config)
    say(f"tlog: client trust policy written to {policy} (docs/verifying.md)")
    if config.log_format == "text":
        print_examples(url, policy, config.allow_raw)
    sys.stdout.flush()
    try:
        run_workers(config, sock, vkey, vkeys[1:])
    except ConfigError as exc:
        return _fail(str(exc))
    finally:
        if sequencer is not None:
            sequencer.stop()
    return 0


class DistSequencerSupervisor(SequencerSupervisor):
    """The sequencer candidate beside the front end (role "all"), restarted if it dies; it
    stops when `tlog serve` does (its stdin is the lifeline)."""

    def __init__(self, config: ServeConfig, leader: LeaderConfig) -> None:
        super().__init__(config)
        self.leader = leader
        # Through the environment, not the command line: the settings hold the S3 secret and
        # the DSN, and any user may read another's command line, not its environment.
        os.environ[LEADER_CONFIG_ENV] = config_json(self.leader)

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "tlog.dist.sequencer", "--lifeline", "--config-env", LEADER_CONFIG_ENV]
