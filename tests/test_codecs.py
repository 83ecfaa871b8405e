"""Strict codecs: decimals, base64, signed notes, verifier keys, checkpoints, tile paths, bundles."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from client import encoding, note, tiles
from client.checkpoint import Checkpoint, open_checkpoint, parse_checkpoint_text
from client.errors import MalformedError, SignatureError, UnknownKeyError
from client.merkle import EMPTY_ROOT

PN_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PN_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ER_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
PN_TEXT = ("If you think cryptography is the answer to your problem,\n"
           "then you don't know what your problem is.\n")
PN_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
          "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
ER_SIG = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovT"
          "G01oOTGwnWLox33WWd1RvMc+QQ=\n")
PN_NOTE = (PN_TEXT + "\n" + PN_SIG).encode()


# --- strict decimals and base64 ----------------------------------------------------------------

@pytest.mark.parametrize("bad", ["", "+5", "-5", " 5", "5 ", "05", "007", "5_0", "\u0665",
                                 "0x5", "18446744073709551616", "1e3", "5\n"])
def test_decimal_rejects(bad: str) -> None:
    with pytest.raises(MalformedError):
        encoding.parse_decimal(bad)


def test_decimal_accepts() -> None:
    assert encoding.parse_decimal("0") == 0
    assert encoding.parse_decimal("18446744073709551615") == (1 << 64) - 1
    with pytest.raises(MalformedError):
        encoding.parse_decimal("11", maximum=10)


@pytest.mark.parametrize("bad", ["aGVsbG8", "aGVsbG8==", "aGVs bG8=", "aGVs\nbG8=", "aGVsbG9=",
                                 "aGVs_G8=", "====", "a", "aGVsbG8=\x00"])
def test_b64_std_rejects(bad: str) -> None:
    with pytest.raises(MalformedError):
        encoding.b64decode_std(bad)


def test_b64_std_and_any() -> None:
    assert encoding.b64decode_std("aGVsbG8=") == b"hello"
    assert encoding.b64decode_std("") == b""
    with pytest.raises(MalformedError):
        encoding.b64decode_std("aGVsbG8=", length=32)
    assert encoding.b64decode_any("-_-_") == encoding.b64decode_any("+/+/")
    assert encoding.b64decode_any("aGVsbG8") == b"hello"
    with pytest.raises(MalformedError):
        encoding.b64decode_any("aGVsbG9")  # non-zero trailing bits
    with pytest.raises(MalformedError):
        encoding.b64decode_any("a+_b")  # mixed alphabets


# --- signed notes ------------------------------------------------------------------------------

def test_go_note_vectors() -> None:
    signer = note.parse_skey(PN_SKEY)
    assert signer.verifier().vkey() == PN_VKEY
    assert note.sign_note(PN_TEXT, [signer]) == PN_NOTE
    pn, er = note.parse_vkey(PN_VKEY), note.parse_vkey(ER_VKEY)
    both = (PN_TEXT + "\n" + PN_SIG + ER_SIG).encode()
    v = note.verify_note(both, [pn, er])
    assert [s.name for s in v.verified] == ["PeterNeumann", "EnochRoot"]
    v = note.verify_note(both, [er])
    assert [s.name for s in v.unverified] == ["PeterNeumann"]
    with pytest.raises(UnknownKeyError):
        note.verify_note(PN_NOTE, [er])


def test_c2sp_note_vector() -> None:
    v = note.parse_vkey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k")
    msg = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6"
           "TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n").encode()
    assert note.verify_note(msg, [v]).text == "This is an example message.\n"


@pytest.mark.parametrize("bad", [
    PN_TEXT.encode(),                                 # no blank line
    PN_TEXT.encode() + b"\n",                         # nothing after the blank line
    PN_NOTE[:-1],                                     # missing final newline
    b"\x01" + PN_NOTE, b"\xff" + PN_NOTE,             # control char, invalid UTF-8
    PN_NOTE.replace(b"PeterNeumann x08", b"Peter Neumann x08"),
    PN_NOTE + b"stray line\n",                        # non-signature line after signatures
    PN_TEXT.encode() + b"\n" + PN_SIG.encode() * 101,  # too many signatures
    PN_NOTE.replace(b"\n", b"\r\n"),
    PN_NOTE.replace(b"x08go", b"x08g\x0bo"),
    PN_NOTE.replace(b"JnAM=", b"JnAM"),               # unpadded base64
    PN_NOTE.replace(b"\xe2\x80\x94 ", b"- "),
])
def test_malformed_notes(bad: bytes) -> None:
    with pytest.raises(MalformedError):
        note.verify_note(bad, [note.parse_vkey(PN_VKEY)])


def test_bad_known_signature_is_rejected_not_ignored() -> None:
    parsed = note.parse_note(PN_NOTE)
    sig = parsed.signatures[0]
    for bit in (0, 100, 511):
        raw = bytearray(sig.sig)
        raw[bit // 8] ^= 1 << (bit % 8)
        bad = note.Note(parsed.text, (note.NoteSignature(sig.name, sig.key_id, bytes(raw)),))
        with pytest.raises(SignatureError):
            note.verify_note(bad.to_bytes(), [note.parse_vkey(PN_VKEY)])


def test_duplicate_lines_deduplicated() -> None:
    msg = (PN_TEXT + "\n" + PN_SIG + PN_SIG + ER_SIG + ER_SIG).encode()
    v = note.verify_note(msg, [note.parse_vkey(PN_VKEY)])
    assert len(v.verified) == 1 and len(v.unverified) == 1


def test_vkey_manglings_all_fail() -> None:
    """Every substring and every single-byte change of a valid key must be rejected."""
    for i in range(len(PN_VKEY)):
        for j in range(i, len(PN_VKEY) + 1):
            sub = PN_VKEY[i:j]
            if sub == PN_VKEY:
                continue
            with pytest.raises(MalformedError):
                note.parse_vkey(sub)
    for i in range(len(PN_VKEY)):
        mangled = PN_VKEY[:i] + chr(ord(PN_VKEY[i]) + 1) + PN_VKEY[i + 1 :]
        try:
            v = note.parse_vkey(mangled)
        except MalformedError:
            continue
        # A mangled name can still be a valid, different key only if the ID matched: impossible.
        pytest.fail(f"accepted mangled key {mangled!r} -> {v}")  # pragma: no cover
    for bad in ["PeterNeumann+cc469956+AR1c2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"]:
        with pytest.raises(MalformedError):
            note.parse_vkey(bad)


def test_ecdsa_signature_type() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    v = note.ECDSAVerifier("log.example", spki)
    assert v.key_id == int.from_bytes(hashlib.sha256(spki).digest()[:4], "big")
    assert note.parse_vkey(v.vkey()) == v
    text = "log.example\n5\n" + encoding.b64encode(EMPTY_ROOT) + "\n"

    class _S:
        name, key_id = "log.example", v.key_id

        def sign(self, msg: bytes) -> bytes:
            return key.sign(msg, ec.ECDSA(hashes.SHA256()))

    signed = note.sign_note(text, [_S()])
    assert note.verify_note(signed, [v]).text == text
    tampered = signed.replace(b"\n5\n", b"\n6\n")
    with pytest.raises(SignatureError):
        note.verify_note(tampered, [v])


def test_cosignature_v1_vector() -> None:
    """specs.md §4.3: Go's test key as a 0x04 cosigner reproduces the worked example."""
    signer = note.parse_skey(PN_SKEY)
    v = note.CosignatureV1Verifier("PeterNeumann", signer.public)
    assert v.vkey() == "PeterNeumann+18b9780b+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    ts = 1679315147
    sig = ts.to_bytes(8, "big") + signer.sign(note.cosignature_message(body.encode(), ts))
    line = note.NoteSignature("PeterNeumann", v.key_id, sig).line()
    assert line == ("\u2014 PeterNeumann GLl4CwAAAABkGFDLJeR//pqzhnEKVvEm2wWbh2RJ6oru5+cUUfm5X9Nnla"
                    "Gr8aSH9QE5RVZD4QGlxl2F5UpVIIi94p178KLfqPPsAA==\n")
    assert note.verify_note((body + "\n" + line).encode(), [v]).verified


