"""deploy/: the compose set run as real processes, the offline validators, metrics and logs.

The validators (docker-compose, kubernetes-validate, systemd-analyze, promtool) are installed
by scripts/setup.sh --test; without them these tests skip locally and fail under CI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.attestkit import dsse_body, envelope, make_signer, statement
from tests.composerun import DOCKERFILE, ROOT, ComposeRun, compose_config, image_env
from tlog.config import ServeConfig, load_config

DEPLOY = ROOT / "deploy"
SLSA = "https://slsa.dev/provenance/v1"


def require(tool: str) -> str:
    path = shutil.which(tool) or (shutil.which(tool, path=str(Path(sys.executable).parent)))
    if path is None:
        msg = f"{tool} is not installed (scripts/setup.sh --test installs it)"
        if os.environ.get("REQUIRE_TPM") == "1" or os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, **kw)  # type: ignore[call-overload]


# --- the compose set, as processes ----------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeRun]:
    require("docker-compose")
    run_ = ComposeRun(tmp_path_factory.mktemp("compose"), {"TLOG_ORIGIN": "tlog.example.com/compose-test"})
    try:
        yield run_.up()
    finally:
        run_.down()


def _signer_pem(path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def test_compose_set_gives_cosigned_receipts(stack: ComposeRun, tmp_path: Path) -> None:
    """log-init, 3 witnesses, the log and the monitor from deploy/compose's own files: a
    submission gets a receipt with 2 of 3 witness cosignatures that verifies under the
    policy the monitor built from the published keys, and the monitor reports it."""
    assert set(stack.services) == {"log-init", "witness-1", "witness-2", "witness-3", "tsa", "log", "monitor"}
    log, monitor = stack.services["log"], stack.services["monitor"]
    policy = stack.volumes["monitor"] / "policy.toml"
    stmt = tmp_path / "statement.json"
    stmt.write_bytes(statement(["ab" * 32], predicate_type=SLSA))
    receipt = tmp_path / "receipt.json"
    bin_ = Path(sys.executable).parent
    out = run([str(bin_ / "tlog-client"), "submit", str(stmt), "--key", str(_signer_pem(tmp_path / "k.pem")),
               "--policy", str(policy), "--out", str(receipt)])
    assert out.returncode == 0, out.stdout + out.stderr
    doc = orjson.loads(receipt.read_bytes())
    assert doc.get("witnessed") is True, doc
    cosigners = {line.split()[1] for line in doc["checkpoint"].split("\n") if line.startswith("— witness-")}
    assert len(cosigners) >= 2, doc["checkpoint"]
    out = run([str(bin_ / "tlog-client"), "verify", str(receipt), "--policy", str(policy),
               "--envelope", str(receipt.with_suffix(".dsse.json")), "--no-state"])
    assert out.returncode == 0, out.stdout + out.stderr
    # The monitor follows the log and reports the entry (its predicate type is watched).
    reports = stack.volumes["monitor"] / "reports.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if reports.exists() and f'"index":{doc["index"]}' in reports.read_text().replace(" ", ""):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"monitor did not report entry {doc['index']}:\n{monitor.log_path.read_text()}")  # type: ignore[union-attr]
    assert httpx.get(monitor.url + "/healthz", timeout=10).status_code == 200
    # JSON logs, as configured in log.toml / witness.toml.
    lines = [ln for ln in log.log_path.read_text().splitlines() if ln.startswith("{")]  # type: ignore[union-attr]
    assert lines and all(orjson.loads(ln)["process"].startswith("tlog") for ln in lines)


def test_compose_files_are_what_run(stack: ComposeRun) -> None:
    """The processes ran the files as given: the only changes in the copies are paths and URLs."""
    for svc in stack.services.values():
        for target, copy in svc.mounts.items():
            if copy.is_file() and copy.parent.parent.name == "binds":
                original = next(Path(s.split(":")[0]) for s in svc.spec["volumes"]
                                if isinstance(s, str) and s.split(":")[1] == target)
                want = original.read_text()
                got = copy.read_text()
                # Undo the mapping: every difference must be a mapped path or URL.
                for container, host in sorted(svc.mounts.items(), key=lambda kv: -len(str(kv[1]))):
                    got = got.replace(str(host), container)
                got = re.sub(r"http://127\.0\.0\.1:\d+", "URL", got)
                want = re.sub(r"http://[a-z0-9.-]+:\d+", "URL", want)
                want = re.sub(r"0\.0\.0\.0:\d+", "127.0.0.1:0", want)
                assert got == want, (svc.name, target)


REQUIRED_METRICS = [
    # append rate, batch size, integrate and fsync latency
    "tlog_entries_appended_total", "tlog_batch_size_bucket", "tlog_integrate_seconds_bucket",
    "tlog_fsync_seconds_bucket",
    # checkpoint age (log-signed and cosigned), tree sizes
    "tlog_checkpoint_age_seconds", "tlog_cosigned_checkpoint_age_seconds", "tlog_tree_size",
    "tlog_cosigned_tree_size",
    # witness cosign latency and failures per witness, quorum
    "tlog_witness_cosign_seconds_bucket", "tlog_witness_requests_total", "tlog_witness_failures_total",
    "tlog_witness_up", "tlog_witness_quorum", "tlog_witness_round_cosignatures",
    # HTTP codes and latency
    "tlog_http_responses_total", "tlog_http_request_seconds_bucket",
    # LMDB map usage
    "tlog_lmdb_used_bytes", "tlog_lmdb_map_bytes",
    "tlog_signer_up", "tlog_pending_submissions", "tlog_integrate_failures_total",
    # a full disk
    "tlog_storage_writable", "tlog_data_dir_free_bytes",
    # the derived search index's lag (embedded LMDB storage)
    "tlog_search_index_behind_entries",
]


def _series(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            out.setdefault(name, []).append(line)
    return out


def test_every_metric_appears_after_load(stack: ComposeRun) -> None:
    """After a short load, /metrics of the log, a witness and the monitor carry every metric the
    issue names, with per-witness labels, and promtool accepts the exposition format."""
    log = stack.services["log"]
    signer = make_signer("ed25519")

    def submit(i: int) -> int:  # distinct signed attestations (raw entries are off here)
        stmt = statement([f"{i:064x}"], predicate_type="https://example.com/test/v1")
        body = dsse_body(envelope(stmt, [signer]), [signer])
        return httpx.post(log.url + "/v1/entries", json=body, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(submit, range(40))) <= {200, 201}
    with httpx.Client(timeout=30) as c:
        c.get(log.url + "/no-such-route")
        text = c.get(log.url + "/metrics").text
        witness_text = c.get(stack.services["witness-1"].url + "/metrics").text
        monitor_text = c.get(stack.services["monitor"].url + "/metrics").text
    series = _series(text)
    missing = [m for m in REQUIRED_METRICS if m not in series]
    assert not missing, missing
    names = {re.search(r'witness="([^"]+)"', s).group(1)  # type: ignore[union-attr]
             for s in series["tlog_witness_cosign_seconds_bucket"]}
    assert names == {"witness-1.tlog.example.com", "witness-2.tlog.example.com", "witness-3.tlog.example.com"}
    assert any('code="404"' in s for s in series["tlog_http_responses_total"])
    age = float(series["tlog_cosigned_checkpoint_age_seconds"][0].rsplit(" ", 1)[1])
    assert 0 <= age < 120, age
    used = float(series["tlog_lmdb_used_bytes"][0].rsplit(" ", 1)[1])
    assert used > 0
    w = _series(witness_text)
    for m in ("witness_add_checkpoint_total", "witness_cosign_seconds_bucket", "witness_http_responses_total",
              "witness_http_request_seconds_bucket", "witness_lmdb_used_bytes", "witness_logs"):
        assert m in w, m
    mon = _series(monitor_text)
    for m in ("tlog_monitor_tree_size", "tlog_monitor_lag_entries", "tlog_monitor_http_responses_total",
              "tlog_monitor_split_views_total"):
        assert m in mon, m
    promtool = require("promtool")
    for body in (text, witness_text, monitor_text):
        out = run([promtool, "check", "metrics"], input=body)
        problems = [ln for ln in (out.stdout + out.stderr).splitlines() if "error" in ln.lower()]
        assert not problems, problems


def test_compose_set_survives_a_restart(stack: ComposeRun, tmp_path: Path) -> None:
    """down + up on the same volumes: the same keys and entries, the start-up check against
    the witnesses passes, new entries are cosigned, and the monitor raises no alarm."""
    log_key = (stack.volumes["log-data"] / "data" / "log.key").read_bytes()
    witness_key = (stack.volumes["witness-1"] / "witness.key").read_bytes()
    size = httpx.get(stack.services["log"].url + "/v1/log", timeout=10).json()["tree_size"]
    assert size > 0
    stack.restart()
    assert (stack.volumes["log-data"] / "data" / "log.key").read_bytes() == log_key
    assert (stack.volumes["witness-1"] / "witness.key").read_bytes() == witness_key
    log, monitor = stack.services["log"], stack.services["monitor"]
    assert httpx.get(log.url + "/v1/log", timeout=10).json()["tree_size"] == size
    signer = make_signer("ed25519")
    stmt = statement(["cd" * 32], predicate_type="https://example.com/test/v1")
    r = httpx.post(log.url + "/v1/entries", json=dsse_body(envelope(stmt, [signer]), [signer]), timeout=30)
    assert r.status_code == 201 and r.json()["index"] == size and r.json()["witnessed"] is True, r.text
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = httpx.get(monitor.url + "/healthz", timeout=10)
        if health.json()["logs"] and next(iter(health.json()["logs"].values()))["processed"] > size:
            break
        time.sleep(0.2)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text


# --- validators ------------------------------------------------------------------------------


def test_compose_file_validates() -> None:
    require("docker-compose")
    config = compose_config()
    for name, svc in config["services"].items():
        assert svc.get("read_only") is True and svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
    assert set(config["volumes"]) >= {"log-data", "witness-1", "witness-2", "witness-3", "monitor"}


def test_dockerfile_runs_as_non_root_with_a_volume_and_healthcheck() -> None:
    """No engine here to build it: check what can be checked offline."""
    text = DOCKERFILE.read_text()
    final = text.split("\nFROM ")[-1]
    users = re.findall(r"^USER (\S+)", final, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert re.search(r"^VOLUME ", final, re.MULTILINE) and re.search(r"^HEALTHCHECK ", final, re.MULTILINE)
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for part in src.split():
            assert (ROOT / part).exists(), part
    assert image_env()["TLOG_LOG_FORMAT"] == "json"
    scripts = {"tlog", "witness", "tlog-client"}
    cmd = re.findall(r'^CMD \["([^"]+)"', final, re.MULTILINE)
    assert cmd and cmd[-1] in scripts


def test_kubernetes_manifests_validate(tmp_path: Path) -> None:
    tool = require("kubernetes-validate")
    files = sorted((DEPLOY / "k8s").glob("*.yaml"))
    assert len(files) >= 3
    out = run([tool, "--strict", *map(str, files)])
    assert out.returncode == 0, out.stdout + out.stderr
    # The check can fail: a misplaced field in the StatefulSet is refused.
    bad = tmp_path / "bad.yaml"
    manifest = (DEPLOY / "k8s" / "log.yaml").read_text()
    bad.write_text(manifest.replace("  serviceName: tlog", "  servicename: tlog"))
    out = run([tool, "--strict", str(bad)])
    assert out.returncode != 0, out.stdout + out.stderr
    import yaml

    kinds: dict[str, dict[str, object]] = {}
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                kinds.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    log = kinds["StatefulSet"]["tlog"]
    spec = log["spec"]  # type: ignore[index]
    assert spec["replicas"] == 1 and spec["volumeClaimTemplates"]  # a single writer, on a PVC
    container = spec["template"]["spec"]["containers"][0]
    assert {"readinessProbe", "livenessProbe", "resources"} <= set(container)
    # /healthz is 503 while the log is read-only (disk full, TPM down): readiness only. A
    # liveness or start-up probe on it would restart a log that recovers by itself.
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/checkpoint", probe
    assert len([n for n in kinds["Deployment"] if n.startswith("witness-")]) == 3
    for dep in kinds["Deployment"].values():
        c = dep["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
        assert "resources" in c and "readinessProbe" in c
    assert {"tlog", "witness-1", "witness-2", "witness-3"} <= set(kinds["Service"])
    # Every pod: scraped, named as the alert rules' jobs, no Service variables in its
    # environment (a Service named tlog would set TLOG_PORT and friends).
    for kind in ("StatefulSet", "Deployment"):
        for dep in kinds[kind].values():
            pod = dep["spec"]["template"]  # type: ignore[index]
            assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
            name = pod["metadata"]["labels"]["app.kubernetes.io/name"]
            assert name in {"tlog", "tlog-witness", "tlog-monitor"}
            assert pod["spec"]["enableServiceLinks"] is False
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "kubernetes-scrape.yml").read_text())
    relabel = scrape["scrape_configs"][0]["relabel_configs"]
    assert {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "target_label": "job"} in relabel


# --- the scaled-out shape (docs/scale-out.md): deploy/compose-scale, deploy/k8s-scale ------

COMPOSE_SCALE = DEPLOY / "compose-scale"
K8S_SCALE = DEPLOY / "k8s-scale"
# The compose set's secrets have no defaults; these stand in for an .env file.
SCALE_ENV = {"S3_SECRET_KEY": "compose-test-s3-secret", "POSTGRES_PASSWORD": "compose-test-pg-password"}
# What a scaled-out log's sequencers export (tlog/dist/sequencer.py), beyond REQUIRED_METRICS.
SEQUENCER_METRICS = {"tlog_leader", "tlog_leader_epoch", "tlog_leader_takeovers_total"}


def _serve_settings(toml: Path, argv: list[str], env: dict[str, str]) -> ServeConfig:
    """What `tlog serve` in that container would run with: the image's ENV and the
    container's environment over the file, then --role (tlog's own loader, strictly)."""
    assert argv[:2] == ["tlog", "serve"], argv
    role = argv[argv.index("--role") + 1] if "--role" in argv else None
    return load_config(toml, {"role": role}, env={**image_env(), **env})


def _dsn_host(dsn: str) -> str:
    return dict(part.split("=", 1) for part in dsn.split())["host"]


def test_scale_compose_file_validates(tmp_path: Path) -> None:
    """deploy/compose-scale: `docker-compose config` resolves it; PostgreSQL, a real S3
    server, the one-shot bucket and key jobs, two sequencers and two front ends; every tlog
    process's settings load as storage = "s3" with tlog's own loader and point at the
    services of this file; sequencers mount the key read-only, front ends hold no key."""
    from urllib.parse import urlsplit

    require("docker-compose")
    config = compose_config(SCALE_ENV, COMPOSE_SCALE)
    services = config["services"]
    assert set(services) == {"postgres", "s3", "bucket-init", "key-init", "sequencer-1", "sequencer-2",
                             "frontend-1", "frontend-2"}
    assert services["postgres"]["image"].split(":")[1].startswith("15")
    assert services["s3"]["image"].startswith("quay.io/ceph/")  # a real S3 server: Ceph RGW
    assert set(config["volumes"]) >= {"pg-data", "ceph-data", "log-key", "frontend-1", "frontend-2"}
    image = services["key-init"]["image"]
    tlog_services = {n: s for n, s in services.items() if s["image"] == image}
    assert set(tlog_services) == {"key-init", "sequencer-1", "sequencer-2", "frontend-1", "frontend-2"}
    for name in (*tlog_services, "bucket-init"):
        svc = services[name]
        assert svc.get("read_only") is True and svc.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in svc.get("security_opt", []), name
    for name in ("bucket-init", "key-init"):
        assert services[name]["restart"] == "no", name
    bucket = services["bucket-init"]["environment"]["S3_BUCKET"]
    assert urlsplit(services["bucket-init"]["environment"]["S3_ENDPOINT"]).hostname in services
    roles: dict[str, str] = {}
    for name, svc in tlog_services.items():
        argv = svc["command"]
        if argv[:2] != ["tlog", "serve"]:
            continue
        target = argv[argv.index("--config") + 1]
        toml = next(Path(v.split(":")[0]) for v in svc["volumes"] if v.split(":")[1] == target)
        assert toml.parent == COMPOSE_SCALE, toml
        settings = _serve_settings(toml, argv, svc["environment"])
        roles[name] = settings.role
        assert settings.storage == "s3" and settings.s3_bucket == bucket, name
        assert urlsplit(settings.s3_endpoint).hostname in services, settings.s3_endpoint
        assert _dsn_host(settings.postgres_dsn) in services and "password" not in settings.postgres_dsn
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD"} <= set(svc["environment"]), name
        assert settings.origin == services["key-init"]["environment"]["TLOG_ORIGIN"], name
        assert f"127.0.0.1:{settings.port}/healthz" in svc["healthcheck"]["test"][-1], name
        key_mounts = [v for v in svc["volumes"] if v.split(":")[0] == "log-key"]
        if settings.role == "sequencer":
            assert key_mounts and all(v.endswith(":ro") for v in key_mounts), name
            assert settings.data_dir.startswith(key_mounts[0].split(":")[1] + "/"), name
        else:
            assert not key_mounts, name  # front ends need no key
            assert "sequencer-1" in svc["depends_on"], name  # the first sequencer creates the log
    assert sorted(roles.values()) == ["frontend", "frontend", "sequencer", "sequencer"]
    # key-init puts the key where the sequencers look for it, mode 0600, and keeps it on a rerun.
    script = COMPOSE_SCALE / "key-init.sh"
    seq_dir = _serve_settings(COMPOSE_SCALE / "log.toml", services["sequencer-1"]["command"],
                              services["sequencer-1"]["environment"]).data_dir
    assert seq_dir == "/var/lib/tlog/data" and "DATA_DIR:-/var/lib/tlog/data" in script.read_text()
    env = {**os.environ, "TLOG_ORIGIN": services["key-init"]["environment"]["TLOG_ORIGIN"],
           "DATA_DIR": str(tmp_path / "data"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    keys = []
    for _ in range(2):
        out = run(["sh", str(script)], env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        keys.append((tmp_path / "data" / "log.key").read_bytes())
    assert keys[0] == keys[1]
    assert (tmp_path / "data" / "log.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "log.vkey").read_text().startswith(env["TLOG_ORIGIN"] + "+")
    out = run(["sh", "-n", str(COMPOSE_SCALE / "bucket-init.sh")])
    assert out.returncode == 0, out.stderr
    # The secrets have no defaults: without them the file does not resolve.
    if not set(SCALE_ENV) & set(os.environ):
        with pytest.raises(AssertionError, match=r"S3_SECRET_KEY|POSTGRES_PASSWORD"):
            compose_config({}, COMPOSE_SCALE)


def test_scale_kubernetes_manifests_validate(tmp_path: Path) -> None:
    """deploy/k8s-scale passes the same offline check as deploy/k8s; front ends are a
    Deployment of 3 behind a Service with a PodDisruptionBudget, sequencers a Deployment of 2
    (the lease makes that safe); the ConfigMap's settings load as storage = "s3" for each
    role; the key comes from a read-only Secret (mode 0400) and reaches the sequencers only."""
    tool = require("kubernetes-validate")
    files = sorted(K8S_SCALE.glob("*.yaml"))
    assert {f.name for f in files} >= {"namespace.yaml", "config.yaml", "frontend.yaml", "sequencer.yaml"}
    out = run([tool, "--strict", *map(str, files)])
    assert out.returncode == 0, out.stdout + out.stderr
    # The check can fail: a misspelt field in the front ends' Deployment is refused.
    bad = tmp_path / "bad.yaml"
    manifest = (K8S_SCALE / "frontend.yaml").read_text()
    bad.write_text(manifest.replace("  replicas: 3", "  replica: 3"))
    out = run([tool, "--strict", str(bad)])
    assert out.returncode != 0, out.stdout + out.stderr
    import yaml

    def load(paths: list[Path]) -> dict[str, dict[str, dict]]:  # type: ignore[type-arg]
        kinds: dict[str, dict[str, dict]] = {}  # type: ignore[type-arg]
        for f in paths:
            for doc in yaml.safe_load_all(f.read_text()):
                if doc:
                    kinds.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
        return kinds

    kinds = load(files)
    # Beside deploy/k8s in the same namespace: no object of the same kind and name.
    single = load(sorted((DEPLOY / "k8s").glob("*.yaml")))
    clashes = {(k, n) for k in kinds for n in kinds[k] if n in single.get(k, {})} - {("Namespace", "tlog")}
    assert not clashes, clashes
    fe, seq = kinds["Deployment"]["tlog-frontend"], kinds["Deployment"]["tlog-sequencer"]
    assert fe["spec"]["replicas"] == 3 and seq["spec"]["replicas"] == 2

    def matches(selector: dict[str, str], dep: dict) -> bool:  # type: ignore[type-arg]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector.items())

    service = kinds["Service"]["tlog-frontend"]
    assert matches(service["spec"]["selector"], fe) and not matches(service["spec"]["selector"], seq)
    assert "tlog-sequencer" not in kinds["Service"]  # nothing connects to the sequencers
    for single_service in single["Service"].values():  # nor does deploy/k8s's Service select them
        assert not matches(single_service["spec"]["selector"], fe)
        assert not matches(single_service["spec"]["selector"], seq)
    pdb = kinds["PodDisruptionBudget"]["tlog-frontend"]
    assert matches(pdb["spec"]["selector"]["matchLabels"], fe) and 0 < pdb["spec"]["minAvailable"] < 3
    config_map = kinds["ConfigMap"]["tlog-scale-config"]
    toml = tmp_path / "log.toml"
    toml.write_text(config_map["data"]["log.toml"])
    alert_rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    job_names = set(re.findall(r"\btlog-(?:frontend|sequencer)\b", alert_rules))
    for dep, role in ((fe, "frontend"), (seq, "sequencer")):
        assert matches(dep["spec"]["selector"]["matchLabels"], dep)
        pod = dep["spec"]["template"]
        spec = pod["spec"]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        # The scrape job is named after this label: the names the alert rules expect.
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] in job_names
        assert spec["enableServiceLinks"] is False
        ctx = spec["securityContext"]
        assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault"
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True, c["name"]
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], c["name"]
            assert sc.get("runAsUser", ctx["runAsUser"]) != 0 and "resources" in c, c["name"]
        c = spec["containers"][0]
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
        env = {e["name"]: e for e in c["env"]}
        for secret_var in ("AWS_ACCESS_KEY_ID", "PGPASSWORD"):
            assert "secretKeyRef" in env[secret_var]["valueFrom"], secret_var
        settings = _serve_settings(toml, c["args"], {k: e["value"] for k, e in env.items() if "value" in e})
        assert settings.storage == "s3" and settings.role == role
        assert f":{settings.port}" in f":{c['ports'][0]['containerPort']}"
        assert "password" not in settings.postgres_dsn
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert volumes[mounts["/etc/tlog/log.toml"]["name"]]["configMap"]["name"] == "tlog-scale-config"
        secret_dir = str(Path(settings.s3_secret_access_key_file).parent)
        s3 = volumes[mounts[secret_dir]["name"]]["secret"]
        assert s3["secretName"] == "tlog-s3" and mounts[secret_dir]["readOnly"] is True
        assert {i["path"] for i in s3["items"]} == {Path(settings.s3_secret_access_key_file).name}
        key_volumes = [v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "tlog-log-key"]
        if role == "frontend":
            assert not key_volumes  # front ends hold no key
            # Liveness must not follow /healthz: it is 503 while PostgreSQL or the leader is away.
            assert c["livenessProbe"]["httpGet"]["path"] != "/healthz"
            continue
        (key,) = key_volumes
        assert key["secret"]["defaultMode"] == 0o400
        init = spec["initContainers"][0]
        key_mount = next(m for m in init["volumeMounts"] if m["name"] == key["name"])
        assert key_mount["readOnly"] is True
        assert all(m["name"] != key["name"] for m in c["volumeMounts"])  # only the init container sees it
        data = next(m for m in c["volumeMounts"] if settings.data_dir.startswith(m["mountPath"] + "/"))
        assert data["readOnly"] is True and volumes[data["name"]]["emptyDir"]["medium"] == "Memory"
        script_text = " ".join(init["args"])
        assert f"{settings.data_dir}/log.key" in script_text and "-m 0600" in script_text
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"  # always 200 on a sequencer
    assert kinds["PodDisruptionBudget"]["tlog-sequencer"]["spec"]["maxUnavailable"] == 1


def test_systemd_units_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` on every unit, in a root holding the units' binaries and
    systemd's own units; any warning about our files fails the test."""
    tool = require("systemd-analyze")
    units = sorted(u for u in (DEPLOY / "systemd").iterdir() if u.suffix in (".service", ".timer"))
    assert {u.name for u in units} >= {"tlog.service", "witness@.service", "tlog-monitor.service",
                                       "tlog-fsck.service", "tlog-fsck.timer", "tlog-tsa.service"}
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    bindir = root / "opt/tlog/.venv/bin"
    bindir.mkdir(parents=True)
    for exe in ("tlog", "witness", "tlog-client", "tlog-tsa"):
        (bindir / exe).write_text("#!/bin/sh\n")
        (bindir / exe).chmod(0o755)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                     "tlog:x:999:999::/var/lib/tlog:/usr/sbin/nologin\n")
    (root / "etc/group").write_text("root:x:0:\ntlog:x:999:\n")
    for u in units:
        shutil.copy(u, root / "etc/systemd/system" / u.name)
        text = u.read_text()
        for key in ("NoNewPrivileges=yes", "ProtectSystem=strict", "User=tlog"):
            if u.suffix == ".service":
                assert key in text, (u.name, key)
    targets = [str(root / "etc/systemd/system" / (u.name.replace("@", "@demo") if "@" in u.name else u.name))
               for u in units]
    for u in units:
        if "@" in u.name:
            shutil.copy(u, root / "etc/systemd/system" / u.name.replace("@", "@demo"))

    def problems(paths: list[str]) -> tuple[int, list[str]]:
        out = run([tool, f"--root={root}", "verify", *paths])
        return out.returncode, [ln for ln in (out.stdout + out.stderr).splitlines()
                                if any(Path(t).name in ln for t in paths) or "/etc/systemd/system/" in ln]

    rc, ours = problems(targets)
    assert rc == 0 and not ours, ours
    # The check can fail: a misspelt hardening value is reported.
    broken = root / "etc/systemd/system/broken.service"
    broken.write_text((DEPLOY / "systemd" / "tlog.service").read_text().replace(
        "ProtectSystem=strict", "ProtectSystem=stritc"))
    rc, ours = problems([str(broken)])
    assert any("stritc" in ln for ln in ours), ours


