"""Evaluation of an exported model: held-out loss/perplexity/bits per byte, continuation BLEU,
cloze and multiple-choice accuracy, text files, fine-tuning answers, seeded samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from model.checkpoint import export_model
from model.data import TokenDataset
from model.evaluate import EvalSets, evaluate_model
from model.gpt import GPT, ModelConfig
from model.metrics import bleu_chrf, token_byte_lengths

from .conftest import sentences

CHAT_SPECIALS = ["<|endoftext|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def exported(
    folder: Path, tokenizer: Path, vocab_size: int, trained_on: Path | None = None
) -> Path:
    """A 1-layer GPT, untrained or fitted for 100 steps to the train split of `trained_on`."""
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=1, n_head=2, n_embd=32, block_size=32, vocab_size=vocab_size)
    model = GPT(cfg)
    if trained_on is not None:
        batches = TokenDataset(trained_on, "train").random_batches(8, cfg.block_size, seed=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a model this small trains fastest on one thread
        for _ in range(100):
            _, loss = model(*next(batches))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.set_num_threads(threads)
    return export_model(model, cfg, folder, tokenizer)


def chat_tokenizer(folder: Path) -> Path:
    """A byte-level BPE with lmforge's special tokens (end-of-text, pad and chat markers)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=CHAT_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(sentences(), trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder / "tokenizer.json"


def test_loss_perplexity_and_seeded_samples(tmp_path: Path, tiny_corpus: Path) -> None:
    model_dir = exported(tmp_path / "model", tiny_corpus / "tokenizer.json", 320)
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
    model_dir = exported(tmp_path / "model", tiny_corpus / "tokenizer.json", 100)
    with pytest.raises(ValueError, match="vocabulary"):
        evaluate_model(model_dir, tiny_corpus, 1, [], 1, 1.0, None, 0)


def test_byte_lengths_are_exact_and_bleu_is_sacrebleu(tiny_corpus: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_corpus / "tokenizer.json"))
    lengths = token_byte_lengths(tokenizer)
    for text in ["The parser returns one shard.", "naïve café 日本語 🎉"]:
        assert lengths[tokenizer.encode(text).ids].sum() == len(text.encode("utf-8"))
    assert lengths[tokenizer.token_to_id("<|endoftext|>")] == 0
    assert bleu_chrf(["the model reads a list"], ["the model reads a list"]) == {
        "bleu": pytest.approx(100.0),
        "chrf": pytest.approx(100.0),
    }
    assert bleu_chrf(["zz qq"], ["the model reads a list"])["bleu"] < 1.0


def test_a_trained_model_beats_an_untrained_one_on_every_set(
    tmp_path: Path, tiny_corpus: Path
) -> None:
    choices = tmp_path / "choices.jsonl"
    items = [
        {"context": "The parser", "choices": ["returns a list of tokens.", "zq xv kw"], "label": 0},
        {"context": "Each method", "choices": ["the the the", "checks the model."], "label": 1},
    ]
    choices.write_text("".join(json.dumps(i) + "\n" for i in items))
    sets = EvalSets(
        bleu_docs=5,
        prompt_tokens=2,
        reference_tokens=4,
        cloze_docs=10,
        choices=choices,
        texts=[tmp_path / "texts"],
    )
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text(" ".join(sentences()[:20]))
    tokenizer = tiny_corpus / "tokenizer.json"
    scores = {}
    for name, data in [("untrained", None), ("trained", tiny_corpus)]:
        model_dir = exported(tmp_path / name, tokenizer, 320, trained_on=data)
        scores[name] = evaluate_model(model_dir, tiny_corpus, 4, [], 1, 1.0, None, 0, sets)[
            "metrics"
        ]
    untrained, trained = scores["untrained"], scores["trained"]
    assert trained["val_perplexity"] < untrained["val_perplexity"] / 10
    assert trained["val_bpb"] < untrained["val_bpb"]
    assert trained["text_bpb"] < untrained["text_bpb"]
    # the documents are random subject-verb-object picks: a continuation is right only in part
    assert trained["continuation_bleu"] >= untrained["continuation_bleu"]
    assert trained["continuation_chrf"] > untrained["continuation_chrf"] + 5
    assert trained["cloze_acc"] >= 0.5 and untrained["cloze_acc"] == 0.0
    assert trained["mc_acc_norm"] == 1.0 and trained["mc_items"] == 2
    assert trained["continuation_items"] == 5 and trained["cloze_items"] == 10


def test_fine_tuning_answers_and_bad_jsonl_lines(tmp_path: Path) -> None:
    model_dir = exported(tmp_path / "model", chat_tokenizer(tmp_path / "tok"), 320)
    sft = tmp_path / "qa.jsonl"
    pairs = [("What does the parser return?", "a list of tokens."), ("What is read?", "one shard.")]
    sft.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in pairs))
    metrics = evaluate_model(model_dir, None, 1, [], 1, 1.0, None, 0, EvalSets(sft=sft))["metrics"]
    assert metrics["sft_items"] == 2 and metrics["sft_perplexity"] > 1
    assert 0 <= metrics["sft_bleu"] <= 100 and "val_loss" not in metrics
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "a", "choices": ["b", "c"], "label": 0}\n{"context": "a"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: expected"):
        evaluate_model(model_dir, None, 1, [], 1, 1.0, None, 0, EvalSets(choices=bad))
    bad.write_text('{"prompt": "a", "response": "b"}\n\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: empty line"):
        evaluate_model(model_dir, None, 1, [], 1, 1.0, None, 0, EvalSets(sft=bad))
