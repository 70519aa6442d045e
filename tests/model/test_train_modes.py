"""The training modes that are more than a config line, each run for real under the `deepspeed`
launcher on CPU ranks: ZeRO-Offload of the optimizer state and torch.compile. fp16 (dynamic loss
scaling) cannot run on CPU ranks, since DeepSpeed's engine refuses it there ("Type fp16 is not
supported on your device."), so the config check refuses it first with what to do instead;
fp16 training itself is checked on a GPU."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_model
from model.config import TrainConfig
from model.data import TokenDataset
from model.engine import check_train_config, deepspeed_config
from model.evaluate import heldout_loss
from model.launch import launch_training
from tests.model.test_train import job, losses

# Two ranks, bf16 weights with their fp32 master copy and AdamW state in ZeRO 2 partitions; a
# checkpoint every 5 steps, for the resume test.
OFFLOAD_RUN = dict(
    num_ranks=2, zero_stage=2, steps=10, log_every=1, eval_every=10, checkpoint_every=5
)


def test_fp16_is_refused_on_cpu_with_what_to_do() -> None:
    fp16 = TrainConfig(precision="fp16")
    wanted = r'train\.precision="fp16" needs a GPU.*use train\.precision="bf16" or "fp32" on CPU'
    with pytest.raises(ValueError, match=wanted):
        check_train_config(fp16, accelerator="cpu")
    with pytest.raises(ValueError, match=wanted):
        deepspeed_config(fp16, 2, accelerator="cpu")
    for other in ("bf16", "fp32"):
        check_train_config(TrainConfig(precision=other), accelerator="cpu")
    # on a GPU the same setting is DeepSpeed's dynamic loss scaling, starting at 2^16
    config = deepspeed_config(fp16, 2, accelerator="cuda")
    assert config["fp16"] == {"enabled": True, "loss_scale": 0, "initial_scale_power": 16}
    assert config["bf16"] == {"enabled": False}


def test_fp16_launch_on_cpu_fails_before_any_rank_starts(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    with pytest.raises(ValueError, match='train.precision="fp16" needs a GPU'):
        launch_training(job(tiny_corpus, tmp_path, precision="fp16"), tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()  # no rank ever ran


@pytest.fixture(scope="module")
def offload_runs(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    """The same seeded two-rank run without and with the optimizer offloaded to CPU memory."""
    runs = {}
    for offload in (False, True):
        out = tmp_path_factory.mktemp(f"offload-{offload}")
        spec = job(tiny_corpus, out, offload_optimizer=offload, **OFFLOAD_RUN)
        runs[offload] = out, launch_training(spec, out)
    return runs


def optimizer_shards(checkpoint: Path) -> list[dict]:
    """Each rank's ZeRO optimizer file of a DeepSpeed checkpoint, in rank order."""
    files = sorted(checkpoint.glob("*zero_pp_rank_*_optim_states.pt"))
    return [torch.load(f, map_location="cpu", weights_only=False) for f in files]


def test_offloaded_optimizer_trains_like_the_plain_run(offload_runs) -> None:
    (plain, plain_summary), (out, summary) = offload_runs[False], offload_runs[True]
    assert summary["world_size"] == 2
    assert summary["final_loss"] < summary["first_loss"] - 0.5
    assert summary["val_loss"] < summary["first_loss"] - 0.5
    want, got = losses(plain), losses(out)
    assert sorted(got) == list(range(1, 11))
    for step in got:
        # the same seed and batches: only bf16 rounding may differ between the two code paths
        assert abs(got[step] - want[step]) <= 0.01 * want[step], (step, got[step], want[step])
    assert summary["val_loss"] == pytest.approx(plain_summary["val_loss"], rel=0.01)
    load_model(out / "model")
    # What DeepSpeed ran with, as its own checkpoint records it: ZeRO 2 with the optimizer
    # offloaded to the CPU, each rank's AdamW state a partition (half the weights) in CPU
    # memory. On CPU ranks every tensor is in CPU memory anyway, so this shows the setting
    # reached DeepSpeed, not that memory moved; that is measured on a GPU.
    shards = optimizer_shards(out / "checkpoints" / "step00000010")
    assert len(shards) == 2
    numels = []
    for shard in shards:
        assert shard["ds_config"]["zero_optimization"]["offload_optimizer"] == {"device": "cpu"}
        state = shard["optimizer_state_dict"]
        assert int(state["zero_stage"]) == 2 and state["partition_count"] == [2, 2]
        moments = [t for s in state["base_optimizer_state"]["state"].values() for t in s.values()]
        assert moments and all(t.device.type == "cpu" for t in moments)
        numels.append(sum(t.numel() for t in state["single_partition_of_fp32_groups"]))
    assert sum(numels) == summary["num_params"] and min(numels) < summary["num_params"]
    plain_shard = optimizer_shards(plain / "checkpoints" / "step00000010")[0]
    assert "offload_optimizer" not in plain_shard["ds_config"]["zero_optimization"]


def test_offloaded_optimizer_resumes_exactly(offload_runs, tmp_path: Path, tiny_corpus) -> None:
    reference, _ = offload_runs[True]
    # As if the run had died after its step-5 checkpoint: the offloaded optimizer state is
    # loaded back into CPU memory and steps 6-10 repeat bit for bit.
    out = tmp_path / "out"
    shutil.copytree(
        reference / "checkpoints" / "step00000005", out / "checkpoints" / "step00000005"
    )
    lines: list[str] = []
    spec = job(tiny_corpus, out, offload_optimizer=True, **OFFLOAD_RUN)
    summary = launch_training(spec, out, lines.append)
    assert summary["resumed_from"] == "step00000005"
    assert any(line.startswith("resumed from") for line in lines)
    expected, actual = losses(reference), losses(out)
    assert sorted(actual) == list(range(6, 11))
    assert [actual[s] for s in range(6, 11)] == [expected[s] for s in range(6, 11)]
    weights = "model/model.safetensors"
    assert (out / weights).read_bytes() == (reference / weights).read_bytes()


def test_compiled_model_trains_and_computes_what_the_plain_model_does(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh inductor cache the rank inherits through the launcher's environment: what the
    # compiler generated and built lands there, so the test sees it from outside the rank.
    cache = tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))
    monkeypatch.setenv("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    out = tmp_path / "out"
    # fp32 and one rank: the compiled model's numbers can be compared with the eager model's
    settings = dict(compile=True, precision="fp32", steps=6, log_every=1, eval_every=6)
    summary = launch_training(job(tiny_corpus, out, **settings), out)
    assert summary["final_loss"] < summary["first_loss"] - 0.3
    assert sorted(losses(out)) == list(range(1, 7))
    # Inductor compiled graphs (the training forward and backward and the no-grad evaluation
    # forward) to C++ kernels that g++ built into shared libraries
    graphs = [p for p in (cache / "fxgraph").rglob("*") if p.is_file()]
    assert len(graphs) >= 3, sorted(p.name for p in cache.rglob("*"))
    assert list(cache.rglob("*.so"))
    # The export has the plain model's parameter names, and the eager model scores it as the
    # compiled one did in training (the same 16 validation windows, fp32)
    model, cfg = load_model(out / "model")
    loss, _ = heldout_loss(model, TokenDataset(tiny_corpus, "val"), cfg.block_size, 1)
    assert loss == pytest.approx(summary["val_loss"], abs=1e-5)
