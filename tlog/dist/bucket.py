"""The log in an S3-compatible bucket: C2SP tlog-tiles objects that anyone reads directly.

Layout under the log's prefix (readers and CDNs need nothing but the bucket):

    checkpoint                   the signed checkpoint          text/plain   no-cache
    tile/<L>/<N>                 full hash tiles                 octet-stream immutable
    tile/<L>/<N>.p/<W>           partial hash tiles (the edge)   octet-stream no-cache
    tile/entries/<N>[.p/<W>]     entry bundles, full / partial   as above
    v1/attestations/<hex>        envelopes by SHA-256            json         immutable
    v1/log                       origin, keys, whether raw entries are taken   no-cache

Everything but `checkpoint` and `v1/log` is written once with bytes that never change:
entries are sequenced (given their index, durably, in PostgreSQL) before any tile is built
from them, so a sequencer that crashes and one that takes over write the same bytes at the
same paths. `checkpoint` is replaced only by a conditional write (If-Match on the ETag the
writer last saw), so a deposed sequencer cannot put an older checkpoint back.

Stores that silently ignore conditional writes exist (several S3 servers answer 200 to an
If-None-Match or If-Match they do not implement); `self_test` refuses them before anything
is written. Some (Ceph RGW Pacific) accept If-Match only with the ETag unquoted: the test
finds the form this store takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
OCTETS = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


class ObjectStoreError(Exception):
    """The bucket could not be reached, refused a request, or does not behave as S3 must."""


class ConditionalWritesIgnored(ObjectStoreError):
    """The store accepts conditional writes it does not enforce: two writers could both win."""


class CheckpointConflict(ObjectStoreError):
    """The checkpoint object changed since this writer last saw it (another sequencer)."""


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    bucket: str
    region: str = "us-east-1"
    prefix: str = ""
    access_key_id: str = ""
    secret_access_key: str = ""
    timeout: float = 10.0

    def key(self, path: str) -> str:
        return self.prefix + path


def normalise_prefix(prefix: str) -> str:
    """'' or 'a/b/': no leading slash, one trailing slash."""
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


class ObjectStore:
    """Async access to the log's bucket (obstore, a Rust S3 client: about 2-3x the requests per
    core of boto3, which matters on the sequencer's path)."""

    def __init__(self, settings: S3Settings) -> None:
        from obstore.store import S3Store

        self.settings = settings
        timeout = timedelta(seconds=settings.timeout)
        self._store = S3Store(
            settings.bucket, endpoint=settings.endpoint, region=settings.region,
            access_key_id=settings.access_key_id or None,
            secret_access_key=settings.secret_access_key or None,
            virtual_hosted_style_request=False,
            client_options={"allow_http": settings.endpoint.startswith("http://"),
                            "timeout": timeout, "connect_timeout": timeout},
            retry_config={"max_retries": 3, "retry_timeout": timeout * 3,
                          "backoff": {"init_backoff": timedelta(milliseconds=50),
                                      "max_backoff": timedelta(seconds=2), "base": 2}})
        self.etag_quoted: bool | None = None  # which If-Match form the store takes (self_test)

    # --- plain objects ------------------------------------------------------------------

    async def put(self, path: str, data: bytes, *, cache: str = IMMUTABLE, ctype: str = OCTETS) -> str:
        """Write an object; returns its ETag."""
        import obstore

        try:
            r = await obstore.put_async(self._store, self.settings.key(path), data,
                                        attributes={"Cache-Control": cache, "Content-Type": ctype})
        except Exception as exc:
            raise ObjectStoreError(f"PUT {path}: {_describe(exc)}") from exc
        return str(r["e_tag"] or "")

    async def put_many(self, objects: list[tuple[str, bytes, str, str]]) -> None:
        """Write (path, data, cache, content type) objects concurrently; all or an error."""
        await asyncio.gather(*(self.put(p, d, cache=c, ctype=t) for p, d, c, t in objects))

    async def get(self, path: str) -> bytes | None:
        """The object's bytes, or None if there is none."""
        got = await self.get_with_etag(path)
        return None if got is None else got[0]

    async def _get(self, path: str) -> Any:
        """obstore's answer with the bytes read (None if there is no such object)."""
        import obstore
        from obstore.exceptions import NotFoundError

        try:
            r = await obstore.get_async(self._store, self.settings.key(path))
            return r, bytes(await r.bytes_async())
        except (NotFoundError, FileNotFoundError):
            return None
        except Exception as exc:
            raise ObjectStoreError(f"GET {path}: {_describe(exc)}") from exc

    async def get_with_etag(self, path: str) -> tuple[bytes, str] | None:
        got = await self._get(path)
        if got is None:
            return None
        r, data = got
        return data, str(r.meta.get("e_tag") or "")

    async def get_with_attributes(self, path: str) -> tuple[bytes, dict[str, str]] | None:
        """The object's bytes and the attributes it was stored with (Cache-Control,
        Content-Type: readers and CDNs go by them, so `tlog fsck` checks them)."""
        got = await self._get(path)
        if got is None:
            return None
        r, data = got
        return data, {str(k): str(v) for k, v in r.attributes.items()}

    async def delete(self, path: str) -> None:
        import obstore

        try:
            await obstore.delete_async(self._store, self.settings.key(path))
        except Exception as exc:
            raise ObjectStoreError(f"DELETE {path}: {_describe(exc)}") from exc

    async def is_empty(self) -> bool:
        """True if nothing is stored under the log's prefix."""
        import obstore

        try:
            stream = obstore.list(self._store, prefix=self.settings.prefix or None, chunk_size=1)
            async for chunk in stream:
                if chunk:
                    return False
        except Exception as exc:
            raise ObjectStoreError(f"LIST {self.settings.prefix!r}: {_describe(exc)}") from exc
        return True

    # --- conditional writes -------------------------------------------------------------

    async def create(self, path: str, data: bytes, *, cache: str, ctype: str) -> str | None:
        """Write only if absent (If-None-Match: *); the new ETag, or None if it existed."""
        import obstore
        from obstore.exceptions import AlreadyExistsError, PreconditionError

        try:
            r = await obstore.put_async(self._store, self.settings.key(path), data, mode="create",
                                        attributes={"Cache-Control": cache, "Content-Type": ctype})
        except (AlreadyExistsError, PreconditionError):
            return None
        except Exception as exc:
            raise ObjectStoreError(f"PUT {path} (If-None-Match): {_describe(exc)}") from exc
        return str(r["e_tag"] or "")

    async def replace(self, path: str, data: bytes, etag: str, *, cache: str, ctype: str,
                      quoted: bool | None = None) -> str | None:
        """Write only if the object's ETag is still `etag` (If-Match); the new ETag, or None
        if it changed (or is gone)."""
        import obstore
        from obstore.exceptions import NotFoundError, PreconditionError

        use_quotes = self.etag_quoted if quoted is None else quoted
        bare = etag.strip('"')
        tag = f'"{bare}"' if use_quotes or use_quotes is None else bare
        try:
            r = await obstore.put_async(self._store, self.settings.key(path), data, mode={"e_tag": tag},
                                        attributes={"Cache-Control": cache, "Content-Type": ctype})
        except (PreconditionError, NotFoundError, FileNotFoundError):
            return None
        except Exception as exc:
            raise ObjectStoreError(f"PUT {path} (If-Match): {_describe(exc)}") from exc
        return str(r["e_tag"] or "")

    async def self_test(self) -> None:
        """Refuse a store that does not enforce conditional writes (so two sequencers could
        both publish), and learn which If-Match form it takes. Writes one probe object under
        the prefix and deletes it."""
        path = f".tlog-probe/{uuid.uuid4().hex}"
        try:
            first = await self.create(path, b"1", cache=NO_CACHE, ctype=TEXT)
            if first is None:
                raise ConditionalWritesIgnored("a new probe object was refused by If-None-Match")
            if await self.create(path, b"2", cache=NO_CACHE, ctype=TEXT) is not None:
                raise ConditionalWritesIgnored(
                    "the store overwrote an object despite If-None-Match: * (conditional writes "
                    "are ignored: two sequencers could both publish)")
            for quoted in (True, False):
                if await self.replace(path, b"3", '"0123456789abcdef0123456789abcdef"', cache=NO_CACHE,
                                      ctype=TEXT, quoted=quoted) is not None:
                    raise ConditionalWritesIgnored("the store accepted If-Match with a wrong ETag")
            for quoted in (True, False):
                if await self.replace(path, b"4", first, cache=NO_CACHE, ctype=TEXT, quoted=quoted):
                    self.etag_quoted = quoted
                    break
            else:
                raise ConditionalWritesIgnored("the store refuses If-Match with the ETag it returned")
        finally:
            with contextlib.suppress(ObjectStoreError):
                await self.delete(path)


