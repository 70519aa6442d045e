"""LoRA runs of model.train under the real `deepspeed` launcher (CPU, gloo): only the adapters
train and are checkpointed, a resumed run matches an uninterrupted one (the frozen base comes
again from init_from), the export holds the merged weights and the adapter sits beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from model.checkpoint import export_model, load_model
from model.gpt import GPT
from model.launch import launch_training
from tests.model.test_train import TINY, job, losses

LORA = {"rank": 4, "alpha": 8.0, "dropout": 0.0, "targets": ["q_proj", "kv_proj", "down_proj"]}


@pytest.fixture(scope="module")
def base_model(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded GPT of the TINY shape exported with the corpus's tokenizer: the frozen base."""
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("lora-base") / "model"
    return export_model(GPT(TINY), TINY, folder, tiny_corpus / "tokenizer.json")


def lora_job(data: Path, base: Path, out: Path, **train: Any) -> dict[str, Any]:
    spec = job(data, out, **train)
    return spec | {"init_from": str(base), "lora": LORA}


def module_keys(checkpoint: Path) -> set[str]:
    """The parameter names DeepSpeed saved in a checkpoint's module state."""
    (states,) = checkpoint.glob("mp_rank_*_model_states.pt")
    return set(torch.load(states, map_location="cpu", weights_only=False)["module"])


# fp32: the resumed run must give the very same losses and export as the uninterrupted one
RESUMABLE = dict(
    steps=8, precision="fp32", num_ranks=2, zero_stage=2, checkpoint_every=4, log_every=1
)


def test_lora_checkpoints_only_adapters_resumes_and_exports_merged(
    tiny_corpus: Path, base_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    summary = launch_training(lora_job(tiny_corpus, base_model, out, **RESUMABLE), out)
    assert summary["method"] == "lora" and summary["world_size"] == 2
    assert summary["trainable_params"] == 2 * 4 * ((32 + 32) + (32 + 64) + (96 + 32))
    assert summary["final_loss"] < summary["first_loss"]
    assert len(summary["peak_memory_mb"]) == 2 and min(summary["peak_memory_mb"]) > 0
    # the checkpoint holds the adapters alone: no base weight, no embedding
    keys = module_keys(out / "checkpoints" / "step00000008")
    assert keys and all(".lora_" in key for key in keys), sorted(keys)[:5]
    assert len(keys) == 2 * 3 * 2  # layers x targets x (A, B)

    # the export is a plain model: the base's names, and only the targets' weights changed
    merged, cfg = load_model(out / "model")
    base, _ = load_model(base_model)
    assert cfg == TINY
    merged_state, base_state = merged.state_dict(), base.state_dict()
    assert merged_state.keys() == base_state.keys()
    changed = {k for k in base_state if not torch.equal(merged_state[k], base_state[k])}
    targets = {f"blocks.{i}.attn.{t}.weight" for i in (0, 1) for t in ("q_proj", "kv_proj")}
    assert changed == targets | {"blocks.0.mlp.down_proj.weight", "blocks.1.mlp.down_proj.weight"}
    # the adapter beside it, with its settings and base
    adapter = out / "adapter"
    settings = json.loads((adapter / "adapter_config.json").read_text())
    assert settings == {**LORA, "base": str(base_model)}
    tensors = load_file(adapter / "adapter_model.safetensors")
    assert set(tensors) == keys and tensors["blocks.0.attn.q_proj.lora_b"].abs().sum() > 0

    # resume: lose the final checkpoint and run again from step 4
    resumed = tmp_path / "resumed"
    shutil.copytree(out, resumed, ignore=shutil.ignore_patterns("step00000008"))
    (resumed / "metrics.jsonl").write_text(
        "".join(line + "\n" for line in (out / "metrics.jsonl").read_text().splitlines()[:4])
    )
    again = launch_training(lora_job(tiny_corpus, base_model, resumed, **RESUMABLE), resumed)
    assert again["resumed_from"] == "step00000004"
    assert losses(resumed) == losses(out)
    weights = "model/model.safetensors"
    assert (resumed / weights).read_bytes() == (out / weights).read_bytes()


# ZeRO 2 is the test above's; ZeRO 1 runs the same DeepSpeedZeroOptimizer (stage 1 keeps the
# gradients whole), so only the stage without a ZeRO optimizer (bf16's own) runs here too.
@pytest.mark.parametrize("stage", [0])
def test_lora_trains_under_zero_stage(
    stage: int, tiny_corpus: Path, base_model: Path, tmp_path: Path
) -> None:
    spec = lora_job(tiny_corpus, base_model, tmp_path, steps=6, zero_stage=stage, eval_every=6)
    summary = launch_training(spec, tmp_path)  # bf16: fp32 master copies of the adapters only
    assert summary["method"] == "lora" and summary["final_loss"] < summary["first_loss"]
    keys = module_keys(tmp_path / "checkpoints" / "step00000006")
    assert keys and all(".lora_" in key for key in keys)
    load_model(tmp_path / "model")


def test_lora_refuses_zero_3_ema_and_no_base_before_launch(
    tiny_corpus: Path, base_model: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"train.zero_stage = 3 is not supported"):
        launch_training(lora_job(tiny_corpus, base_model, tmp_path, zero_stage=3), tmp_path)
    with pytest.raises(ValueError, match=r"train.ema_decay = 0.9 is not supported"):
        launch_training(lora_job(tiny_corpus, base_model, tmp_path, ema_decay=0.9), tmp_path)
    no_base = lora_job(tiny_corpus, base_model, tmp_path)
    del no_base["init_from"]
    with pytest.raises(ValueError, match=r"needs init_from"):
        launch_training(no_base, tmp_path)
    assert not (tmp_path / "job.json").exists()  # refused before anything was written
