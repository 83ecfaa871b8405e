"""The Rekor v2 API and the Sigstore documents, beside the /v1 API of the same log.

`POST /api/v2/log/entries` takes a protojson `CreateEntryRequest`, checks it
(`client.rekor.check_create_entry`), appends its leaf through the same sequencer as every
entry, and answers the `TransparencyLogEntry` once a signed (with witnesses: cosigned, within
the wait) checkpoint covers it. `GET /v1/entries/<index>/sigstore-bundle` makes a v0.3 bundle
of any Rekor v2 entry, with an RFC 3161 timestamp over its signature from the configured TSA,
checked before it is handed out. The TrustedRoot and SigningConfig are the files `tlog
serve` wrote in the data dir (tlog/sigstore_files.py), served as they are.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from client import rekor, timestamp
from client.attest import EntryError, EntrySignatureError, parse_envelope, parse_leaf
from client.checkpoint import parse_checkpoint_text
from client.errors import TlogError
from client.note import parse_vkey
from client.sigstore_trust import tsa_chain_of
from tlog.errors import APIError, not_found
from tlog.sigstore_files import SIGNING_CONFIG_FILE, TRUSTED_ROOT_FILE

if TYPE_CHECKING:
    from tlog.app import LogApp
    from tlog.submit import Receipt

log = logging.getLogger("tlog.sigstore")
REKOR_ENTRIES = "/api/v2/log/entries"
TSA_TIMEOUT = 5.0
STAMPS_KEPT = 4096
"""Timestamps kept per worker, by signature: asking for a bundle again (a client polling, a
CDN revalidating) reuses one instead of making the TSA sign anew; any one stays true."""
_JSON = "application/json"


class SigstoreAPI:
    def __init__(self, log_app: LogApp) -> None:
        self.app = log_app
        self._log_id: bytes | None = None
        self._docs: dict[str, bytes] = {}
        self._tsa_chain: list[bytes] = []
        self._http: httpx.AsyncClient | None = None
        self._stamps: OrderedDict[bytes, bytes] = OrderedDict()

    def start(self, data_dir: Path) -> None:
        self._log_id = rekor.log_id(parse_vkey(self.app.vkey))  # type: ignore[arg-type]
        for name in (TRUSTED_ROOT_FILE, SIGNING_CONFIG_FILE):
            path = data_dir / name
            if path.exists():
                self._docs[name] = path.read_bytes()
        root = self._docs.get(TRUSTED_ROOT_FILE)
        self._tsa_chain = tsa_chain_of(orjson.loads(root)) if root else []

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    # --- the write API ------------------------------------------------------------------

    async def create_entry(self, scope: Scope, receive: Receive) -> tuple[Any, ...]:
        return await self.app.receive_entry(scope, receive, self._create)

    async def _create(self, doc: Any, *, small: bool) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        try:
            if small:
                sub = rekor.check_create_entry(doc)
            else:  # a large DSSE envelope: hashing it must not stall the event loop
                sub = await asyncio.get_running_loop().run_in_executor(
                    self.app.crypto, rekor.check_create_entry, doc)
        except EntryError as exc:
            raise APIError(413 if exc.code == "entry_too_large" else 400, exc.code, str(exc)) from exc
        except EntrySignatureError as exc:
            raise APIError(400, exc.code, str(exc)) from exc
        del doc
        receipt = await self.app.submit(sub.leaf, sub.envelope)
        body = orjson.dumps(self.entry_json(receipt, sub.leaf))
        # As upstream Rekor v2: 201 for a new entry, 409 AlreadyExists with `x-log-index` for
        # one already logged; tlog's 409 carries the whole entry too, so a retry loses nothing.
        if receipt.created:
            return 201, body, []
        return 409, body, [(b"x-log-index", b"%d" % receipt.index)]

    def entry_json(self, r: Receipt, leaf: bytes) -> dict[str, Any]:
        assert self._log_id is not None
        root = parse_checkpoint_text(r.checkpoint.decode().split("\n\n", 1)[0] + "\n").root
        return rekor.transparency_log_entry(r.index, leaf, log_key_id=self._log_id,
                                            tree_size=r.tree_size, root=root, proof=list(r.proof),
                                            checkpoint=r.checkpoint)

    # --- bundles and documents ----------------------------------------------------------

    async def bundle(self, request: Request) -> Response:
        """GET /v1/entries/<index>/sigstore-bundle"""
        index = self.app.path_index(request)
        found = await self.app.backend.receipt(index)
        if found is None:
            raise not_found(f"no entry at index {index}")
        receipt, leaf = found
        info = parse_leaf(leaf)
        if info is None or info.rekor is None:
            raise not_found(f"entry {index} is not a Rekor v2 entry: Sigstore bundles exist "
                            "for entries submitted to /api/v2/log/entries")
        envelope = None
        blob = await self.app.backend.envelope(index, leaf)
        if blob is not None:
            env = parse_envelope(orjson.loads(blob))
            envelope = env if rekor.envelope_matches(info.rekor, env) else None
        stamps = [await self._timestamp(info.rekor.signature)] if self.app.config.tsa_url else []
        doc = rekor.bundle(self.entry_json(receipt, leaf), info.rekor, envelope, stamps)
        return Response(orjson.dumps(doc), media_type=rekor.BUNDLE_MEDIA_TYPE.split(";")[0],
                        headers={"Cache-Control": "no-cache"})

    async def _timestamp(self, signature: bytes) -> bytes:
        """A TimeStampResp over the signature from the TSA, checked against its chain in the
        TrustedRoot (a bad token would fail every client later, far from its cause)."""
        if signature in self._stamps:
            self._stamps.move_to_end(signature)
            return self._stamps[signature]
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=TSA_TIMEOUT)
        nonce = secrets.randbits(63)
        url = self.app.config.tsa_url.rstrip("/") + "/api/v1/timestamp"
        try:
            resp = await self._http.post(url, content=timestamp.timestamp_request(signature, nonce=nonce),
                                         headers={"Content-Type": "application/timestamp-query"})
            if resp.status_code != 200:
                raise TlogError(f"HTTP {resp.status_code}")
            timestamp.verify_timestamp(resp.content, signature, self._tsa_chain, nonce=nonce)
        except (httpx.HTTPError, TlogError) as exc:
            log.warning("the TSA at %s gave no usable timestamp: %s", url, exc)
            raise APIError(503, "tsa_unavailable", "the time-stamping authority gave no usable "
                           f"timestamp: {exc}", {"Retry-After": "5"}) from exc
        self._stamps[signature] = resp.content
        if len(self._stamps) > STAMPS_KEPT:
            self._stamps.popitem(last=False)
        return resp.content

    def _document(self, name: str, media_type: str) -> Response:
        doc = self._docs.get(name)
        if doc is None:
            raise not_found(f"this log has no {name}")
        return Response(doc, media_type=media_type, headers={"Cache-Control": "no-cache"})

    async def trusted_root(self, _request: Request) -> Response:
        """GET /v1/sigstore/trusted-root.json"""
        return self._document(TRUSTED_ROOT_FILE, _JSON)

    async def signing_config(self, _request: Request) -> Response:
        """GET /v1/sigstore/signing-config.json"""
        return self._document(SIGNING_CONFIG_FILE, _JSON)

