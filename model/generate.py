"""Text in, text out: prompt encoding, seeded sampling and decoding around `GPT.generate`."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer

from model.gpt import GPT


def complete(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    seed: int,
) -> str:
    """The continuation of `prompt` (prompt excluded); the same seed gives the same text."""
    ids = tokenizer.encode(prompt).ids
    if not ids:
        raise ValueError("the prompt is empty: give at least one character of text")
    if len(ids) >= model.cfg.block_size:
        raise ValueError(
            f"the prompt is {len(ids)} tokens long; this model's context window is "
            f"{model.cfg.block_size} tokens: shorten the prompt"
        )
    generator = torch.Generator().manual_seed(seed)
    idx = torch.tensor([ids], dtype=torch.long)
    model.eval()
    out = model.generate(idx, max_new_tokens, temperature, top_k, generator=generator)
    return tokenizer.decode(out[0, len(ids) :].tolist(), skip_special_tokens=False)
