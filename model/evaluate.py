"""Evaluate an exported model: held-out shards, optional evaluation sets, seeded samples.

Held-out shards give loss, perplexity and bits per byte, greedy continuations of held-out
documents scored with BLEU/chrF, and a cloze last-word accuracy; text files, a multiple-choice
JSONL and a fine-tuning JSONL add their own numbers (model/eval_tasks.py). Every number lands
in the flat `metrics` dict, the one the report, MLflow and the promotion gate read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer

from model import eval_tasks
from model.checkpoint import TOKENIZER, load_model
from model.data import TokenDataset
from model.generate import complete
from model.gpt import GPT
from model.metrics import bits_per_byte, perplexity, token_byte_lengths
from model.scoring import cloze_accuracy, cloze_items, multiple_choice
from model.tokenizer import end_of_text

EVAL_BATCH = 16  # sequences per forward pass; only speed depends on it


@dataclass
class EvalSets:
    """What to evaluate beyond held-out loss; zero or empty switches a part off."""

    bleu_docs: int = 0  # held-out documents whose continuation is scored with BLEU/chrF
    prompt_tokens: int = 32  # k: the continuation prompt is a document's first k tokens
    reference_tokens: int = 32  # m: the reference is the next m tokens
    cloze_docs: int = 0  # held-out documents for the last-word (LAMBADA-style) accuracy
    texts: list[Path] = field(default_factory=list)  # text files or folders: perplexity, bpb
    choices: Path | None = None  # JSONL {context, choices, label}: acc, acc_norm
    sft: Path | None = None  # JSONL {prompt, response} / {messages}: response ppl, BLEU, chrF
    sft_max_new_tokens: int = 64


@torch.no_grad()
def heldout_loss(
    model: torch.nn.Module, data: TokenDataset, block_size: int, max_batches: int
) -> tuple[float, int]:
    """(token-weighted mean cross-entropy, tokens scored) over sequential validation windows."""
    nats, tokens, _ = heldout_nll(model, data, block_size, max_batches)
    return nats / tokens, tokens


@torch.no_grad()
def heldout_nll(
    model: torch.nn.Module,
    data: TokenDataset,
    block_size: int,
    max_batches: int,
    byte_lengths: Any = None,
) -> tuple[float, int, int]:
    """(summed nats, tokens, bytes of the predicted tokens per `byte_lengths`, else 0)."""
    nats, tokens, num_bytes = 0.0, 0, 0
    for x, y in data.sequential_batches(EVAL_BATCH, block_size, max_batches):
        _, loss = model(x, y)
        nats += loss.item() * y.numel()
        tokens += y.numel()
        if byte_lengths is not None:
            num_bytes += int(byte_lengths[y.numpy()].sum())
    return nats, tokens, num_bytes


def shard_metrics(
    model: GPT, tokenizer: Tokenizer, data: TokenDataset, max_batches: int, sets: EvalSets
) -> dict[str, float]:
    """Loss, perplexity, bits per byte; continuation BLEU/chrF and cloze accuracy if asked."""
    lengths = token_byte_lengths(tokenizer)
    nats, tokens, num_bytes = heldout_nll(model, data, model.cfg.block_size, max_batches, lengths)
    metrics = {
        "val_loss": nats / tokens,
        "val_perplexity": perplexity(nats, tokens),
        "val_bpb": bits_per_byte(nats, num_bytes),
        "val_tokens": tokens,
    }
    if sets.bleu_docs:
        need = sets.prompt_tokens + sets.reference_tokens
        docs = list(islice((d for d in data.documents() if len(d) >= need), sets.bleu_docs))
        if docs:
            scores = eval_tasks.continuation_bleu(
                model, tokenizer, docs, sets.prompt_tokens, sets.reference_tokens
            )
            metrics |= {f"continuation_{k}": v for k, v in scores.items()}
    if sets.cloze_docs:
        texts = (tokenizer.decode(d.tolist()) for d in data.documents())
        items = cloze_items(texts, sets.cloze_docs)
        if items:
            scores = cloze_accuracy(model, tokenizer, items)
            metrics |= {f"cloze_{k}": v for k, v in scores.items()}
    return metrics


def end_of_text_id(model_dir: Path) -> int:
    """The id of the token that ends every document (model/tokenizer.py:end_of_text): what a text's
    first token and an empty multiple-choice context are conditioned on."""
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / TOKENIZER))
    return tokenizer.token_to_id(end_of_text(Path(model_dir) / TOKENIZER))


def evaluate_model(
    model_dir: Path,
    data_dir: Path | None,
    max_batches: int,
    prompts: list[str],
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    seed: int,
    sets: EvalSets | None = None,
) -> dict[str, Any]:
    """{val_loss, perplexity, val_tokens, bits_per_byte, metrics, samples}; same seed, same text.

    Without `data_dir` only the evaluation sets in `sets` are scored."""
    sets = sets or EvalSets()
    model, cfg = load_model(Path(model_dir))
    tokenizer = Tokenizer.from_file(str(Path(model_dir) / TOKENIZER))
    if tokenizer.get_vocab_size() > cfg.vocab_size:
        raise ValueError(
            f"{model_dir}/{TOKENIZER} has a {tokenizer.get_vocab_size()}-token vocabulary, the "
            f"model only {cfg.vocab_size}: the tokenizer does not belong to this model"
        )
    metrics: dict[str, float] = {}
    if data_dir is not None:
        data = TokenDataset(Path(data_dir), "val")
        if data.vocab_size > cfg.vocab_size:
            raise ValueError(
                f"{data_dir} has a {data.vocab_size}-token vocabulary, the model in {model_dir} "
                f"only {cfg.vocab_size}: evaluate on the tokenize output the model was trained on"
            )
        metrics |= shard_metrics(model, tokenizer, data, max_batches, sets)
    if sets.texts:
        texts = [t for path in sets.texts for t in eval_tasks.read_texts(path)]
        scores = eval_tasks.text_scores(model, tokenizer, texts, end_of_text_id(model_dir))
        metrics |= {f"text_{k}": v for k, v in scores.items()}
    if sets.choices is not None:
        items = eval_tasks.read_choices(sets.choices)
        scores = multiple_choice(model, tokenizer, items, end_of_text_id(model_dir))
        metrics |= {f"mc_{k}": v for k, v in scores.items()}
    if sets.sft is not None:
        scores = eval_tasks.sft_scores(
            model, Path(model_dir) / TOKENIZER, sets.sft, sets.sft_max_new_tokens
        )
        metrics |= {f"sft_{k}": v for k, v in scores.items()}
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
        "val_loss": metrics.get("val_loss"),
        "perplexity": metrics.get("val_perplexity"),
        "val_tokens": metrics.get("val_tokens"),
        "bits_per_byte": metrics.get("val_bpb"),
        "metrics": metrics,
        "samples": samples,
    }
