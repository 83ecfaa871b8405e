"""`tlog` command line: serve, keygen, fsck, reindex, backup and restore, and the TPM key."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import orjson

from client.errors import TlogError
from client.files import write_atomically
from client.keyfile import KeyFileError, read_key
from client.note import parse_vkey, sign_note
from client.policy import TrustPolicy, policy_toml
from tlog.config import ConfigError, ServeConfig, load_config
from tlog.index import SearchIndex
from tlog.logkey import open_log_key
from tlog.sequencer import SequencerConfig
from tlog.sigstore_files import write_sigstore_files
from tlog.storage import LogStore, StorageError
from tlog.witnessing import witness_access

KEY_FILE = "log.key"


def _fail(msg: str, code: int = 2) -> int:
    print(f"tlog: error: {msg}", file=sys.stderr)
    return code


def prepare(config: ServeConfig) -> tuple[str, str, bool]:
    """Create the data dir, key and empty log on first run. Returns (origin, vkey, created)."""
    data = Path(config.data_dir)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = data / KEY_FILE
    store = LogStore(data, map_size=config.map_size, create=True)
    try:
        try:
            stored = store.origin()
        except StorageError:
            stored = None
        signer, created = open_log_key(key_path, config.origin, stored, str(data))
        origin = signer.name
        store.initialize(origin, lambda text: sign_note(text, [signer]))
        if config.frozen:
            store.freeze()  # for good: no configuration change reopens a retired shard
        elif store.frozen():
            raise ConfigError(f"{data} holds a frozen log (a retired shard): it takes no entries "
                              "again; serve it with frozen = true, and send new entries to its successor")
        return origin, signer.verifier().vkey(), created
    finally:
        store.close()


def check_rotation_key(config: ServeConfig, origin: str, vkey: str) -> str:
    """The rotation key's verifier key: it must be a key of this origin, other than the main one."""
    if not config.rotation_key_file:
        return ""
    signer = read_key(Path(config.rotation_key_file))
    if signer.name != origin:
        raise ConfigError(f"rotation_key_file: {config.rotation_key_file} is a key for "
                          f"{signer.name!r}, not {origin!r}")
    rotation = signer.verifier().vkey()
    if rotation == vkey:
        raise ConfigError("rotation_key_file: that is the log's current key")
    return rotation


