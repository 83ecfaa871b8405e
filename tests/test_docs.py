"""Examples in module docstrings and in docs/ run as tests."""

import doctest
import re
from pathlib import Path

import client.note

ROOT = Path(__file__).resolve().parent.parent


def test_note_docstring_example() -> None:
    result = doctest.testmod(client.note)
    assert result.attempted > 0 and result.failed == 0


def _block(doc: str, tag: str) -> str:
    start = doc.index("```" + tag + "\n") + len(tag) + 4
    return doc[start : doc.index("\n```", start)]


def test_leaf_format_worked_example_recomputes() -> None:
    import base64
    import hashlib
    from pathlib import Path

    import orjson

    from client import attest, merkle

    doc = (Path(__file__).resolve().parent.parent / "docs" / "leaf-format.md").read_text()
    pem = _block(doc, "pem example-key")
    envelope = orjson.loads(_block(doc, "json example-envelope"))
    sub = attest.check_dsse(envelope, [pem])
    assert sub.canonical.decode() == _block(doc, "text example-canonical")
    assert sub.leaf == b"\x01\x01" + _block(doc, "text example-leaf-record").encode()
    digest = hashlib.sha256(sub.canonical).hexdigest()
    assert f"/v1/attestations/{digest}" in doc
    assert base64.b64encode(merkle.leaf_hash(sub.leaf)).decode() in doc


def test_example_request_body_is_the_worked_example() -> None:
    from pathlib import Path

    import orjson

    from client import attest

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "leaf-format.md").read_text()
    body = orjson.loads((root / "docs" / "examples" / "dsse-entry.json").read_bytes())
    assert set(body) == {"dsse", "verifiers"}
    assert body["dsse"] == orjson.loads(_block(doc, "json example-envelope"))
    leaf = attest.check_dsse(body["dsse"], body["verifiers"]).leaf
    assert leaf[2:].decode() == _block(doc, "text example-leaf-record")


def test_verifying_guide_commands_run(tmp_path: Path) -> None:
    """docs/verifying.md: every ```sh block, in order, against a real log, exits 0."""
    import os
    import re
    import subprocess
    import sys

    from tests.conftest import ORIGIN
    from tests.serverproc import ServerProc

    text = (ROOT / "docs" / "verifying.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert len(blocks) >= 6
    srv = ServerProc(tmp_path / "tlog-data", args=["--origin", ORIGIN]).start()
    try:
        env = dict(os.environ, POLICY=str(tmp_path / "tlog-data" / "client-policy.toml"),
                   TLOG_CLIENT_STATE=str(tmp_path / "state"),
                   PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        script = "set -euo pipefail\n" + "\n".join(blocks)
        proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "[envelope, artifact, signer]" in proc.stdout
        assert "replayed 2 entries" in proc.stdout
    finally:
        srv.stop()


def test_relative_links_and_images_in_the_docs_exist() -> None:
    """Every relative link or image in README.md and docs/ points at a file in the repository
    (the explorer's screenshots included)."""
    broken = []
    for md in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", md.read_text()):
            if "://" not in target and not (md.parent / target).exists():
                broken.append(f"{md.relative_to(ROOT)}: {target}")
    assert not broken, broken
