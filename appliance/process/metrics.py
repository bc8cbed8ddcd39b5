"""Counters and latency histograms for /metrics (Prometheus text format)."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS_MS = (50, 100, 200, 300, 500, 750, 1000, 1500, 2500, 5000, 10000)


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.counters: dict[str, float] = defaultdict(float)
        self.hist: dict[str, list[int]] = {}
        self.sums: dict[str, float] = defaultdict(float)
        self.gauges: dict[str, callable] = {}
        self.recent_errors: list[tuple[float, str]] = []

    def inc(self, name: str, by: float = 1.0) -> None:
        with self._lock:
            self.counters[name] += by

    def observe_ms(self, name: str, ms: float) -> None:
        with self._lock:
            counts = self.hist.setdefault(name, [0] * (len(BUCKETS_MS) + 1))
            counts[bisect.bisect_left(BUCKETS_MS, ms)] += 1
            self.sums[name] += ms

    def gauge(self, name: str, fn) -> None:
        self.gauges[name] = fn

    def error(self, when: float, text: str) -> None:
        with self._lock:
            self.counters["hearth_errors_total"] += 1
            self.recent_errors = (self.recent_errors + [(when, text)])[-50:]

    def render(self) -> str:
        """Prometheus text format. A counter name may carry labels: 'name{status="200"}'."""
        out = []
        typed: set[str] = set()
        with self._lock:
            for name, value in sorted(self.counters.items()):
                base = name.split("{", 1)[0]
                if base not in typed:
                    typed.add(base)
                    out.append(f"# TYPE {base} counter")
                out.append(f"{name} {value:g}")
            for name, counts in sorted(self.hist.items()):
                out.append(f"# TYPE {name} histogram")
                total = 0
                for bound, c in zip(BUCKETS_MS, counts):
                    total += c
                    out.append(f'{name}_bucket{{le="{bound / 1000:g}"}} {total}')
                total += counts[-1]
                out.append(f'{name}_bucket{{le="+Inf"}} {total}')
                out.append(f"{name}_sum {self.sums[name] / 1000:.6f}")
                out.append(f"{name}_count {total}")
        for name, fn in sorted(self.gauges.items()):
            try:
                out += [f"# TYPE {name} gauge", f"{name} {float(fn()):g}"]
            except Exception:
                continue
        return "\n".join(out) + "\n"
