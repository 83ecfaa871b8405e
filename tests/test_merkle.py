"""Merkle math against RFC 6962 vectors and a naive recursive reference."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client import merkle
from client.errors import ProofError
from tests.reference_merkle import Reference

RFC_LEAVES = [bytes.fromhex(x) for x in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
RFC_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H = {  # hashes named in specs.md §8.2
    "l0": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "l1": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "l2": "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "l3": "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "l4": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "l5": "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "l6": "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "l7": "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    "n23": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "n45": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "n67": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "n01": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "n03": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "n47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "l": "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e",
}


def _h(*names: str) -> list[bytes]:
    return [bytes.fromhex(H[n]) for n in names]


REF8 = Reference(RFC_LEAVES)


def test_hash_vectors() -> None:
    assert merkle.leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    assert merkle.node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb")
    assert merkle.EMPTY_ROOT.hex() == RFC_ROOTS[0]
    assert merkle.leaf_hash(b"") != merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_rfc_roots(size: int) -> None:
    ref = Reference(RFC_LEAVES[:size])
    assert merkle.tree_root(size, ref.reader()).hex() == RFC_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "names"), [
    (0, 1, []), (0, 2, ["l1"]), (1, 2, ["l0"]), (2, 3, ["n01"]),
    (1, 5, ["l0", "n23", "l4"]), (0, 8, ["l1", "n23", "n47"]), (5, 8, ["l4", "n67", "n03"]),
    (0, 7, ["l1", "n23", "l"]), (3, 7, ["l2", "n01", "l"]), (4, 7, ["l5", "l6", "n03"]),
    (6, 7, ["n45", "n03"]),
])
def test_rfc_inclusion_vectors(index: int, size: int, names: list[str]) -> None:
    ref = Reference(RFC_LEAVES[:size])
    proof = merkle.inclusion_proof(index, size, ref.reader())
    assert proof == _h(*names)
    root = bytes.fromhex(RFC_ROOTS[size])
    merkle.verify_inclusion(index, size, merkle.leaf_hash(RFC_LEAVES[index]), proof, root)


@pytest.mark.parametrize(("old", "new", "names"), [
    (1, 1, []), (1, 8, ["l1", "n23", "n47"]), (2, 5, ["n23", "l4"]), (6, 8, ["n45", "n67", "n03"]),
    (3, 7, ["l2", "l3", "n01", "l"]), (4, 7, ["l"]), (6, 7, ["n45", "l6", "n03"]),
    (3, 8, ["l2", "l3", "n01", "n47"]), (7, 8, ["l6", "l7", "n45", "n03"]),
    (5, 7, ["l4", "l5", "l6", "n03"]),
])
def test_rfc_consistency_vectors(old: int, new: int, names: list[str]) -> None:
    ref = Reference(RFC_LEAVES[:new])
    proof = merkle.consistency_proof(old, new, ref.reader())
    assert proof == _h(*names)
    merkle.verify_consistency(old, new, bytes.fromhex(RFC_ROOTS[old]),
                              bytes.fromhex(RFC_ROOTS[new]), proof)


LEAVES = [random.Random(7).randbytes(i % 13) + i.to_bytes(4, "big") for i in range(300)]
REF = Reference(LEAVES)


def test_every_inclusion_proof_up_to_300() -> None:
    read = REF.reader()
    for n in range(1, 301):
        root = REF.mth(0, n)
        for m in range(n):
            proof = merkle.inclusion_proof(m, n, read)
            assert proof == REF.inclusion(m, n), (m, n)
            merkle.verify_inclusion(m, n, REF.hashes[m], proof, root)


def test_edge_prover_gives_every_inclusion_proof_up_to_300() -> None:
    """The server's one-node-per-level prover equals the reference, sizes interleaved so its
    right-edge memo is dropped and rebuilt between them."""
    read = REF.reader()
    prover = merkle.EdgeProver()

    def node(level: int, index: int) -> bytes:
        return read([(level, index)])[0]

    for n in range(1, 301):
        for m in range(n):
            assert prover.inclusion_proof(m, n, node) == REF.inclusion(m, n), (m, n)
            if n > 1:
                assert prover.inclusion_proof(m % (n - 1), n - 1, node) == \
                    REF.inclusion(m % (n - 1), n - 1)
    with pytest.raises(ValueError):
        prover.inclusion_proof(3, 3, node)
    # One size, every leaf, one prover: its right-edge memo answers from the second proof on.
    for n in (255, 257, 300):
        same = merkle.EdgeProver()
        for m in range(n):
            assert same.inclusion_proof(m, n, node) == REF.inclusion(m, n), (m, n)


def test_every_consistency_proof_up_to_300() -> None:
    read = REF.reader()
    for n in range(1, 301):
        new_root = REF.mth(0, n)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(m, n, read)
            assert proof == REF.consistency(m, n), (m, n)
            merkle.verify_consistency(m, n, REF.mth(0, m), new_root, proof)


def test_tampered_proofs_fail() -> None:
    """Every single-bit flip, dropped, added or reordered hash must make verification fail."""
    read = REF.reader()
    for n in (2, 3, 7, 8, 9, 31, 64, 100, 255, 256, 257, 300):
        root = REF.mth(0, n)
        for m in range(0, n, max(1, n // 9)):
            proof = merkle.inclusion_proof(m, n, read)
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(m, n, REF.hashes[m], bad, root)
            if proof:
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(m, n, REF.hashes[m], proof[:-1], root)
            with pytest.raises(ProofError):
                merkle.verify_inclusion(m, n, REF.hashes[m], [*proof, root], root)
            with pytest.raises(ProofError):
                merkle.verify_inclusion(m, n, REF.hashes[(m + 1) % n], proof, root) if n > 1 \
                    else merkle.verify_inclusion(m, n, b"\x00" * 32, proof, root)
            if m + 1 < n and proof:
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(m + 1, n, REF.hashes[m], proof, root)
        for m in range(1, n, max(1, n // 9)):
            proof = merkle.consistency_proof(m, n, read)
            old_root = REF.mth(0, m)
            for i in range(len(proof)):
                bad = list(proof)
                bad[i] = bytes([bad[i][0] ^ 0x80]) + bad[i][1:]
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, old_root, root, bad)
            with pytest.raises(ProofError):
                merkle.verify_consistency(m, n, old_root, root, proof[:-1])
            with pytest.raises(ProofError):
                merkle.verify_consistency(m, n, root, root, proof)
            if len(proof) > 1:
                with pytest.raises(ProofError):
                    merkle.verify_consistency(m, n, old_root, root, proof[::-1])


def test_edge_cases() -> None:
    empty = merkle.EMPTY_ROOT
    root1 = REF.mth(0, 1)
    merkle.verify_consistency(0, 5, empty, REF.mth(0, 5), [])
    merkle.verify_consistency(0, 0, empty, empty, [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, 5, empty, REF.mth(0, 5), [root1])
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, 5, root1, REF.mth(0, 5), [])
    merkle.verify_consistency(5, 5, REF.mth(0, 5), REF.mth(0, 5), [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(5, 5, REF.mth(0, 5), REF.mth(0, 4), [])
    with pytest.raises(ProofError):
        merkle.verify_consistency(6, 5, REF.mth(0, 6), REF.mth(0, 5), [])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(0, 0, root1, [], empty)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(5, 5, root1, [], empty)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(-1, 5, root1, [], empty)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(0, 2, root1, [b"short"], empty)
    merkle.verify_inclusion(0, 1, root1, [], root1)
    assert merkle.consistency_proof(0, 9, REF.reader()) == []
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, 3, REF.reader())


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 1 << 40), st.data())
def test_large_random_trees(size: int, data: st.DataObject) -> None:
    """Sizes up to 2^40 without 2^40 leaves: every leaf is the same except one, so any perfect
    subtree hash is computable in O(height), and a proof must place that one leaf correctly."""
    index = data.draw(st.integers(0, size - 1))
    uniform = [merkle.leaf_hash(b"u")]
    for _ in range(64):
        uniform.append(merkle.node_hash(uniform[-1], uniform[-1]))
    special = merkle.leaf_hash(b"special")

    def perfect(level: int, i: int) -> bytes:
        if index >> level != i:
            return uniform[level]
        if level == 0:
            return special
        return merkle.node_hash(perfect(level - 1, 2 * i), perfect(level - 1, 2 * i + 1))

    def read(nodes):
        return [perfect(lvl, i) for lvl, i in nodes]

    root = merkle.tree_root(size, read)
    proof = merkle.inclusion_proof(index, size, read)
    assert merkle.EdgeProver().inclusion_proof(index, size, perfect) == proof
    merkle.verify_inclusion(index, size, special, proof, root)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(index, size, uniform[0], proof, root)
    old = data.draw(st.integers(1, size))
    cproof = merkle.consistency_proof(old, size, read)
    merkle.verify_consistency(old, size, merkle.tree_root(old, read), root, cproof)
    if old < size:
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, size, b"\xff" * 32, root, cproof)
