"""train.optimizer = "muon": DeepSpeed's MuonWithAuxAdam under ZeRO 2 on real CPU ranks. One
rank and two ranks on the same global batches give the same losses (the tolerance of
test_zero_stages.py), and a run resumed from a checkpoint repeats its steps bit for bit, so
Muon's momentum is saved and restored."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.config import SettingError, TrainConfig
from model.engine import is_muon_matrix, muon_with_adamw
from model.gpt import GPT, ModelConfig
from model.launch import free_port, launch_training, launcher_env
from tests.model.test_train import job, losses

WORKER = Path(__file__).with_name("muon_ranks_worker.py")
MUON = dict(optimizer="muon", muon_lr=0.02, grad_clip=0.0)
# Two ranks, ZeRO 2, fp32: Muon's momentum lives in each rank's flat partition.
RESUME_RUN = dict(
    num_ranks=2, zero_stage=2, precision="fp32", steps=10, log_every=1, eval_every=10,
    checkpoint_every=5, **MUON,
)  # fmt: skip


def test_muon_settings_deepspeed_cannot_honour_are_refused() -> None:
    with pytest.raises(SettingError, match=r"train\.grad_clip = 1\.0: .*set grad_clip = 0"):
        TrainConfig(optimizer="muon")
    with pytest.raises(SettingError, match=r"train\.optimizer = 'muon'.*zero_stage <= 2"):
        TrainConfig(optimizer="muon", grad_clip=0.0, zero_stage=3)
    with pytest.raises(SettingError, match=r"offload_optimizer"):
        TrainConfig(optimizer="muon", grad_clip=0.0, offload_optimizer=True)
    with pytest.raises(SettingError, match=r"muon_momentum must be in \[0, 1\)"):
        TrainConfig(muon_momentum=1.0)
    with pytest.raises(SettingError, match=r"optimizer must be one of 'adamw', 'muon'"):
        TrainConfig(optimizer="sgd")  # type: ignore[arg-type]
    TrainConfig(**MUON)


def test_muon_steps_the_hidden_matrices_and_adamw_the_rest() -> None:
    cfg = ModelConfig(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=64)
    for tied in (True, False):
        model = GPT(ModelConfig(**{**cfg.__dict__, "tie_embeddings": tied}))
        optimizer = muon_with_adamw(model, TrainConfig(**MUON, lr=1e-3, weight_decay=0.1))
        names = {id(p): n for n, p in model.named_parameters()}
        groups = {
            (g["use_muon"], g["weight_decay"]): sorted(names[id(p)] for p in g["params"])
            for g in optimizer.param_groups
        }
        muon = groups[(True, 0.0)]
        assert all(n.startswith("blocks.") and n.endswith(".weight") for n in muon)
        assert len(muon) == 2 * 5  # q, kv, out, gate_up and down per block
        embedding = ([] if tied else ["lm_head.weight"]) + ["tok_emb.weight"]
        assert groups[(False, 0.1)] == embedding  # the head is never a Muon matrix
        assert all(n.endswith("norm.weight") for n in groups[(False, 0.0)])
        assert sum(len(v) for v in groups.values()) == len(names)
        lrs = {g["use_muon"]: g["lr"] for g in optimizer.param_groups}
        assert lrs == {True: 0.02, False: 1e-3}
    assert not is_muon_matrix("tok_emb.weight", torch.nn.Parameter(torch.zeros(2, 2)))


def test_muon_on_one_rank_gives_the_losses_of_two_ranks(tiny_corpus: Path, tmp_path: Path) -> None:
    runs = {}
    for ranks in (1, 2):
        out = tmp_path / f"losses{ranks}.json"
        command = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(ranks)]
        command += ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
        command += ["--no_local_rank", str(WORKER), str(tiny_corpus), str(out), "8"]
        done = subprocess.run(
            command, env=launcher_env(), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs[ranks] = json.loads(out.read_text())
    one, two = runs[1], runs[2]
    assert one[-1] < one[0] - 0.5  # it trains
    for step, (got, want) in enumerate(zip(two, one, strict=True)):
        # the tolerance of test_zero_stages.py (in fp32 they agree to ~1e-7)
        assert abs(got - want) <= 0.02 * want, (step, got, want)


@pytest.fixture(scope="module")
def muon_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("muon")
    return out, launch_training(job(tiny_corpus, out, **RESUME_RUN), out)


def test_muon_run_resumes_exactly(muon_run, tiny_corpus: Path, tmp_path: Path) -> None:
    reference, summary = muon_run
    assert summary["final_loss"] < summary["first_loss"] - 0.5
    # Muon's momentum is in each rank's checkpointed optimizer state (one flat buffer per
    # partition of the Muon group), beside AdamW's moments.
    step5 = reference / "checkpoints" / "step00000005"
    for shard in sorted(step5.rglob("*zero_pp_rank_*_optim_states.pt")):
        state = torch.load(shard, map_location="cpu", weights_only=False)
        kept = state["optimizer_state_dict"]["base_optimizer_state"]["state"].values()
        assert any("momentum_buffer" in s for s in kept) and any("exp_avg" in s for s in kept)
    out = tmp_path / "out"
    shutil.copytree(step5, out / "checkpoints" / "step00000005")
    resumed = launch_training(job(tiny_corpus, out, **RESUME_RUN), out)
    assert resumed["resumed_from"] == "step00000005"
    expected, actual = losses(reference), losses(out)
    assert sorted(actual) == list(range(6, 11))
    assert [actual[s] for s in range(6, 11)] == [expected[s] for s in range(6, 11)]
    weights = "model/model.safetensors"
    assert (out / weights).read_bytes() == (reference / weights).read_bytes()