def print_examples(url: str, policy: Path, allow_raw: bool) -> None:
    """How to submit and verify, with this log's URL and policy file."""
    examples = Path(__file__).resolve().parent.parent / "docs" / "examples"
    example = examples / "dsse-entry.json"
    print("  sign and submit:  openssl genpkey -algorithm ed25519 -out signer.pem")
    print(f"                   tlog-client submit {examples / 'statement.json'} --key signer.pem "
          f"--policy {policy} --out receipt.json")
    if example.exists():
        print(f"  or with curl:     curl -s -X POST {url}/v1/entries --data-binary @{example} > receipt.json")
    if allow_raw:
        raw = '{"raw":"aGVsbG8="}'
        print(f"  raw entry:        curl -s -X POST {url}/v1/entries -d '{raw}' > receipt.json")
    print(f"  verify offline:   tlog-client verify receipt.json --policy {policy}")
    print(f"  audit the log:    tlog-client audit --full --policy {policy}")
    print(f"  checkpoint:       curl -s {url}/checkpoint", flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    overrides = {k: getattr(args, k) for k in ("data_dir", "listen", "origin", "workers", "tpm", "role")}
    overrides["allow_raw"] = True if args.allow_raw else None
    try:
        config = load_config(args.config, overrides)
        if args.print_config:
            from tlog.config import config_toml

            sys.stdout.write(config_toml(config))
            return 0
        if config.storage == "s3":
            from tlog.dist.serve import serve_dist

            return serve_dist(config)
        origin, vkey, created = prepare(config)
    except (ConfigError, KeyFileError, StorageError, TlogError, OSError) as exc:
        return _fail(str(exc))
    from tlog.backup import StaleCopyError, check_not_stale

    try:
        tpm_vkey = check_tpm(config, origin)
        rotation_vkey = check_rotation_key(config, origin, vkey)
        if config.witness_startup_check:
            for url, why in check_not_stale(Path(config.data_dir), config.witnesses, [vkey],
                                            witness_verify(config)):
                print(f"tlog: warning: could not ask witness {url} whether this data dir is stale: {why}",
                      file=sys.stderr)
    except (ConfigError, KeyFileError, StorageError, TlogError, OSError) as exc:
        return _fail(str(exc))
    except StaleCopyError as exc:
        return _fail(f"refusing to serve: {exc}")
    from client.logs import announcer, setup_logging

    setup_logging(config.log_format, "tlog")

    try:
        sock, url = listen_for_workers(config)
    except ConfigError as exc:
        return _fail(str(exc))
    data = Path(config.data_dir).resolve()
    say = announcer(config.log_format, "tlog")  # with JSON logs, no human help below either
    if created:
        say(f"tlog: created a new Ed25519 log key at {data / KEY_FILE} (mode 0600)")
    say(f"tlog: log {origin!r} in {data}, {config.workers} worker(s)")
    say(f"tlog: verifier key {vkey}")
    if rotation_vkey:
        say(f"tlog: rotation verifier key {rotation_vkey} (checkpoints carry both signatures)")
    if tpm_vkey:
        say(f"tlog: TPM verifier key {tpm_vkey} ({config.tpm})")
    if config.frozen:
        say(f"tlog: frozen: no new entries{f'; successor {config.successor}' if config.successor else ''}")
    extra_vkeys = [k for k in (rotation_vkey, tpm_vkey) if k]
    say(f"tlog: listening on {url}")
    policy = write_client_policy(data, origin, [vkey, *extra_vkeys], url, config)
    say(f"tlog: client trust policy written to {policy} (docs/verifying.md)")
    try:
        root, signing = write_sigstore_files(data, config, origin, [vkey, *extra_vkeys], url=url,
                                              key_path=data / KEY_FILE)
    except ConfigError as exc:
        return _fail(str(exc))
    say(f"tlog: Sigstore TrustedRoot and SigningConfig written beside it: {root.name}, "
        f"{signing.name} (docs/sigstore.md)")
    say(f"tlog: web explorer at {url}/explorer/ (docs/explorer.md)")
    if config.log_format == "text":
        print_examples(url, policy, config.allow_raw)
    sys.stdout.flush()

    if not config.sequencer_socket and len(config.socket_path()) > 100:
        # Unix socket paths are limited to ~107 bytes: use a private directory instead.
        private = tempfile.mkdtemp(prefix="tlog-")
        config = dataclasses.replace(config, sequencer_socket=os.path.join(private, "seq.sock"))
    sequencer = SequencerSupervisor(config)
    try:
        sequencer.start()
    except RuntimeError as exc:
        return _fail(str(exc))
    try:
        run_workers(config, sock, vkey, extra_vkeys)
    except ConfigError as exc:
        return _fail(str(exc))
    finally:
        sequencer.stop()
    return 0


def witness_verify(config: ServeConfig) -> object:
    """httpx's `verify` for calls to this log's witnesses (their CA, our client certificate)."""
    from client.tls import TLSConfigError
    from tlog.witnessing import WitnessAccess

    try:
        return WitnessAccess.of(witness_access(config)).verify()
    except TLSConfigError as exc:
        raise ConfigError(f"witness_ca_file / witness_client_cert_file: {exc}") from None


def listen_for_workers(config: ServeConfig) -> tuple[socket.socket, str]:
    """The listening socket the HTTP workers share, and its URL (https with TLS files, which
    are checked here so that a bad certificate fails `tlog serve` at once)."""
    from client.http import listen, raise_fd_limit
    from client.tls import TLSConfigError, https_url

    raise_fd_limit()  # the workers inherit it: max_connections must be reachable
    tls = config.server_tls()
    if tls is not None:
        try:
            tls.build()
        except TLSConfigError as exc:
            raise ConfigError(str(exc)) from None
    try:
        sock, url = listen(config.host, config.port, 2048)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {config.listen}: {exc}") from None
    sock.set_inheritable(True)
    return sock, https_url(url) if tls is not None else url


def run_workers(config: ServeConfig, sock: object, vkey: str, extra_vkeys: list[str]) -> None:
    """The HTTP workers (uvicorn) on the listening socket, until they are stopped."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from client.http import uvicorn_settings
    from client.tls import reload_on_sighup
    from tlog.ratelimit import config_budgets
    from tlog.sharedbuckets import FILE_NAME as BUCKETS_FILE
    from tlog.sharedbuckets import create as create_buckets

    os.environ.pop("TLOG_RATE_BUCKETS", None)
    if config.workers > 1 and config_budgets(config):  # one client, one budget, on any worker
        try:
            os.environ["TLOG_RATE_BUCKETS"] = str(create_buckets(Path(config.data_dir) / BUCKETS_FILE))
        except OSError as exc:
            raise ConfigError(f"cannot make the workers' rate-limit table in {config.data_dir}: "
                              f"{exc.strerror or exc}") from None
    os.environ["TLOG_SERVE_CONFIG"] = orjson.dumps(dataclasses.asdict(config)).decode()
    os.environ["TLOG_VKEY"] = vkey
    os.environ["TLOG_EXTRA_VKEYS"] = ",".join(extra_vkeys)
    uconfig = uvicorn.Config(
        "tlog.app:app_from_env", factory=True, workers=config.workers,
        loop="uvloop", access_log=False, log_level="warning", log_config=None,
        timeout_keep_alive=30, timeout_graceful_shutdown=10, lifespan="on",
        limit_concurrency=config.max_connections,
        **uvicorn_settings(config.server_tls(), config.forwarded_allow_ips),
    )
    # uvicorn raises the signal that stopped it again once it has shut down: under the
    # default action that kills this process before `cmd_serve` stops the sequencer, which
    # then exits unwaited (its lifeline closes), holding the data dir's lock a moment longer
    # than `tlog serve` lives. As an exception the stop unwinds in order instead.
    if config.server_tls() is None:
        reload_on_sighup(None)  # with TLS, the context factory installs the reload
    with _stop_signals_unwind():
        if config.workers > 1:
            Multiprocess(uconfig, sockets=[sock]).run()
        else:
            uvicorn.Server(uconfig).run(sockets=[sock])


@contextlib.contextmanager
def _stop_signals_unwind() -> Iterator[None]:
    """SIGTERM/SIGINT that reach this process outside uvicorn's own handlers (before it
    serves, or raised again by it after its graceful shutdown) end it with exit status 0
    through every `finally` on the way out."""
    def handler(_sig: int, _frame: Any) -> None:
        raise SystemExit(0)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def write_client_policy(data: Path, origin: str, vkeys: list[str], url: str, config: ServeConfig) -> Path:
    """A ready-to-use `tlog-client` trust policy for this log and its witnesses (public data,
    mode 0644). Rewritten at each start, since the URL may change; in production, distribute
    the keys out of band rather than trusting a file next to the log."""
    witnesses = tuple(parse_vkey(v) for _, v in config.witnesses)
    # During a key rotation either key suffices, so the file keeps working after the switch.
    policy = TrustPolicy(origin, tuple(parse_vkey(v) for v in vkeys), url=url,
                         log_signatures="any" if config.rotation_key_file else "all",
                         allow_raw_log=config.allow_raw,
                         witnesses=witnesses, witness_quorum=config.quorum)  # type: ignore[arg-type]
    path = data / "client-policy.toml"
    text = policy_toml(policy, "tlog-client trust policy for this log (docs/verifying.md)")
    write_atomically(path, text.encode(), mode=0o644)
    return path


def tpm_record(data: Path) -> dict[str, object]:
    try:
        return orjson.loads((data / "tpm.json").read_bytes())  # type: ignore[no-any-return]
    except FileNotFoundError:
        raise ConfigError(f"{data} has no TPM key yet: run "
                          f"`tlog tpm init --data-dir {data} --tcti ...`") from None


def check_tpm(config: ServeConfig, origin: str) -> str:
    """With `tpm` set: the TPM is reachable and holds the key recorded by `tlog tpm init`.
    Returns its verifier key ("" without a TPM). Fails fast with the TCTI in the message."""
    if not config.tpm:
        return ""
    from tlog.tpm import TpmError, open_signer

    record = tpm_record(Path(config.data_dir))
    expected = parse_vkey(str(record["vkey"]))
    try:
        signer = open_signer(origin, config.tpm, handle=int(record["handle"]),  # type: ignore[call-overload]
                             expected_spki=expected.spki_der)  # type: ignore[union-attr]
    except TpmError as exc:
        raise ConfigError(str(exc)) from exc
    signer.key.close()
    return expected.vkey()


class SequencerSupervisor:
    """Runs the sequencer process beside the HTTP workers and restarts it if it dies."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _command(self) -> list[str]:
        seq = SequencerConfig(
            data_dir=str(Path(self.config.data_dir).resolve()),
            socket_path=self.config.socket_path(), max_batch=self.config.max_batch,
            max_delay=self.config.max_delay_ms / 1000, map_size=self.config.map_size,
            witnesses=self.config.witnesses, witness_quorum=self.config.quorum,
            witness_timeout=self.config.witness_timeout, witness_interval=self.config.witness_interval,
            witness_access=witness_access(self.config),
            tpm=self.config.tpm, tpm_timeout=self.config.tpm_timeout,
            log_format=self.config.log_format,
            rotation_key_file=str(Path(self.config.rotation_key_file).resolve())
            if self.config.rotation_key_file else "")
        return [sys.executable, "-m", "tlog.sequencer", "--config-json",
                orjson.dumps(dataclasses.asdict(seq)).decode()]

    def _spawn(self) -> subprocess.Popen[bytes]:
        # stdin: the lifeline pipe (the child stops when it closes); stdout: the ready line.
        proc = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # noqa: S603
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30.0)
        line = proc.stdout.readline() if ready else b""
        proc.stdout.close()  # it prints nothing else
        if not line.startswith(b"tlog-sequencer: ready"):
            proc.kill()
            proc.wait(10)
            raise RuntimeError(f"the sequencer did not start (exit code {proc.returncode})")
        return proc

    def start(self) -> None:
        self.proc = self._spawn()
        self._thread = threading.Thread(target=self._watch, name="sequencer-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        backoff = 0.1
        while not self._stopping.wait(0.2):
            assert self.proc is not None
            if self.proc.poll() is None:
                backoff = 0.1
                continue
            logging.getLogger("tlog").error(
                "the sequencer exited with code %s; restarting it", self.proc.returncode)
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 5.0)
            try:
                self.proc = self._spawn()
            except RuntimeError as exc:
                logging.getLogger("tlog").error("%s; retrying", exc)

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            # A restart in flight finishes first, so the process it starts is stopped too.
            self._thread.join(timeout=60)
        if self.proc is None or self.proc.poll() is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # cut the lifeline: it commits what it holds and exits
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


