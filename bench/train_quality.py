"""Quality at a fixed budget: validation bits per byte after N minutes of training on CPU.

tinyshakespeare.txt is split 90/10 by characters (train first); a byte-level BPE is trained on
the train part; the GPT trains on random windows through the DeepSpeed engine (ZeRO 2, one
rank, all cores) for `--minutes` of wall time (the learning-rate schedule is sized to fit
after timing the warm-up steps), or for a fixed `--steps`, keeping a float32 moving average of
the weights
(`--ema`, train.ema_decay, model/ema.py: what model.train exports). The average (and, for
comparison, the last fp32 master weights) are scored on every non-overlapping window of the
validation part:
    bits per byte = sum of losses in nats / bytes of those target tokens / ln 2
which does not depend on the tokenizer. Target <= 2.14 (a char-level nanoGPT 4x128 fp32 reached
2.38 in 5 minutes here). Prints a table and writes bench/results/train_quality.json.
The defaults (BPE 512, 4 x 192, block 128, batch 16, lr 4e-3) won proxy runs with a 2-minute
single-thread CPU-time budget: small and many steps beats wide and few at this budget. In 5
minutes the model sees the training text ~7 times and over-fits (train 1.70 vs val 2.15 bits
per byte), which is why the average of the weights helps and dropout (slower steps) did not.

Recipes (`--recipe`): "old" is the model and optimizer defaults above (SwiGLU, AdamW, clip 1);
"new" adds the modded-nanogpt speedrun options (`NEW`: QK-norm, ReLU² MLP, logit soft cap,
zero-initialised projections, Muon for the hidden matrices; model/gpt.py, model/engine.py);
"both" trains them side by side, alternating which goes first, for `--rounds` rounds (each
round its own seed), and reports each round and the mean. `--precision auto` trains in bf16
where the CPU has fast bf16 (avx512_bf16 / amx_bf16) or on a GPU, else in fp32, and says so:
a CPU without it runs bf16 matmuls ~16x slower than fp32 (bench/README.md).

    python bench/train_quality.py [--minutes 5] [--recipe both --rounds 2] [--steps N]
"""

from __future__ import annotations

import sys

# run as `python bench/train_quality.py`, bench/tokenize.py would shadow the standard library's
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import CORPUS  # noqa: E402
from model.checkpoint import model_with_weights  # noqa: E402
from model.config import TrainConfig  # noqa: E402
from model.ema import WeightAverage  # noqa: E402
from model.engine import (  # noqa: E402
    build_engine,
    full_fp32_state_dict,
    init_single_process,
    release_engine,
)
from model.gpt import GPT, ModelConfig  # noqa: E402
from model.launch import free_port  # noqa: E402

BOOK = CORPUS / "books" / "tinyshakespeare.txt"
RESULTS = ROOT / "bench" / "results" / "train_quality.json"
TARGET = 2.00  # issue #22: <= 2.00 bits per byte in 5 minutes on 2 CPU cores

# The speedrun recipe: model.* and train.* settings over the old defaults (evidence in
# bench/README.md, "speedrun recipe").
NEW = {
    "model": {"qk_norm": True, "mlp": "relu2", "logit_softcap": 30.0, "zero_init_proj": True},
    "train": {"optimizer": "muon", "muon_lr": 0.02, "grad_clip": 0.0},
}
RECIPES = {"old": {"model": {}, "train": {}}, "new": NEW}


