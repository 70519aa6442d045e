"""Real runs of model.train under the `deepspeed` launcher (CPU, gloo): train, log, export."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from model.checkpoint import load_model
from model.config import TrainConfig
from model.data import TokenDataset
from model.evaluate import heldout_loss
from model.gpt import ModelConfig
from model.launch import launch_training

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


@pytest.fixture(scope="module")
def one_rank(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("train1")
    lines: list[str] = []
    summary = launch_training(job(tiny_corpus, out), out, on_line=lines.append)
    return out, summary, lines


def test_one_rank_loss_falls_and_is_logged(one_rank) -> None:
    out, summary, lines = one_rank
    assert summary["steps"] == 20 and summary["world_size"] == 1
    assert summary["final_loss"] < summary["first_loss"] - 1.0
    assert summary["val_loss"] < summary["first_loss"] - 1.0
    assert summary["num_params"] > 0 and summary["tokens_per_s"] > 0
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 5, 10, 15, 20]
    assert [r["step"] for r in records if "val_loss" in r] == [10, 20]
    assert any(line.startswith("step 20/20") for line in lines)
    assert (out / "checkpoints" / "latest").read_text().strip() == "global_step20"


def test_exported_model_loads_and_scores_like_training(one_rank, tiny_corpus: Path) -> None:
    out, summary, _ = one_rank
    model, cfg = load_model(out / "model")
    assert cfg == TINY and (out / "model" / "tokenizer.json").is_file()
    loss, _ = heldout_loss(model, TokenDataset(tiny_corpus, "val"), cfg.block_size, 1)
    # the export holds the fp32 master weights; training evaluated in bf16 on the same windows
    assert loss == pytest.approx(summary["val_loss"], abs=0.1)


def test_two_ranks_with_accumulation(tiny_corpus: Path, tmp_path: Path) -> None:
    summary = launch_training(job(tiny_corpus, tmp_path, num_ranks=2, grad_accum=2), tmp_path)
    assert summary["world_size"] == 2
    assert summary["final_loss"] < summary["first_loss"] - 1.0
    load_model(tmp_path / "model")


def test_failure_raises_with_the_ranks_last_lines(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="exited with 1") as failure:
        launch_training(job(tmp_path / "nowhere", tmp_path / "out"), tmp_path / "out")
    assert "tokenizer.json is missing" in str(failure.value)
