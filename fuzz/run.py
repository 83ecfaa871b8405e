"""Run the fuzz targets under atheris (libFuzzer), keep what adds coverage, report crashes.

    python -m fuzz.run TARGET [TARGET ...] --seconds N [--jobs J]
    python -m fuzz.run --all --seconds 600
    python -m fuzz.run note --runs 2000          # a fixed number of inputs (tests)
    python -m fuzz.run --minimize --all          # shrink kept corpora to a minimal covering set

Each target runs in its own subprocess (with a wall-clock timeout), seeded with its kept
corpus fuzz/corpus/<target>/, which it only reads: new inputs go to a scratch directory.
Afterwards libFuzzer's `-merge=1` copies into the kept corpus only the new inputs that add
coverage, so it grows by what matters; a corpus that outgrows MAX_CORPUS_FILES or
MAX_CORPUS_BYTES is then minimised (libFuzzer's set cover over all its files). Crash inputs are written to the
scratch directory, printed, and the target is restarted for the time left (up to
--max-crashes times). The summary gives, per target, executions, exec/s, libFuzzer's cov
(edges) and ft (features), the kept corpus size, and crashes.

Worker mode (`--worker TARGET -- <libFuzzer args>`) is what the subprocesses run: it
instruments client/, witness/, tlog/ and tsa/ as they are imported, so coverage is of the
project's code, not of the harness. A target is a registered name, or `module:function` for
a target not registered yet (the tests fuzz a deliberately crashing one that way).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
INSTRUMENTED = ["client", "witness", "tlog", "tsa"]
STARTUP_GRACE = 60  # seconds a worker may take beyond --seconds (imports, corpus load, stats)
PER_INPUT_TIMEOUT = 10  # libFuzzer -timeout: one input taking longer is a hang, a finding
RSS_LIMIT_MB = 2048
MAX_CORPUS_FILES = 200  # beyond either, a kept corpus is minimised after the merge
MAX_CORPUS_BYTES = 1 << 20


def _spec(name: str) -> Any:
    """The target `name`: a registered one, or an unregistered `module:function`."""
    from fuzz.targets import TARGETS, Spec

    if name in TARGETS:
        return TARGETS[name]
    module, sep, func = name.partition(":")
    if not sep:
        raise KeyError(f"unknown fuzz target {name!r}")
    fn = getattr(importlib.import_module(module), func)
    return Spec(name.replace(":", "."), fn, 4096)


def _worker(name: str, args: list[str]) -> None:
    """Fuzz (or merge) one target in this process; never returns normally."""
    import atheris

    with atheris.instrument_imports(include=INSTRUMENTED):
        import fuzz.targets  # noqa: F401 - imports (and instruments) the code under test
    spec = _spec(name)
    argv0 = os.environ.get("TLOG_FUZZ_ARGV0", sys.argv[0])  # what libFuzzer re-runs to merge
    if spec.mutator:
        from fuzz.mutators import MUTATORS

        atheris.Setup([argv0, *args], spec.fn, custom_mutator=MUTATORS[spec.mutator])
    else:
        atheris.Setup([argv0, *args], spec.fn)
    atheris.Fuzz()


@dataclass
class Result:
    """What one target's runs added up to."""

    name: str
    executions: int = 0
    seconds: float = 0.0
    cov: int | None = None
    ft: int | None = None
    corpus_files: int = 0
    corpus_bytes: int = 0
    added: int = 0
    crashes: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def exec_per_sec(self) -> int:
        return int(self.executions / self.seconds) if self.seconds else 0


_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", re.M)
_EXECUTED = re.compile(r"^stat::number_of_executed_units: (\d+)", re.M)


def _parse_stats(log: str) -> tuple[int, int | None, int | None]:
    """(executions, cov, ft) from libFuzzer's output (its final stats, else the last status line)."""
    status = _STATUS.findall(log)
    executed = _EXECUTED.findall(log)
    execs = int(executed[-1]) if executed else (int(status[-1][0]) if status else 0)
    if not status:
        return execs, None, None
    return execs, int(status[-1][1]), int(status[-1][2])


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []


def _launcher(work: Path, name: str) -> Path:
    """An executable that re-enters worker mode: libFuzzer re-runs argv[0] for -merge=1."""
    script = work / f"fuzz-{name}.sh"
    python, target = shlex.quote(sys.executable), shlex.quote(name)
    script.write_text(f"#!/bin/sh\ncd {shlex.quote(str(ROOT))} || exit 1\n"
                      f"exec {python} -m fuzz.run --worker {target} -- \"$@\"\n")
    script.chmod(0o755)
    return script


