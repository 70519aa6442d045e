"""lm-evaluation-harness on the shipped tasks gives our own numbers: on the same items and text,
its `hf` model on the Hugging Face export scores every choice and every text as model/scoring.py
does, so acc, acc_norm and bits per byte are equal. Real PIQA items too, where the corpus is."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer

from model.checkpoint import export_model, load_model
from model.data import TokenDataset
from model.eval_tasks import read_choices, text_scores
from model.evaluate import end_of_text_id
from model.gpt import GPT, ModelConfig
from model.hf import export_hf
from model.scoring import continuation_scores, multiple_choice, split_encode, text_nll
from tasks.evaluate.harness import (
    TASK_DATA,
    HarnessData,
    check_harness_run,
    parse_task_names,
    shipped_tasks,
    simple_evaluate_offline,
    task_metrics,
    write_task_folder,
)
from tests.model.conftest import build_tiny_corpus, sentences

ITEMS = Path(__file__).with_name("data") / "choices.jsonl"
REPO = Path(__file__).resolve().parents[3]
PIQA = (
    Path(os.environ.get("LMFORGE_CORPUS") or REPO.parent / "shared" / "corpus")
    / "evalsets"
    / "piqa"
)
PIQA_ITEMS = 100  # of the 300 in the slice: enough to disagree somewhere if the two differed


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Models this small score fastest on one thread (on a busy machine 40x faster than two)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fitted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer GQA GPT with a 512-token window (PIQA's longest choice fits), fitted for 40
    steps to the tiny corpus so that its choices' log-likelihoods are far from ties."""
    root = tmp_path_factory.mktemp("harness")
    corpus = build_tiny_corpus(root / "tokens")
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, n_head=4, n_kv_head=2, n_embd=32, block_size=512, vocab_size=320)
    model = GPT(cfg)
    batches = TokenDataset(corpus, "train").random_batches(8, 64, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        _, loss = model(*next(batches))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return export_model(model, cfg, root / "model", corpus / "tokenizer.json")


def harness_run(model_dir: Path, data: HarnessData, folder: Path) -> dict:
    """lm-eval's raw results for both shipped tasks on the HF export of `model_dir`."""
    names = [n for n in shipped_tasks() if TASK_DATA[n] != "texts" or data.texts]
    hf_dir = export_hf(model_dir, folder / "hf")
    tasks = write_task_folder(names, data, folder / "tasks")
    return simple_evaluate_offline(hf_dir, end_of_text_id(model_dir), names, tasks)


def our_choice_logprobs(model_dir: Path, items: list[dict]) -> list[list[float]]:
    """model/scoring.py's log-likelihood of each choice of each item."""
    model, _ = load_model(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    eot = end_of_text_id(model_dir)
    scores = []
    for item in items:
        row = []
        for choice in item["choices"]:
            context, continuation = split_encode(tokenizer, item["context"], " " + choice)
            row.append(continuation_scores(model, context or [eot], continuation)[0])
        scores.append(row)
    return scores


def assert_choices_agree(model_dir: Path, choices: Path, results: dict) -> dict:
    """Per choice log-likelihoods within float32 noise, then acc and acc_norm exactly equal."""
    items = read_choices(choices)
    samples = sorted(results["samples"]["lmforge_choices"], key=lambda s: s["doc_id"])
    theirs = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    ours = our_choice_logprobs(model_dir, items)
    assert len(theirs) == len(ours) == len(items)
    for mine, harness in zip(ours, theirs, strict=True):
        assert mine == pytest.approx(harness, rel=1e-5, abs=1e-3)
    model, _ = load_model(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    our_scores = multiple_choice(model, tokenizer, items, end_of_text_id(model_dir))
    harness = task_metrics(results)["lmforge_choices"]
    assert harness["acc"] == our_scores["acc"] and harness["acc_norm"] == our_scores["acc_norm"]
    assert harness["items"] == our_scores["items"] == len(items)
    assert harness["acc_stderr"] > 0 and harness["acc_norm_stderr"] > 0
    return {"ours": our_scores, "harness": harness}


def test_shipped_tasks_and_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert shipped_tasks() == sorted(TASK_DATA) == ["lmforge_choices", "lmforge_perplexity"]
    assert parse_task_names("lmforge_perplexity, lmforge_choices,lmforge_perplexity") == [
        "lmforge_perplexity",
        "lmforge_choices",
    ]
    with pytest.raises(ValueError, match=r"\['piqa'\]: lmforge ships lmforge_choices, lmfo"):
        parse_task_names("lmforge_choices,piqa")
    with pytest.raises(ValueError, match="pass --choices FILE or set evaluate.choices"):
        write_task_folder(["lmforge_choices"], HarnessData(texts=[ITEMS]), Path("/nonexistent"))
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "lm_eval" else found(name)
    )
    with pytest.raises(ValueError, match=r"\(lm_eval not installed\): make setup-hf"):
        check_harness_run(["lmforge_choices"], HarnessData(ITEMS))


def test_harness_scores_equal_ours_on_the_same_items_and_text(
    fitted_model: Path, tmp_path: Path
) -> None:
    # ~2,000 tokens: four 512-token windows, the last one reaching back over the third
    text = tmp_path / "notes.txt"
    text.write_text(" ".join(sentences()) + "\nUne phrase en français, naïve: 日本語.\n")
    results = harness_run(fitted_model, HarnessData(ITEMS, [text]), tmp_path)
    assert_choices_agree(fitted_model, ITEMS, results)

    model, _ = load_model(fitted_model)
    tokenizer = Tokenizer.from_file(str(fitted_model / "tokenizer.json"))
    eot = end_of_text_id(fitted_model)
    ids = tokenizer.encode(text.read_text()).ids
    assert len(ids) > 3 * 512
    nats, tokens = text_nll(model, ids, eot)
    (sample,) = results["samples"]["lmforge_perplexity"]
    assert -float(sample["filtered_resps"][0]) == pytest.approx(nats, rel=1e-5)
    ours = text_scores(model, tokenizer, [text.read_text()], eot)
    harness = task_metrics(results)["lmforge_perplexity"]
    assert harness["bits_per_byte"] == pytest.approx(ours["bpb"], rel=1e-5)
    assert harness["byte_perplexity"] == pytest.approx(2 ** ours["bpb"], rel=1e-5)
    words = len(re.split(r"\s+", text.read_text()))  # lm-eval's word count
    assert harness["word_perplexity"] == pytest.approx(math.exp(nats / words), rel=1e-5)
    assert ours["tokens"] == tokens == len(ids)


@pytest.mark.skipif(not PIQA.is_dir(), reason=f"no PIQA slice at {PIQA} (shared corpus absent)")
def test_harness_accuracy_equals_ours_on_piqa(fitted_model: Path, tmp_path: Path) -> None:
    docs = (PIQA / "valid.head300.jsonl").read_text(encoding="utf-8").splitlines()[:PIQA_ITEMS]
    labels = (PIQA / "valid-labels.head300.lst").read_text().split()[:PIQA_ITEMS]
    choices = tmp_path / "piqa.jsonl"
    with choices.open("w", encoding="utf-8") as out:
        for line, label in zip(docs, labels, strict=True):
            doc = json.loads(line)
            item = {"context": doc["goal"], "choices": [doc["sol1"], doc["sol2"]]}
            out.write(json.dumps({**item, "label": int(label)}) + "\n")
    results = harness_run(fitted_model, HarnessData(choices), tmp_path)
    scores = assert_choices_agree(fitted_model, choices, results)
    assert scores["ours"]["items"] == PIQA_ITEMS
