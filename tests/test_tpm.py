"""The TPM-held checkpoint key against a real swtpm: persistence, signatures, failures.

Signatures are checked by our signed-note verifier (type 0x02) and by sigstore-python.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from client.note import Ed25519Signer, Verifier, parse_note, parse_vkey, sign_note, verify_note
from client.policy import TrustPolicy
from client.verify import verify_checkpoint
from tests import sigstore_adapter
from tests.conftest import ORIGIN, SEED
from tests.swtpm import Swtpm, require_tpm_tools


def _tlog(*args: str, env: dict[str, str] | None = None,
          module: str = "tlog.cli") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=120, check=False, env=None if env is None else os.environ | env)


def _eventually(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.05)


def _log_keys(url: str) -> tuple[Verifier, ...]:
    """The log's verifier keys, as `/v1/log` lists them (Ed25519 first, then the TPM's)."""
    import httpx

    return tuple(parse_vkey(k) for k in httpx.get(url + "/v1/log", timeout=10).json()["verifier_keys"])


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    require_tpm_tools()
    tpm = Swtpm(tmp_path / "tpm").start()
    yield tpm
    if tpm.proc is not None and tpm.proc.poll() is None:
        tpm.resume()  # in case a test left it paused
    tpm.stop()


def test_key_is_created_persisted_and_survives_restarts(swtpm: Swtpm) -> None:
    from tlog.tpm import REQUIRED_ATTRIBUTES, TpmError, open_signer

    with pytest.raises(TpmError, match="tlog tpm init"):
        open_signer(ORIGIN, swtpm.tcti)
    signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    spki = signer.spki_der
    _, attrs = signer.key.public()
    assert set(attrs) == set(REQUIRED_ATTRIBUTES)
    signer.key.close()
    for _ in range(2):  # restart the TPM (unclean too): the same key, no lockout (noDA)
        swtpm.stop()
        swtpm.start()
        again = open_signer(ORIGIN, swtpm.tcti, expected_spki=spki)
        assert again.spki_der == spki
        note = sign_note(f"{ORIGIN}\n1\n{base64.b64encode(bytes(32)).decode()}\n", [again])
        verify_note(note, [again.verifier()])
        again.key.close()
    other = Swtpm(swtpm.state.parent / "other").start()
    try:
        with pytest.raises(TpmError, match="not the log's TPM key"):
            open_signer(ORIGIN, other.tcti, create=True, expected_spki=spki)
    finally:
        other.stop()


def test_checkpoints_signed_in_the_tpm_verify_with_two_implementations(swtpm: Swtpm) -> None:
    from tlog.tpm import open_signer

    tpm_signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    ed = Ed25519Signer(ORIGIN, SEED)
    root = bytes(range(32))
    note = sign_note(f"{ORIGIN}\n42\n{base64.b64encode(root).decode()}\n", [ed, tpm_signer])
    both = TrustPolicy(ORIGIN, (ed.verifier(), tpm_signer.verifier()), "all")
    vc = verify_checkpoint(note, both)
    assert len(vc.log_signers) == 2 and len(parse_note(note).signatures) == 2
    pem = serialization.load_der_public_key(tpm_signer.spki_der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    sigstore_adapter.verify_checkpoint(note, ORIGIN, pem, root, 42)  # an independent 0x02 verifier
    tpm_signer.key.close()


def test_unreachable_and_hung_tpms_fail_fast_and_recover(swtpm: Swtpm, tmp_path: Path) -> None:
    from tlog.tpm import TpmError, open_signer

    t0 = time.monotonic()
    with pytest.raises(TpmError, match="nowhere"):
        open_signer(ORIGIN, f"swtpm:path={tmp_path}/nowhere", create=True)
    assert time.monotonic() - t0 < 5
    signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    signer.key.timeout = 1.0
    swtpm.pause()  # a hung TPM: calls must time out, not block the log
    t0 = time.monotonic()
    with pytest.raises(TpmError, match="did not answer"):
        signer.sign(b"x")
    assert time.monotonic() - t0 < 3
    swtpm.resume()
    time.sleep(0.2)
    deadline = time.monotonic() + 10
    while True:  # back: a fresh context answers again
        try:
            sig = signer.sign(b"back")
            break
        except TpmError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert sig
    swtpm.stop()  # gone: a clear error naming the TCTI
    with pytest.raises(TpmError, match="swtpm:path="):
        signer.sign(b"gone")
    signer.key.close()


def test_tpm_init_command(swtpm: Swtpm, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from client.note import parse_vkey

    def init(tcti: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tlog.cli", "tpm", "init", "--data-dir",
                               str(tmp_path / "data"), "--tcti", tcti], capture_output=True, text=True,
                              timeout=60, check=False)

    first = init(swtpm.tcti)
    assert first.returncode == 0, first.stderr
    record = json.loads((tmp_path / "data" / "tpm.json").read_text())
    v = parse_vkey(record["vkey"])
    assert v.alg == 0x02 and f"ECDSA verifier key {record['vkey']}" in first.stdout
    assert init(swtpm.tcti).stdout == first.stdout  # idempotent: the same key
    bad = init(f"swtpm:path={tmp_path}/none")
    assert bad.returncode == 3 and "cannot reach the TPM" in bad.stderr and "Traceback" not in bad.stderr


def test_a_tpm_anchored_log_signs_twice_survives_losing_the_tpm(swtpm: Swtpm, tmp_path: Path) -> None:
    """`tlog serve --tpm`: checkpoints carry the Ed25519 and the TPM signature; with the TPM
    gone, submissions get 503 signer_unavailable and health says so, nothing acknowledged is
    lost, and the log resumes when the TPM is back; a restart of both keeps the key."""
    import base64 as b64
    import subprocess
    import sys

    import httpx

    from client.note import parse_vkey
    from client.verify import verify_receipt
    from tests.serverproc import ServerProc

    data = tmp_path / "data"
    init = subprocess.run([sys.executable, "-m", "tlog.cli", "tpm", "init", "--data-dir", str(data),
                           "--tcti", swtpm.tcti, ], capture_output=True, text=True, timeout=60, check=False)
    assert init.returncode == 0, init.stderr
    srv = ServerProc(data, args=["--allow-raw", "--tpm", swtpm.tcti]).start()
    try:
        info = httpx.get(srv.url + "/v1/log", timeout=10).json()
        keys = tuple(parse_vkey(k) for k in info["verifier_keys"])
        assert [k.alg for k in keys] == [1, 2]
        policy = TrustPolicy(keys[0].name, keys, "all", allow_raw_log=True)
        from client.policy import load_policy

        written = load_policy(data / "client-policy.toml")
        assert written.log_keys == keys and written.log_signatures == "all"  # requires both

        def post(i: int) -> httpx.Response:
            return httpx.post(srv.url + "/v1/entries", json={"raw": b64.b64encode(b"e%d" % i).decode()},
                              timeout=30)

        acked = []
        for i in range(5):
            r = post(i)
            assert r.status_code == 201
            verify_receipt(r.json(), policy)
            acked.append(r.json()["index"])
        swtpm.stop()  # the TPM is lost
        r = post(100)
        assert r.status_code == 503 and r.json()["error"]["code"] == "signer_unavailable", r.text
        deadline = time.monotonic() + 10
        while httpx.get(srv.url + "/healthz", timeout=10).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.get(srv.url + "/healthz", timeout=10).json()["error"]["code"] == "signer_unavailable"
        size = int(httpx.get(srv.url + "/checkpoint", timeout=10).text.split("\n")[1])
        assert size == 5  # nothing was written while the TPM was gone
        swtpm.start()  # back: health recovers by itself, and so do submissions
        deadline = time.monotonic() + 15
        while httpx.get(srv.url + "/healthz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        r = post(100)
        assert r.status_code == 201 and r.json()["index"] == 5
        verify_receipt(r.json(), policy)
    finally:
        srv.stop()
    swtpm.stop()  # both restart: the same TPM key signs
    swtpm.start()
    srv = ServerProc(data, args=["--allow-raw", "--tpm", swtpm.tcti]).start()
    try:
        again = httpx.get(srv.url + "/v1/log", timeout=10).json()["verifier_keys"]
        assert again == [k.vkey() for k in keys]
        r = httpx.get(srv.url + "/v1/entries/2/receipt", timeout=10)
        verify_receipt(r.json(), policy)
    finally:
        srv.stop()
    # A TPM that cannot be reached at start: a clear error naming the TCTI.
    swtpm.stop()
    bad = subprocess.run([sys.executable, "-m", "tlog.cli", "serve", "--data-dir", str(data), "--listen",
                          "127.0.0.1:0", "--tpm", swtpm.tcti], capture_output=True, text=True, timeout=60,
                         check=False)
    assert bad.returncode == 2 and swtpm.tcti in bad.stderr and "Traceback" not in bad.stderr


def _init(data: Path, tcti: str) -> str:
    """`tlog tpm init`; returns the AK name it prints."""
    import re
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tlog.cli", "tpm", "init", "--data-dir", str(data),
                          "--tcti", tcti], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    m = re.search(r"attestation key \(restricted\) name ([0-9a-f]+)", out.stdout)
    assert m, out.stdout
    return m.group(1)


def test_clients_requiring_tpm_anchoring_accept_it_and_reject_imitations(swtpm: Swtpm,
                                                                          tmp_path: Path) -> None:
    import base64 as b64
    import json

    import httpx
    from cryptography.hazmat.primitives.asymmetric import ec

    from client.errors import MalformedError, PolicyError, SignatureError
    from client.logclient import LogClient
    from client.note import ECDSASigner, parse_vkey
    from client.tpmattest import parse_public, qualifying_data
    from client.verify import verify_receipt
    from tests.serverproc import ServerProc

    data = tmp_path / "data"
    ak_name = _init(data, swtpm.tcti)
    srv = ServerProc(data, args=["--allow-raw", "--tpm", swtpm.tcti]).start()
    try:
        info = httpx.get(srv.url + "/v1/log", timeout=10).json()
        keys = tuple(parse_vkey(k) for k in info["verifier_keys"])
        policy = TrustPolicy(keys[0].name, keys, "all", allow_raw_log=True, tpm_aks=(ak_name,), url=srv.url)
        doc = httpx.post(srv.url + "/v1/entries", json={"raw": b64.b64encode(b"anchored").decode()},
                         timeout=30).json()
        attestation = httpx.get(srv.url + "/v1/log/key-attestation", timeout=10).json()
        verify_receipt(doc, policy, key_attestation=attestation)  # accepted
        with LogClient(srv.url, policy) as client:  # online: fetched and checked by the client
            assert client.checkpoint().size == 1
        with pytest.raises(MalformedError, match="key attestation"):
            verify_receipt(doc, policy)
        # An AK the policy does not trust.
        other_ak = "000b" + "00" * 32
        with pytest.raises(PolicyError, match="not one the policy trusts"):
            verify_receipt(doc, TrustPolicy(keys[0].name, keys, "all", allow_raw_log=True,
                                            tpm_aks=(other_ak,)), key_attestation=attestation)
        # A log whose ECDSA key is a software key: the TPM certified another key.
        soft = ECDSASigner(keys[0].name, ec.generate_private_key(ec.SECP256R1()))
        soft_policy = TrustPolicy(keys[0].name, (keys[0], soft.verifier()), "all", allow_raw_log=True,
                                  tpm_aks=(ak_name,))
        with pytest.raises(PolicyError, match="not the key the TPM certified"):
            verify_receipt(doc, soft_policy, key_attestation=attestation)
        # A certification of another key presented for ours (swap the key's public area).
        swapped = dict(attestation, key_public=attestation["ak_public"])
        with pytest.raises(PolicyError):
            verify_receipt(doc, policy, key_attestation=swapped)
        # A tampered certification.
        raw = bytearray(b64.b64decode(attestation["certify_info"]))
        raw[-5] ^= 1
        with pytest.raises(SignatureError):
            tampered = dict(attestation, certify_info=b64.b64encode(raw).decode())
            verify_receipt(doc, policy, key_attestation=tampered)
    finally:
        srv.stop()

    # An AK that is not restricted: the (unrestricted) checkpoint key certifies itself.
    import os

    os.environ.setdefault("TSS2_LOG", "all+none")
    import tpm2_pytss as t

    record = json.loads((data / "tpm.json").read_text())
    with t.ESAPI(swtpm.tcti) as e:
        key = e.tr_from_tpmpublic(record["handle"])
        attest, sig = e.certify(key, key, t.TPM2B_DATA(qualifying_data(keys[0].name)),
                                t.TPMT_SIG_SCHEME(scheme=t.TPM2_ALG.NULL))
        pub = e.read_public(key)[0].publicArea.marshal()
    self_certified = {"key_public": b64.b64encode(pub).decode(), "ak_public": b64.b64encode(pub).decode(),
                      "certify_info": b64.b64encode(bytes(attest)).decode(),
                      "certify_signature": b64.b64encode(sig.marshal()).decode()}
    unrestricted = parse_public(pub).name.hex()
    with pytest.raises(PolicyError, match="not a restricted signing key"):
        pinned = TrustPolicy(keys[0].name, keys, "all", allow_raw_log=True, tpm_aks=(unrestricted,))
        verify_receipt(doc, pinned, key_attestation=self_certified)


def test_killing_the_tpm_under_load_loses_no_acknowledged_entry(swtpm: Swtpm, tmp_path: Path) -> None:
    import base64 as b64
    import signal
    import subprocess
    import sys
    import threading

    import httpx

    from tests.serverproc import ServerProc

    data = tmp_path / "data"
    _init(data, swtpm.tcti)
    cfg = tmp_path / "log.toml"
    cfg.write_text("[log]\ntpm_timeout = 1.0\n")
    srv = ServerProc(data, args=["--allow-raw", "--tpm", swtpm.tcti, "--config", str(cfg)]).start()
    acked: dict[int, bytes] = {}
    refused = {"n": 0}
    stop = threading.Event()

    def load(w: int) -> None:
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop.is_set():
                body = b"w%d-%d" % (w, i)
                r = c.post(srv.url + "/v1/entries", json={"raw": b64.b64encode(body).decode()})
                if r.status_code == 201:
                    acked[r.json()["index"]] = body
                else:
                    assert r.status_code == 503 and r.json()["error"]["code"] == "signer_unavailable", r.text
                    refused["n"] += 1
                i += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(8)]
    try:
        for th in threads:
            th.start()
        time.sleep(1.0)
        swtpm.stop(signal.SIGKILL)  # mid-load
        time.sleep(1.0)
        swtpm.start()
        time.sleep(1.5)
        stop.set()
        for th in threads:
            th.join(timeout=60)
        assert refused["n"] > 0 and len(acked) > 20
        assert httpx.get(srv.url + "/healthz", timeout=10).status_code == 200
    finally:
        stop.set()
        srv.stop()
    from tlog.storage import LogStore

    store = LogStore(data)
    try:
        for index, body in acked.items():  # every acknowledged entry, at its index
            assert store.entry(index) == body
    finally:
        store.close()
    fsck = subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_enrollment_certifies_the_ak_and_clients_trust_only_their_ak_ca(tmp_path: Path) -> None:
    """`tlog tpm enroll`: the EK certificate (from swtpm_setup's local CA) must chain to the
    given root, credential activation proves the AK is in that TPM, the AK CA certifies it;
    a client trusting that AK CA accepts the log, one trusting another CA does not."""
    import base64 as b64
    import subprocess
    import sys

    import httpx

    from client.errors import PolicyError
    from client.note import parse_vkey
    from client.verify import verify_receipt
    from tests.serverproc import ServerProc
    from tests.swtpm import provision_ek

    require_tpm_tools()
    root, intermediate = provision_ek(tmp_path / "tpm", tmp_path / "ek-ca")
    tpm = Swtpm(tmp_path / "tpm").start()
    data = tmp_path / "data"

    def tlog(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True,
                              timeout=120, check=False)

    try:
        _init(data, tpm.tcti)
        import json

        stored = json.loads((data / "tpm-attestation.json").read_text())
        assert len(stored["ek_certificates"]) == 1  # `init` stores the TPM's EK certificate
        for ca in ("ak-ca", "other-ca"):
            assert tlog("tpm", "ca-init", "--dir", str(tmp_path / ca)).returncode == 0
        wrong = tlog("tpm", "enroll", "--data-dir", str(data), "--tcti", tpm.tcti, "--ca-dir",
                     str(tmp_path / "ak-ca"), "--ek-root", str(tmp_path / "other-ca" / "ak-ca.pem"),
                     "--ek-intermediate", str(intermediate))
        assert wrong.returncode == 1 and "does not chain to a trusted root" in wrong.stderr, wrong.stderr
        ok = tlog("tpm", "enroll", "--data-dir", str(data), "--tcti", tpm.tcti, "--ca-dir",
                  str(tmp_path / "ak-ca"), "--ek-root", str(root), "--ek-intermediate", str(intermediate))
        assert ok.returncode == 0, ok.stderr
        srv = ServerProc(data, args=["--allow-raw", "--tpm", tpm.tcti]).start()
        try:
            info = httpx.get(srv.url + "/v1/log", timeout=10).json()
            keys = tuple(parse_vkey(k) for k in info["verifier_keys"])
            doc = httpx.post(srv.url + "/v1/entries", json={"raw": b64.b64encode(b"enrolled").decode()},
                             timeout=30).json()
            attestation = httpx.get(srv.url + "/v1/log/key-attestation", timeout=10).json()
            assert len(attestation["ek_certificates"]) == 2 and "ak_certificate" in attestation
        finally:
            srv.stop()
        ak_ca = (tmp_path / "ak-ca" / "ak-ca.pem").read_text()
        other = (tmp_path / "other-ca" / "ak-ca.pem").read_text()
        trusting = TrustPolicy(keys[0].name, keys, "all", allow_raw_log=True, tpm_ak_cas=(ak_ca,))
        verify_receipt(doc, trusting, key_attestation=attestation)
        untrusting = TrustPolicy(keys[0].name, keys, "all", allow_raw_log=True, tpm_ak_cas=(other,))
        with pytest.raises(PolicyError, match="does not chain to a trusted root"):
            verify_receipt(doc, untrusting, key_attestation=attestation)
        no_cert = {k: v for k, v in attestation.items() if k != "ak_certificate"}
        with pytest.raises(PolicyError, match="no certificate"):
            verify_receipt(doc, trusting, key_attestation=no_cert)
    finally:
        tpm.stop()


def test_a_replaced_key_and_a_hung_tpm_are_refused(swtpm: Swtpm) -> None:
    """If the key at the handle ever changes (a cleared TPM, a re-run init), signing fails
    instead of producing checkpoints nobody can verify; a TPM that does not answer is declared
    hung while a few timed-out calls are outstanding, without sending it more, and is used
    again once they return."""
    from tlog.tpm import MAX_ABANDONED, TpmError, open_signer

    signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    signer.probe()
    signer.key.evict()
    signer.key.create()  # another key at the same handle
    with pytest.raises(TpmError, match="no longer holds the log's key"):
        signer.sign(b"checkpoint")
    with pytest.raises(TpmError):
        signer.probe()
    signer.key.timeout = 0.3
    swtpm.pause()
    for _ in range(MAX_ABANDONED):
        with pytest.raises(TpmError, match="did not answer"):
            signer.key.public()
    t0 = time.monotonic()
    with pytest.raises(TpmError, match="is hung"):
        signer.key.public()
    assert time.monotonic() - t0 < 0.2
    assert signer.key.outstanding() == MAX_ABANDONED
    swtpm.resume()
    _eventually(lambda: signer.key.outstanding() == 0, 10, "the timed-out calls return")
    assert signer.key.exists()  # answers again, without a restart
    signer.key.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_tpm_key_recovers_after_more_hangs_than_max_abandoned(swtpm: Swtpm) -> None:
    """Each hang abandons calls (in the log: a signature and a health probe). Once the TPM
    answers they return, stop counting towards "hung", and their contexts are closed: the
    key signs after any number of past hangs, and no TPM connection is left behind."""
    from tlog.tpm import MAX_ABANDONED, TpmError, open_signer

    signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    signer.key.timeout = 0.3
    signer.probe()
    fds = _open_fds()
    try:
        for _ in range(MAX_ABANDONED + 2):
            swtpm.pause()
            try:
                for _ in range(2):
                    with pytest.raises(TpmError, match="did not answer"):
                        signer.probe()
                assert signer.key.outstanding() == 2
            finally:
                swtpm.resume()
            _eventually(lambda: signer.key.outstanding() == 0, 10, "the timed-out calls return")
            signer.probe()  # answers at once: no "hung" left over from past hangs
            # Closed by their own threads right after they returned; the current session stays.
            _eventually(lambda: _open_fds() <= fds, 5, "abandoned TPM contexts closed")
    finally:
        signer.key.close()


def test_an_ak_certificate_for_another_key_is_refused(tmp_path: Path) -> None:
    """A certificate from the trusted AK CA that names the AK but holds another public key
    (or names another AK) does not make the AK trusted."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from client.errors import PolicyError
    from client.tpmattest import AK_NAME_URI, TpmPublic, _trusted_ak
    from tlog.tpm_enroll import init_ca

    ca_pem = init_ca(tmp_path / "ca", "test AK CA")
    ca_key = serialization.load_pem_private_key((tmp_path / "ca" / "ak-ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    ak_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = ak_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ak = TpmPublic(0, spki, bytes.fromhex("000b" + "11" * 32))

    def issue(public: object, name_hex: str) -> str:
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ak")]))
                .issuer_name(ca_cert.subject).public_key(public)  # type: ignore[arg-type]
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(AK_NAME_URI + name_hex)]), critical=False)
                .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    cas = (ca_pem.read_text(),)
    _trusted_ak({"ak_certificate": issue(ak_key, ak.name.hex())}, ak, (), cas)  # the right one
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(PolicyError, match="for another key"):
        _trusted_ak({"ak_certificate": issue(other_key, ak.name.hex())}, ak, (), cas)
    with pytest.raises(PolicyError, match="for another key"):
        _trusted_ak({"ak_certificate": issue(ak_key, "000b" + "22" * 32)}, ak, (), cas)


