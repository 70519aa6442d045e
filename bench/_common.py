"""What the benchmarks share: the peak memory of a process tree, and paths timed in turn.

Import it as `bench._common` with the repository root on sys.path (the scripts take bench/ off
sys.path: bench/tokenize.py would shadow the standard library's `tokenize`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

# The real-text corpus the benchmarks read (books, the extraction benchmark, ...): the folder
# `LMFORGE_CORPUS` names, else a `shared/corpus` beside the clone (the team's machines have one).
CORPUS = Path(
    os.environ.get("LMFORGE_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus"
)


class PeakRss:
    """Samples, every `interval` seconds in a background thread, the resident memory of this
    process and (with `children`) all its descendants. `peak` is the largest sum over one
    sample; `peaks` the largest RSS of each kind of process: "self", "jvm" (java: Spark's
    driver JVM) and "python" (the other descendants: Spark's Python workers, subprocesses).
    The peaks of the kinds need not fall on the same sample."""

    def __init__(self, children: bool = True, interval: float = 0.05) -> None:
        self.children, self.interval = children, interval
        self.peak, self.peaks = 0, {"self": 0, "jvm": 0, "python": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _kind(proc: psutil.Process, me: psutil.Process) -> str:
        if proc.pid == me.pid:
            return "self"
        return "jvm" if proc.name().startswith("java") else "python"

    def _sample(self) -> None:
        me = psutil.Process()
        while True:
            procs = [me, *me.children(recursive=True)] if self.children else [me]
            now = dict.fromkeys(self.peaks, 0)
            for proc in procs:
                try:
                    now[self._kind(proc, me)] += proc.memory_info().rss
                except psutil.Error:  # it ended between the listing and the reading
                    pass
            self.peak = max(self.peak, sum(now.values()))
            self.peaks = {kind: max(self.peaks[kind], now[kind]) for kind in now}
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Run:
    """One timed call of a path."""

    seconds: float
    peak_rss: int  # bytes, as PeakRss.peak
    result: Any


def alternate(
    rounds: int,
    paths: Mapping[str, Callable[[], Any]],
    children: Mapping[str, bool] | None = None,
) -> dict[str, list[Run]]:
    """Each path called once per round, in turn, for `rounds` rounds; every call timed and its
    peak memory sampled (descendants counted unless `children[name]` is False). This shared
    VM's speed drifts by +-15-20% over minutes, so comparing the paths' best rounds (as `timeit`
    does) from interleaved rounds is fairer than timing one path's rounds after the other's."""
    runs: dict[str, list[Run]] = {name: [] for name in paths}
    for r in range(rounds):
        for name, path in paths.items():
            with PeakRss(children=(children or {}).get(name, True)) as memory:
                started = time.perf_counter()
                result = path()
                seconds = time.perf_counter() - started
            runs[name].append(Run(seconds, memory.peak, result))
        times = ", ".join(f"{name} {runs[name][-1].seconds:.1f} s" for name in paths)
        print(f"round {r + 1}: {times}", flush=True)
    return runs
