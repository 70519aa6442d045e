"""Log-likelihood scoring: text perplexity, multiple choice (acc_norm) and cloze last words.

Every definition here is lm-evaluation-harness's, so that its `hf` model on the Hugging Face
export gives the same numbers (tests/tasks/evaluate/test_harness.py). Contexts and continuations
are split its way: encode context + continuation as one string and take the tokens past the
context's own encoding, so a word keeps the BPE piece with its leading space; an empty context
is the end-of-text token (`prefix`). A context longer than the window keeps its last tokens. A
text is scored from its first token on, conditioned on the end-of-text token that precedes every
document in training, in windows of the context length (its `loglikelihood_rolling`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from model.gpt import GPT

WORD = re.compile(r"[A-Za-z]{2,}")


def split_encode(tokenizer: Tokenizer, context: str, continuation: str) -> tuple[list, list]:
    """(context ids, continuation ids) as lm-eval splits them: the context's trailing whitespace
    moves to the continuation, the context is encoded alone and the continuation is what the
    encoding of the whole string holds past that many tokens."""
    stripped = context.rstrip()
    continuation = context[len(stripped) :] + continuation
    whole = tokenizer.encode(stripped + continuation).ids
    head = tokenizer.encode(stripped).ids if stripped else []
    return head, whole[len(head) :]


@torch.no_grad()
def continuation_scores(model: GPT, context: list[int], continuation: list[int]) -> tuple:
    """(sum of log p(continuation | context), whether greedy decoding yields the continuation)."""
    block = model.cfg.block_size
    if not continuation:
        raise ValueError("empty continuation: nothing to score")
    if len(continuation) > block:
        raise ValueError(f"a {len(continuation)}-token continuation exceeds block_size {block}")
    ids = (context + continuation)[-(block + 1) :]
    x = torch.tensor([ids[:-1]], dtype=torch.long)
    logits, _ = model(x)
    logprobs = F.log_softmax(logits[0, -len(continuation) :].float(), dim=-1)  # (n, V)
    target = torch.tensor(continuation)
    picked = logprobs.gather(1, target[:, None]).sum().item()
    greedy = bool((logprobs.argmax(dim=-1) == target).all())
    return picked, greedy


def rolling_windows(ids: list[int], prefix: int, block: int) -> list[tuple[list, list]]:
    """(model input, targets) pairs that predict every token of `ids` once, the targets by the
    input's last positions: the first input is `prefix` + ids, each later one ends before its
    last target and reaches back a whole window (lm-eval's rolling windows, context_len=1)."""
    first = min(block, len(ids))
    windows = [([prefix, *ids[: first - 1]], ids[:first])] if ids else []
    done = first
    while done < len(ids):
        end = min(len(ids), done + block)
        windows.append((ids[end - block - 1 : end - 1], ids[done:end]))
        done = end
    return windows


@torch.no_grad()
def text_nll(model: GPT, ids: list[int], prefix: int) -> tuple[float, int]:
    """(summed negative log-likelihood in nats, tokens predicted) of every token of `ids`, the
    first conditioned on `prefix`, in windows of the model's context length."""
    total = 0.0
    for window, targets in rolling_windows(ids, prefix, model.cfg.block_size):
        logits, _ = model(torch.tensor([window], dtype=torch.long))
        logprobs = F.log_softmax(logits[0, -len(targets) :].float(), dim=-1)  # (n, V)
        total -= logprobs.gather(1, torch.tensor(targets)[:, None]).sum().item()
    return total, len(ids)


def multiple_choice(
    model: GPT, tokenizer: Tokenizer, items: list[dict[str, Any]], prefix: int
) -> dict:
    """acc (highest log-likelihood) and acc_norm (log-likelihood per character of the choice);
    an empty context is `prefix`, the end-of-text token."""
    correct = correct_norm = 0
    for item in items:
        scores = []
        for choice in item["choices"]:
            context, continuation = split_encode(tokenizer, item["context"], " " + choice)
            context = context or [prefix]
            logprob, _ = continuation_scores(model, context, continuation)
            scores.append((logprob, logprob / max(len(choice), 1)))
        raw = max(range(len(scores)), key=lambda i: scores[i][0])
        norm = max(range(len(scores)), key=lambda i: scores[i][1])
        correct += raw == item["label"]
        correct_norm += norm == item["label"]
    n = max(len(items), 1)
    return {"acc": correct / n, "acc_norm": correct_norm / n, "items": len(items)}


def cloze_items(texts: Iterable[str], limit: int) -> list[tuple[str, str]]:
    """(context, last word) pairs: each text cut before its last word of two or more letters."""
    items = []
    for text in texts:
        last = next(reversed([*WORD.finditer(text)]), None)
        if last is not None and text[: last.start()].strip():
            items.append((text[: last.start()], last.group()))
        if len(items) == limit:
            break
    return items


def cloze_accuracy(model: GPT, tokenizer: Tokenizer, items: list[tuple[str, str]]) -> dict:
    """LAMBADA-style: the share of items whose last word greedy decoding reproduces exactly."""
    hits, total_nll, total_tokens = 0, 0.0, 0
    for context_text, word in items:
        context, continuation = split_encode(tokenizer, context_text, word)
        logprob, greedy = continuation_scores(model, context, continuation)
        hits += greedy
        total_nll, total_tokens = total_nll - logprob, total_tokens + len(continuation)
    n = max(len(items), 1)
    return {
        "acc": hits / n,
        "word_nll": total_nll / max(total_tokens, 1),
        "items": len(items),
    }
