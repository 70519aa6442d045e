"""Real runs of model.train under the `deepspeed` launcher (CPU, gloo): train, log, export."""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import load_model
from model.config import TrainConfig
from model.data import TokenDataset
from model.evaluate import heldout_loss
from model.faults import ENV
from model.gpt import ModelConfig
from model.launch import free_port, launch_training, launcher_command, launcher_env
from tests.model.conftest import OBJECTS, SUBJECTS, VERBS

TINY = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=320)


def job(data_dir: Path, out_dir: Path, **train: Any) -> dict[str, Any]:
    settings = dict(steps=20, micro_batch=8, warmup_steps=2, log_every=5, eval_every=10)
    settings |= dict(eval_batches=2, zero_stage=2, precision="bf16", lr=3e-3) | train
    return {
        "model": dataclasses.asdict(TINY),
        "train": dataclasses.asdict(TrainConfig(**settings)),
        "data_dir": str(data_dir),
        "out_dir": str(out_dir),
        "tracking": {"uri": "", "run_id": ""},
    }


# fp32 on one rank: the run the resume test must reproduce bit for bit (weight average too).
EXACT = dict(precision="fp32", log_every=1, checkpoint_every=5, keep_checkpoints=2, ema_decay=0.9)


@pytest.fixture(scope="module")
def one_rank(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("train1")
    lines: list[str] = []
    summary = launch_training(job(tiny_corpus, out, **EXACT), out, on_line=lines.append)
    return out, summary, lines


def losses(out: Path) -> dict[int, float]:
    """step -> train loss in metrics.jsonl; a step logged twice (before a crash) keeps the last."""
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train_loss"] for r in records}


def test_one_rank_loss_falls_and_is_logged(one_rank) -> None:
    out, summary, lines = one_rank
    assert summary["steps"] == 20 and summary["world_size"] == 1
    assert summary["final_loss"] < summary["first_loss"] - 1.0
    assert summary["val_loss"] < summary["first_loss"] - 1.0
    assert summary["num_params"] > 0 and summary["tokens_per_s"] > 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 21))
    assert [r["step"] for r in records if "val_loss" in r] == [10, 20]
    assert [r["step"] for r in records if "val_loss_ema" in r] == [10, 20]
    assert summary["exported_weights"] == "ema 0.9"
    # the export holds the weight average of the last checkpoint, exactly
    exported = dict(load_model(out / "model")[0].named_parameters())
    averaged = load_file(str(out / "checkpoints" / "step00000020" / "ema.safetensors"))
    assert set(exported) == set(averaged)
    assert all(torch.equal(exported[name], averaged[name]) for name in averaged)
    assert all(r["grad_norm"] > 0 and r["lr"] > 0 for r in records)
    assert any(line.startswith("step 20/20") for line in lines)
    # checkpoints every 5 steps, the newest two kept, each marked complete
    kept = sorted(p.name for p in (out / "checkpoints").glob("step*"))
    assert kept == ["step00000015", "step00000020"]
    assert (out / "checkpoints" / "step00000020" / "COMPLETE.json").is_file()


def test_sigkilled_run_resumes_bit_identically(one_rank, tiny_corpus: Path, tmp_path: Path) -> None:
    reference, _, _ = one_rank
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(job(tiny_corpus, tmp_path, **EXACT)))
    command = launcher_command(job_path, 1, free_port())
    # rank 0 SIGKILLs the launcher's whole process group after step 17: no chance to clean up
    env = launcher_env() | {ENV: json.dumps({"kill_at_step": 17})}
    with subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as run:
        printed = run.stdout.read()
        assert run.wait() == -signal.SIGKILL, printed[-2000:]
    assert "step 17/20" in printed and "step 18/20" not in printed
    assert not (tmp_path / "train_summary.json").exists()
    # a damaged newest checkpoint is skipped for the previous good one
    damaged = next((tmp_path / "checkpoints" / "step00000015").rglob("*model_states.pt"))
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    lines: list[str] = []
    summary = launch_training(job(tiny_corpus, tmp_path, **EXACT), tmp_path, lines.append)
    assert any("skipping checkpoint" in line and "step00000015" in line for line in lines)
    assert summary["resumed_from"] == "step00000010"
    expected, actual = losses(reference), losses(tmp_path)
    assert [actual[s] for s in range(11, 21)] == [expected[s] for s in range(11, 21)]
    assert summary["val_loss"] == one_rank[1]["val_loss"]  # the weight average's, restored
    weights = "model/model.safetensors"
    assert (tmp_path / weights).read_bytes() == (reference / weights).read_bytes()


