"""ZeRO 1, 2 and 3 shard optimizer state, gradients and parameters over 2 real CPU ranks; the
loss curve must match plain data parallelism (stage 0) within bf16 rounding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from model.launch import free_port, launcher_env

WORKER = Path(__file__).with_name("zero_stages_worker.py")


def test_zero_stages_give_the_same_loss_curve(tiny_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "losses.json"
    command = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
    command += ["--no_local_rank", str(WORKER), str(tiny_corpus), str(out), "8"]
    done = subprocess.run(command, env=launcher_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    losses = {int(k): v for k, v in json.loads(out.read_text()).items()}
    reference = losses[0]
    assert reference[-1] < reference[0] - 0.5  # it trains
    for stage in (1, 2, 3):
        for step, (got, want) in enumerate(zip(losses[stage], reference, strict=True)):
            # bf16 keeps 8 bits of mantissa: ~0.4% per rounding, compounded over the steps
            assert abs(got - want) <= 0.02 * want, (stage, step, got, want)
