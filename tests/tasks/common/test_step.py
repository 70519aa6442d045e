"""The step contract: fingerprinted folders, renamed into place, `_SUCCESS` last, skip on re-run."""

from __future__ import annotations

import json

import pytest

from tasks.common.step import StepResult, code_version, run_step, step_fingerprint


def test_run_publishes_folder_with_marker_stats_and_config(tmp_path):
    calls = []

    def build(out):
        calls.append(out)
        (out / "data.txt").write_text("hello")
        return {"rows": 1}

    result = run_step(tmp_path, "demo", {"k": 1}, [], ["tasks/common"], build)
    out = tmp_path / "demo" / result.fingerprint
    assert result.path == str(out) and not result.skipped
    assert (out / "data.txt").read_text() == "hello"
    marker = json.loads((out / "_SUCCESS").read_text())
    assert marker["fingerprint"] == result.fingerprint and marker["finished_at"]
    assert json.loads((out / "stats.json").read_text())["rows"] == 1
    assert json.loads((out / "config.json").read_text())["config"] == {"k": 1}
    assert calls[0].name.startswith(".tmp-")  # built aside, then renamed
    assert [p.name for p in (tmp_path / "demo").iterdir()] == [result.fingerprint]

    again = run_step(tmp_path, "demo", {"k": 1}, [], ["tasks/common"], build)
    assert again.skipped and again.fingerprint == result.fingerprint and len(calls) == 1
    assert again.stats["rows"] == 1


def test_failure_leaves_nothing_behind(tmp_path):
    def build(out):
        (out / "half.txt").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_step(tmp_path, "demo", {}, [], ["tasks/common"], build)
    assert list((tmp_path / "demo").iterdir()) == []


def test_incomplete_folder_without_marker_is_rebuilt(tmp_path):
    fingerprint = step_fingerprint("demo", {}, [], code_version(["tasks/common"]))
    stale = tmp_path / "demo" / fingerprint
    stale.mkdir(parents=True)
    (stale / "junk").write_text("from a crash")
    result = run_step(tmp_path, "demo", {}, [], ["tasks/common"], lambda out: {})
    assert result.fingerprint == fingerprint and not result.skipped
    assert not (stale / "junk").exists() and (stale / "_SUCCESS").exists()


def test_fingerprint_changes_with_config_inputs_and_code():
    base = step_fingerprint("s", {"a": 1}, [], "code1")
    upstream = StepResult("up", "f00", "/x")
    assert step_fingerprint("s", {"a": 1}, [], "code1") == base
    assert step_fingerprint("s", {"a": 2}, [], "code1") != base
    assert step_fingerprint("s", {"a": 1}, [upstream], "code1") != base
    assert step_fingerprint("s", {"a": 1}, [], "code2") != base
    assert code_version(["tasks.common.step"]) != code_version(
        ["tasks.common.step", "model.config"]
    )
