"""Evaluation sets beyond the held-out shards: text files, continuations, choices, SFT answers.

Each function takes a loaded model and its tokenizer and returns a flat dict of numbers. JSONL
inputs are checked line by line; a bad line is an error naming the file and line number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from model.gpt import GPT
from model.metrics import bits_per_byte, bleu_chrf, perplexity
from model.scoring import text_nll
from model.sft import IGNORE, SftDataset, chat_tokens, format_prompt, parse_example
from model.tokenizer import load_tokenizer


def read_texts(path: Path) -> list[str]:
    """The text of a file, or of every file under a folder (sorted); errors if there is none."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text to evaluate on, {path}, does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError(f"{path} holds no text to evaluate on (empty files or an empty folder)")
    return texts


def text_scores(
    model: GPT, tokenizer: Tokenizer, texts: list[str], prefix: int
) -> dict[str, float]:
    """Perplexity and bits per byte of the texts: each text on its own, every token scored (the
    first after `prefix`, the end-of-text token; model/scoring.py), over all its UTF-8 bytes;
    then pooled."""
    nats, tokens, num_bytes = 0.0, 0, 0
    for text in texts:
        ids = tokenizer.encode(text).ids
        if not ids:
            continue
        n, t = text_nll(model, ids, prefix)
        nats, tokens = nats + n, tokens + t
        num_bytes += len(text.encode("utf-8"))
    if tokens == 0:
        raise ValueError("the given text is empty: there is no token to score")
    return {
        "perplexity": perplexity(nats, tokens),
        "bpb": bits_per_byte(nats, num_bytes),
        "tokens": tokens,
    }


def greedy(model: GPT, ids: list[int], max_new_tokens: int, stop: int | None = None) -> list[int]:
    """The greedy continuation of `ids` (prompt excluded), cut before `stop` if it appears."""
    out = model.generate(torch.tensor([ids], dtype=torch.long), max_new_tokens, temperature=0.0)
    new = out[0, len(ids) :].tolist()
    return new[: new.index(stop)] if stop is not None and stop in new else new


def continuation_bleu(
    model: GPT,
    tokenizer: Tokenizer,
    documents: list[np.ndarray],
    prompt_tokens: int,
    ref_tokens: int,
) -> dict[str, float]:
    """BLEU/chrF of greedy continuations: prompt = first k tokens, reference = the next m."""
    if prompt_tokens + ref_tokens > model.cfg.block_size:
        raise ValueError(
            f"prompt_tokens + reference_tokens = {prompt_tokens + ref_tokens} exceeds the "
            f"model's context window of {model.cfg.block_size} tokens"
        )
    hypotheses, references = [], []
    for doc in documents:
        ids = doc.tolist()
        prompt, reference = ids[:prompt_tokens], ids[prompt_tokens : prompt_tokens + ref_tokens]
        hypotheses.append(tokenizer.decode(greedy(model, prompt, ref_tokens)))
        references.append(tokenizer.decode(reference))
    return {**bleu_chrf(hypotheses, references), "items": len(hypotheses)}


def read_choices(path: Path) -> list[dict[str, Any]]:
    """Items `{context, choices, label}` of a JSONL file, checked; errors name the line."""
    items = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            where = f"{path}:{number}"
            if not line.strip():
                raise ValueError(f"{where}: empty line; every line must be one JSON item")
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err.msg})") from err
            ok = (
                isinstance(item, dict)
                and isinstance(item.get("context"), str)
                and isinstance(item.get("choices"), list)
                and len(item["choices"]) >= 2
                and all(isinstance(c, str) and c for c in item["choices"])
                and type(item.get("label")) is int
                and 0 <= item["label"] < len(item["choices"])
            )
            if not ok:
                raise ValueError(
                    f'{where}: expected {{"context": str, "choices": [two or more non-empty '
                    f'strings], "label": index of the right choice}}, got {line.strip()[:200]}'
                )
            items.append(item)
    if not items:
        raise ValueError(f"{path} holds no items")
    return items


@torch.no_grad()
def sft_scores(
    model: GPT, tokenizer_path: Path, data: Path, max_new_tokens: int
) -> dict[str, float]:
    """Held-out fine-tuning answers: response loss/perplexity and BLEU/chrF of greedy answers."""
    block = model.cfg.block_size
    dataset = SftDataset(data, tokenizer_path, block)
    tokenizer = load_tokenizer(tokenizer_path)
    nats, tokens = 0.0, 0
    for x, y in dataset.sequential_batches(16):
        _, loss = model(x, y)
        n = int((y != IGNORE).sum())
        nats, tokens = nats + loss.item() * n, tokens + n
    end = chat_tokens(tokenizer).end
    hypotheses, references = [], []
    lines = Path(data).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        messages = parse_example(line, f"{data}:{number}")
        answer = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prompt = format_prompt(tokenizer, messages[:answer])
        room = min(max_new_tokens, block - len(prompt))
        if room <= 0:
            raise ValueError(f"{data}:{number}: the prompt fills the {block}-token context window")
        hypotheses.append(tokenizer.decode(greedy(model, prompt, room, stop=end)))
        references.append(messages[answer]["content"])
    return {
        "loss": nats / tokens,
        "perplexity": perplexity(nats, tokens),
        **bleu_chrf(hypotheses, references),
        "items": len(references),
    }
