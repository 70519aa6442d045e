"""`lmforge evaluate` and `lmforge generate` on a model folder; bad input exits 1 with why.
(`generate` from the registry is tested with fine-tuning, tests/tasks/finetune.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

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


def test_evaluate_with_the_harness(tmp_path: Path, tiny_model: Path, capsys) -> None:  # noqa: F811
    """lm-eval's numbers go to eval.json, the report and the model's MLflow run beside ours."""
    from mlflow import MlflowClient

    train = tmp_path / "train"
    shutil.copytree(tiny_model, train / "model")
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    artifacts = (tmp_path / "mlartifacts").as_uri()
    run_id = client.create_run(client.create_experiment("harness", artifacts)).info.run_id
    (train / "mlflow_run.json").write_text(json.dumps({"run_id": run_id}))
    (tmp_path / "notes.txt").write_text("The parser returns a list of tokens. " * 20)
    choices = tmp_path / "choices.jsonl"
    items = [
        {"context": "The", "choices": ["parser returns", "class"], "label": 0},
        {"context": "A module", "choices": ["reads the model.", "x"], "label": 0},
    ]
    choices.write_text("".join(json.dumps(i) + "\n" for i in items))
    out = tmp_path / "report"
    common = ["--model", str(train), "--set", f"run.work_dir={tmp_path}", "--out", str(out)]
    data = ["--text", str(tmp_path / "notes.txt"), "--choices", str(choices)]
    tasks = ["--harness", "lmforge_choices,lmforge_perplexity"]
    assert main(["evaluate", *common, *data, *tasks, "--set", "evaluate.prompts=[]"]) == 0
    result = json.loads((out / "eval.json").read_text())
    harness = result["harness"]["tasks"]
    assert harness["lmforge_choices"]["acc"] == result["metrics"]["mc_acc"]
    assert harness["lmforge_choices"]["acc_norm"] == result["metrics"]["mc_acc_norm"]
    assert harness["lmforge_perplexity"]["bits_per_byte"] == pytest.approx(
        result["metrics"]["text_bpb"], rel=1e-5
    )
    assert harness["lmforge_choices"]["items"] == 2 and "acc_stderr" in harness["lmforge_choices"]
    report = (out / "report.md").read_text()
    assert "| lmforge_perplexity | 1 | bits_per_byte |" in report
    assert '"harness.lmforge_choices.acc"' in capsys.readouterr().out
    logged = client.get_run(run_id).data.metrics
    assert logged["harness.lmforge_choices.acc"] == logged["eval_mc_acc"]
    assert logged["harness.lmforge_perplexity.bits_per_byte"] > 0

    assert main(["evaluate", *common, "--harness", "lmforge_choices,piqa"]) == 1
    assert "lmforge ships lmforge_choices, lmforge_perplexity" in capsys.readouterr().err
    assert main(["evaluate", *common, "--harness", "lmforge_perplexity"]) == 1
    assert "pass --text FILE_OR_FOLDER or set evaluate.texts" in capsys.readouterr().err