def cmd_keygen(args: argparse.Namespace) -> int:
    from client.keyfile import keygen, write_vkey

    out = Path(args.out)
    try:
        signer, created = keygen(out, args.origin, if_missing=args.if_missing)
        print(f"wrote {out} (mode 0600)" if created else f"kept {out}")
        vkey = signer.verifier().vkey()
        if args.vkey_out:
            write_vkey(Path(args.vkey_out), vkey)
    except TlogError as exc:
        return _fail(f"--origin: {exc}")
    except (KeyFileError, OSError) as exc:
        return _fail(str(exc))
    print(vkey)
    return 0


def cmd_fsck(args: argparse.Namespace) -> int:
    from tlog.fsck import fsck

    if args.config:
        try:
            config = load_config(args.config, {"data_dir": args.data_dir})
        except ConfigError as exc:
            return _fail(str(exc))
        if config.storage == "s3":
            return _fsck_dist(config, args.vkey or [])
        args.data_dir = config.data_dir
    if not args.data_dir:
        return _fail("give --data-dir (or --config)")
    data = Path(args.data_dir)
    if not (data / "data.mdb").exists():
        # No log yet (a scheduled fsck before the first start): nothing to check, no verdict.
        return _fail(f"{data} holds no log yet", 1)
    try:
        store = LogStore(data, readonly=False)
        verifiers = ([parse_vkey(v) for v in args.vkey] if args.vkey
                     else [read_key(data / KEY_FILE).verifier()])
        report = fsck(store, verifiers)  # type: ignore[arg-type]
    except (StorageError, KeyFileError, TlogError, OSError, lmdb.Error) as exc:
        _record_fsck(data, False, 0, [str(exc)])
        return _fail(str(exc), 1)
    _print_fsck(report)
    _record_fsck(data, report.ok, report.size, report.problems)
    return 0 if report.ok else 1