def bpe(train_text: str, vocab_size: int) -> Tokenizer:
    """A byte-level BPE (as tasks/tokenize/bpe.py builds) trained on the train text only."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(train_text.splitlines(keepends=True), trainer)
    return tokenizer


@torch.no_grad()
def bits_per_byte(model: GPT, val: np.ndarray, token_bytes: np.ndarray, block: int) -> float:
    """Bits per byte of `val` over its non-overlapping windows of `block` targets."""
    model.eval()
    nats, nbytes = 0.0, 0
    starts = list(range(0, len(val) - block, block))
    for i in range(0, len(starts), 32):
        rows = np.stack([val[s : s + block + 1] for s in starts[i : i + 32]]).astype(np.int64)
        x, y = torch.from_numpy(rows[:, :-1]), torch.from_numpy(rows[:, 1:])
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(
            logits.float().flatten(0, 1), y.flatten(), reduction="sum"
        )
        nats += loss.item()
        nbytes += int(token_bytes[rows[:, 1:]].sum())
    return nats / nbytes / math.log(2)


def fast_bf16() -> tuple[bool, str]:
    """Whether bf16 training is fast here, and why: a GPU, or a CPU with bf16 instructions."""
    if torch.cuda.is_available():
        return True, f"GPU {torch.cuda.get_device_name()}"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    found = sorted(flags & {"avx512_bf16", "amx_bf16"})
    if found:
        return True, f"CPU with {', '.join(found)}"
    return False, "CPU without avx512_bf16 / amx_bf16 (bf16 matmuls ~16x slower than fp32)"


def parse_value(text: str) -> object:
    """A --set value: JSON (numbers, true/false), else the string itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def recipe_settings(name: str, overrides: list[str]) -> dict[str, dict[str, object]]:
    """The recipe's model.* and train.* settings, with `--set section.key=value` overrides
    (they apply to the "new" recipe only: the old one is the defaults)."""
    chosen = {section: dict(values) for section, values in RECIPES[name].items()}
    if name == "new":
        for item in overrides:
            key, _, value = item.partition("=")
            section, _, field = key.partition(".")
            if section not in chosen or not field or not value:
                raise SystemExit(
                    f"--set {item!r}: write model.<key>=<value> or train.<key>=<value>"
                )
            chosen[section][field] = parse_value(value)
    return chosen