def test_a_tpm_anchored_log_recovers_by_itself_from_repeated_tpm_hangs(swtpm: Swtpm, tmp_path: Path) -> None:
    """`tlog serve --tpm` through more short TPM hangs than MAX_ABANDONED: each hang costs a
    signature and a health probe that time out, yet after each one the log answers again by
    itself (calls that returned no longer count as hung) and its receipts verify."""
    import base64 as b64

    import httpx

    from client.verify import verify_receipt
    from tests.serverproc import ServerProc
    from tlog.tpm import MAX_ABANDONED

    data = tmp_path / "data"
    _init(data, swtpm.tcti)
    cfg = tmp_path / "log.toml"
    cfg.write_text("[log]\ntpm_timeout = 1\n")
    srv = ServerProc(data, args=["--allow-raw", "--tpm", swtpm.tcti, "--config", str(cfg)]).start()

    def post(body: bytes) -> httpx.Response:
        return httpx.post(srv.url + "/v1/entries", json={"raw": b64.b64encode(body).decode()}, timeout=30)

    def health() -> httpx.Response:
        return httpx.get(srv.url + "/healthz", timeout=10)

    try:
        keys = _log_keys(srv.url)
        policy = TrustPolicy(keys[0].name, keys, "all", allow_raw_log=True)
        episodes = MAX_ABANDONED + 2
        for episode in range(episodes):
            swtpm.pause()
            try:
                r = post(b"during hang %d" % episode)
                assert r.status_code == 503 and r.json()["error"]["code"] == "signer_unavailable", r.text
                h = health()
                assert h.status_code == 503 and h.json()["error"]["code"] == "signer_unavailable", h.text
                time.sleep(1.2)  # a health probe times out too: two calls abandoned per hang
            finally:
                swtpm.resume()
            _eventually(lambda: health().status_code == 200, 15, f"/healthz 200 after hang {episode}")
            r = post(b"after hang %d" % episode)
            assert r.status_code == 201 and r.json()["index"] == episode, r.text
            verify_receipt(r.json(), policy)  # signed by both keys, the TPM's included
        size = int(httpx.get(srv.url + "/checkpoint", timeout=10).text.split("\n")[1])
        assert size == episodes  # nothing written during the hangs
    finally:
        srv.stop()