def _print_fsck(report: Any) -> None:
    for p in report.problems:
        print(f"fsck: {p}")
    for w in getattr(report, "warnings", ()):
        print(f"fsck: warning: {w}")
    verdict = "ok" if report.ok else "FAILED"
    print(f"fsck: {verdict}: size {report.size}, {report.entries_checked} entries, "
          f"{report.tiles_checked} tiles checked, {len(report.problems)} problem(s)")


def _fsck_dist(config: ServeConfig, vkeys: list[str]) -> int:
    """fsck of a scaled-out log: the bucket and PostgreSQL (tlog/dist/fsck.py)."""
    import asyncio

    from tlog.dist.bucket import ObjectStoreError
    from tlog.dist.db import DbError
    from tlog.dist.fsck import NoLog, check

    try:
        report = asyncio.run(check(config, vkeys))
    except (NoLog, DbError, ObjectStoreError, TlogError, OSError) as exc:
        return _fail(str(exc), 1)
    _print_fsck(report)
    return 0 if report.ok else 1


def cmd_migrate(args: argparse.Namespace) -> int:
    """Copy an LMDB log into an empty scaled-out target (tlog/dist/migrate.py)."""
    from tlog.dist.migrate import MigrateError, run

    try:
        return run(Path(args.source), load_config(args.config, {}), args.stop_after)
    except (ConfigError, MigrateError, TlogError, OSError) as exc:
        return _fail(str(exc))


