"""Quality at a fixed budget: validation bits per byte after N minutes of training on CPU.

tinyshakespeare.txt is split 90/10 by characters (train first); a byte-level BPE is trained on
the train part; the GPT trains on random windows through the DeepSpeed engine (ZeRO 2, bf16,
one rank, all cores) for `--minutes` of wall time (the learning-rate schedule is sized to fit
after timing the warm-up steps), keeping a float32 moving average of the weights
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

    python bench/train_quality.py [--minutes 5]
"""

from __future__ import annotations

import sys

# run as `python bench/train_quality.py`, bench/tokenize.py would shadow the standard library's
sys.path[:] = [p for p in sys.path if not p.rstrip("/").endswith("bench")]

import argparse  # noqa: E402
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
from model.engine import build_engine, full_fp32_state_dict, init_single_process  # noqa: E402
from model.gpt import GPT, ModelConfig  # noqa: E402
from model.launch import free_port  # noqa: E402

BOOK = CORPUS / "books" / "tinyshakespeare.txt"
RESULTS = ROOT / "bench" / "results" / "train_quality.json"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall time")
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
    args = parser.parse_args()
    text = BOOK.read_text(encoding="utf-8")
    cut = int(0.9 * len(text))
    tokenizer = bpe(text[:cut], args.vocab)
    train = np.array(tokenizer.encode(text[:cut]).ids, dtype=np.int64)
    val = np.array(tokenizer.encode(text[cut:]).ids, dtype=np.int64)
    vocab = tokenizer.get_vocab()  # byte-level: one character per byte
    token_bytes = np.zeros(len(vocab), dtype=np.int64)
    for piece, index in vocab.items():
        token_bytes[index] = len(piece)
    cfg = ModelConfig(
        n_layer=args.layers,
        n_head=args.heads,
        n_embd=args.embd,
        block_size=args.block,
        vocab_size=len(vocab),
        dropout=args.dropout,
    )
    init_single_process(free_port())
    settings = TrainConfig(
        steps=10**6,
        micro_batch=args.batch,
        zero_stage=2,
        precision="bf16",
        lr=args.lr,
        min_lr=args.lr * args.min_lr_ratio,
        warmup_steps=args.warmup,
        weight_decay=0.1,
        grad_clip=1.0,
    )
    torch.manual_seed(0)
    engine = build_engine(GPT(cfg), settings, 1)
    gen = torch.Generator().manual_seed(0)
    average = WeightAverage(engine.module, args.ema) if args.ema else None
    budget, started, step, warm_s = args.minutes * 60, time.perf_counter(), 0, 0.0
    while time.perf_counter() - started < budget and step < settings.steps:
        starts = torch.randint(0, len(train) - cfg.block_size - 1, (args.batch,), generator=gen)
        rows = torch.from_numpy(np.stack([train[s : s + cfg.block_size + 1] for s in starts]))
        _, loss = engine(rows[:, :-1], rows[:, 1:])
        engine.backward(loss)
        engine.step()
        step += 1
        if average is not None:
            average.update()
        elapsed = time.perf_counter() - started
        if step == args.warmup:  # now the speed is known: the decay ends when the budget does
            settings.steps = step + int((budget - elapsed) / (elapsed / step))
            warm_s = elapsed
        elif step % 100 == 0 and elapsed < 0.7 * budget:
            # re-sized on the steady speed since warm-up (the first steps are slower), while the
            # learning rate is still near its peak, so the cosine decay ends with the budget
            per_step = (elapsed - warm_s) / (step - args.warmup)
            settings.steps = step + int((budget - elapsed) / per_step)
        if step % 50 == 0:
            print(f"step {step}/{settings.steps} loss {loss.item():.3f}", flush=True)
    trained_s = time.perf_counter() - started
    scored = model_with_weights(cfg, full_fp32_state_dict(engine))
    last_bpb = bits_per_byte(scored, val, token_bytes, cfg.block_size)
    if average is not None:  # what model.train exports with train.ema_decay
        scored = model_with_weights(cfg, average.average)
    bpb = bits_per_byte(scored, val, token_bytes, cfg.block_size)
    # the same measure on as many training tokens: the gap to validation shows over-fitting
    train_bpb = bits_per_byte(scored, train[: len(val)], token_bytes, cfg.block_size)
    result = {
        "model": cfg.__dict__,
        "params": scored.num_params(),
        "steps": step,
        "train_s": round(trained_s, 1),
        "tokens_seen": step * args.batch * cfg.block_size,
        "train_tokens": len(train),
        "val_tokens": len(val),
        "scored_weights": f"ema {args.ema}" if average is not None else "last",
        "val_bits_per_byte": bpb,
        "val_bits_per_byte_last_weights": last_bpb,
        "train_bits_per_byte": train_bpb,
        "target": 2.14,
        "args": vars(args),
    }
    print(
        f"{'params':>10} {'steps':>6} {'train s':>8} {'weights':>10} {'train bpb':>9} "
        f"{'val bpb':>8} {'val bpb, last weights':>22}"
    )
    print(
        f"{result['params']:>10} {step:>6} {trained_s:>8.0f} {result['scored_weights']:>10} "
        f"{train_bpb:>9.3f} {bpb:>8.3f} {last_bpb:>22.3f}  (target <= 2.14)"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
