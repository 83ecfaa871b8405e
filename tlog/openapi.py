"""The OpenAPI 3.1 description of the log's HTTP API, served at GET /v1/openapi.json.

Written by hand next to the routes; a test checks that every route is described here and
that every error code the handlers can send is listed.
"""

from __future__ import annotations

from typing import Any

ERROR_CODES = [
    "malformed_json", "unknown_entry_kind", "unknown_field", "bad_base64", "bad_parameter",
    "missing_parameter", "index_out_of_range", "size_out_of_range", "bad_tile_path",
    "raw_entries_disabled", "not_found", "method_not_allowed", "body_too_large",
    "entry_too_large", "internal", "overloaded", "unavailable", "index_behind", "storage_error", "log_full",
    "bad_request", "unhealthy", "http_error", "request_timeout", "malformed_envelope",
    "malformed_entry", "unsupported_key", "signature_invalid", "statement_mismatch",
    "signer_unavailable", "log_frozen", "disk_full", "tsa_unavailable", "rate_limited", "unauthorized",
]

_B64 = {"type": "string", "contentEncoding": "base64"}
_ERROR = {"description": "Error", "content": {"application/json": {"schema": {
    "$ref": "#/components/schemas/Error"}}}}
_OCTETS = {"content": {"application/octet-stream": {"schema": {
    "type": "string", "format": "binary"}}}}


def _int_param(name: str, where: str = "query", required: bool = False, doc: str = "") -> dict:
    return {"name": name, "in": where, "required": required, "description": doc,
            "schema": {"type": "integer", "minimum": 0}}


