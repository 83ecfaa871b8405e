"""The log's Ed25519 key file: created 0600 on first run, refused if others can read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from client.note import Ed25519Signer, generate_ed25519, parse_skey


class KeyFileError(Exception):
    pass


def write_key(path: Path, signer: Ed25519Signer) -> None:
    """Write the signer key atomically with mode 0600 (never over an existing file)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (signer.skey() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.link(tmp, path)  # fails if the key appeared meanwhile: never overwrite a key
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
