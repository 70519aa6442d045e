"""Text in, text out: prompt encoding, seeded sampling and decoding around `GPT.generate`."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer

from model.gpt import GPT
from model.sft import chat_tokens, format_prompt


def sample_ids(
    model: GPT,
    ids: list[int],
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    seed: int,
    top_p: float | None = None,
) -> list[int]:
    """The sampled continuation ids of the prompt `ids` (`GPT.generate`'s temperature, top-k and
    top-p sampling); the same seed gives the same ids."""
    if not ids:
        raise ValueError("the prompt is empty: give at least one character of text")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (None: off), got {top_p}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 or None: off), got {top_k}")
    if len(ids) >= model.cfg.block_size:
        raise ValueError(
            f"the prompt is {len(ids)} tokens long; this model's context window is "
            f"{model.cfg.block_size} tokens: shorten the prompt"
        )
    generator = torch.Generator().manual_seed(seed)
    idx = torch.tensor([ids], dtype=torch.long)
    model.eval()
    out = model.generate(idx, max_new_tokens, temperature, top_k, top_p, generator=generator)
    return out[0, len(ids) :].tolist()


def complete(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    seed: int,
    top_p: float | None = None,
) -> str:
    """The continuation of `prompt` (prompt excluded); the same seed gives the same text."""
    prompt_ids = tokenizer.encode(prompt).ids
    ids = sample_ids(model, prompt_ids, max_new_tokens, temperature, top_k, seed, top_p)
    return tokenizer.decode(ids, skip_special_tokens=False)


def answer(
    model: GPT,
    tokenizer: Tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    seed: int,
    top_p: float | None = None,
) -> str:
    """A fine-tuned model's answer to the user message `prompt`, up to its `<|end|>`."""
    end = chat_tokens(tokenizer).end
    prompt_ids = format_prompt(tokenizer, prompt)
    ids = sample_ids(model, prompt_ids, max_new_tokens, temperature, top_k, seed, top_p)
    return tokenizer.decode(ids[: ids.index(end)] if end in ids else ids)
