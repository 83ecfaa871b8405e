"""A small Prometheus text-format registry: counters, gauges and histograms.

Kept in-process and dependency-free; with several workers each process exposes its own
counters (labelled by `worker`), while tree-wide figures are read from LMDB at scrape time.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    items = [f'{k}="{v}"' for k, v in pairs]
    return "{" + ",".join(items) + "}" if items else ""


class Counter:
    def __init__(self, name: str, help_text: str, labelnames: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, labelnames
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def render(self, extra: tuple[tuple[str, str], ...]) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for labels, value in sorted(self._values.items()):
            pairs = (*zip(self.labelnames, labels, strict=True), *extra)
            out.append(f"{self.name}{_labels(pairs)} {value:g}")
        return out


class Gauge:
    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.name, self.help, self.read = name, help_text, read

    def render(self, extra: tuple[tuple[str, str], ...]) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge",
                f"{self.name}{_labels(extra)} {self.read():g}"]


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value

    def render(self, extra: tuple[tuple[str, str], ...]) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        total = 0
        for bound, count in zip((*self.buckets, float("inf")), self._counts, strict=True):
            total += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f"{self.name}_bucket{_labels((*extra, ('le', le)))} {total}")
        out.append(f"{self.name}_sum{_labels(extra)} {self._sum:g}")
        out.append(f"{self.name}_count{_labels(extra)} {total}")
        return out


M = TypeVar("M", "Counter", "Gauge", "Histogram")


class Registry:
    def __init__(self) -> None:
        self.metrics: list[Counter | Gauge | Histogram] = []

    def add(self, metric: M) -> M:
        self.metrics.append(metric)
        return metric

    def render(self) -> bytes:
        extra = (("worker", str(os.getpid())),)
        lines: list[str] = []
        for m in self.metrics:
            lines.extend(m.render(extra))
        return ("\n".join(lines) + "\n").encode()
