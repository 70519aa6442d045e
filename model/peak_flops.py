"""Measure this machine's peak matmul FLOP/s once, for `train.peak_flops` (the MFU denominator).

    python -m model.peak_flops [--size 2048] [--dtype bf16] [--threads N]

Times a square matmul (2·n³ FLOPs each) after a warm-up and prints the best of several rounds
(the device's attainable peak, not its datasheet number). On a GPU it measures the GPU.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def matmul_flops(size: int, dtype: torch.dtype, device: str, rounds: int = 5) -> float:
    """The best FLOP/s over `rounds` timings of a (size x size) @ (size x size) matmul."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b  # warm-up: kernels chosen, threads started
    sync()
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        a @ b
        sync()
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="matrix side")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    flops = matmul_flops(args.size, DTYPES[args.dtype], device)
    result = {"device": device, "dtype": args.dtype, "size": args.size, "peak_flops": flops}
    print(json.dumps(result))
    print(f"set train.peak_flops={flops:.3e} (per {device} device, {args.dtype})")


if __name__ == "__main__":
    main()
