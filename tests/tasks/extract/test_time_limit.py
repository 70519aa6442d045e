"""A time limit per call that really stops slow work: in the main thread, in a thread, in Spark."""

from __future__ import annotations

import threading
import time

import pytest

from tasks.extract.time_limit import TimeLimitExceeded, call_with_time_limit


def slow(seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # busy Python code, like an extractor on a huge page
        pass
    return "done"


def test_a_fast_call_returns_its_value_and_errors_pass_through() -> None:
    assert call_with_time_limit(1.0, slow, 0.01) == "done"
    assert call_with_time_limit(0, slow, 0.01) == "done"  # 0: no limit
    with pytest.raises(ZeroDivisionError):
        call_with_time_limit(1.0, lambda: 1 / 0)


def test_a_slow_call_is_stopped_in_the_main_thread() -> None:
    started = time.monotonic()
    with pytest.raises(TimeLimitExceeded, match="longer than 0.2 s"):
        call_with_time_limit(0.2, slow, 10.0)
    assert time.monotonic() - started < 2.0
    assert call_with_time_limit(1.0, slow, 0.3) == "done"  # the timer was cleared


def test_a_slow_call_is_given_up_on_outside_the_main_thread() -> None:
    outcome: dict[str, object] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            call_with_time_limit(0.2, time.sleep, 5.0)
        except TimeLimitExceeded as err:
            outcome["error"], outcome["s"] = err, time.monotonic() - started

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(5.0)
    assert isinstance(outcome["error"], TimeLimitExceeded) and outcome["s"] < 2.0


def test_the_limit_holds_inside_spark_python_workers(spark) -> None:
    def bounded(seconds: float) -> tuple[str, float]:
        started = time.monotonic()  # in the worker: Spark's start-up is not the call's time
        try:
            got = call_with_time_limit(0.3, slow, seconds)
        except TimeLimitExceeded:
            got = "stopped in " + threading.current_thread().name
        return got, time.monotonic() - started

    [(fast, _), (stopped, took)] = (
        spark.sparkContext.parallelize([0.01, 30.0], 2).map(bounded).collect()
    )
    assert (fast, stopped) == ("done", "stopped in MainThread")
    assert took < 10.0  # the 0.3 s limit, with room for a loaded machine; unlimited: 30 s