def _record_fsck(data: Path, ok: bool, size: int, problems: list[str]) -> None:
    """Leave the verdict in the data dir: the running log exports it as `tlog_fsck_*` metrics,
    so a failed scheduled fsck raises an alert (deploy/prometheus/alerts.yml)."""
    import time

    from tlog.gauges import FSCK_STATUS

    if not data.is_dir():
        return
    doc = {"ok": ok, "time": time.time(), "size": size, "problems": problems[:20]}
    try:
        write_atomically(data / FSCK_STATUS, orjson.dumps(doc))
    except OSError as exc:
        print(f"fsck: could not record the result in {data / FSCK_STATUS}: {exc}", file=sys.stderr)


def cmd_reindex(args: argparse.Namespace) -> int:
    data = Path(args.data_dir)
    try:
        store = LogStore(data)
        index = SearchIndex(data, map_size=store.stat()["map_size"])
        size = store.head().size

        def progress(done: int) -> None:
            print(f"reindex: {done}/{size} entries", file=sys.stderr, flush=True)

        try:
            done = index.rebuild(store, progress)
            written = index.count_keys()
        finally:
            index.close()
            store.close()
    except (StorageError, OSError, lmdb.Error) as exc:
        return _fail(str(exc), 1)
    print(f"reindex: ok: {done} entries, {written} search keys")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tlog", description="Append-only transparency log server.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the log server")
    s.add_argument("--data-dir", help="data directory (created on first run)")
    s.add_argument("--listen", help="HOST:PORT (port 0: any free port)")
    s.add_argument("--origin", help="checkpoint origin, fixed at first run")
    s.add_argument("--allow-raw", action="store_true", help="accept raw entries (tests, benchmarks)")
    s.add_argument("--workers", type=int, help="HTTP worker processes")
    s.add_argument("--config", help="TOML configuration file ([log] table)")
    s.add_argument("--tpm", help="TCTI of the TPM holding the checkpoint key (after `tlog tpm init`)")
    s.add_argument("--role", choices=("all", "frontend", "sequencer"),
                   help="with storage = \"s3\": what this process runs (docs/scale-out.md)")
    s.add_argument("--print-config", action="store_true",
                   help="print the effective configuration (file, TLOG_* environment, flags) and exit")
    s.set_defaults(func=cmd_serve)

    k = sub.add_parser("keygen", help="generate an Ed25519 log key file")
    k.add_argument("--origin", required=True, help="key name (the log's origin)")
    k.add_argument("--out", required=True, help="file to write (mode 0600)")
    k.add_argument("--vkey-out", help="also write the verifier key to this file (mode 0644)")
    k.add_argument("--if-missing", action="store_true",
                   help="keep an existing key file (for this origin) instead of failing")
    k.set_defaults(func=cmd_keygen)

    f = sub.add_parser("fsck", help="re-derive every tile and the root, and check the checkpoint")
    f.add_argument("--data-dir", help="the log's data dir (or the configuration's)")
    f.add_argument("--config", help="the log's TOML configuration; with storage = \"s3\", the bucket and "
                                    "PostgreSQL are checked")
    f.add_argument("--vkey", action="append", help="verifier key (default: the data dir's key)")
    f.set_defaults(func=cmd_fsck)

    m = sub.add_parser("migrate", help="copy an LMDB log into an empty bucket and PostgreSQL "
                                       "(storage = \"s3\"), as the same log; resumes if interrupted")
    m.add_argument("--from", dest="source", required=True, help="the LMDB log's data dir (read only)")
    m.add_argument("--config", required=True, help="the target's configuration (storage = \"s3\")")
    m.add_argument("--stop-after", type=int, metavar="ENTRIES",
                   help="copy about this many entries, then stop before publishing (a later run goes on)")
    m.set_defaults(func=cmd_migrate)

    r = sub.add_parser("reindex", help="rebuild the search index from the log's entries")
    r.add_argument("--data-dir", required=True)
    r.set_defaults(func=cmd_reindex)

    b = sub.add_parser("backup", help="consistent copy of a (running) log's data dir")
    b.add_argument("--data-dir", required=True)
    b.add_argument("--out", required=True, help="new directory for the copy (mode 0700)")
    b.set_defaults(func=cmd_backup)
    rs = sub.add_parser("restore", help="restore a backup, refusing one older than the witnesses' view")
    rs.add_argument("--from", dest="source", required=True, help="a directory made by `tlog backup`")
    rs.add_argument("--data-dir", required=True, help="where to restore (must not exist)")
    rs.add_argument("--config", help="the log's TOML configuration (its [[witness]] tables)")
    rs.add_argument("--unchecked", action="store_true",
                    help="restore even though no witness can be asked (you know it is the newest copy)")
    rs.set_defaults(func=cmd_restore)

    t = sub.add_parser("tpm", help="a checkpoint key held in a TPM 2.0, and its attestation (docs/tpm.md)")
    tsub = t.add_subparsers(dest="tpm_cmd", required=True)
    ti = tsub.add_parser("init", help="create (or find) the ECDSA P-256 checkpoint key in a TPM and "
                                      "certify it for the log's origin")
    ti.add_argument("--config", help="the log's TOML configuration, as `tlog serve --config` reads it")
    ti.add_argument("--data-dir", help="data directory (default: the configuration's data_dir)")
    ti.add_argument("--origin", help="the log's checkpoint origin, as `tlog serve` will serve it "
                                     "(default: the configuration's, or the data dir's log)")
    ti.add_argument("--tcti", help="e.g. device:/dev/tpmrm0 or swtpm:path=/run/swtpm/sock "
                                   "(default: the configuration's tpm)")
    ti.add_argument("--handle", type=lambda v: int(v, 0), default=0x81000010, help="persistent handle")
    ti.add_argument("--ak-handle", type=lambda v: int(v, 0), default=0x81000011,
                    help="persistent handle of the attestation key")
    ti.set_defaults(func=cmd_tpm_init)

    tc = tsub.add_parser("ca-init", help="create an AK CA (key + self-signed certificate) in a directory")
    tc.add_argument("--dir", required=True)
    tc.add_argument("--name", default="tlog TPM AK CA")
    tc.set_defaults(func=cmd_tpm_ca_init)
    te = tsub.add_parser("enroll", help="verify the EK chain, activate a credential for the AK, "
                                        "and have the AK CA certify it")
    te.add_argument("--data-dir", required=True)
    te.add_argument("--tcti", required=True)
    te.add_argument("--ca-dir", required=True, help="the AK CA (from `tlog tpm ca-init`)")
    te.add_argument("--ek-root", action="append", required=True, help="trusted TPM vendor root (PEM)")
    te.add_argument("--ek-intermediate", action="append", default=[], help="EK intermediate CA (PEM)")
    te.set_defaults(func=cmd_tpm_enroll)

    tk = sub.add_parser("token", help="submitter tokens of a private log (submit_tokens_file)")
    tksub = tk.add_subparsers(dest="action", required=True)
    for name, help_text in (("add", "add a submitter and print its new token (shown once)"),
                            ("revoke", "remove a submitter's token (the workers stop taking it "
                                       "within a second)"),
                            ("list", "the submitters' names")):
        t_ = tksub.add_parser(name, help=help_text)
        t_.add_argument("--file", required=True, help="the tokens file (submit_tokens_file)")
        if name != "list":
            t_.add_argument("name", help="the submitter's name (in metrics and logs)")
        t_.set_defaults(func=cmd_token)

    ex = sub.add_parser("explorer", help="the web explorer's pages (docs/explorer.md)")
    exsub = ex.add_subparsers(dest="explorer_cmd", required=True)
    exe = exsub.add_parser("export", help="write the explorer as static files, with the log's policy "
                                          "pinned, for a bucket, CDN or any web server")
    exe.add_argument("out", help="directory to write (created)")
    exe.add_argument("--policy", required=True,
                     help="the log's client policy (TOML or JSON): the keys the pages trust")
    exe.add_argument("--api", required=True, help="the log's base URL (the JSON API)")
    exe.add_argument("--tiles", help="where checkpoint and tile/ are served (default: --api)")
    exe.set_defaults(func=cmd_explorer_export)

    args = p.parse_args(argv)
    return int(args.func(args))


