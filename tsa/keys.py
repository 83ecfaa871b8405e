"""The TSA directory: `tsa-key.pem` (the signing key, PKCS#8 PEM, mode 0600) and
`tsa-chain.pem` (the signing certificate, then the root: the order clients configure it).

On first run both are created by `tsa.authority.generate_chain`. The root CA's private key
is **discarded** once it has signed the leaf: it is never written anywhere, so nobody (the
operator included) can issue a second TSA certificate under this root. Rotating the TSA means
a new directory and a new root that clients must be told about, which is the point: the root
is what Sigstore TrustedRoots pin.

A key file that others can read is refused, as for every key tlog keeps. A directory holding
only one of the two files is refused too rather than silently completed: a chain without its
key (or a key without its chain) means something went wrong that an operator should see.
"""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from client.files import write_atomically
from tsa.authority import generate_chain

KEY_FILE, CHAIN_FILE = "tsa-key.pem", "tsa-chain.pem"


class TSAKeyError(Exception):
    """The TSA directory cannot be used as it is (unreadable, inconsistent, too open)."""


def chain_pem(chain: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)


def create(directory: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]:
    """Generate a root and a TSA certificate; write the TSA key and the chain (not the root key)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    _root_key, root, key, leaf = generate_chain(name)
    chain = [leaf, root]
    # The chain first: a crash between the two writes leaves a chain without a key, which
    # load_or_create() refuses loudly, never a key that a later run pairs with a new chain.
    write_atomically(directory / CHAIN_FILE, chain_pem(chain), mode=0o644)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomically(directory / KEY_FILE, pem, mode=0o600)
    return key, chain


def load(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]:
    """The TSA key and chain (leaf first) kept in `directory`; raises TSAKeyError."""
    key_path, chain_path = directory / KEY_FILE, directory / CHAIN_FILE
    mode = key_path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TSAKeyError(f"{key_path} is readable by others (mode {mode & 0o777:o}); "
                          "run chmod 600 on it")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        chain = x509.load_pem_x509_certificates(chain_path.read_bytes())
    except (ValueError, TypeError) as exc:
        raise TSAKeyError(f"{directory}: cannot read the TSA key or chain: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TSAKeyError(f"{key_path} is not an ECDSA key")
    if len(chain) < 2:
        raise TSAKeyError(f"{chain_path} must hold the TSA certificate then its root")
    if key.public_key().public_numbers() != chain[0].public_key().public_numbers():
        raise TSAKeyError(f"{key_path} is not the key of the first certificate in {chain_path}")
    return key, chain


def load_or_create(directory: Path, name: str = "tlog TSA") -> tuple[
        ec.EllipticCurvePrivateKey, list[x509.Certificate], bool]:
    """The TSA key and chain in `directory`, created on first use. Returns (key, chain, created)."""
    have = [(directory / f).exists() for f in (KEY_FILE, CHAIN_FILE)]
    if all(have):
        key, chain = load(directory)
        return key, chain, False
    if any(have):
        raise TSAKeyError(f"{directory} holds only one of {KEY_FILE} and {CHAIN_FILE}; "
                          "restore the other or start from an empty directory")
    key, chain = create(directory, name)
    return key, chain, True
