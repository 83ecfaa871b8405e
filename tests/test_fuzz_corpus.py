"""The fuzzing set-up (fuzz/, docs/fuzzing.md) in the normal suite.

Every kept corpus file replays through its target without a crash, so an input that once
crashed a parser (added to the corpus when it was fixed) stays a regression test; every
target is registered with a docstring and a non-empty, small corpus holding its seeds; and
short real atheris runs work end to end, including the merge into the kept corpus and the
report of a crash. atheris is a test dependency: without it these tests fail, not skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz import seeds
from fuzz.run import MAX_CORPUS_BYTES, MAX_CORPUS_FILES
from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def _corpus(name: str) -> list[Path]:
    d = CORPUS / name
    return sorted(p for p in d.iterdir() if p.is_file()) if d.is_dir() else []


def test_atheris_is_installed() -> None:
    import atheris

    assert callable(atheris.Fuzz) and callable(atheris.instrument_imports)


def test_every_target_is_registered_with_a_small_corpus_named_as_libfuzzer_names_it() -> None:
    dirs = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert dirs == set(TARGETS), "a corpus directory without a target, or a target without one"
    for name, spec in TARGETS.items():
        files = _corpus(name)
        assert spec.doc, f"{name} has no docstring saying what it covers"
        assert files, f"{name} has an empty corpus: run python -m fuzz.seeds"
        assert len(files) <= MAX_CORPUS_FILES and sum(p.stat().st_size for p in files) <= MAX_CORPUS_BYTES, \
            f"{name}'s corpus is too large: python -m fuzz.run --minimize {name}"
        for p in files:  # crash-<sha1>: a crash regression, which minimising never drops
            assert p.name.removeprefix("crash-") == hashlib.sha1(p.read_bytes()).hexdigest(), \
                f"{p} is not named by the SHA-1 of its bytes (as libFuzzer names its inputs)"


def test_the_seeds_are_deterministic_and_kept() -> None:
    """Rebuilding the seeds gives the files already in the corpus: real objects that verify
    with the fixture keys, which is where the fuzzer starts from."""
    built = seeds.build()
    assert set(built) == set(TARGETS)
    for name, items in built.items():
        have = {p.name for p in _corpus(name)}
        missing = [seeds.sha1_name(d) for d in items if seeds.sha1_name(d) not in have]
        assert not missing, f"{name}: seeds not in the corpus (python -m fuzz.seeds): {missing}"


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_every_corpus_file_replays_without_a_crash(name: str) -> None:
    fn = TARGETS[name].fn
    for p in _corpus(name):
        try:
            fn(p.read_bytes())
        except Exception as exc:
            raise AssertionError(f"{p.relative_to(ROOT)} crashes target {name}: {exc!r}") from exc


def _fuzz_run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzz.run", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_a_short_atheris_run_fuzzes_and_merges_new_coverage(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    for name in ("note", "tile_path"):
        shutil.copytree(CORPUS / name, corpus / name)
    before = {n: len(list((corpus / n).iterdir())) for n in ("note", "tile_path")}
    proc = _fuzz_run("note", "tile_path", "--runs", "3000", "--corpus", str(corpus),
                     "--workdir", str(tmp_path / "work"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
            if line.split()[:1] in (["note"], ["tile_path"])}
    for name in ("note", "tile_path"):
        execs, cov = int(rows[name][1]), int(rows[name][3])
        assert execs >= 3000 and cov > 0, proc.stdout
        after = len(list((corpus / name).iterdir()))
        assert after >= before[name] and int(rows[name][7]) == after - before[name], proc.stdout
    assert (tmp_path / "work" / "note" / "merge.log").exists() or rows["note"][7] == "0"


def crash_on_fuzz(data: bytes) -> None:
    """A target with a bug, for the next test: a KeyError on inputs starting with FU."""
    if data.startswith(b"FU"):
        raise KeyError("boom")


def test_a_crash_is_reported_with_its_input(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus" / "tests.test_fuzz_corpus.crash_on_fuzz"
    corpus.mkdir(parents=True)
    (corpus / "seed").write_bytes(b"FUZZ")
    proc = _fuzz_run("tests.test_fuzz_corpus:crash_on_fuzz", "--seconds", "20", "--max-crashes", "1",
                     "--corpus", str(tmp_path / "corpus"), "--workdir", str(tmp_path / "work"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "KeyError" in proc.stdout and "CRASH" in proc.stdout, proc.stdout
    crashes = list((tmp_path / "work" / "tests.test_fuzz_corpus.crash_on_fuzz" / "crashes").iterdir())
    assert len(crashes) == 1 and crashes[0].read_bytes().startswith(b"FU")