def spec(version: str = "0.1.0") -> dict[str, Any]:
    errors = {"4XX": _ERROR, "5XX": _ERROR}
    return {
        "openapi": "3.1.0",
        "info": {"title": "tlog", "version": version,
                 "description": "Append-only transparency log: C2SP checkpoint and tiles, "
                                "RFC 6962 proofs, and a JSON API for writes and proofs."},
        "paths": {
            "/checkpoint": {"get": {
                "summary": "Latest signed checkpoint (C2SP tlog-checkpoint signed note)",
                "responses": {"200": {"description": "Signed note", "content": {
                    "text/plain; charset=utf-8": {"schema": {"type": "string"}}}}, **errors}}},
            "/tile/{path}": {"get": {
                "summary": "C2SP tlog-tiles hash tile <L>/<N>[.p/<W>] or entries/<N>[.p/<W>]",
                "parameters": [{"name": "path", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Tile bytes", **_OCTETS}, **errors}}},
            "/v1/log": {"get": {
                "summary": "Log description: origin and verifier keys",
                "responses": {"200": {"description": "Log", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Log"}}}}, **errors}}},
            "/v1/log/key-attestation": {"get": {
                "summary": "TPM2_Certify of the ECDSA checkpoint key by a restricted attestation key "
                           "(TPM-anchored logs; docs/tpm.md)",
                "responses": {"200": {"description": "Key attestation", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "key_public": _B64, "ak_public": _B64, "certify_info": _B64,
                        "certify_signature": _B64,
                        "ek_certificates": {"type": "array", "items": {"type": "string"}}}}}}},
                    **errors}}},
            "/v1/entries": {"post": {
                "summary": "Append an entry; answers after it is durable and signed",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "oneOf": [
                        {"type": "object", "additionalProperties": False, "required": ["raw"],
                         "properties": {"raw": _B64}},
                        {"type": "object", "additionalProperties": False,
                         "required": ["dsse", "verifiers"], "properties": {
                             "dsse": {"$ref": "#/components/schemas/Envelope"},
                             "verifiers": {"type": "array", "minItems": 1, "maxItems": 8,
                                           "items": {"type": "string",
                                                     "description": "PEM public key"}}}},
                        {"type": "object", "additionalProperties": False,
                         "required": ["hashedrekord"], "properties": {"hashedrekord": {
                             "type": "object", "required": ["digest", "signature", "verifier"],
                             "properties": {
                                 "digest": {"type": "object", "required": ["sha256"],
                                            "properties": {"sha256": {"type": "string"}}},
                                 "signature": _B64, "verifier": {"type": "string"}}}}},
                    ]}}}},
                "responses": {
                    "201": {"description": "Appended", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Receipt"}}}},
                    "200": {"description": "Already in the log", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Receipt"}}}},
                    **errors,
                    "507": {**_ERROR, "description":
                            "disk_full: the data dir's disk is full; nothing was written, reads "
                            "still work; retry after Retry-After seconds"}}}},
            "/v1/entries/{index}": {"get": {
                "summary": "The entry's bytes",
                "parameters": [_int_param("index", "path", True)],
                "responses": {"200": {"description": "Entry", **_OCTETS}, **errors}}},
            "/v1/entries/{index}/receipt": {"get": {
                "summary": "A receipt for the entry against the latest checkpoint",
                "parameters": [_int_param("index", "path", True)],
                "responses": {"200": {"description": "Receipt", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Receipt"}}}}, **errors}}},
            "/v1/entries/{index}/envelope": {"get": {
                "summary": "The DSSE envelope stored with the entry (a v1 DSSE entry's, or the one a "
                           "Rekor v2 entry logs as a hashedrekord over its PAE); check it against the leaf",
                "parameters": [_int_param("index", "path", True)],
                "responses": {"200": {"description": "Canonical envelope", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
                    **errors}}},
            "/v1/entries/{index}/sigstore-bundle": {"get": {
                "summary": "A Sigstore v0.3 bundle of a Rekor v2 entry: its TransparencyLogEntry against "
                           "the latest checkpoint and a fresh RFC 3161 timestamp from the log's TSA "
                           "(docs/sigstore.md)",
                "parameters": [_int_param("index", "path", True)],
                "responses": {"200": {"description": "Bundle", "content": {
                    "application/vnd.dev.sigstore.bundle.v0.3+json": {"schema": {"type": "object"}}}},
                    **errors}}},
            "/api/v2/log/entries": {"post": {
                "summary": "Rekor v2 CreateEntry: a protojson CreateEntryRequest (hashedRekordRequestV002, "
                           "or tlog's dsseRequestV002); answers the TransparencyLogEntry once a signed "
                           "checkpoint covers it (docs/sigstore.md)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/CreateEntryRequest"}}}},
                "responses": {
                    "201": {"description": "Appended", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/TransparencyLogEntry"}}}},
                    "409": {"description": "Already in the log (Rekor v2's AlreadyExists, with the "
                                           "x-log-index header); the body is the entry",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/TransparencyLogEntry"}}}},
                    **errors}}},
            "/v1/sigstore/trusted-root.json": {"get": {
                "summary": "The Sigstore TrustedRoot of this log and its TSA",
                "responses": {"200": {"description": "TrustedRoot (application/vnd.dev.sigstore."
                                                     "trustedroot+json;version=0.1)"}, **errors}}},
            "/v1/sigstore/signing-config.json": {"get": {
                "summary": "The Sigstore SigningConfig (v0.2): this log's Rekor v2 URL and its TSA",
                "responses": {"200": {"description": "SigningConfig"}, **errors}}},
            "/v1/attestations/{digest}": {"get": {
                "summary": "A DSSE envelope by the SHA-256 (hex) of its canonical form",
                "parameters": [{"name": "digest", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}],
                "responses": {"200": {"description": "Canonical envelope", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}},
                    **errors}}},
            "/v1/search": {"get": {
                "summary": "Attestations by subject digest, signer key digest or predicate type",
                "parameters": [
                    {"name": "subject", "in": "query", "schema": {"type": "string"},
                     "description": "<alg>:<lowercase hex>, e.g. sha256:ab12..."},
                    {"name": "signer", "in": "query", "schema": {"type": "string"},
                     "description": "sha256:<hex of the signer's DER SubjectPublicKeyInfo>"},
                    {"name": "predicate_type", "in": "query", "schema": {"type": "string"}},
                    _int_param("cursor", doc="next_cursor of the previous page"),
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    {"name": "order", "in": "query", "description": "asc: oldest first (cursor: "
                     "hits after it); desc: newest first (cursor: hits below it)",
                     "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"}}],
                "responses": {"200": {"description": "Hits", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/SearchPage"}}}}, **errors}}},
            "/v1/feed": {"get": {
                "summary": "Atom feed (RFC 4287) of the newest entries under one search term",
                "parameters": [
                    {"name": "subject", "in": "query", "schema": {"type": "string"}},
                    {"name": "signer", "in": "query", "schema": {"type": "string"}},
                    {"name": "predicate_type", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}],
                "responses": {"200": {"description": "Atom feed", "content": {
                    "application/atom+xml": {"schema": {"type": "string"}}}}, **errors}}},
            "/v1/log/activity": {"get": {
                "summary": "Entries appended per UTC minute, oldest minute first (the log's clock)",
                "parameters": [{"name": "minutes", "in": "query", "schema": {
                    "type": "integer", "minimum": 1, "maximum": 1440, "default": 60}}],
                "responses": {"200": {"description": "Activity", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Activity"}}}}, **errors}}},
            "/v1/log/policy": {"get": {
                "summary": "This log's tlog-client trust policy as JSON (docs/verifying.md)",
                "responses": {"200": {"description": "Policy", "content": {"application/json": {
                    "schema": {"type": "object"}}}}, **errors}}},
            "/v1/entries/{index}/time": {"get": {
                "summary": "The UTC minute an entry was appended in (the log's clock)",
                "parameters": [_int_param("index", "path", required=True)],
                "responses": {"200": {"description": "Time", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "index": {"type": "integer"},
                        "logged_minute": {"type": ["integer", "null"]}}}}}}, **errors}}},
            "/": {"get": {"summary": "Redirects to the web explorer (explorer/)",
                          "responses": {"307": {"description": "To explorer/"}}}},
            "/explorer": {"get": {
                "summary": "The web explorer's pages and files (explorer/, docs/explorer.md)",
                "responses": {"200": {"description": "HTML, JavaScript and CSS", "content": {
                    "text/html": {"schema": {"type": "string"}}}},
                    "307": {"description": "/explorer to explorer/"}, **errors}}},
            "/explorer/config.json": {"get": {
                "summary": "Where the explorer's pages find the API and tiles; null policy: "
                           "they pin /v1/log/policy on first use",
                "responses": {"200": {"description": "Explorer configuration", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "api": {"type": "string"}, "tiles": {"type": "string"},
                        "policy": {"type": ["object", "null"]}}}}}}}}},
            "/v1/proof/inclusion": {"get": {
                "summary": "RFC 6962 inclusion proof by index or leaf hash",
                "parameters": [_int_param("index"), {"name": "leaf_hash", "in": "query",
                                                     "schema": _B64},
                               _int_param("size", doc="tree size (default: current)")],
                "responses": {"200": {"description": "Proof", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/InclusionProof"}}}}, **errors}}},
            "/v1/proof/consistency": {"get": {
                "summary": "RFC 6962 consistency proof",
                "parameters": [_int_param("old", required=True),
                               _int_param("new", doc="new size (default: current)")],
                "responses": {"200": {"description": "Proof", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ConsistencyProof"}}}}, **errors}}},
            "/v1/openapi.json": {"get": {"summary": "This document",
                                         "responses": {"200": {"description": "OpenAPI"}}}},
            "/healthz": {"get": {"summary": "Health", "responses": {
                "200": {"description": "Healthy", "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/Health"}}}},
                "503": {"description": "Not taking entries (reads may still work)", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {
                "200": {"description": "Prometheus text format"}}}},
        },
        "components": {"schemas": {
            "Health": {"type": "object", "required": ["status", "tree_size", "accepting_writes"],
                       "properties": {
                           "status": {"enum": ["ok", "read_only", "unavailable"]},
                           "tree_size": {"type": "integer"},
                           "accepting_writes": {"type": "boolean"},
                           "error": {"$ref": "#/components/schemas/Error/properties/error"}}},
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "enum": ERROR_CODES},
                    "message": {"type": "string"}}}}},
            "CreateEntryRequest": {"type": "object", "minProperties": 1, "maxProperties": 1,
                                   "description": "protojson: camelCase or proto field names; unknown "
                                                  "fields refused",
                                   "properties": {
                "hashedRekordRequestV002": {"type": "object", "required": ["digest", "signature"],
                                            "properties": {
                    "digest": _B64,
                    "signature": {"type": "object", "required": ["content", "verifier"], "properties": {
                        "content": _B64, "verifier": {"$ref": "#/components/schemas/RekorVerifier"}}}}},
                "dsseRequestV002": {"type": "object", "required": ["envelope", "verifiers"], "properties": {
                    "envelope": {"$ref": "#/components/schemas/Envelope"},
                    "verifiers": {"type": "array", "minItems": 1, "maxItems": 8,
                                  "items": {"$ref": "#/components/schemas/RekorVerifier"}}}}}},
            "RekorVerifier": {"type": "object", "required": ["keyDetails"], "properties": {
                "publicKey": {"type": "object", "properties": {"rawBytes": _B64}},
                "x509Certificate": {"type": "object", "properties": {"rawBytes": _B64}},
                "keyDetails": {"enum": ["PKIX_ECDSA_P256_SHA_256", "PKIX_ECDSA_P384_SHA_384",
                                        "PKIX_ECDSA_P521_SHA_512", "PKIX_RSA_PKCS1V15_2048_SHA256",
                                        "PKIX_RSA_PKCS1V15_3072_SHA256", "PKIX_RSA_PKCS1V15_4096_SHA256"]}}},
            "TransparencyLogEntry": {"type": "object", "description": "protojson; int64 as strings",
                                     "properties": {
                "logIndex": {"type": "string"}, "logId": {"type": "object", "properties": {"keyId": _B64}},
                "kindVersion": {"type": "object", "properties": {
                    "kind": {"type": "string"}, "version": {"type": "string"}}},
                "integratedTime": {"type": "string"},
                "inclusionProof": {"type": "object", "properties": {
                    "logIndex": {"type": "string"}, "rootHash": _B64, "treeSize": {"type": "string"},
                    "hashes": {"type": "array", "items": _B64},
                    "checkpoint": {"type": "object", "properties": {"envelope": {"type": "string"}}}}},
                "canonicalizedBody": _B64}},
            "Log": {"type": "object", "properties": {
                "origin": {"type": "string"},
                "verifier_keys": {"type": "array", "items": {"type": "string"}},
                "tree_size": {"type": "integer"}, "raw_entries_allowed": {"type": "boolean"},
                "max_entry_size": {"type": "integer"}, "frozen": {"type": "boolean"},
                "successor": {"type": "string", "format": "uri"}}},
            "Envelope": {"type": "object", "required": ["payload", "payloadType", "signatures"],
                         "properties": {"payload": _B64, "payloadType": {"type": "string"},
                                        "signatures": {"type": "array", "items": {
                                            "type": "object", "required": ["sig"],
                                            "properties": {"keyid": {"type": "string"},
                                                           "sig": _B64}}}}},
            "Activity": {"type": "object", "properties": {
                "now": {"type": "integer"}, "tree_size": {"type": "integer"},
                "minutes": {"type": "array", "items": {"type": "object", "properties": {
                    "start": {"type": "integer"}, "entries": {"type": "integer"}}}}}},
            "SearchPage": {"type": "object", "properties": {
                "hits": {"type": "array", "items": {"type": "object", "properties": {
                    "index": {"type": "integer"}, "leaf": _B64,
                    "logged_minute": {"type": ["integer", "null"], "description":
                                      "Unix time of the UTC minute it was appended in"}}}},
                "next_cursor": {"type": ["integer", "null"]},
                "indexed_size": {"type": "integer", "description":
                                 "the answer is complete for entries below this index"}}},
            "Receipt": {"type": "object", "required": [
                "origin", "index", "leaf", "leaf_hash", "inclusion_proof", "checkpoint"],
                "properties": {
                "origin": {"type": "string"}, "leaf": _B64,
                "index": {"type": "integer"}, "leaf_hash": _B64,
                "inclusion_proof": {"type": "object", "properties": {
                    "tree_size": {"type": "integer"},
                    "hashes": {"type": "array", "items": _B64}}},
                "checkpoint": {"type": "string", "description": "signed note text"},
                "witnessed": {"type": "boolean", "description":
                              "only on logs with witnesses: the checkpoint carries the quorum"}}},
            "InclusionProof": {"type": "object", "properties": {
                "index": {"type": "integer"}, "tree_size": {"type": "integer"},
                "hashes": {"type": "array", "items": _B64}}},
            "ConsistencyProof": {"type": "object", "properties": {
                "old_size": {"type": "integer"}, "new_size": {"type": "integer"},
                "hashes": {"type": "array", "items": _B64}}},
        }},
    }
