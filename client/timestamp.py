"""RFC 3161 time-stamp requests and verification of the answers (no I/O).

A Sigstore bundle carries a timestamp as base64 of the whole DER `TimeStampResp`, over the
SHA-256 of the *signature bytes* being timestamped; `timestamp_request(signature)` builds the
query and `verify_timestamp(response, signature, chain)` checks the answer the way the
Sigstore clients do, and returns the time it proves.

The chain is the trusted one, from configuration (leaf first, root last), never the
certificates the response embeds: those are the TSA's say-so. Checked, in order: status
granted, token shape (SignedData with exactly one SignerInfo over a TSTInfo), message imprint,
nonce, signer = chain leaf (issuerAndSerialNumber), signed attributes (contentType, the
messageDigest of the TSTInfo, ESS signing-certificate naming the leaf), the ECDSA signature,
then the chain: each certificate signed by the next, all valid at genTime, the leaf with the
critical timeStamping-only EKU of RFC 3161 §2.3. Parsing is strict: bounded size, no trailing
data, and the TSTInfo (the signed statement read from) must be DER: re-encoding gives the same
bytes. The envelope around it is not re-encoded (too slow in asn1crypto); nothing read from it
matters unless it is signed (the signed attributes are verified over the bytes received).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from client.errors import MalformedError, TlogError, VerificationError

MAX_RESPONSE = 64 * 1024
DIGESTS = {"sha256": 32, "sha384": 48, "sha512": 64}  # imprint algorithms and digest sizes
_ECDSA = {"sha256_ecdsa": hashes.SHA256, "sha384_ecdsa": hashes.SHA384, "sha512_ecdsa": hashes.SHA512}


class TimestampError(VerificationError):
    """A well-formed RFC 3161 response that does not prove the time of the given data."""


class OptionalTokenResp(tsp.TimeStampResp):
    """`TimeStampResp` as RFC 3161 §2.4.2 defines it: asn1crypto makes the token mandatory,
    but a rejection carries none."""

    _fields = [  # noqa: RUF012 - asn1crypto's declarative field list
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def strict_load(spec: type[core.Asn1Value], der: bytes, limit: int, *,
                canonical: bool = True) -> core.Asn1Value:
    """Parse `der` as `spec`, refusing oversize input and trailing bytes. With `canonical`,
    every field is parsed now and the re-encoding must give the same bytes: DER only (no BER
    lengths, unsorted sets or encoded defaults). Costly on big structures in asn1crypto (a
    forced re-encoding of a whole SignedData takes ~0.2 s), so used on requests and TSTInfos."""
    if len(der) > limit:
        raise MalformedError(f"{spec.__name__} is larger than {limit} bytes")
    try:
        value = spec.load(der, strict=True)
        if canonical:
            _ = value.native  # parses every nested field now, so errors surface here
            if value.dump(force=True) != der:
                raise MalformedError(f"{spec.__name__} is not DER")
    # AttributeError: asn1crypto has no .native for some universal types (Real,
    # ObjectDescriptor, InstanceOf) that a field of type Any may hold; IndexError: it reads
    # past the end of some truncated values.
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        if isinstance(exc, MalformedError):
            raise
        raise MalformedError(f"{spec.__name__} does not parse: {exc}") from None
    return value


def timestamp_request(data: bytes, *, nonce: int | None = None, cert_req: bool = True,
                      policy: str | None = None) -> bytes:
    """A DER `TimeStampReq` for the SHA-256 of `data` (for Sigstore: the signature bytes)."""
    req: dict[str, object] = {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(data).digest()},
        "cert_req": cert_req,
    }
    if policy is not None:
        req["req_policy"] = policy
    if nonce is not None:
        req["nonce"] = nonce
    return tsp.TimeStampReq(req).dump()


def _token(response_der: bytes) -> tuple[cms.SignedData, bytes, tsp.TSTInfo]:
    """The SignedData, the TSTInfo DER and the TSTInfo of a granted response."""
    resp = strict_load(OptionalTokenResp, response_der, MAX_RESPONSE, canonical=False)
    status = resp["status"]
    if status["status"].native != "granted":  # exactly 0: granted_with_mods is refused too
        fail = status["fail_info"].native if status["fail_info"].native is not None else ()
        text = "; ".join(status["status_string"].native or ())
        raise TimestampError(f"timestamp not granted: status {status['status'].native}, "
                             f"failure {sorted(fail)} {text!r}")
    token = resp["time_stamp_token"]
    if isinstance(token, core.Void) or token["content_type"].native != "signed_data":
        raise TimestampError("the response carries no SignedData token")
    signed = token["content"]
    encap = signed["encap_content_info"]
    if encap["content_type"].native != "tst_info" or isinstance(encap["content"], core.Void):
        raise TimestampError("the token does not encapsulate a TSTInfo")
    tst_der = encap["content"].contents
    tst = strict_load(tsp.TSTInfo, tst_der, MAX_RESPONSE)
    if tst["version"].native != "v1":
        raise TimestampError(f"TSTInfo version {tst['version'].native}, expected v1")
    return signed, tst_der, tst


_GEN_TIME = re.compile(rb"[0-9]{14}(\.[0-9]*[1-9])?Z")


def _gen_time(tst: tsp.TSTInfo) -> datetime:
    """genTime, which must be UTC ("Z", RFC 3161 §2.4.2); a local time would be ambiguous."""
    if not _GEN_TIME.fullmatch(tst["gen_time"].contents):
        raise MalformedError(f"genTime {tst['gen_time'].contents!r} is not YYYYMMDDHHMMSS[.f]Z")
    return tst["gen_time"].native.astimezone(UTC)


def timestamp_token_time(response_der: bytes) -> datetime:
    """The genTime a granted response claims, *unverified* (for display and sorting)."""
    with _parsing():
        return _gen_time(_token(response_der)[2])


@contextmanager
def _parsing() -> Iterator[None]:
    """asn1crypto parses lazily: a malformed field raises where it is first read. Those
    errors become `MalformedError`; our own typed errors pass through."""
    try:
        yield
    except TlogError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
        raise MalformedError(f"timestamp response does not parse: {exc}") from None


def load_chain(chain_pem_or_der: list[bytes]) -> list[x509.Certificate]:
    """Certificates from PEM (one or more per item) or DER items, in order."""
    certs: list[x509.Certificate] = []
    try:
        for item in chain_pem_or_der:
            if item.lstrip().startswith(b"-----BEGIN"):
                certs.extend(x509.load_pem_x509_certificates(item))
            else:
                certs.append(x509.load_der_x509_certificate(item))
        for c in certs:
            _ = c.subject, c.issuer  # parsed lazily: a bad name would raise where it is printed
    # InvalidVersion is not a ValueError; TypeError: a name attribute of the wrong string type
    except (ValueError, TypeError, x509.InvalidVersion) as exc:
        raise MalformedError(f"TSA certificate chain does not parse: {exc}") from None
    if len(certs) < 2:
        raise MalformedError("a TSA chain needs the signing certificate and a root (leaf first)")
    return certs


def _attribute(attrs: cms.CMSAttributes, name: str) -> core.Asn1Value | None:
    """The single value of signed attribute `name` (None if absent); duplicates refused."""
    found = [a["values"] for a in attrs if a["type"].native == name]
    if not found:
        return None
    if len(found) > 1 or len(found[0]) != 1:
        raise TimestampError(f"signed attribute {name} must occur once with one value")
    return found[0][0]


def _check_signer(signed: cms.SignedData, tst_der: bytes, leaf: x509.Certificate) -> None:
    infos = signed["signer_infos"]
    if len(infos) != 1:
        raise TimestampError(f"expected exactly one SignerInfo, got {len(infos)}")
    si = infos[0]
    sid = si["sid"]
    if sid.name != "issuer_and_serial_number":
        raise TimestampError("SignerInfo sid is not issuerAndSerialNumber")
    if (sid.chosen["serial_number"].native != leaf.serial_number
            or sid.chosen["issuer"].dump() != leaf.issuer.public_bytes()):
        raise TimestampError("the token was not signed by the chain's signing certificate")
    digest_name = si["digest_algorithm"]["algorithm"].native
    if digest_name not in DIGESTS:
        raise TimestampError(f"unsupported SignerInfo digest algorithm {digest_name}")
    attrs = si["signed_attrs"]
    if isinstance(attrs, core.Void) or not len(attrs):
        raise TimestampError("the SignerInfo has no signed attributes")
    ctype = _attribute(attrs, "content_type")
    if ctype is None or ctype.native != "tst_info":
        raise TimestampError("signed contentType is not id-ct-TSTInfo")
    md = _attribute(attrs, "message_digest")
    if md is None or md.native != hashlib.new(digest_name, tst_der).digest():
        raise TimestampError("signed messageDigest does not match the TSTInfo")
    _check_ess(attrs, leaf)
    sig_alg = si["signature_algorithm"]["algorithm"].native
    if sig_alg not in _ECDSA:
        raise TimestampError(f"unsupported signature algorithm {sig_alg}")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TimestampError("the TSA signing key is not an ECDSA key")
    try:  # the signature covers the attributes re-tagged as a universal SET (RFC 5652 §5.4)
        key.verify(si["signature"].native, attrs.untag().dump(), ec.ECDSA(_ECDSA[sig_alg]()))
    except InvalidSignature:
        raise TimestampError("the token's signature does not verify") from None


def _check_ess(attrs: cms.CMSAttributes, leaf: x509.Certificate) -> None:
    """ESS signing-certificate (v2, or v1 with SHA-1): its first entry names the leaf, so a
    token cannot be re-pointed at another certificate of the same key (RFC 5816)."""
    leaf_der = leaf.public_bytes(Encoding.DER)
    v2 = _attribute(attrs, "signing_certificate_v2")
    if v2 is not None:
        cert_id = v2["certs"][0]
        alg = cert_id["hash_algorithm"]["algorithm"].native
        if alg not in DIGESTS or cert_id["cert_hash"].native != hashlib.new(alg, leaf_der).digest():
            raise TimestampError("ESS signing-certificate-v2 does not name the signing certificate")
        return
    v1 = _attribute(attrs, "signing_certificate")
    if v1 is None:
        raise TimestampError("no ESS signing-certificate attribute")
    if v1["certs"][0]["cert_hash"].native != hashlib.sha1(leaf_der).digest():  # noqa: S324
        raise TimestampError("ESS signing-certificate does not name the signing certificate")


def _check_chain(certs: list[x509.Certificate], at: datetime) -> None:
    for cert in certs:
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            raise TimestampError(f"certificate {cert.subject.rfc4514_string()} is not valid at {at}")
    for cert, issuer in itertools.pairwise(certs):
        try:
            bc = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise TimestampError(f"{issuer.subject.rfc4514_string()} is not a CA certificate")
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise TimestampError(f"{cert.subject.rfc4514_string()} is not issued by "
                                 f"{issuer.subject.rfc4514_string()}") from None
    try:
        eku = certs[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampError("the TSA certificate has no extendedKeyUsage") from None
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampError("the TSA certificate's EKU must be timeStamping only, critical")


def verify_timestamp(response_der: bytes, data: bytes, chain_pem_or_der: list[bytes], *,
                     nonce: int | None = None) -> datetime:
    """Verify a DER `TimeStampResp` over `data` against the trusted chain (leaf first) and
    return its genTime (aware, UTC). Raises `MalformedError` or `TimestampError`."""
    certs = load_chain(chain_pem_or_der)
    with _parsing():
        return _verify(response_der, data, certs, nonce)


def _verify(response_der: bytes, data: bytes, certs: list[x509.Certificate],
            nonce: int | None) -> datetime:
    signed, tst_der, tst = _token(response_der)
    imprint = tst["message_imprint"]
    alg = imprint["hash_algorithm"]["algorithm"].native
    if alg not in DIGESTS:
        raise TimestampError(f"unsupported message imprint algorithm {alg}")
    if imprint["hashed_message"].native != hashlib.new(alg, data).digest():
        raise TimestampError("the timestamp is over other data (message imprint mismatch)")
    if nonce is not None and tst["nonce"].native != nonce:
        raise TimestampError("the timestamp's nonce is not the request's")
    _check_signer(signed, tst_der, certs[0])
    at = _gen_time(tst)
    _check_chain(certs, at)
    return at
