"""Training throughput: the DeepSpeed path (ZeRO 2, bf16) against a plain PyTorch loop.

Both train the same GPT on the same random batches in this one process and thread pool, one
after the other and interleaved over `--rounds`, so machine noise hits both alike:
  deepspeed  model.engine.build_engine (ZeRO 2, bf16 weights, fp32 master copy), one rank
  plain      fp32 weights, torch.autocast(bfloat16), torch AdamW, clip_grad_norm_
Reports tokens/s, their ratio (target >= 0.9) and MFU = tokens/s * (6N + 12·L·H·Q·T) / peak,
the peak being a bf16 matmul measured here (model/peak_flops.py). On a GPU the same script
measures the GPU (e.g. `--preset gpt2-124m --vocab 50304 --batch 16`).

`--recipe new` measures the speedrun recipe of bench/train_quality.py (its model options; Muon
through DeepSpeed's MuonWithAuxAdam against torch.optim.Muon + AdamW in the plain loop, no
clipping); `--precision fp32` trains both paths in float32 (a CPU without fast bf16).

    python bench/train.py [--preset small] [--steps 20] [--rounds 3] [--recipe new]
"""

from __future__ import annotations

import sys

# run as `python bench/train.py`, bench/tokenize.py would shadow the standard library's tokenize
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.train_quality import NEW  # noqa: E402  (the speedrun recipe)
from model.config import TrainConfig  # noqa: E402
from model.engine import adamw, build_engine, init_single_process, is_muon_matrix  # noqa: E402
from model.flops import flops_per_token  # noqa: E402
from model.gpt import GPT, PRESETS  # noqa: E402
from model.launch import free_port  # noqa: E402
from model.peak_flops import matmul_flops  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "train.json"


def deepspeed_steps(engine, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds for one optimizer step per batch on the DeepSpeed engine."""
    start = time.perf_counter()
    for x, y in batches:
        _, loss = engine(x.to(engine.device), y.to(engine.device))
        engine.backward(loss)
        engine.step()
    loss.item()  # wait for the device
    return time.perf_counter() - start


def plain_steps(model, optimizers, batches, grad_clip: float, bf16: bool = True) -> float:
    """Seconds for the same steps in a plain loop (under bf16 autocast unless not `bf16`)."""
    start = time.perf_counter()
    device = next(model.parameters()).device
    for x, y in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            _, loss = model(x.to(device), y.to(device))
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    loss.item()  # wait for the device
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--block", type=int, default=0, help="block size; 0 = the preset's")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round and path")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipe", choices=("old", "new"), default="old")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    args = parser.parse_args()
    recipe = NEW if args.recipe == "new" else {"model": {}, "train": {}}
    cfg = dataclasses.replace(PRESETS[args.preset], vocab_size=args.vocab, **recipe["model"])
    cfg = dataclasses.replace(cfg, block_size=args.block or cfg.block_size)
    init_single_process(free_port())
    train = TrainConfig(
        steps=10**6,
        micro_batch=args.batch,
        zero_stage=2,
        precision=args.precision,
        **recipe["train"],
    )
    torch.manual_seed(0)
    engine = build_engine(GPT(cfg), train, 1)
    torch.manual_seed(0)
    plain = GPT(cfg).to(engine.device)
    if train.optimizer == "muon":
        named = list(plain.named_parameters())
        muon = [p for n, p in named if is_muon_matrix(n, p)]
        rest = [p for n, p in named if not is_muon_matrix(n, p)]
        optimizers = [
            torch.optim.Muon(muon, lr=train.muon_lr, momentum=train.muon_momentum),
            torch.optim.AdamW(rest, lr=train.lr, betas=(0.9, 0.95)),
        ]
    else:
        optimizers = [adamw(plain, train)]
    bf16 = args.precision == "bf16"
    gen = torch.Generator().manual_seed(0)
    batches = [
        (x[:, :-1], x[:, 1:])
        for x in torch.randint(
            0, cfg.vocab_size, (args.steps, args.batch, cfg.block_size + 1), generator=gen
        )
    ]
    deepspeed_steps(engine, batches[:2])  # warm-up: allocations, thread pools
    plain_steps(plain, optimizers, batches[:2], train.grad_clip, bf16)
    times = {"deepspeed": 0.0, "plain": 0.0}
    for _ in range(args.rounds):
        times["deepspeed"] += deepspeed_steps(engine, batches)
        times["plain"] += plain_steps(plain, optimizers, batches, train.grad_clip, bf16)
    tokens = args.rounds * args.steps * args.batch * cfg.block_size
    gpu = torch.cuda.is_available()
    peak = matmul_flops(8192 if gpu else 2048, torch.bfloat16, "cuda" if gpu else "cpu")
    rows = {
        name: {"tokens_per_s": tokens / s, "mfu": tokens / s * flops_per_token(cfg) / peak}
        for name, s in times.items()
    }
    result = {
        "model": dataclasses.asdict(cfg),
        "params": GPT(cfg).num_params(),
        "batch": args.batch,
        "recipe": args.recipe,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "peak_bf16_flops": peak,
        "flops_per_token": flops_per_token(cfg),
        "paths": rows,
        "ratio": rows["deepspeed"]["tokens_per_s"] / rows["plain"]["tokens_per_s"],
        "device": torch.cuda.get_device_name() if gpu else "cpu (no GPU: GPU MFU not measured)",
    }
    print(f"{'path':<10} {'tokens/s':>10} {'MFU':>7}")
    for name, row in rows.items():
        print(f"{name:<10} {row['tokens_per_s']:>10.0f} {row['mfu']:>7.1%}")
    print(f"deepspeed / plain = {result['ratio']:.3f} (target >= 0.9); peak {peak:.3g} FLOP/s")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