# --- checkpoints -------------------------------------------------------------------------------

def test_checkpoint_round_trip_and_strictness() -> None:
    root = hashlib.sha256(b"x").digest()
    cp = Checkpoint("example.com/log", 20852163, root)
    assert parse_checkpoint_text(cp.text()) == cp
    assert Checkpoint("o", 0, EMPTY_ROOT).text() == "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    good = cp.text()
    for bad in [good.replace("20852163", "+20852163"), good.replace("20852163", "020852163"),
                good.replace("20852163", "20_852_163"), good[:-1], "o\n1\n",
                good.replace("\n", "\r\n"), good.replace("=\n", "\n"),
                "o\n1\n" + encoding.b64encode(root[:31]) + "\n",
                "\n1\n" + encoding.b64encode(root) + "\n",
                "o\n0\n" + encoding.b64encode(root) + "\n",          # size 0 needs the empty root
                good + "\n"]:                                         # empty extension line
        with pytest.raises(MalformedError):
            parse_checkpoint_text(bad)
    ext = parse_checkpoint_text(good + "Log frozen \u2014 1700000000\n")
    assert ext.extensions == ("Log frozen \u2014 1700000000",)


def test_open_checkpoint_checks_signature_then_origin() -> None:
    signer = note.generate_ed25519("example.com/log")
    cp = Checkpoint("example.com/log", 1, hashlib.sha256(b"a").digest())
    signed = note.sign_note(cp.text(), [signer])
    got, _ = open_checkpoint(signed, "example.com/log", [signer.verifier()])
    assert got == cp
    with pytest.raises(MalformedError):
        open_checkpoint(signed, "example.com/other", [signer.verifier()])
    other = note.generate_ed25519("example.com/log")
    with pytest.raises(UnknownKeyError):
        open_checkpoint(signed, "example.com/log", [other.verifier()])


