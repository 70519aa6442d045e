"""Fine-tuning a registered model on a small domain set through the real `deepspeed` launcher:
evaluated before and after, registered as `<base>-<domain>`; bad input registers nothing.
Then the command line loads the fine-tuned model from the registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from flows.cli import main
from tasks.common import tracking
from tasks.config import LmforgeConfig
from tasks.finetune.finetune import finetune
from tasks.register.registry import register_version
from tests.tasks.register.conftest import embedded_config, export_tiny

# A made-up domain: questions about a small workshop's tools, with short fixed answers.
QA = [
    ("Which tool cuts oak boards?", "The band saw cuts oak boards."),
    ("Which tool smooths a rough edge?", "The block plane smooths a rough edge."),
    ("Where are the chisels kept?", "The chisels hang on the east wall."),
    ("What glue joins two boards?", "Hide glue joins two boards."),
    ("Which tool drills a clean hole?", "The brace and bit drills a clean hole."),
    ("How is a blade sharpened?", "A blade is sharpened on the water stone."),
    ("What holds the work still?", "The bench vise holds the work still."),
    ("Which wood is used for handles?", "Ash is used for handles."),
    ("What finish protects the table?", "Linseed oil protects the table."),
    ("Who opens the workshop?", "The warden opens the workshop at eight."),
]
STEPS = ["finetune.steps=20", "finetune.micro_batch=8", "finetune.lr=3e-3", "finetune.domain=shop"]
FAST = [
    "train.precision=fp32",
    "train.log_every=10",
    "train.eval_batches=1",
    "train.torch_threads=1",
]
FAST += ["evaluate.prompts=[]", "evaluate.sft_max_new_tokens=12"]


def write_jsonl(path: Path, pairs: list[tuple[str, str]], repeat: int = 1) -> Path:
    rows = [{"prompt": q, "response": a} for q, a in pairs] * repeat
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@contextmanager
def registered_base(work_dir: Path, tiny_model: Path) -> Iterator[LmforgeConfig]:
    """An embedded registry in `work_dir` whose `tiny` model has one version, the champion;
    torch on one thread meanwhile (the evaluations of a model this small run fastest so)."""
    config = embedded_config(work_dir, "tracking.model_name=tiny", *STEPS, *FAST)
    run_id = tracking.start_run(config, "base", {})
    register_version(
        config, "tiny", tiny_model, run_id, {}, {"val_bpb": 3.0}, lambda d: "# base\n", work_dir
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield config
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path):
    """An embedded registry whose `tiny` model has one version, the champion."""
    work_dir = tmp_path_factory.mktemp("finetune")
    with registered_base(work_dir, tiny_model) as config:
        yield config, work_dir


def test_finetune_improves_the_domain_and_registers_a_version(base, capsys) -> None:
    config, work_dir = base
    data = write_jsonl(work_dir / "shop.jsonl", QA, repeat=2)  # every 5th line held out
    result = finetune(config, "models:/tiny@champion", str(data))
    before, after = result["before"], result["after"]
    assert after["sft_perplexity"] < before["sft_perplexity"] / 2
    assert after["sft_loss"] < before["sft_loss"] and after["sft_items"] == 4
    registered = result["registered"]
    assert registered["name"] == "tiny-shop" and registered["version"] == 1
    assert "champion" in registered["aliases"]
    version = MlflowClient(config.mlflow_uri()).get_model_version("tiny-shop", "1")
    assert version.tags["lmforge.base_model"] == "tiny version 1"
    assert version.tags["lmforge.finetune.data_sha256"] == result["data_sha256"]
    assert "sft_perplexity" in Path(result["path"], "before_after.md").read_text()

    overrides = [f"run.work_dir={work_dir}"]
    args = ["--model", "models:/tiny-shop@champion", "--prompt", "The band", "--seed", "1"]
    assert main(["generate", *args, "--set", overrides[0], "--max-new-tokens", "4"]) == 0
    chat = ["generate", "--model", "models:/tiny-shop/1", "--chat", "--prompt", QA[0][0]]
    assert main([*chat, "--set", overrides[0], "--max-new-tokens", "12"]) == 0
    printed = capsys.readouterr().out
    assert "The band" in printed and f"{QA[0][0]}\n> " in printed


def test_bad_input_registers_nothing(base, tmp_path: Path) -> None:
    config, work_dir = base
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a"\n' * 3)
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        finetune(config, "models:/tiny@champion", str(bad))
    long = write_jsonl(tmp_path / "long.jsonl", [("word " * 200, "yes")] * 5)
    with pytest.raises(ValueError, match="block_size"):
        finetune(config, "models:/tiny@champion", str(long))
    with pytest.raises(ValueError, match="has no alias 'gold'"):
        finetune(config, "models:/tiny@gold", str(long))
    no_markers = export_tiny(tmp_path / "plain", write_plain_tokenizer(tmp_path / "plain.json"))
    with pytest.raises(ValueError, match="chat marker"):
        finetune(config, str(no_markers), str(write_jsonl(tmp_path / "ok.jsonl", QA)))
    client = MlflowClient(config.mlflow_uri())
    names = {m.name for m in client.search_registered_models()}
    assert "tiny-domain" not in names and "lmforge-gpt-shop" not in names


def write_plain_tokenizer(path: Path) -> Path:
    """A byte-level BPE with only an end-of-text token: no chat markers."""
    from tokenizers import pre_tokenizers, trainers

    from tasks.tokenize.bpe import new_tokenizer

    tokenizer = new_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([q + " " + a for q, a in QA], trainer)
    tokenizer.save(str(path))
    return path
