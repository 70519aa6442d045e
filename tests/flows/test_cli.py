"""The `lmforge` command line: configuration errors and missing programs are reported clearly."""

from __future__ import annotations

import json
import os

from flows.cli import format_summary, main, missing_prerequisites, use_local_prefect
from flows.outputs import STEPS
from tasks.config import load_config


def test_config_verb_prints_resolved_settings(capsys, tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text("[train]\nsteps = 5\n")
    assert main(["config", "--config", str(preset), "--set", "model.n_layer=3"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["train"]["steps"] == 5 and resolved["model"]["n_layer"] == 3


def test_config_error_names_key_and_file(capsys, tmp_path):
    preset = tmp_path / "bad.toml"
    preset.write_text("[model]\nlayers = 3\n")
    assert main(["run", "--config", str(preset)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "'model.layers'" in err


def test_missing_java_and_gxx_are_named_with_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    missing = missing_prerequisites()
    assert any("'java'" in m and "openjdk-17" in m for m in missing)
    assert any("'g++'" in m and "apt-get install g++" in m for m in missing)
    assert main(["run", "--set", f"run.work_dir={tmp_path}"]) == 3


def test_embedded_prefect_home_is_created_inside_the_work_dir(monkeypatch, tmp_path):
    touched = [
        "PREFECT_API_URL",
        "PREFECT_HOME",
        "PREFECT_SERVER_ANALYTICS_ENABLED",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
    ]
    for name in touched:  # set, then delete: monkeypatch restores each at teardown
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    work_dir = tmp_path / "not" / "yet"
    use_local_prefect(load_config(None, [f"run.work_dir={work_dir}"]))
    assert (work_dir / "prefect").is_dir()
    assert os.environ["PREFECT_HOME"] == str(work_dir / "prefect")


def test_run_until_takes_only_a_step_name(capsys):
    try:
        main(["run", "--until", "deploy"])
    except SystemExit as exit_:
        assert exit_.code == 2
    err = capsys.readouterr().err
    assert "--until" in err and "'deploy'" in err and "tokenize" in err


def test_a_data_only_summary_reports_no_model():
    summary = {
        "pages_fetched": 40,
        "documents_extracted": 38,
        "documents_kept": 30,
        "tokens_train": 9000,
        "tokens_val": 1000,
        "train_final_loss": None,
        "val_loss": None,
        "val_perplexity": None,
        "samples": [],
        "model_name": None,
        "model_version": None,
        "tracking_uri": "sqlite:///x/mlflow.db",
        "steps": {s: {"path": f"/w/{s}/f", "skipped": False} for s in STEPS[:4]},
    }
    report = format_summary(summary, 12.0)
    assert "documents kept       30" in report and "tokens (train / val) 9000 / 1000" in report
    assert "loss" not in report and "registered model" not in report
    assert "tokenize  ran" in report and "\n    train" not in report