# --- tiles -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "text"), [(0, "000"), (5, "005"), (1000, "x001/000"),
                                         (1234067, "x001/x234/067"),
                                         (123456789, "x123/x456/789")])
def test_tile_index_vectors(n: int, text: str) -> None:
    assert tiles.format_index(n) == text
    assert tiles.parse_index(text) == n


def test_tile_paths() -> None:
    assert tiles.tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tiles.tile_path(1, 5, 17) == "tile/1/005.p/17"
    assert tiles.entries_path(0, 8) == "tile/entries/000.p/8"
    for path in ["tile/0/000", "tile/2/x001/x234/067.p/255", "tile/entries/x999/999.p/1"]:
        assert tiles.parse_tile_path(path).path() == path


@pytest.mark.parametrize("bad", [
    "tile/0/0", "tile/0/0000", "tile/00/000", "tile/+1/000", "tile/64/000", "tile/-1/000",
    "tile/0/x000/001", "tile/0/x1/000", "tile/0/001/000", "tile/0/000.p/0", "tile/0/000.p/256",
    "tile/0/000.p/08", "tile/0/000.p/", "tile/0/000/", "tile/0/", "tile/0", "tile/entries/abc",
    "tile/0/00a", "tile/0/x001/x002/x003/x004/x005/x006/x007/008", "tiles/0/000",
    "tile/7/x072/x057/x594/037/927/936",  # beyond 2^64 leaves
    "tile/0/\u0661\u0662\u0663", "tile/0/000.p/1 ", "tile/8/000",
])
def test_tile_path_rejects(bad: str) -> None:
    with pytest.raises(MalformedError):
        tiles.parse_tile_path(bad)


