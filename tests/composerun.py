"""Run the services of deploy/compose/docker-compose.yml as local processes (no Docker engine).

What Docker would do, done here: `docker-compose config` resolves the file (anchors, variable
substitution, absolute bind-mount paths); each service runs its own `command` with the image's
`ENV` plus its `environment`; every path a service sees through a mount (named volume, bind
mount, the image's /opt/tlog venv) is mapped to a host path; service host names and listen
ports are mapped to the 127.0.0.1 URLs the processes print (port 0: no fixed ports). Bind
mounted files are copied with exactly those substitutions and nothing else, so the processes
run from the same configuration files and scripts as the containers would.
Services start in `depends_on` order; one-shot services must exit 0, the others must pass
their own healthcheck command.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "deploy" / "compose"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
_LISTEN = re.compile(r'listening on (http://[^\s"]+)')


def compose_config(env: dict[str, str] | None = None, directory: Path = COMPOSE_DIR) -> dict[str, Any]:
    """The file as Docker Compose resolves it (fails the test if it does not validate)."""
    out = subprocess.run(["docker-compose", "-f", str(directory / "docker-compose.yml"), "config"],
                         capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise AssertionError(f"docker-compose config failed:\n{out.stderr}")
    return yaml.safe_load(out.stdout)


def image_env() -> dict[str, str]:
    """The final stage's ENV of deploy/Dockerfile (KEY=VALUE pairs, with line continuations)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    final = text.split("\nFROM ")[-1]
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def _volume(spec: Any) -> tuple[str, str]:
    """(source, container path) of a short-syntax volume line or a long-syntax mapping."""
    if isinstance(spec, dict):
        return str(spec["source"]), str(spec["target"])
    parts = spec.split(":")
    return parts[0], parts[1]


@dataclass
class Service:
    name: str
    spec: dict[str, Any]
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    log_path: Path | None = None
    mounts: dict[str, Path] = field(default_factory=dict)
    _out: IO[str] | None = None


class ComposeRun:
    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.config = compose_config(env)
        self.services = {n: Service(n, s) for n, s in self.config["services"].items()}
        self.volumes = {n: workdir / "volumes" / n for n in self.config.get("volumes", {})}
        for d in self.volumes.values():
            d.mkdir(parents=True, mode=0o700)
        self.bin = Path(sys.executable).parent

    # --- translation ------------------------------------------------------------------------

    def _mounts(self, svc: Service) -> dict[str, Path]:
        mounts = {"/opt/tlog/bin": self.bin}  # the image's venv: this one
        for spec in svc.spec.get("volumes", []):
            source, target = _volume(spec)
            if source in self.volumes:
                mounts[target] = self.volumes[source]
            else:  # a bind-mounted file: a translated copy
                mounts[target] = self.workdir / "binds" / svc.name / Path(target).name
        return mounts

    def translate(self, svc: Service, text: str) -> str:
        """Container paths -> host paths, service URLs -> the running processes' URLs."""
        for target in sorted(svc.mounts, key=len, reverse=True):
            text = re.sub(re.escape(target) + r"(?![A-Za-z0-9_.-])", str(svc.mounts[target]), text)

        def url(m: re.Match[str]) -> str:
            host = m.group(1)
            other = svc if host in ("127.0.0.1", "localhost") else self.services.get(host)
            if other is None or not other.url:
                return m.group(0)
            return other.url

        text = re.sub(r"http://([a-z0-9.-]+):\d+", url, text)
        return re.sub(r"0\.0\.0\.0:\d+", "127.0.0.1:0", text)

    # --- running ----------------------------------------------------------------------------

    def order(self) -> list[str]:
        done: list[str] = []

        def visit(name: str) -> None:
            if name in done:
                return
            for dep in self.services[name].spec.get("depends_on", {}):
                visit(dep)
            done.append(name)

        for name in sorted(self.services):
            visit(name)
        return done

    def start(self, name: str, timeout: float = 60.0) -> Service:
        svc = self.services[name]
        svc.mounts = self._mounts(svc)
        for spec in svc.spec.get("volumes", []):
            source, target = _volume(spec)
            if source not in self.volumes:
                dest = svc.mounts[target]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(self.translate(svc, Path(source).read_text()))
        env = {**os.environ, **image_env(), **{k: str(v) for k, v in svc.spec.get("environment", {}).items()}}
        env = {k: self.translate(svc, v) for k, v in env.items() if k != "PATH"}
        env["PATH"] = f"{self.bin}:{os.environ['PATH']}"
        argv = [self.translate(svc, a) for a in svc.spec["command"]]
        svc.log_path = self.workdir / f"{name}.log"
        since = svc.log_path.stat().st_size if svc.log_path.exists() else 0  # this run's output only
        svc._out = open(svc.log_path, "a")  # noqa: SIM115 - closed in down()
        svc.proc = subprocess.Popen(argv, stdout=svc._out, stderr=subprocess.STDOUT, text=True, env=env,
                                    cwd=self.workdir, start_new_session=True)
        one_shot = svc.spec.get("restart") == "no"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if one_shot:
                try:
                    rc = svc.proc.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    continue
                assert rc == 0, f"{name} exited {rc}:\n{svc.log_path.read_text()}"
                return svc
            if svc.proc.poll() is not None:
                raise AssertionError(f"{name} exited {svc.proc.returncode}:\n{svc.log_path.read_text()}")
            found = _LISTEN.findall(svc.log_path.read_text()[since:])
            if found:
                svc.url = found[-1].rstrip("/")
                if self.healthy(svc):
                    return svc
            time.sleep(0.1)
        raise AssertionError(f"{name} did not become healthy:\n{svc.log_path.read_text()}")

    def healthy(self, svc: Service) -> bool:
        test = svc.spec["healthcheck"]["test"]
        assert test[0] == "CMD", test
        argv = [self.translate(svc, a) for a in test[1:]]
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
        return subprocess.run(argv, capture_output=True, timeout=30, check=False, cwd=ROOT).returncode == 0

    def up(self) -> ComposeRun:
        for name in self.order():
            self.start(name)
        return self

    def restart(self) -> ComposeRun:
        """`docker-compose down` then `up`: new processes (new ports), the same volumes."""
        self.down()
        for svc in self.services.values():
            svc.proc, svc.url, svc._out = None, "", None
        return self.up()

    def down(self) -> None:
        for svc in reversed([self.services[n] for n in self.order()]):
            if svc.proc is not None and svc.proc.poll() is None:
                os.killpg(svc.proc.pid, signal.SIGTERM)
                try:
                    svc.proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(svc.proc.pid, signal.SIGKILL)
                    svc.proc.wait(timeout=10)
            if svc._out is not None:
                svc._out.close()
                svc._out = None