def cmd_token(args: argparse.Namespace) -> int:
    from client.errors import MalformedError
    from client.tokens import add_token, read_tokens, revoke_token

    path = Path(args.file)
    try:
        if args.action == "add":
            token = add_token(path, args.name)
            print(f"tlog: added submitter {args.name!r} to {path}; its token (shown only now; "
                  f"`tlog-client submit --token-file`):", file=sys.stderr)
            print(token)
        elif args.action == "revoke":
            revoke_token(path, args.name)
            print(f"tlog: revoked {args.name!r}")
        else:
            for name in sorted(read_tokens(path).values()):
                print(name)
    except (MalformedError, OSError) as exc:
        return _fail(str(exc))
    return 0


def cmd_explorer_export(args: argparse.Namespace) -> int:
    from client.errors import MalformedError
    from client.policy import load_policy
    from tlog.explorer import config_doc, export

    try:
        policy = load_policy(args.policy)
    except MalformedError as exc:
        return _fail(str(exc))
    for url in (args.api, args.tiles or args.api):
        if not url.startswith(("https://", "http://")):
            return _fail(f"{url!r} is not an http(s) URL")
    try:
        files = export(Path(args.out), config_doc(api=args.api, tiles=args.tiles or args.api,
                                                  policy=policy.to_dict()))
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc}")
    print(f"tlog: wrote {len(files)} files to {args.out}: serve them over HTTPS (browsers verify "
          f"only in a secure context); the API must answer them from another origin (CORS, docs/explorer.md)")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from tlog.backup import backup

    try:
        size = backup(Path(args.data_dir), Path(args.out))
    except (OSError, StorageError) as exc:
        return _fail(str(exc))
    print(f"tlog: backed up {size} entries to {args.out} (it holds the log key: keep it like one)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Check the copy against the witnesses first, then copy it into place."""
    from tlog.backup import NotABackupError, StaleCopyError, check_backup, check_not_stale, restore

    source, target = Path(args.source), Path(args.data_dir)
    try:
        config = load_config(args.config, {"data_dir": str(target)})
        if target.exists():
            raise ConfigError(f"{target} exists; restore into a new directory")
        manifest = check_backup(source)  # a live data dir or a partial backup: refused before the warning
        if not config.witnesses or args.unchecked:
            print("tlog: warning: " + ("not asking the witnesses" if config.witnesses else
                                       "no witnesses configured") + "; cannot check the copy is not stale",
                  file=sys.stderr)
        vkey = read_key(source / KEY_FILE).verifier().vkey()
        def check(copy: Path) -> None:
            if args.unchecked:
                return
            for url, why in check_not_stale(copy, config.witnesses, [vkey], witness_verify(config),
                                            need_answer=True):
                print(f"tlog: warning: could not ask witness {url} about the copy: {why}", file=sys.stderr)

        doc = restore(source, target, check, manifest)
        os.chmod(target, 0o700)
    except NotABackupError as exc:
        return _fail(f"refusing to restore: {exc}; nothing was written")
    except StaleCopyError as exc:
        return _fail(f"refusing to restore: {exc}", 1)
    except (ConfigError, KeyFileError, StorageError, TlogError, OSError) as exc:
        return _fail(str(exc))
    print(f"tlog: restored {source} ({doc['size']} entries of {doc['origin']!r}) to {target}; "
          f"run `tlog fsck --data-dir {target}` before serving")
    return 0


def cmd_tpm_ca_init(args: argparse.Namespace) -> int:
    from tlog.tpm_enroll import init_ca

    try:
        path = init_ca(Path(args.dir), args.name)
    except (OSError, FileExistsError) as exc:
        return _fail(str(exc))
    print(f"tlog: AK CA certificate {path} (clients list it in tpm_ak_cas); keep ak-ca.key safe")
    return 0


def cmd_tpm_enroll(args: argparse.Namespace) -> int:
    """Certify the AK after proving it is in a TPM with a genuine EK (tlog/tpm_enroll.py)."""
    from cryptography import x509

    from client.errors import PolicyError
    from tlog.tpm import TpmError, TpmKey
    from tlog.tpm_enroll import enroll

    data = Path(args.data_dir)
    try:
        record = tpm_record(data)
        roots = [x509.load_pem_x509_certificate(Path(p).read_bytes()) for p in args.ek_root]
        inters = [x509.load_pem_x509_certificate(Path(p).read_bytes()) for p in args.ek_intermediate]
        key = TpmKey(args.tcti, int(record["handle"]))  # type: ignore[call-overload]
        try:
            extra = enroll(key, int(record["ak_handle"]), Path(args.ca_dir), roots, inters)  # type: ignore[call-overload]
        finally:
            key.close()
        path = data / "tpm-attestation.json"
        doc = orjson.loads(path.read_bytes()) | extra
        write_atomically(path, orjson.dumps(doc, option=orjson.OPT_INDENT_2), mode=0o644)
    except (ConfigError, OSError, ValueError, KeyError) as exc:
        return _fail(str(exc))
    except (TpmError, PolicyError) as exc:
        return _fail(str(exc), 1)
    print(f"tlog: AK enrolled: EK chain verified, credential activated, AK certificate written to {path}")
    return 0


def _stored_origin(data: Path, map_size: int) -> str | None:
    """The origin of the log already in `data`, if any (nothing is created)."""
    if not (data / "data.mdb").exists():
        return None
    store = LogStore(data, map_size=map_size)
    try:
        return store.origin()
    except StorageError:
        return None
    finally:
        store.close()


def tpm_init_config(args: argparse.Namespace) -> ServeConfig:
    """The log's configuration as `tlog serve` reads it (file, TLOG_* environment, flags): the
    key attestation is bound to its origin, so init and serve must agree on it. An existing
    log keeps its origin; asking for another is refused before anything is changed."""
    overrides = {"data_dir": args.data_dir, "origin": args.origin, "tpm": args.tcti}
    config = load_config(args.config, overrides)
    if not config.tpm:
        raise ConfigError("no TPM: pass --tcti, or set tpm in the configuration (TLOG_TPM)")
    stored = _stored_origin(Path(config.data_dir), config.map_size)
    if stored is not None and config.origin and config.origin != stored:
        raise ConfigError(f"{config.data_dir} holds log {stored!r}: its TPM key attestation cannot be "
                          f"bound to {config.origin!r}; use origin {stored!r}, or a new data dir "
                          "for a new log")
    return config


def cmd_tpm_init(args: argparse.Namespace) -> int:
    """Create the TPM key once and record its public half in the data dir (tpm.json)."""
    from tlog.tpm import TpmError, open_signer

    try:
        config = tpm_init_config(args)
        data, tcti = Path(config.data_dir), config.tpm
        origin, _, _ = prepare(config)
        signer = open_signer(origin, tcti, handle=args.handle, create=True, timeout=config.tpm_timeout)
    except (ConfigError, KeyFileError, StorageError, TlogError, OSError) as exc:
        return _fail(str(exc))
    except TpmError as exc:
        return _fail(str(exc), 3)
    from client.encoding import b64encode
    from client.tpmattest import parse_public, qualifying_data

    try:
        raw = signer.key.certify_with_ak(args.ak_handle, qualifying_data(origin))
        ek = signer.key.ek_certificate()
        ek_pems = []
        if ek is not None:  # stored as given; `tlog tpm enroll` verifies the chain
            from cryptography import x509
            from cryptography.hazmat.primitives import serialization

            ek_pems = [x509.load_der_x509_certificate(ek).public_bytes(serialization.Encoding.PEM).decode()]
        attestation = {k: b64encode(v) for k, v in raw.items()} | {"ek_certificates": ek_pems}
        old_path = data / "tpm-attestation.json"
        if old_path.exists():  # a re-run keeps what enrollment added for the same AK
            old = orjson.loads(old_path.read_bytes())
            if old.get("ak_public") == attestation["ak_public"] and "ak_certificate" in old:
                attestation |= {"ak_certificate": old["ak_certificate"],
                                "ek_certificates": old.get("ek_certificates", ek_pems)}
        record = {"tcti": tcti, "handle": args.handle, "ak_handle": args.ak_handle,
                  "vkey": signer.verifier().vkey()}
        for name, doc in (("tpm.json", record), ("tpm-attestation.json", attestation)):
            write_atomically(data / name, orjson.dumps(doc, option=orjson.OPT_INDENT_2), mode=0o644)
    except TpmError as exc:
        return _fail(str(exc), 3)
    finally:
        signer.key.close()
    ak_name = parse_public(raw["ak_public"]).name.hex()
    print(f"tlog: TPM checkpoint key at handle 0x{args.handle:08x} in {tcti}")
    print(f"tlog: key attestation bound to log {origin!r} (serve it with this origin)")
    print(f"tlog: ECDSA verifier key {record['vkey']}")
    print(f"tlog: attestation key (restricted) name {ak_name}: pin it in clients' tpm_aks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