ATTEST_ORIGIN = "log.example.com/attest"


def _ak_name(stdout: str) -> str:
    import re

    m = re.search(r"attestation key \(restricted\) name ([0-9a-f]+)", stdout)
    assert m, stdout
    return m.group(1)


def test_tpm_init_binds_the_key_attestation_to_the_chosen_origin(swtpm: Swtpm, tmp_path: Path) -> None:
    """The documented flow with a chosen origin: `tlog tpm init --origin`, `tlog serve --origin
    --tpm`, and `tlog-client verify` with a policy pinning the AK accepts the receipt. The
    certification is made for that origin; another origin on the same data dir is refused
    (flag or TLOG_ORIGIN) and nothing is changed."""
    import base64 as b64

    import httpx

    from client.policy import policy_toml
    from client.tpmattest import parse_certify, qualifying_data
    from tests.serverproc import ServerProc

    data = tmp_path / "data"
    init = _tlog("tpm", "init", "--data-dir", str(data), "--origin", ATTEST_ORIGIN, "--tcti", swtpm.tcti)
    assert init.returncode == 0, init.stderr
    assert f"bound to log {ATTEST_ORIGIN!r}" in init.stdout
    ak_name = _ak_name(init.stdout)
    srv = ServerProc(data, args=["--origin", ATTEST_ORIGIN, "--allow-raw", "--tpm", swtpm.tcti]).start()
    try:
        keys = _log_keys(srv.url)
        assert [k.name for k in keys] == [ATTEST_ORIGIN] * 2 and [k.alg for k in keys] == [1, 2]
        r = httpx.post(srv.url + "/v1/entries", json={"raw": b64.b64encode(b"attested").decode()}, timeout=30)
        assert r.status_code == 201, r.text
        (tmp_path / "receipt.json").write_bytes(r.content)
        attestation = httpx.get(srv.url + "/v1/log/key-attestation", timeout=10)
        (tmp_path / "key-attestation.json").write_bytes(attestation.content)
    finally:
        srv.stop()
    info = parse_certify(b64.b64decode(attestation.json()["certify_info"]))
    assert info.extra_data == qualifying_data(ATTEST_ORIGIN)  # made for this log
    policy = TrustPolicy(ATTEST_ORIGIN, keys, "all", allow_raw_log=True, tpm_aks=(ak_name,))
    (tmp_path / "policy.toml").write_text(policy_toml(policy))
    verify = ["verify", str(tmp_path / "receipt.json"), "--policy", str(tmp_path / "policy.toml"),
              "--no-state"]
    ok = _tlog(*verify, "--key-attestation", str(tmp_path / "key-attestation.json"), module="client.cli")
    assert ok.returncode == 0 and f"ok: entry 0 is in {ATTEST_ORIGIN}" in ok.stdout, ok.stdout + ok.stderr
    unattested = _tlog(*verify, module="client.cli")  # the policy requires the TPM's word
    assert unattested.returncode != 0 and "key attestation" in unattested.stderr, unattested.stderr

    before = {n: (data / n).read_bytes() for n in ("tpm.json", "tpm-attestation.json")}
    other = "log.example.com/other"
    for how, env in ((["--origin", other], None), ([], {"TLOG_ORIGIN": other})):
        bad = _tlog("tpm", "init", "--data-dir", str(data), "--tcti", swtpm.tcti, *how, env=env)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert f"holds log {ATTEST_ORIGIN!r}" in bad.stderr and repr(other) in bad.stderr, bad.stderr
    assert {n: (data / n).read_bytes() for n in before} == before
    again = _tlog("tpm", "init", "--data-dir", str(data), "--tcti", swtpm.tcti)  # its own origin: fine
    assert again.returncode == 0 and _ak_name(again.stdout) == ak_name, again.stderr


