"""Prometheus metrics in the text exposition format, with vLLM-style names.

Small on purpose (counters, gauges, histograms with labels) so the image needs no extra package.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections import defaultdict

PREFIX = "llm_runtime:"
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Thread-safe metric store; `render` gives the Prometheus text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._gauges: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._histograms: dict[str, dict[Labels, _Histogram]] = defaultdict(dict)
        self._help: dict[str, tuple[str, str]] = {}

    def inc(self, name: str, value: float = 1.0, help: str = "", **labels: str) -> None:
        with self._lock:
            self._help.setdefault(name, ("counter", help))
            self._counters[name][_labels(labels)] += value

    def set(self, name: str, value: float, help: str = "", **labels: str) -> None:
        with self._lock:
            self._help.setdefault(name, ("gauge", help))
            self._gauges[name][_labels(labels)] = value

    def add(self, name: str, delta: float, help: str = "", **labels: str) -> None:
        with self._lock:
            self._help.setdefault(name, ("gauge", help))
            key = _labels(labels)
            self._gauges[name][key] = self._gauges[name].get(key, 0.0) + delta

    def observe(
        self, name: str, value: float, buckets=LATENCY_BUCKETS, help: str = "", **labels: str
    ) -> None:
        with self._lock:
            self._help.setdefault(name, ("histogram", help))
            key = _labels(labels)
            hist = self._histograms[name].setdefault(key, _Histogram(buckets))
            hist.observe(value)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter or gauge (0 when never set)."""
        with self._lock:
            key = _labels(labels)
            if name in self._counters:
                return self._counters[name].get(key, 0.0)
            return self._gauges.get(name, {}).get(key, 0.0)

    def render(self) -> str:
        self._sample_memory()
        with self._lock:
            lines: list[str] = []
            for name, (kind, help_text) in sorted(self._help.items()):
                full = PREFIX + name
                lines += [f"# HELP {full} {help_text or name}", f"# TYPE {full} {kind}"]
                lines += self._series_lines(full, name)
            return "\n".join(lines) + "\n"

    def _series_lines(self, full: str, name: str) -> list[str]:
        if name in self._histograms:
            return [
                line
                for key, hist in self._histograms[name].items()
                for line in hist.lines(full, key)
            ]
        series = self._counters.get(name) or self._gauges.get(name) or {}
        return [f"{full}{_fmt(key)} {value:g}" for key, value in series.items()]

    def _sample_memory(self) -> None:
        self.set("process_resident_memory_bytes", _rss_bytes(), "Resident memory of the server")
        try:
            import torch

            if torch.cuda.is_available():
                self.set(
                    "gpu_memory_allocated_bytes",
                    torch.cuda.memory_allocated(),
                    "GPU memory held by tensors",
                )
        except ImportError:
            pass


class _Histogram:
    def __init__(self, buckets) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, full: str, key: Labels) -> list[str]:
        out, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f"{full}_bucket{_fmt((*key, ('le', le)))} {running}")
        out.append(f"{full}_sum{_fmt(key)} {self.total:g}")
        out.append(f"{full}_count{_fmt(key)} {self.count}")
        return out


def _labels(labels: dict[str, str]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _fmt(key: Labels) -> str:
    if not key:
        return ""
    body = ",".join(f'{k}="{v}"' for k, v in key)
    return "{" + body + "}"


def _rss_bytes() -> float:
    try:
        import psutil

        return float(psutil.Process(os.getpid()).memory_info().rss)
    except ImportError:
        import resource

        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
