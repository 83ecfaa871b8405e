"""The TrustedRoot and SigningConfig a tlog log publishes for Sigstore clients. Pure.

A Sigstore client configured with these two documents needs nothing else to sign with and
verify against the log: the TrustedRoot names the log's checkpoint key and log ID and the
time-stamping authority's certificate chain, the SigningConfig where to submit entries and
ask for timestamps. No Fulcio CA and no CT log: tlog takes public-key signers only
(docs/sigstore.md says why).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from client.encoding import b64decode_std, b64encode
from client.errors import MalformedError
from client.note import ECDSAVerifier, Ed25519Verifier
from client.rekor import log_id

TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
SIGNING_CONFIG_MEDIA_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_url(origin: str, public_url: str) -> str:
    """The TrustedRoot `baseUrl`: sigstore-js counts a checkpoint signature only if the
    signer's name (our origin) is inside it. The public URL if it holds the origin, else
    `https://<origin>` (Rekor v2 practice: the origin is the log's host name)."""
    if public_url and origin in public_url:
        return public_url.rstrip("/")
    return "https://" + origin


def _key(verifier: Ed25519Verifier | ECDSAVerifier) -> tuple[bytes, str]:
    """(DER SPKI, PublicKeyDetails) of a checkpoint key."""
    if isinstance(verifier, Ed25519Verifier):
        return _ED25519_SPKI_PREFIX + verifier.public, "PKIX_ED25519"
    return verifier.spki_der, "PKIX_ECDSA_P256_SHA_256"


def tlog_entry(verifier: Ed25519Verifier | ECDSAVerifier, origin: str, public_url: str,
               since: datetime) -> dict[str, Any]:
    der, details = _key(verifier)
    return {
        "baseUrl": base_url(origin, public_url),
        "hashAlgorithm": "SHA2_256",
        "publicKey": {"rawBytes": b64encode(der), "keyDetails": details,
                      "validFor": {"start": rfc3339(since)}},
        "logId": {"keyId": b64encode(log_id(verifier))},
    }


def tsa_entry(chain: list[x509.Certificate], url: str) -> dict[str, Any]:
    """A TrustedRoot timestamp authority: the chain signing certificate first (both clients
    take `[0]` as the token's signer and need at least it and its root)."""
    leaf = chain[0]
    names = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    orgs = leaf.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    return {
        "subject": {"organization": str(orgs[0].value) if orgs else "",
                    "commonName": str(names[0].value) if names else ""},
        "uri": url,
        "certChain": {"certificates": [
            {"rawBytes": b64encode(c.public_bytes(serialization.Encoding.DER))} for c in chain]},
        "validFor": {"start": rfc3339(max(c.not_valid_before_utc for c in chain)),
                     "end": rfc3339(min(c.not_valid_after_utc for c in chain))},
    }


def tsa_chain_of(root: Any) -> list[bytes]:
    """The first TSA's chain (DER, signing certificate first) of a TrustedRoot document;
    empty if it names none."""
    try:
        tsas = root.get("timestampAuthorities") or []
        if not tsas:
            return []
        return [b64decode_std(c["rawBytes"], what="TSA certificate")
                for c in tsas[0]["certChain"]["certificates"]]
    except (AttributeError, KeyError, IndexError, TypeError) as exc:
        raise MalformedError(f"the TrustedRoot's TSA chain is malformed: {exc}") from exc


def trusted_root(tlogs: list[dict[str, Any]], tsas: list[dict[str, Any]]) -> dict[str, Any]:
    return {"mediaType": TRUSTED_ROOT_MEDIA_TYPE, "tlogs": tlogs, "certificateAuthorities": [],
            "ctlogs": [], "timestampAuthorities": tsas}


def signing_config(log_url: str, tsa_url: str, operator: str, since: datetime) -> dict[str, Any]:
    """SigningConfig v0.2: this log (Rekor API v2) and its TSA; no Fulcio, no OIDC."""
    start = {"start": rfc3339(since)}
    out: dict[str, Any] = {
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [], "oidcUrls": [],
        "rekorTlogUrls": [{"url": log_url.rstrip("/"), "majorApiVersion": 2, "validFor": start,
                           "operator": operator}],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaUrls": [],
        "tsaConfig": {"selector": "ANY"},
    }
    if tsa_url:
        out["tsaUrls"] = [{"url": tsa_url.rstrip("/") + "/api/v1/timestamp", "majorApiVersion": 1,
                           "validFor": start, "operator": urlsplit(tsa_url).hostname or operator}]
    return out
