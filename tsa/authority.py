"""The time-stamping authority proper: DER `TimeStampReq` in, DER `TimeStampResp` out (pure).

The token is what both Sigstore verifiers accept (sigstore-js @sigstore/verify and
sigstore-python's rfc3161-client), and OpenSSL's `ts -verify`:

- status granted (exactly 0) and a ContentInfo/SignedData (v3) encapsulating the TSTInfo;
- one SignerInfo whose sid is issuerAndSerialNumber (sigstore-js matches the TSA certificate by
  issuer and serial only), digest sha256, signatureAlgorithm ecdsa-with-SHA256 (sigstore-js
  picks the hash from that OID);
- signed attributes contentType, messageDigest and ESS signing-certificate-v2 (RFC 5816);
- genTime in whole seconds, `YYYYMMDDHHMMSSZ` (sigstore-js parses no fractions), accuracy 1 s
  to say so; the request's imprint echoed byte for byte, its nonce echoed, the signing
  certificate embedded when certReq asks for it (and only then, RFC 3161 §2.4.2).

Refusals are answers too (status rejection with a failInfo), never exceptions: a client that
sent garbage gets a `TimeStampResp` telling it why.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client.errors import MalformedError
from client.timestamp import DIGESTS, OptionalTokenResp, strict_load

DEFAULT_POLICY = "1.3.6.1.4.1.57264.2"  # the policy OID Sigstore's own TSA uses
MAX_REQUEST = 16 * 1024


def _reject(fail: str, text: str) -> tuple[str, bytes]:
    return fail, OptionalTokenResp({"status": {
        "status": "rejection", "status_string": [text], "fail_info": {fail}}}).dump()


class TimestampAuthority:
    """Answers time-stamp requests, signing with `key` as `chain[0]` (chain: leaf first)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate],
                 policy: str = DEFAULT_POLICY, clock: Callable[[], float] = time.time) -> None:
        if not chain or key.public_key().public_numbers() != chain[0].public_key().public_numbers():
            raise ValueError("the TSA key is not the key of the chain's first certificate")
        if not re.fullmatch(r"[0-2](\.(0|[1-9][0-9]*))+", policy):
            raise ValueError(f"policy {policy!r} is not a dotted OID")
        self.key, self.chain, self.policy, self.clock = key, chain, policy, clock
        leaf_der = chain[0].public_bytes(Encoding.DER)
        self._leaf = asn1_x509.Certificate.load(leaf_der)
        ess = cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{"certs": [{
            "cert_hash": hashlib.sha256(leaf_der).digest(),  # hash_algorithm: the default, sha256
            "issuer_serial": {"issuer": [asn1_x509.GeneralName(name="directory_name",
                                                               value=self._leaf.issuer)],
                              "serial_number": self._leaf.serial_number},
        }]}]})
        # Built once and frozen (re-loaded from DER): asn1crypto re-encodes a freshly built
        # value with defaults again and again when it is nested (~5 ms per token otherwise).
        self._ess = cms.CMSAttribute.load(ess.dump())
        self._sid = cms.SignerIdentifier.load(cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": self._leaf.issuer, "serial_number": self._leaf.serial_number}).dump())

    def respond(self, request_der: bytes) -> bytes:
        """The DER `TimeStampResp` for a DER `TimeStampReq`: granted, or a rejection."""
        return self.answer(request_der)[1]

    def answer(self, request_der: bytes) -> tuple[str, bytes]:
        """`respond`, plus the outcome for metrics: "granted" or the failInfo name."""
        try:
            req = strict_load(tsp.TimeStampReq, request_der, MAX_REQUEST)
        except MalformedError as exc:
            return _reject("bad_data_format", str(exc))
        if req["version"].native != "v1":
            return _reject("bad_data_format", "TimeStampReq version must be 1")
        imprint = req["message_imprint"]
        alg = imprint["hash_algorithm"]
        if alg["algorithm"].native not in DIGESTS or alg["parameters"].native is not None:
            return _reject("bad_alg", f"unsupported hash algorithm {alg['algorithm'].dotted}")
        if len(imprint["hashed_message"].native) != DIGESTS[alg["algorithm"].native]:
            return _reject("bad_data_format", "message imprint has the wrong length")
        if req["req_policy"].native is not None and req["req_policy"].dotted != self.policy:
            return _reject("unaccepted_policy", f"this TSA only issues under policy {self.policy}")
        if req["extensions"].native is not None:
            return _reject("unaccepted_extensions", "no request extensions are supported")
        return self._grant(req)

    def _grant(self, req: tsp.TimeStampReq) -> tuple[str, bytes]:
        tst: dict[str, object] = {
            "version": "v1",
            "policy": self.policy,
            "message_imprint": tsp.MessageImprint.load(req["message_imprint"].dump()),
            "serial_number": secrets.randbits(128) | 1,
            "gen_time": datetime.fromtimestamp(int(self.clock()), UTC),
            "accuracy": {"seconds": 1},
        }
        if req["nonce"].native is not None:
            tst["nonce"] = req["nonce"].native
        tst_der = tsp.TSTInfo(tst).dump()
        attrs = cms.CMSAttributes([
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
            self._ess,
        ])
        # Signed over the DER SET OF (universal tag), stored [0]-tagged in the SignerInfo.
        signature = self.key.sign(attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer = {
            "version": "v1",
            "sid": self._sid,
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": signature,
        }
        signed: dict[str, object] = {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": tsp.TSTInfo.load(tst_der)},
            "signer_infos": [signer],
        }
        if req["cert_req"].native:
            signed["certificates"] = [cms.CertificateChoices(name="certificate", value=self._leaf)]
        return "granted", OptionalTokenResp({
            "status": {"status": "granted"},
            "time_stamp_token": {"content_type": "signed_data", "content": signed},
        }).dump()


def generate_chain(name: str, *, now: datetime | None = None) -> tuple[
        ec.EllipticCurvePrivateKey, x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh root CA (10 years) and TSA signing certificate (5 years), ECDSA P-256, both
    valid from an hour ago (clock skew). The leaf has the one critical timeStamping EKU that
    RFC 3161 §2.3 demands (rfc3161-client and OpenSSL refuse anything else)."""
    now = now or datetime.now(UTC)
    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                           x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root")])
    leaf_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                           x509.NameAttribute(NameOID.COMMON_NAME, f"{name} timestamping")])
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(root_ski, critical=False)
            .sign(root_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(leaf_name).issuer_name(root_name)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=5 * 365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
                           critical=False)
            .sign(root_key, hashes.SHA256()))
    return root_key, root, leaf_key, leaf
