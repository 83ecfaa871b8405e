"""`witness` command line: `keygen` makes an Ed25519 cosigning key (cosignature/v1)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from client.note import CosignatureV1Verifier, generate_ed25519


def cmd_keygen(args: argparse.Namespace) -> int:
    signer = generate_ed25519(args.name)
    out = Path(args.out)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"witness: error: {out} exists; refusing to overwrite a key", file=sys.stderr)
        return 2
    with os.fdopen(fd, "w") as f:
        f.write(signer.skey() + "\n")
    print(f"wrote {out} (mode 0600)")
    print(CosignatureV1Verifier(signer.name, signer.public).vkey())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="witness", description="tlog witness (C2SP tlog-witness).")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="generate an Ed25519 cosigning key (cosignature/v1)")
    k.add_argument("--name", required=True, help="witness name (key name)")
    k.add_argument("--out", required=True, help="file to write (mode 0600)")
    k.set_defaults(func=cmd_keygen)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