def test_alert_rules_check_and_fire() -> None:
    """promtool checks the rules and runs their unit tests (each alert fires on its condition
    and stays quiet otherwise); every metric a rule uses is one the processes export."""
    promtool = require("promtool")
    rules = DEPLOY / "prometheus" / "alerts.yml"
    out = run([promtool, "check", "rules", str(rules)])
    assert out.returncode == 0, out.stdout + out.stderr
    out = run([promtool, "test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml")])
    assert out.returncode == 0, out.stdout + out.stderr
    out = run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")])
    assert out.returncode == 0, out.stdout + out.stderr
    import yaml

    doc = yaml.safe_load(rules.read_text())
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert {"TlogCheckpointStale", "TlogWitnessPolicyUnmet", "TlogLMDBMapNearlyFull",
            "TlogFsckFailed", "TlogNoSequencerLeader", "TlogSequencerFlapping"} <= alerts
    used = set(re.findall(r"\b((?:tlog|witness)_[a-z_]+)", rules.read_text()))
    exported = set(REQUIRED_METRICS) | {"tlog_fsck_ok", "tlog_fsck_last_run_timestamp_seconds",
                                        "tlog_monitor_split_views_total", "tlog_monitor_lag_entries",
                                        "tlog_monitor_last_ok_seconds", "witness_add_checkpoint_total",
                                        *SEQUENCER_METRICS}
    exported |= {m.removesuffix("_bucket") for m in exported}
    assert used <= exported, used - exported
    # Every runbook link points at a section that exists.
    for runbook in {r["annotations"]["runbook"] for g in doc["groups"] for r in g["rules"]}:
        path, _, anchor = runbook.partition("#")
        text = (ROOT / path).read_text()
        headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                    for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}
        assert not anchor or anchor in headings, runbook