def _describe(exc: BaseException) -> str:
    """obstore's messages hold the whole request: keep the first line (no signatures)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def envelope_path(leaf_hash: bytes) -> str:
    """Where the envelope of a Rekor v2 entry lies: its leaf commits to the envelope's PAE
    digest and signature, not to a content address, so it is found by the leaf hash."""
    return f"v1/envelopes/{leaf_hash.hex()}"


async def rekor_envelopes(bucket: ObjectStore, leaves: list[tuple[int, bytes]]) -> dict[int, bytes]:
    """The envelopes the bucket holds for the Rekor v2 leaves among (index, leaf) pairs, by
    index: their Statements' search terms are not in the leaves."""
    import asyncio

    from client.merkle import leaf_hash

    rekor = [(i, leaf) for i, leaf in leaves if leaf[:1] == b"{"]
    blobs = await asyncio.gather(*(bucket.get(envelope_path(leaf_hash(leaf))) for _, leaf in rekor))
    return {i: blob for (i, _), blob in zip(rekor, blobs, strict=True) if blob is not None}


def object_attributes(path: str) -> tuple[str, str]:
    """(Cache-Control, Content-Type) of a log object by its path (see the module docstring)."""
    if path == "checkpoint":
        return NO_CACHE, TEXT
    if path == "v1/log":
        return NO_CACHE, JSON
    if path.startswith(("v1/attestations/", "v1/envelopes/")):
        return IMMUTABLE, JSON
    return (NO_CACHE if ".p/" in path else IMMUTABLE), OCTETS


def log_description(origin: str, vkeys: list[str], allow_raw: bool, frozen: bool) -> bytes:
    """`v1/log`: what a reader of the bucket alone needs to know about the log (the same
    fields as the API's GET /v1/log, without the tree size, which the checkpoint gives)."""
    import orjson

    return orjson.dumps({"origin": origin, "verifier_keys": vkeys, "raw_entries_allowed": allow_raw,
                         "max_entry_size": 0xFFFF, "frozen": frozen})


def describe_settings(settings: S3Settings) -> dict[str, Any]:
    """What is safe to print (no secret)."""
    return {"endpoint": settings.endpoint, "bucket": settings.bucket, "prefix": settings.prefix,
            "region": settings.region, "access_key_id": settings.access_key_id}
