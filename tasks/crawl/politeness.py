"""Per-host politeness in one process: a bound on concurrent requests and a gap between them.

One `HostGate` per process (`GATE`) is shared by every thread fetching in it, so however the
hosts of a Spark task are spread over threads, one host never sees more than
`crawl.host_concurrency` requests at once nor two request starts closer than its delay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class OutOfTime(TimeoutError):
    """The crawl's time budget would pass before the request could start."""


class _Host:
    def __init__(self, concurrency: int) -> None:
        self.slots = threading.BoundedSemaphore(max(1, concurrency))
        self.lock = threading.Lock()
        self.next_start = 0.0


class HostGate:
    """Admits requests to a host: at most `concurrency` at once, `interval` s between starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}

    @contextmanager
    def slot(self, host: str, concurrency: int, interval: float, deadline: float) -> Iterator[None]:
        """Hold one of `host`'s slots for one request; raise OutOfTime if the wait for it
        would pass `deadline` (time.monotonic seconds)."""
        with self._lock:
            state = self._hosts.setdefault(host, _Host(concurrency))
        if not state.slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise OutOfTime(f"budget: time (waiting for a slot on {host})")
        try:
            with state.lock:
                wait = state.next_start - time.monotonic()
                if time.monotonic() + max(0.0, wait) >= deadline:
                    raise OutOfTime(f"budget: time (crawl delay of {host})")
                if wait > 0:
                    time.sleep(wait)
                state.next_start = time.monotonic() + interval
            yield
        finally:
            state.slots.release()

    def clear(self) -> None:
        """Forget every host's state (its next start time and slots), as in a new process."""
        with self._lock:
            self._hosts.clear()


GATE = HostGate()
