"""Atom feeds (RFC 4287) of the entries under one search term, for watchers (pure).

A feed reader polls it and sees new entries for a subject, signer or predicate type; the
feed is a notification, not evidence: each entry links to its receipt and to the explorer,
where inclusion is checked.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from client import attest

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"


def _time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(leaf: bytes) -> tuple[str, str]:
    """(title part, summary) of an entry, from the leaf alone."""
    info = attest.parse_leaf(leaf)
    if info is None:
        return "raw entry", f"a raw entry of {len(leaf)} bytes"
    if info.rekor is not None:
        rec = info.rekor
        return "signed digest", f"Rekor v2 hashedrekord, digest {rec.subject}, signer {rec.signer}"
    record = info.record
    if info.kind == attest.KIND_DSSE:
        statement = record.get("statement") or {}
        ptype = statement.get("predicate_type") or record.get("payload_type", "")
        subjects = [f"{alg}:{value}" for s in statement.get("subjects", []) for alg, value in
                    sorted(s["digest"].items())]
        signers = [s["signer"] for s in record.get("signatures", [])]
        return ptype, (f"DSSE {record.get('payload_type', '')}; subjects: {', '.join(subjects) or 'none'}; "
                       f"signers: {', '.join(signers)}")
    digest, signer = record["digest"]["sha256"], record["signature"]["signer"]
    return "signed digest", f"hashedrekord, digest sha256:{digest}, signer {signer}"


def atom_feed(*, origin: str, base: str, field: str, term: str, now: float,
              hits: list[tuple[int, bytes, int | None]]) -> bytes:
    """The feed of `hits` (index, leaf, minute appended or None), newest first. `base` is
    the log's public URL ending in "/"; ids are stable URLs under it."""
    query = urllib.parse.urlencode({field: term})
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    sub(feed, "id", f"{base}v1/feed?{query}")
    sub(feed, "title", f"{origin}: entries with {field} {term}")
    newest = max((m for _, _, m in hits if m is not None), default=None)
    sub(feed, "updated", _time(newest if newest is not None else now))
    sub(sub(feed, "author"), "name", origin)
    sub(feed, "link", rel="self", href=f"{base}v1/feed?{query}", type="application/atom+xml")
    sub(feed, "link", rel="alternate", type="text/html",
        href=f"{base}explorer/#/timeline?{urllib.parse.urlencode({'field': field, 'q': term})}")
    sub(feed, "generator", "tlog")
    for index, leaf, minute in hits:
        title, summary = _summary(leaf)
        entry = sub(feed, "entry")
        sub(entry, "id", f"{base}v1/entries/{index}")
        sub(entry, "title", f"Entry {index}: {title}")
        # Atom requires a time: an entry whose minute the log did not record gets the feed's.
        sub(entry, "updated", _time(minute if minute is not None else now))
        sub(entry, "link", rel="alternate", type="text/html", href=f"{base}explorer/#/entry/{index}")
        sub(entry, "link", rel="related", type="application/json",
            href=f"{base}v1/entries/{index}/receipt")
        sub(entry, "summary", summary if minute is not None else summary + " (time not recorded)")
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")