def test_tiles_for_size_spec_example() -> None:
    refs = tiles.tiles_for_size(70000)
    full0 = [r for r in refs if r.level == 0 and r.width == 256]
    assert len(full0) == 273
    partial = {(r.level, r.width) for r in refs if r.width < 256}
    assert partial == {(0, 112), (1, 17), (2, 1)}
    assert [(r.level, r.width) for r in refs if r.level == 1 and r.width == 256] == [(1, 256)]
    assert [r.path() for r in tiles.tiles_for_size(8)] == ["tile/0/000.p/8"]
    assert [r.path() for r in tiles.tiles_for_size(256)] == ["tile/0/000", "tile/1/000.p/1"]


def test_bundle_codec() -> None:
    entries = [bytes.fromhex(x) for x in ["", "00", "10", "2021", "3031", "40414243",
                                          "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
    raw = tiles.encode_bundle(entries)
    assert raw.hex() == ("000000010000011000022021000230310004404142430008505152535455565700"
                         "10606162636465666768696a6b6c6d6e6f")
    assert tiles.parse_bundle(raw) == entries
    for bad in [raw[:-1], raw + b"\x00", raw + b"\x00\x05ab"]:
        with pytest.raises(MalformedError):
            tiles.parse_bundle(bad)
    with pytest.raises(ValueError):
        tiles.encode_bundle([b"x" * 65536])
    with pytest.raises(MalformedError):
        tiles.parse_bundle(tiles.encode_bundle([b""] * 257))


def test_oversize_inputs_are_refused() -> None:
    with pytest.raises(MalformedError):
        note.parse_note(PN_NOTE + b"x" * (1 << 20))
    with pytest.raises(MalformedError):
        parse_checkpoint_text("o\n1\n" + "A" * 43 + "=\n" + ("ext\n" * 5000))
    with pytest.raises(MalformedError):
        note.parse_vkey("a" * 5000)
    with pytest.raises(MalformedError):
        tiles.parse_tile_path("tile/0/" + "x000/" * 40 + "000")


def test_hash_fast_path_agrees_with_the_strict_decoder() -> None:
    """b64decode_hash (regex fast path) accepts exactly what b64decode_std(length=32) does."""
    import base64
    import random

    from client.encoding import b64decode_hash, b64decode_std
    from client.errors import MalformedError

    rng = random.Random(5)
    for _ in range(2000):
        text = base64.b64encode(rng.randbytes(32)).decode()
        variants = [text, text[:-2] + chr(ord(text[-2]) + 1) + "=", text[:-1], text + "=",
                    text.replace("+", "-"), " " + text, text[:-1] + "A", text[:10] + "\n" + text[10:]]
        for v in variants:
            try:
                want: bytes | None = b64decode_std(v, length=32)
            except MalformedError:
                want = None
            try:
                got: bytes | None = b64decode_hash(v)
            except MalformedError:
                got = None
            assert got == want, v


def test_cosignature_v1_worked_example() -> None:
    """specs.md §4.3: Ed25519 is deterministic, so the cosignature line is fixed."""
    from client.note import CosignatureV1Signer, parse_skey, parse_vkey, sign_note, verify_note

    seed = parse_skey("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
    cosigner = CosignatureV1Signer.from_signer(seed)
    cosigner.clock = lambda: 1679315147
    assert cosigner.verifier().vkey() == "PeterNeumann+18b9780b+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    note = sign_note(text, [cosigner])
    assert note.decode().endswith(
        "\u2014 PeterNeumann GLl4CwAAAABkGFDLJeR//pqzhnEKVvEm2wWbh2RJ6oru5+cUUfm5X9NnlaGr8aSH9QE5RVZD4QGlxl2F"
        "5UpVIIi94p178KLfqPPsAA==\n")
    verify_note(note, [parse_vkey(cosigner.verifier().vkey())])


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="ab=&%+;20x \u00e9", max_size=16))
def test_query_params_read_as_starlette_reads_them(q: str) -> None:
    """The plain endpoints' query parsing (a fast split for plain queries) gives what
    Starlette's `request.query_params` gives: parse_qsl, blank values kept, last name wins."""
    import urllib.parse

    from tlog.app import query_params

    raw = q.encode("utf-8").decode("latin-1").encode("latin-1")
    want = dict(urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    assert query_params({"query_string": raw}) == want
