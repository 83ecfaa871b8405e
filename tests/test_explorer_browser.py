"""The web explorer in headless Chromium against a real log, witness and TSA: every page
loads and verifies in the browser; a tampered proof, tile, entry, envelope or checkpoint (a
forging proxy in front of the real log) turns the badge red; over plain HTTP to another host
nothing claims to be verified; hostile Statement content stays text; a log whose keys change
under a pinned page is flagged."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from client import merkle
from client.keyfile import write_key
from client.note import Ed25519Signer
from tests import browser as chromium
from tests.attestkit import dsse_body, envelope, statement
from tests.explorer_demo import ORIGIN, SLSA, Demo, demo_log
from tests.proxy import SwitchProxy
from tests.serverproc import ServerProc
from tlog.explorer import config_doc, export
from tlog.openapi import spec
from tlog.storage import LogStore

READY = "body[data-ready='1']"
TIMEOUT = 30_000


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    chromium.require()
    with tempfile.TemporaryDirectory() as tmp, demo_log(Path(tmp)) as d:
        yield d


@pytest.fixture(scope="module")
def browser(demo: Demo) -> Iterator[Any]:
    with chromium.launch() as b:
        yield b


def _documented() -> re.Pattern[str]:
    """The paths the OpenAPI document describes (the explorer's files under /explorer/)."""
    alts = []
    for path in spec()["paths"]:
        pattern = re.escape(path).replace(r"\{path\}", ".+")
        alts.append(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", pattern))
    # The pages' own files: under /explorer/ on the log, at the root of an exported site.
    files = r"/explorer/|(?:/explorer)?/[a-z]+\.(?:js|css|json|html)"
    return re.compile("(?:" + "|".join(alts) + "|" + files + r")\Z")


DOCUMENTED = _documented()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context per test (no cache, no pinned keys), failing on any script error and on
    any request for a path the API documents nowhere."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    undocumented: list[str] = []

    def check(request: Any) -> None:
        path = httpx.URL(request.url).path
        if request.url.startswith("http") and not DOCUMENTED.match(path):
            undocumented.append(request.url)

    p.on("request", check)
    yield p
    context.close()
    assert not errors, errors
    assert not undocumented, undocumented


def visit(page: Any, base: str, route: str) -> None:
    """Open a route and wait until it has rendered and its badges settled."""
    url = f"{base}/explorer/{route}"
    if page.url == url:  # the same route again: load it afresh
        page.reload()
    else:
        if page.url.startswith("http"):  # a route change within the page: not ready until it says so
            page.evaluate("document.body.dataset.ready = ''")
        page.goto(url)
    page.wait_for_selector(READY, state="attached", timeout=TIMEOUT)


def state(page: Any, selector: str) -> str:
    return str(page.locator(selector).first.get_attribute("data-state"))


def shown(page: Any, selector: str) -> str:
    """The text of an element and the full values of the hashes it shows truncated (titles)."""
    titles = page.eval_on_selector_all(f"{selector} [title]", "els => els.map(e => e.title)")
    return str(page.locator(selector).inner_text()) + "\n" + "\n".join(titles)


def api(demo: Demo, path: str, **params: Any) -> Any:
    r = httpx.get(demo.url + path, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_overview_shows_the_verified_checkpoint_and_its_witness(demo: Demo, page: Any) -> None:
    visit(page, demo.url, "#/")
    assert page.locator("#origin").inner_text().strip() == ORIGIN
    assert state(page, "#checkpoint-badge") == "verified"
    checkpoint = httpx.get(demo.url + "/checkpoint", timeout=30).text
    assert page.locator("#tree-size").inner_text().replace(",", "").strip() == checkpoint.split("\n")[1]
    witnesses = page.locator("#witnesses li")
    assert witnesses.count() == 1 and witnesses.first.get_attribute("data-verified") == "true"
    assert page.locator("#activity svg").count() == 1
    for link, path in (("#policy-link", "/v1/log/policy"),
                       ("#trusted-root-link", "/v1/sigstore/trusted-root.json")):
        href = page.locator(link).get_attribute("href")
        assert httpx.get(httpx.URL(page.url).join(href), timeout=30).json() == api(demo, path)
    assert page.locator("#trust-source").inner_text()
    assert page.locator("#key-change-warning").count() == 0


def test_search_proves_each_hit_and_opens_a_verified_entry(demo: Demo, page: Any) -> None:
    visit(page, demo.url, "#/search")
    page.select_option("#search-field", "subject")
    page.fill("#search-q", "sha256:" + demo.artifact)
    page.evaluate("document.body.dataset.ready = ''")
    page.locator("#search-form").locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_selector(READY, state="attached", timeout=TIMEOUT)
    found = api(demo, "/v1/search", subject="sha256:" + demo.artifact, order="desc")
    want = [h["index"] for h in found["hits"]]
    hits = page.locator("#results .hit")
    assert [int(hits.nth(i).get_attribute("data-index")) for i in range(hits.count())] == want
    assert len(want) == 4  # provenance, SBOM, signed digest, Rekor v2 DSSE
    assert [state(page, f"#results .hit >> nth={i} >> .badge") for i in range(len(want))] == ["verified"] * 4
    page.locator(f'#results .hit[data-index="{demo.indexes["provenance"]}"] a').first.click()
    page.wait_for_selector(READY, state="attached", timeout=TIMEOUT)
    assert page.url.endswith(f"#/entry/{demo.indexes['provenance']}")
    assert state(page, "#badge") == "verified"
    checks = page.locator("#checks li")
    assert checks.count() >= 3
    assert all(checks.nth(i).get_attribute("data-ok") == "true" for i in range(checks.count()))
    assert demo.artifact in shown(page, "#statement")
    assert SLSA in page.locator("#statement").inner_text()
    assert "buildDefinition" in page.locator("#predicate").inner_text()
    raw = page.locator("#predicate-raw").text_content()
    assert "resolvedDependencies" in raw
    assert demo.signer.signer_id in shown(page, "#signers")
    leaf = httpx.get(f"{demo.url}/v1/entries/{demo.indexes['provenance']}", timeout=30).content
    assert page.locator("#entry-size").inner_text().replace(",", "").split()[0] == str(len(leaf))
    kinds = {page.locator("#downloads a").nth(i).get_attribute("data-kind")
             for i in range(page.locator("#downloads a").count())}
    assert {"leaf", "envelope", "receipt"} <= kinds


@pytest.mark.parametrize("name", ["digest", "rekor", "sbom"])
def test_every_entry_kind_verifies(demo: Demo, page: Any, name: str) -> None:
    visit(page, demo.url, f"#/entry/{demo.indexes[name]}")
    assert state(page, "#badge") == "verified", page.locator("#checks").inner_text()
    if name == "rekor":
        kinds = [page.locator("#downloads a").nth(i).get_attribute("data-kind")
                 for i in range(page.locator("#downloads a").count())]
        assert "bundle" in kinds
        href = page.locator('#downloads a[data-kind="bundle"]').get_attribute("href")
        bundle = httpx.get(httpx.URL(page.url).join(href), timeout=30)
        assert bundle.status_code == 200
        assert bundle.json()["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"


def test_search_by_keyboard_alone(demo: Demo, page: Any) -> None:
    visit(page, demo.url, "#/search")
    page.focus("#search-field")
    page.select_option("#search-field", "signer")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "search-q"
    page.keyboard.type(demo.signer.signer_id)
    page.evaluate("document.body.dataset.ready = ''")
    page.keyboard.press("Enter")
    page.wait_for_selector(READY, state="attached", timeout=TIMEOUT)
    want = [h["index"] for h in api(demo, "/v1/search", signer=demo.signer.signer_id, order="desc")["hits"]]
    assert page.locator("#results .hit").count() == len(want) >= 2


def test_consistency_between_two_sizes(demo: Demo, page: Any) -> None:
    visit(page, demo.url, "#/consistency?old=5")
    page.fill("#old-size", "5")
    page.evaluate("document.body.dataset.ready = ''")
    page.locator("#consistency-form").locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_selector(READY, state="attached", timeout=TIMEOUT)
    assert state(page, "#consistency-badge") == "verified"
    store = LogStore(demo.log.data_dir, readonly=True)
    try:
        with store.read_txn() as txn:
            root = merkle.tree_root(5, store.node_reader(txn))
    finally:
        store.close()
    assert base64.b64encode(root).decode() in shown(page, "#old-root").replace("\n", "")


def test_timeline_and_its_feed(demo: Demo, page: Any) -> None:
    visit(page, demo.url, f"#/timeline?field=subject&q=sha256:{demo.artifact}")
    assert page.locator("#timeline .hit").count() == 4
    assert {state(page, f"#timeline .hit >> nth={i} >> .badge") for i in range(4)} == {"verified"}
    href = page.locator("a#feed-link").get_attribute("href")
    feed = httpx.get(httpx.URL(page.url).join(href), timeout=30)
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    assert feed.text.count("<entry>") == 4


def test_phone_width_has_no_sideways_scroll(demo: Demo, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 780})
    try:
        page = context.new_page()
        for route in ("#/", f"#/entry/{demo.indexes['provenance']}",
                      f"#/search?field=subject&q=sha256:{demo.artifact}"):
            visit(page, demo.url, route)
            assert page.evaluate("document.documentElement.scrollWidth") <= 360, route
    finally:
        context.close()


def test_statement_content_is_shown_as_text_never_as_markup(demo: Demo, page: Any) -> None:
    hostile = {"note": '<img src=x onerror="document.title=\'pwned\'">', "link": "javascript:alert(1)",
               "home": "https://example.com/ok", "<b>key</b>": "value"}
    body = dsse_body(envelope(statement([hashlib.sha256(b"hostile").hexdigest()], SLSA, predicate=hostile),
                              [demo.signer]), [demo.signer])
    r = httpx.post(demo.url + "/v1/entries", json=body, timeout=30)
    assert r.status_code == 201
    visit(page, demo.url, f"#/entry/{r.json()['index']}")
    assert state(page, "#badge") == "verified"
    assert page.locator("#predicate img").count() == 0 and page.title() != "pwned"
    assert "<img src=x" in page.locator("#predicate").inner_text()
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    assert not [h for h in hrefs if h.lower().startswith("javascript:")]
    assert "https://example.com/ok" in hrefs


# --- a forging proxy in front of the real log ------------------------------------------------


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1:]


def _forge_receipt(body: bytes) -> bytes:
    doc = orjson.loads(body)
    h = base64.b64decode(doc["inclusion_proof"]["hashes"][0])
    doc["inclusion_proof"]["hashes"][0] = base64.b64encode(_flip(h, 0)).decode()
    return orjson.dumps(doc)


def _forge_checkpoint(body: bytes) -> bytes:
    lines = body.decode().split("\n")
    root = base64.b64decode(lines[2])
    lines[2] = base64.b64encode(_flip(root, 5)).decode()
    return "\n".join(lines).encode()


def _forge_envelope(body: bytes) -> bytes:
    doc = orjson.loads(body)
    payload = orjson.loads(base64.b64decode(doc["payload"]))
    payload["predicate"]["runDetails"]["builder"]["id"] = "https://evil.example/builder"
    doc["payload"] = base64.b64encode(orjson.dumps(payload)).decode()
    return orjson.dumps(doc)


def forger(what: str, index: int) -> Callable[[str, bytes], bytes | None]:
    """The proxy's forgery: which answer is replaced, and how."""
    targets: dict[str, tuple[Callable[[str], bool], Callable[[bytes], bytes]]] = {
        # A level-0 hash tile: its first hashes are siblings on the entry's proof path.
        "tile": (lambda path: path.startswith("/tile/0/"), lambda body: _flip(body, 3)),
        "receipt": (lambda path: path == f"/v1/entries/{index}/receipt", _forge_receipt),
        "checkpoint": (lambda path: path == "/checkpoint", _forge_checkpoint),
        "entry": (lambda path: path == f"/v1/entries/{index}", lambda body: _flip(body, len(body) - 3)),
        "envelope": (lambda path: path == f"/v1/entries/{index}/envelope", _forge_envelope),
    }
    match, transform = targets[what]
    return lambda path, body: transform(body) if match(path) else None


FORGERIES = ["checkpoint", "entry", "envelope", "receipt", "tile"]


@pytest.mark.parametrize("what", FORGERIES)
def test_a_forged_answer_turns_the_badge_red(demo: Demo, page: Any, what: str) -> None:
    index = demo.indexes["provenance"]
    proxy = SwitchProxy(demo.url)
    try:
        visit(page, proxy.url, f"#/entry/{index}")  # honest first: the same page is green
        assert state(page, "#badge") == "verified"
        context = page.context.browser.new_context()  # a fresh cache, pinned to nothing
        try:
            forged = context.new_page()
            proxy.forge = forger(what, index)
            visit(forged, proxy.url, f"#/entry/{index}")
            assert proxy.forged >= 1
            assert state(forged, "#badge") == "failed", forged.locator("#checks").inner_text()
            failed = [forged.locator("#checks li").nth(i).get_attribute("data-check")
                      for i in range(forged.locator("#checks li").count())
                      if forged.locator("#checks li").nth(i).get_attribute("data-ok") == "false"]
            assert failed, what
            if what == "checkpoint":
                visit(forged, proxy.url, "#/")
                assert state(forged, "#checkpoint-badge") == "failed"
        finally:
            context.close()
    finally:
        proxy.close()


def test_plain_http_to_another_host_claims_nothing(demo: Demo, browser: Any) -> None:
    """http://explorer.test is not a secure context: WebCrypto is absent, and no badge may be
    green (the page says it cannot verify)."""
    port = httpx.URL(demo.url).port
    b = chromium.launch_another(browser.browser_type, "--host-resolver-rules=MAP explorer.test 127.0.0.1")
    try:
        context = b.new_context()
        page = context.new_page()
        visit(page, f"http://explorer.test:{port}", f"#/entry/{demo.indexes['provenance']}")
        assert page.evaluate("window.isSecureContext") is False
        assert state(page, "#badge") == "unavailable"
        assert "plain HTTP" in page.locator("#badge").inner_text()
        visit(page, f"http://explorer.test:{port}", "#/")
        assert state(page, "#checkpoint-badge") == "unavailable"
        assert page.locator(".badge[data-state=verified]").count() == 0
    finally:
        b.close()


def test_keys_that_change_under_a_pinned_page_are_flagged(demo: Demo, page: Any, tmp_path: Path) -> None:
    """The page pins the policy it first saw; a log answering later with other keys for the
    same origin (a compromised server) gets a warning, and its checkpoints are refused."""
    (tmp_path / "other").mkdir(mode=0o700)
    write_key(tmp_path / "other" / "log.key", Ed25519Signer(ORIGIN, bytes([0x66]) * 32))
    other = ServerProc(tmp_path / "other", args=["--origin", ORIGIN]).start()
    proxy = SwitchProxy(demo.url)
    try:
        visit(page, proxy.url, "#/")
        assert state(page, "#checkpoint-badge") == "verified"
        proxy.target = other.url
        visit(page, proxy.url, "#/")
        assert page.locator("#key-change-warning").count() == 1
        assert state(page, "#checkpoint-badge") == "failed"
    finally:
        proxy.close()
        other.stop()


def test_search_pages_back_to_older_entries(demo: Demo, page: Any) -> None:
    signer = demo.other.signer_id  # 21 entries: 20 attestations and a signed digest
    want = [h["index"] for h in api(demo, "/v1/search", signer=signer, order="desc")["hits"]]
    assert len(want) == 21
    visit(page, demo.url, f"#/search?field=signer&q={signer}")
    indexes = "els => els.map(e => Number(e.dataset.index))"
    first = page.eval_on_selector_all("#results .hit", indexes)
    assert first == want[:20]
    page.evaluate("document.body.dataset.ready = ''")
    page.click("#older")
    page.wait_for_selector(READY, state="attached", timeout=TIMEOUT)
    rest = page.eval_on_selector_all("#results .hit", indexes)
    assert rest == want[20:] and state(page, "#results .hit .badge") == "verified"
    assert page.locator("#older").count() == 0 or page.locator("#older").is_disabled()


def test_an_export_on_another_origin_verifies_with_its_pinned_policy(demo: Demo, page: Any,
                                                                     tmp_path: Path) -> None:
    """`tlog explorer export` served by a plain static server on another origin: the pages
    read the log across origins (CORS) and trust the policy pinned in their config."""
    policy = orjson.loads(httpx.get(demo.url + "/v1/log/policy", timeout=30).content)
    export(tmp_path / "site", config_doc(api=demo.url, tiles=demo.url, policy=policy))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(tmp_path / "site")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        site = f"http://127.0.0.1:{server.server_address[1]}"
        page.goto(f"{site}/#/entry/{demo.indexes['provenance']}")
        page.wait_for_selector(READY, state="attached", timeout=TIMEOUT)
        assert state(page, "#badge") == "verified", page.locator("#checks").inner_text()
        page.evaluate("document.body.dataset.ready = ''")
        page.goto(f"{site}/#/")
        page.wait_for_selector(READY, state="attached", timeout=TIMEOUT)
        assert "pinned in this explorer" in page.locator("#trust-source").inner_text()
        assert state(page, "#checkpoint-badge") == "verified"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


def test_a_tpm_anchored_log_shows_its_attestation_and_verifies_both_signatures(page: Any,
                                                                               tmp_path: Path) -> None:
    """A log whose second checkpoint key is an ECDSA P-256 key in a (software) TPM: every
    checkpoint carries both signatures, the policy requires both, and the page verifies the
    ECDSA one with WebCrypto too; the key attestation is offered for download."""
    from tests.swtpm import Swtpm, require_tpm_tools

    require_tpm_tools()
    tpm = Swtpm(tmp_path / "tpm").start()
    data = tmp_path / "data"
    try:
        init = subprocess.run([sys.executable, "-m", "tlog.cli", "tpm", "init", "--data-dir", str(data),
                               "--tcti", tpm.tcti], capture_output=True, text=True, timeout=60, check=False)
        assert init.returncode == 0, init.stderr
        srv = ServerProc(data, args=["--tpm", tpm.tcti]).start()
        try:
            policy = api_at(srv.url, "/v1/log/policy")
            assert len(policy["log_keys"]) == 2 and policy["log_signatures"] == "all"
            visit(page, srv.url, "#/")
            assert state(page, "#checkpoint-badge") == "verified"
            assert page.locator("#tpm-anchored").count() == 1
            href = page.locator("#key-attestation-link").get_attribute("href")
            assert href.startswith("blob:")
            # The same page refuses a checkpoint whose TPM signature is gone.
            proxy = SwitchProxy(srv.url)
            proxy.forge = lambda path, body: _drop_last_signature(body) if path == "/checkpoint" else None
            try:
                context = page.context.browser.new_context()
                forged = context.new_page()
                visit(forged, proxy.url, "#/")
                assert state(forged, "#checkpoint-badge") == "failed"
                context.close()
            finally:
                proxy.close()
        finally:
            srv.stop()
    finally:
        tpm.stop()


def _drop_last_signature(note: bytes) -> bytes:
    lines = note.decode().split("\n")
    return "\n".join([*lines[:-2], ""]).encode()


def api_at(url: str, path: str) -> Any:
    r = httpx.get(url + path, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()
