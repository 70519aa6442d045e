"""Evaluate an exported model: held-out loss, perplexity and seeded sample generations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from model.checkpoint import TOKENIZER, load_model
from model.data import TokenDataset
from model.generate import complete

EVAL_BATCH = 16  # sequences per forward pass; only speed depends on it


@torch.no_grad()
def heldout_loss(
    model: torch.nn.Module, data: TokenDataset, block_size: int, max_batches: int
) -> tuple[float, int]:
    """(token-weighted mean cross-entropy, tokens scored) over sequential validation windows."""
    total, count = 0.0, 0
    for x, y in data.sequential_batches(EVAL_BATCH, block_size, max_batches):
        _, loss = model(x, y)
        total += loss.item() * y.numel()
        count += y.numel()
    return total / count, count


def evaluate_model(
    model_dir: Path,
    data_dir: Path,
    max_batches: int,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    seed: int,
) -> dict[str, Any]:
    """{val_loss, perplexity, val_tokens, samples: [{prompt, completion}]}; same seed, same text."""
    model, cfg = load_model(Path(model_dir))
    data = TokenDataset(Path(data_dir), "val")
    if data.vocab_size > cfg.vocab_size:
        raise ValueError(
            f"{data_dir} has a {data.vocab_size}-token vocabulary, the model in {model_dir} only "
            f"{cfg.vocab_size}: evaluate on the tokenize output the model was trained on"
        )
    val_loss, val_tokens = heldout_loss(model, data, cfg.block_size, max_batches)
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / TOKENIZER))
    samples = [
        {
            "prompt": prompt,
            "completion": complete(
                model, tokenizer, prompt, max_new_tokens, temperature, top_k or None, seed
            ),
        }
        for prompt in prompts
    ]
    return {
        "val_loss": val_loss,
        "perplexity": math.exp(val_loss),
        "val_tokens": val_tokens,
        "samples": samples,
    }
