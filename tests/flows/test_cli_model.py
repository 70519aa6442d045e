"""`lmforge evaluate` and `lmforge generate` on a model folder; bad input exits 1 with why.
(`generate` from the registry is tested with fine-tuning, tests/tasks/finetune.)"""

from __future__ import annotations

import json
from pathlib import Path

from flows.cli import main
from tests.tasks.register.conftest import tiny_model  # noqa: F401


def test_evaluate_writes_a_report(tmp_path: Path, tiny_model: Path, capsys) -> None:  # noqa: F811
    (tmp_path / "notes.txt").write_text("The parser returns a list of tokens. " * 20)
    choices = tmp_path / "choices.jsonl"
    choices.write_text(json.dumps({"context": "The", "choices": ["parser", "class"], "label": 0}))
    out = tmp_path / "report"
    args = ["evaluate", "--model", str(tiny_model), "--text", str(tmp_path / "notes.txt")]
    args += ["--choices", str(choices), "--out", str(out), "--set", f"run.work_dir={tmp_path}"]
    assert main([*args, "--set", "evaluate.prompts=['The']"]) == 0
    metrics = json.loads((out / "eval.json").read_text())["metrics"]
    assert metrics["mc_items"] == 1 and metrics["text_bpb"] > 0
    report = (out / "report.md").read_text()
    assert "| text_perplexity |" in report and "prompt: `The`" in report
    assert '"text_perplexity"' in capsys.readouterr().out


def test_generate_and_its_errors(tmp_path: Path, tiny_model: Path, capsys) -> None:  # noqa: F811
    common = ["--set", f"run.work_dir={tmp_path}"]
    args = ["generate", "--model", str(tiny_model), "--prompt", "The parser", *common]
    assert main([*args, "--max-new-tokens", "3", "--seed", "5"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("The parser")
    assert main([*args, "--max-new-tokens", "3", "--seed", "5"]) == 0
    assert capsys.readouterr().out == first  # same seed, same text
    long = ["generate", "--model", str(tiny_model), "--prompt", "word " * 100, *common]
    assert main(long) == 1
    assert "context window is 64 tokens" in capsys.readouterr().err
    assert main(["generate", "--model", "runs:/abc/model", "--prompt", "x", *common]) == 1
    assert "neither a models:/ URI nor an existing folder" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"context": "a", "choices": ["b"], "label": 0}\n')
    evaluate = ["evaluate", "--model", str(tiny_model), "--choices", str(bad), *common]
    assert main(evaluate) == 1
    assert "bad.jsonl:1: expected" in capsys.readouterr().err
