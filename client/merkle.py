"""RFC 6962 / RFC 9162 Merkle tree math: hashing, proof construction and verification.

Pure: no I/O, primitives only (int sizes and indexes, 32-byte hashes). Proof construction
is split, as in Go's `sumdb/tlog`, into *which* stored nodes a proof needs (index math) and
*computing* the proof from those nodes, which a caller supplies through a `NodeReader`.
The log server reads nodes from LMDB; the client reads them from fetched tiles.

A node `(level, index)` is the root of the perfect subtree over leaves
`[index << level, (index + 1) << level)`. Only such perfect subtrees are ever stored;
"ephemeral" nodes on the right edge of a non-full tree are recomputed by folding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from client.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

Node = tuple[int, int]
NodeReader = Callable[[Sequence[Node]], Sequence[bytes]]
"""Returns the hashes of the given perfect-subtree nodes, in order."""

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1 leaf hash: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- which nodes ----------------------------------------------------------------------------


def range_nodes(lo: int, hi: int) -> list[Node]:
    """The maximal perfect subtrees covering [lo, hi), left to right.

    Valid for the ranges that appear in RFC 6962 proofs and roots: `lo` is aligned to the
    largest power of two not above `hi - lo`, so greedy decomposition from the left works.
    """
    nodes: list[Node] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        # Shrink until lo is aligned at this level (only needed for unaligned callers).
        while lo & ((1 << level) - 1):
            level -= 1
        nodes.append((level, lo >> level))
        lo += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the perfect-subtree hashes of `range_nodes` (left to right) into MTH of the range."""
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = node_hash(left, h)
    return h


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form the audit path PATH(index, D[0:size]), leaf sibling first."""
    if not 0 <= index < size:
        raise ValueError("index must be in [0, size)")
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PROOF(old, D[0:new]) (RFC 6962 §2.1.2), for 0 < old <= new."""
    if not 0 < old <= new:
        raise ValueError("need 0 < old <= new")
    out: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, new, old, True
    while True:
        n = hi - lo
        if m == n:
            if not complete:
                out.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            out.append((lo + k, hi))
            hi = lo + k
        else:
            out.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    out.reverse()
    return out


# --- computing from nodes -------------------------------------------------------------------


def _hash_ranges(ranges: Sequence[tuple[int, int]], read: NodeReader) -> list[bytes]:
    """MTH of each range, with one batched read of every node needed."""
    per_range = [range_nodes(lo, hi) for lo, hi in ranges]
    wanted = [node for nodes in per_range for node in nodes]
    got = read(wanted)
    if len(got) != len(wanted):
        raise ValueError("node reader returned the wrong number of hashes")
    out: list[bytes] = []
    pos = 0
    for nodes in per_range:
        out.append(fold(got[pos : pos + len(nodes)]))
        pos += len(nodes)
    return out


def tree_root(size: int, read: NodeReader) -> bytes:
    """MTH(D[0:size]) from stored perfect subtrees."""
    if size == 0:
        return EMPTY_ROOT
    return _hash_ranges([(0, size)], read)[0]


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    """RFC 6962 audit path for leaf `index` in the tree of `size` leaves."""
    return _hash_ranges(inclusion_ranges(index, size), read)


def consistency_proof(old: int, new: int, read: NodeReader) -> list[bytes]:
    """RFC 6962 consistency proof from `old` to `new` leaves; empty when old is 0 or old == new."""
    if not 0 <= old <= new:
        raise ValueError("need 0 <= old <= new")
    if old in (0, new):
        return []
    return _hash_ranges(consistency_ranges(old, new), read)


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -----------------------------------------


def _check_hashes(proof: Sequence[bytes]) -> None:
    for h in proof:
        if len(h) != HASH_SIZE:
            raise ProofError("proof hash is not 32 bytes")


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """Recompute the root an audit path commits to; raises ProofError on a malformed path."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not below tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError("leaf hash is not 32 bytes")
    _check_hashes(proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise ProofError unless `proof` proves leaf hash `leaf` at `index` under `root`."""
    if root_from_inclusion_proof(index, size, leaf, proof) != root:
        raise ProofError(f"inclusion proof for index {index} does not match the root of size {size}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise ProofError unless `proof` shows tree `old_size` is a prefix of tree `new_size`.

    Edge cases follow C2SP tlog-witness: from size 0 the proof must be empty (and the old
    root must be the empty root); equal sizes need an empty proof and equal roots.
    """
    if not 0 <= old_size <= new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        raise ProofError("root is not 32 bytes")
    _check_hashes(proof)
    if old_size == 0:
        if proof:
            raise ProofError("consistency proof from size 0 must be empty")
        if old_root != EMPTY_ROOT:
            raise ProofError("a size-0 tree must have the empty root")
        return
    if old_size == new_size:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("equal sizes with different roots")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof does not match the root of size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not match the root of size {new_size}")


class EdgeProver:
    """Audit paths one node per level, for a server proving many leaves at few tree sizes.

    Walking RFC 9162's verification loop backwards, each step of a path is either a complete
    sibling subtree (one stored node, read with `node(level, index)`) or, at most once per
    level, the hash of a range ending at the tree's ragged right edge, which every proof at
    that size shares: those are memoised for the latest size. Equal to `inclusion_proof`
    (tests compare them), with a fraction of its work per proof.
    """

    __slots__ = ("_edge", "_size")

    def __init__(self) -> None:
        self._size = -1
        self._edge: dict[int, bytes] = {}

    def inclusion_proof(self, index: int, size: int, node: Callable[[int, int], bytes]) -> list[bytes]:
        if not 0 <= index < size:
            raise ValueError("index must be in [0, size)")
        if size != self._size:
            self._size, self._edge = size, {}
        proof: list[bytes] = []
        fn, sn, level = index, size - 1, 0
        while sn:
            if not fn & 1 and fn == sn:  # no right sibling: rise to where it is a right child
                while not fn & 1:
                    fn, sn, level = fn >> 1, sn >> 1, level + 1
            if fn & 1:
                proof.append(node(level, fn - 1))
            elif (fn + 2) << level <= size:
                proof.append(node(level, fn + 1))
            else:
                lo = (fn + 1) << level
                h = self._edge.get(lo)
                if h is None:
                    h = self._edge[lo] = fold([node(lv, i) for lv, i in range_nodes(lo, size)])
                proof.append(h)
            fn, sn, level = fn >> 1, sn >> 1, level + 1
        return proof


class RangeHashCache:
    """Memoised MTH of leaf ranges over one tree, for building many proofs at one size.

    Audit paths of neighbouring leaves share almost every range, so the receipts of one batch
    cost a dictionary lookup per hash after the first.
    """

    __slots__ = ("_memo", "_read")

    def __init__(self, read: NodeReader) -> None:
        self._read = read
        self._memo: dict[tuple[int, int], bytes] = {}

    def range_hash(self, lo: int, hi: int) -> bytes:
        key = (lo, hi)
        h = self._memo.get(key)
        if h is None:
            h = self._memo[key] = fold(self._read(range_nodes(lo, hi)))
        return h

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return [self.range_hash(lo, hi) for lo, hi in inclusion_ranges(index, size)]
