"""The RFC 3161 TSA (tsa/) and the client verifier (client/timestamp.py).

A real `python -m tsa serve` process answers; its tokens are checked by our verifier, by
rfc3161-client (what sigstore-python uses), by `openssl ts -verify`, and by sigstore-js's
@sigstore/core parser when tests/js has it installed. Then the hostile cases.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from rfc3161_client import VerificationError as RfcVerificationError
from rfc3161_client import VerifierBuilder, decode_timestamp_response

from client.errors import MalformedError
from client.timestamp import (
    OptionalTokenResp,
    TimestampError,
    timestamp_request,
    timestamp_token_time,
    verify_timestamp,
)
from tests.serverproc import TSAProc
from tsa.authority import DEFAULT_POLICY, TimestampAuthority, generate_chain
from tsa.keys import CHAIN_FILE, KEY_FILE, TSAKeyError, load, load_or_create

SIG = b"\x30\x45 the signature bytes a bundle carries"
SJS = Path(__file__).parent / "js" / "node_modules" / "@sigstore"


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory):
    proc = TSAProc(tmp_path_factory.mktemp("tsa") / "keys").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def chain(tsa: TSAProc) -> list[bytes]:
    r = httpx.get(tsa.url + "/api/v1/timestamp/certchain")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pem-certificate-chain"
    return [c.public_bytes(Encoding.PEM) for c in x509.load_pem_x509_certificates(r.content)]


def post(tsa: TSAProc, body: bytes, ctype: str = "application/timestamp-query") -> httpx.Response:
    return httpx.post(tsa.url + "/api/v1/timestamp", content=body, headers={"Content-Type": ctype})


def stamp(tsa: TSAProc, data: bytes = SIG, **kw: object) -> bytes:
    r = post(tsa, timestamp_request(data, **kw))  # type: ignore[arg-type]
    assert r.status_code == 200 and r.headers["content-type"] == "application/timestamp-reply"
    return r.content


def status_of(resp: bytes) -> tuple[str, set[str]]:
    st = OptionalTokenResp.load(resp)["status"]
    return st["status"].native, st["fail_info"].native or set()


def rfc3161_verify(resp: bytes, data: bytes, chain: list[bytes], **kw: object) -> None:
    leaf, root = (x509.load_pem_x509_certificate(c) for c in chain)
    builder = VerifierBuilder(**kw).tsa_certificate(leaf).add_root_certificate(root)  # type: ignore[arg-type]
    builder.build().verify_message(decode_timestamp_response(resp), data)


# --- the happy path, three (or four) verifiers ------------------------------------------------

def test_token_verifies_everywhere(tsa: TSAProc, chain: list[bytes], tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    resp = stamp(tsa, nonce=123456789)
    # (a) ours: genTime in whole seconds, UTC, now
    at = verify_timestamp(resp, SIG, chain, nonce=123456789)
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0) and at.microsecond == 0
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC) + timedelta(seconds=1)
    assert timestamp_token_time(resp) == at
    tst = OptionalTokenResp.load(resp)["time_stamp_token"]["content"]["encap_content_info"]["content"]
    assert tst.parsed["gen_time"].contents.endswith(b"Z") and len(tst.parsed["gen_time"].contents) == 15
    assert tst.parsed["policy"].dotted == DEFAULT_POLICY
    # (b) rfc3161-client, as sigstore-python builds it (leaf as TSA certificate, root), plus
    # the nonce and policy checks it can do
    rfc3161_verify(resp, SIG, chain)
    rfc3161_verify(resp, SIG, chain, nonce=123456789, policy_id=x509.ObjectIdentifier(DEFAULT_POLICY))
    with pytest.raises(RfcVerificationError):
        rfc3161_verify(resp, b"other bytes", chain)
    # (c) OpenSSL
    (tmp_path / "data").write_bytes(SIG)
    (tmp_path / "resp").write_bytes(resp)
    (tmp_path / "leaf.pem").write_bytes(chain[0])
    (tmp_path / "root.pem").write_bytes(chain[1])

    def openssl(data: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["openssl", "ts", "-verify", "-data", str(tmp_path / data),
                               "-in", str(tmp_path / "resp"), "-CAfile", str(tmp_path / "root.pem"),
                               "-untrusted", str(tmp_path / "leaf.pem")],
                              check=False, capture_output=True, text=True, timeout=10)
    ok = openssl("data")
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    (tmp_path / "other").write_bytes(b"other bytes")
    assert openssl("other").returncode != 0


@pytest.mark.skipif(shutil.which("node") is None or not (SJS / "core").is_dir(),
                    reason="node or tests/js/node_modules/@sigstore not installed")
def test_sigstore_js_parses_and_verifies(tsa: TSAProc, chain: list[bytes], tmp_path: Path) -> None:
    """sigstore-js's own RFC 3161 code: sid lookup fields, signature algorithm table,
    chain check at genTime, messageDigest, signature, imprint."""
    (tmp_path / "resp").write_bytes(stamp(tsa))
    for name, pem in zip(("leaf", "root"), chain, strict=True):
        (tmp_path / f"{name}.der").write_bytes(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER))
    script = f"""
