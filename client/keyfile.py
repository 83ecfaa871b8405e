"""Ed25519 key files (log keys, witness keys): written 0600 and never over an existing file;
refused if others can read them. Go note signer-key format (`PRIVATE+KEY+name+id+base64`)."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from client.files import write_atomically
from client.note import Ed25519Signer, generate_ed25519, parse_skey


class KeyFileError(Exception):
    pass


def write_key(path: Path, signer: Ed25519Signer) -> None:
    """Write the signer key durably with mode 0600, never over an existing file.

    The key goes to a uniquely named temporary file first and is hard-linked into place, so
    a crash leaves either no key or a whole one (and at worst a stray temporary file that
    no later run trips over).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (signer.skey() + "\n").encode())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.link(tmp, path)  # raises FileExistsError rather than replace a key
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_key(path: Path) -> Ed25519Signer:
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path} is readable by others (mode {st.st_mode & 0o777:o}); "
                           "run chmod 600 on it")
    return parse_skey(path.read_text(encoding="ascii"))


def load_or_create(path: Path, name: str) -> tuple[Ed25519Signer, bool]:
    """The key at `path`, creating one named `name` if none exists. Returns (signer, created)."""
    if path.exists():
        return read_key(path), False
    signer = generate_ed25519(name)
    write_key(path, signer)
    return signer, True


def write_vkey(path: Path, vkey: str) -> None:
    """Publish a verifier key (public: mode 0644) for other processes to read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, (vkey + "\n").encode(), mode=0o644)


def vkey_lines(text: str) -> list[str]:
    """Verifier keys in a file, one per line; blank lines and `#` comments skipped (how keys
    are handed over as files: a Kubernetes ConfigMap, a compose volume, a package)."""
    return [ln.strip() for ln in text.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]


def keygen(out: Path, name: str, *, if_missing: bool) -> tuple[Ed25519Signer, bool]:
    """`keygen` for every command: a new key at `out` (never overwriting one), or with
    `if_missing` the existing key there if it has this name. Returns (signer, created)."""
    if if_missing and out.exists():
        signer = read_key(out)
        if signer.name != name:
            raise KeyFileError(f"{out} is the key of {signer.name!r}, not {name!r}")
        return signer, False
    signer = generate_ed25519(name)
    try:
        write_key(out, signer)
    except FileExistsError:
        raise KeyFileError(f"{out} exists; refusing to overwrite a key") from None
    return signer, True
