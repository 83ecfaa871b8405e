"""Headless Chromium for tests, driven by Playwright: Debian's `chromium` package (installed
by `scripts/setup.sh --test`), never a browser Playwright downloads.

Without Chromium or Playwright the tests that need them are skipped, unless REQUIRE_BROWSER=1,
REQUIRE_ENGINES=1 or CI is set: then they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

LAUNCH_TIMEOUT_MS = 30_000


def chromium() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)


def missing() -> str | None:
    """Why a browser cannot run here, or None."""
    if chromium() is None:
        return "chromium is not installed (scripts/setup.sh --test installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def require() -> None:
    why = missing()
    if why is None:
        return
    strict = os.environ.get("REQUIRE_BROWSER") == "1" or os.environ.get("REQUIRE_ENGINES") == "1" or \
        os.environ.get("CI", "").lower() not in ("", "0", "false")
    if strict:
        pytest.fail(why)
    pytest.skip(why)


@contextlib.contextmanager
def launch(*args: str) -> Iterator[Any]:
    """A headless Chromium (root needs --no-sandbox); extra command-line `args`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_another(p.chromium, *args)
        try:
            yield browser
        finally:
            browser.close()


def launch_another(browser_type: Any, *args: str) -> Any:
    """One more Chromium from a running Playwright (`browser.browser_type`), with `args`."""
    return browser_type.launch(executable_path=chromium(), args=["--no-sandbox", *args],
                               timeout=LAUNCH_TIMEOUT_MS)
