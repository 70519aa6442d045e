"""Fine-tuning examples: chat formatting, response-only targets, padding, errors, batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from model.sft import IGNORE, SftDataset, chat_tokens, format_prompt
from model.tokenizer import load_tokenizer

BLOCK = 24


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def tokenizer_path(tiny_corpus: Path) -> Path:
    return tiny_corpus / "tokenizer.json"


def test_targets_are_the_response_and_its_end_marker(tmp_path: Path, tokenizer_path: Path) -> None:
    tok = load_tokenizer(tokenizer_path)
    marks = chat_tokens(tok)
    data = write_jsonl(
        tmp_path / "a.jsonl", [{"prompt": "The parser", "response": "reads one shard."}]
    )
    ds = SftDataset(data, tokenizer_path, BLOCK)
    x, y = ds.inputs[0], ds.targets[0]
    prompt, response = tok.encode("The parser").ids, tok.encode("reads one shard.").ids
    full = [marks.role["user"], *prompt, marks.end, marks.role["assistant"], *response, marks.end]
    assert x[: len(full) - 1].tolist() == full[:-1]
    assert (x[len(full) - 1 :] == marks.pad).all()  # padded to block_size
    learned = y[y != IGNORE].tolist()
    assert learned == [*response, marks.end]  # only the answer and its end marker
    # the first learned target is predicted from the <|assistant|> position
    assert y[len(prompt) + 2].item() == response[0] and y[len(prompt) + 1].item() == IGNORE
    assert format_prompt(tok, "The parser") == full[: len(prompt) + 3]


def test_chat_messages_learn_every_assistant_turn(tmp_path: Path, tokenizer_path: Path) -> None:
    tok = load_tokenizer(tokenizer_path)
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "The class"},
        {"role": "assistant", "content": "checks"},
        {"role": "user", "content": "A module"},
        {"role": "assistant", "content": "writes"},
    ]
    ds = SftDataset(write_jsonl(tmp_path / "c.jsonl", [{"messages": chat}]), tokenizer_path, 40)
    end = chat_tokens(tok).end
    learned = ds.targets[0][ds.targets[0] != IGNORE].tolist()
    assert learned == [*tok.encode("checks").ids, end, *tok.encode("writes").ids, end]
    # a marker typed inside a message stays text: it cannot forge a turn
    assert chat_tokens(tok).end not in tok.encode("<|end|>").ids


@pytest.mark.parametrize(
    "line, message",
    [
        ("", "empty line"),
        ("{not json", "not valid JSON"),
        (json.dumps({"text": "x"}), "expected"),
        (json.dumps({"messages": [{"role": "bot", "content": "x"}]}), "role"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "no non-empty assistant"),
    ],
)
def test_bad_lines_name_file_and_line(
    tmp_path: Path, tokenizer_path: Path, line: str, message: str
) -> None:
    good = {"prompt": "A module", "response": "builds the model."}
    path = write_jsonl(tmp_path / "bad.jsonl", [good, good, line])
    with pytest.raises(ValueError, match=f"bad.jsonl:3: .*{message}"):
        SftDataset(path, tokenizer_path, BLOCK)


def test_long_examples_are_cut_or_refused(tmp_path: Path, tokenizer_path: Path) -> None:
    long_answer = {"prompt": "A module", "response": " ".join(["checks the model."] * 20)}
    with pytest.warns(UserWarning, match="1 of 1 examples .* cut"):
        ds = SftDataset(write_jsonl(tmp_path / "l.jsonl", [long_answer]), tokenizer_path, BLOCK)
    assert ds.inputs.shape == (1, BLOCK) and (ds.targets != IGNORE).any()
    long_prompt = {"prompt": " ".join(["The parser reads."] * 20), "response": "ok"}
    with pytest.raises(ValueError, match="p.jsonl:1: the response starts after block_size"):
        SftDataset(write_jsonl(tmp_path / "p.jsonl", [long_prompt]), tokenizer_path, BLOCK)


def test_batches_shard_by_rank_and_resume(tmp_path: Path, tokenizer_path: Path) -> None:
    rows = [{"prompt": f"Each method {i}", "response": "returns a string."} for i in range(7)]
    ds = SftDataset(write_jsonl(tmp_path / "r.jsonl", rows), tokenizer_path, BLOCK)

    def seen(rank: int) -> set[bytes]:
        batches = ds.random_batches(2, seed=3, rank=rank, world_size=2)
        return {row.numpy().tobytes() for _ in range(4) for row in next(batches)[0]}

    assert len(seen(0)) == 4 and len(seen(1)) == 3 and not seen(0) & seen(1)
    first = ds.random_batches(3, seed=5)
    for _ in range(3):
        next(first)
    state = json.loads(json.dumps(first.state_dict()))
    expected = [next(first) for _ in range(4)]
    resumed = ds.random_batches(3, seed=5)
    resumed.load_state_dict(state)
    for (x, y), (rx, ry) in zip(expected, [next(resumed) for _ in range(4)], strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)
    with pytest.raises(ValueError, match="seed"):
        ds.random_batches(3, seed=6).load_state_dict(state)
    val = list(ds.sequential_batches(3))
    assert [len(x) for x, _ in val] == [3, 3, 1]
