"""A wall-clock bound on one call, so a pathological page cannot stall an extraction worker.

In the main thread (a Spark Python worker runs `mapPartitions` functions there, as do the
benchmark and the tests) the bound is a `SIGALRM` timer that raises inside the call, which
stops it. Elsewhere signals cannot be used: the call runs in a daemon thread that is given
up on when the time is over (it finishes in the background; the caller moves on).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class TimeLimitExceeded(BaseException):
    """The call ran longer than its limit. A BaseException, like KeyboardInterrupt, so that an
    `except Exception` inside the called library (trafilatura has several) cannot swallow it."""


def call_with_time_limit(seconds: float, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`func(*args, **kwargs)`, or `TimeLimitExceeded` after `seconds` (<= 0: no limit)."""
    if seconds <= 0:
        return func(*args, **kwargs)
    if threading.current_thread() is threading.main_thread():
        return _with_alarm(seconds, func, args, kwargs)
    return _with_thread(seconds, func, args, kwargs)


def _with_alarm(seconds: float, func: Callable[..., T], args: tuple, kwargs: dict) -> T:
    inside = [True]

    def expire(signum: int, frame: object) -> None:
        if inside[0]:
            raise TimeLimitExceeded(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    # The timer fires again every `seconds` until cleared: a signal that lands in a long C
    # call or is caught by a bare `except:` in the library is raised again.
    signal.setitimer(signal.ITIMER_REAL, seconds, seconds)
    try:
        return func(*args, **kwargs)
    finally:
        inside[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _with_thread(seconds: float, func: Callable[..., T], args: tuple, kwargs: dict) -> T:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = func(*args, **kwargs)
        except BaseException as err:  # handed to the caller below
            outcome["error"] = err

    worker = threading.Thread(target=run, daemon=True, name="time-limited-call")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeLimitExceeded(f"took longer than {seconds:g} s (left running in a thread)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