def test_tpm_init_and_serve_read_the_same_configuration_file(swtpm: Swtpm, tmp_path: Path) -> None:
    """One `[log]` file with data_dir, origin and tpm serves `tlog tpm init --config` and
    `tlog serve --config`; a client requiring the TPM-anchored key accepts the receipt."""
    import base64 as b64

    import httpx

    from client.verify import verify_receipt
    from tests.serverproc import ServerProc

    assert _tlog("tpm", "init", "--data-dir", str(tmp_path / "none")).returncode == 2  # no TCTI
    data = tmp_path / "data"
    cfg = tmp_path / "log.toml"
    cfg.write_text(f"[log]\ndata_dir = {json.dumps(str(data))}\norigin = {json.dumps(ATTEST_ORIGIN)}\n"
                   f"tpm = {json.dumps(swtpm.tcti)}\nallow_raw = true\n")
    init = _tlog("tpm", "init", "--config", str(cfg))
    assert init.returncode == 0 and f"bound to log {ATTEST_ORIGIN!r}" in init.stdout, init.stderr
    ak_name = _ak_name(init.stdout)
    srv = ServerProc(data, args=["--config", str(cfg)]).start()
    try:
        keys = _log_keys(srv.url)
        doc = httpx.post(srv.url + "/v1/entries", json={"raw": b64.b64encode(b"configured").decode()},
                         timeout=30).json()
        attestation = httpx.get(srv.url + "/v1/log/key-attestation", timeout=10).json()
    finally:
        srv.stop()
    policy = TrustPolicy(ATTEST_ORIGIN, keys, "all", allow_raw_log=True, tpm_aks=(ak_name,))
    vr = verify_receipt(doc, policy, key_attestation=attestation)
    assert vr.checkpoint.checkpoint.origin == ATTEST_ORIGIN
    assert vr.checkpoint.log_signers == tuple(k.vkey() for k in keys)  # the TPM's key too
