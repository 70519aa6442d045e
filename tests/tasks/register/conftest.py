"""An exported (untrained) model with an lmforge tokenizer, and an embedded MLflow config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import pre_tokenizers, trainers

from model.checkpoint import export_model
from model.gpt import GPT, ModelConfig
from model.tokenizer import SPECIAL_TOKENS
from tasks.config import LmforgeConfig, load_config
from tasks.tokenize.bpe import new_tokenizer
from tests.model.conftest import sentences


def lmforge_tokenizer(path: Path) -> Path:
    """A 320-token byte-level BPE with end-of-text, pad and the chat markers."""
    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sentences(), trainer)
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def export_tiny(folder: Path, tokenizer: Path, seed: int = 0) -> Path:
    """A 1-layer, 32-wide GPT with a 64-token window, exported to `folder`."""
    torch.manual_seed(seed)
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=64, vocab_size=320)
    return export_model(GPT(cfg), cfg, folder, tokenizer)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    return export_tiny(folder / "model", lmforge_tokenizer(folder / "tokenizer.json"))


def embedded_config(work_dir: Path, *overrides: str) -> LmforgeConfig:
    """Defaults with the work directory (and so SQLite MLflow) under `work_dir`."""
    return load_config(None, [f"run.work_dir={work_dir}", *overrides])