def test_exported_model_loads_and_scores_like_training(one_rank, tiny_corpus: Path) -> None:
    out, summary, _ = one_rank
    model, cfg = load_model(out / "model")
    assert cfg == TINY and (out / "model" / "tokenizer.json").is_file()
    loss, _ = heldout_loss(model, TokenDataset(tiny_corpus, "val"), cfg.block_size, 1)
    # the export holds the weight average, which training evaluated (fp32) on the same windows
    assert loss == pytest.approx(summary["val_loss"], abs=0.1)


def test_two_ranks_with_accumulation(tiny_corpus: Path, tmp_path: Path) -> None:
    settings = dict(num_ranks=2, grad_accum=2, ema_decay=0.9)  # bf16, ZeRO 2, weight average
    summary = launch_training(job(tiny_corpus, tmp_path, **settings), tmp_path)
    assert summary["world_size"] == 2 and summary["exported_weights"] == "ema 0.9"
    assert summary["val_loss"] < summary["first_loss"] - 1.0
    assert summary["final_loss"] < summary["first_loss"] - 1.0
    load_model(tmp_path / "model")


def test_one_failing_rank_ends_the_run_with_its_error(one_rank, tmp_path: Path) -> None:
    # One example for two ranks: rank 1 has no share and raises, while rank 0 goes on into
    # DeepSpeed's collectives; the launcher must kill rank 0 instead of letting it wait forever.
    reference, _, _ = one_rank
    (tmp_path / "one.jsonl").write_text(json.dumps({"prompt": "A", "response": "b"}) + "\n")
    spec = job(tmp_path / "unused", tmp_path / "out", num_ranks=2)
    spec["sft"] = {
        "train": str(tmp_path / "one.jsonl"),
        "val": str(tmp_path / "one.jsonl"),
        "tokenizer": str(reference / "model" / "tokenizer.json"),
    }
    with pytest.raises(RuntimeError, match="exited with 1") as failure:
        launch_training(spec, tmp_path / "out")
    assert "fewer than the 2 ranks" in str(failure.value)


def test_fine_tune_from_an_export_learns_the_responses(one_rank, tmp_path: Path) -> None:
    reference, _, _ = one_rank
    rows = [
        {"prompt": f"{subject} {verb}", "response": obj}
        for subject in SUBJECTS
        for verb in VERBS
        for obj in OBJECTS[:1]
    ]
    for name in ("train", "val"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = job(tmp_path / "unused", tmp_path / "out", steps=15, eval_every=15)
    del spec["data_dir"]
    spec["init_from"] = str(reference / "model")
    spec["sft"] = {
        "train": str(tmp_path / "train.jsonl"),
        "val": str(tmp_path / "val.jsonl"),
        "tokenizer": str(reference / "model" / "tokenizer.json"),
    }
    summary = launch_training(spec, tmp_path / "out")
    # started from the pretrained weights (below a uniform guess's loss), then the one response
    # object and the new <|end|> marker are learned
    assert summary["first_loss"] < math.log(TINY.vocab_size) - 0.5
    assert summary["val_loss"] < summary["first_loss"] - 1.5
    model, cfg = load_model(tmp_path / "out" / "model")
    assert cfg == TINY and (tmp_path / "out" / "model" / "tokenizer.json").is_file()