const core = require({str(SJS / 'core')!r});
const {{ CertificateChainVerifier }} = require({str(SJS / 'verify/dist/key/certificate')!r});
const fs = require('fs'), dir = {str(tmp_path)!r};
const ts = core.RFC3161Timestamp.parse(fs.readFileSync(dir + '/resp'));
const leaf = core.X509Certificate.parse(fs.readFileSync(dir + '/leaf.der'));
const root = core.X509Certificate.parse(fs.readFileSync(dir + '/root.der'));
if (ts.status !== 0n || ts.signatureAlgorithm !== 'sha256') throw new Error('status/alg');
if (!core.crypto.bufferEqual(leaf.serialNumber, ts.signerSerialNumber)) throw new Error('serial');
if (!core.crypto.bufferEqual(leaf.issuer, ts.signerIssuer)) throw new Error('issuer');
new CertificateChainVerifier({{untrustedCert: leaf, trustedCerts: [root],
                              timestamp: ts.signingTime}}).verify();
ts.verify(Buffer.from({list(SIG)!r}), core.crypto.createPublicKey(leaf.publicKey));
let refused = false;
try {{ ts.verify(Buffer.from('x'), core.crypto.createPublicKey(leaf.publicKey)); }}
catch (e) {{ refused = true; }}
if (!refused) throw new Error('other data accepted');
console.log('ok ' + ts.signingTime.toISOString());
"""
    out = subprocess.run(["node", "-e", script], check=False, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("ok "), out.stderr


def test_cert_req_false_omits_certificates(tsa: TSAProc, chain: list[bytes]) -> None:
    resp = stamp(tsa, cert_req=False)
    assert not OptionalTokenResp.load(resp)["time_stamp_token"]["content"]["certificates"].native
    verify_timestamp(resp, SIG, chain)
    rfc3161_verify(resp, SIG, chain)  # the TSA certificate comes from the trusted chain


def test_chain_shape(tsa: TSAProc, chain: list[bytes]) -> None:
    leaf, root = (x509.load_pem_x509_certificate(c) for c in chain)
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    assert root.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    leaf.verify_directly_issued_by(root)
    now = datetime.now(UTC)
    assert leaf.not_valid_before_utc < now - timedelta(minutes=50)
    assert leaf.not_valid_after_utc > now + timedelta(days=4 * 365)
    assert root.not_valid_after_utc > now + timedelta(days=9 * 365)
    assert (tsa.data_dir / CHAIN_FILE).read_bytes() == b"".join(chain)


# --- hostile requests ---------------------------------------------------------------------

def test_garbage_is_a_rejection_not_a_500(tsa: TSAProc, chain: list[bytes]) -> None:
    for body in (b"", b"garbage", b"\x30\x82\xff\xff", timestamp_request(SIG) + b"\x00"):
        r = post(tsa, body)
        assert r.status_code == 200, body
        assert status_of(r.content) == ("rejection", {"bad_data_format"})
        with pytest.raises(TimestampError, match="not granted"):
            verify_timestamp(r.content, SIG, chain)


def test_wrong_content_type_and_oversize(tsa: TSAProc) -> None:
    r = post(tsa, timestamp_request(SIG), ctype="application/json")
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    assert r.json()["error"]["message"]
    r = post(tsa, b"\x00" * (16 * 1024 + 1))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = httpx.post(tsa.url + "/api/v1/timestamp", content=iter([b"\x00" * 9000] * 2),
                   headers={"Content-Type": "application/timestamp-query"})  # chunked, no length
    assert r.status_code == 413
    assert httpx.get(tsa.url + "/api/v1/timestamp").status_code == 405
    assert httpx.get(tsa.url + "/healthz").status_code == 200


def test_policy(tsa: TSAProc, chain: list[bytes]) -> None:
    assert status_of(stamp(tsa, policy="1.2.3.4")) == ("rejection", {"unaccepted_policy"})
    verify_timestamp(stamp(tsa, policy=DEFAULT_POLICY), SIG, chain)


def _request(alg: str, digest: bytes, **extra: object) -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": alg}, "hashed_message": digest}, **extra}).dump()


def test_hash_algorithms(tsa: TSAProc, chain: list[bytes]) -> None:
    import hashlib

    for alg in ("sha384", "sha512"):
        r = post(tsa, _request(alg, hashlib.new(alg, SIG).digest(), cert_req=True))
        verify_timestamp(r.content, SIG, chain)
        rfc3161_verify(r.content, SIG, chain)
    for alg in ("sha1", "md5"):
        r = post(tsa, _request(alg, hashlib.new(alg, SIG).digest()))
        assert status_of(r.content) == ("rejection", {"bad_alg"})
    r = post(tsa, _request("sha256", b"\x00" * 31))
    assert status_of(r.content) == ("rejection", {"bad_data_format"})


def test_request_strictness_offline() -> None:
    _, root, key, leaf = generate_chain("unit")
    tsa = TimestampAuthority(key, [leaf, root])
    ext = [{"extn_id": "1.2.3", "extn_value": b"x"}]
    assert status_of(tsa.respond(_request("sha256", b"\x00" * 32, extensions=ext))) == (
        "rejection", {"unaccepted_extensions"})
    good = timestamp_request(SIG)
    ber = b"\x30\x81" + bytes([len(good) - 2]) + good[2:]  # long-form length: BER, not DER
    assert status_of(tsa.respond(ber)) == ("rejection", {"bad_data_format"})
    assert status_of(tsa.respond(b"\x00" * 20000)) == ("rejection", {"bad_data_format"})
    with pytest.raises(ValueError, match="not the key"):
        TimestampAuthority(generate_chain("x")[2], [leaf, root])


# --- hostile responses --------------------------------------------------------------------

def test_wrong_data_or_nonce(tsa: TSAProc, chain: list[bytes]) -> None:
    resp = stamp(tsa, nonce=42)
    with pytest.raises(TimestampError, match="imprint"):
        verify_timestamp(resp, SIG + b"!", chain)
    with pytest.raises(TimestampError, match="nonce"):
        verify_timestamp(resp, SIG, chain, nonce=43)


def _flip(resp: bytes, part: bytes, index: int) -> bytes:
    at = resp.index(part) + index
    assert resp.count(part) == 1
    return resp[:at] + bytes([resp[at] ^ 0x01]) + resp[at + 1:]


def test_tampered_signature(tsa: TSAProc, chain: list[bytes]) -> None:
    resp = stamp(tsa)
    sig = OptionalTokenResp.load(resp)["time_stamp_token"]["content"]["signer_infos"][0]["signature"]
    bad = _flip(resp, sig.native, len(sig.native) - 1)
    with pytest.raises(TimestampError, match="signature"):
        verify_timestamp(bad, SIG, chain)
    with pytest.raises(RfcVerificationError):
        rfc3161_verify(bad, SIG, chain)


def test_tampered_gen_time(tsa: TSAProc, chain: list[bytes]) -> None:
    resp = stamp(tsa)
    tst = OptionalTokenResp.load(resp)["time_stamp_token"]["content"]["encap_content_info"]["content"]
    gen = tst.parsed["gen_time"].contents
    bad = _flip(resp, gen, 12)  # a digit of the minutes: still a valid time, another time
    assert timestamp_token_time(bad) != timestamp_token_time(resp)
    with pytest.raises(TimestampError, match="messageDigest"):
        verify_timestamp(bad, SIG, chain)
    with pytest.raises(RfcVerificationError):
        rfc3161_verify(bad, SIG, chain)


def test_other_tsa_chain(tsa: TSAProc, chain: list[bytes]) -> None:
    resp = stamp(tsa)
    _, root2, _, leaf2 = generate_chain("other TSA")
    other = [c.public_bytes(Encoding.PEM) for c in (leaf2, root2)]
    with pytest.raises(TimestampError, match="not signed by the chain"):
        verify_timestamp(resp, SIG, other)
    with pytest.raises(TimestampError, match="not issued by"):
        verify_timestamp(resp, SIG, [chain[0], other[1]])  # our leaf, someone else's root
    with pytest.raises(RfcVerificationError):
        rfc3161_verify(resp, SIG, other)


def test_time_outside_validity_and_bad_eku() -> None:
    root_key, root, key, leaf = generate_chain("unit")
    pem = [c.public_bytes(Encoding.PEM) for c in (leaf, root)]
    late = TimestampAuthority(key, [leaf, root], clock=lambda: leaf.not_valid_after_utc.timestamp() + 10)
    with pytest.raises(TimestampError, match="not valid at"):
        verify_timestamp(late.respond(timestamp_request(SIG)), SIG, pem)
    # the same key certified without the critical timeStamping-only EKU
    builder = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(root.subject)
               .public_key(key.public_key()).serial_number(leaf.serial_number + 1)
               .not_valid_before(leaf.not_valid_before_utc).not_valid_after(leaf.not_valid_after_utc)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING,
                                                     ExtendedKeyUsageOID.CODE_SIGNING]), critical=True))
    bad_leaf = builder.sign(root_key, hashes.SHA256())
    resp = TimestampAuthority(key, [bad_leaf, root]).respond(timestamp_request(SIG))
    bad_pem = [bad_leaf.public_bytes(Encoding.PEM), pem[1]]
    with pytest.raises(TimestampError, match="EKU"):
        verify_timestamp(resp, SIG, bad_pem)


def test_malformed_responses(chain: list[bytes]) -> None:
    for junk in (b"", b"\x30\x00", b"\x00" * (64 * 1024 + 1)):
        with pytest.raises(MalformedError):
            verify_timestamp(junk, SIG, chain)
    with pytest.raises(MalformedError, match="chain"):
        verify_timestamp(b"\x30\x00", SIG, chain[:1])


# --- the key directory --------------------------------------------------------------------

def test_key_directory(tsa: TSAProc, tmp_path: Path) -> None:
    assert stat.S_IMODE((tsa.data_dir / KEY_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in tsa.data_dir.iterdir()) == sorted([KEY_FILE, CHAIN_FILE])  # no root key
    d = tmp_path / "k"
    key, chain, created = load_or_create(d)
    assert created and stat.S_IMODE((d / KEY_FILE).stat().st_mode) == 0o600
    key2, chain2, created2 = load_or_create(d)
    assert not created2 and chain2 == chain
    assert key2.private_numbers() == key.private_numbers()
    os.chmod(d / KEY_FILE, 0o644)
    with pytest.raises(TSAKeyError, match="readable by others"):
        load(d)
    os.chmod(d / KEY_FILE, 0o600)
    (d / CHAIN_FILE).unlink()
    with pytest.raises(TSAKeyError, match="only one"):
        load_or_create(d)


# The subject's CN holds a BIT STRING (type 3): cryptography refuses such a name with a
# TypeError, and only when it is first read. Found by the fuzzer (fuzz/corpus/policy/crash-099c…).
BAD_NAME_CERT = (
    b"-----BEGIN CERTIFICATE-----\n"
    b"MIIBDjCBwaADAgECAgEDMAUGAytlcDAkMRIwEAYDVQQKDAl0bG9nIGZ1enoxDjAM\n"
    b"BgNVBAMMBWFrIGNhMCAXDTIwMDEwMTAwMDAwMFoYDzIwOTkwMTAxMDAwMDAwWjAk\n"
    b"MRIwEAYDVQQKDAl0bG9nIGZ1enoxDjAMBgNVBAMDBWFrIGNhMCowBQYDK2VwAyEA\n"
    b"8m8BNO9gblKiUit5v57whpLs9vv9SkggchisxpHjMvGjFjAUMBIGA1UdEwEB/wQI\n"
    b"MAYBAf8CAQAwBQYDK2VwA0EA9hHnBUfBft+CUbXCLw7ts5qDYlYvjB1u4h4Cn2dc\n"
    b"uNO6CZPOgDsRAB2YTOunR2SP9wQmPpKJUzKG3LlZhxybCw==\n"
    b"-----END CERTIFICATE-----\n")


def test_a_certificate_name_of_the_wrong_string_type_is_a_typed_error() -> None:
    """In a TSA chain it is MalformedError; shown by a TLS client, it names no one."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from client.errors import MalformedError
    from client.timestamp import load_chain
    from client.tls import connection_peer

    with pytest.raises(MalformedError, match="does not parse"):
        load_chain([BAD_NAME_CERT, BAD_NAME_CERT])
    der = x509.load_pem_x509_certificate(BAD_NAME_CERT).public_bytes(Encoding.DER)

    class Verified:  # what ssl.SSLObject.getpeercert gives once OpenSSL verified the chain
        def getpeercert(self, binary_form: bool = False) -> bytes:
            return der

    assert connection_peer(Verified()) is None  # type: ignore[arg-type]