def train_recipe(
    name: str, args: argparse.Namespace, data: dict, seed: int, precision: str
) -> dict[str, object]:
    """Train one recipe from seed `seed` for the budget and score it; the result row."""
    train, val, token_bytes = data["train"], data["val"], data["token_bytes"]
    chosen = recipe_settings(name, args.set)
    cfg = ModelConfig(
        n_layer=args.layers,
        n_head=args.heads,
        n_embd=args.embd,
        block_size=args.block,
        vocab_size=len(token_bytes),
        dropout=args.dropout,
        **chosen["model"],
    )
    base = dict(
        steps=args.steps or 10**6,
        micro_batch=args.batch,
        zero_stage=2,
        precision=precision,
        lr=args.lr,
        min_lr=args.lr * args.min_lr_ratio,
        warmup_steps=args.warmup,
        weight_decay=0.1,
        grad_clip=1.0,
    )
    settings = TrainConfig(**(base | chosen["train"]))
    torch.manual_seed(seed)
    engine = build_engine(GPT(cfg), settings, 1)
    gen = torch.Generator().manual_seed(seed)
    average = WeightAverage(engine.module, args.ema) if args.ema else None
    budget, started, step, warm_s = args.minutes * 60, time.perf_counter(), 0, 0.0
    fixed = args.steps > 0
    while step < settings.steps and (fixed or time.perf_counter() - started < budget):
        starts = torch.randint(0, len(train) - cfg.block_size - 1, (args.batch,), generator=gen)
        rows = torch.from_numpy(np.stack([train[s : s + cfg.block_size + 1] for s in starts]))
        _, loss = engine(rows[:, :-1], rows[:, 1:])
        engine.backward(loss)
        engine.step()
        step += 1
        if average is not None:
            average.update()
        elapsed = time.perf_counter() - started
        if fixed:
            pass
        elif step == args.warmup:  # now the speed is known: the decay ends when the budget does
            settings.steps = step + int((budget - elapsed) / (elapsed / step))
            warm_s = elapsed
        elif step % 100 == 0 and elapsed < 0.7 * budget:
            # re-sized on the steady speed since warm-up (the first steps are slower), while the
            # learning rate is still near its peak, so the decay ends with the budget
            per_step = (elapsed - warm_s) / (step - args.warmup)
            settings.steps = step + int((budget - elapsed) / per_step)
        if step % 100 == 0:
            print(f"  {name} step {step}/{settings.steps} loss {loss.item():.3f}", flush=True)
    trained_s = time.perf_counter() - started
    scored = model_with_weights(cfg, full_fp32_state_dict(engine))
    release_engine(engine)
    last_bpb = bits_per_byte(scored, val, token_bytes, cfg.block_size)
    if average is not None:  # what model.train exports with train.ema_decay
        scored = model_with_weights(cfg, average.average)
    bpb = bits_per_byte(scored, val, token_bytes, cfg.block_size)
    # the same measure on as many training tokens: the gap to validation shows over-fitting
    train_bpb = bits_per_byte(scored, train[: len(val)], token_bytes, cfg.block_size)
    tokens = step * args.batch * cfg.block_size
    return {
        "recipe": name,
        "seed": seed,
        "model": dataclasses.asdict(cfg),
        "train": {
            k: v
            for k, v in dataclasses.asdict(settings).items()
            if k in base or k in chosen["train"]
        },
        "params": scored.num_params(),
        "steps": step,
        "train_s": round(trained_s, 1),
        "s_per_step": trained_s / step,
        "tokens_seen": tokens,
        "tokens_per_s": tokens / trained_s,
        "val_bits_per_byte": bpb,
        "val_bits_per_byte_last_weights": last_bpb,
        "train_bits_per_byte": train_bpb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall time")
    parser.add_argument("--steps", type=int, default=0, help="fixed steps instead (0: minutes)")
    parser.add_argument("--recipe", choices=("old", "new", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each recipe")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument(
        "--set", action="append", default=[], help="model.<key>=<v> / train.<key>=<v> (new)"
    )
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--embd", type=int, default=192)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--min-lr-ratio", type=float, default=0.1, help="final lr / peak lr")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up steps (also timed)")
    parser.add_argument(
        "--ema", type=float, default=0.995, help="train.ema_decay (0 = off): scored weights"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON written")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fast, why = fast_bf16()
    precision = args.precision if args.precision != "auto" else ("bf16" if fast else "fp32")
    print(f"precision {precision} ({args.precision}: {why})", flush=True)
    text = BOOK.read_text(encoding="utf-8")
    cut = int(0.9 * len(text))
    tokenizer = bpe(text[:cut], args.vocab)
    vocab = tokenizer.get_vocab()  # byte-level: one character per byte
    token_bytes = np.zeros(len(vocab), dtype=np.int64)
    for piece, index in vocab.items():
        token_bytes[index] = len(piece)
    data = {
        "train": np.array(tokenizer.encode(text[:cut]).ids, dtype=np.int64),
        "val": np.array(tokenizer.encode(text[cut:]).ids, dtype=np.int64),
        "token_bytes": token_bytes,
    }
    init_single_process(free_port())
    names = ["old", "new"] if args.recipe == "both" else [args.recipe]
    runs = []
    for round_ in range(args.rounds):
        order = names if round_ % 2 == 0 else names[::-1]  # who goes first alternates
        for name in order:
            print(f"round {round_ + 1}/{args.rounds}: {name}", flush=True)
            runs.append({"round": round_ + 1, **train_recipe(name, args, data, round_, precision)})
    budget = f"{args.steps} steps" if args.steps else f"{args.minutes:g} min"
    print(
        f"{'round':>5} {'recipe':>6} {'params':>8} {'steps':>6} {'train s':>8} {'tok/s':>7} "
        f"{'train bpb':>9} {'val bpb':>8} {'last weights':>12}   ({budget}, {precision})"
    )
    for r in runs:
        print(
            f"{r['round']:>5} {r['recipe']:>6} {r['params']:>8} {r['steps']:>6} "
            f"{r['train_s']:>8.0f} {r['tokens_per_s']:>7.0f} {r['train_bits_per_byte']:>9.3f} "
            f"{r['val_bits_per_byte']:>8.3f} {r['val_bits_per_byte_last_weights']:>12.3f}"
        )
    means = {
        name: {
            key: float(np.mean([r[key] for r in runs if r["recipe"] == name]))
            for key in ("val_bits_per_byte", "tokens_per_s", "s_per_step", "steps")
        }
        for name in names
    }
    for name, mean in means.items():
        print(
            f" mean {name:>6}: val bpb {mean['val_bits_per_byte']:.3f}, "
            f"{mean['tokens_per_s']:.0f} tokens/s (target <= {TARGET:.2f} bits per byte)"
        )
    result = {
        "budget": budget,
        "precision": precision,
        "precision_reason": why,
        "threads": torch.get_num_threads(),
        "train_tokens": len(data["train"]),
        "val_tokens": len(data["val"]),
        "scored_weights": f"ema {args.ema}" if args.ema else "last",
        "target": TARGET,
        "recipes": {name: recipe_settings(name, args.set) for name in names},
        "runs": runs,
        "means": means,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temp = args.out.with_suffix(".tmp")
    temp.write_text(json.dumps(result, indent=2) + "\n")
    temp.rename(args.out)


if __name__ == "__main__":
    main()
