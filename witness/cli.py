"""`witness` command line: `keygen`, `add-log`, `serve` (C2SP tlog-witness)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from client.errors import TlogError
from client.note import CosignatureV1Signer, CosignatureV1Verifier
from witness.config import FILE_KEYS, WitnessConfigError, load_config, parse_log


def _fail(msg: str, code: int = 2) -> int:
    print(f"witness: error: {msg}", file=sys.stderr)
    return code


def cmd_keygen(args: argparse.Namespace) -> int:
    from client.keyfile import KeyFileError, keygen, write_vkey

    out = Path(args.out)
    try:
        signer, created = keygen(out, args.name, if_missing=args.if_missing)
        print(f"wrote {out} (mode 0600)" if created else f"kept {out}")
        vkey = CosignatureV1Verifier(signer.name, signer.public).vkey()
        if args.vkey_out:
            write_vkey(Path(args.vkey_out), vkey)
    except (KeyFileError, TlogError, OSError) as exc:
        return _fail(str(exc))
    print(vkey)
    return 0


def cmd_add_log(args: argparse.Namespace) -> int:
    """Append a [[log]] table to the config file, after checking it and that it is new."""
    path = Path(args.config)
    entry = {"origin": args.origin, "keys": args.vkey}
    try:
        parse_log(entry)
        existing = load_config(path).logs if path.exists() else {}
    except WitnessConfigError as exc:
        return _fail(str(exc))
    if args.origin in existing:
        return _fail(f"{args.origin!r} is already in {path}")
    keys = ", ".join(json.dumps(k) for k in args.vkey)
    with path.open("a", encoding="utf-8") as f:
        f.write(f"\n[[log]]\norigin = {json.dumps(args.origin)}\nkeys = [{keys}]\n")
    print(f"added {args.origin} to {path}; restart the witness to pick it up")
    return 0


def load_cosigner(path: Path) -> CosignatureV1Signer:
    from client.keyfile import read_key  # the same strict 0600 format as the log key

    seed = read_key(path)
    return CosignatureV1Signer.from_signer(seed)


def cmd_serve(args: argparse.Namespace) -> int:
    overrides = {"listen": args.listen,
                 "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else None}
    try:
        config = load_config(args.config, overrides)
        if args.print_config:
            print(f"[witness]\nkey_file = {json.dumps(str(config.key_file))}\n"
                  f"data_dir = {json.dumps(str(config.data_dir))}\nlisten = {json.dumps(config.listen)}\n"
                  f"rate_per_log = {config.rate_per_log}\nburst = {config.burst}\n"
                  f"log_format = {json.dumps(config.log_format)}\n"
                  f"access_log = {json.dumps(config.access_log)}\n"
                  f"header_timeout = {config.header_timeout}\n"
                  f"max_connections_per_client = {config.max_connections_per_client}\n"
                  + "".join(f"{k} = {json.dumps(getattr(config, k))}\n" for k in FILE_KEYS)
                  + f"# {len(config.logs)} [[log]] table(s): {', '.join(sorted(config.logs))}")
            return 0
        cosigner = load_cosigner(config.key_file)
    except (WitnessConfigError, TlogError, OSError) as exc:
        return _fail(str(exc))
    from client.guarded_http import GuardedHttpToolsProtocol
    from client.http import listen, raise_fd_limit, serve
    from client.tls import TLSConfigError, https_url
    from witness.app import Witness, build_app
    from witness.store import WitnessStore

    raise_fd_limit()
    GuardedHttpToolsProtocol.configure(header_timeout=config.header_timeout,
                                       per_client=config.max_connections_per_client)
    tls = config.server_tls()
    try:
        if tls is not None:
            tls.build()  # a bad certificate fails the start, not the first connection
        sock, url = listen(config.host, config.port, 1024)
    except TLSConfigError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {config.listen}: {exc}")
    if tls is not None:
        url = https_url(url)
    store = WitnessStore(config.data_dir)
    try:
        app = build_app(Witness(config, store, cosigner), access_log=config.access_log)
    except ValueError as exc:
        store.close()
        return _fail(str(exc))
    from client.logs import announcer, setup_logging

    setup_logging(config.log_format, "witness")
    say = announcer(config.log_format, "witness")
    say(f"witness: {cosigner.name}, {len(config.logs)} log(s), state in {config.data_dir}")
    say(f"witness: verifier key {cosigner.verifier().vkey()}")
    say(f"witness: listening on {url}")
    sys.stdout.flush()
    try:
        serve(app, sock, tls)
    finally:
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="witness", description="tlog witness (C2SP tlog-witness).")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="generate an Ed25519 cosigning key (cosignature/v1)")
    k.add_argument("--name", required=True, help="witness name (key name)")
    k.add_argument("--out", required=True, help="file to write (mode 0600)")
    k.add_argument("--vkey-out", help="also write the verifier key to this file (mode 0644)")
    k.add_argument("--if-missing", action="store_true",
                   help="keep an existing key file (of this name) instead of failing")
    k.set_defaults(func=cmd_keygen)
    a = sub.add_parser("add-log", help="add a log (origin and verifier keys) to the config file")
    a.add_argument("--config", required=True)
    a.add_argument("--origin", required=True)
    a.add_argument("--vkey", action="append", required=True, help="the log's verifier key")
    a.set_defaults(func=cmd_add_log)
    s = sub.add_parser("serve", help="run the witness")
    s.add_argument("--config", required=True, help="TOML configuration (docs/witness.md)")
    s.add_argument("--data-dir", help="state directory (overrides the config)")
    s.add_argument("--listen", help="HOST:PORT (port 0: any free port)")
    s.add_argument("--print-config", action="store_true",
                   help="print the effective [witness] settings and exit")
    s.set_defaults(func=cmd_serve)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
