"""`tlog-client audit --full` on a 1,000,000-entry log (slow: run from loadtest/, not by default).

    pytest -m slow tests/test_audit_million.py     # or: python loadtest/bench_audit.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_full_audit_of_a_million_entries_finishes_and_resumes() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "loadtest" / "bench_audit.py"), "--size", "1000000"],
                          capture_output=True, text=True, timeout=3000, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replayed 1000000 entries" in proc.stdout and "entries/s" in proc.stdout
    assert "resumed at" in proc.stdout