def _run_worker(launcher: Path, args: list[str], log: Path, timeout: float) -> tuple[int | None, str]:
    """Run the worker; (exit code or None on timeout, its output)."""
    env = dict(os.environ, TLOG_FUZZ_ARGV0=str(launcher), PYTHONPATH=str(ROOT))
    with log.open("wb") as out:
        proc = subprocess.Popen([str(launcher), *args], stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                env=env, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the worker and anything libFuzzer started for it
            proc.wait()
            code = None
    return code, log.read_text(errors="replace")


def fuzz_target(name: str, *, seconds: int | None, runs: int | None, corpus_root: Path, work: Path,
                merge: bool, max_crashes: int) -> Result:
    """Fuzz one target for `seconds` (or `runs` inputs), then merge its finds into the corpus."""
    spec = _spec(name)
    res = Result(name)
    corpus = corpus_root / spec.name
    corpus.mkdir(parents=True, exist_ok=True)
    tdir = work / spec.name
    new, crashes = tdir / "new", tdir / "crashes"
    for d in (new, crashes):
        d.mkdir(parents=True, exist_ok=True)
    launcher, flags = _launcher(tdir, name), _flags(spec, tdir)
    deadline = time.monotonic() + (seconds or 0)
    attempt = 0
    while True:
        attempt += 1
        left = max(1, int(deadline - time.monotonic())) if seconds else None
        budget = [f"-runs={runs}"] if runs is not None else [f"-max_total_time={left}"]
        args = [*flags, *budget, "-print_final_stats=1", f"-artifact_prefix={crashes}/",
                str(new), str(corpus)]
        before = set(_files(crashes))
        t0 = time.monotonic()
        code, log = _run_worker(launcher, args, tdir / f"fuzz-{attempt}.log",
                                (left or 0) + STARTUP_GRACE if runs is None else 600)
        res.seconds += time.monotonic() - t0
        execs, cov, ft = _parse_stats(log)
        res.executions += execs
        res.cov, res.ft = cov if cov is not None else res.cov, ft if ft is not None else res.ft
        found = sorted(set(_files(crashes)) - before)
        res.crashes.extend(found)
        for crash in found:
            print(f"[{name}] crash: {crash}\n{_crash_report(log)}", flush=True)
        if code is None:
            res.errors.append(f"worker timed out (log: {tdir / f'fuzz-{attempt}.log'})")
        elif code != 0 and not found:
            res.errors.append(f"worker exited with {code} (log: {tdir / f'fuzz-{attempt}.log'})")
        out_of_time = runs is not None or not seconds or deadline - time.monotonic() < 5
        if not found or out_of_time or len(res.crashes) >= max_crashes or code is None:
            break
    before_files = len(_files(corpus))
    if merge and _files(new):
        code, log = _run_worker(launcher, [*flags, "-merge=1", f"-merge_control_file={tdir / 'merge.ctl'}",
                                           str(corpus), str(new)], tdir / "merge.log", 600)
        if code != 0:
            res.errors.append(f"merge exited with {code} (log: {tdir / 'merge.log'})")
    files = _files(corpus)
    if merge and (len(files) > MAX_CORPUS_FILES or sum(p.stat().st_size for p in files) > MAX_CORPUS_BYTES):
        res.errors.extend(minimize(name, corpus, tdir))
        files = _files(corpus)
    res.added = len(files) - before_files
    res.corpus_files, res.corpus_bytes = len(files), sum(p.stat().st_size for p in files)
    return res


def _flags(spec: Any, tdir: Path) -> list[str]:
    """libFuzzer flags every run of a target gets: input size, time and memory limits, tokens."""
    flags = [f"-max_len={spec.max_len}", f"-timeout={PER_INPUT_TIMEOUT}", f"-rss_limit_mb={RSS_LIMIT_MB}"]
    if spec.tokens:
        dict_file = tdir / "tokens.dict"
        dict_file.write_text("".join(f'"{_dict_escape(t)}"\n' for t in spec.tokens))
        flags.append(f"-dict={dict_file}")
    return flags


def minimize(name: str, corpus: Path, tdir: Path) -> list[str]:
    """Replace `corpus` by a minimal subset of it with the same coverage (libFuzzer prefers
    the smaller of two inputs that cover the same), always keeping the seeds (fuzz.seeds) and
    the crash regressions (files named crash-<sha1>, as libFuzzer names crash inputs); returns
    errors, if any."""
    from fuzz.seeds import build, sha1_name

    fresh = tdir / "minimized"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    seeds = {sha1_name(d) for d in build().get(_spec(name).name, [])}
    for p in _files(corpus):
        if p.name in seeds or p.name.startswith("crash-"):
            shutil.copy2(p, fresh / p.name)  # kept: the merge only adds to what is there
    code, _ = _run_worker(_launcher(tdir, name), [*_flags(_spec(name), tdir), "-merge=1",
                                                   f"-merge_control_file={tdir / 'minimize.ctl'}",
                                                   str(fresh), str(corpus)], tdir / "minimize.log", 900)
    kept = {p.name for p in _files(fresh)}
    if code != 0 or not kept:
        return [f"minimizing exited with {code} (log: {tdir / 'minimize.log'})"]
    for p in _files(corpus):
        if p.name not in kept:
            p.unlink()
    for p in _files(fresh):
        if not (corpus / p.name).exists():
            shutil.copy2(p, corpus / p.name)
    return []


def _dict_escape(token: str) -> str:
    """A libFuzzer dictionary string: printable ASCII as is, the rest as \\xNN escapes."""
    out = []
    for b in token.encode():
        out.append(chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02x}")
    return "".join(out)


def _crash_report(log: str) -> str:
    """The part of a worker's log that says what crashed (the Python traceback)."""
    start = log.find("=== Uncaught Python exception: ===")
    if start < 0:
        start = max(log.find("==ERROR:"), log.find("ERROR: libFuzzer"))
    return log[start:].strip() if start >= 0 else log[-4000:]


def _summary(results: list[Result], work: Path) -> Iterator[str]:
    yield f"{'target':16} {'execs':>10} {'exec/s':>7} {'cov':>6} {'ft':>7} {'corpus':>7} {'KiB':>6} " \
          f"{'added':>5} {'crashes':>7}"
    for r in results:
        yield (f"{r.name:16} {r.executions:>10} {r.exec_per_sec:>7} {r.cov if r.cov is not None else '-':>6} "
               f"{r.ft if r.ft is not None else '-':>7} {r.corpus_files:>7} {r.corpus_bytes // 1024:>6} "
               f"{r.added:>5} {len(r.crashes):>7}")
    for r in results:
        for c in r.crashes:
            yield f"CRASH {r.name}: {c}   (replay: python -m fuzz.run --replay {r.name} {c})"
        for e in r.errors:
            yield f"ERROR {r.name}: {e}"
    yield f"scratch: {work}"


def _replay(name: str, paths: list[str]) -> int:
    """Run inputs through a target in this process, uninstrumented: a crash shows its traceback."""
    from fuzz.targets import TARGETS

    for p in paths:
        TARGETS[name].fn(Path(p).read_bytes())
        print(f"{p}: ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        sep = argv.index("--") if "--" in argv else len(argv)
        _worker(argv[1], argv[sep + 1 :])
        return 0
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="target names (see --list)")
    parser.add_argument("--all", action="store_true", help="every registered target")
    parser.add_argument("--list", action="store_true", help="list the targets and what they cover")
    parser.add_argument("--seconds", type=int, default=60, help="time per target (default 60)")
    parser.add_argument("--runs", type=int, help="a fixed number of inputs per target instead of --seconds")
    parser.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once (default 1)")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="kept corpus root (default fuzz/corpus)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temporary one)")
    parser.add_argument("--no-merge", action="store_true", help="leave the kept corpus as it is")
    parser.add_argument("--max-crashes", type=int, default=3, help="restarts after crashes per target")
    parser.add_argument("--replay", metavar="TARGET", help="replay the given files through TARGET")
    parser.add_argument("--minimize", action="store_true", help="only minimise the targets' kept corpora")
    args, rest = parser.parse_known_args(argv)
    if args.replay:
        return _replay(args.replay, [*args.targets, *rest])
    if rest:
        parser.error(f"unknown arguments {rest}")
    from fuzz.targets import TARGETS

    if args.list:
        for name, spec in TARGETS.items():
            print(f"{name}\n    " + "\n    ".join(spec.doc.splitlines()) + "\n")
        return 0
    names = list(TARGETS) if args.all else args.targets
    unknown = [n for n in names if n not in TARGETS and ":" not in n]
    if unknown or not names:
        parser.error(f"unknown targets {unknown}" if unknown else "name targets or give --all")
    try:
        import atheris  # noqa: F401 - fail here, not in every worker
    except ImportError:
        print("atheris is not installed: pip install atheris==3.0.0", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tlog-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.minimize:
        errors = []
        for name in names:
            before = len(_files(args.corpus / name))
            errors += minimize(name, args.corpus / name, work / name)
            print(f"{name:16} {before} -> {len(_files(args.corpus / name))} files")
        for e in errors:
            print(f"ERROR {e}")
        return 1 if errors else 0
    print(f"fuzzing {len(names)} target(s), {args.runs} runs each" if args.runs else
          f"fuzzing {len(names)} target(s), {args.seconds} s each, {args.jobs} at a time; scratch {work}",
          flush=True)

    def one(name: str) -> Result:
        r = fuzz_target(name, seconds=None if args.runs else args.seconds, runs=args.runs,
                        corpus_root=args.corpus, work=work, merge=not args.no_merge,
                        max_crashes=args.max_crashes)
        print(f"[{name}] {r.executions} execs, {r.exec_per_sec}/s, cov {r.cov}, ft {r.ft}, "
              f"corpus {r.corpus_files} (+{r.added}), crashes {len(r.crashes)}", flush=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, names))
    for line in _summary(results, work):
        print(line)
    if not any(r.crashes for r in results) and not args.workdir and not any(r.errors for r in results):
        shutil.rmtree(work, ignore_errors=True)  # nothing worth keeping in the scratch
        print("(scratch removed: no crashes)")
    return 1 if any(r.crashes or r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
