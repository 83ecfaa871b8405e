"""`python -m client.healthcheck URL [--timeout S]`: exit 0 if URL answers 200 in time.

For container health checks: the image has no curl, and this needs nothing beyond the
standard library (no import of the server's code, so it is cheap to run every few seconds).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m client.healthcheck")
    p.add_argument("url")
    p.add_argument("--timeout", type=float, default=3.0)
    args = p.parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        print("healthcheck: URL must be http(s)", file=sys.stderr)
        return 2
    try:
        with urllib.request.urlopen(args.url, timeout=args.timeout) as resp:  # noqa: S310 - checked above
            ok = resp.status == 200
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"healthcheck: {args.url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
