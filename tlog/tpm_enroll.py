"""AK enrollment: prove the attestation key lives in a genuine TPM, then certify it.

TPM2_Certify shows the checkpoint key sits beside the AK; nothing yet ties the AK to a real
TPM. Enrollment does:

1. the TPM's endorsement key certificate (read from NV) must chain to a TPM vendor root the
   AK CA trusts, and certify the EK the TPM actually holds;
2. credential activation: MakeCredential(EK public, secret, AK name) encrypts a secret that
   only the TPM holding that EK can release, and only to an object with that AK's name
   (ActivateCredential); getting the secret back proves the AK is in that TPM;
3. the AK CA (an operator-run CA, ECDSA P-256) issues an X.509 certificate for the AK, naming
   it by its TPM name (URI SAN `urn:tlog:tpm-ak:<name hex>`). Clients trust the AK CA.

Here the AK CA's side and the TPM's side run in one process, for an operator holding both
the CA key and access to the TPM; keep the CA key off the log host otherwise.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from client.tpmattest import AK_ATTRIBUTES, AK_NAME_URI, parse_public, verify_chain
from tlog.tpm import TpmError, TpmKey, _pytss

EK_CERT_NV_RSA = 0x01C00002
EK_HANDLE_RSA = 0x81010001
CA_VALIDITY = datetime.timedelta(days=3650)
AK_VALIDITY = datetime.timedelta(days=825)


def init_ca(directory: Path, name: str) -> Path:
    """Create an AK CA (key 0600 + self-signed certificate); returns the certificate path."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    fd = os.open(directory / "ak-ca.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    path = directory / "ak-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def enroll(key: TpmKey, ak_handle: int, ca_dir: Path, ek_roots: list[x509.Certificate],
           ek_intermediates: list[x509.Certificate]) -> dict[str, Any]:
    """Verify the EK chain, activate a credential for the AK, and issue the AK certificate.
    Returns the fields to add to the key attestation document."""
    t = _pytss()
    secret = os.urandom(32)

    ek_der = key.ek_certificate(EK_CERT_NV_RSA)
    if ek_der is None:
        raise TpmError(f"the TPM at {key.tcti!r} has no EK certificate in NV 0x{EK_CERT_NV_RSA:08x}")

    def tpm_side(e: Any, _session: Any) -> dict[str, Any]:
        ek = e.tr_from_tpmpublic(EK_HANDLE_RSA)
        ek_pub = e.read_public(ek)[0]
        ak = e.tr_from_tpmpublic(ak_handle)
        ak_pub = e.read_public(ak)[0]
        from tpm2_pytss.utils import make_credential

        # The CA computes the AK's name itself from the public area it will certify: a name
        # reported by the TPM (or by anything between it and us) could belong to another key.
        ak_area = ak_pub.publicArea.marshal()
        name = t.TPM2B_NAME((0x000B).to_bytes(2, "big") + hashlib.sha256(ak_area).digest())
        credblob, enc = make_credential(ek_pub, secret, name)
        sess = e.start_auth_session(t.ESYS_TR.NONE, t.ESYS_TR.NONE, t.TPM2_SE.POLICY,
                                    t.TPMT_SYM_DEF(algorithm=t.TPM2_ALG.NULL), t.TPM2_ALG.SHA256)
        try:
            e.policy_secret(t.ESYS_TR.ENDORSEMENT, sess, b"", b"", b"", 0)
            got = bytes(e.activate_credential(ak, ek, credblob, enc, session1=t.ESYS_TR.PASSWORD,
                                              session2=sess))
        finally:
            e.flush_context(sess)
        return {"ek_pem": ek_pub.to_pem(), "got": got, "ak_public": ak_area}

    res = key._call("the credential activation", tpm_side)
    ek_cert = x509.load_der_x509_certificate(ek_der)
    verify_chain(ek_cert, ek_intermediates, ek_roots, "the EK certificate")
    cert_key = ek_cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    tpm_key = serialization.load_pem_public_key(res["ek_pem"]).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert_key != tpm_key:
        raise TpmError("the EK certificate is not for the EK this TPM holds")
    if res["got"] != secret:
        raise TpmError("credential activation failed: the AK is not in the TPM of this EK")
    ak = parse_public(res["ak_public"], "the AK's TPMT_PUBLIC")
    if ak.attributes & AK_ATTRIBUTES != AK_ATTRIBUTES:
        raise TpmError("the AK is not a restricted signing key made and kept in the TPM")
    ak_name = ak.name
    ca_key = serialization.load_pem_private_key((ca_dir / "ak-ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ak-ca.pem").read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tlog TPM AK {ak_name.hex()[:16]}")])
    san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(AK_NAME_URI + ak_name.hex())])
    ak_cert = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(ca_cert.subject)
               .public_key(serialization.load_der_public_key(ak.spki_der))
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + AK_VALIDITY)
               .add_extension(san, critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    pem = serialization.Encoding.PEM
    return {"ak_certificate": ak_cert.public_bytes(pem).decode(),
            "ek_certificates": [c.public_bytes(pem).decode() for c in [ek_cert, *ek_intermediates]]}
