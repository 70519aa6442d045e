"""Training guards (model/guard.py) and a crash in teardown, in real runs under the `deepspeed`
launcher with faults injected through LMFORGE_FAULTS (model/faults.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from mlflow import MlflowClient

from model.config import TrainConfig
from model.faults import ENV
from model.files import file_hashes
from model.guard import HEALTH_TAG, Guard
from model.launch import FINISHED, SUMMARY, finished_despite_exit_code, launch_training
from tests.model.test_train import job

GUARDED = dict(checkpoint_every=5, keep_checkpoints=2, log_every=1, spike_window=5)


def guard(**settings) -> Guard:
    return Guard(TrainConfig(**{"max_bad_steps": 3, "spike_window": 4, **settings}))


def test_guard_skips_rolls_back_and_stops() -> None:
    g = guard(max_rollbacks=1, rollback_lr_factor=0.5)
    assert g.check(1, math.nan, 1.0, True).action == "skip"
    assert g.check(2, 2.0, math.inf, False).action == "skip"  # DeepSpeed skipped it
    assert g.check(3, 2.0, 1.0, True).action == "ok"  # a good step ends the streak
    assert [g.check(s, math.nan, None, True).action for s in (4, 5, 6)] == [
        "skip",
        "skip",
        "rollback",
    ]
    assert (g.bad_steps, g.rollbacks, g.lr_factor()) == (5, 1, 0.5)
    for step, loss in enumerate([2.0, 2.1, 1.9, 2.0], 7):
        assert g.check(step, loss, 1.0, True).applied
    stop = g.check(11, 9.0, 1.0, True)  # a spike, with no rollback left
    assert stop.action == "stop" and "loss spike: 9 >" in stop.reason and "step 11" in stop.reason
    assert g.outcome(2.0) == "recovered" and g.outcome(math.nan) == "unhealthy"
    assert guard().outcome(2.0) == "healthy"


def test_an_fp16_loss_scaler_overflow_is_routine_not_a_bad_step() -> None:
    g = guard(precision="fp16")
    for step in range(1, 6):  # the scale comes down from 2^16 over the first steps
        assert g.check(step, 7.5, math.inf, False).action == "skip"
    assert (g.scaler_skips, g.bad_steps, g.rollbacks) == (5, 0, 0)
    assert g.outcome(2.0) == "healthy"
    assert g.check(6, math.nan, math.inf, False).action == "skip" and g.bad_steps == 1


def test_guard_spike_limit_is_mean_plus_k_std_and_its_state_round_trips() -> None:
    g = guard(spike_sigmas=3.0)
    for step, loss in enumerate([2.0, 2.2, 1.8, 2.0], 1):
        g.check(step, loss, 1.0, True)
    # mean 2.0, std 0.1414: the limit is 2.424
    assert g.check(5, 2.40, 1.0, True).action == "ok"
    resumed = guard(spike_sigmas=3.0)
    resumed.load_state_dict(json.loads(json.dumps(g.state_dict())))
    assert resumed.state_dict() == g.state_dict()
    verdict = resumed.check(6, 3.5, 1.0, True)
    assert verdict.action == "rollback" and resumed.spikes == 1 and resumed.lr_factor() == 0.5


def metrics(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def mlflow_run(tmp_path: Path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    return uri, client.create_run(client.create_experiment("guard")).info.run_id


def test_poisoned_and_spiking_batches_are_skipped_and_rolled_back(
    tiny_corpus: Path, tmp_path: Path, mlflow_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # step 7: one NaN loss (skipped); 12-14: three in a row (roll back to step 10);
    # 18: a loss 50x too high (a spike: roll back to step 15)
    faults = {"nan_loss_steps": [7, 12, 13, 14], "spike_steps": [18]}
    monkeypatch.setenv(ENV, json.dumps(faults))
    uri, run_id = mlflow_run
    spec = job(tiny_corpus, tmp_path / "run", **GUARDED)
    spec["tracking"] = {"uri": uri, "run_id": run_id}
    lines: list[str] = []
    events: list[dict] = []
    summary = launch_training(spec, tmp_path / "run", lines.append, events.append)
    guard_lines = [line for line in lines if line.startswith("guard: ")]
    # the same news as structured events (model/events.py), kept out of the printed lines
    assert not any(line.startswith("@lmforge-event") for line in lines)
    guards = [(e["step"], e["action"]) for e in events if e["event"] == "guard"]
    assert guards == [(7, "skip"), (12, "skip"), (13, "skip"), (14, "rollback"), (18, "rollback")]
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps[-1] == 20 and steps.count(11) == 2  # step 11 ran again after the rollback
    (done,) = [e for e in events if e["event"] == "done"]
    assert done["summary"]["health"] == "recovered"
    assert any("step 7: non-finite step skipped" in line for line in guard_lines)
    assert any(
        "step 14: 3 non-finite steps in a row" in line and "rolled back to step 10" in line
        for line in guard_lines
    )
    assert any(
        "step 18: loss spike" in line and "rolled back to step 15, lr x 0.25" in line
        for line in guard_lines
    )
    assert summary["health"] == "recovered" and math.isfinite(summary["val_loss"])
    assert summary["guard"] == {
        "guard.bad_steps": 4.0,
        "guard.scaler_skips": 0.0,
        "guard.loss_spikes": 1.0,
        "guard.rollbacks": 2.0,
        "guard.lr_scale": 0.25,
    }
    assert summary["steps_run"] == 20 + 4 + 3  # steps 11-14 and 16-18 ran twice
    records = metrics(tmp_path / "run")
    lrs = [r["lr"] for r in records if r["step"] == 11]
    assert len(lrs) == 2 and lrs[1] == pytest.approx(lrs[0] * 0.5)  # lowered after the rollback
    assert all(math.isfinite(r["train_loss"]) for r in records if r["step"] in (19, 20))
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.tags[HEALTH_TAG] == "recovered"
    assert run.data.metrics["guard.rollbacks"] == 2.0


def test_a_spike_with_no_rollback_left_stops_the_run_and_says_why(
    tiny_corpus: Path, tmp_path: Path, mlflow_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, json.dumps({"spike_steps": [8]}))
    uri, run_id = mlflow_run
    spec = job(tiny_corpus, tmp_path / "run", **GUARDED, max_rollbacks=0)
    spec["tracking"] = {"uri": uri, "run_id": run_id}
    with pytest.raises(RuntimeError) as failed:
        launch_training(spec, tmp_path / "run", None)
    message = str(failed.value)
    assert "training stopped: step 8: loss spike" in message
    assert "0 rollback(s) already" in message and "step00000005" in message
    assert not (tmp_path / "run" / SUMMARY).exists() and not (tmp_path / "run" / "model").exists()
    tags = MlflowClient(uri).get_run(run_id).data.tags
    assert tags[HEALTH_TAG] == "stopped" and "loss spike" in tags["lmforge.train.stopped"]


def test_a_rank_crashing_in_teardown_after_finishing_keeps_the_output(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, json.dumps({"abort_at_exit_ranks": [1]}))
    out = tmp_path / "run"
    lines: list[str] = []
    with pytest.warns(UserWarning, match="the output is kept"):
        summary = launch_training(job(tiny_corpus, out, num_ranks=2), out, lines.append)
    assert "exited with" in summary["teardown_warning"]
    assert summary["world_size"] == 2 and summary["health"] == "healthy"
    assert sorted(p.name for p in (out / FINISHED).iterdir()) == ["rank-0.json", "rank-1.json"]
    assert file_hashes(out / "model") == summary["export_sha256"]


def test_a_run_counts_as_finished_only_with_every_record_and_a_matching_export(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    (out / FINISHED).mkdir(parents=True)
    (out / "model").mkdir()
    (out / "model" / "model.safetensors").write_bytes(b"weights")
    summary = {"world_size": 2, "export_sha256": file_hashes(out / "model")}
    (out / SUMMARY).write_text(json.dumps(summary))
    (out / FINISHED / "rank-0.json").write_text("{}")
    assert finished_despite_exit_code(out) == "rank(s) [1] wrote no completion record"
    (out / FINISHED / "rank-1.json").write_text("{}")
    assert finished_despite_exit_code(out) == ""
    (out / "model" / "model.safetensors").write_bytes(b"half-written")
    assert "does not match the checksums" in finished_despite_exit_code(out)


def test_event_lines_parse_and_a_damaged_one_is_only_a_line() -> None:
    from model.events import PREFIX, parse

    assert parse(PREFIX + '{"event": "step", "step": 3}') == {"event": "step", "step": 3}
    assert parse("node2: " + PREFIX + '{"event": "step", "step": 3}')["step"] == 3  # pdsh
    assert parse(PREFIX + '{"event": "step", "st') is None  # cut: an ordinary line
    assert parse("step 3/20 | train_loss 2.1") is None
    assert parse("x" + PREFIX + '{"event": "step"}') is None
