"""A demo log for the web explorer: a real log, witness and TSA with realistic entries (SLSA
provenance, an SPDX SBOM, signed digests, a Rekor v2 DSSE entry), used by the browser tests
and by the screenshot command:

    .venv/bin/python -m tests.explorer_demo --screenshots docs/img/explorer

(`scripts/setup.sh --test` installs Chromium and Playwright first; docs/explorer.md.)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from client.note import Ed25519Signer
from tests import sigstorekit as kit
from tests.attestkit import Signer, dsse_body, envelope, hashedrekord, make_signer, statement
from tests.serverproc import ServerProc, TSAProc, WitnessProc, witnessed_log

ORIGIN = "log.example.dev/attest"
LOG_KEY = Ed25519Signer(ORIGIN, bytes([0x41]) * 32)
WITNESS = "witness.example.org/w1"
WITNESS_SEED = bytes([0x42]) * 32
SLSA = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"
ARTIFACT = b"example-app 1.4.2 linux/amd64\n"


def provenance(n: int) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"ref": f"refs/tags/v1.4.{n}",
                                                "repository": "https://github.com/example/app",
                                                "path": ".github/workflows/release.yml"}},
            "resolvedDependencies": [{"uri": f"git+https://github.com/example/app@refs/tags/v1.4.{n}",
                                      "digest": {"gitCommit": hashlib.sha1(b"%d" % n).hexdigest()}}]},
        "runDetails": {"builder": {"id": "https://github.com/example/app/.github/workflows/release.yml"},
                       "metadata": {"invocationId": f"https://github.com/example/app/actions/runs/{9000 + n}",
                                    "startedOn": "2026-12-07T06:00:00Z"}},
    }


@dataclass
class Demo:
    log: ServerProc
    witness: WitnessProc
    tsa: TSAProc
    signer: Signer
    artifact: str  # sha256 hex of ARTIFACT: the subject with several attestations
    indexes: dict[str, int] = field(default_factory=dict)  # name -> index of notable entries
    other: Signer = field(default_factory=lambda: make_signer("ecdsa-p256"))  # signs the filler

    @property
    def url(self) -> str:
        return self.log.url


def _post(url: str, path: str, body: Any) -> dict[str, Any]:
    r = httpx.post(url + path, json=body, timeout=30)
    if r.status_code != 201:
        raise RuntimeError(f"{path}: {r.status_code} {r.text}")
    return r.json()  # type: ignore[no-any-return]


def populate(demo: Demo, filler: int = 20) -> None:
    """Entries of every kind; ARTIFACT gets provenance, an SBOM and a signed digest."""
    s, url = demo.signer, demo.url
    other = demo.other
    for i in range(filler):
        digest = hashlib.sha256(b"example-lib %d" % i).hexdigest()
        _post(url, "/v1/entries", dsse_body(envelope(statement([digest], SLSA, predicate=provenance(i)),
                                                     [other]), [other]))
    doc = _post(url, "/v1/entries", dsse_body(
        envelope(statement([demo.artifact], SLSA, predicate=provenance(2)), [s]), [s]))
    demo.indexes["provenance"] = doc["index"]
    sbom = {"spdxVersion": "SPDX-2.3", "name": "example-app", "packages": [
        {"name": "openssl", "versionInfo": "3.0.15"}, {"name": "zlib", "versionInfo": "1.3.1"}]}
    demo.indexes["sbom"] = _post(url, "/v1/entries", dsse_body(
        envelope(statement([demo.artifact], SPDX, predicate=sbom), [s]), [s]))["index"]
    demo.indexes["digest"] = _post(url, "/v1/entries", {
        "hashedrekord": hashedrekord(hashlib.sha256(ARTIFACT).digest(), other)})["index"]
    key = ec.generate_private_key(ec.SECP256R1())
    env = kit.dsse_envelope(key, kit.statement(demo.artifact))
    demo.indexes["rekor"] = int(_post(url, "/api/v2/log/entries", kit.dsse_request(key, env))["logIndex"])


@contextlib.contextmanager
def demo_log(tmp: Path, filler: int = 20) -> Iterator[Demo]:
    """A log with one witness (cosigned checkpoints) and a TSA, populated."""
    with witnessed_log(tmp, LOG_KEY, WITNESS, WITNESS_SEED) as (log, witness, tsa):
        demo = Demo(log, witness, tsa, make_signer("ed25519"), hashlib.sha256(ARTIFACT).hexdigest())
        populate(demo, filler)
        yield demo


PAGES = [  # (file name, route) of the screenshots docs/explorer.md shows
    ("overview", "#/"),
    ("search", "#/search?field=subject&q=sha256:{artifact}"),
    ("entry", "#/entry/{provenance}"),
    ("consistency", "#/consistency?old=5&new="),
    ("timeline", "#/timeline?field=subject&q=sha256:{artifact}"),
]


PHONE = ("overview", "entry")  # also photographed at a phone's width


def screenshots(demo: Demo, out: Path) -> list[Path]:
    from tests.browser import launch

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with launch() as browser:
        for width, height, suffix in ((1280, 900, ""), (390, 844, "-phone")):
            context = browser.new_context(viewport={"width": width, "height": height},
                                          device_scale_factor=1, color_scheme="light")
            page = context.new_page()
            for name, route in PAGES:
                if suffix and name not in PHONE:
                    continue
                page.goto(f"{demo.url}/explorer/{route.format(artifact=demo.artifact, **demo.indexes)}")
                page.wait_for_selector("body[data-ready='1']", state="attached", timeout=30_000)
                path = out / f"{name}{suffix}.png"
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
            context.close()
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--screenshots", type=Path, required=True, help="directory for the PNG files")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, demo_log(Path(tmp)) as demo:
        for path in screenshots(demo, args.screenshots):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
