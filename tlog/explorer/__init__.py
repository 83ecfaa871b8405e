"""The web explorer: static pages that read the documented API and verify what it shows.

The pages (`static/`) are plain HTML, CSS and ES modules, served by the log at `/explorer/`
or exported as static files (`tlog explorer export`) for a bucket or CDN. `config.json` beside
them says where the API and the tiles are and, in an export, pins the log's trust policy, so
a compromised API cannot change the keys the pages check signatures with (docs/explorer.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson

from client.files import write_atomically

STATIC = Path(__file__).parent / "static"
FILES = tuple(sorted(p.name for p in STATIC.iterdir() if p.suffix in (".html", ".js", ".css")))
CONFIG = "config.json"


def config_doc(*, api: str = "../", tiles: str = "../",
               policy: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the pages read first: base URLs (relative to the page, or absolute) and the
    pinned policy (None: the pages fetch `<api>v1/log/policy` and pin it on first use)."""
    return {"api": _slash(api), "tiles": _slash(tiles), "policy": policy}


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def content_security_policy(config: dict[str, Any]) -> str:
    """Only this origin, and the API's and tiles' origins when they are elsewhere."""
    extra = sorted({_origin_of(config["api"]), _origin_of(config["tiles"])} - {""})
    connect = " ".join(["'self'", *extra])
    return (f"default-src 'self'; connect-src {connect}; img-src 'self' data: blob:; "
            "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
            "frame-ancestors 'none'; form-action 'self'")


def _origin_of(url: str) -> str:
    if "://" not in url:
        return ""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def export(out: Path, config: dict[str, Any]) -> list[Path]:
    """Write the pages and their config.json into `out` (created); returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES:
        shutil.copyfile(STATIC / name, out / name)
        (out / name).chmod(0o644)
        written.append(out / name)
    write_atomically(out / CONFIG, orjson.dumps(config, option=orjson.OPT_INDENT_2) + b"\n", mode=0o644)
    written.append(out / CONFIG)
    return written
