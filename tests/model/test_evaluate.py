"""Held-out loss, perplexity and seeded samples of an exported model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from model.checkpoint import export_model
from model.evaluate import evaluate_model
from model.gpt import GPT, ModelConfig


def exported(folder: Path, corpus: Path, vocab_size: int) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, vocab_size=vocab_size)
    return export_model(GPT(cfg), cfg, folder, corpus / "tokenizer.json")


def test_loss_perplexity_and_seeded_samples(tmp_path: Path, tiny_corpus: Path) -> None:
    model_dir = exported(tmp_path / "model", tiny_corpus, 320)
    settings = dict(max_batches=2, prompts=["The parser", "A"], max_new_tokens=8, temperature=1.0)
    result = evaluate_model(model_dir, tiny_corpus, top_k=20, seed=3, **settings)
    assert abs(result["val_loss"] - math.log(320)) < 0.5  # untrained: about uniform
    assert result["perplexity"] == pytest.approx(math.exp(result["val_loss"]))
    assert result["val_tokens"] == 2 * 16 * 32
    assert [s["prompt"] for s in result["samples"]] == ["The parser", "A"]
    assert all(s["completion"] for s in result["samples"])
    again = evaluate_model(model_dir, tiny_corpus, top_k=20, seed=3, **settings)
    assert again == result


def test_refuses_data_with_a_larger_vocabulary(tmp_path: Path, tiny_corpus: Path) -> None:
    model_dir = exported(tmp_path / "model", tiny_corpus, 100)
    with pytest.raises(ValueError, match="vocabulary"):
        evaluate_model(model_dir, tiny_corpus, 1, [], 1, 1.0, None, 0)
