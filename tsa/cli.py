"""`python -m tsa serve --dir DIR [--host H] [--port P]`: run the time-stamping authority.

The first run creates the key and chain in DIR (tsa.keys). Once the socket is bound, one line
`tsa listening on http://HOST:PORT` goes to stdout (port 0 picks a free port; tests and
scripts read the URL from that line, as with `tlog serve` and `witness serve`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tsa.authority import DEFAULT_POLICY


def _fail(msg: str, code: int = 2) -> int:
    print(f"tsa: error: {msg}", file=sys.stderr)
    return code


def cmd_serve(args: argparse.Namespace) -> int:
    from client.http import listen, serve
    from client.logs import announcer, setup_logging
    from tsa.app import TSAService, build_app
    from tsa.authority import TimestampAuthority
    from tsa.keys import CHAIN_FILE, TSAKeyError, chain_pem, load_or_create

    directory = Path(args.dir).resolve()
    try:
        key, chain, created = load_or_create(directory, args.name)
        authority = TimestampAuthority(key, chain, args.policy)
    except (TSAKeyError, OSError, ValueError) as exc:
        return _fail(str(exc))
    try:
        sock, url = listen(args.host, args.port, 1024)
    except OSError as exc:
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc}")
    setup_logging(args.log_format, "tsa")
    say = announcer(args.log_format, "tsa")
    say(f"tsa: {'created' if created else 'loaded'} key and chain in {directory}; "
        f"clients pin {directory / CHAIN_FILE}; policy {args.policy}")
    say(f"tsa listening on {url}")
    sys.stdout.flush()
    serve(build_app(TSAService(authority, chain_pem(chain)), access_log=args.access_log), sock)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tsa", description="tlog RFC 3161 time-stamping authority.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the TSA (creating its key and chain on first run)")
    s.add_argument("--dir", required=True, help="directory of tsa-key.pem and tsa-chain.pem")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=3000, help="0: any free port")
    s.add_argument("--listen", metavar="HOST:PORT", help="instead of --host and --port, as `tlog serve`")
    s.add_argument("--name", default="tlog TSA", help="organization name in new certificates")
    s.add_argument("--policy", default=DEFAULT_POLICY, help="TSA policy OID in every token")
    s.add_argument("--log-format", choices=("text", "json"), default="text")
    s.add_argument("--access-log", action="store_true", help="one log line per request")
    s.set_defaults(func=cmd_serve)
    args = p.parse_args(argv)
    if getattr(args, "listen", None):
        host, sep, port = args.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            return _fail(f"--listen: expected HOST:PORT, got {args.listen!r}")
        args.host, args.port = host.strip("[]"), int(port)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
