"""The OpenAPI document covers every route and every error code the code can send."""

from __future__ import annotations

import re
from pathlib import Path

from tlog.app import create_app
from tlog.config import ServeConfig
from tlog.openapi import ERROR_CODES, spec

ROOT = Path(__file__).resolve().parent.parent


def test_every_route_is_described() -> None:
    app = create_app(ServeConfig(), "example.com/log+12345678+AQ==")
    paths = {r.path.replace("{path:path}", "{path}") for r in app.routes}  # type: ignore[attr-defined]
    assert paths == set(spec()["paths"])


def test_every_error_code_is_listed_and_documented() -> None:
    sources = "".join(p.read_text() for p in (ROOT / "tlog").glob("*.py"))
    used = set(re.findall(r'APIError\(\d+, "([a-z_]+)"', sources))
    used |= set(re.findall(r'bad_request\("([a-z_]+)"', sources))
    used |= set(re.findall(r'_error\(\d+, "([a-z_]+)"', sources))
    used |= set(re.findall(r'code = "([a-z_]+)" if', sources))
    used |= {"not_found", "method_not_allowed", "http_error", "storage_error", "log_full"}
    assert used <= set(ERROR_CODES), used - set(ERROR_CODES)
    api_doc = (ROOT / "docs" / "api.md").read_text()
    missing = [c for c in ERROR_CODES if f"`{c}`" not in api_doc]
    assert not missing, f"error codes missing from docs/api.md: {missing}"
